/*
 * select.c - choosing a SASL mechanism, and saying why none fits.
 *
 * Pure functions: no SASL library, no I/O, no allocation.  The message for
 * "nothing fits" is the point of this file: Cyrus SASL's "No worthy mechs
 * found" named neither what the server offered nor which setting excluded
 * it, and that sentence is what people following relay guides got stuck on.
 */
#include "sasl/sasl.h"

#include <stdio.h>
#include <string.h>

/* What a mechanism needs or is, for the rules of sasl_select. */
enum {
    MECH_PASSWORD = 1u << 0,     /* needs the user's password */
    MECH_PLAINTEXT = 1u << 1,    /* sends the secret itself: noplaintext */
    MECH_ANONYMOUS = 1u << 2,    /* noanonymous */
    MECH_CLIENT_FIRST = 1u << 3, /* initial response on the AUTH line */
    MECH_LATER = 1u << 4,        /* planned, not implemented yet */
    MECH_NEVER = 1u << 5,        /* known, and hato will not use it */
    MECH_DICTIONARY = 1u << 6,   /* a recorded exchange lets a guesser test
                                    passwords offline: nodictionary */
    MECH_MUTUAL = 1u << 7,       /* proves the server knows the secret too,
                                    and hato requires that proof: mutual_auth */
    MECH_EXPLICIT = 1u << 8,     /* only when the filter names it */
    MECH_CERT = 1u << 9,         /* needs a client certificate on the link */
    MECH_BINDING = 1u << 10,     /* needs TLS channel binding data */
    MECH_TOKEN = 1u << 11,       /* the "password" is an OAuth access token */
    MECH_OWN = 1u << 12,         /* run by hato itself (oauth.c), whatever
                                    the SASL library has */
};

typedef struct mech_info {
    const char *name;
    unsigned flags;
} mech_info;

/*
 * Every mechanism hato knows.  The order of the table is the preference
 * order, strongest first; only entries without MECH_LATER or MECH_NEVER are
 * ever chosen.  docs/auth.md explains the order; keep the two in step.
 *
 * EXTERNAL, OAUTHBEARER and XOAUTH2 come first but are MECH_EXPLICIT: they
 * are chosen only when smtp_sasl_mechanism_filter names them.  An access
 * token and a password look alike, so hato cannot guess which one the
 * password source holds, and a client certificate made for TLS alone does
 * not mean the server maps it to the account.  Once named, they win: no
 * reusable password crosses the wire (EXTERNAL), or only a short-lived
 * token does (OAuth).
 *
 * The -PLUS variants bind the exchange to the TLS channel (RFC 5802
 * section 6, RFC 9266), so a man in the middle holding a certificate the
 * user accepted still cannot relay the login.
 *
 * nodictionary (MECH_DICTIONARY): whoever records the exchange can test
 * password guesses offline.  PLAIN and LOGIN show the password itself;
 * CRAM-MD5 and DIGEST-MD5 show a challenge and its MD5 keyed hash; SCRAM
 * shows salt, iteration count and a proof that a guess can be checked
 * against (the iterations slow a guesser, they do not stop one).  The
 * -PLUS variants are the same exchange.  Cyrus SASL, which Postfix's
 * options come from, marks the same set.  EXTERNAL and the OAuth tokens
 * carry nothing a dictionary helps with.
 *
 * mutual_auth (MECH_MUTUAL): SCRAM's server signature (RFC 5802 section 3)
 * and DIGEST-MD5's rspauth (RFC 2831 section 2.1.3) prove the server knows
 * the secret; hato refuses a 235 that arrives without that proof (smtp.c,
 * on_auth).  GSSAPI would join them.
 *
 * GSSAPI stays MECH_LATER: libgsasl has it, but hato has no setting for
 * Kerberos credentials and no test KDC.  Names not in this table (NTLM,
 * SECURID, ...) are reported as not supported by hato.
 */
