/*
 * queue.h - the spool: every message is written here before any delivery
 * attempt, and removed only after the relay took it (or moved to failed/
 * after a bounce).  docs/queue.md describes the layout and the formats.
 *
 *   <queue_directory>/tmp/      files being written; never read by a flush
 *   <queue_directory>/queue/ID  a committed message: envelope + message,
 *                               immutable once linked here
 *   <queue_directory>/queue/ID.state  retry state, rewritten atomically
 *   <queue_directory>/failed/   bounced or undeliverable messages
 *
 * The link() of a complete, fsync'd file into queue/ followed by an fsync of
 * queue/ is the commit point.  Whoever delivers a message holds an exclusive
 * flock() on its file; everything that changes a message (state, removal,
 * move to failed/) happens under that lock.
 */
#ifndef HATO_PROGRAM_QUEUE_H
#define HATO_PROGRAM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "hato.h"

/* Ids: 8 hex digits of seconds, 5 of microseconds, 2 random: sortable by
 * arrival, file-name safe, and the same 15 characters the maillog shows. */
#define QUEUE_ID_LEN 15

/* An envelope line longer than this is not one hato wrote. */
#define QUEUE_MAX_LINE 65536

enum queue_status {
    QUEUE_OK = 0,
    QUEUE_BUSY = 1,     /* another process holds the message's lock */
    QUEUE_GONE = 2,     /* delivered or moved meanwhile */
    QUEUE_ERR = -1,     /* err says what */
    QUEUE_NOMEM = -2,
    QUEUE_LIMIT = -3,   /* the submitting user's share of the spool is used up */
};

enum queue_rcpt_status {
    QUEUE_RCPT_PENDING = 0, /* never tried, or deferred: tried again */
    QUEUE_RCPT_SENT,        /* the relay took it: never sent again */
    QUEUE_RCPT_BOUNCED,     /* refused for good, or expired; in a DSN */
};

struct queue_rcpt {
    char *address;              /* owned */
    enum queue_rcpt_status status;
    char dsn[16];               /* RFC 3463 code of the last outcome, or "" */
    char *reply;                /* owned; last reply or error text, or NULL */
    bool fresh_bounce;          /* bounced in this run, not yet reported */
};

/* RFC 3461 section 4.4: an ENVID is at most 100 characters. */
#define QUEUE_MAX_ENVID 100

/* What the sender asked of the relay for one message (sendmail -N, -R,
 * -V, -B), kept in the envelope so that every attempt asks the same. */
struct queue_request {
    unsigned notify;            /* HATO_DSN_* bits; 0: not asked */
    hato_dsn_ret ret;           /* HATO_DSN_RET_DEFAULT: not asked */
    const char *envid;          /* borrowed; NULL or printable ASCII */
    hato_body body;             /* -B; HATO_BODY_AUTO: decided by the content */
    bool requiretls;            /* RFC 8689 */
};

struct queue_spool {
    char *dir;                  /* queue_directory, owned */
    int queue_fd;               /* queue/ opened for fsync, or -1 */
    bool shared;                /* owned by the setgid group: files 0640 */

    /* Per-user share (docs/security.md), checked by queue_write when
     * limit_uid >= 0: messages in tmp/ and queue/ owned by that uid, and
     * their bytes.  0 is no limit.  Set by the caller after opening. */
    long limit_uid;
    unsigned long max_messages;     /* hato_user_queue_limit */
    unsigned long long max_bytes;   /* hato_user_queue_size_limit */
};

/* One message read back from queue/ (or just written).  Owned by the
 * caller; queue_entry_free() closes the file, which drops the lock. */
struct queue_entry {
    char id[QUEUE_ID_LEN + 1];
    int fd;                     /* the message file, locked, or -1 */
    long long arrival_sec;      /* Unix time */
    long arrival_usec;
    long uid;                   /* the submitting user, as the envelope says */
    uid_t owner;                /* the file's owner: the submitting user as
                                   the kernel recorded it (a setgid
                                   submission cannot forge it) */
    char *sender;               /* owned; "" is <> */
    struct queue_rcpt *rcpts;   /* owned */
    size_t nrcpts;
    off_t body_offset;          /* where the message starts in the file */
    off_t size;                 /* the message's length in bytes */

