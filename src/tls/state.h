/*
 * state.h - the state directory: TLS session tickets and TOFU records.
 *
 * Small files, one per relay, private to the user: the directory is 0700
 * and owned by the user, each file 0600 and replaced atomically (temporary
 * file, fsync, rename), so a crash leaves the old file or the new one.
 * No mbedTLS here; tls_mbedtls.c gives the bytes to store.
 */
#ifndef HATO_TLS_STATE_H
#define HATO_TLS_STATE_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a path in the state directory. */
#define TLS_STATE_PATH_MAX 1024

/* <dir>/<sub>/<host>:<port> in path, after checking dir (created 0700 when
 * missing, its parent must exist) and sub (created 0700): each must be a
 * directory owned by this user and not writable by group or others.
 * Characters of host outside [A-Za-z0-9.:_-] become '_', and a leading '.'
 * too, so a host name cannot leave the directory.  False with one line in
 * err naming the directory and the fix. */
bool tls_state_path(const char *dir, const char *sub, const char *host, unsigned port,
                    char *path, size_t cap, char *err, size_t errlen);

typedef enum tls_state_read_result {
    TLS_STATE_FOUND = 0,
    TLS_STATE_MISSING = 1, /* no such file: first contact */
    TLS_STATE_ERROR = 2,   /* unreadable, too large, not a plain file: err says */
} tls_state_read_result;

/* Reads the whole file (at most max bytes) into *data, a new allocation the
 * caller owns (wipe it when it held a secret). */
tls_state_read_result tls_state_read(const char *path, size_t max, unsigned char **data,
                                     size_t *len, char *err, size_t errlen);
/* Replaces path with data atomically, mode 0600.  durable: on the disk
 * before returning (fsync of the file and its directory), for what must
 * survive a crash (a TOFU pin); a cache (a TLS session) skips it, since a
 * lost or torn one only costs a full handshake. */
bool tls_state_write(const char *path, const void *data, size_t len, bool durable, char *err,
                     size_t errlen);

#endif