static const mech_info mechs[] = {
    { "EXTERNAL", MECH_CLIENT_FIRST | MECH_EXPLICIT | MECH_CERT },
    { "OAUTHBEARER", MECH_TOKEN | MECH_PLAINTEXT | MECH_CLIENT_FIRST |
                         MECH_EXPLICIT | MECH_OWN },
    { "XOAUTH2", MECH_TOKEN | MECH_PLAINTEXT | MECH_CLIENT_FIRST |
                     MECH_EXPLICIT | MECH_OWN },
    { "SCRAM-SHA-256-PLUS", MECH_PASSWORD | MECH_CLIENT_FIRST | MECH_BINDING |
                                MECH_DICTIONARY | MECH_MUTUAL },
    { "SCRAM-SHA-1-PLUS", MECH_PASSWORD | MECH_CLIENT_FIRST | MECH_BINDING |
                              MECH_DICTIONARY | MECH_MUTUAL },
    { "SCRAM-SHA-256",
      MECH_PASSWORD | MECH_CLIENT_FIRST | MECH_DICTIONARY | MECH_MUTUAL },
    { "SCRAM-SHA-1",
      MECH_PASSWORD | MECH_CLIENT_FIRST | MECH_DICTIONARY | MECH_MUTUAL },
    { "GSSAPI", MECH_CLIENT_FIRST | MECH_MUTUAL | MECH_LATER },
    { "DIGEST-MD5", MECH_PASSWORD | MECH_DICTIONARY | MECH_MUTUAL },
    { "CRAM-MD5", MECH_PASSWORD | MECH_DICTIONARY },
    { "PLAIN",
      MECH_PASSWORD | MECH_PLAINTEXT | MECH_CLIENT_FIRST | MECH_DICTIONARY },
    { "LOGIN", MECH_PASSWORD | MECH_PLAINTEXT | MECH_DICTIONARY },
    /* A submission client has no use for an anonymous login; listed so that
     * noanonymous has something to name. */
    { "ANONYMOUS", MECH_ANONYMOUS | MECH_CLIENT_FIRST | MECH_NEVER },
};
#define MECH_COUNT (sizeof mechs / sizeof mechs[0])

/* Why an offered mechanism cannot be used.  One mechanism may have several
 * reasons; the message names the first in reason_order and the advice
 * accounts for all of them. */
enum {
    WHY_NOANONYMOUS = 1u << 0,
    WHY_HATO = 1u << 1,       /* hato does not implement it */
    WHY_HATO_LATER = 1u << 2, /* hato does not implement it yet */
    WHY_LIBRARY = 1u << 3,    /* the local SASL library lacks it */
    WHY_PASSWORD = 1u << 4,
    WHY_FILTER = 1u << 5,
    WHY_NOPLAINTEXT = 1u << 6,
    WHY_BINDING = 1u << 7,    /* no channel binding on this link */
    WHY_CERT = 1u << 8,       /* no client certificate on this link */
    WHY_TOKEN = 1u << 9,      /* OAuth: no token */
    WHY_EXPLICIT = 1u << 10,  /* no filter, and it needs to be named */
    WHY_NODICTIONARY = 1u << 11,
    WHY_MUTUAL = 1u << 12,
};
/* Policy first (it refuses ANONYMOUS whatever hato could do), then what no
 * setting changes, then settings from the hardest to the easiest to change. */
static const unsigned reason_order[] = {
    WHY_NOANONYMOUS, WHY_HATO,     WHY_HATO_LATER, WHY_LIBRARY,
    WHY_BINDING,     WHY_CERT,     WHY_PASSWORD,   WHY_TOKEN,
    WHY_EXPLICIT,    WHY_FILTER,   WHY_MUTUAL,     WHY_NODICTIONARY,
    WHY_NOPLAINTEXT,
};
#define REASON_COUNT (sizeof reason_order / sizeof reason_order[0])
/* What settings can change, so the advice may suggest it.  Channel binding
 * is not: it depends on the TLS version and the server's extensions. */
