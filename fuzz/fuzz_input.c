/*
 * fuzz_input - the program's message input path: standard input through
 * the single-dot filter, the header section read whole with the headers
 * hato adds and Bcc removed (src/program/input.c, read_header_section and
 * body_reader), and the content measured as it is spooled
 * (src/program/content.c).
 *
 * Input: six option bytes, then standard input.
 *   [0] bit 0 -i (no single-dot end), bit 1 -t, bit 2 a read error at
 *       byte [3..4] (big-endian, modulo the input's length + 1), bit 3
 *       that error is EINTR (retried, not an error) instead of EIO, bit 4
 *       -F: the full name is the input up to FUZZ_SEP, bit 5 a generated
 *       header section of nearly HEADERS_MAX_SECTION bytes goes first
 *       ([5] >> 2 says how many 4-byte steps short), bit 6
 *       smtputf8_enable, bit 7 REQUIRETLS asked for
 *   [1] the largest piece a read(2) of standard input returns (0: a whole
 *       INPUT_CHUNK); the sizes vary from read to read
 *   [2] the largest cap body_reader is called with (0: QUEUE_MAX_LINE, as
 *       queue_write does); the caps vary from call to call
 *   [5] bits 0-1: -B (none, 7BIT, 8BITMIME) or a queue file of hato 0.3,
 *       never measured
 * Standard input reaches the program through its in_read hook, so every
 * split point of the reads is exercised, and EOF and the error come as
 * read(2) gives them.
 *
 * Checked against a model written here from the documented behaviour, not
 * from the code: the dot filter (a line holding only "." ends the input, a
 * "." or ".\r" held back at the end is dropped); the exit code of
 * read_header_section (a section whose end is known within
 * HEADERS_MAX_SECTION bytes is read, a read error before its end is
 * EX_IOERR, every failure says why); then the reader's whole output, byte
 * for byte: the added Date, Message-ID and From fields (From folded when
 * its name is long; every line in the section's line ending and within
 * 998 characters), the section with exactly its Bcc and
 * Resent-Bcc fields gone, the separator when one is needed, the rest of
 * the input unchanged, and -1 with the errno kept exactly when the error
 * was reached.  Standard input is never read again after EOF or an error.
 * With -t, the recipients are the section's addresses, qualified.  The
 * content scan gives the same result fed in the reader's pieces, whole
 * and byte by byte; its size is what the library's encoder sends (BDAT:
 * line ends made CRLF, the last line closed); its 8-bit flags split at the
 * first empty line; content_decide never declares 7BIT for 8-bit content
 * and content_explain stays within its buffer.
 */
#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <sysexits.h>

#include "content.h"
#include "fuzz.h"
#include "headers.h"
#include "message/body.h"
#include "program.h"
#include "queue.h"

/* ------------------------------------------------------------------ */
/* What the program's other files would provide                       */

static unsigned said;
static char last_said[2048];

void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_said, sizeof last_said, fmt, ap);
    va_end(ap);
    said++;
}

/* ------------------------------------------------------------------ */
/* Standard input                                                     */

/* xorshift32: the piece sizes and caps, from the option bytes. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

struct feed {
    const char *data;
    size_t len, pos;
    size_t max_piece;
    uint32_t rng;
    bool fail;          /* a read(2) error at err_at */
    int err_no;
    size_t err_at;
    bool failed, eof;
};

static ptrdiff_t feed_read(void *user, char *buf, size_t cap)
{
    struct feed *f = user;
    /* Read after EOF: on a terminal that waits for a second ^D; after an
     * error the program has given up. */
    if (f->eof || (f->failed && f->err_no != EINTR))
        abort();
    if (f->fail && !f->failed && f->pos == f->err_at) {
        f->failed = true;
        errno = f->err_no;
        return -1;
    }
    size_t end = f->fail && !f->failed ? f->err_at : f->len;
    size_t n = end - f->pos;
    if (n == 0) {
        f->eof = true;
        return 0;
    }
    size_t piece = 1 + next_rand(&f->rng) % f->max_piece;
    if (n > piece)
        n = piece;
    if (n > cap)
        n = cap;
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    return (ptrdiff_t)n;
}

/* ------------------------------------------------------------------ */
/* The models                                                         */

