/*
 * dsn.c - building a non-delivery report.
 *
 * Layout after Postfix's bounce(8) messages, fields after RFC 3464:
 * a text/plain part a person reads (each failed recipient with the
 * server's reply), a message/delivery-status part (Reporting-MTA,
 * Arrival-Date; per recipient Final-Recipient, Action: failed, Status,
 * Remote-MTA, Diagnostic-Code, Last-Attempt-Date) and the original header
 * section as text/rfc822-headers (RFC 6522).  The report is sent from the
 * null sender, so it can never cause another report (RFC 5321 section
 * 4.5.5).  Everything it copies from a server or the message is cut to
 * printable ASCII; header section excepted, which is copied as it was.
 */
#include "dsn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "headers.h"
#include "text.h"

static void add(struct text_buf *b, const char *s)
{
    text_buf_add(b, s, strlen(s));
}

static void addf(struct text_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void addf(struct text_buf *b, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    text_buf_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* An RFC 5322 date-time (the value of a Date: field). */
static void date_value(char *out, size_t size, time_t t)
{
    char d[128];
    if (headers_format_date(d, sizeof d, t, "") == 0)
        snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
    else
        snprintf(out, size, "%s", d + 6); /* after "Date: " */
}

/* Printable ASCII only: a server's text or an address goes into header
 * fields and a us-ascii part. */
static void clean(char *out, size_t size, const char *s)
{
    size_t k = 0;
    for (; s != NULL && *s != '\0' && k + 1 < size; s++)
        out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    out[k] = '\0';
}

static bool is_smtp_reply(const char *s)
{
    return s != NULL && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
           s[2] >= '0' && s[2] <= '9' && (s[3] == ' ' || s[3] == '\0');
}

bool dsn_failure_wanted(const struct queue_entry *e)
{
    return e->dsn_notify == 0 || (e->dsn_notify & HATO_DSN_FAILURE) != 0;
}

/* hato hands the relay an ORCPT for every recipient exactly when the
 * sender asked for a DSN (send.c); its own report then carries the same
 * Original-Recipient, and never otherwise (RFC 3461 section 6.3 (c)). */
static bool orcpt_supplied(const struct queue_entry *e)
{
    return e->dsn_notify != 0 || e->dsn_ret != HATO_DSN_RET_DEFAULT || e->dsn_envid[0] != '\0';
}

/* RET=FULL is honoured when the whole message is small and 7-bit: the
 * report is declared 7bit, and a message/rfc822 part may not hold 8-bit
 * bytes in it (RFC 2046 section 5.2.1). */
static bool return_full(const struct queue_entry *e)
{
    return e->dsn_ret == HATO_DSN_RET_FULL && e->scanned && !e->body_8bit && !e->header_8bit &&
           e->size <= (off_t)DSN_MAX_FULL;
}

/* The whole message, line ends as LF, for RET=FULL. */
static int read_message(const struct queue_entry *e, struct text_buf *b)
{
    char buf[8192];
    off_t off = e->body_offset, end = e->body_offset + e->size;
    while (off < end) {
        size_t want = (size_t)(end - off) < sizeof buf ? (size_t)(end - off) : sizeof buf;
        ssize_t r = pread(e->fd, buf, want, off);
        if (r <= 0)
            return -1;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != '\r')
                text_buf_add(b, &buf[i], 1);
        off += r;
    }
    if (b->len > 0 && b->s[b->len - 1] != '\n')
        add(b, "\n");
    return 0;
}

/* The original header section, up to its empty line or DSN_MAX_HEADERS. */
static int read_headers(const struct queue_entry *e, struct text_buf *b)
{
    char buf[8192];
    off_t off = e->body_offset;
    size_t total = 0;
    int state = 1; /* 1: at a line start */
    while (total < DSN_MAX_HEADERS) {
        ssize_t r = pread(e->fd, buf, sizeof buf, off);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        size_t n = (size_t)r, keep = 0;
        bool end = false;
        for (; keep < n; keep++) {
            char c = buf[keep];
            if (state == 1 && (c == '\n' || c == '\r')) {
                end = true; /* the empty line */
                break;
            }
            state = c == '\n';
        }
        if (total + keep > DSN_MAX_HEADERS)
            keep = DSN_MAX_HEADERS - total;
        /* Line ends as LF: the library sends CRLF either way, and a lone
         * CR would be a bare CR on the wire. */
        for (size_t i = 0; i < keep; i++)
            if (buf[i] != '\r')
                text_buf_add(b, &buf[i], 1);
        total += keep;
        off += r;
        if (end)
            break;
    }
    if (b->len > 0 && b->s[b->len - 1] != '\n')
        add(b, "\n");
    return 0;
}

int dsn_build(const struct dsn_input *in, char **out, size_t *len)
{
    const struct queue_entry *e = in->e;
    struct text_buf b = {0};
    char now[128], arrival[128], last[128], boundary[160], sender[1024];

    *out = NULL;
    *len = 0;
    date_value(now, sizeof now, in->now);
    date_value(arrival, sizeof arrival, (time_t)e->arrival_sec);
    date_value(last, sizeof last, e->last_attempt ? (time_t)e->last_attempt : in->now);
    snprintf(boundary, sizeof boundary, "%s.%lld/%s", e->id, (long long)in->now, in->myhostname);
    clean(sender, sizeof sender, e->sender);

    unsigned long long rnd = ((unsigned long long)in->now << 20) ^ (unsigned long long)getpid();
    char msgid[600];
    headers_format_message_id(msgid, sizeof msgid, in->now, getpid(), rnd, in->myhostname, "\n");

    addf(&b, "Date: %s\n", now);
    addf(&b, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", in->myhostname);
    addf(&b, "To: %s\n", sender);
    add(&b, "Subject: Undelivered Mail Returned to Sender\n");
    add(&b, msgid);
    add(&b, "Auto-Submitted: auto-replied\n");
    add(&b, "MIME-Version: 1.0\n");
    addf(&b, "Content-Type: multipart/report; report-type=delivery-status;\n"
             "\tboundary=\"%s\"\n", boundary);
    add(&b, "Content-Transfer-Encoding: 7bit\n");
    add(&b, "\nThis is a MIME-encapsulated message.\n\n");

    /* 1: for a person. */
    addf(&b, "--%s\n", boundary);
    add(&b, "Content-Description: Notification\n"
            "Content-Type: text/plain; charset=us-ascii\n\n");
    addf(&b, "This is the mail system at host %s.\n\n", in->myhostname);
    if (in->expired)
        add(&b, "Your message could not be delivered to one or more recipients: it expired\n"
                "in the queue (maximal_queue_lifetime) before the relay took it, and hato\n"
                "gives up.  The last error for each recipient follows.\n");
    else
        add(&b, "Your message could not be delivered to one or more recipients: the relay\n"
                "refused them permanently, or cannot take the message as it is.\n");
    bool full = return_full(e);
    if (full)
        add(&b, "It is attached below.\n");
    else if (e->dsn_ret == HATO_DSN_RET_FULL)
        addf(&b, "Its headers are attached below; the whole message was asked for, but it is\n"
                 "larger than %u bytes or holds 8-bit data, which this report does not carry.\n",
             DSN_MAX_FULL);
    else
        add(&b, "Its headers are attached below.\n");
    addf(&b, "The queue id of the message was %s.\n\n", e->id);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct queue_rcpt *r = &e->rcpts[i];
        if (!r->fresh_bounce)
            continue;
        char a[1024], why[1200];
        clean(a, sizeof a, r->address);
        clean(why, sizeof why, r->reply ? r->reply : e->error ? e->error : "no reason recorded");
        if (in->relay != NULL && is_smtp_reply(why))
            addf(&b, "<%s>: host %s said:\n", a, in->relay);
        else
            addf(&b, "<%s>:\n", a);
        addf(&b, "    %s\n\n", why);
    }

    /* 2: for programs (RFC 3464). */
    addf(&b, "--%s\n", boundary);
    add(&b, "Content-Description: Delivery report\n"
            "Content-Type: message/delivery-status\n\n");
    if (e->dsn_envid[0] != '\0') /* RFC 3464 2.2.1: first, as the sender gave it */
        addf(&b, "Original-Envelope-Id: %s\n", e->dsn_envid);
    addf(&b, "Reporting-MTA: dns; %s\n", in->myhostname);
    addf(&b, "X-Hato-Queue-ID: %s\n", e->id);
    if (e->sender[0] != '\0')
        addf(&b, "X-Hato-Sender: rfc822; %s\n", sender);
    addf(&b, "Arrival-Date: %s\n", arrival);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct queue_rcpt *r = &e->rcpts[i];
        if (!r->fresh_bounce)
            continue;
        char a[1024], why[1200];
        clean(a, sizeof a, r->address);
        const char *reason = r->reply ? r->reply : e->error ? e->error : "no reason recorded";
        clean(why, sizeof why, reason);
        const char *status = r->dsn[0] ? r->dsn : in->expired ? "4.4.7" : "5.0.0";
        add(&b, "\n");
        if (orcpt_supplied(e)) /* RFC 3464 2.3.1: the ORCPT the relay was given */
            addf(&b, "Original-Recipient: rfc822; %s\n", a);
        addf(&b, "Final-Recipient: rfc822; %s\n", a);
        add(&b, "Action: failed\n");
        addf(&b, "Status: %s\n", status);
        if (in->relay != NULL) {
            char relay[300];
            clean(relay, sizeof relay, in->relay);
            /* "host[address]:port" -> the host name alone. */
            relay[strcspn(relay, "[:")] = '\0';
            addf(&b, "Remote-MTA: dns; %s\n", relay);
        }
        addf(&b, "Diagnostic-Code: %s; %s\n", is_smtp_reply(why) ? "smtp" : "X-Hato", why);
        addf(&b, "Last-Attempt-Date: %s\n", last);
    }
    add(&b, "\n");

    /* 3: the message (RET=FULL) or its header section (RFC 6522
     * text/rfc822-headers: RET=HDRS, and the default). */
    addf(&b, "--%s\n", boundary);
    if (full)
        add(&b, "Content-Description: Undelivered Message\n"
                "Content-Type: message/rfc822\n\n");
    else
        add(&b, "Content-Description: Undelivered Message Headers\n"
                "Content-Type: text/rfc822-headers\n\n");
    if ((full ? read_message(e, &b) : read_headers(e, &b)) != 0) {
        free(b.s);
        return -1;
    }
    addf(&b, "\n--%s--\n", boundary);
    if (b.failed) {
        free(b.s);
        return -1;
    }
    *out = b.s;
    *len = b.len;
    return 0;
}