#define WHY_FIXABLE                                                           \
    (WHY_LIBRARY | WHY_PASSWORD | WHY_FILTER | WHY_NOPLAINTEXT | WHY_CERT |   \
     WHY_TOKEN | WHY_EXPLICIT | WHY_NODICTIONARY | WHY_MUTUAL)

/* Distinct offered names the message lists.  Real servers offer a dozen at
 * most; a longer (hostile) list only lengthens the message, so past this the
 * names are still considered but only counted. */
#define SASL_OFFERS_MAX 32

typedef struct offer {
    char name[SASL_MECH_MAX]; /* upper case; '?' for bytes no name may hold */
    const mech_info *info;    /* NULL when hato does not know it */
    unsigned why;             /* WHY_* bits; 0 = usable */
} offer;

/* ------------------------------------------------------------------ */
/* Names and lists                                                     */

static bool is_separator(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
           c == '\f' || c == '\v';
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 4422 section 3.1: 1*20 of upper-case letters, digits, '-' and '_'
 * (after folding case, since hato compares case-insensitively). */
static bool is_mech_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Splits the next name off *p; names are separated by commas and/or white
 * space (Postfix's list syntax, which also covers the server's spaces).
 * Writes at most SASL_MECH_MAX - 1 bytes of it, upper case, to name, with
 * '?' for any byte a mechanism name may not hold, so it is safe to print.
 * Returns false at the end of the list.  *valid is false for a name that is
 * too long or has such bytes: it matches nothing. */
static bool next_name(const char **p, char name[SASL_MECH_MAX], bool *valid)
{
    const char *s = *p;
    size_t n = 0, len = 0;

    while (*s != '\0' && is_separator(*s))
        s++;
    if (*s == '\0') {
        *p = s;
        return false;
    }
    *valid = true;
    for (; *s != '\0' && !is_separator(*s); s++, len++) {
        char c = to_upper(*s);
        if (!is_mech_char(c)) {
            *valid = false;
            c = '?';
        }
        if (n < SASL_MECH_MAX - 1)
            name[n++] = c;
    }
    name[n] = '\0';
    if (len > SASL_MECH_MAX - 1)
        *valid = false;
    *p = s;
    return true;
}

/* True when the comma/space-separated list holds name (upper case, valid),
 * compared case-insensitively. */
static bool list_has(const char *list, const char *name)
{
    char item[SASL_MECH_MAX];
    bool valid;

    while (next_name(&list, item, &valid))
        if (valid && strcmp(item, name) == 0)
            return true;
    return false;
}

/* True when the list names nothing at all (NULL, "", only separators). */
static bool list_empty(const char *list)
{
    char item[SASL_MECH_MAX];
    bool valid;

    return list == NULL || !next_name(&list, item, &valid);
}

static const mech_info *mech_lookup(const char *upper)
{
    for (size_t i = 0; i < MECH_COUNT; i++)
        if (strcmp(mechs[i].name, upper) == 0)
            return &mechs[i];
    return NULL;
}

/* Upper-cases mech into a table lookup; NULL when unknown or malformed. */
static const mech_info *mech_find(const char *mech)
{
    char name[SASL_MECH_MAX];
    bool valid;

    if (mech == NULL || !next_name(&mech, name, &valid) || !valid)
        return NULL;
    return mech_lookup(name);
}

bool sasl_client_first(const char *mech)
{
    const mech_info *m = mech_find(mech);
    char name[SASL_MECH_MAX];
    bool valid;

    if (m != NULL)
        return (m->flags & MECH_CLIENT_FIRST) != 0;
    /* Every SCRAM and GS2 variant starts with the client (RFC 5802
     * section 5, RFC 5801 section 6). */
    if (mech == NULL || !next_name(&mech, name, &valid) || !valid)
        return false;
    return strncmp(name, "SCRAM-", 6) == 0 || strncmp(name, "GS2-", 4) == 0;
}

bool sasl_mutual(const char *mech)
{
    const mech_info *m = mech_find(mech);

    return m != NULL && (m->flags & MECH_MUTUAL) != 0;
}

/* ------------------------------------------------------------------ */
/* A bounded message                                                   */

typedef struct text {
    char *p;
    size_t cap; /* bytes at p, the terminating NUL included */
    size_t len;
    bool cut;   /* something did not fit */
} text;

static void text_init(text *t, char *p, size_t cap)
{
    t->p = p;
    t->cap = p != NULL ? cap : 0;
    t->len = 0;
    t->cut = false;
    if (t->cap > 0)
        t->p[0] = '\0';
}

static void put(text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->cap == 0 || t->cut)
        return;
    if (n > t->cap - 1 - t->len) {
        n = t->cap - 1 - t->len;
        t->cut = true;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void put_lower(text *t, const char *s)
{
    char low[SASL_MECH_MAX];
    size_t i = 0;

    for (; i < sizeof low - 1 && s[i] != '\0'; i++)
        low[i] = to_lower(s[i]);
    low[i] = '\0';
    put(t, low);
}

/* A cut message ends in "..." so nobody takes it for the whole story. */
static void text_finish(text *t)
{
    if (t->cut && t->cap >= 4)
        memcpy(t->p + t->cap - 4, "...", 4);
}

static unsigned primary_reason(unsigned why)
{
    for (size_t i = 0; i < REASON_COUNT; i++)
        if (why & reason_order[i])
            return reason_order[i];
    return 0;
}

/* ------------------------------------------------------------------ */
/* The message                                                         */

/* The setting that would let a mechanism through, for one reason.  names
 * lists the mechanisms (for the filter and the library). */
static void put_names_lower(text *t, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put(t, " or ");
        put_lower(t, names[i]);
    }
}

/* The security options' key for this link. */
static const char *security_key(bool tls)
{
    return tls ? "smtp_sasl_tls_security_options" : "smtp_sasl_security_options";
}

static void put_fix(text *t, unsigned why, const char *const *names,
                    size_t n, bool tls, bool combined)
{
    switch (why) {
    case WHY_PASSWORD:
        put(t, "add a password for this server to smtp_sasl_password_maps");
        break;
    case WHY_TOKEN:
        put(t, "give this server an OAuth access token as its password "
               "(smtp_sasl_password_command prints a fresh one)");
        break;
    case WHY_FILTER:
    case WHY_EXPLICIT:
        put(t, "add ");
        put_names_lower(t, names, n);
        put(t, " to smtp_sasl_mechanism_filter");
        break;
    case WHY_CERT:
        if (!tls)
            put(t, "use TLS (smtp_tls_security_level = encrypt) with ");
        else
            put(t, "configure ");
        put(t, "a client certificate (smtp_tls_cert_file, smtp_tls_key_file)");
        break;
    case WHY_NODICTIONARY:
        put(t, "remove nodictionary from ");
        put(t, security_key(tls));
        break;
    case WHY_MUTUAL:
        put(t, "remove mutual_auth from ");
        put(t, security_key(tls));
        break;
    case WHY_NOPLAINTEXT:
        if (tls)
            put(t, "allow plaintext mechanisms over TLS "
                   "(smtp_sasl_tls_security_options = noanonymous)");
        else {
            /* Its own pair of alternatives: keep it unambiguous when it is
             * one of several settings the same mechanism needs. */
            put(t, combined ? "either use TLS" : "use TLS");
            put(t, " (smtp_tls_security_level = encrypt)");
            put(t, combined ? " or " : ", or ");
            put(t, "allow plaintext mechanisms (smtp_sasl_security_options "
                   "= noanonymous)");
        }
        break;
    case WHY_LIBRARY:
        put(t, "install a libgsasl built with ");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                put(t, " or ");
            put(t, names[i]);
        }
        break;
    default:
        break;
    }
}

