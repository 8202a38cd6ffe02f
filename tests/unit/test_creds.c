/*
 * test_creds.c - smtp_sasl_password_command and systemd credentials, with
 * small shell scripts written to a temporary directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "creds.h"
#include "wipe.h"

static char dir[] = "/tmp/hato-test-creds-XXXXXX";

/* Writes an executable script named name holding body after "#!/bin/sh";
 * its path goes to out. */
static void script(const char *name, const char *body, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    CHECK_INT(chmod(out, 0700), 0);
}

static enum creds_status run(const char *command, unsigned timeout_ms, char **secret, char *err,
                             size_t n)
{
    const char *extra[] = {"HATO_RELAY=[smtp.example.com]:587", "HATO_SASL_USER=alice", NULL};
    return creds_run_command("smtp_sasl_password_command", command, extra, timeout_ms, secret,
                             err, n);
}

static void test_success(void)
{
    char cmd[512], err[2048], *s = NULL;

    script("ok", "printf 'tok-123\\n'", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "tok-123");
    CHECK_STR(err, "");
    wipe_free_str(s);

    /* The first line is the secret; the rest is not used. */
    script("multi", "echo 'first line'; echo second; echo third", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "first line");
    wipe_free_str(s);

    /* No line end at all, and CRLF. */
    script("bare", "printf 'no-newline'", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "no-newline");
    wipe_free_str(s);
    script("crlf", "printf 'pw\\r\\nx\\r\\n'", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "pw");
    wipe_free_str(s);

    /* Arguments are split at white space, without a shell. */
    script("args", "echo \"$1-$2-$#\"", cmd, sizeof cmd);
    char withargs[600];
    snprintf(withargs, sizeof withargs, "%s  one\ttwo", cmd);
    CHECK_INT(run(withargs, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "one-two-2");
    wipe_free_str(s);
    snprintf(withargs, sizeof withargs, "%s '$(id)' ;x", cmd);
    CHECK_INT(run(withargs, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "'$(id)'-;x-2");
    wipe_free_str(s);

    /* A long token just under the limit passes. */
    char body[256];
    snprintf(body, sizeof body, "head -c %d /dev/zero | tr '\\0' t; echo", CREDS_MAX_LINE);
    script("longtoken", body, cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_INT(s ? strlen(s) : 0, CREDS_MAX_LINE);
    wipe_free_str(s);
}

static void test_environment(void)
{
    char cmd[512], body[600], err[2048], *s = NULL, envfile[400];

    /* Only the allowed names pass; a secret in hato's environment does not. */
    setenv("HATO_TEST_SECRET", "do-not-pass", 1);
    setenv("HOME", "/home/test-user", 1);
    snprintf(envfile, sizeof envfile, "%s/env.out", dir);
    snprintf(body, sizeof body, "env > %s; echo pw", envfile);
    script("env", body, cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    wipe_free_str(s);
    FILE *f = fopen(envfile, "r");
    CHECK(f != NULL);
    char all[8192] = "";
    if (f != NULL) {
        size_t n = fread(all, 1, sizeof all - 1, f);
        all[n] = '\0';
        fclose(f);
    }
    CHECK_HAS(all, "PATH=/usr/local/bin:/usr/bin:/bin\n");
    CHECK_HAS(all, "HOME=/home/test-user\n");
    CHECK_HAS(all, "HATO_RELAY=[smtp.example.com]:587\n");
    CHECK_HAS(all, "HATO_SASL_USER=alice\n");
    CHECK(strstr(all, "HATO_TEST_SECRET") == NULL);
    CHECK(strstr(all, "do-not-pass") == NULL);
    unsetenv("HATO_TEST_SECRET");
    unlink(envfile);

    /* Standard input is /dev/null: the command cannot eat the message. */
    script("stdin", "cat; echo after-eof", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "after-eof");
    wipe_free_str(s);
}

static void test_failures(void)
{
    char cmd[512], body[256], err[2048], *s = NULL;

    script("fail", "echo sekrit-on-stdout; echo 'a diagnostic' >&2; exit 3", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK(s == NULL);
    CHECK_HAS(err, "smtp_sasl_password_command");
    CHECK_HAS(err, cmd);
    CHECK_HAS(err, "exited with status 3");
    CHECK(strstr(err, "sekrit") == NULL);

    script("empty", "exit 0", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK_HAS(err, "printed nothing");
    CHECK_HAS(err, cmd);
    script("emptyline", "echo; echo sekrit", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK_HAS(err, "empty first line");
    CHECK(strstr(err, "sekrit") == NULL);
    script("nul", "printf 'pw\\000sekrit\\n'", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK(s == NULL);
    CHECK_HAS(err, "NUL byte");
    CHECK(strstr(err, "sekrit") == NULL);

    /* A command that hangs is stopped at the timeout, not waited for. */
    script("hang", "echo partial-sekrit; exec sleep 30", cmd, sizeof cmd);
    time_t t0 = time(NULL);
    CHECK_INT(run(cmd, 500, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK(time(NULL) - t0 < 5);
    CHECK_HAS(err, "did not finish within 0.5 s");
    CHECK(strstr(err, "sekrit") == NULL);
    CHECK(s == NULL);

    /* Over-long first line: refused, and the bytes are not echoed. */
    snprintf(body, sizeof body, "head -c %d /dev/zero | tr '\\0' z; echo", CREDS_MAX_LINE + 1);
    script("long", body, cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK_HAS(err, "longer than 8192 bytes");
    CHECK(strstr(err, "zzz") == NULL);
    /* Endless output is stopped. */
    script("endless", "echo pw; exec yes sekrit", cmd, sizeof cmd);
    t0 = time(NULL);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK(time(NULL) - t0 < 4);
    CHECK_HAS(err, "more than 65536 bytes");
    CHECK(strstr(err, "sekrit") == NULL);

    script("signal", "kill -TERM $$", cmd, sizeof cmd);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_FAILED);
    CHECK_HAS(err, "killed by signal 15");

    /* Configuration errors: not absolute, not executable, missing. */
    CHECK_INT(run("secret-tool lookup x", 5000, &s, err, sizeof err), CREDS_ERR_CONFIG);
    CHECK_HAS(err, "absolute path");
    snprintf(cmd, sizeof cmd, "%s/noexec", dir);
    FILE *f = fopen(cmd, "w");
    if (f != NULL)
        fclose(f);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_CONFIG);
    CHECK_HAS(err, "Permission denied");
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s/missing --flag", dir);
    CHECK_INT(run(cmd, 5000, &s, err, sizeof err), CREDS_ERR_CONFIG);
    CHECK_HAS(err, "No such file");
    CHECK_INT(run("", 5000, &s, err, sizeof err), CREDS_ERR_CONFIG);
}

static void test_credential(void)
{
    char path[400], err[2048], *s = NULL;

    snprintf(path, sizeof path, "%s/hato-password", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("cred-pw\r\nignored\n", f);
        fclose(f);
    }
    CHECK_INT(creds_read_credential(dir, "hato-password", &s, err, sizeof err), CREDS_OK);
    CHECK_STR(s, "cred-pw");
    wipe_free_str(s);
    s = NULL;
    CHECK_INT(creds_read_credential(dir, "other", &s, err, sizeof err), CREDS_NOT_FOUND);
    CHECK(s == NULL);

    f = fopen(path, "w");
    if (f != NULL)
        fclose(f);
    CHECK_INT(creds_read_credential(dir, "hato-password", &s, err, sizeof err), CREDS_ERR_CONFIG);
    CHECK_HAS(err, path);
    CHECK_HAS(err, "empty");
    f = fopen(path, "w");
    if (f != NULL) {
        for (int i = 0; i < CREDS_MAX_LINE + 10; i++)
            fputc('q', f);
        fclose(f);
    }
    CHECK_INT(creds_read_credential(dir, "hato-password", &s, err, sizeof err), CREDS_ERR_CONFIG);
    CHECK_HAS(err, "longer than");
    CHECK(strstr(err, "qqq") == NULL);

    /* fuzz/fuzz_creds: a NUL in the first line used to cut the secret
     * ("\0\0" became an empty password); refused, without echoing it. */
    static const char nul_lines[][12] = {"\0\0\0\0\n", "pw\0sekrit\n"};
    for (size_t i = 0; i < 2; i++) {
        f = fopen(path, "w");
        if (f != NULL) {
            fwrite(nul_lines[i], 1, i == 0 ? 5 : 10, f);
            fclose(f);
        }
        s = NULL;
        CHECK_INT(creds_read_credential(dir, "hato-password", &s, err, sizeof err),
                  CREDS_ERR_CONFIG);
        CHECK(s == NULL);
        CHECK_HAS(err, "NUL byte");
        CHECK(strstr(err, "sekrit") == NULL);
    }
    unlink(path);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_success();
    test_environment();
    test_failures();
    test_credential();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("creds");
}
