/*
 * ehlo.c - capabilities from an EHLO reply (RFC 5321 4.1.1.1, 4.1.2).
 *
 * Each line after the first is "keyword *(SP param)".  Whatever does not fit
 * that shape is skipped: a server's odd line must not cost the session.
 */
#include "reply/ehlo.h"

#include <string.h>

/* RFC 4422 3.1: a mechanism name is 1 to 20 characters. */
#define MECH_NAME_MAX 20

static const struct {
    const char *name;
    unsigned flag;
} keywords[] = {
    {"STARTTLS", EHLO_STARTTLS},         /* RFC 3207 */
    {"PIPELINING", EHLO_PIPELINING},     /* RFC 2920 */
    {"8BITMIME", EHLO_8BITMIME},         /* RFC 6152 */
    {"SMTPUTF8", EHLO_SMTPUTF8},         /* RFC 6531 */
    {"CHUNKING", EHLO_CHUNKING},         /* RFC 3030 */
    {"BINARYMIME", EHLO_BINARYMIME},     /* RFC 3030 */
    {"DSN", EHLO_DSN},                   /* RFC 3461 */
    {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDSTATUSCODES}, /* RFC 2034 */
    {"REQUIRETLS", EHLO_REQUIRETLS},     /* RFC 8689 */
    {"SIZE", EHLO_SIZE},                 /* RFC 1870 */
    {"AUTH", EHLO_AUTH},                 /* RFC 4954 */
};

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_keyword_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-';
}

/* s[0..n) equals the upper-case word w, ignoring case. */
static bool word_is(const char *s, size_t n, const char *w)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (w[i] == '\0' || upper(s[i]) != w[i])
            return false;
    return w[n] == '\0';
}

static unsigned keyword_flag(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (word_is(s, n, keywords[i].name))
            return keywords[i].flag;
    return 0;
}

unsigned ehlo_flags_named(const char *list)
{
    unsigned flags = 0;
    while (*list != '\0') {
        list += strspn(list, " ,\t");
        size_t n = strcspn(list, " ,\t");
        if (n > 0)
            flags |= keyword_flag(list, n);
        list += n;
    }
    return flags;
}

/* "SIZE" alone or "SIZE 0" leaves size_limit 0 (RFC 1870 4: no fixed
 * limit); a parameter that is not a whole number, or does not fit, is
 * ignored rather than guessed at. */
static void parse_size(ehlo_caps *caps, const char *s)
{
    uint64_t v = 0;
    const char *start;

    while (is_space(*s))
        s++;
    start = s;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return;
        v = v * 10 + d;
    }
    if (s == start || (*s != '\0' && !is_space(*s)))
        return;
    caps->size_limit = v;
}

/* True when the list holds the n-byte name (already upper case). */
static bool list_has(const char *list, const char *name, size_t n)
{
    while (*list != '\0') {
        size_t len = strcspn(list, " ");
        if (len == n && memcmp(list, name, n) == 0)
            return true;
        list += len;
        while (*list == ' ')
            list++;
    }
    return false;
}

static void add_mechanism(ehlo_caps *caps, const char *s, size_t n)
{
    char name[MECH_NAME_MAX + 1];
    size_t i, used;

    if (n == 0 || n > MECH_NAME_MAX)
        return;
    for (i = 0; i < n; i++) {
        char c = upper(s[i]);
        /* RFC 4422 3.1: upper-case letters, digits, '-' and '_' */
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return;
        name[i] = c;
    }
    name[n] = '\0';
    if (list_has(caps->auth, name, n))
        return;
    used = strlen(caps->auth);
    /* Too long for the list: keep it to whole names (see ehlo.h). */
    if (used + (used > 0) + n >= sizeof caps->auth)
        return;
    if (used > 0)
        caps->auth[used++] = ' ';
    memcpy(caps->auth + used, name, n + 1);
}

static void parse_auth(ehlo_caps *caps, const char *s)
{
    for (;;) {
        size_t n;

        while (is_space(*s))
            s++;
        if (*s == '\0')
            return;
        for (n = 0; s[n] != '\0' && !is_space(s[n]); n++)
            ;
        add_mechanism(caps, s, n);
        s += n;
    }
}

static void parse_line(ehlo_caps *caps, const char *s)
{
    const char *kw;
    size_t n;
    unsigned flag;

    while (is_space(*s))
        s++;
    kw = s;
    while (is_keyword_char(*s))
        s++;
    n = (size_t)(s - kw);
    if (n == 0)
        return;
    flag = keyword_flag(kw, n);
    if (*s == '=') {
        /* "AUTH=PLAIN LOGIN": what Outlook and Netscape wanted before
         * RFC 2554 was final; servers still send it beside the real one. */
        if (flag != EHLO_AUTH)
            return;
        s++;
    } else if (*s != '\0' && !is_space(*s)) {
        return;
    }
    if (flag == 0)
        return;
    caps->flags |= flag;
    if (flag == EHLO_SIZE)
        parse_size(caps, s);
    else if (flag == EHLO_AUTH)
        parse_auth(caps, s);
}

void ehlo_parse(ehlo_caps *caps, const reply *r)
{
    size_t i;

    memset(caps, 0, sizeof *caps);
    if (r == NULL || r->code != 250)
        return;
    for (i = 1; i < r->nlines; i++)
        parse_line(caps, r->lines[i]);
}

bool ehlo_has_auth(const ehlo_caps *caps, const char *name)
{
    char up[MECH_NAME_MAX];
    size_t n, i;

    if (name == NULL)
        return false;
    n = strlen(name);
    if (n == 0 || n > MECH_NAME_MAX)
        return false; /* no such name can be in the list */
    for (i = 0; i < n; i++)
        up[i] = upper(name[i]);
    return list_has(caps->auth, up, n);
}