/* The advice: every single setting that alone would make some offered
 * mechanism usable, as alternatives; when no single setting does, all the
 * settings the strongest reachable mechanism needs. */
static void put_advice(text *t, const offer *offers, size_t count, bool tls)
{
    /* Alternatives: the commonest fix first.  Together: the hardest
     * first, ending with the pair of TLS alternatives. */
    static const unsigned fixes[] = {
        WHY_PASSWORD, WHY_TOKEN,  WHY_FILTER,       WHY_EXPLICIT,
        WHY_NOPLAINTEXT, WHY_MUTUAL, WHY_NODICTIONARY, WHY_CERT, WHY_LIBRARY,
    };
    /* WHY_NOPLAINTEXT last: its "either ... or" ends the sentence. */
    static const unsigned together[] = {
        WHY_LIBRARY, WHY_CERT,   WHY_PASSWORD,     WHY_TOKEN,      WHY_FILTER,
        WHY_EXPLICIT, WHY_MUTUAL, WHY_NODICTIONARY, WHY_NOPLAINTEXT,
    };
    const offer *best = NULL;
    bool any = false;

    /* Alternatives, strongest mechanisms first within each. */
    for (size_t f = 0; f < sizeof fixes / sizeof fixes[0]; f++) {
        const char *names[MECH_COUNT];
        size_t n = 0;

        for (size_t m = 0; m < MECH_COUNT; m++)
            for (size_t i = 0; i < count; i++)
                if (offers[i].info == &mechs[m] && offers[i].why == fixes[f])
                    names[n++] = offers[i].name;
        if (n == 0)
            continue;
        put(t, any ? ", or " : "; to fix, ");
        put_fix(t, fixes[f], names, n, tls, false);
        any = true;
    }
    if (any)
        return;

    for (size_t m = 0; m < MECH_COUNT && best == NULL; m++)
        for (size_t i = 0; i < count; i++)
            if (offers[i].info == &mechs[m] && offers[i].why != 0 &&
                (offers[i].why & ~(unsigned)WHY_FIXABLE) == 0) {
                best = &offers[i];
                break;
            }
    if (best != NULL) {
        const char *names[1] = { best->name };
        bool first = true;

        put(t, "; to use ");
        put(t, best->name);
        put(t, ", ");
        for (size_t f = 0; f < sizeof together / sizeof together[0]; f++) {
            if (!(best->why & together[f]))
                continue;
            if (!first)
                put(t, ", and ");
            put_fix(t, together[f], names, 1, tls, true);
            first = false;
        }
        return;
    }

    /* Nothing a setting changes: say what hato can speak. */
    put(t, "; hato supports");
    for (size_t m = 0; m < MECH_COUNT; m++)
        if (!(mechs[m].flags & (MECH_LATER | MECH_NEVER))) {
            put(t, " ");
            put(t, mechs[m].name);
        }
}

