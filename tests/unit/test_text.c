/*
 * test_text.c - logical lines and lists shared by main.cf and the password
 * maps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "text.h"

/* All logical lines of text as "line:text|...", or the failure. */
static void lines(const char *text, size_t len, bool reject_nul, char *out, size_t n)
{
    struct text_lines t = {.text = text, .len = len, .reject_nul = reject_nul};
    enum text_status ts;
    size_t k = 0;
    out[0] = '\0';
    while ((ts = text_next(&t)) == TEXT_LINE)
        k += (size_t)snprintf(out + k, n - k, "%u:%s|", t.line, t.buf);
    if (ts == TEXT_ORPHAN)
        snprintf(out + k, n - k, "orphan@%u", t.lineno);
    else if (ts == TEXT_NUL)
        snprintf(out + k, n - k, "nul@%u", t.lineno);
    text_lines_free(&t);
}

static void test_lines(void)
{
    char out[512];
    const char *text = "# comment\n"
                       "a = 1\n"
                       "\n"
                       "   # indented comment keeps the line open\n"
                       "b = 2,\n"
                       "\t3\r\n"
                       "  4\n"
                       "c = last";
    lines(text, strlen(text), true, out, sizeof out);
    CHECK_STR(out, "2:a = 1|5:b = 2, 3 4|8:c = last|");
    /* Every cut of the text gives the lines of that prefix. */
    for (size_t cut = 0; cut <= strlen(text); cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, text, cut);
        lines(copy, cut, true, out, sizeof out);
        CHECK(strstr(out, "orphan") == NULL);
        free(copy);
    }
    lines("", 0, true, out, sizeof out);
    CHECK_STR(out, "");
    lines("  x\n", 4, true, out, sizeof out);
    CHECK_STR(out, "orphan@1");
    const char *gaps = "a\n\n# c\n b\nc\n  d\n";
    lines(gaps, strlen(gaps), true, out, sizeof out);
    CHECK_STR(out, "1:a b|5:c d|");
    /* The NUL is found while looking for the end of the line before, as
     * config.c always did: nothing is returned past a bad line. */
    lines("a = 1\nb\0 = 2\n", 13, true, out, sizeof out);
    CHECK_STR(out, "nul@2");
    /* Password maps do not look for NUL bytes. */
    lines("a = 1\nb\0 = 2\n", 13, false, out, sizeof out);
    CHECK_STR(out, "1:a = 1|2:b|");
}

static void test_lists(void)
{
    const char *cur = "  noplaintext,noanonymous , ,\tx ", *item;
    size_t n;
    CHECK(text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    CHECK(text_item_is(item, n, "NOPLAINTEXT"));
    CHECK(text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    CHECK(text_item_is(item, n, "noanonymous"));
    CHECK(!text_item_is(item, n, "noanonymou"));
    CHECK(!text_item_is(item, n, "noanonymouss"));
    CHECK(text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    CHECK_INT(n, 1);
    CHECK(!text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    CHECK(!text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    cur = "";
    CHECK(!text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n));
    cur = "!SSLv2:!SSLv3";
    CHECK(text_list_next(&cur, ", \t:", &item, &n));
    CHECK(text_item_is(item, n, "!sslv2"));
    CHECK(text_list_next(&cur, ", \t:", &item, &n));
    CHECK(text_item_is(item, n, "!SSLv3"));
    CHECK(!text_list_next(&cur, ", \t:", &item, &n));
}

/* A FIFO where a table or an :include: file is expected is refused at
 * once; it used to block in open() waiting for a writer.  The alarm turns
 * a hang into a failure of this test instead of meson's timeout. */
static void test_read_fifo(void)
{
    char dir[] = "/tmp/hato-text-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK_INT(mkfifo(path, 0600), 0);
    char *text = NULL;
    size_t len = 0;
    alarm(5);
    CHECK_INT(text_read_file(path, 1000, &text, &len), EINVAL);
    alarm(0);
    CHECK(text == NULL);
    free(text);
    /* And a regular file still reads whole. */
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("a: b\n", f);
        fclose(f);
    }
    CHECK_INT(text_read_file(path, 1000, &text, &len), 0);
    CHECK_INT(len, 5);
    free(text);
    unlink(path);
    snprintf(path, sizeof path, "%s/fifo", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_lines();
    test_lists();
    test_read_fifo();
    return check_finish("text");
}
