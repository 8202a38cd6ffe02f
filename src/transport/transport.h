/*
 * transport.h - resolve (addresses, and MX records for a relay named
 * without brackets), connect by racing a host's addresses (Happy Eyeballs,
 * RFC 8305), and socket I/O with deadlines.  Used by the blocking client
 * only; the session never touches a socket.
 */
#ifndef HATO_TRANSPORT_TRANSPORT_H
#define HATO_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "api/error.h"
#include "api/log.h"

struct addrinfo;

/* Room for "host[address]:port". */
#define TRANSPORT_PEER_MAX 320

/* RFC 8305 section 5: the "Connection Attempt Delay" before the next
 * address is tried while the previous attempt is still pending; its
 * recommended value. */
#define TRANSPORT_STAGGER_MS 250
/* Addresses raced per host; a name with more is cut (and the error says
 * so).  Postfix's smtp_mx_address_limit is 5 for a whole delivery. */
#define TRANSPORT_MAX_ADDRESSES 16

typedef struct transport_target {
    const char *host;
    unsigned short port;
    hato_family family;
    unsigned connect_timeout_ms; /* per address */
} transport_target;

/* Resolves the host and races its addresses (transport_race).  Returns a
 * connected non-blocking socket with TCP_NODELAY, and writes
 * "host[address]:port" to peer and the bare address to address; or -1
 * with err naming every address and why it failed. */
int transport_connect(const transport_target *t, const logger *log, char peer[TRANSPORT_PEER_MAX],
                      char *address, size_t addresslen, hato_error *err);

/* Orders list for racing, RFC 8305 section 4: the resolver's order within
 * each family, IPv6 first, then the families alternating.  Writes at most
 * max pointers into out and returns how many there are in all (more than
 * max when the list was cut). */
size_t transport_order(const struct addrinfo *list, const struct addrinfo **out, size_t max);

/* Happy Eyeballs over addrs, in that order: the first attempt starts at
 * once, each next one TRANSPORT_STAGGER_MS after the previous, or as soon
 * as every started attempt has failed; each attempt may take
 * t->connect_timeout_ms, and the whole race ends at the overall deadline
 * (transport_race_deadline).  The first connection wins and every other
 * attempt is closed.  Each start and outcome is logged at DEBUG.  Results
 * as transport_connect; 'more' is how many addresses were left out by
 * transport_order (for the message). */
int transport_race(const transport_target *t, const struct addrinfo *const *addrs, size_t n,
                   size_t more, const logger *log, char peer[TRANSPORT_PEER_MAX],
                   char *address, size_t addresslen, hato_error *err);

/* The race's overall deadline for n addresses: every address gets its
 * start and a full per-attempt timeout, but never more than twice the
 * per-attempt timeout in all. */
unsigned transport_race_deadline(unsigned connect_timeout_ms, size_t n);

/* ---- MX records (RFC 5321 section 5.1, RFC 7505) ---------------- */

/* Host names kept from one MX answer; Postfix tries at most 5 addresses
 * (smtp_mx_address_limit) per delivery. */
#define TRANSPORT_MX_MAX 10
/* RFC 1035 section 2.3.4: a name is at most 255 octets. */
#define TRANSPORT_NAME_MAX 256

typedef struct transport_mx {
    unsigned preference;
    char host[TRANSPORT_NAME_MAX];
} transport_mx;

typedef enum transport_mx_status {
    TRANSPORT_MX_FOUND = 0,    /* out holds the hosts, best first */
    TRANSPORT_MX_NONE = 1,     /* no MX record: use the name's own addresses */
    TRANSPORT_MX_FAILED = -1,  /* err is set */
} transport_mx_status;

/* Looks up the MX records of domain with the thread-safe resolver
 * (res_nquery) and sorts them by preference; equal preferences keep the
 * order of the answer.  A null MX (RFC 7505, "0 .") is a permanent
 * HATO_E_RESOLVE; a lookup that fails is a temporary one (RFC 5321 5.1:
 * never fall back to the name's addresses when the MX lookup itself
 * failed).  relay_key names the setting for messages. */
transport_mx_status transport_mx_lookup(const char *domain, const char *relay_key,
                                        const logger *log, transport_mx *out, size_t max,
                                        size_t *n, hato_error *err);

/* Whether host is an IPv4 or IPv6 address literal: never looked up as a
 * mail domain (Postfix would not either). */
bool transport_is_address(const char *host);

/* The parser behind it, on a DNS answer: the same results. */
transport_mx_status transport_mx_parse(const unsigned char *answer, size_t len,
                                       const char *domain, const char *relay_key,
                                       transport_mx *out, size_t max, size_t *n,
                                       hato_error *err);

/* Waits until fd is ready for events (POLLIN/POLLOUT) or timeout_ms
 * passes: 1 ready, 0 timed out, -1 error (errno set). */
int transport_wait(int fd, short events, int timeout_ms);

#endif
