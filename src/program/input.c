/*
 * input.c - the message from standard input: the dot filter, the header
 * section read whole (bounded by HEADERS_MAX_SECTION) with the headers hato
 * adds on top and Bcc removed, and the reader the library pulls the
 * message through.  The rest of the message is never held whole: it
 * streams in INPUT_CHUNK pieces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "headers.h"
#include "program.h"

/* ------------------------------------------------------------------ */
/* Input                                                              */

/* Up to cap bytes of standard input after the dot filter; 0 at the end
 * (or at a single-dot line without -i), -1 on a read error. */
static ptrdiff_t input_read(struct program *pg, char *out, size_t cap)
{
    for (;;) {
        if (pg->dot.ended)
            return 0;
        if (pg->raw_off == pg->raw_len) {
            if (pg->in_eof)
                return 0;
            ssize_t r = pg->in_read ? (ssize_t)pg->in_read(pg->in_user, pg->raw, sizeof pg->raw)
                                    : read(STDIN_FILENO, pg->raw, sizeof pg->raw);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                pg->in_errno = errno;
                return -1;
            }
            if (r == 0) {
                /* A "." held back at the very end was a final single-dot line. */
                pg->in_eof = true;
                return 0;
            }
            pg->raw_len = (size_t)r;
            pg->raw_off = 0;
        }
        size_t avail = pg->raw_len - pg->raw_off;
        if (!pg->args.dot_ends) {
            size_t n = avail < cap ? avail : cap;
            memcpy(out, pg->raw + pg->raw_off, n);
            pg->raw_off += n;
            return (ptrdiff_t)n;
        }
        size_t used;
        size_t n = headers_dot_filter(&pg->dot, pg->raw + pg->raw_off, avail, &used, out, cap);
        pg->raw_off += used;
        if (n > 0)
            return (ptrdiff_t)n;
    }
}

/* The library's reader: head, then what was read past the header
 * section, then the rest of standard input. */
ptrdiff_t body_reader(void *user, char *buf, size_t cap)
{
    struct program *pg = user;
    size_t n = 0;
    if (pg->head_off < pg->head_len) {
        n = pg->head_len - pg->head_off;
        if (n > cap)
            n = cap;
        memcpy(buf, pg->head + pg->head_off, n);
        pg->head_off += n;
    } else if (pg->rest_off < pg->hbuf_len) {
        n = pg->hbuf_len - pg->rest_off;
        if (n > cap)
            n = cap;
        memcpy(buf, pg->hbuf + pg->rest_off, n);
        pg->rest_off += n;
    } else {
        ptrdiff_t r = input_read(pg, buf, cap);
        if (r < 0)
            return -1;
        n = (size_t)r;
    }
    pg->size += n;
    return (ptrdiff_t)n;
}

/* ------------------------------------------------------------------ */
/* The header section                                                 */

/* Reads the header section into hbuf (with -t, its recipients too) and
 * builds head; returns an exit code. */
int read_header_section(struct program *pg)
{
    size_t cap = 0;
    bool eof = false, need_sep = false;
    size_t hlen = 0;
    /* The end is looked for again only when a line was completed (or the
     * input ended), from the first line not yet decided: standard input
     * that comes a few bytes per read(2) -- or -bs's DATA in small
     * segments -- once cost a scan of the whole section per read. */
    size_t scanned = 0;
    bool look = false;

    for (;;) {
        if (look && pg->hbuf_len > 0 &&
            headers_find_end_from(pg->hbuf, pg->hbuf_len, eof, &scanned, &hlen, &need_sep))
            break;
        if (eof) { /* empty input */
            hlen = 0;
            break;
        }
        if (pg->hbuf_len >= HEADERS_MAX_SECTION) {
            say("the message's header section is larger than %u bytes; is the input a mail message? "
                "(the header section ends at the first empty line)", HEADERS_MAX_SECTION);
            return EX_DATAERR;
        }
        if (cap - pg->hbuf_len < INPUT_CHUNK / 4) {
            size_t ncap = cap ? cap * 2 : INPUT_CHUNK;
            if (ncap > HEADERS_MAX_SECTION + INPUT_CHUNK)
                ncap = HEADERS_MAX_SECTION + INPUT_CHUNK;
            char *nb = realloc(pg->hbuf, ncap);
            if (nb == NULL) {
                say("out of memory reading the message's header section");
                return EX_TEMPFAIL;
            }
            pg->hbuf = nb;
            cap = ncap;
        }
        ptrdiff_t r = input_read(pg, pg->hbuf + pg->hbuf_len, cap - pg->hbuf_len);
        if (r < 0) {
            say("cannot read the message from standard input: %s", strerror(pg->in_errno));
            return EX_IOERR;
        }
        if (r == 0)
            eof = true;
        look = eof || memchr(pg->hbuf + pg->hbuf_len, '\n', (size_t)r) != NULL;
        pg->hbuf_len += (size_t)r;
    }

    struct headers_info info;
    headers_scan(pg->hbuf, hlen, &info);
    const char *eol = info.crlf ? "\r\n" : "\n";

    if (pg->args.extract) {
        int rc = headers_extract_recipients(pg->hbuf, hlen, add_rcpt, pg);
        if (rc != 0) {
            say("out of memory reading recipients from the message's header section");
            return EX_TEMPFAIL;
        }
    }

    /* What hato adds goes on top, as Postfix's cleanup does. */
    char date[128] = "", msgid[600] = "", from[2048] = "";
    time_t now = time(NULL);
    if (!info.has_date && headers_format_date(date, sizeof date, now, eol) == 0)
        date[0] = '\0';
    if (!info.has_message_id) {
        unsigned long long rnd = 0;
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &rnd, sizeof rnd) != (ssize_t)sizeof rnd)
            rnd = (unsigned long long)pg->start.tv_usec * 2654435761u ^ (unsigned long long)getpid();
        if (fd >= 0)
            close(fd);
        headers_format_message_id(msgid, sizeof msgid, now, getpid(), rnd, pg->cfg.myhostname, eol);
    }
    if (!info.has_from) {
        const char *display = pg->args.full_name ? pg->args.full_name : pg->gecos_name;
        char *addr = envelope_from_address(pg);
        if (addr == NULL)
            return EX_TEMPFAIL;
        if (headers_format_from(from, sizeof from, display, addr, eol) == 0)
            headers_format_from(from, sizeof from, NULL, addr, eol);
        free(addr);
    }
    /* The original fields, Bcc and Resent-Bcc removed and the sender's
     * addresses rewritten (envelope.c). */
    char *fields;
    size_t flen;
    if (envelope_edit_header(pg, pg->hbuf, hlen, &fields, &flen) != 0) {
        say("out of memory for the message's header section");
        return EX_TEMPFAIL;
    }
    size_t added = strlen(date) + strlen(msgid) + strlen(from);
    pg->head = malloc(added + flen + 3);
    if (pg->head == NULL) {
        free(fields);
        say("out of memory for the message's header section");
        return EX_TEMPFAIL;
    }
    size_t k = (size_t)snprintf(pg->head, added + 1, "%s%s%s", date, msgid, from);
    memcpy(pg->head + k, fields, flen);
    k += flen;
    free(fields);
    if (need_sep) {
        memcpy(pg->head + k, eol, strlen(eol));
        k += strlen(eol);
    }
    pg->head_len = k;
    pg->rest_off = hlen;
    return EX_OK;
}
