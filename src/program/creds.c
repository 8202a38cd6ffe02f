/*
 * creds.c - the password command and systemd credentials.
 */
#include "creds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wipe.h"

extern char **environ;

const char *const creds_env_names[] = {
    "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
    "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
    "DBUS_SESSION_BUS_ADDRESS", "GNUPGHOME", "PASSWORD_STORE_DIR", NULL,
};

/* The first line being collected from a stream of output. */
struct first_line {
    char buf[CREDS_MAX_LINE + 1];
    size_t len;
    bool complete;   /* its line end was seen */
    bool too_long;
    size_t total;    /* bytes seen in all */
};

static void take(struct first_line *l, const char *s, size_t n)
{
    l->total += n;
    if (l->complete || l->too_long)
        return;
    const char *nl = memchr(s, '\n', n);
    size_t k = nl ? (size_t)(nl - s) : n;
    if (l->len + k > CREDS_MAX_LINE) {
        l->too_long = true;
        return;
    }
    memcpy(l->buf + l->len, s, k);
    l->len += k;
    if (nl != NULL)
        l->complete = true;
}

/* The line, without a CR before its LF, as a malloc'd string. */
static char *line_string(struct first_line *l)
{
    size_t n = l->len;
    if (n > 0 && l->buf[n - 1] == '\r')
        n--;
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, l->buf, n);
        s[n] = '\0';
    }
    return s;
}

/* A NUL in the line would cut the C string that carries the secret on:
 * "\0..." became an empty password and "pass\0word" silently "pass"
 * (found by fuzz/fuzz_creds.c).  Such a line is refused instead. */
static bool has_nul(const struct first_line *l)
{
    return memchr(l->buf, '\0', l->len) != NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits a copy of command at white space into a NULL-terminated vector
 * pointing into *copy.  Both are malloc'd. */
static char **split_words(const char *command, char **copy)
{
    size_t n = strlen(command);
    char **argv = calloc(n / 2 + 2, sizeof *argv);
    *copy = strdup(command);
    if (argv == NULL || *copy == NULL) {
        free(argv);
        free(*copy);
        *copy = NULL;
        return NULL;
    }
    size_t argc = 0;
    for (char *s = *copy; *s != '\0';) {
        s += strspn(s, " \t");
        if (*s == '\0')
            break;
        argv[argc++] = s;
        s += strcspn(s, " \t");
        if (*s != '\0')
            *s++ = '\0';
    }
    argv[argc] = NULL;
    return argv;
}

/* The child's environment: a fixed PATH, the allowed names from ours, and
 * extra.  The vector is malloc'd; its strings are environ's, extra's or
 * the static PATH. */
static char **child_env(const char *const *extra)
{
    size_t n = 1, k = 0;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        n++;
    for (size_t i = 0; creds_env_names[i] != NULL; i++)
        n++;
    char **envp = calloc(n + 1, sizeof *envp);
    if (envp == NULL)
        return NULL;
    envp[k++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
    for (size_t i = 0; creds_env_names[i] != NULL; i++) {
        size_t nl = strlen(creds_env_names[i]);
        for (char **e = environ; e != NULL && *e != NULL; e++)
            if (strncmp(*e, creds_env_names[i], nl) == 0 && (*e)[nl] == '=') {
                envp[k++] = *e;
                break;
            }
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        envp[k++] = (char *)extra[i];
    envp[k] = NULL;
    return envp;
}

enum creds_status creds_run_command(const char *key_name, const char *command,
                                    const char *const *extra_env, unsigned timeout_ms,
                                    char **secret, char *err, size_t errlen)
{
    enum creds_status st = CREDS_OK;
    char *copy = NULL;
    char **argv = split_words(command, &copy);
    char **envp = child_env(extra_env);
    struct first_line *line = calloc(1, sizeof *line);
    int fds[2] = {-1, -1}, devnull = -1;
    pid_t pid = -1;

    *secret = NULL;
    err[0] = '\0';
    if (argv == NULL || envp == NULL || line == NULL) {
        snprintf(err, errlen, "out of memory running %s", key_name);
        st = CREDS_ERR_NOMEM;
        goto out;
    }
    if (argv[0] == NULL || argv[0][0] != '/') {
        snprintf(err, errlen, "%s = %s: the command must start with an absolute path", key_name,
                 command);
        st = CREDS_ERR_CONFIG;
        goto out;
    }
    if (access(argv[0], X_OK) != 0) {
        snprintf(err, errlen, "%s = %s: cannot run %s: %s", key_name, command, argv[0],
                 strerror(errno));
        st = CREDS_ERR_CONFIG;
        goto out;
    }
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot run %s %s: %s", key_name, command, strerror(errno));
        st = CREDS_ERR_FAILED;
        goto out;
    }
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd < 0 || max_fd > 4096)
        max_fd = 4096;
    (void)fflush(NULL); /* nothing buffered may be written twice */
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot run %s %s: fork: %s", key_name, command, strerror(errno));
        st = CREDS_ERR_FAILED;
        goto out;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on.  Standard input is
         * the message: the command must not read it.  The command runs
         * with the invoker's group alone: the effective group set to
         * the real one here becomes the saved one at exec, so a setgid
         * hato's spool group (privilege.h) cannot reach the command. */
        if (setgid(getgid()) != 0 || dup2(devnull, STDIN_FILENO) < 0 ||
            dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(127);
        for (long fd = 3; fd < max_fd; fd++)
            close((int)fd);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(fds[1]);
    fds[1] = -1;

    long long deadline = now_ms() + timeout_ms;
    bool timed_out = false, eof = false;
    int read_errno = 0;
    char chunk[4096];
    while (!eof) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            read_errno = errno;
            break;
        }
        if (r == 0)
            continue;
        ssize_t got = read(fds[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            read_errno = errno;
            break;
        }
        if (got == 0) {
            eof = true;
            break;
        }
        take(line, chunk, (size_t)got);
        if (line->too_long || line->total > CREDS_MAX_OUTPUT)
            break;
    }
    wipe(chunk, sizeof chunk);

    int status = 0;
    bool exited = false;
    while (!timed_out && !exited) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            exited = true;
        } else if (w < 0 && errno != EINTR) {
            break;
        } else if (!eof || now_ms() >= deadline) {
            /* Stopped reading early, or it outlived its time. */
            timed_out = eof;
            break;
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (!exited) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }

    if (line->too_long)
        snprintf(err, errlen, "%s %s: the first line of its output is longer than %d bytes; it "
                              "must print the password or token alone", key_name, command,
                 CREDS_MAX_LINE);
    else if (line->total > CREDS_MAX_OUTPUT)
        snprintf(err, errlen, "%s %s printed more than %u bytes; stopped (its first line must be "
                              "the password or token)", key_name, command, CREDS_MAX_OUTPUT);
    else if (timed_out)
        snprintf(err, errlen, "%s %s did not finish within %.3g s; stopped", key_name, command,
                 timeout_ms / 1000.0);
    else if (read_errno != 0)
        snprintf(err, errlen, "%s %s: cannot read its output: %s", key_name, command,
                 strerror(read_errno));
    else if (!exited)
        snprintf(err, errlen, "%s %s: cannot wait for it to end", key_name, command);
    else if (WIFSIGNALED(status))
        snprintf(err, errlen, "%s %s was killed by signal %d", key_name, command,
                 WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && line->total == 0)
        snprintf(err, errlen, "%s %s exited with status 127 (it could not be executed)",
                 key_name, command);
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        snprintf(err, errlen, "%s %s exited with status %d", key_name, command,
                 WEXITSTATUS(status));
    else if (line->len == 0 || (line->len == 1 && line->buf[0] == '\r'))
        snprintf(err, errlen, "%s %s printed %s; the first line of its output must be the "
                              "password or token", key_name, command,
                 line->total == 0 ? "nothing" : "an empty first line");
    else if (has_nul(line))
        snprintf(err, errlen, "%s %s printed a NUL byte in its first line; a password or "
                              "token cannot hold one", key_name, command);
    if (err[0] != '\0') {
        st = CREDS_ERR_FAILED;
    } else if ((*secret = line_string(line)) == NULL) {
        snprintf(err, errlen, "out of memory running %s", key_name);
        st = CREDS_ERR_NOMEM;
    }

out:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    if (devnull >= 0)
        close(devnull);
    if (line != NULL) {
        wipe(line, sizeof *line);
        free(line);
    }
    free(argv);
    free(copy);
    free(envp);
    return st;
}