/* The reason, after the names of the mechanisms it applies to. */
static void put_reason(text *t, unsigned why, bool plural, bool tls)
{
    const char *is = plural ? " are" : " is";

    switch (why) {
    case WHY_NOANONYMOUS:
        put(t, is);
        put(t, " excluded by noanonymous");
        break;
    case WHY_HATO:
        put(t, is);
        put(t, " not supported by hato");
        break;
    case WHY_HATO_LATER:
        put(t, is);
        put(t, " not supported by hato yet");
        break;
    case WHY_LIBRARY:
        put(t, is);
        put(t, " not supported by the local SASL library");
        break;
    case WHY_PASSWORD:
        put(t, plural ? " need" : " needs");
        put(t, " a password and none is set for this server");
        break;
    case WHY_TOKEN:
        put(t, plural ? " need" : " needs");
        put(t, " an OAuth access token as the password and none is set for "
               "this server");
        break;
    case WHY_FILTER:
        put(t, is);
        put(t, " not in the filter");
        break;
    case WHY_EXPLICIT:
        put(t, plural ? " are used only when smtp_sasl_mechanism_filter names "
                        "them"
                      : " is used only when smtp_sasl_mechanism_filter names "
                        "it");
        break;
    case WHY_BINDING:
        put(t, plural ? " need" : " needs");
        put(t, tls ? " TLS channel binding, which this TLS connection does "
                     "not provide (hato binds with tls-exporter, which needs "
                     "TLS 1.3 on both sides: mbedTLS 3.6 here and a TLS 1.3 "
                     "server)"
                   : " TLS channel binding, and this connection has no TLS "
                     "(smtp_tls_security_level = encrypt or higher)");
        break;
    case WHY_CERT:
        put(t, plural ? " need" : " needs");
        put(t, " a client certificate on a TLS connection");
        break;
    case WHY_NODICTIONARY:
        put(t, is);
        put(t, " excluded by nodictionary in ");
        put(t, security_key(tls));
        put(t, " (a recorded exchange allows offline password guessing)");
        break;
    case WHY_MUTUAL:
        put(t, is);
        put(t, " excluded by mutual_auth in ");
        put(t, security_key(tls));
        put(t, plural ? " (they do not authenticate the server)"
                      : " (it does not authenticate the server)");
        break;
    case WHY_NOPLAINTEXT:
        put(t, is);
        if (tls)
            put(t, " excluded by noplaintext in "
                   "smtp_sasl_tls_security_options");
        else
            put(t, " excluded by noplaintext without TLS");
        break;
    default:
        break;
    }
}

