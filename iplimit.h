/* iplimit.h - which address a client counts as, and the limits per source
 * address on WebSocket upgrades (docs/operations.md): open clients per
 * address (--max-clients-per-ip) and a token bucket of upgrades per
 * address (--upgrade-rate, burst twice that). Behind a --trusted-proxy the
 * address is the one the proxy names in X-Real-IP or X-Forwarded-For.
 * A leaf: addresses and counts, no knowledge of clients or sockets. An
 * IPv4-mapped IPv6 address is the IPv4 address everywhere here. */
#ifndef KB_IPLIMIT_H
#define KB_IPLIMIT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "http.h"

/* max_open: clients per address (0: no limit); rate: upgrades per second
 * per address (0: no limit). With both 0 nothing is ever kept. */
void iplimit_init(long max_open, long rate);

enum iplimit_verdict {
	IPLIMIT_OK,       /* admitted: a token of the address's bucket was taken */
	IPLIMIT_PER_IP,   /* the address has max_open clients open */
	IPLIMIT_RATE,     /* the address's bucket is empty */
};
/* An upgrade from sa at turn-clock ms now. For IPLIMIT_RATE, *retry_s is
 * the whole seconds until the bucket holds a token again (at least 1). Out
 * of memory admits (the limits are a defence, not a gate that fails shut). */
enum iplimit_verdict iplimit_admit(const struct sockaddr *sa, int64_t now, unsigned *retry_s);
/* A WebSocket client from sa opened: 1 when it was counted, to be paired
 * with one iplimit_close(sa) when it goes; 0 when nothing was counted. */
int  iplimit_open(const struct sockaddr *sa);
void iplimit_close(const struct sockaddr *sa);
/* Forgets every address with no client open and a full bucket, so the
 * table holds only addresses that still limit something (called on the
 * tick: memory stays bounded however many addresses come and go). */
void iplimit_sweep(int64_t now);
/* Addresses held now. */
size_t iplimit_addresses(void);

/* The client address of a request whose TCP peer is peer. When peer is in
 * the trusted ranges: X-Real-IP when present (one line, one address),
 * else the rightmost X-Forwarded-For entry (every such line, joined in
 * order) that is not itself trusted, the leftmost when all are. Addresses
 * are IPv4 or IPv6, optionally with a port ("1.2.3.4:5", "[::1]:5"); a
 * value that is not one, where the search reaches it, leaves the peer
 * (as does an untrusted peer: its headers are not read). Returns 1 and fills *out (an AF_INET or
 * AF_INET6 address; port 0 unless the entry named one) and *outlen, or 0
 * when the peer stays the client address. */
int iplimit_forwarded(const struct http_request *req, const struct sockaddr *peer,
		      const struct cidr *trusted, size_t ntrusted,
		      struct sockaddr_storage *out, socklen_t *outlen);
#endif
