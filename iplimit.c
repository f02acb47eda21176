/* iplimit.c - limits per source address and the client address behind a
 * trusted proxy (iplimit.h). One hash map from an address's bytes (4 for
 * IPv4 and IPv4-mapped IPv6, 16 for IPv6) to its open clients and its
 * token bucket. An entry exists only while it limits something: sweeping
 * drops those with no client and a full bucket, so address churn cannot
 * grow the table beyond the addresses active in the last 2 seconds plus
 * those with clients open. */
#include "iplimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "map.h"

struct addr_entry {
	uint32_t open;        /* WebSocket clients from this address */
	double tokens;        /* the upgrade bucket, refilled at rate per second */
	int64_t last_ms;      /* when tokens was last refilled */
};

static struct {
	uint32_t max_open;    /* 0: off */
	double rate;          /* per second; 0: off */
	struct map addrs;     /* address bytes -> struct addr_entry * */
} L;

void iplimit_init(long max_open, long rate)
{
	L.max_open = (uint32_t)max_open;
	L.rate = (double)rate;
}

/* The bytes that identify sa's address: IPv4-mapped IPv6 as IPv4, so a
 * dual-stack listener counts a client the same either way. 0 when sa is
 * neither family. */
static size_t addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	static const unsigned char mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };
	if (sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (!memcmp(a, mapped, 12)) {
			memcpy(key, a + 12, 4);
			return 4;
		}
		memcpy(key, a, 16);
		return 16;
	}
	return 0;
}

/* sa's entry; created (bucket full) when create is set. NULL when absent,
 * or out of memory. */
static struct addr_entry *entry(const struct sockaddr *sa, int64_t now, int create)
{
	unsigned char key[16];
	size_t kl = addr_key(sa, key);
	if (!kl) return NULL;
	struct addr_entry *e = map_get(&L.addrs, key, kl);
	if (e || !create) return e;
	if (!(e = calloc(1, sizeof(*e)))) return NULL;
	e->tokens = 2 * L.rate;
	e->last_ms = now;
	if (map_put(&L.addrs, key, kl, e) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

/* The bucket's tokens at now, capped at the burst (twice the rate). */
static double refilled(const struct addr_entry *e, int64_t now)
{
	double t = e->tokens + (double)(now - e->last_ms) * L.rate / 1000.0;
	return t > 2 * L.rate ? 2 * L.rate : t;
}

enum iplimit_verdict iplimit_admit(const struct sockaddr *sa, int64_t now, unsigned *retry_s)
{
	if (!L.max_open && L.rate <= 0) return IPLIMIT_OK;
	struct addr_entry *e = entry(sa, now, 1);
	if (!e) return IPLIMIT_OK;
	if (L.max_open && e->open >= L.max_open) return IPLIMIT_PER_IP;
	if (L.rate <= 0) return IPLIMIT_OK;
	e->tokens = refilled(e, now);
	e->last_ms = now;
	if (e->tokens < 1) {
		/* Whole seconds until one token: rounded up, never 0. */
		double s = (1 - e->tokens) / L.rate;
		unsigned r = (unsigned)s;
		*retry_s = r < s || r == 0 ? r + 1 : r;
		return IPLIMIT_RATE;
	}
	e->tokens -= 1;
	return IPLIMIT_OK;
}

int iplimit_open(const struct sockaddr *sa)
{
	if (!L.max_open) return 0;
	/* iplimit_admit made the entry in the same turn; it is made again
	 * only if that failed for memory. */
	struct addr_entry *e = entry(sa, 0, 0);
	if (!e && !(e = entry(sa, 0, 1))) return 0;
	e->open++;
	return 1;
}

void iplimit_close(const struct sockaddr *sa)
{
	struct addr_entry *e = entry(sa, 0, 0);
	if (e && e->open) e->open--;
}

void iplimit_sweep(int64_t now)
{
	struct map_slot *s;
	for (size_t i = 0; map_next(&L.addrs, &i, &s);) {
		struct addr_entry *e = s->val;
		if (e->open || (L.rate > 0 && refilled(e, now) < 2 * L.rate)) continue;
		/* Deleting leaves a tombstone in this slot: the walk goes on. */
		map_del(&L.addrs, s->key, s->klen);
		free(e);
	}
}

size_t iplimit_addresses(void)
{
	return L.addrs.count;
}

/* ---- the address behind a proxy ------------------------------------------ */

/* One address as proxies write it, surrounding blanks allowed: "1.2.3.4",
 * "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:80".
 * IPv4-mapped IPv6 becomes IPv4. 0, or -1 when it is none of those (an
 * obfuscated identifier, "unknown", garbage). */
static int parse_addr(const char *s, size_t n, struct sockaddr_storage *out, socklen_t *outlen)
{
	while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
	const char *host = s, *port = NULL;
	size_t hl = n, pl = 0;
	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (!rb) return -1;
		host = s + 1;
		hl = (size_t)(rb - host);
		size_t rest = n - (size_t)(rb + 1 - s);
		if (rest) {
			if (rb[1] != ':') return -1;
			port = rb + 2;
			pl = rest - 1;
		}
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {   /* one colon: v4:port */
			hl = (size_t)(colon - s);
			port = colon + 1;
			pl = n - hl - 1;
		}
	}
	unsigned p = 0;
	if (port) {
		if (pl == 0 || pl > 5) return -1;
		for (size_t i = 0; i < pl; i++) {
			if (port[i] < '0' || port[i] > '9') return -1;
			p = p * 10 + (unsigned)(port[i] - '0');
		}
		if (p > 65535) return -1;
	}
	char buf[INET6_ADDRSTRLEN];
	if (hl == 0 || hl >= sizeof(buf)) return -1;
	memcpy(buf, host, hl);
	buf[hl] = '\0';
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (host == s && inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		*outlen = sizeof(*v4);
		return 0;
	}
	struct in6_addr a6;
	if (inet_pton(AF_INET6, buf, &a6) != 1) return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		v4->sin_family = AF_INET;
		memcpy(&v4->sin_addr, a6.s6_addr + 12, 4);
		v4->sin_port = htons((uint16_t)p);
		*outlen = sizeof(*v4);
		return 0;
	}
	v6->sin6_family = AF_INET6;
	v6->sin6_addr = a6;
	v6->sin6_port = htons((uint16_t)p);
	*outlen = sizeof(*v6);
	return 0;
}