static void put_filter(text *t, const char *filter)
{
    char item[SASL_MECH_MAX];
    bool valid, first = true;

    put(t, "; smtp_sasl_mechanism_filter = ");
    while (next_name(&filter, item, &valid)) {
        if (!first)
            put(t, ", ");
        put_lower(t, item);
        first = false;
    }
}

/* Each reason once, with the offered mechanisms it applies to, each
 * clause preceded by sep: "; A and B are ...; C is ...". */
static void put_reasons(text *t, const offer *offers, size_t count, bool tls,
                        const char *sep)
{
    for (size_t r = 0; r < REASON_COUNT; r++) {
        size_t n = 0;
        for (size_t i = 0; i < count; i++)
            if (primary_reason(offers[i].why) == reason_order[r])
                n++;
        if (n == 0)
            continue;
        /* "A", "A and B", "A, B and C", in the server's order. */
        put(t, sep);
        sep = "; ";
        size_t done = 0;
        for (size_t i = 0; i < count; i++) {
            if (primary_reason(offers[i].why) != reason_order[r])
                continue;
            if (done > 0)
                put(t, done + 1 == n ? " and " : ", ");
            put(t, offers[i].name);
            done++;
        }
        put_reason(t, reason_order[r], n > 1, tls);
    }
}

/* After a choice: why the other offered mechanisms were passed over, for
 * the probe and the debug log, e.g. "PLAIN and LOGIN are excluded by
 * noplaintext without TLS; also usable, less preferred: CRAM-MD5". */
static void passed_over(text *t, const offer *offers, size_t count,
                        size_t extra, const mech_info *best, bool tls)
{
    bool usable = false;

    put_reasons(t, offers, count, tls, "");
    for (size_t i = 0; i < count; i++) {
        if (offers[i].why != 0 || offers[i].info == best)
            continue;
        if (!usable)
            put(t, t->len > 0 ? "; also usable, less preferred:"
                              : "also usable, less preferred:");
        usable = true;
        put(t, " ");
        put(t, offers[i].name);
    }
    if (extra > 0) {
        char more[64];
        snprintf(more, sizeof more, "%s%zu more not listed",
                 t->len > 0 ? "; " : "", extra);
        put(t, more);
    }
}

