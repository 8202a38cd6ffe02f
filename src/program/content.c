/*
 * content.c - measuring a message as it streams into the spool.
 *
 * The size counts what the library's DATA encoder sends: a bare LF
 * becomes CRLF, a last line without an end is closed; dot-stuffing and
 * the final "." line are left out, as RFC 1870 section 3 says a SIZE=
 * value leaves them out.
 */
#include "content.h"

#include <stdio.h>

#include "queue.h"

void content_scan_init(struct content_scan *s)
{
    *s = (struct content_scan){.at_line_start = true};
}

/* One byte of the header section: its empty line ends it (LF or CRLF). */
static void header_byte(struct content_scan *s, unsigned char c)
{
    if (c == '\n') {
        if (s->at_line_start || s->empty_cr)
            s->in_body = true;
        s->empty_cr = false;
        return;
    }
    s->empty_cr = s->at_line_start && c == '\r';
    if (c > 127)
        s->header_8bit = true;
}

void content_scan_feed(struct content_scan *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!s->in_body)
            header_byte(s, c);
        else if (c > 127)
            s->body_8bit = true;
        s->wire_size += (c == '\n' && !s->after_cr) ? 2 : 1;
        s->after_cr = c == '\r';
        s->at_line_start = c == '\n';
    }
}

void content_scan_finish(struct content_scan *s)
{
    if (!s->at_line_start)
        s->wire_size += s->after_cr ? 1 : 2;
    s->at_line_start = true;
    s->after_cr = false;
}

void content_decide(const struct queue_entry *e, bool smtputf8_enable,
                    struct content_decision *out)
{
    *out = (struct content_decision){.body = e->body_request};
    /* UTF-8 in the header section is 8-bit content too: declared 7BIT, the
     * library refused the message mid-stream ("declared 7BIT but holds
     * 8-bit bytes", exit 70) even with SMTPUTF8 offered (Exim 4.96). */
    bool eight_bit = e->body_8bit || e->header_8bit;
    /* A file from before the scan: the library's own default, as then. */
    if (out->body == HATO_BODY_AUTO && e->scanned)
        out->body = eight_bit ? HATO_BODY_8BITMIME : HATO_BODY_7BIT;
    /* -B 7BIT on 8-bit content: what the body holds is declared, not what
     * was said of it (RFC 6152 forbids 8-bit bytes undeclared, and the
     * library refuses to send them so). */
    if (out->body == HATO_BODY_7BIT && e->scanned && eight_bit)
        out->body = HATO_BODY_8BITMIME;
    out->size_known = e->scanned;
    out->size = e->wire_size;
    out->smtputf8 = e->scanned && e->header_8bit && smtputf8_enable;
    out->dsn = e->dsn_notify != 0 || e->dsn_ret != HATO_DSN_RET_DEFAULT || e->dsn_envid[0] != '\0';
}

/* Appends one need to out; false once out is full. */
static bool add_need(char *out, size_t size, size_t *k, const char *need)
{
    if (*k >= size)
        return false;
    int n = snprintf(out + *k, size - *k, "%s%s", *k > 0 ? ", " : "; this message needs ", need);
    *k += n > 0 ? (size_t)n : 0;
    return true;
}

void content_explain(const struct queue_entry *e, hato_code rc, char *out, size_t size)
{
    size_t k = 0;
    out[0] = '\0';
    if (rc == HATO_E_TOO_BIG) {
        if (e->scanned)
            snprintf(out, size, "; the message is %llu bytes: send it in smaller parts, or ask "
                     "the relay's operator to raise its limit", e->wire_size);
        return;
    }
    if (rc != HATO_E_EXTENSION)
        return;
    if (e->body_request == HATO_BODY_8BITMIME && !e->body_8bit)
        add_need(out, size, &k, "8BITMIME (asked for with -B 8BITMIME, though the body is "
                                "7-bit: leave -B out)");
    else if (e->body_8bit)
        add_need(out, size, &k, "8BITMIME (its body holds 8-bit bytes: send it MIME-encoded, "
                                "as quoted-printable or base64)");
    if (e->header_8bit)
        add_need(out, size, &k, "SMTPUTF8 (its header section holds UTF-8; with "
                                "smtputf8_enable = no it goes undeclared)");
    if (e->requiretls)
        add_need(out, size, &k, "REQUIRETLS");
}