    /* The sender's request (absent from files of hato 0.3: all zero). */
    unsigned dsn_notify;        /* HATO_DSN_* bits, 0 when not asked */
    hato_dsn_ret dsn_ret;
    char dsn_envid[QUEUE_MAX_ENVID + 1]; /* "" when none */
    hato_body body_request;     /* -B, HATO_BODY_AUTO when not given */
    bool requiretls;

    /* The content, measured while it was spooled (content.h).  scanned is
     * false for files of hato 0.3, which were not measured. */
    bool scanned;
    bool body_8bit, header_8bit;
    unsigned long long wire_size;

    /* Retry state (ID.state). */
    unsigned attempts;
    long long last_attempt, next_attempt; /* Unix time; 0 never / now */
    char *error;                /* owned; the last attempt's failure, or NULL */
    char *relay;                /* owned; the last relay reached, or NULL */
};

/* Opens (creating when missing) the spool at dir.  Returns QUEUE_OK, or
 * QUEUE_ERR with err naming the directory and the cause.  Without a spool
 * group (hato not installed setgid) the directories are 0700 and files
 * 0600, the invoker's own.  With one (docs/security.md), root creates or
 * repairs the layout: dir 0750, tmp/ and queue/ 3770, failed/ 0700, all
 * root:group, files 0640; an invoker who is not root creates nothing and
 * reaches the spool through the group, raised only inside these
 * functions (privilege.h). */
enum queue_status queue_spool_open(struct queue_spool *q, const char *dir, char *err,
                                   size_t errlen);
void queue_spool_close(struct queue_spool *q);

/* Pulls the message through read_fn (as the library's reader: a count,
 * 0 at the end, -1 on error) into a new file, measuring it (content.h),
 * fsyncs it and commits it to queue/.  req (NULL: nothing asked) is
 * copied into the envelope.  With q->limit_uid set, QUEUE_LIMIT (err says which limit) when
 * that uid's messages already reach q->max_messages, or would pass
 * q->max_bytes with this one.  On QUEUE_OK e is loaded from the committed file and holds its
 * lock.  On failure nothing is left in tmp/ or queue/ and err says why;
 * *read_failed tells a failure of read_fn from one of the spool. */
enum queue_status queue_write(struct queue_spool *q, const char *sender,
                              const char *const *rcpts, size_t nrcpts, long uid,
                              const struct queue_request *req,
                              ptrdiff_t (*read_fn)(void *user, char *buf, size_t cap),
                              void *user, struct queue_entry *e, bool *read_failed,
                              char *err, size_t errlen);

/* Opens queue/ID, takes its lock without waiting (QUEUE_BUSY when held),
 * checks that it is still there (QUEUE_GONE) and reads envelope and state
 * into e.  With lock false it only reads (for listing). */
enum queue_status queue_load(struct queue_spool *q, const char *id, bool lock,
                             struct queue_entry *e, char *err, size_t errlen);

/* Rewrites ID.state atomically (tmp file, fsync, rename, fsync of queue/). */
enum queue_status queue_save_state(struct queue_spool *q, const struct queue_entry *e,
                                   char *err, size_t errlen);

/* Removes the message and its state (the message first: it is the commit
 * of "done"); fsyncs queue/. */
enum queue_status queue_remove(struct queue_spool *q, const struct queue_entry *e, char *err,
                               size_t errlen);

/* Moves message and state to failed/ (state saved there first). */
enum queue_status queue_move_failed(struct queue_spool *q, const struct queue_entry *e,
                                    char *err, size_t errlen);

/* The ids in queue/, sorted (oldest first), malloc'd array of malloc'd
 * strings in *ids.  Also removes leftovers (not in a restricted run, see
 * privilege.h): tmp/ files older than QUEUE_STALE_SECONDS and state files
 * whose message is gone. */
#define QUEUE_STALE_SECONDS 86400
enum queue_status queue_list(struct queue_spool *q, char ***ids, size_t *n, char *err,
                             size_t errlen);
void queue_list_free(char **ids, size_t n);

/* Whether another process holds e's lock (for the listing's '*'). */
bool queue_locked_by_other(struct queue_spool *q, const char *id);

/* Sets *field to a copy of text with control characters replaced (the
 * state file is line-based).  -1 when out of memory. */
int queue_set_text(char **field, const char *text);

void queue_entry_free(struct queue_entry *e);

#endif
