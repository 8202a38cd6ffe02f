/*
 * sasl_gsasl.c - the SASL exchange on GNU libgsasl (2.x).
 *
 * The only file that includes gsasl.h.  One Gsasl context per sasl_lib, so
 * nothing here is global; one Gsasl_session per exchange.  Credentials go
 * into the session as properties rather than through a callback, so they
 * are in libgsasl's memory only while an exchange lives.
 *
 * What libgsasl 2.2 does with secrets, and what is done about it here:
 *  - gsasl_finish() frees the session's properties (the password, and for
 *    SCRAM the salted password it stores as GSASL_SCRAM_SALTED_PASSWORD)
 *    without wiping them.  sasl_exchange_free() wipes them first, through
 *    the pointers gsasl_property_fast() returns; see wipe_properties().
 *  - gsasl_step64() frees the raw response (for PLAIN and LOGIN the
 *    password itself) without wiping it, so this file calls gsasl_step()
 *    and does the base64 itself, wiping each raw response.
 *  - CRAM-MD5, DIGEST-MD5 and SCRAM run the password through SASLprep
 *    (gsasl_saslprep, on libidn's stringprep), whose result and
 *    intermediate buffers are freed unwiped: three heap copies per exchange
 *    on Debian 12, seen with an interposed free().  SCRAM also leaves its
 *    salted password and ClientKey on the stack.  Nothing outside libgsasl
 *    can reach those; that is the limit of what hato can do.  PLAIN and
 *    LOGIN leave no copy behind.
 */
#include "sasl/sasl.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsasl.h>

#include "sasl/oauth.h"
#include "util/secret.h"

/* What hato runs itself (oauth.c), added to libgsasl's list. */
#define HATO_OWN_MECHANISMS " OAUTHBEARER XOAUTH2"

struct sasl_lib {
    Gsasl *ctx;  /* owned: gsasl_done() */
    char *mechs; /* owned: the client mechanisms, upper case */
};

struct sasl_exchange {
    Gsasl_session *session; /* owned: gsasl_finish() after wiping */
    oauth_exchange *oauth;  /* owned, instead of session for XOAUTH2 and
                               OAUTHBEARER */
    char mech[SASL_MECH_MAX];
    unsigned steps;         /* gsasl_step() calls so far */
    bool waiting;           /* server-first: AUTH sent, no challenge yet */
    bool done;              /* SASL_DONE returned: nothing more to say */
    bool failed;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * libgsasl asks the application, through this callback, for any property
 * the session lacks.  hato sets everything it has on the session before the
 * first step, so the answer is always "nothing more".  What 2.2's client
 * mechanisms ask for, and what that absence means:
 *   GSASL_AUTHZID             PLAIN, SCRAM, DIGEST-MD5: no authorization
 *                             identity (PLAIN sends an empty one, RFC 4616);
 *   GSASL_CB_TLS_EXPORTER,    SCRAM: set on the session for the -PLUS
 *   GSASL_CB_TLS_UNIQUE       variants only (sasl_exchange_start).  The
 *                             non-PLUS ones get none and send the GS2 flag
 *                             "n": RFC 5802 section 6 would have them send
 *                             "y" when binding exists, but libgsasl 2.2's
 *                             client then fails its first step with
 *                             GSASL_AUTHENTICATION_ERROR (checked);
 *   GSASL_SCRAM_SALTED_PASSWORD  SCRAM: derive it from GSASL_PASSWORD with
 *                             the server's salt and iteration count;
 *   GSASL_REALM               DIGEST-MD5: the server's (first) realm.
 * GSASL_QOP is set, to "qop-auth": authentication only.  hato has no use for
 * DIGEST-MD5's integrity or confidentiality layers; TLS protects the link.
 * No callback at all would behave the same today (gsasl_callback() returns
 * GSASL_NO_CALLBACK); having one states the policy and keeps libgsasl's
 * obsolete callback fallbacks out of the way.
 */
static int no_more_properties(Gsasl *ctx, Gsasl_session *session,
                              Gsasl_property prop)
{
    (void)ctx;
    (void)session;
    (void)prop;
    return GSASL_NO_CALLBACK;
}

static void to_upper_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;

