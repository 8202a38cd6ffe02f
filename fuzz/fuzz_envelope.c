/*
 * fuzz_envelope - the program's envelope tables: aliases(5) files
 * (src/program/aliases.c) and canonical/generic rewriting tables
 * (src/program/rewrite.c), and the addresses run through them.
 *
 * Input: an alias table, FUZZ_SEP, a rewriting table, FUZZ_SEP, then
 * addresses one per line (recipients to expand and senders to rewrite).
 * Each table is parsed from exactly its bytes; every alias name of the
 * table is expanded too, so the fuzzer reaches nested names and loops
 * without guessing names twice.  Checked: expansion ends (bounded depth
 * and loop detection, no runaway multiplication), and a rewrite is found
 * exactly when a new address comes back.
 */
#include <strings.h>

#include "aliases.h"
#include "fuzz.h"
#include "headers.h"
#include "rewrite.h"

static void on_warn(void *user, const char *message)
{
    (void)user;
    if (message == NULL || strlen(message) > 1u << 20)
        abort();
}

static bool is_local(void *user, const char *domain, size_t n)
{
    (void)user;
    return (n == 11 && strncasecmp(domain, "example.org", 11) == 0) ||
           (n == 9 && strncasecmp(domain, "localhost", 9) == 0);
}

static size_t delivered;

static int on_deliver(void *user, const char *address)
{
    (void)user;
    if (address == NULL)
        abort();
    /* An expansion that multiplies (a: b,b  b: c,c ...) is bounded by the
     * names being expanded once per run; more than this is a runaway. */
    if (++delivered > 1000000)
        abort();
    return 0;
}

static const struct rewrite_map *header_map;

static int rewrite_header(void *user, const char *address, char **replacement)
{
    (void)user;
    *replacement = NULL;
    const char *at = rewrite_find_at(address);
    bool local = at == NULL || is_local(NULL, at + 1, strlen(at + 1));
    int rc = rewrite_lookup(header_map, address, local, replacement);
    return rc < 0 ? -1 : rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *at, *rt, *ad;
    size_t alen, rlen, adlen;
    fuzz_part(&data, &size, &at, &alen);
    fuzz_part(&data, &size, &rt, &rlen);
    fuzz_part(&data, &size, &ad, &adlen);
    char *atext = malloc(alen ? alen : 1), *rtext = malloc(rlen ? rlen : 1);
    if (atext == NULL || rtext == NULL)
        abort();
    memcpy(atext, at, alen);
    memcpy(rtext, rt, rlen);
    char *addresses = fuzz_strndup(ad, adlen);

    struct aliases al = {0};
    unsigned nbad = 0;
    aliases_parse_text(&al, "/etc/aliases", atext, alen, on_warn, NULL, &nbad);
    /* Twice: a second table after the first, as alias_maps lists them. */
    aliases_parse_text(&al, "/etc/aliases.local", atext, alen, on_warn, NULL, &nbad);
    aliases_check(&al, on_warn, NULL);

    struct rewrite_map map = {0};
    rewrite_map_add_text(&map, "/etc/postfix/generic", rtext, rlen, on_warn, NULL);
    header_map = &map;

    struct aliases_expander x = {.table = &al, .is_local_domain = is_local,
                                 .deliver = on_deliver, .warn = on_warn};
    delivered = 0;
    for (size_t i = 0; i < al.n && i < 64; i++)
        aliases_expand(&x, al.v[i].name);

    char *cursor = addresses;
    for (unsigned k = 0; k < 64; k++) {
        char *nl = strchr(cursor, '\n');
        if (nl != NULL)
            *nl = '\0';
        aliases_expand(&x, cursor);
        if (aliases_find(&al, cursor) != NULL)
            aliases_expand(&x, cursor);
        const char *domain = NULL;
        char *name = aliases_local_name(cursor, &domain);
        free(name);
        char *out = NULL;
        for (int local = 0; local < 2; local++) {
            int rc = rewrite_lookup(&map, cursor, local, &out);
            if ((rc == 1) != (out != NULL))
                abort();
            free(out);
            out = NULL;
        }
        if (nl == NULL)
            break;
        cursor = nl + 1;
    }
    aliases_expander_free(&x);

    /* The address lines as a header section, its sender fields rewritten
     * through the table, as envelope.c edits the message. */
    static const char *const fields[] = {"From", "Sender", "Reply-To"};
    char *edited = NULL;
    size_t elen = 0;
    char *hsec = fuzz_strndup(ad, adlen);
    if (headers_rewrite_addresses(hsec, adlen, fields, 3, rewrite_header, NULL, &edited,
                                  &elen) == 0 && edited == NULL)
        abort();
    free(edited);
    free(hsec);

    rewrite_map_free(&map);
    aliases_free(&al);
    free(addresses);
    free(atext);
    free(rtext);
    return 0;
}