enum creds_status creds_read_credential(const char *dir, const char *name, char **secret,
                                        char *err, size_t errlen)
{
    char path[4096];
    *secret = NULL;
    err[0] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT)
        return CREDS_NOT_FOUND;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open systemd credential %s: %s", path, strerror(errno));
        return CREDS_ERR_CONFIG;
    }
    struct first_line *line = calloc(1, sizeof *line);
    if (line == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory reading %s", path);
        return CREDS_ERR_NOMEM;
    }
    enum creds_status st = CREDS_OK;
    char chunk[4096];
    while (!line->complete && !line->too_long) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read systemd credential %s: %s", path, strerror(errno));
            st = CREDS_ERR_CONFIG;
            break;
        }
        if (got == 0)
            break;
        take(line, chunk, (size_t)got);
    }
    wipe(chunk, sizeof chunk);
    close(fd);
    if (st == CREDS_OK && line->too_long) {
        snprintf(err, errlen, "systemd credential %s: its first line is longer than %d bytes",
                 path, CREDS_MAX_LINE);
        st = CREDS_ERR_CONFIG;
    } else if (st == CREDS_OK && (line->len == 0 || (line->len == 1 && line->buf[0] == '\r'))) {
        snprintf(err, errlen, "systemd credential %s is empty; its first line must be the "
                              "password or token", path);
        st = CREDS_ERR_CONFIG;
    } else if (st == CREDS_OK && has_nul(line)) {
        snprintf(err, errlen, "systemd credential %s holds a NUL byte in its first line; a "
                              "password or token cannot hold one", path);
        st = CREDS_ERR_CONFIG;
    } else if (st == CREDS_OK && (*secret = line_string(line)) == NULL) {
        snprintf(err, errlen, "out of memory reading %s", path);
        st = CREDS_ERR_NOMEM;
    }
    wipe(line, sizeof *line);
    free(line);
    return st;
}
