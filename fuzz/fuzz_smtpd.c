/*
 * fuzz_smtpd - hato's LAN submission server (src/program/smtpd.c, hato
 * -bs), which reads commands from any host in mynetworks: the command
 * parser, the session's state machine, AUTH PLAIN/LOGIN with base64, the
 * DATA decoder, and the password-file check.
 *
 * Input: byte 0 sets the session up (bit 0 AUTH offered, bit 1 AUTH
 * required, bit 2 refused client, bit 3 a size limit, bit 4 error and
 * message limits), then the client's bytes.  They are cut into lines as
 * smtpd_run() does (at LF, a CR before it dropped, longer than
 * SMTPD_MAX_LINE flagged too long); after 354 the bytes go through the
 * DATA decoder until its end line.  The output is taken after each line,
 * as the loop writes it.  Checked: the output stays in its buffer and is
 * made of CRLF-terminated reply lines with a 3-digit code, no line is
 * consumed twice, and nothing follows a close.
 */
#include "fuzz.h"
#include "smtpd.h"

/* "alice" with password "secret", md5-crypt: cheap enough per input. */
static const char password_file[] =
    "# users\n\nbob:*\nalice:$1$fuzzsalt$ld45C3N68bCQn5ZIlNntP/\n";

static const char *on_mail(void *user, const char *sender)
{
    (void)user;
    return strcmp(sender, "refused@example.org") == 0 ? "553 5.7.1 sender refused" : NULL;
}

static const char *on_rcpt(void *user, const char *rcpt)
{
    (void)user;
    if (strlen(rcpt) > SMTPD_MAX_PATH)
        abort();
    return strchr(rcpt, '@') == NULL ? "550 5.1.1 no such user" : NULL;
}

static void on_reset(void *user) { (void)user; }

static void on_refused(void *user, const char *command, const char *reply)
{
    (void)user;
    if (command == NULL || reply == NULL || (reply[0] != '4' && reply[0] != '5'))
        abort();
}

static void on_trace(void *user, enum smtpd_state from, enum smtpd_state to)
{
    (void)user;
    if (from >= SMTPD_STATE_COUNT_ || to >= SMTPD_STATE_COUNT_)
        abort();
    (void)smtpd_state_name(to);
}

static enum smtpd_auth_result on_auth(void *user, const char *name, const char *password)
{
    (void)user;
    if (strlen(name) > SMTPD_MAX_USER)
        abort();
    return smtpd_password_check(password_file, sizeof password_file - 1, name, password);
}

/* The replies written since the last call: whole lines, each "ddd" then
 * ' ' or '-', CRLF at the end. */
static void take_output(struct smtpd *s)
{
    if (s->out_len > sizeof s->out)
        abort();
    size_t i = 0;
    while (i < s->out_len) {
        const char *line = s->out + i;
        const char *end = memchr(line, '\n', s->out_len - i);
        if (end == NULL || end == line || end[-1] != '\r')
            abort();
        size_t n = (size_t)(end - line) + 1;
        if (n < 5 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-' && line[3] != '\r'))
            abort();
        i += n;
    }
    s->out_len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t setup = data[0];
    const char *in = (const char *)data + 1;
    size_t left = size - 1;
    struct smtpd s;
    memset(&s, 0, sizeof s);
    s.hooks = (struct smtpd_hooks){on_mail, on_rcpt, on_reset, on_refused, on_trace, on_auth, NULL};
    s.hostname = "mail.example.org";
    snprintf(s.client, sizeof s.client, "[192.0.2.1]");
    s.auth_offered = setup & 1;
    s.auth_required = setup & 2;
    s.size_limit = setup & 8 ? 1000 : 0;
    s.error_limit = setup & 16 ? 3 : 0;
    s.message_limit = setup & 16 ? 2 : 0;
    smtpd_start(&s, setup & 4, "client [192.0.2.1] is not in mynetworks");
    take_output(&s);

    enum smtpd_action act = SMTPD_CONTINUE;
    while (left > 0 && act != SMTPD_CLOSE) {
        if (act == SMTPD_RECEIVE) {
            struct smtpd_data d = {0};
            char out[64];
            size_t total = 0;
            while (left > 0 && !d.ended) {
                size_t used = 0;
                size_t w = smtpd_data_decode(&d, in, left, &used, out, sizeof out);
                if (w > sizeof out || used > left || (used == 0 && w == 0))
                    abort();
                total += w;
                in += used;
                left -= used;
            }
            if (!d.ended)
                break; /* the client went away inside the message */
            smtpd_data_done(&s, total > 500 && (setup & 8) ? "552 5.3.4 too big"
                                                           : "250 2.0.0 queued as 0123456789ABCDE");
            take_output(&s);
            act = SMTPD_CONTINUE;
            continue;
        }
        const char *nl = memchr(in, '\n', left);
        if (nl == NULL)
            break; /* an unfinished line at the end: the loop waits, then times out */
        size_t n = (size_t)(nl - in);
        size_t consumed = n + 1;
        if (n > 0 && in[n - 1] == '\r')
            n--;
        bool too_long = consumed > SMTPD_MAX_LINE;
        act = smtpd_line(&s, in, too_long ? 0 : n, too_long);
        take_output(&s);
        in += consumed;
        left -= consumed;
        if (!too_long) {
            struct smtpd_command c; /* the parser alone, on every line */
            smtpd_parse(in - consumed, n, &c);
        }
    }
    if (act != SMTPD_CLOSE) {
        smtpd_timed_out(&s);
        take_output(&s);
        if (s.state != SMTPD_CLOSED)
            abort();
    }

    /* The base64 decoder alone on the whole input, into a small and a
     * large buffer. */
    unsigned char small[4], large[512];
    ptrdiff_t k = smtpd_base64_decode((const char *)data, size, small, sizeof small);
    if (k > (ptrdiff_t)sizeof small)
        abort();
    k = smtpd_base64_decode((const char *)data, size < 600 ? size : 600, large, sizeof large);
    if (k > (ptrdiff_t)sizeof large)
        abort();
    return 0;
}
