/* test_iplimit.c - limits per source address and the address behind a
 * trusted proxy (iplimit.h). Open clients per address up to the limit and
 * a slot freed by a close; IPv4-mapped IPv6 counted as IPv4; the token
 * bucket's burst, refill and Retry-After in whole seconds; the sweep
 * forgetting exactly the addresses that limit nothing any more, under
 * churn of many addresses; and X-Real-IP / X-Forwarded-For: trusted and
 * untrusted peers, several header lines, ports, brackets, blanks, bad
 * values, every entry trusted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"
#include "http.h"
#include "iplimit.h"

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(40000);
	} else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(40000);
	} else {
		fprintf(stderr, "bad test address %s\n", ip);
		exit(2);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_per_address(void)
{
	iplimit_init(2, 0);
	struct sockaddr_storage a = addr("127.0.0.2"), b = addr("127.0.0.3");
	struct sockaddr_storage a6 = addr("::ffff:127.0.0.2"), v6 = addr("2001:db8::1");
	unsigned retry = 99;
	CHECK(iplimit_admit(SA(a), 0, &retry) == IPLIMIT_OK && iplimit_open(SA(a)) == 1);
	/* The same address through a dual-stack socket is the same address. */
	CHECK(iplimit_admit(SA(a6), 0, &retry) == IPLIMIT_OK && iplimit_open(SA(a6)) == 1);
	CHECK(iplimit_admit(SA(a), 0, &retry) == IPLIMIT_PER_IP);
	CHECK(iplimit_admit(SA(a6), 0, &retry) == IPLIMIT_PER_IP);
	CHECK(retry == 99);   /* untouched: only the rate says when to retry */
	/* Another address is not affected. */
	CHECK(iplimit_admit(SA(b), 0, &retry) == IPLIMIT_OK && iplimit_open(SA(b)) == 1);
	CHECK(iplimit_admit(SA(v6), 0, &retry) == IPLIMIT_OK);
	/* A close frees one slot. */
	iplimit_close(SA(a));
	CHECK(iplimit_admit(SA(a), 0, &retry) == IPLIMIT_OK);
	/* The sweep keeps addresses with clients, forgets the others. */
	CHECK(iplimit_addresses() == 3);
	iplimit_sweep(0);
	CHECK(iplimit_addresses() == 2);
	iplimit_close(SA(a6));
	iplimit_close(SA(b));
	iplimit_close(SA(b));   /* one close too many does not wrap */
	iplimit_sweep(0);
	CHECK(iplimit_addresses() == 0);
	CHECK(iplimit_admit(SA(b), 0, &retry) == IPLIMIT_OK && iplimit_open(SA(b)) == 1);
	CHECK(iplimit_admit(SA(b), 0, &retry) == IPLIMIT_OK && iplimit_open(SA(b)) == 1);
	CHECK(iplimit_admit(SA(b), 0, &retry) == IPLIMIT_PER_IP);
	iplimit_close(SA(b));
	iplimit_close(SA(b));
	iplimit_sweep(0);
	CHECK(iplimit_addresses() == 0);
}

