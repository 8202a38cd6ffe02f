/*
 * mx.c - MX records of a relay named without brackets (Postfix's
 * relayhost = example.com), with the thread-safe resolver (res_ninit,
 * res_nquery, ns_initparse): the library keeps no resolver state of its
 * own and leaves the process's _res alone.
 */
#define _DEFAULT_SOURCE /* res_n* and ns_* are BSD interfaces */
#include "transport/transport.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A DNS answer over UDP with EDNS0 fits; a larger one comes over TCP and
 * is cut here, which only drops MX hosts past TRANSPORT_MX_MAX anyway. */
#define ANSWER_MAX 8192

bool transport_is_address(const char *host)
{
    unsigned char bin[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
}

transport_mx_status transport_mx_parse(const unsigned char *answer, size_t len,
                                       const char *domain, const char *relay_key,
                                       transport_mx *out, size_t max, size_t *n,
                                       hato_error *err)
{
    ns_msg msg;
    *n = 0;
    if (len > ANSWER_MAX || ns_initparse(answer, (int)len, &msg) != 0) {
        error_set(err, HATO_E_RESOLVE, HATO_LAYER_TRANSPORT, true,
                  "cannot look up the MX records of %s: the DNS answer is malformed; check the "
                  "resolvers in /etc/resolv.conf, or write %s = [%s] to skip the MX lookup",
                  domain, relay_key, domain);
        return TRANSPORT_MX_FAILED;
    }
    size_t found = 0;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
            break;
        /* A CNAME in front of the MX records comes in the same section. */
        if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) < 3)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        transport_mx mx = {.preference = ns_get16(rd)};
        if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, mx.host,
                               sizeof mx.host) < 0)
            continue;
        if (strcmp(mx.host, ".") == 0 || mx.host[0] == '\0') {
            /* RFC 7505 section 3: the domain accepts no mail at all. */
            error_set(err, HATO_E_RESOLVE, HATO_LAYER_TRANSPORT, false,
                      "%s publishes a null MX record (RFC 7505): it accepts no mail; %s = %s "
                      "cannot work, name the provider's submission server instead (as "
                      "[host]:port to skip the MX lookup)", domain, relay_key, domain);
            *n = 0;
            return TRANSPORT_MX_FAILED;
        }
        size_t len_host = strlen(mx.host);
        if (len_host > 0 && mx.host[len_host - 1] == '.')
            mx.host[len_host - 1] = '\0';
        /* Insertion by preference; equal ones stay in the answer's order
         * (a resolver that rotates them spreads the load already). */
        size_t at = found < max ? found : max;
        while (at > 0 && out[at - 1].preference > mx.preference)
            at--;
        if (at == max)
            continue; /* worse than every kept one */
        size_t last = found < max ? found : max - 1;
        memmove(&out[at + 1], &out[at], (last - at) * sizeof *out);
        out[at] = mx;
        if (found < max)
            found++;
    }
    *n = found;
    return found > 0 ? TRANSPORT_MX_FOUND : TRANSPORT_MX_NONE;
}

transport_mx_status transport_mx_lookup(const char *domain, const char *relay_key,
                                        const logger *log, transport_mx *out, size_t max,
                                        size_t *n, hato_error *err)
{
    /* The resolver state lives here, on the stack: nothing shared between
     * threads or with the application's own res_* calls. */
    struct __res_state rs;
    unsigned char *answer = malloc(ANSWER_MAX); /* owned here, freed below */
    *n = 0;
    memset(&rs, 0, sizeof rs);
    if (answer == NULL) {
        error_set(err, HATO_E_NOMEM, HATO_LAYER_TRANSPORT, true,
                  "out of memory looking up the MX records of %s", domain);
        return TRANSPORT_MX_FAILED;
    }
    if (res_ninit(&rs) != 0) {
        free(answer);
        error_set(err, HATO_E_RESOLVE, HATO_LAYER_TRANSPORT, true,
                  "cannot look up the MX records of %s: the resolver did not start (check "
                  "/etc/resolv.conf), or write %s = [%s] to skip the MX lookup", domain,
                  relay_key, domain);
        return TRANSPORT_MX_FAILED;
    }
    int len = res_nquery(&rs, domain, ns_c_in, ns_t_mx, answer, ANSWER_MAX);
    transport_mx_status st;
    if (len < 0) {
        int h = rs.res_h_errno;
        if (h == NO_DATA) {
            /* RFC 5321 section 5.1: no MX, so the name itself is the host. */
            st = TRANSPORT_MX_NONE;
        } else {
            const char *why = h == HOST_NOT_FOUND ? "no such domain (NXDOMAIN)"
                              : h == TRY_AGAIN ? "no answer from the DNS servers in time, or "
                                                 "a server failure (SERVFAIL)"
                              : "the DNS servers refused the query";
            /* Temporary even for NXDOMAIN: a relay name that is
             * missing today is a configuration or DNS fault to fix, not
             * a reason to bounce the mail waiting for it. */
            error_set(err, HATO_E_RESOLVE, HATO_LAYER_TRANSPORT, true,
                      "cannot look up the MX records of %s: %s; check %s (write [%s] to skip "
                      "the MX lookup) and the resolvers in /etc/resolv.conf", domain, why,
                      relay_key, domain);
            st = TRANSPORT_MX_FAILED;
        }
    } else {
        st = transport_mx_parse(answer, (size_t)len, domain, relay_key, out, max, n, err);
    }
    res_nclose(&rs);
    free(answer);
    if (st == TRANSPORT_MX_NONE)
        log_line(log, HATO_LOG_DEBUG, "%s has no MX record: using its own addresses", domain);
    for (size_t i = 0; st == TRANSPORT_MX_FOUND && i < *n; i++)
        log_line(log, HATO_LOG_DEBUG, "MX of %s: %s (preference %u)", domain, out[i].host,
                 out[i].preference);
    return st;
}
