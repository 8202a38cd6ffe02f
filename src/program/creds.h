/*
 * creds.h - password sources besides the password map:
 * smtp_sasl_password_command and systemd credentials.
 *
 * Each yields one secret (a password or an OAuth token): the first line of
 * the command's output or of the credential file, without its line end.
 * Secrets pass only through pipes and files, never argv or the
 * environment, and every buffer that held one is wiped.  Messages never
 * hold the secret or any other output.
 */
#ifndef HATO_PROGRAM_CREDS_H
#define HATO_PROGRAM_CREDS_H

#include <stddef.h>

/* The longest secret line: passwords are short, but OAuth access tokens
 * of large providers run to a few KiB. */
#define CREDS_MAX_LINE 8192
/* Output the command may print in all: a helper that chats on stdout is
 * tolerated, one that streams without end is stopped. */
#define CREDS_MAX_OUTPUT (64u * 1024)
/* How long the command may run: a keyring prompt or a token refresh over
 * the network takes seconds, not minutes. */
#define CREDS_COMMAND_TIMEOUT_MS 30000

enum creds_status {
    CREDS_OK = 0,
    CREDS_NOT_FOUND = 1,    /* no such credential file */
    CREDS_ERR_CONFIG = -1,  /* cannot run / read, as configured: EX_CONFIG */
    CREDS_ERR_FAILED = -2,  /* the command failed, timed out or printed no
                               usable line; may work later: EX_TEMPFAIL */
    CREDS_ERR_NOMEM = -3,
};

/* Runs command (split at white space, no shell; the first word an
 * absolute path) with standard input from /dev/null, standard error
 * passed through, and an environment of PATH=/usr/local/bin:/usr/bin:/bin,
 * the variables of creds_env_names found in the caller's environment, and
 * extra_env ("NAME=value" strings, NULL-terminated; may be NULL).  Waits
 * at most timeout_ms, then kills it.  On CREDS_OK *secret is malloc'd and
 * the caller wipes and frees it (wipe_free_str); otherwise err names the
 * command and what happened, under the setting name key_name. */
enum creds_status creds_run_command(const char *key_name, const char *command,
                                    const char *const *extra_env, unsigned timeout_ms,
                                    char **secret, char *err, size_t errlen);

/* The names creds_run_command() passes on from the environment (for
 * keyrings and token helpers: HOME, XDG_*, DBUS_SESSION_BUS_ADDRESS...),
 * NULL-terminated. */
extern const char *const creds_env_names[];

/* Reads the credential name from directory dir (systemd's
 * $CREDENTIALS_DIRECTORY).  CREDS_NOT_FOUND when the file does not exist;
 * otherwise as creds_run_command. */
enum creds_status creds_read_credential(const char *dir, const char *name, char **secret,
                                        char *err, size_t errlen);

#endif
