/*
 * test_dsn.c - hato's own non-delivery report honours the sender's DSN
 * request (RFC 3461 section 6.3, RFC 3464): NOTIFY without FAILURE means
 * no report, RET=HDRS returns the headers only and RET=FULL the message,
 * an ENVID comes back as Original-Envelope-Id, and Original-Recipient
 * appears exactly when hato gave the relay an ORCPT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsn.h"

static char dir[] = "/tmp/hato-test-dsn-XXXXXX";
static struct queue_spool q;

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

static const char plain[] = "From: a@example.test\n"
                            "Subject: report\n"
                            "\n"
                            "the body line\n";
static const char eight[] = "From: a@example.test\n"
                            "Subject: report\n"
                            "\n"
                            "the body line \xc3\xa9\n";

/* Queues text with req, bounces its one recipient and builds the
 * report; returns it (malloc'd) or NULL. */
static char *report_for(const char *text, const struct queue_request *req, struct queue_entry *e)
{
    char err[1024];
    bool read_failed;
    const char *rcpts[] = {"b@example.test"};
    struct mem m = {text, strlen(text)};
    if (queue_write(&q, "a@example.test", rcpts, 1, 0, req, mem_read, &m, e, &read_failed, err,
                    sizeof err) != QUEUE_OK) {
        fprintf(stderr, "queue_write: %s\n", err);
        return NULL;
    }
    e->rcpts[0].status = QUEUE_RCPT_BOUNCED;
    e->rcpts[0].fresh_bounce = true;
    snprintf(e->rcpts[0].dsn, sizeof e->rcpts[0].dsn, "5.1.1");
    queue_set_text(&e->rcpts[0].reply, "550 5.1.1 <b@example.test>: user unknown");
    struct dsn_input in = {e, "mx.example.test", "relay.example.test[192.0.2.1]:587", false,
                           1795823246};
    char *out = NULL;
    size_t len = 0;
    if (dsn_build(&in, &out, &len) != 0)
        return NULL;
    return out;
}

static void test_notify(void)
{
    struct queue_entry e;
    memset(&e, 0, sizeof e);
    CHECK(dsn_failure_wanted(&e)); /* not asked: the default is a report */
    e.dsn_notify = HATO_DSN_FAILURE;
    CHECK(dsn_failure_wanted(&e));
    e.dsn_notify = HATO_DSN_FAILURE | HATO_DSN_DELAY;
    CHECK(dsn_failure_wanted(&e));
    e.dsn_notify = HATO_DSN_NEVER;
    CHECK(!dsn_failure_wanted(&e));
    e.dsn_notify = HATO_DSN_SUCCESS | HATO_DSN_DELAY;
    CHECK(!dsn_failure_wanted(&e));
}

static void test_nothing_asked(void)
{
    struct queue_entry e;
    char *r = report_for(plain, NULL, &e);
    CHECK(r != NULL);
    CHECK(strstr(r, "Original-Envelope-Id") == NULL);
    CHECK(strstr(r, "Original-Recipient") == NULL); /* no ORCPT was given */
    CHECK_HAS(r, "\nFinal-Recipient: rfc822; b@example.test\nAction: failed\nStatus: 5.1.1\n");
    CHECK_HAS(r, "Content-Type: text/rfc822-headers\n\nFrom: a@example.test\nSubject: report\n\n--");
    CHECK(strstr(r, "the body line") == NULL);
    free(r);
    queue_entry_free(&e);
}

static void test_envid_orcpt_hdrs(void)
{
    struct queue_entry e;
    struct queue_request req = {.notify = HATO_DSN_FAILURE, .ret = HATO_DSN_RET_HDRS,
                                .envid = "QQ+2B314159"};
    char *r = report_for(plain, &req, &e);
    CHECK(r != NULL);
    /* RFC 3464 2.2.1: the first per-message field, the value as given. */
    CHECK_HAS(r, "Content-Type: message/delivery-status\n\nOriginal-Envelope-Id: QQ+2B314159\n"
                 "Reporting-MTA: dns; mx.example.test\n");
    /* RFC 3464 2.3.1: before Final-Recipient. */
    CHECK_HAS(r, "\nOriginal-Recipient: rfc822; b@example.test\n"
                 "Final-Recipient: rfc822; b@example.test\n");
    CHECK_HAS(r, "Content-Type: text/rfc822-headers\n");
    CHECK(strstr(r, "message/rfc822") == NULL);
    CHECK(strstr(r, "the body line") == NULL);
    free(r);
    queue_entry_free(&e);

    /* -N alone is a DSN request too: ORCPT went to the relay. */
    struct queue_request n = {.notify = HATO_DSN_FAILURE | HATO_DSN_DELAY};
    r = report_for(plain, &n, &e);
    CHECK_HAS(r, "Original-Recipient: rfc822; b@example.test\n");
    CHECK(strstr(r, "Original-Envelope-Id") == NULL);
    free(r);
    queue_entry_free(&e);
}

static void test_ret_full(void)
{
    struct queue_entry e;
    struct queue_request req = {.ret = HATO_DSN_RET_FULL};
    char *r = report_for(plain, &req, &e);
    CHECK(r != NULL);
    CHECK_HAS(r, "Content-Type: message/rfc822\n\nFrom: a@example.test\nSubject: report\n\n"
                 "the body line\n\n--");
    CHECK(strstr(r, "text/rfc822-headers") == NULL);
    free(r);
    queue_entry_free(&e);

    /* 8-bit content cannot ride in this 7bit report: headers, and why. */
    r = report_for(eight, &req, &e);
    CHECK(r != NULL);
    CHECK_HAS(r, "Content-Type: text/rfc822-headers\n");
    CHECK_HAS(r, "holds 8-bit data");
    CHECK(strstr(r, "the body line") == NULL);
    free(r);
    queue_entry_free(&e);
}

int main(void)
{
    test_notify();
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char err[1024];
    CHECK_INT(queue_spool_open(&q, dir, err, sizeof err), QUEUE_OK);
    test_nothing_asked();
    test_envid_orcpt_hdrs();
    test_ret_full();
    queue_spool_close(&q);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_finish("test_dsn");
}
