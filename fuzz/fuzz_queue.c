/*
 * fuzz_queue - queue files read back (src/program/queue.c, the load path):
 * the envelope at the head of queue/ID and the retry state in ID.state.
 * A queue file is written by hato, but it is read by every later run
 * (root's "hato -q" included) and may be damaged by a crash, a full disk
 * or a hand edit.
 *
 * Input: the message file, FUZZ_SEP, the state file (no separator: no
 * state file, "never tried").  Both go into a private spool under $TMPDIR
 * as queue/<ID> and queue/<ID>.state, then queue_load() reads them with
 * the lock taken, as a delivery does.  A loaded entry must be consistent
 * (the message's start and length within the file, a sender, at least one
 * recipient), and its state must survive a round trip: saved with
 * queue_save_state() and loaded again, it reads back the same.  Then the
 * bounce report (src/program/dsn.c) is built from it, as a flush does for
 * bounced recipients: the server's texts and the message's header section
 * go into it; it must end with a line end, and its own header section
 * hold no NUL or CR.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "dsn.h"
#include "queue.h"

#define ID "0123456789ABCDE"

static struct queue_spool spool;
static char dir[512];

static void remove_spool(void)
{
    char p[600];
    static const char *const names[] = {"queue/" ID, "queue/" ID ".state", "tmp/" ID ".state"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    static const char *const dirs[] = {"tmp", "queue", "failed", ""};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dirs[i]);
        rmdir(p);
    }
}

static void put(const char *name, const char *data, size_t n)
{
    char p[600];
    snprintf(p, sizeof p, "%s/queue/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (n > 0 && write(fd, data, n) != (ssize_t)n) || close(fd) != 0)
        abort();
}

static void same_state(const struct queue_entry *a, const struct queue_entry *b)
{
    if (a->attempts != b->attempts || a->last_attempt != b->last_attempt ||
        a->next_attempt != b->next_attempt || a->nrcpts != b->nrcpts)
        abort();
    if ((a->error == NULL) != (b->error == NULL) || (a->error && strcmp(a->error, b->error)))
        abort();
    if ((a->relay == NULL) != (b->relay == NULL) || (a->relay && strcmp(a->relay, b->relay)))
        abort();
    for (size_t i = 0; i < a->nrcpts; i++) {
        const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
        if (x->status != y->status || strcmp(x->address, y->address) != 0)
            abort();
        if ((x->reply == NULL) != (y->reply == NULL) || (x->reply && strcmp(x->reply, y->reply)))
            abort();
        /* A pending recipient without a reply is not written at all. */
        if ((x->status != QUEUE_RCPT_PENDING || x->reply != NULL) && strcmp(x->dsn, y->dsn) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (spool.dir == NULL) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/hato-fuzz-queue-XXXXXX", t ? t : "/tmp");
        if (mkdtemp(dir) == NULL)
            abort();
        char err[512];
        if (queue_spool_open(&spool, dir, err, sizeof err) != QUEUE_OK)
            abort();
        atexit(remove_spool);
    }
    const char *msg, *state;
    size_t mlen, slen;
    bool has_state = size > 0;
    fuzz_part(&data, &size, &msg, &mlen);
    has_state = has_state && (const char *)data != msg + mlen;
    fuzz_part(&data, &size, &state, &slen);
    put(ID, msg, mlen);
    char p[600];
    snprintf(p, sizeof p, "%s/queue/" ID ".state", dir);
    if (has_state)
        put(ID ".state", state, slen);
    else
        unlink(p);

    struct queue_entry e, again;
    char err[1024] = "";
    enum queue_status st = queue_load(&spool, ID, true, &e, err, sizeof err);
    if (st == QUEUE_OK) {
        if (e.sender == NULL || e.nrcpts == 0 || e.body_offset < 0 || e.size < 0 ||
            (size_t)e.body_offset + (size_t)e.size != mlen)
            abort();
        if (queue_save_state(&spool, &e, err, sizeof err) != QUEUE_OK)
            abort();
        if (queue_load(&spool, ID, false, &again, err, sizeof err) != QUEUE_OK)
            abort();
        same_state(&e, &again);
        queue_entry_free(&again);
        for (size_t i = 0; i < e.nrcpts; i++)
            e.rcpts[i].fresh_bounce = true;
        dsn_failure_wanted(&e);
        struct dsn_input in = {.e = &e, .myhostname = "host.example.org", .relay = e.relay,
                               .expired = e.attempts & 1, .now = 1741050672};
        char *report = NULL;
        size_t rlen = 0;
        if (dsn_build(&in, &report, &rlen) == 0) {
            /* The original message's bytes are copied as they are; the
             * report's own header section is hato's and must be clean. */
            if (report == NULL || rlen == 0 || report[rlen - 1] != '\n')
                abort();
            const char *end = strstr(report, "\n\n");
            size_t hl = end ? (size_t)(end - report) : rlen;
            if (memchr(report, '\0', hl) != NULL || memchr(report, '\r', hl) != NULL)
                abort();
        }
        free(report);
    } else if (err[0] == '\0') {
        abort(); /* every failure says why */
    }
    queue_entry_free(&e);
    return 0;
}
