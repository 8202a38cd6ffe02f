/*
 * test_relays.c - the options behind fallback relays and MX lookups:
 * arguments refused, copies deep and one level only.
 */
#include "check.h"
#include "api/options.h"

int main(void)
{
    hato_options *o = hato_options_new(), *f = hato_options_new(), *g = hato_options_new();
    CHECK(o != NULL && f != NULL && g != NULL);
    CHECK(!o->relay_mx);
    CHECK_INT(hato_options_set_relay_mx(o, true), HATO_OK);
    CHECK(o->relay_mx);

    /* A fallback needs a relay of its own, and is not o itself. */
    CHECK_INT(hato_options_add_fallback_relay(o, f), HATO_E_ARGUMENT);
    CHECK_INT(hato_options_add_fallback_relay(o, NULL), HATO_E_ARGUMENT);
    CHECK_INT(hato_options_set_relay(o, "primary.example", 587), HATO_OK);
    CHECK_INT(hato_options_add_fallback_relay(o, o), HATO_E_ARGUMENT);

    /* g has a fallback of its own: added to o, g comes without it. */
    CHECK_INT(hato_options_set_relay(g, "third.example", 0), HATO_OK);
    CHECK_INT(hato_options_set_relay(f, "second.example", 2525), HATO_OK);
    CHECK_INT(hato_options_set_credentials(f, "fuser", "fpass"), HATO_OK);
    CHECK_INT(hato_options_add_fallback_relay(g, f), HATO_OK);
    CHECK_INT(hato_options_add_fallback_relay(o, f), HATO_OK);
    CHECK_INT(hato_options_add_fallback_relay(o, g), HATO_OK);
    CHECK_INT(o->nfallbacks, 2);
    CHECK_INT(o->fallbacks[1]->nfallbacks, 0);

    /* Copies: changing or freeing the argument changes nothing. */
    CHECK_INT(hato_options_set_relay(f, "changed.example", 1), HATO_OK);
    hato_options_free(f);
    hato_options_free(g);
    CHECK_STR(o->fallbacks[0]->host, "second.example");
    CHECK_INT(o->fallbacks[0]->port, 2525);
    CHECK_STR(o->fallbacks[0]->user, "fuser");
    CHECK_STR(o->fallbacks[1]->host, "third.example");

    hato_options *c = options_copy(o);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK(c->relay_mx);
        CHECK_INT(c->nfallbacks, 2);
        CHECK(c->fallbacks[0] != o->fallbacks[0]);
        CHECK(c->fallbacks[0]->host != o->fallbacks[0]->host);
        CHECK_STR(c->fallbacks[0]->password, "fpass");
        hato_options_free(c);
    }

    /* At most OPTIONS_FALLBACK_MAX. */
    hato_options *h = hato_options_new();
    hato_options_set_relay(h, "more.example", 0);
    for (size_t i = o->nfallbacks; i < OPTIONS_FALLBACK_MAX; i++)
        CHECK_INT(hato_options_add_fallback_relay(o, h), HATO_OK);
    CHECK_INT(o->nfallbacks, OPTIONS_FALLBACK_MAX);
    CHECK_INT(hato_options_add_fallback_relay(o, h), HATO_E_ARGUMENT);
    hato_options_free(h);
    hato_options_free(o);
    return check_finish("test_relays");
}
