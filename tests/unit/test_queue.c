/*
 * test_queue.c - the queue file's envelope: the sender's request (-N -R
 * -V -B) and the measured content written and read back, files of hato
 * 0.3 (without either) still loading, and the scanner that measures a
 * message (content.c) cut at every point.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "content.h"
#include "queue.h"

static char dir[] = "/tmp/hato-test-queue-XXXXXX";

/* ------------------------------------------------------------------ */
/* The scanner                                                         */

static struct content_scan scan_whole(const char *p, size_t n)
{
    struct content_scan s;
    content_scan_init(&s);
    content_scan_feed(&s, p, n);
    content_scan_finish(&s);
    return s;
}

/* The same result wherever the stream is cut in two, and byte by byte. */
static void check_splits(const char *p, size_t n)
{
    struct content_scan whole = scan_whole(p, n);
    for (size_t cut = 0; cut <= n; cut++) {
        struct content_scan s;
        content_scan_init(&s);
        content_scan_feed(&s, p, cut);
        content_scan_feed(&s, p + cut, n - cut);
        content_scan_finish(&s);
        CHECK_INT(s.wire_size, whole.wire_size);
        CHECK_INT(s.header_8bit, whole.header_8bit);
        CHECK_INT(s.body_8bit, whole.body_8bit);
    }
    struct content_scan s;
    content_scan_init(&s);
    for (size_t i = 0; i < n; i++)
        content_scan_feed(&s, p + i, 1);
    content_scan_finish(&s);
    CHECK_INT(s.wire_size, whole.wire_size);
}

#define SCAN(lit) scan_whole(lit, sizeof lit - 1)
#define SPLITS(lit) check_splits(lit, sizeof lit - 1)

static void test_scan(void)
{
    /* 7-bit, LF line ends: each LF becomes CRLF on the wire. */
    struct content_scan s = SCAN("Subject: hi\n\nbody\n");
    CHECK(!s.header_8bit);
    CHECK(!s.body_8bit);
    CHECK_INT(s.wire_size, 18 + 3);

    /* UTF-8 in a header, ASCII body. */
    s = SCAN("Subject: caf\xc3\xa9\n\nplain\n");
    CHECK(s.header_8bit);
    CHECK(!s.body_8bit);

    /* 8-bit body only; CRLF already there: counted once. */
    s = SCAN("Subject: x\r\n\r\ncaf\xc3\xa9\r\n");
    CHECK(!s.header_8bit);
    CHECK(s.body_8bit);
    CHECK_INT(s.wire_size, 21);

    /* A line holding only CR ends the header section only with its LF;
     * a CR inside a line does not. */
    s = SCAN("A: b\r\nC: d\rx\n\r\n\xe9\n");
    CHECK(!s.header_8bit);
    CHECK(s.body_8bit);

    /* No body at all: everything is header. */
    s = SCAN("Subject: \xe9t\xe9");
    CHECK(s.header_8bit);
    CHECK(!s.body_8bit);

    /* A last line without its end is closed on the wire: +2 (CRLF), or +1
     * after a lone CR. */
    CHECK_INT(SCAN("A: b\n\nabc").wire_size, 5 + 1 + 3 + 2 + 2);
    CHECK_INT(SCAN("A: b\n\nabc\r").wire_size, 5 + 1 + 3 + 2 + 1 + 1);
    CHECK_INT(SCAN("").wire_size, 0);

    SPLITS("Subject: caf\xc3\xa9\r\nX: y\r\n\r\nbody \xe9\r\nmore\n.\nend");
    SPLITS("A: b\r\n\r\n\xe9\r\n");
    SPLITS("A: b\n\r\nx\n");
}

/* ------------------------------------------------------------------ */
/* The queue file                                                      */

struct mem {
    const char *p;
    size_t left;
};

static ptrdiff_t mem_read(void *user, char *buf, size_t cap)
{
    struct mem *m = user;
    size_t n = m->left < cap ? m->left : cap;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ptrdiff_t)n;
}

static const char message[] = "From: a@example.test\n"
                              "Subject: caf\xc3\xa9\n"
                              "\n"
                              "d\xc3\xa9j\xc3\xa0 vu\n";

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static bool message_is(const struct queue_entry *e, const char *want, size_t n)
{
    char buf[4096];
    if ((size_t)e->size != n || n > sizeof buf)
        return false;
    return pread(e->fd, buf, n, e->body_offset) == (ssize_t)n && memcmp(buf, want, n) == 0;
}