/* sendmail's input without -i: in[0..n) up to the first line that holds
 * only "." (LF or CRLF); a last line "." or ".\r" without its LF is held
 * back, undecided, and so never part of the message.  Returns the length
 * copied into out; *ended when the dot line was seen. */
static size_t dot_model(const char *in, size_t n, char *out, bool *ended)
{
    size_t pos = 0, o = 0;
    *ended = false;
    while (pos < n) {
        const char *nl = memchr(in + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (in + pos)) + 1 : n - pos;
        const char *l = in + pos;
        size_t body = nl ? len - 1 : len; /* without the LF */
        if (l[0] == '.' && (body == 1 || (body == 2 && l[1] == '\r'))) {
            *ended = nl != NULL;
            break;
        }
        memcpy(out + o, l, len);
        o += len;
        pos += len;
    }
    return o;
}

/* The name of a header field line (RFC 5322 2.2, obsolete white space
 * before the colon allowed), or 0 when the line starts no field. */
static size_t field_name(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && l[i] >= 33 && l[i] <= 126 && l[i] != ':')
        i++;
    size_t name = i;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    return name > 0 && i < n && l[i] == ':' ? name : 0;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    if (strlen(name) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != name[i])
            return false;
    }
    return true;
}

/* The header section h[0..n) as sent: every Bcc and Resent-Bcc field,
 * its continuation lines (starting with white space) too, left out. */
static size_t bcc_model(const char *h, size_t n, char *out)
{
    size_t pos = 0, o = 0;
    bool drop = false;
    while (pos < n) {
        const char *nl = memchr(h + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (h + pos)) + 1 : n - pos;
        const char *l = h + pos;
        if (l[0] != ' ' && l[0] != '\t') {
            size_t k = field_name(l, len);
            drop = name_is(l, k, "bcc") || name_is(l, k, "resent-bcc");
        }
        if (!drop) {
            memcpy(out + o, l, len);
            o += len;
        }
        pos += len;
    }
    return o;
}

static bool has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 127)
            return true;
    return false;
}

/* Where the first empty line ("\n" or "\r\n" alone) starts in s[0..n),
 * or n. */
static size_t first_empty_line(const char *s, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (s + pos)) + 1;
        if (len == 1 || (len == 2 && s[pos] == '\r'))
            return pos;
        pos += len;
    }
    return n;
}

/* One added field at out[*at]: starts with prefix; each of its lines (the
 * first, then any folded ones, which start with a space) ends with eol,
 * holds no other CR or LF and at most 998 characters (RFC 5322 2.1.1). */
static void added_line(const char *out, size_t len, size_t *at, const char *prefix,
                       const char *eol)
{
    size_t p = strlen(prefix), e = strlen(eol);
    if (len - *at < p || memcmp(out + *at, prefix, p) != 0)
        abort();
    do {
        const char *nl = memchr(out + *at, '\n', len - *at);
        if (nl == NULL)
            abort();
        size_t end = (size_t)(nl - out) + 1;
        if (end - *at < e || memcmp(out + end - e, eol, e) != 0)
            abort();
        if (memchr(out + *at, '\r', end - e - *at) != NULL) /* no header injection */
            abort();
        if (end - e - *at > 998)
            abort();
        if (has_8bit(out + *at, end - *at)) /* a display name is RFC 2047-encoded */
            abort();
        *at = end;
    } while (*at < len && out[*at] == ' ');
}

static bool same_scan(const struct content_scan *a, const struct content_scan *b)
{
    return a->wire_size == b->wire_size && a->header_8bit == b->header_8bit &&
           a->body_8bit == b->body_8bit && a->in_body == b->in_body;
}

static int count_address(void *user, const char *address)
{
    (void)address;
    (*(size_t *)user)++;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The harness                                                        */

#define OPTION_BYTES 6

static char *pad;
static const size_t pad_max = HEADERS_MAX_SECTION;

/* A header section of HEADERS_MAX_SECTION bytes in 100-byte fields; a
 * prefix of it, its last field cut short, is put before the input. */
static size_t make_pad(size_t want, char *dst)
{
    size_t at = 0;
    while (at < want) {
        size_t line = want - at >= 200 ? 100 : want - at;
        memcpy(dst + at, "X-Pad: ", 7);
        memset(dst + at + 7, 'p', line - 8);
        dst[at + line - 1] = '\n';
        at += line;
    }
    return at;
}

struct outcome {
    char *out;
    size_t len, cap;
    bool error;
};

static void append(struct outcome *o, const char *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 65536;
        while (ncap < o->len + n)
            ncap *= 2;
        o->out = realloc(o->out, ncap);
        if (o->out == NULL)
            abort();
        o->cap = ncap;
    }
    memcpy(o->out + o->len, p, n);
    o->len += n;
}