static void test_rate(void)
{
	iplimit_init(0, 2);    /* 2 per second, burst 4 */
	struct sockaddr_storage a = addr("10.1.2.3"), b = addr("10.1.2.4");
	unsigned retry = 0;
	int64_t t = 1000000;
	for (int i = 0; i < 4; i++) CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_OK);
	CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_RATE && retry == 1);
	CHECK(iplimit_admit(SA(b), t, &retry) == IPLIMIT_OK);
	/* Nothing is counted as open when only the rate is on. */
	CHECK(iplimit_open(SA(a)) == 0);
	/* Half a second refills one token. */
	CHECK(iplimit_admit(SA(a), t + 499, &retry) == IPLIMIT_RATE);
	CHECK(iplimit_admit(SA(a), t + 500, &retry) == IPLIMIT_OK);
	CHECK(iplimit_admit(SA(a), t + 500, &retry) == IPLIMIT_RATE);
	/* A bucket not yet full is kept; once full again it is forgotten. */
	iplimit_sweep(t + 499);
	CHECK(iplimit_addresses() == 2);
	iplimit_sweep(t + 500);            /* b's one token is back */
	CHECK(iplimit_addresses() == 1);
	iplimit_sweep(t + 2499);           /* a's four take 2 s from t + 500 */
	CHECK(iplimit_addresses() == 1);
	iplimit_sweep(t + 2500);
	CHECK(iplimit_addresses() == 0);

	/* Retry-After in whole seconds, rounded up: 1 per second, then 1 per
	 * 4 seconds would need a fraction. */
	iplimit_init(0, 1);
	CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_OK);
	CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_OK);
	CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_RATE && retry == 1);
	CHECK(iplimit_admit(SA(a), t + 300, &retry) == IPLIMIT_RATE && retry == 1);
	CHECK(iplimit_admit(SA(a), t + 1000, &retry) == IPLIMIT_OK);
	iplimit_sweep(t + 10000);
	CHECK(iplimit_addresses() == 0);

	/* Both off: nothing is ever kept. */
	iplimit_init(0, 0);
	CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_OK && iplimit_open(SA(a)) == 0);
	CHECK(iplimit_addresses() == 0);
}

/* Many addresses come and go: the table holds only the recent ones. */
static void test_churn(void)
{
	iplimit_init(1, 5);
	unsigned retry;
	int64_t t = 5000000;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 1000; i++) {
			char ip[32];
			snprintf(ip, sizeof(ip), "10.%d.%d.%d", round, i / 250, i % 250 + 1);
			struct sockaddr_storage a = addr(ip);
			CHECK(iplimit_admit(SA(a), t, &retry) == IPLIMIT_OK);
			CHECK(iplimit_open(SA(a)) == 1);
			iplimit_close(SA(a));
		}
		/* Each took one token, back after 200 ms: a tick later all go. */
		CHECK(iplimit_addresses() == 1000);
		t += 250;
		iplimit_sweep(t);
		CHECK(iplimit_addresses() == 0);
	}
}

/* ---- the address behind a proxy ------------------------------------------ */

static struct cidr trusted[2];
static size_t ntrusted;

static void set_trusted(void)
{
	/* 127.0.0.1/32 and 10.0.0.0/8, as config.c parses them. */
	memset(trusted, 0, sizeof(trusted));
	trusted[0].family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", trusted[0].addr);
	trusted[0].bits = 32;
	trusted[1].family = AF_INET;
	inet_pton(AF_INET, "10.0.0.0", trusted[1].addr);
	trusted[1].bits = 8;
	ntrusted = 2;
}

/* The address iplimit_forwarded gives for head from peer, as "ip:port",
 * or "-" when the peer stays. */
static const char *fwd(const char *peer, const char *head)
{
	static char out[80];
	struct http_request req;
	char buf[2048];
	snprintf(buf, sizeof(buf), "GET /ws HTTP/1.1\r\nHost: x\r\n%s\r\n", head);
	if (http_parse_request(buf, strlen(buf), &req) <= 0) return "parse error";
	struct sockaddr_storage p = addr(peer), o;
	socklen_t ol = 0;
	if (!iplimit_forwarded(&req, SA(p), trusted, ntrusted, &o, &ol)) return "-";
	char ip[INET6_ADDRSTRLEN];
	if (o.ss_family == AF_INET && ol == sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)&o;
		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		snprintf(out, sizeof(out), "%s:%u", ip, ntohs(v4->sin_port));
	} else if (o.ss_family == AF_INET6 && ol == sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&o;
		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		snprintf(out, sizeof(out), "[%s]:%u", ip, ntohs(v6->sin6_port));
	} else {
		return "bad family";
	}
	return out;
}

#define FWD(peer, head, want) do { const char *got_ = fwd(peer, head); \
	CHECKF(strcmp(got_, want) == 0, "%s from %s: got %s, want %s", head, peer, got_, want); } while (0)