static void test_round_trip(struct queue_spool *q)
{
    char err[1024];
    bool read_failed;
    struct queue_entry e, l;
    const char *rcpts[] = {"b@example.test", "c@example.test"};
    struct queue_request req = {.notify = HATO_DSN_FAILURE | HATO_DSN_DELAY,
                                .ret = HATO_DSN_RET_HDRS,
                                .envid = "QQ+2B314159",
                                .body = HATO_BODY_8BITMIME,
                                .requiretls = true};
    struct mem m = {message, sizeof message - 1};
    CHECK_INT(queue_write(q, "a@example.test", rcpts, 2, 1000, &req, mem_read, &m, &e,
                          &read_failed, err, sizeof err),
              QUEUE_OK);
    struct content_scan want = scan_whole(message, sizeof message - 1);
    char id[QUEUE_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", e.id);
    for (int pass = 0; pass < 2; pass++) {
        /* What queue_write returned, then what a later run loads. */
        const struct queue_entry *x = pass == 0 ? &e : &l;
        if (pass == 1) {
            queue_entry_free(&e);
            CHECK_INT(queue_load(q, id, true, &l, err, sizeof err), QUEUE_OK);
        }
        CHECK_INT(x->dsn_notify, HATO_DSN_FAILURE | HATO_DSN_DELAY);
        CHECK_INT(x->dsn_ret, HATO_DSN_RET_HDRS);
        CHECK_STR(x->dsn_envid, "QQ+2B314159");
        CHECK_INT(x->body_request, HATO_BODY_8BITMIME);
        CHECK(x->requiretls);
        CHECK(x->scanned);
        CHECK(x->header_8bit);
        CHECK(x->body_8bit);
        CHECK_INT(x->wire_size, want.wire_size);
        CHECK_INT(x->wire_size, sizeof message - 1 + 4); /* four LFs become CRLF */
        CHECK_INT(x->nrcpts, 2);
        CHECK_STR(x->sender, "a@example.test");
        CHECK(message_is(x, message, sizeof message - 1));
    }
    /* The envelope as docs/queue.md shows it. */
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    const char *text = read_file(path, &len);
    CHECK_HAS(text, "\nnotify failure,delay\nret hdrs\nenvid QQ+2B314159\nbodytype 8BITMIME\n"
                    "requiretls yes\nrcpt b@example.test\nrcpt c@example.test\n"
                    "content size=00000000000000000051 body=8bit headers=8bit\nend\n");
    queue_entry_free(&l);

    /* Nothing asked: no request lines; the content is still measured. */
    struct mem m2 = {"Subject: x\n\nplain\n", 18};
    CHECK_INT(queue_write(q, "", rcpts, 1, 0, NULL, mem_read, &m2, &e, &read_failed, err,
                          sizeof err),
              QUEUE_OK);
    CHECK_INT(e.dsn_notify, 0);
    CHECK_INT(e.dsn_ret, HATO_DSN_RET_DEFAULT);
    CHECK_STR(e.dsn_envid, "");
    CHECK_INT(e.body_request, HATO_BODY_AUTO);
    CHECK(!e.requiretls);
    CHECK(e.scanned);
    CHECK(!e.body_8bit);
    CHECK(!e.header_8bit);
    CHECK_INT(e.wire_size, 21);
    snprintf(path, sizeof path, "%s/queue/%s", dir, e.id);
    text = read_file(path, &len);
    CHECK(strstr(text, "notify") == NULL && strstr(text, "envid") == NULL);
    queue_entry_free(&e);

    /* NOTIFY=NEVER alone, RET=FULL. */
    struct queue_request never = {.notify = HATO_DSN_NEVER, .ret = HATO_DSN_RET_FULL};
    struct mem m3 = {"A: b\n\nc\n", 8};
    CHECK_INT(queue_write(q, "a@example.test", rcpts, 1, 0, &never, mem_read, &m3, &e,
                          &read_failed, err, sizeof err),
              QUEUE_OK);
    CHECK_INT(e.dsn_notify, HATO_DSN_NEVER);
    CHECK_INT(e.dsn_ret, HATO_DSN_RET_FULL);
    queue_entry_free(&e);
}

/* An envelope id that is not printable ASCII is refused before anything
 * reaches the spool. */
static void test_bad_envid(struct queue_spool *q)
{
    char err[1024];
    bool read_failed;
    struct queue_entry e;
    const char *rcpts[] = {"b@example.test"};
    struct queue_request req = {.envid = "has space"};
    struct mem m = {message, sizeof message - 1};
    CHECK_INT(queue_write(q, "a@example.test", rcpts, 1, 0, &req, mem_read, &m, &e, &read_failed,
                          err, sizeof err),
              QUEUE_ERR);
    CHECK_HAS(err, "envelope id has space cannot be queued");
    queue_entry_free(&e);
}

/* A file written by hato 0.3: no request, no content line, and a line
 * from some later version.  It loads, and is delivered as before. */
static void test_old_file(struct queue_spool *q)
{
    static const char old[] = "hato-queue 1\n"
                              "arrival 1795823246.123456\n"
                              "uid 0\n"
                              "sender alice@example.test\n"
                              "rcpt bob@example.test\n"
                              "frobnicate yes\n"
                              "end\n"
                              "Subject: old\n\nbody \xe9\n";
    const char *id = "6B0A168EDA4803B";
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, old, sizeof old - 1) == (ssize_t)(sizeof old - 1));
    close(fd);

    struct queue_entry e;
    CHECK_INT(queue_load(q, id, true, &e, err, sizeof err), QUEUE_OK);
    CHECK_STR(e.sender, "alice@example.test");
    CHECK_INT(e.nrcpts, 1);
    CHECK(!e.scanned);
    CHECK_INT(e.dsn_notify, 0);
    CHECK_INT(e.dsn_ret, HATO_DSN_RET_DEFAULT);
    CHECK_STR(e.dsn_envid, "");
    CHECK_INT(e.body_request, HATO_BODY_AUTO);
    CHECK(!e.requiretls);
    const char *body = strstr(old, "end\n") + 4;
    CHECK(message_is(&e, body, strlen(body)));

    /* Unmeasured: the library's own default, no SIZE, no SMTPUTF8. */
    struct content_decision cd;
    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_AUTO);
    CHECK(!cd.size_known);
    CHECK(!cd.smtputf8);
    CHECK(!cd.dsn);
    queue_entry_free(&e);
    unlink(path);
}