static void check_content(const struct outcome *r, const uint8_t *opt,
                          const struct content_scan *pieces, unsigned long long encoded)
{
    struct content_scan whole, bytes;
    content_scan_init(&whole);
    content_scan_feed(&whole, r->out, r->len);
    content_scan_finish(&whole);
    content_scan_init(&bytes);
    for (size_t i = 0; i < r->len; i++)
        content_scan_feed(&bytes, r->out + i, 1);
    content_scan_finish(&bytes);
    if (!same_scan(&whole, pieces) || !same_scan(&whole, &bytes))
        abort(); /* cut at any point */
    /* The size is what the library sends in BDAT chunks (BODY_CHUNK: bare
     * LF made CRLF, a last line closed, nothing stuffed). */
    if (whole.wire_size != encoded)
        abort();
    size_t hend = first_empty_line(r->out, r->len);
    if (whole.header_8bit != has_8bit(r->out, hend) ||
        whole.body_8bit != has_8bit(r->out + hend, r->len - hend))
        abort();

    /* What the spool tells the library at each attempt. */
    static const hato_body requests[4] = {HATO_BODY_AUTO, HATO_BODY_7BIT, HATO_BODY_8BITMIME,
                                          HATO_BODY_AUTO};
    struct queue_entry e;
    memset(&e, 0, sizeof e);
    e.body_request = requests[opt[5] & 3];
    e.scanned = (opt[5] & 3) != 3;
    e.requiretls = opt[0] & 0x80;
    if (e.scanned) {
        e.wire_size = whole.wire_size;
        e.body_8bit = whole.body_8bit;
        e.header_8bit = whole.header_8bit;
    }
    bool smtputf8_enable = opt[0] & 0x40;
    struct content_decision d;
    content_decide(&e, smtputf8_enable, &d);
    bool eight = e.body_8bit || e.header_8bit;
    if (d.size_known != e.scanned || (e.scanned && d.size != whole.wire_size) || d.dsn)
        abort();
    /* 8-bit content declared 7BIT: the library refuses it mid-stream. */
    if (eight && d.body != HATO_BODY_8BITMIME)
        abort();
    if (!eight && d.body != (e.body_request == HATO_BODY_AUTO && e.scanned ? HATO_BODY_7BIT
                                                                           : e.body_request))
        abort();
    if (d.smtputf8 != (e.header_8bit && smtputf8_enable))
        abort();

    /* The explanation in buffers of every size up to one that holds it all:
     * exactly that size, so ASan sees a write past it. */
    size_t size = 1 + opt[2] % 160;
    static const hato_code codes[3] = {HATO_E_TOO_BIG, HATO_E_EXTENSION, HATO_E_BODY};
    for (int i = 0; i < 3; i++) {
        for (size_t sz = size; sz <= 512; sz = sz < 512 ? 512 : 513) {
            char *buf = malloc(sz);
            if (buf == NULL)
                abort();
            content_explain(&e, codes[i], buf, sz);
            size_t n = strnlen(buf, sz);
            if (n == sz)
                abort();
            if (sz == 512) {
                bool expect = codes[i] == HATO_E_TOO_BIG ? e.scanned
                              : codes[i] == HATO_E_EXTENSION
                                  ? e.body_8bit || e.header_8bit || e.requiretls ||
                                        e.body_request == HATO_BODY_8BITMIME
                                  : false;
                if ((n > 0) != expect || (n > 0 && buf[0] != ';'))
                    abort();
                if (codes[i] == HATO_E_TOO_BIG && e.scanned) {
                    char num[32];
                    snprintf(num, sizeof num, " %llu bytes", e.wire_size);
                    if (strstr(buf, num) == NULL)
                        abort();
                }
            }
            free(buf);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < OPTION_BYTES)
        return 0;
    uint8_t opt[OPTION_BYTES];
    memcpy(opt, data, OPTION_BYTES);
    data += OPTION_BYTES;
    size -= OPTION_BYTES;
    bool dot_ends = !(opt[0] & 1), extract = opt[0] & 2;
    char *full_name = NULL;
    if (opt[0] & 0x10) {
        const char *fn;
        size_t fnlen;
        fuzz_part(&data, &size, &fn, &fnlen);
        full_name = fuzz_strndup(fn, fnlen); /* an argument: up to its first NUL */
    }

    /* Standard input: the padding, then the rest of the input. */
    size_t padlen = 0;
    if (opt[0] & 0x20) {
        if (pad == NULL) {
            pad = malloc(pad_max);
            if (pad == NULL)
                abort();
        }
        padlen = make_pad(pad_max - 4 * (size_t)(opt[5] >> 2), pad);
    }
    size_t total = padlen + size;
    char *in = malloc(total ? total : 1);
    if (in == NULL)
        abort();
    if (padlen > 0)
        memcpy(in, pad, padlen);
    if (size > 0)
        memcpy(in + padlen, data, size);

    /* The padding comes in pieces 256 times larger: a megabyte a few bytes
     * per read is a slow unit, not a new path. */
    size_t max_piece = opt[1] ? opt[1] : INPUT_CHUNK;
    if (padlen > 0 && opt[1] != 0)
        max_piece *= 256;
    struct feed f = {.data = in, .len = total, .max_piece = max_piece,
                     .rng = ((uint32_t)opt[1] << 24) ^ ((uint32_t)opt[3] << 8) ^ opt[4] ^ 0x5bd1e995u};
    f.fail = opt[0] & 4;
    f.err_no = opt[0] & 8 ? EINTR : EIO;
    f.err_at = padlen + (((size_t)opt[3] << 8 | opt[4]) % (size + 1));

    /* The model: the message as the program must see it. */
    bool real_error = f.fail && f.err_no != EINTR;
    size_t upto = real_error ? f.err_at : total;
    char *g = malloc(upto ? upto : 1);
    if (g == NULL)
        abort();
    bool ended = false;
    size_t glen;
    if (dot_ends) {
        glen = dot_model(in, upto, g, &ended);
    } else {
        memcpy(g, in, upto);
        glen = upto;
    }
    bool error_seen = real_error && !ended;

    static char *mydestination[] = {"example.org", "localhost"};
    static char gecos[] = "Cron Daemon";
    struct program *pg = calloc(1, sizeof *pg);
    if (pg == NULL)
        abort();
    pg->args.dot_ends = dot_ends;
    pg->args.extract = extract;
    pg->args.full_name = full_name;
    pg->cfg.myhostname = "host.example.org";
    pg->cfg.myorigin = "example.org";
    pg->cfg.mydestination = mydestination;
    pg->cfg.nmydestination = 2;
    pg->user = "user";
    pg->gecos_name = gecos;
    pg->sender = strdup("user@example.org");
    if (pg->sender == NULL)
        abort();
    pg->in_read = feed_read;
    pg->in_user = &f;

    said = 0;
    last_said[0] = '\0';
    int ex = read_header_section(pg);

    /* The exit code the model expects. */
    size_t lim = glen < HEADERS_MAX_SECTION ? glen : HEADERS_MAX_SECTION;
    size_t hlen = 0;
    bool sep = false;
    bool early = lim > 0 && headers_find_end(g, lim, false, &hlen, &sep);
    if (early) {
        if (ex != EX_OK)
            abort();
    } else if (glen >= HEADERS_MAX_SECTION) {
        /* Past the bound: refused, unless the read that crossed it
         * brought the end along. */
        if (ex == EX_OK && !headers_find_end(g, glen, false, &hlen, &sep))
            abort();
        if (ex != EX_OK && ex != EX_DATAERR)
            abort();
    } else if (error_seen) {
        if (ex != EX_IOERR || strstr(last_said, strerror(EIO)) == NULL)
            abort();
    } else {
        if (ex != EX_OK)
            abort();
        if (glen > 0 && !headers_find_end(g, glen, true, &hlen, &sep))
            abort();
    }
    if (ex != EX_OK && (said == 0 || last_said[0] == '\0'))
        abort(); /* every failure says why */

    if (ex == EX_OK) {
        if (hlen > glen)
            abort();
        struct headers_info info;
        headers_scan(g, hlen, &info);
        const char *eol = info.crlf ? "\r\n" : "\n";

        if (extract) {
            size_t n = 0;
            headers_extract_recipients(g, hlen, count_address, &n);
            if (pg->nparsed != n || pg->nrcpts > n)
                abort();
            for (size_t i = 0; i < pg->nrcpts; i++) {
                if (strchr(pg->rcpts[i], '@') == NULL) /* qualified */
                    abort();
                for (size_t j = 0; j < i && pg->nrcpts <= 200; j++)
                    if (strcasecmp(pg->rcpts[i], pg->rcpts[j]) == 0) /* kept once */
                        abort();
            }
        } else if (pg->nrcpts != 0) {
            abort();
        }

        /* The whole message through the library's reader, in caps of
         * varying sizes, each call's buffer exactly that large. */
        struct outcome r = {0};
        size_t maxcap = opt[2] ? opt[2] : QUEUE_MAX_LINE;
        char *buf = malloc(maxcap);
        if (buf == NULL)
            abort();
        uint32_t rng = (uint32_t)opt[2] * 2654435761u + 1;
        struct content_scan scan;
        content_scan_init(&scan);
        body_encoder enc;
        body_init(&enc, BODY_CHUNK);
        char *encbuf = malloc(body_max_output(maxcap) + BODY_FINISH_MAX);
        if (encbuf == NULL)
            abort();
        unsigned long long encoded = 0;
        for (;;) {
            size_t cap = 1 + next_rand(&rng) % maxcap;
            char *at = buf + (maxcap - cap);
            ptrdiff_t n = body_reader(pg, at, cap);
            if (n < 0) {
                r.error = true;
                break;
            }
            if ((size_t)n > cap)
                abort();
            if (n == 0)
                break;
            append(&r, at, (size_t)n);
            content_scan_feed(&scan, at, (size_t)n);
            encoded += body_encode(&enc, at, (size_t)n, encbuf);
        }
        content_scan_finish(&scan);
        encoded += body_finish(&enc, encbuf);
        if (!r.error && body_reader(pg, buf, maxcap) != 0)
            abort(); /* the end stays the end */
        free(encbuf);
        free(buf);

        if (r.error != error_seen || (r.error && pg->in_errno != EIO))
            abort(); /* send.c names the cause from in_errno */
        if (pg->size != r.len)
            abort();

        /* The added lines, the section, the separator, the rest. */
        size_t at = 0;
        if (r.len < pg->head_len)
            abort();
        if (!info.has_date)
            added_line(r.out, pg->head_len, &at, "Date: ", eol);
        if (!info.has_message_id)
            added_line(r.out, pg->head_len, &at, "Message-ID: <", eol);
        if (!info.has_from)
            added_line(r.out, pg->head_len, &at, "From: ", eol);
        char *e = malloc(hlen + 1);
        if (e == NULL)
            abort();
        size_t elen = bcc_model(g, hlen, e);
        size_t slen = sep ? strlen(eol) : 0;
        if (pg->head_len != at + elen + slen || memcmp(r.out + at, e, elen) != 0 ||
            memcmp(r.out + at + elen, eol, slen) != 0)
            abort();
        free(e);
        if (r.len - pg->head_len != glen - hlen ||
            memcmp(r.out + pg->head_len, g + hlen, glen - hlen) != 0)
            abort();
        /* The separator, or the input's own empty line, is the first. */
        if (pg->head_len - slen < r.len &&
            first_empty_line(r.out, r.len) != pg->head_len - slen)
            abort();

        if (dot_ends) {
            /* No line of the message is the single dot that ended it. */
            for (size_t p = 0; p < r.len;) {
                const char *nl = memchr(r.out + p, '\n', r.len - p);
                size_t len = nl ? (size_t)(nl - (r.out + p)) + 1 : r.len - p;
                size_t body = nl ? len - 1 : len;
                if (r.out[p] == '.' && (body == 1 || (body == 2 && r.out[p + 1] == '\r')))
                    abort();
                p += len;
            }
        }
        check_content(&r, opt, &scan, encoded);
        free(r.out);
    }

    for (size_t i = 0; i < pg->nrcpts; i++)
        free(pg->rcpts[i]);
    free(pg->rcpts);
    envelope_free(pg);
    free(pg->sender);
    free(pg->head);
    free(pg->hbuf);
    free(pg);
    free(g);
    free(in);
    free(full_name);
    return 0;
}
