/*
 * reply.h - incremental parser for SMTP replies (RFC 5321 section 4.2).
 *
 * Bytes arrive split anywhere; reply_parse() takes what there is, consumes
 * up to the end of one complete reply, and says done, need more, or error.
 * Memory is bounded by REPLY_LINE_MAX and REPLY_LINES_MAX whatever the
 * server sends.
 *
 * What is accepted:
 *  - a line ends with CRLF or with a bare LF (servers and proxies that send
 *    LF alone are common enough; the reply is unambiguous either way).  A CR
 *    not followed by LF, or a NUL anywhere, is an error: it could hide text
 *    from a log or a person reading it.
 *  - a line is "NNN", "NNN text" (last line) or "NNN-text" (more follow),
 *    first digit 2..5; "250" alone is a last line with no text.  Every line
 *    of a reply carries the same code.
 *  - an enhanced status code (RFC 3463, RFC 2034) "c.s.d" at the start of a
 *    line's text, followed by a space or the end of the line, with c equal
 *    to the reply's first digit (2, 4 or 5) and s, d of 1..3 digits, is
 *    removed from that line's text; the first line's goes to r->enhanced.
 *
 * Not thread-safe per parser; separate parsers share nothing.
 */
#ifndef HATO_REPLY_REPLY_H
#define HATO_REPLY_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.5 sets 512 octets for a reply line; real servers send
 * longer ones (long EHLO keywords, verbose 5xx texts), so allow 2 KiB and
 * refuse anything beyond: a line that long is an attack or a broken peer.
 * Counted without the line end. */
#define REPLY_LINE_MAX 2048
/* A reply with more lines than this is refused; Postfix's EHLO has ~15. */
#define REPLY_LINES_MAX 100
/* RFC 3463: "class.subject.detail", each up to 3 digits. */
#define REPLY_ENHANCED_MAX 12

/* *why on REPLY_ERROR when memory ran out (compare with strcmp): the fault
 * is local, not the server's. */
#define REPLY_WHY_NOMEM "out of memory while reading a reply"

typedef struct reply {
    int code;                              /* 200..599 */
    char enhanced[REPLY_ENHANCED_MAX];     /* "2.1.0" from the first line, or "" */
    size_t nlines;                         /* 1..REPLY_LINES_MAX */
    /* Line i's text after "NNN-"/"NNN " (and after the enhanced code when
     * present on that line), NUL-terminated; pointers into one owned block. */
    char *lines[REPLY_LINES_MAX];
    char *storage; /* owned; all lines live here */
} reply;

typedef enum reply_status {
    REPLY_DONE = 0,  /* a whole reply is in *out */
    REPLY_MORE = 1,  /* consumed everything; feed more */
    REPLY_ERROR = 2, /* malformed or too long; *why says which */
} reply_status;

/* The parser's states; reply_parser_state_name() gives each a name. */
typedef enum reply_parser_state {
    REPLY_PS_IDLE = 0, /* between replies: nothing of one read yet */
    REPLY_PS_LINE,     /* inside a reply, reading a line (maybe at its start) */
    REPLY_PS_CR,       /* a CR was read; only LF may follow */
    REPLY_PS_FAILED,   /* an error was returned; the parser is done */
} reply_parser_state;

typedef struct reply_parser {
    reply_parser_state state;
    char line[REPLY_LINE_MAX + 1]; /* the line being assembled */
    size_t linelen;
    int code;            /* code of the first line of this reply, 0 if none yet */
    size_t nlines;
    size_t textlen;      /* bytes of text gathered so far */
    char *text;          /* owned; lines so far, NUL-separated */
    size_t textcap;
} reply_parser;

/* Cannot fail; allocates nothing. */
void reply_parser_init(reply_parser *p);
/* Frees what a partly read reply holds; the parser may be initialised
 * again.  Safe to call twice. */
void reply_parser_free(reply_parser *p);
/* Parses from data; sets *consumed to the bytes used (never past the end of
 * the completed reply: on REPLY_DONE any bytes after it are left for the
 * next call, so pipelined replies come one per call, and a caller that must
 * see nothing after a reply — STARTTLS's 220 — compares *consumed with len).
 * After REPLY_DONE the parser is ready for the next reply.
 * On REPLY_DONE, *out holds the reply; the caller owns it and frees it with
 * reply_free().  *out is written only on REPLY_DONE.
 * On REPLY_ERROR, *why is a static string naming the fault ("reply line
 * longer than 2048 bytes", "reply line does not start with a 3-digit code",
 * "continuation line with a different code", REPLY_WHY_NOMEM, ...), and
 * *consumed counts up to and including the offending byte; the parser
 * must not be used again except to free it (further calls return
 * REPLY_ERROR).  An over-long line is refused as soon as its byte
 * REPLY_LINE_MAX + 1 arrives, without waiting for its end. */
reply_status reply_parse(reply_parser *p, const char *data, size_t len,
                         size_t *consumed, reply *out, const char **why);
/* Frees the lines and empties *r; safe on a zeroed or already freed reply. */
void reply_free(reply *r);
/* True while a reply is partly read (a STARTTLS check: no pending bytes). */
bool reply_parser_busy(const reply_parser *p);
/* "idle", "line", "cr", "failed"; for traces. */
const char *reply_parser_state_name(reply_parser_state s);
/* The reply's text, lines joined by "; ", into dst (always NUL-terminated
 * when dstlen > 0, truncated to dstlen without splitting a UTF-8
 * sequence).  For errors and logs. */
void reply_join(const reply *r, char *dst, size_t dstlen);
/* 2, 3, 4 or 5. */
static inline int reply_class(const reply *r) { return r->code / 100; }

#endif