/* What the library is told, from the envelope. */
static void test_decide(void)
{
    struct queue_entry e;
    struct content_decision cd;
    memset(&e, 0, sizeof e);
    e.scanned = true;
    e.wire_size = 1234;

    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_7BIT); /* measured 7-bit: declared so */
    CHECK(cd.size_known);
    CHECK_INT(cd.size, 1234);
    CHECK(!cd.smtputf8);
    CHECK(!cd.dsn);

    e.body_8bit = true;
    e.header_8bit = true;
    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_8BITMIME);
    CHECK(cd.smtputf8);
    content_decide(&e, false, &cd); /* smtputf8_enable = no */
    CHECK(!cd.smtputf8);

    e.body_request = HATO_BODY_7BIT; /* -B 7BIT cannot hide 8-bit bytes */
    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_8BITMIME);
    e.body_8bit = false;
    content_decide(&e, true, &cd); /* UTF-8 in the header is 8-bit too */
    CHECK_INT(cd.body, HATO_BODY_8BITMIME);
    CHECK(cd.smtputf8);
    e.body_request = HATO_BODY_AUTO;
    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_8BITMIME);
    e.body_request = HATO_BODY_7BIT;
    e.header_8bit = false;
    content_decide(&e, true, &cd); /* ... and is kept for 7-bit ones */
    CHECK_INT(cd.body, HATO_BODY_7BIT);
    e.body_request = HATO_BODY_8BITMIME;
    content_decide(&e, true, &cd);
    CHECK_INT(cd.body, HATO_BODY_8BITMIME);

    /* Any of -N, -R, -V is a DSN request. */
    snprintf(e.dsn_envid, sizeof e.dsn_envid, "x");
    content_decide(&e, true, &cd);
    CHECK(cd.dsn);
    e.dsn_envid[0] = '\0';
    e.dsn_ret = HATO_DSN_RET_FULL;
    content_decide(&e, true, &cd);
    CHECK(cd.dsn);
    e.dsn_ret = HATO_DSN_RET_DEFAULT;
    e.dsn_notify = HATO_DSN_NEVER;
    content_decide(&e, true, &cd);
    CHECK(cd.dsn);
}

/* The program's part of the reason a message bounces as it is. */
static void test_explain(void)
{
    struct queue_entry e;
    char out[512];
    memset(&e, 0, sizeof e);
    e.scanned = true;
    e.wire_size = 20480001;
    content_explain(&e, HATO_E_TOO_BIG, out, sizeof out);
    CHECK_HAS(out, "; the message is 20480001 bytes: send it in smaller parts");

    content_explain(&e, HATO_E_EXTENSION, out, sizeof out);
    CHECK_STR(out, ""); /* nothing the spool knows of */
    e.body_8bit = true;
    e.header_8bit = true;
    content_explain(&e, HATO_E_EXTENSION, out, sizeof out);
    CHECK_HAS(out, "; this message needs 8BITMIME (its body holds 8-bit bytes");
    CHECK_HAS(out, ", SMTPUTF8 (its header section holds UTF-8; with smtputf8_enable = no");
    e.body_8bit = false;
    e.header_8bit = false;
    e.body_request = HATO_BODY_8BITMIME;
    content_explain(&e, HATO_E_EXTENSION, out, sizeof out);
    CHECK_HAS(out, "asked for with -B 8BITMIME");
    e.body_request = HATO_BODY_AUTO;
    e.requiretls = true;
    content_explain(&e, HATO_E_EXTENSION, out, sizeof out);
    CHECK_STR(out, "; this message needs REQUIRETLS");

    content_explain(&e, HATO_E_REPLY, out, sizeof out); /* not ours to explain */
    CHECK_STR(out, "");
    /* Cut short, never overrun. */
    e.body_8bit = e.header_8bit = true;
    char small[24];
    content_explain(&e, HATO_E_EXTENSION, small, sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
}

int main(void)
{
    test_explain();
    test_scan();
    test_decide();
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    struct queue_spool q;
    char err[1024];
    CHECK_INT(queue_spool_open(&q, dir, err, sizeof err), QUEUE_OK);
    test_round_trip(&q);
    test_bad_envid(&q);
    test_old_file(&q);
    queue_spool_close(&q);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_finish("test_queue");
}