static void explain(text *t, const offer *offers, size_t count, size_t extra,
                    const char *filter, bool tls)
{
    put(t, "no usable SASL mechanism: server offers");
    if (count == 0)
        put(t, " no AUTH mechanisms");
    for (size_t i = 0; i < count; i++) {
        put(t, " ");
        put(t, offers[i].name);
    }
    if (extra > 0) {
        char more[48];
        snprintf(more, sizeof more, " and %zu more", extra);
        put(t, more);
    }
    if (!list_empty(filter))
        put_filter(t, filter);

    if (count == 0) {
        if (tls)
            put(t, "; to fix, check that relayhost names the provider's "
                   "submission service (port 587 or 465), or turn "
                   "authentication off (smtp_sasl_auth_enable = no)");
        else
            put(t, "; to fix, use TLS (smtp_tls_security_level = encrypt) "
                   "since many servers offer AUTH only after STARTTLS, or "
                   "turn authentication off (smtp_sasl_auth_enable = no)");
        return;
    }

    put_reasons(t, offers, count, tls, "; ");
    put_advice(t, offers, count, tls);
}

/* ------------------------------------------------------------------ */

bool sasl_select(const char *offered, const char *filter, const char *supported,
                 unsigned security, bool have_password,
                 char mech[SASL_MECH_MAX], char *why, size_t whylen)
{
    offer offers[SASL_OFFERS_MAX];
    size_t count = 0, extra = 0;
    const char *p = offered != NULL ? offered : "";
    bool filtered = !list_empty(filter);
    bool tls = (security & SASL_LINK_TLS) != 0;
    const mech_info *best = NULL;
    size_t best_rank = MECH_COUNT;
    char name[SASL_MECH_MAX];
    bool valid;
    text t;

    mech[0] = '\0';
    text_init(&t, why, whylen);

    while (next_name(&p, name, &valid)) {
        const mech_info *info = valid ? mech_lookup(name) : NULL;
        unsigned flags = info != NULL ? info->flags : MECH_NEVER;
        unsigned no = 0;
        bool seen = false;

        if ((flags & MECH_ANONYMOUS) && (security & SASL_NOANONYMOUS))
            no |= WHY_NOANONYMOUS;
        if (flags & MECH_NEVER)
            no |= WHY_HATO;
        if (flags & MECH_LATER)
            no |= WHY_HATO_LATER;
        if (supported != NULL && !(flags & MECH_OWN) &&
            !list_has(supported, name))
            no |= WHY_LIBRARY;
        if ((flags & MECH_PASSWORD) && !have_password)
            no |= WHY_PASSWORD;
        if (filtered && !list_has(filter, name))
            no |= WHY_FILTER;
        if ((flags & MECH_PLAINTEXT) && (security & SASL_NOPLAINTEXT))
            no |= WHY_NOPLAINTEXT;
        if ((flags & MECH_TOKEN) && !have_password)
            no |= WHY_TOKEN;
        if ((flags & MECH_EXPLICIT) && !filtered)
            no |= WHY_EXPLICIT;
        if ((flags & MECH_CERT) && !(security & SASL_HAVE_CERT))
            no |= WHY_CERT;
        if ((flags & MECH_BINDING) && !(security & SASL_HAVE_BINDING))
            no |= WHY_BINDING;
        if ((flags & MECH_DICTIONARY) && (security & SASL_NODICTIONARY))
            no |= WHY_NODICTIONARY;
        if (!(flags & MECH_MUTUAL) && (security & SASL_MUTUAL_AUTH))
            no |= WHY_MUTUAL;

        if (no == 0 && (size_t)(info - mechs) < best_rank) {
            best_rank = (size_t)(info - mechs);
            best = info;
        }

        /* Kept for the message: each name once, the first few. */
        for (size_t i = 0; i < count && !seen; i++)
            seen = strcmp(offers[i].name, name) == 0;
        if (seen)
            continue;
        if (count == SASL_OFFERS_MAX) {
            extra++;
            continue;
        }
        memcpy(offers[count].name, name, sizeof offers[count].name);
        offers[count].info = info;
        offers[count].why = no;
        count++;
    }

    if (best != NULL) {
        memcpy(mech, best->name, strlen(best->name) + 1);
        passed_over(&t, offers, count, extra, best, tls);
        text_finish(&t);
        return true;
    }
    explain(&t, offers, count, extra, filter, tls);
    text_finish(&t);
    return false;
}