    for (; i < cap - 1 && src[i] != '\0'; i++) {
        char c = src[i];
        dst[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    dst[i] = '\0';
}

sasl_lib *sasl_lib_new(char *err, size_t errlen)
{
    sasl_lib *lib = calloc(1, sizeof *lib);
    char *list = NULL;
    int rc;

    if (lib == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    rc = gsasl_init(&lib->ctx);
    if (rc != GSASL_OK) {
        set_err(err, errlen, "cannot start libgsasl: %s", gsasl_strerror(rc));
        free(lib);
        return NULL;
    }
    gsasl_callback_set(lib->ctx, no_more_properties);

    rc = gsasl_client_mechlist(lib->ctx, &list);
    if (rc != GSASL_OK) {
        set_err(err, errlen, "cannot list libgsasl's mechanisms: %s",
                gsasl_strerror(rc));
        sasl_lib_free(lib);
        return NULL;
    }
    /* libgsasl prints them upper case and space-separated already; copy
     * into our own allocation (gsasl_free is its allocator, free is ours)
     * and fold anyway, since sasl_select's callers rely on it. */
    size_t n = strlen(list) + sizeof HATO_OWN_MECHANISMS;
    lib->mechs = malloc(n);
    if (lib->mechs == NULL) {
        gsasl_free(list);
        set_err(err, errlen, "out of memory");
        sasl_lib_free(lib);
        return NULL;
    }
    to_upper_copy(lib->mechs, n, list);
    gsasl_free(list);
    memcpy(lib->mechs + strlen(lib->mechs), HATO_OWN_MECHANISMS,
           sizeof HATO_OWN_MECHANISMS);
    return lib;
}

void sasl_lib_free(sasl_lib *lib)
{
    if (lib == NULL)
        return;
    if (lib->ctx != NULL)
        gsasl_done(lib->ctx);
    free(lib->mechs);
    free(lib);
}

const char *sasl_lib_mechanisms(const sasl_lib *lib)
{
    return lib->mechs;
}

/* Properties that hold the password or something as good as it: the SCRAM
 * salted password (and the keys derived from it) lets anyone log in to the
 * same server, the DIGEST-MD5 hash too. */
static const Gsasl_property secret_properties[] = {
    GSASL_PASSWORD,
    GSASL_SCRAM_SALTED_PASSWORD,
    GSASL_SCRAM_SERVERKEY,
    GSASL_SCRAM_STOREDKEY,
    GSASL_DIGEST_MD5_HASHED_PASSWORD,
    GSASL_PASSCODE,
    GSASL_PIN,
};

/*
 * gsasl_finish() frees these without wiping (checked in libgsasl 2.2).  Its
 * documentation says the string gsasl_property_fast() returns must not be
 * modified; it is, though, a private malloc'ed copy (gsasl_property_set
 * copies) that nothing reads again before gsasl_finish() frees it, so
 * overwriting it in place is the one way to wipe libgsasl's copy.  Should a
 * future libgsasl share or reuse that storage, this is the line to revisit.
 */
static void wipe_properties(Gsasl_session *session)
{
    for (size_t i = 0; i < sizeof secret_properties / sizeof secret_properties[0];
         i++) {
        char *p = (char *)gsasl_property_fast(session, secret_properties[i]);
        if (p != NULL)
            secret_wipe(p, strlen(p));
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The -PLUS variants' channel binding, as the libgsasl property for its
 * type.  libgsasl 2.2 names the type in the GS2 header ("p=tls-exporter")
 * after the property it finds, preferring GSASL_CB_TLS_EXPORTER when both
 * are set (checked); hato sets exactly one, the one the session chose. */
static int set_binding(Gsasl_session *session, const sasl_params *p,
                       const char *mech, char *err, size_t errlen)
{
    Gsasl_property prop;
    char *b64 = NULL;
    int rc;

    if (p->cb_type == NULL || p->cb_data == NULL || p->cb_len == 0) {
        set_err(err, errlen, "%s needs TLS channel binding, which this "
                "connection does not provide", mech);
        return GSASL_NO_CB_TLS_EXPORTER;
    }
    if (strcmp(p->cb_type, "tls-exporter") == 0)
        prop = GSASL_CB_TLS_EXPORTER;
    else if (strcmp(p->cb_type, "tls-unique") == 0)
        prop = GSASL_CB_TLS_UNIQUE;
    else {
        set_err(err, errlen, "channel binding type %.40s is not known to "
                "libgsasl", p->cb_type);
        return GSASL_NO_CB_TLS_EXPORTER;
    }
    rc = gsasl_base64_to((const char *)p->cb_data, p->cb_len, &b64, NULL);
    if (rc == GSASL_OK)
        rc = gsasl_property_set(session, prop, b64);
    gsasl_free(b64);
    if (rc != GSASL_OK)
        set_err(err, errlen, "cannot start %s in libgsasl: %s", mech,
                gsasl_strerror(rc));
    return rc;
}

sasl_exchange *sasl_exchange_start(sasl_lib *lib, const char *mech,
                                   const sasl_params *params, char *err,
                                   size_t errlen)
{
    static const sasl_params none = { 0 };
    sasl_exchange *x;
    int rc = GSASL_OK;

    if (params == NULL)
        params = &none;
    if (lib == NULL || mech == NULL || mech[0] == '\0') {
        set_err(err, errlen, "no SASL mechanism given");
        return NULL;
    }
    /* Longer than RFC 4422 allows: it would be cut below. */
    if (strlen(mech) >= SASL_MECH_MAX) {
        set_err(err, errlen, "not a SASL mechanism name (longer than %d "
                "characters)", SASL_MECH_MAX - 1);
        return NULL;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    /* libgsasl's names are case-sensitive ("plain" is unknown to it);
     * hato's are not. */
    to_upper_copy(x->mech, sizeof x->mech, mech);

    if (oauth_is_mech(x->mech)) {
        x->oauth = oauth_start(x->mech, params, err, errlen);
        if (x->oauth == NULL) {
            free(x);
            return NULL;
        }
        return x;
    }

    rc = gsasl_client_start(lib->ctx, x->mech, &x->session);
    if (rc != GSASL_OK) {
        if (rc == GSASL_UNKNOWN_MECHANISM)
            set_err(err, errlen, "%s is not supported by libgsasl", x->mech);
        else
            set_err(err, errlen, "cannot start %s in libgsasl: %s", x->mech,
                    gsasl_strerror(rc));
        x->session = NULL;
        sasl_exchange_free(x);
        return NULL;
    }

    /* No GSASL_AUTHZID: PLAIN's authorization identity stays empty, which
     * servers read as "the same as the user" (RFC 4616 section 2), and
     * EXTERNAL sends an empty one ("=" on the AUTH line): the server takes
     * the identity from the client certificate (RFC 4422 appendix A). */
    if (params->user != NULL)
        rc = gsasl_property_set(x->session, GSASL_AUTHID, params->user);
    if (rc == GSASL_OK && params->password != NULL)
        rc = gsasl_property_set(x->session, GSASL_PASSWORD, params->password);
    if (rc == GSASL_OK)
        rc = gsasl_property_set(x->session, GSASL_SERVICE, "smtp");
    if (rc == GSASL_OK && params->host != NULL)
        rc = gsasl_property_set(x->session, GSASL_HOSTNAME, params->host);
    if (rc == GSASL_OK && strcmp(x->mech, "DIGEST-MD5") == 0)
        rc = gsasl_property_set(x->session, GSASL_QOP, "qop-auth");
    if (rc != GSASL_OK) {
        set_err(err, errlen, "cannot start %s in libgsasl: %s", x->mech,
                gsasl_strerror(rc));
        sasl_exchange_free(x);
        return NULL;
    }
    if (ends_with(x->mech, "-PLUS") &&
        set_binding(x->session, params, x->mech, err, errlen) != GSASL_OK) {
        sasl_exchange_free(x);
        return NULL;
    }
    x->waiting = !sasl_client_first(x->mech);
    return x;
}

sasl_exchange *sasl_exchange_new(sasl_lib *lib, const char *mech,
                                 const char *user, const char *password,
                                 const char *host, char *err, size_t errlen)
{
    const sasl_params p = { .user = user, .password = password, .host = host };

    return sasl_exchange_start(lib, mech, &p, err, errlen);
}

/* Says why a step failed, for the session to put after "SASL <mech> with
 * <host> failed: ".  libgsasl's own texts are generic ("Error
 * authenticating user" is also what a forged SCRAM server signature gives),
 * so the cases a person can act on get their own words. */
static void step_failure(const sasl_exchange *x, int rc, char *err,
                         size_t errlen)
{
    bool scram = strncmp(x->mech, "SCRAM-", 6) == 0;
    const char *text = NULL;
    char first;

    if (rc == GSASL_BASE64_ERROR)
        text = "the server's challenge is not valid base64";
    /* Step 2 checks the server's nonce, step 3 its signature. */
    else if (scram && rc == GSASL_AUTHENTICATION_ERROR && x->steps >= 3)
        text = "the server's SCRAM signature is wrong: it does not know this "
               "password, or someone is in between";
    else if (scram && rc == GSASL_AUTHENTICATION_ERROR)
        text = "the server's SCRAM nonce does not extend the client's";
    else if (rc == GSASL_MECHANISM_CALLED_TOO_MANY_TIMES)
        text = "the server sent a challenge after the exchange was over";
    else if (rc == GSASL_MECHANISM_PARSE_ERROR)
        text = "the server's challenge is not what this mechanism expects at this step";
    else if (rc == GSASL_NO_PASSWORD || rc == GSASL_NO_AUTHID)
        text = "no user name or password for this server";
    if (text != NULL) {
        set_err(err, errlen, "%s", text);
        return;
    }
    /* Messages are lower case without a final period (STYLE.md);
     * libgsasl's have both.  An acronym ("SASL ...") keeps its case. */
    text = gsasl_strerror(rc);
    size_t len = text != NULL ? strlen(text) : 0;
    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len == 0) {
        set_err(err, errlen, "libgsasl error %d", rc);
        return;
    }
    bool acronym = len > 1 && text[1] >= 'A' && text[1] <= 'Z';
    first = text[0] >= 'A' && text[0] <= 'Z' && !acronym ? (char)(text[0] - 'A' + 'a')
                                                          : text[0];
    set_err(err, errlen, "%c%.*s (libgsasl)", first, (int)(len - 1), text + 1);
}

/* SCRAM's iteration count comes from the server (RFC 5802 section 5.1,
 * "i="), and the client pays for it: PBKDF2 runs that many rounds before
 * answering, inside one step that no timeout interrupts.  A hostile or
 * broken server asking for billions would hold the client on the CPU for
 * hours (the session fuzzer's find).  Servers use 4096 (RFC 7677's floor,
 * Dovecot's default) to a few hundred thousand; a million costs about a
 * second. */
#define SCRAM_MAX_ITERATIONS 1000000UL

/* The "i=" attribute of a SCRAM server-first message (not terminated): 0
 * when absent or not a number (libgsasl then refuses the message), else
 * the count, saturated at ULONG_MAX. */
static unsigned long scram_iterations(const char *msg, size_t len)
{
    for (size_t at = 0; at + 2 <= len; at++) {
        if ((at == 0 || msg[at - 1] == ',') && msg[at] == 'i' && msg[at + 1] == '=') {
            unsigned long n = 0;
            for (size_t k = at + 2; k < len && msg[k] >= '0' && msg[k] <= '9'; k++)
                n = n > (ULONG_MAX - 9) / 10 ? ULONG_MAX : n * 10 + (unsigned long)(msg[k] - '0');
            return n;
        }
    }
    return 0;
}

/*
 * Contract beyond sasl.h: a first step with a NULL challenge for a
 * mechanism where the server speaks first (LOGIN, CRAM-MD5, DIGEST-MD5)
 * returns SASL_MORE with *response NULL: send "AUTH <mech>" alone and feed
 * the 334's text to the next step.  So the session may always start with
 * sasl_exchange_step(x, NULL, ...).
 *
 * Every step fed a challenge answers with a response, possibly "" (an
 * empty line): a 334 always wants one (RFC 4954 section 4), including
 * SCRAM's server-final message, which is verified here and answered with
 * "" and SASL_DONE.  Note that SASL_MORE followed by a 235 means the server
 * skipped its final message; for SCRAM the server then was not verified.
 */
sasl_status sasl_exchange_step(sasl_exchange *x, const char *challenge,
                               char **response, char *err, size_t errlen)
{
    char *input = NULL, *output = NULL, *b64 = NULL;
    size_t input_len = 0, output_len = 0;
    int rc, rc2;

    *response = NULL;
    if (x != NULL && x->oauth != NULL)
        return oauth_step(x->oauth, challenge, response, err, errlen);
    if (x == NULL || x->failed) {
        set_err(err, errlen, "the SASL exchange has already failed");
        return SASL_FAIL;
    }
    if (x->waiting && challenge == NULL)
        return SASL_MORE;
    x->waiting = false;
    /* Some libgsasl clients (PLAIN) keep no state and would answer a second
     * challenge with the credentials again. */
    if (x->done) {
        rc = GSASL_MECHANISM_CALLED_TOO_MANY_TIMES;
        goto fail;
    }

    if (challenge != NULL && challenge[0] != '\0') {
        rc = gsasl_base64_from(challenge, strlen(challenge), &input,
                               &input_len);
        if (rc != GSASL_OK)
            goto fail;
    }

    /* The server-first message: its iteration count is checked before
     * libgsasl spends it. */
    if (input != NULL && x->steps == 1 && strncmp(x->mech, "SCRAM-", 6) == 0) {
        unsigned long iterations = scram_iterations(input, input_len);
        if (iterations > SCRAM_MAX_ITERATIONS) {
            gsasl_free(input);
            x->failed = true;
            set_err(err, errlen, "the server asks for %lu%s SCRAM iterations; hato computes at "
                    "most %lu (each costs CPU time: a server asking more is misconfigured or "
                    "hostile); smtp_sasl_mechanism_filter can choose another mechanism",
                    iterations, iterations == ULONG_MAX ? " or more" : "", SCRAM_MAX_ITERATIONS);
            return SASL_FAIL;
        }
    }
    rc = gsasl_step(x->session, input, input_len, &output, &output_len);
    x->steps++;
    gsasl_free(input);
    input = NULL;
    if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
        /* The output is unspecified on failure; a mechanism may still have
         * allocated it. */
        if (output != NULL) {
            secret_wipe(output, output_len);
            gsasl_free(output);
        }
        goto fail;
    }

    rc2 = gsasl_base64_to(output, output_len, &b64, NULL);
    if (output != NULL) {
        secret_wipe(output, output_len);
        gsasl_free(output);
    }
    if (rc2 != GSASL_OK) {
        rc = rc2;
        goto fail;
    }
    /* Into our allocator, so the caller's secret_free() is right whatever
     * libgsasl allocates with. */
    *response = secret_dup(b64);
    secret_wipe(b64, strlen(b64));
    gsasl_free(b64);
    if (*response == NULL) {
        rc = GSASL_MALLOC_ERROR;
        goto fail;
    }
    if (rc == GSASL_OK) {
        x->done = true;
        return SASL_DONE;
    }
    return SASL_MORE;

fail:
    x->failed = true;
    step_failure(x, rc, err, errlen);
    return SASL_FAIL;
}

void sasl_exchange_free(sasl_exchange *x)
{
    if (x == NULL)
        return;
    if (x->session != NULL) {
        wipe_properties(x->session);
        gsasl_finish(x->session);
    }
    oauth_free(x->oauth);
    free(x);
}

const char *sasl_exchange_server_error(const sasl_exchange *x)
{
    return x != NULL ? oauth_server_error(x->oauth) : NULL;
}
