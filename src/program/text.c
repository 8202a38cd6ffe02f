/*
 * text.c - logical lines and lists of main.cf and lookup tables.
 */
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wipe.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Appends s[0..n) to buf, after one space when buf is not empty.  Grows
 * by copying so that no unwiped copy of a secret is left behind, as
 * realloc() may do. */
static bool append(struct text_lines *t, const char *s, size_t n)
{
    size_t need = t->buf_len + 1 + n + 1;
    if (need > t->buf_cap || t->buf == NULL) {
        size_t ncap = t->buf_cap ? t->buf_cap : 128;
        while (ncap < need)
            ncap *= 2;
        char *nb = malloc(ncap);
        if (nb == NULL)
            return false;
        if (t->buf != NULL) {
            memcpy(nb, t->buf, t->buf_len);
            wipe(t->buf, t->buf_cap);
            free(t->buf);
        }
        t->buf = nb;
        t->buf_cap = ncap;
    }
    if (t->buf_len > 0)
        t->buf[t->buf_len++] = ' ';
    memcpy(t->buf + t->buf_len, s, n);
    t->buf_len += n;
    t->buf[t->buf_len] = '\0';
    return true;
}

enum text_status text_next(struct text_lines *t)
{
    t->buf_len = 0;
    if (t->buf != NULL)
        t->buf[0] = '\0';
    while (t->pos < t->len) {
        size_t start = t->pos;
        unsigned start_lineno = t->lineno;
        const char *ls = t->text + t->pos;
        const char *nl = memchr(ls, '\n', t->len - t->pos);
        size_t n = nl ? (size_t)(nl - ls) : t->len - t->pos;
        t->pos += n + (nl ? 1 : 0);
        t->lineno++;
        /* n is 0 for an empty line (nl == ls), whatever cppcheck infers. */
        // cppcheck-suppress knownConditionTrueFalse
        if (n > 0 && ls[n - 1] == '\r')
            n--;
        if (t->reject_nul && memchr(ls, '\0', n) != NULL)
            return TEXT_NUL;
        size_t i = 0;
        while (i < n && is_blank(ls[i]))
            i++;
        if (i == n || ls[i] == '#')
            continue;
        if (i > 0 && t->buf_len == 0)
            return TEXT_ORPHAN;
        if (i == 0 && t->buf_len > 0) {
            /* The next logical line starts here: leave it unread. */
            t->pos = start;
            t->lineno = start_lineno;
            return TEXT_LINE;
        }
        if (t->buf_len == 0)
            t->line = t->lineno;
        if (!append(t, ls + i, n - i))
            return TEXT_NOMEM;
    }
    return t->buf_len > 0 ? TEXT_LINE : TEXT_END;
}

void text_lines_free(struct text_lines *t)
{
    if (t->buf != NULL) {
        wipe(t->buf, t->buf_cap);
        free(t->buf);
    }
    t->buf = NULL;
    t->buf_len = t->buf_cap = 0;
}

bool text_list_next(const char **cursor, const char *seps, const char **item, size_t *n)
{
    const char *s = *cursor;
    s += strspn(s, seps);
    if (*s == '\0') {
        *cursor = s;
        return false;
    }
    *item = s;
    *n = strcspn(s, seps);
    *cursor = s + *n;
    return true;
}

bool text_item_is(const char *item, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(item, word, n) == 0;
}

void text_buf_add(struct text_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (ns == NULL) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

int text_read_file(const char *path, size_t max, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer, so
     * an ":include:" or a table naming one hung the run (root's queue
     * flush included) before the regular-file check below could refuse
     * it.  Reads of a regular file ignore the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(sb.st_mode) || (uintmax_t)sb.st_size > max) {
        close(fd);
        return S_ISREG(sb.st_mode) ? EFBIG : EINVAL;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return ENOMEM;
    }
    /* Bounded by the size fstat saw: a file growing meanwhile is cut. */
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

void text_split_entry(char *s, size_t *klen, char **val, size_t *vlen)
{
    size_t k = 0;
    while (s[k] != '\0' && s[k] != ' ' && s[k] != '\t')
        k++;
    char *v = s + k;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *klen = k;
    *val = v;
    *vlen = n;
}
