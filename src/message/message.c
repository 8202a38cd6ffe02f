#include "message/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hato_message *hato_message_new(void)
{
    return calloc(1, sizeof(hato_message));
}

void hato_message_free(hato_message *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i].address);
    free(m->rcpts);
    free(m->sender);
    free(m);
}

/* An address goes between < and > on a command line: it must not end the
 * line or the brackets (command injection), and RFC 5321 4.5.3.1.3 caps a
 * path at 256 octets. */
static bool address_ok(const char *a)
{
    return a != NULL && strlen(a) <= 254 && strpbrk(a, "\r\n<> ") == NULL;
}

hato_code hato_message_set_sender(hato_message *m, const char *address)
{
    if (!address_ok(address))
        return HATO_E_ARGUMENT;
    char *copy = strdup(address);
    if (copy == NULL)
        return HATO_E_NOMEM;
    free(m->sender);
    m->sender = copy;
    return HATO_OK;
}

hato_code hato_message_add_recipient(hato_message *m, const char *address)
{
    if (!address_ok(address) || address[0] == '\0')
        return HATO_E_ARGUMENT;
    if (m->nrcpts >= HATO_MAX_RECIPIENTS) /* else the envelope outgrows OUT_LIMIT */
        return HATO_E_ARGUMENT;
    if (m->nrcpts == m->rcptcap) {
        size_t cap = m->rcptcap ? m->rcptcap * 2 : 4;
        rcpt *grown = realloc(m->rcpts, cap * sizeof *grown);
        if (grown == NULL)
            return HATO_E_NOMEM;
        m->rcpts = grown;
        m->rcptcap = cap;
    }
    rcpt *r = &m->rcpts[m->nrcpts];
    memset(r, 0, sizeof *r);
    if ((r->address = strdup(address)) == NULL)
        return HATO_E_NOMEM;
    m->nrcpts++;
    return HATO_OK;
}

hato_code hato_message_set_reader(hato_message *m, hato_read_fn fn, void *user)
{
    if (fn == NULL)
        return HATO_E_ARGUMENT;
    m->reader = fn;
    m->reader_user = user;
    m->content = NULL;
    return HATO_OK;
}

hato_code hato_message_set_content(hato_message *m, const char *data, size_t len)
{
    if (data == NULL && len > 0)
        return HATO_E_ARGUMENT;
    m->content = data ? data : "";
    m->content_len = len;
    m->reader = NULL;
    return HATO_OK;
}

hato_code hato_message_set_body(hato_message *m, hato_body body)
{
    if ((unsigned)body > HATO_BODY_BINARYMIME)
        return HATO_E_ARGUMENT;
    m->body = body;
    return HATO_OK;
}

hato_code hato_message_set_size(hato_message *m, uint64_t bytes)
{
    m->size_hint = bytes;
    return HATO_OK;
}

hato_code hato_message_set_smtputf8(hato_message *m, bool utf8_headers)
{
    m->utf8_headers = utf8_headers;
    return HATO_OK;
}

/* RFC 3461 section 4.4: ENVID is xtext of printable ASCII, at most 100
 * characters; kept raw here and encoded on the MAIL line. */
static bool envid_ok(const char *envid)
{
    size_t n = strlen(envid);
    for (size_t i = 0; i < n; i++)
        if (envid[i] < '!' || envid[i] > '~')
            return false;
    return n <= 100;
}

hato_code hato_message_set_dsn(hato_message *m, unsigned notify, hato_dsn_ret ret,
                               const char *envid)
{
    const unsigned all = HATO_DSN_NEVER | HATO_DSN_SUCCESS | HATO_DSN_FAILURE | HATO_DSN_DELAY;
    if ((notify & ~all) != 0 || ((notify & HATO_DSN_NEVER) && notify != HATO_DSN_NEVER) ||
        (unsigned)ret > HATO_DSN_RET_HDRS || (envid != NULL && !envid_ok(envid)))
        return HATO_E_ARGUMENT;
    m->dsn_notify = notify;
    m->dsn_ret = ret;
    snprintf(m->dsn_envid, sizeof m->dsn_envid, "%s", envid ? envid : "");
    return HATO_OK;
}

hato_code hato_message_set_requiretls(hato_message *m, bool require)
{
    m->requiretls = require;
    return HATO_OK;
}

size_t hato_message_recipient_count(const hato_message *m)
{
    return m->nrcpts;
}

const char *hato_message_recipient(const hato_message *m, size_t i)
{
    return i < m->nrcpts ? m->rcpts[i].address : NULL;
}

int hato_message_recipient_reply(const hato_message *m, size_t i,
                                 const char **enhanced_code, const char **text)
{
    if (i >= m->nrcpts)
        return 0;
    if (enhanced_code)
        *enhanced_code = m->rcpts[i].enhanced;
    if (text)
        *text = m->rcpts[i].text;
    return m->rcpts[i].reply_code;
}

bool hato_message_sent(const hato_message *m)
{
    return m->sent;
}

void message_reset(hato_message *m)
{
    for (size_t i = 0; i < m->nrcpts; i++) {
        m->rcpts[i].reply_code = 0;
        m->rcpts[i].enhanced[0] = m->rcpts[i].text[0] = '\0';
    }
    m->content_pos = 0;
    m->sent = false;
    memset(&m->data_reply, 0, sizeof m->data_reply);
}

ptrdiff_t message_read(hato_message *m, char *dst, size_t cap)
{
    if (m->reader != NULL) {
        ptrdiff_t n = m->reader(m->reader_user, dst, cap);
        return n < 0 || (size_t)n > cap ? -1 : n;
    }
    size_t n = m->content_len - m->content_pos;
    if (n > cap)
        n = cap;
    if (n > 0)
        memcpy(dst, m->content + m->content_pos, n);
    m->content_pos += n;
    return (ptrdiff_t)n;
}

void message_record_rcpt(hato_message *m, size_t i, const reply *r)
{
    rcpt *rc = &m->rcpts[i];
    rc->reply_code = r->code;
    snprintf(rc->enhanced, sizeof rc->enhanced, "%s", r->enhanced);
    reply_join(r, rc->text, sizeof rc->text);
}

void message_record_data(hato_message *m, const reply *r)
{
    rcpt *d = &m->data_reply;
    d->reply_code = r->code;
    snprintf(d->enhanced, sizeof d->enhanced, "%s", r->enhanced);
    reply_join(r, d->text, sizeof d->text);
}

int hato_message_data_reply(const hato_message *m, const char **enhanced_code, const char **text)
{
    if (enhanced_code)
        *enhanced_code = m->data_reply.enhanced;
    if (text)
        *text = m->data_reply.text;
    return m->data_reply.reply_code;
}

size_t message_accepted(const hato_message *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        n += m->rcpts[i].reply_code / 100 == 2;
    return n;
}