static void test_forwarded(void)
{
	set_trusted();
	/* Untrusted peers: their headers are not read. */
	FWD("192.0.2.1", "X-Forwarded-For: 203.0.113.9\r\n", "-");
	FWD("192.0.2.1", "X-Real-IP: 203.0.113.9\r\n", "-");
	FWD("::ffff:192.0.2.1", "X-Forwarded-For: 203.0.113.9\r\n", "-");
	/* A trusted peer without the headers stays. */
	FWD("127.0.0.1", "", "-");
	/* The rightmost untrusted entry. */
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9:0");
	FWD("::ffff:127.0.0.1", "X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9:0");
	FWD("127.0.0.1", "X-Forwarded-For: 198.51.100.7, 203.0.113.9\r\n", "203.0.113.9:0");
	FWD("127.0.0.1", "X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.1.1\r\n", "203.0.113.9:0");
	FWD("127.0.0.1", "X-Forwarded-For: 198.51.100.7,203.0.113.9,,10.1.1.1 , \r\n", "203.0.113.9:0");
	/* Lines are one list, in order. */
	FWD("127.0.0.1", "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 10.2.2.2\r\n", "198.51.100.7:0");
	FWD("127.0.0.1", "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 203.0.113.9, 10.2.2.2\r\n", "203.0.113.9:0");
	FWD("127.0.0.1", "x-forwarded-for: 198.51.100.7\r\nX-Other: 1.1.1.1\r\n", "198.51.100.7:0");
	/* Every entry trusted: the leftmost. */
	FWD("127.0.0.1", "X-Forwarded-For: 10.9.9.9, 10.1.1.1\r\n", "10.9.9.9:0");
	/* Ports, brackets, IPv6, mapped IPv6. */
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9:5555\r\n", "203.0.113.9:5555");
	FWD("127.0.0.1", "X-Forwarded-For: 2001:db8::7\r\n", "[2001:db8::7]:0");
	FWD("127.0.0.1", "X-Forwarded-For: [2001:db8::7]\r\n", "[2001:db8::7]:0");
	FWD("127.0.0.1", "X-Forwarded-For: [2001:db8::7]:443\r\n", "[2001:db8::7]:443");
	FWD("127.0.0.1", "X-Forwarded-For: ::ffff:203.0.113.9\r\n", "203.0.113.9:0");
	/* Bad values where the search reaches them: the peer stays. */
	FWD("127.0.0.1", "X-Forwarded-For: unknown\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9, _hidden\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.999\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9:70000\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9:\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: [2001:db8::7\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: [2001:db8::7]x\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: [203.0.113.9]\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: 1.2.3.4 5.6.7.8\r\n", "-");
	FWD("127.0.0.1", "X-Forwarded-For: \r\n", "-");
	/* ... but what the client wrote left of the first untrusted entry is
	 * never read. */
	FWD("127.0.0.1", "X-Forwarded-For: garbage, 203.0.113.9\r\n", "203.0.113.9:0");
	/* X-Real-IP decides when present: one line, one address. */
	FWD("127.0.0.1", "X-Real-IP: 203.0.113.5\r\nX-Forwarded-For: 203.0.113.9\r\n", "203.0.113.5:0");
	FWD("10.0.0.5", "X-Real-IP:  2001:db8::5 \r\n", "[2001:db8::5]:0");
	FWD("127.0.0.1", "X-Real-IP: nope\r\nX-Forwarded-For: 203.0.113.9\r\n", "-");
	FWD("127.0.0.1", "X-Real-IP: 203.0.113.5\r\nX-Real-IP: 203.0.113.6\r\n", "-");
	FWD("127.0.0.1", "X-Real-IP: 203.0.113.5, 203.0.113.6\r\n", "-");
	/* No trusted ranges at all. */
	ntrusted = 0;
	FWD("127.0.0.1", "X-Forwarded-For: 203.0.113.9\r\n", "-");
}

int main(void)
{
	test_per_address();
	test_rate();
	test_churn();
	test_forwarded();
	return check_summary("test_iplimit");
}
