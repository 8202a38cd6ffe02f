/*
 * fuzz_maps - the smtp_sasl_password_maps and sender-dependent tables
 * (src/program/maps.c): "[host]:port user:password" lines.
 *
 * Input: the table's text, then FUZZ_SEP, then a relay host, then FUZZ_SEP
 * and a sender address.  The table is parsed from memory (exactly its
 * bytes, unterminated, so an over-read is caught) for the relay's keys and
 * for keys listed one per line in the host part; then from a file of mode
 * 0600 through maps_find and maps_find_sender_value, with the sender.
 */
#include "fuzz.h"
#include "maps.h"
#include "wipe.h"

static void found(enum maps_status st, char **user, char **password)
{
    if (st == MAPS_FOUND && (*user == NULL || *password == NULL))
        abort();
    if (st != MAPS_FOUND && (*user != NULL || *password != NULL))
        abort(); /* the caller frees only what a found entry gave */
    wipe_free_str(*user);
    wipe_free_str(*password);
    *user = *password = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *table, *hostp, *senderp;
    size_t tlen, hlen, slen;
    fuzz_part(&data, &size, &table, &tlen);
    fuzz_part(&data, &size, &hostp, &hlen);
    fuzz_part(&data, &size, &senderp, &slen);
    char *host = fuzz_strndup(hostp, hlen);
    char *sender = fuzz_strndup(senderp, slen);
    /* The table alone, exactly its bytes. */
    char *text = malloc(tlen ? tlen : 1);
    if (text == NULL)
        abort();
    memcpy(text, table, tlen);

    char *user = NULL, *password = NULL, err[512];
    for (unsigned port = 25; port <= 587; port += 562) {
        enum maps_status st = maps_lookup_text(text, tlen, "smtp_pass", host, (uint16_t)port,
                                               &user, &password, err, sizeof err);
        found(st, &user, &password);
    }

    /* The host part's lines as the candidate keys. */
    const char *keys[MAPS_MAX_KEYS];
    size_t nkeys = 0, matched = 99;
    char *cursor = host;
    while (nkeys < MAPS_MAX_KEYS && *cursor != '\0') {
        keys[nkeys++] = cursor;
        char *nl = strchr(cursor, '\n');
        if (nl == NULL)
            break;
        *nl = '\0';
        cursor = nl + 1;
    }
    if (nkeys > 0) {
        enum maps_status st = maps_lookup_text_keys(text, tlen, "smtp_pass", keys, nkeys,
                                                    &matched, &user, &password, err, sizeof err);
        if (st == MAPS_FOUND && matched >= nkeys)
            abort();
        found(st, &user, &password);
    }

    const char *path = fuzz_file("maps", table, tlen);
    const char *paths[2] = {path, path};
    char where[256];
    int err_no = 0;
    enum maps_status st = maps_find(paths, 2, "smtp_sasl_password_maps", sender, host,
                                    587, &user, &password, where, sizeof where, &err_no, err,
                                    sizeof err);
    found(st, &user, &password);
    char *value = NULL;
    st = maps_find_sender_value(paths, 1, "sender_dependent_relayhost_maps", sender, &value,
                                where, sizeof where, &err_no, err, sizeof err);
    if ((st == MAPS_FOUND) != (value != NULL))
        abort();
    free(value);
    wipe(text, tlen);
    free(text);
    free(host);
    free(sender);
    return 0;
}