static int name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

int iplimit_forwarded(const struct http_request *req, const struct sockaddr *peer,
		      const struct cidr *trusted, size_t ntrusted,
		      struct sockaddr_storage *out, socklen_t *outlen)
{
	if (!ntrusted || !cidr_match(trusted, ntrusted, peer)) return 0;
	/* X-Real-IP is the proxy's own statement of the client, and when
	 * present it alone decides: one line holding one address. */
	size_t nreal = http_header_count(req, "X-Real-IP");
	if (nreal) {
		const struct http_header *h = http_header_get(req, "X-Real-IP");
		return nreal == 1 && parse_addr(h->value, h->value_len, out, outlen) == 0;
	}
	/* X-Forwarded-For: each proxy appends the address it got the request
	 * from, so only the entries right of the last untrusted one were
	 * written by proxies we trust; everything left of it is the client's
	 * say. Lines are one list in order (RFC 9110 §5.3): walk them from
	 * the last line's last entry. */
	struct sockaddr_storage a;
	socklen_t al = 0;
	int found = 0, done = 0;
	for (size_t i = req->nheaders; i-- > 0 && !done;) {
		const struct http_header *h = &req->headers[i];
		if (!name_is(h, "X-Forwarded-For")) continue;
		for (size_t end = h->value_len;;) {
			size_t start = end;
			while (start > 0 && h->value[start - 1] != ',') start--;
			const char *e = h->value + start;
			size_t el = end - start;
			while (el && (*e == ' ' || *e == '\t')) { e++; el--; }
			if (el) {   /* empty list elements are allowed (RFC 9110 §5.6.1) */
				if (parse_addr(e, el, &a, &al) < 0) return 0;   /* bad: the peer stays */
				found = 1;
				if ((done = !cidr_match(trusted, ntrusted, (struct sockaddr *)&a))) break;
			}
			if (start == 0) break;
			end = start - 1;
		}
	}
	if (!found) return 0;
	/* The rightmost untrusted entry, or the leftmost when all are trusted. */
	*out = a;
	*outlen = al;
	return 1;
}
