/* config.c - flags and environment into a struct config (docs/operations.md).
 * One table describes every option: its names, environment variables, type,
 * bounds and help text; parsing, validation and --help all read it.
 * Precedence: flag, then KBRIDGE_<FLAG>, then the seed alias, then default. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "assets.h"
#include "log.h"

enum opt_type { T_STR, T_BOOL, T_INT, T_BYTES, T_SECS, T_LIST, T_SPECIAL };

struct opt {
	const char *name;    /* long flag without "--" */
	char shrt;           /* short flag or 0 */
	const char *env;     /* KBRIDGE_<FLAG>, or NULL when it has none */
	const char *alias;   /* seed environment alias, or NULL */
	enum opt_type type;
	const char *metavar, *def, *help;
	double min, max;     /* bounds for T_INT, T_BYTES, T_SECS */
};

#define MiB (1024.0 * 1024.0)
static const struct opt opts[] = {
	{ "brokers", 'b', "KBRIDGE_BROKERS", "KAFKA_BROKERS", T_STR, "LIST", NULL,
	  "Kafka bootstrap servers host:port,... (required unless --demo)", 0, 0 },
	{ "topic", 't', "KBRIDGE_TOPIC", "KAFKA_TOPICS", T_LIST, "SPEC", NULL,
	  "route topic[=channel[:type]]; repeatable; '^' starts a regex (env: comma list)", 0, 0 },
	{ "group", 'g', "KBRIDGE_GROUP", "KAFKA_CONSUMER_GROUP", T_STR, "ID", NULL,
	  "consumer group: share partitions and commit offsets (default: fan-out, every partition)", 0, 0 },
	{ "offset", 'o', "KBRIDGE_OFFSET", "KAFKA_OFFSET", T_SPECIAL, "WHERE", "latest",
	  "start position: latest, earliest, -N (N before the end), @MS (timestamp)", 0, 0 },
	{ "X", 'X', NULL, NULL, T_LIST, "KEY=VALUE", NULL,
	  "librdkafka property, passed through; repeatable", 0, 0 },
	{ "listen", 'l', "KBRIDGE_LISTEN", "PORT", T_SPECIAL, "ADDR:PORT", "0.0.0.0:8080",
	  "HTTP and WebSocket listen address (PORT alone: port on 0.0.0.0)", 0, 0 },
	{ "max-clients", 0, "KBRIDGE_MAX_CLIENTS", "MAX_CLIENTS", T_INT, "N", "10000",
	  "clients (WebSocket and SSE) at most; beyond it upgrades and /sse get 503", 1, 1000000 },
	{ "client-buffer", 0, "KBRIDGE_CLIENT_BUFFER", NULL, T_BYTES, "BYTES", "1MiB",
	  "output waiting for one client behind the message being written before the slow-client policy applies; one message of any size always goes (records up to librdkafka's receive.message.max.bytes, 100MB)", 1024, 1024 * MiB },
	{ "client-queue", 0, "KBRIDGE_CLIENT_QUEUE", "MESSAGE_BUFFER_SIZE", T_INT, "N", "1024",
	  "messages held for one client before the slow-client policy applies", 1, 1000000 },
	{ "slow-client", 0, "KBRIDGE_SLOW_CLIENT", NULL, T_SPECIAL, "POLICY", "drop-oldest",
	  "when a client's queue is full: drop-oldest, conflate or disconnect", 0, 0 },
	{ "max-message", 0, "KBRIDGE_MAX_MESSAGE", NULL, T_BYTES, "BYTES", "65536",
	  "largest inbound WebSocket message; larger ones close with 1009", 125, 64 * MiB },
	{ "deflate", 0, "KBRIDGE_DEFLATE", NULL, T_SPECIAL, "on|off", "on",
	  "permessage-deflate (RFC 7692) with clients that offer it: a record compressed once for all of them", 0, 0 },
	{ "deflate-min-size", 0, "KBRIDGE_DEFLATE_MIN_SIZE", NULL, T_BYTES, "BYTES", "256",
	  "messages shorter than this go uncompressed", 0, 64 * MiB },
	{ "ping-interval", 0, "KBRIDGE_PING_INTERVAL", NULL, T_SECS, "S", "30",
	  "seconds between server pings; clients silent for twice this are dropped (0: off)", 0, 86400 },
	{ "allow-origin", 0, "KBRIDGE_ALLOW_ORIGIN", NULL, T_SPECIAL, "LIST", "*",
	  "comma-separated Origin values allowed to upgrade, to open /sse and to read the JSON endpoints (CORS), or *", 0, 0 },
	{ "demo", 0, "KBRIDGE_DEMO", NULL, T_BOOL, NULL, NULL,
	  "run an embedded mock Kafka cluster with a market-data producer and a chat channel to publish on", 0, 0 },
	{ "demo-rate", 0, "KBRIDGE_DEMO_RATE", NULL, T_INT, "N", "20",
	  "records per second produced by --demo, across its topics", 0, 1000000 },
	{ "log-level", 0, "KBRIDGE_LOG_LEVEL", "LOG_LEVEL", T_SPECIAL, "LEVEL", "info",
	  "debug, info, warn or error", 0, 0 },
	{ "log-format", 0, "KBRIDGE_LOG_FORMAT", NULL, T_SPECIAL, "FORMAT", "text",
	  "text or json, one line per event on stderr", 0, 0 },
	{ "drain-timeout", 0, "KBRIDGE_DRAIN_TIMEOUT", NULL, T_SECS, "S", "5",
	  "on SIGTERM/SIGINT, seconds to flush clients before exiting", 0, 3600 },
	{ "header-timeout", 0, "KBRIDGE_HEADER_TIMEOUT", NULL, T_SECS, "S", "10",
	  "seconds a client has to send complete request headers", 0.1, 3600 },
	{ "max-subscriptions", 0, "KBRIDGE_MAX_SUBSCRIPTIONS", NULL, T_INT, "N", "256",
	  "subscriptions per client at most", 1, 100000 },
	{ "client-rate", 0, "KBRIDGE_CLIENT_RATE", NULL, T_INT, "N", "50",
	  "control messages per second per client (burst 2x)", 1, 1000000 },
	{ "headers", 0, "KBRIDGE_HEADERS", NULL, T_BOOL, NULL, NULL,
	  "add Kafka record headers to data messages", 0, 0 },
	{ "history", 0, "KBRIDGE_HISTORY", NULL, T_BYTES, "BYTES", "64MiB",
	  "in-memory record history for resume, in total", 0, 64 * 1024 * MiB },
	{ "snapshot-keys", 0, "KBRIDGE_SNAPSHOT_KEYS", NULL, T_INT, "N", "10000",
	  "keys per channel in the last-value cache for snapshots; beyond it the least recently updated goes (0: off)", 0, 10000000 },
	{ "state-shape", 0, "KBRIDGE_STATE_SHAPE", NULL, T_LIST, "CHANNEL=SHAPE", NULL,
	  "shape of a channel's state for type=tui|web clients: map, value or list; repeatable (default: the first record decides)", 0, 0 },
	{ "publish", 0, "KBRIDGE_PUBLISH", NULL, T_LIST, "CHANNEL=TOPIC", NULL,
	  "clients may publish on CHANNEL (WebSocket publish, POST /publish/CHANNEL); records go to TOPIC; repeatable", 0, 0 },
	{ "command", 0, "KBRIDGE_COMMAND", NULL, T_LIST, "TYPE=TOPIC", NULL,
	  "client messages {\"type\":TYPE,\"payload\":...} publish their payload to TOPIC; repeatable", 0, 0 },
	{ "publish-timeout", 0, "KBRIDGE_PUBLISH_TIMEOUT", NULL, T_SECS, "S", "10",
	  "seconds Kafka has to acknowledge a publish before the client gets PUBLISH_FAILED", 0.1, 3600 },
	{ "max-inflight", 0, "KBRIDGE_MAX_INFLIGHT", NULL, T_INT, "N", "64",
	  "unacknowledged publishes per client; beyond it RATE_LIMITED", 1, 65535 },
	{ "workers", 0, "KBRIDGE_WORKERS", NULL, T_SPECIAL, "N|auto", "1",
	  "worker processes sharing --listen, each with its own Kafka consumer; auto: one per CPU kbridge may run on (fan-out mode only)", 0, 0 },
	{ "ca-file", 0, "KBRIDGE_CA_FILE", NULL, T_STR, "PATH", NULL,
	  "CA certificates (PEM) for TLS to Kafka; same as -X ssl.ca.location=PATH", 0, 0 },
	{ "healthcheck", 0, NULL, NULL, T_STR, "URL", NULL,
	  "GET http://ADDR:PORT/PATH or https://ADDR:PORT/PATH, exit 0 on 200 else 1 (container health checks)", 0, 0 },
	{ "healthcheck-ca", 0, NULL, NULL, T_STR, "FILE", NULL,
	  "CA certificates (PEM) that verify an https:// --healthcheck (default: the system's CA paths)", 0, 0 },
	{ "healthcheck-insecure", 0, NULL, NULL, T_BOOL, NULL, NULL,
	  "do not verify the certificate of an https:// --healthcheck", 0, 0 },
	{ "jwt-key", 0, "KBRIDGE_JWT_KEY", NULL, T_STR, "FILE", NULL,
	  "JWT verification keys: PEM public keys or certificates (RSA, EC, Ed25519), or a JWKS document; clients must then authenticate (reloaded on SIGHUP and on change)", 0, 0 },
	{ "jwt-secret", 0, "KBRIDGE_JWT_SECRET", NULL, T_STR, "FILE", NULL,
	  "HMAC secret for HS256/384/512 tokens: the file's bytes, one trailing newline removed; clients must then authenticate", 0, 0 },
	{ "jwt-audience", 0, "KBRIDGE_JWT_AUDIENCE", NULL, T_STR, "S", NULL,
	  "a token's aud must contain S", 0, 0 },
	{ "jwt-issuer", 0, "KBRIDGE_JWT_ISSUER", NULL, T_STR, "S", NULL,
	  "a token's iss must equal S", 0, 0 },
	{ "jwt-leeway", 0, "KBRIDGE_JWT_LEEWAY", NULL, T_SECS, "S", "30",
	  "clock skew allowed for a token's exp and nbf", 0, 86400 },
	{ "jwt-claim", 0, "KBRIDGE_JWT_CLAIM", NULL, T_STR, "NAME", "kbridge",
	  "the token claim holding the client's permissions (channels, keys, filter, publish)", 0, 0 },
	{ "public-channels", 0, "KBRIDGE_PUBLIC_CHANNELS", NULL, T_LIST, "GLOBS", NULL,
	  "channels anyone may read without a token, comma list of globs ('*': any run of characters)", 0, 0 },
	{ "auth-timeout", 0, "KBRIDGE_AUTH_TIMEOUT", NULL, T_SECS, "S", "10",
	  "seconds an upgraded client has to authenticate by message before close 1008", 0.1, 3600 },
	{ "admin-listen", 0, "KBRIDGE_ADMIN_LISTEN", NULL, T_SPECIAL, "ADDR:PORT", NULL,
	  "serve /metrics, /stats and /ws/stats here, no longer on --listen (bind it to loopback)", 0, 0 },
	{ "admin-token", 0, "KBRIDGE_ADMIN_TOKEN", NULL, T_STR, "FILE", NULL,
	  "/metrics, /stats and /ws/stats require Authorization: Bearer <the file's content>, else 401", 0, 0 },
	{ "max-clients-per-ip", 0, "KBRIDGE_MAX_CLIENTS_PER_IP", NULL, T_INT, "N", "0",
	  "WebSocket clients per source address; beyond it upgrades get 429 (0: off)", 0, 1000000 },
	{ "upgrade-rate", 0, "KBRIDGE_UPGRADE_RATE", NULL, T_INT, "N", "0",
	  "upgrades per second per source address, burst 2x; beyond it 429 with Retry-After (0: off)", 0, 1000000 },
	{ "trusted-proxy", 0, "KBRIDGE_TRUSTED_PROXY", NULL, T_SPECIAL, "CIDRS", NULL,
	  "peers in these ranges may name the client address with X-Forwarded-For or X-Real-IP (comma list)", 0, 0 },
	{ "tls-cert", 0, "KBRIDGE_TLS_CERT", NULL, T_STR, "FILE", NULL,
	  "certificate (PEM, the chain may follow) for TLS on --listen: https and wss only; needs --tls-key (reloaded on SIGHUP and on change)", 0, 0 },
	{ "tls-key", 0, "KBRIDGE_TLS_KEY", NULL, T_STR, "FILE", NULL,
	  "private key (PEM) of --tls-cert", 0, 0 },
	{ "tls-client-ca", 0, "KBRIDGE_TLS_CLIENT_CA", NULL, T_STR, "FILE", NULL,
	  "require client certificates signed by these CAs (PEM, mutual TLS); the subject CN is the client's identity", 0, 0 },
	{ "help", 'h', NULL, NULL, T_BOOL, NULL, NULL, "print this help and exit", 0, 0 },
	{ "version", 'V', NULL, NULL, T_BOOL, NULL, NULL,
	  "print versions, the build target and librdkafka's builtin features, then exit", 0, 0 },
	{ "licenses", 0, NULL, NULL, T_BOOL, NULL, NULL,
	  "print the licences of kbridge and of the code linked into it, then exit", 0, 0 },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *prog = "kbridge";

/* The one error exit: one line naming where the value came from. */
__attribute__((noreturn, format(printf, 2, 3)))
static void die_usage(const char *source, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s: %s (see --help)\n", prog, source, msg);
	exit(2);
}

static void usage(void)
{
	printf("Usage: %s [OPTIONS]\n"
	       "Bridges Kafka topics to WebSocket and Server-Sent Events clients (see /docs on the running server).\n\n",
	       prog);
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char left[64];
		if (o->shrt && strcmp(o->name, "X") == 0)
			snprintf(left, sizeof(left), "-X %s", o->metavar);
		else if (o->shrt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shrt, o->name,
				 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name,
				 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		printf("  %-30s %s", left, o->help);
		if (o->def) printf(" [default: %s]", o->def);
		if (o->env && o->alias) printf(" [env: %s, %s]", o->env, o->alias);
		else if (o->env) printf(" [env: %s]", o->env);
		putchar('\n');
	}
	printf("\nBYTES accept K, KiB, M, MiB, G, GiB suffixes (all binary). S accepts decimals.\n"
	       "Flags win over environment variables. Bad values exit with status 2.\n");
}

/* The binary is shipped alone, so the notices its licences require travel
 * inside it: LICENSE, then THIRD-PARTY-NOTICES. -1 if stdout fails. */
static int print_licenses(void)
{
	struct asset l = asset_license(), n = asset_notices();
	if (fwrite(l.data, 1, l.len, stdout) != l.len) return -1;
	if (fwrite(n.data, 1, n.len, stdout) != n.len) return -1;
	return fflush(stdout) == 0 ? 0 : -1;
}

static int parse_long(const char *s, double min, double max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) return -1;
	*out = v;
	return 0;
}

static int parse_bytes(const char *s, double min, double max, size_t *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9') return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s) return -1;
	double mult = 1;
	if (*end) {
		static const struct { const char *sfx; double m; } sfx[] = {
			{ "K", 1024 }, { "KiB", 1024 }, { "k", 1024 }, { "KB", 1024 },
			{ "M", MiB }, { "MiB", MiB }, { "MB", MiB },
			{ "G", 1024 * MiB }, { "GiB", 1024 * MiB }, { "GB", 1024 * MiB },
		};
		size_t i;
		for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
			if (strcmp(end, sfx[i].sfx) == 0) break;
		if (i == sizeof(sfx) / sizeof(sfx[0])) return -1;
		mult = sfx[i].m;
	}
	double d = (double)v * mult;
	if (d < min || d > max) return -1;
	*out = (size_t)d;
	return 0;
}

static int parse_secs(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max) return -1;
	*out = v;
	return 0;
}

/* ADDR:PORT, [V6ADDR]:PORT, :PORT or PORT. Names other than "localhost" are
 * refused: a scratch image has no resolver configuration to ask. */
static int parse_addr(const char *s, struct sockaddr_storage *out, socklen_t *outlen)
{
	char host[128] = "0.0.0.0";
	const char *port = s;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host)) return -1;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		port = rb + 2;
	} else if (strrchr(s, ':')) {
		const char *colon = strrchr(s, ':');
		if ((size_t)(colon - s) >= sizeof(host)) return -1;
		if (colon != s) {
			memcpy(host, s, (size_t)(colon - s));
			host[colon - s] = '\0';
		}
		port = colon + 1;
	}
	long p;
	if (parse_long(port, 0, 65535, &p) < 0) return -1;
	if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");

	memset(out, 0, sizeof(*out));
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		*outlen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		*outlen = sizeof(*v6);
	} else {
		return -1;
	}
	return 0;
}

/* ADDR[/BITS], IPv4 or IPv6; a bare address is a range of one. */
static int parse_cidr(const char *s, struct cidr *r)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host)) return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, host, r->addr) == 1) r->family = AF_INET;
	else if (inet_pton(AF_INET6, host, r->addr) == 1) r->family = AF_INET6;
	else return -1;
	long max = r->family == AF_INET ? 32 : 128, bits = max;
	if (slash && parse_long(slash + 1, 0, (double)max, &bits) < 0) return -1;
	r->bits = (unsigned)bits;
	return 0;
}

int cidr_match(const struct cidr *r, size_t n, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };
	const unsigned char *a;
	int fam = sa->sa_family;
	if (fam == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (fam == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (!memcmp(a, mapped, 12)) { a += 12; fam = AF_INET; }
	} else {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (r[i].family != fam) continue;
		unsigned full = r[i].bits / 8, rest = r[i].bits % 8;
		if (memcmp(a, r[i].addr, full) != 0) continue;
		if (rest && ((a[full] ^ r[i].addr[full]) & (0xff00 >> rest) & 0xff)) continue;
		return 1;
	}
	return 0;
}

static int parse_offset(const char *s, struct config *c)
{
	char *end;
	if (strcmp(s, "latest") == 0) { c->offset = OFFSET_LATEST; return 0; }
	if (strcmp(s, "earliest") == 0) { c->offset = OFFSET_EARLIEST; return 0; }
	if (s[0] == '-' || s[0] == '@') {
		errno = 0;
		long long v = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1 || *end || v < 0 || s[1] < '0' || s[1] > '9') return -1;
		if (s[0] == '-' && v == 0) return -1;
		c->offset = s[0] == '-' ? OFFSET_TAIL : OFFSET_TIME;
		c->offset_arg = v;
		return 0;
	}
	return -1;
}

static void push(const char ***arr, size_t *n, const char *v)
{
	const char **a = realloc(*arr, (*n + 1) * sizeof(*a));
	if (!a) { fprintf(stderr, "%s: out of memory\n", prog); exit(1); }
	a[(*n)++] = v;
	*arr = a;
}

/* Strings the configuration points into live as long as the process; they
 * are kept here so they stay reachable even when a later flag replaces the
 * value that used them (leak checkers then stay quiet, rightly). */
static char *keep(const char *s)
{
	static const char **kept;
	static size_t nkept;
	char *copy = strdup(s);
	if (!copy) { fprintf(stderr, "%s: out of memory\n", prog); exit(1); }
	push(&kept, &nkept, copy);
	return copy;
}

/* Splits a comma list into the array. */
static void push_list(const char ***arr, size_t *n, const char *list)
{
	char *copy = keep(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ') t++;
		char *e = t + strlen(t);
		while (e > t && e[-1] == ' ') *--e = '\0';
		if (*t) push(arr, n, t);
	}
}

static int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) { *out = 1; return 0; }
	if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !*s) { *out = 0; return 0; }
	return -1;
}

/* A bad-value reason naming the option's accepted range (docs/operations.md):
 * "expected <what> from <min> to <max><after>". */
static const char *range_why(const char *what, const char *after, const struct opt *o)
{
	static char why[160];
	char lo[32], hi[32];
	snprintf(lo, sizeof(lo), o->min == (long long)o->min ? "%.0f" : "%g", o->min);
	snprintf(hi, sizeof(hi), o->max == (long long)o->max ? "%.0f" : "%g", o->max);
	snprintf(why, sizeof(why), "expected %s from %s to %s%s", what, lo, hi, after);
	return why;
}

/* Applies one value to the option; `from_env` changes list semantics (a
 * comma list replaces, a flag appends). Returns 0 or -1 with *why set. */
static int apply(struct config *c, const struct opt *o, const char *v, int from_env, const char **why)
{
	const char *n = o->name;
	*why = NULL;
	switch (o->type) {
	case T_BOOL: {
		int b = 1;
		if (v && parse_bool(v, &b) < 0) { *why = "expected 1/0, true/false, yes/no or on/off"; return -1; }
		if (!strcmp(n, "demo")) c->demo = b;
		else if (!strcmp(n, "headers")) c->headers = b;
		else if (!strcmp(n, "healthcheck-insecure")) c->healthcheck_insecure = b;
		return 0;
	}
	case T_STR:
		if (!*v) { *why = "must not be empty"; return -1; }
		if (!strcmp(n, "brokers")) c->brokers = v;
		else if (!strcmp(n, "group")) c->group = v;
		else if (!strcmp(n, "ca-file")) c->ca_file = v;
		else if (!strcmp(n, "healthcheck")) c->healthcheck = v;
		else if (!strcmp(n, "healthcheck-ca")) c->healthcheck_ca = v;
		else if (!strcmp(n, "jwt-key")) c->jwt_key = v;
		else if (!strcmp(n, "jwt-secret")) c->jwt_secret = v;
		else if (!strcmp(n, "jwt-audience")) c->jwt_audience = v;
		else if (!strcmp(n, "jwt-issuer")) c->jwt_issuer = v;
		else if (!strcmp(n, "jwt-claim")) c->jwt_claim = v;
		else if (!strcmp(n, "admin-token")) c->admin_token = v;
		else if (!strcmp(n, "tls-cert")) c->tls_cert = v;
		else if (!strcmp(n, "tls-key")) c->tls_key = v;
		else if (!strcmp(n, "tls-client-ca")) c->tls_client_ca = v;
		return 0;
	case T_LIST:
		if (!strcmp(n, "topic")) {
			if (from_env) { c->ntopics = 0; push_list(&c->topics, &c->ntopics, v); }
			else push(&c->topics, &c->ntopics, v);
			for (size_t i = 0; i < c->ntopics; i++) {
				const char *t = c->topics[i];
				if (!*t || *t == '=' || *t == ':') { *why = "expected topic[=channel[:type]]"; return -1; }
			}
		} else if (!strcmp(n, "state-shape")) {
			if (from_env) { c->nstate_shapes = 0; push_list(&c->state_shapes, &c->nstate_shapes, v); }
			else push(&c->state_shapes, &c->nstate_shapes, v);
			for (size_t i = 0; i < c->nstate_shapes; i++) {
				const char *eq = strrchr(c->state_shapes[i], '=');
				if (!eq || eq == c->state_shapes[i] ||
				    (strcmp(eq, "=map") && strcmp(eq, "=value") && strcmp(eq, "=list"))) {
					*why = "expected CHANNEL=map, CHANNEL=value or CHANNEL=list";
					return -1;
				}
			}
		} else if (!strcmp(n, "publish") || !strcmp(n, "command")) {
			int pub = n[1] == 'u';
			const char ***l = pub ? &c->publishes : &c->commands;
			size_t *nl = pub ? &c->npublishes : &c->ncommands;
			if (from_env) { *nl = 0; push_list(l, nl, v); }
			else push(l, nl, v);
			for (size_t i = 0; i < *nl; i++) {
				const char *eq = strchr((*l)[i], '=');
				if (!eq || eq == (*l)[i] || !eq[1]) { *why = pub ? "expected CHANNEL=TOPIC" : "expected TYPE=TOPIC"; return -1; }
			}
		} else if (!strcmp(n, "public-channels")) {
			if (from_env) c->npublic_channels = 0;
			push_list(&c->public_channels, &c->npublic_channels, v);
		} else {
			if (!strchr(v, '=') || *v == '=') { *why = "expected key=value"; return -1; }
			push(&c->xprops, &c->nxprops, v);
		}
		return 0;
	case T_INT: {
		long l;
		if (parse_long(v, o->min, o->max, &l) < 0) { *why = range_why("an integer", "", o); return -1; }
		if (!strcmp(n, "max-clients")) c->max_clients = l;
		else if (!strcmp(n, "client-queue")) c->client_queue = l;
		else if (!strcmp(n, "demo-rate")) c->demo_rate = l;
		else if (!strcmp(n, "max-subscriptions")) c->max_subscriptions = l;
		else if (!strcmp(n, "client-rate")) c->client_rate = l;
		else if (!strcmp(n, "snapshot-keys")) c->snapshot_keys = l;
		else if (!strcmp(n, "max-clients-per-ip")) c->max_clients_per_ip = l;
		else if (!strcmp(n, "upgrade-rate")) c->upgrade_rate = l;
		else if (!strcmp(n, "max-inflight")) c->max_inflight = l;
		return 0;
	}
	case T_BYTES: {
		size_t z;
		if (parse_bytes(v, o->min, o->max, &z) < 0) {
			*why = range_why("a byte count", " (suffixes K, M, G: 1024s)", o);
			return -1;
		}
		if (!strcmp(n, "client-buffer")) c->client_buffer = z;
		else if (!strcmp(n, "max-message")) c->max_message = z;
		else if (!strcmp(n, "history")) c->history = z;
		else if (!strcmp(n, "deflate-min-size")) c->deflate_min_size = z;
		return 0;
	}
	case T_SECS: {
		double d;
		if (parse_secs(v, o->min, o->max, &d) < 0) { *why = range_why("seconds", "", o); return -1; }
		if (!strcmp(n, "ping-interval")) c->ping_interval = d;
		else if (!strcmp(n, "drain-timeout")) c->drain_timeout = d;
		else if (!strcmp(n, "publish-timeout")) c->publish_timeout = d;
		else if (!strcmp(n, "header-timeout")) c->header_timeout = d;
		else if (!strcmp(n, "jwt-leeway")) c->jwt_leeway = d;
		else if (!strcmp(n, "auth-timeout")) c->auth_timeout = d;
		return 0;
	}
	case T_SPECIAL:
		if (!strcmp(n, "offset")) {
			if (parse_offset(v, c) < 0) { *why = "expected latest, earliest, -N or @MS"; return -1; }
		} else if (!strcmp(n, "listen")) {
			if (parse_addr(v, &c->listen, &c->listen_len) < 0) { *why = "expected ADDR:PORT with a numeric address (or localhost) and port 0-65535"; return -1; }
			c->listen_str = v;
		} else if (!strcmp(n, "admin-listen")) {
			if (parse_addr(v, &c->admin_listen, &c->admin_listen_len) < 0) { *why = "expected ADDR:PORT with a numeric address (or localhost) and port 0-65535"; return -1; }
			c->admin_listen_str = v;
		} else if (!strcmp(n, "trusted-proxy")) {
			const char **list = NULL;
			size_t nl = 0;
			push_list(&list, &nl, v);
			struct cidr *r = nl ? calloc(nl, sizeof(*r)) : NULL;
			if (nl && !r) { fprintf(stderr, "%s: out of memory\n", prog); exit(1); }
			for (size_t i = 0; i < nl; i++)
				if (parse_cidr(list[i], &r[i]) < 0) {
					free(list);
					free(r);
					*why = "expected a comma list of ADDR or ADDR/BITS (IPv4 or IPv6)";
					return -1;
				}
			free(list);
			free(c->trusted);
			c->trusted = r;
			c->ntrusted = nl;
		} else if (!strcmp(n, "deflate")) {
			if (!strcmp(v, "on")) c->deflate = 1;
			else if (!strcmp(v, "off")) c->deflate = 0;
			else { *why = "expected on or off"; return -1; }
		} else if (!strcmp(n, "slow-client")) {
			if (!strcmp(v, "drop-oldest")) c->slow = SLOW_DROP_OLDEST;
			else if (!strcmp(v, "conflate")) c->slow = SLOW_CONFLATE;
			else if (!strcmp(v, "disconnect")) c->slow = SLOW_DISCONNECT;
			else { *why = "expected drop-oldest, conflate or disconnect"; return -1; }
		} else if (!strcmp(n, "allow-origin")) {
			c->norigins = 0;
			if (strcmp(v, "*") != 0) {
				push_list(&c->origins, &c->norigins, v);
				for (size_t i = 0; i < c->norigins; i++)
					if (!strcmp(c->origins[i], "*")) { c->norigins = 0; break; }
				if (c->norigins == 0 && !strchr(v, '*')) { *why = "expected * or a comma list of scheme://host[:port]"; return -1; }
			}
		} else if (!strcmp(n, "workers")) {
			long w;
			if (!strcmp(v, "auto")) {
				cpu_set_t set;
				w = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
				if (w > CONFIG_WORKERS_MAX) w = CONFIG_WORKERS_MAX;
				c->workers_auto = 1;
			} else if (parse_long(v, 1, CONFIG_WORKERS_MAX, &w) < 0) {
				*why = "expected auto or an integer 1-" CONFIG_WORKERS_MAX_STR;
				return -1;
			}
			c->workers = (int)w;
			if (strcmp(v, "auto")) c->workers_auto = 0;
		} else if (!strcmp(n, "log-level")) {
			int l = log_level_parse(v);
			if (l < 0) { *why = "expected debug, info, warn or error"; return -1; }
			c->log_level = l;
		} else if (!strcmp(n, "log-format")) {
			if (!strcmp(v, "text")) c->log_json = 0;
			else if (!strcmp(v, "json")) c->log_json = 1;
			else { *why = "expected text or json"; return -1; }
		}
		return 0;
	}
	return -1;
}

static void apply_or_die(struct config *c, const struct opt *o, const char *v, int from_env,
			 const char *source)
{
	const char *why;
	if (apply(c, o, v, from_env, &why) < 0)
		die_usage(source, "bad value '%s': %s", v ? v : "", why);
}

void config_load(struct config *c, int argc, char **argv, void (*version_line)(void))
{
	char src[96];
	int want_help = 0, want_version = 0, want_licenses = 0;

	if (argc > 0 && argv[0]) {
		const char *slash = strrchr(argv[0], '/');
		prog = slash ? slash + 1 : argv[0];
	}
	memset(c, 0, sizeof(*c));
	c->log_level = LOG_INFO;
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].def) apply_or_die(c, &opts[i], opts[i].def, 0, "default");

	/* Flags first read, then applied after the environment: a flag wins,
	 * so a bad environment value under a flag does not matter.
	 * Forms: --name VALUE, --name=VALUE, -x VALUE, -xVALUE. */
	struct given { const struct opt *o; const char *val; char src[48]; } *flags = calloc((size_t)argc + 1, sizeof(*flags));
	int nflags = 0;
	if (!flags) { fprintf(stderr, "%s: out of memory\n", prog); exit(1); }
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const struct opt *o = NULL;
		struct given *g = &flags[nflags];
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (size_t k = 0; k < NOPTS; k++)
				if (strlen(opts[k].name) == len && !strncmp(opts[k].name, a + 2, len)
				    && strcmp(opts[k].name, "X") != 0)
					o = &opts[k];
			if (!o) die_usage(a, "unknown option");
			if (eq) val = eq + 1;
			snprintf(g->src, sizeof(g->src), "--%s", o->name);
		} else if (a[0] == '-' && a[1] && a[1] != '-') {
			for (size_t k = 0; k < NOPTS; k++)
				if (opts[k].shrt == a[1]) o = &opts[k];
			if (!o) die_usage(a, "unknown option");
			if (a[2]) val = a + 2;
			snprintf(g->src, sizeof(g->src), "-%c", a[1]);
		} else {
			die_usage(a, "unexpected argument");
		}
		if (o->type == T_BOOL) {
			if (val && o->shrt && a[1] != '-') die_usage(g->src, "takes no value");
			if (!strcmp(o->name, "help")) { want_help = 1; continue; }
			if (!strcmp(o->name, "version")) { want_version = 1; continue; }
			if (!strcmp(o->name, "licenses")) { want_licenses = 1; continue; }
		} else if (!val) {
			if (i + 1 >= argc) die_usage(g->src, "needs a value (%s)", o->metavar);
			val = argv[++i];
		}
		g->o = o;
		g->val = val;
		nflags++;
	}

	/* Environment: the seed alias first, so KBRIDGE_<FLAG> overrides it. */
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		int flagged = 0;
		for (int f = 0; f < nflags && !flagged; f++) flagged = flags[f].o == o;
		if (flagged) continue;
		const char *names[2] = { o->alias, o->env };
		for (int k = 0; k < 2; k++) {
			const char *v = names[k] ? getenv(names[k]) : NULL;
			if (!v) continue;
			char buf[32];
			if (!strcmp(names[k], "PORT")) {   /* PORT alone is just a port */
				long p;
				if (parse_long(v, 0, 65535, &p) < 0)
					die_usage("environment PORT", "bad value '%s': expected a port 0-65535", v);
				snprintf(buf, sizeof(buf), "0.0.0.0:%ld", p);
				v = keep(buf);
			}
			snprintf(src, sizeof(src), "environment %s", names[k]);
			apply_or_die(c, o, v, 1, src);
		}
	}

	/* --topic flags replace KAFKA_TOPICS / KBRIDGE_TOPIC
	 * (docs/operations.md): the environment's were skipped above. */
	for (int f = 0; f < nflags; f++) apply_or_die(c, flags[f].o, flags[f].val, 0, flags[f].src);
	free(flags);

	/* The demo's three dashboard topics, unless routes were given
	 * (docs/operations.md). */
	if (c->demo && c->ntopics == 0) {
		push(&c->topics, &c->ntopics, "token-info=dashboard:token_info");
		push(&c->topics, &c->ntopics, "trade-info=dashboard:trade_data");
		push(&c->topics, &c->ntopics, "aggregate-info=dashboard:aggregate_data");
		/* A channel to publish on, read back: the console's publish box. */
		if (!c->npublishes) push(&c->publishes, &c->npublishes, "chat=demo-chat");
		push(&c->topics, &c->ntopics, "demo-chat=chat");
	}
	if (want_help) { usage(); exit(0); }
	if (want_version) { version_line(); exit(0); }
	if (want_licenses) exit(print_licenses() < 0 ? 1 : 0);
	if (c->healthcheck) return;   /* a probe needs no Kafka settings */
	if (!c->brokers && !c->demo)
		die_usage("--brokers", "required unless --demo (or set KAFKA_BROKERS)");
	if (c->brokers && c->demo)
		die_usage("--demo", "cannot be combined with --brokers: the demo runs its own cluster");
	c->max_clients_here = c->max_clients;
	/* Each worker consumes every partition itself: a group would split
	 * them, and each would run its own demo cluster. */
	if (c->workers > 1 && c->group)
		die_usage("--workers", "above 1 needs fan-out mode: with --group the workers would split the partitions between them");
	if (c->workers > 1 && c->demo)
		die_usage("--workers", "above 1 cannot run --demo: each worker would start a demo cluster of its own");
	/* Every worker takes a share of --max-clients: one with none would
	 * answer 503 to every connection the kernel hands it. */
	if (c->workers > c->max_clients) {
		if (!c->workers_auto)
			die_usage("--workers", "%d is more than --max-clients %ld: every worker needs a share of at least one client",
			          c->workers, c->max_clients);
		c->workers = (int)c->max_clients;
	}
	if (c->admin_listen_len && c->admin_listen_len == c->listen_len &&
	    !memcmp(&c->admin_listen, &c->listen, c->listen_len))
		die_usage("--admin-listen", "must differ from --listen");
	if ((c->jwt_audience || c->jwt_issuer) && !c->jwt_key && !c->jwt_secret)
		die_usage(c->jwt_audience ? "--jwt-audience" : "--jwt-issuer",
			  "needs --jwt-key or --jwt-secret to check tokens with");
	/* the pair goes together; a client CA alone means nothing. */
	if (!c->tls_cert != !c->tls_key)
		die_usage(c->tls_cert ? "--tls-cert" : "--tls-key", "needs --tls-cert and --tls-key together");
	if (c->tls_client_ca && !c->tls_cert)
		die_usage("--tls-client-ca", "needs --tls-cert and --tls-key");
}

/* -X values whose names look secret are never logged (docs/operations.md). */
static int secret_name(const char *kv)
{
	static const char *const words[] = { "password", "secret", "key", "token", "jaas", "credential" };
	size_t n = strcspn(kv, "=");
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t wl = strlen(words[i]);
		for (size_t k = 0; k + wl <= n; k++)
			if (strncasecmp(kv + k, words[i], wl) == 0) return 1;
	}
	return 0;
}

void config_log_summary(const struct config *c)
{
	char topics[512] = "", xs[1024] = "", origins[256] = "*";
	size_t o = 0;
	for (size_t i = 0; i < c->ntopics && o < sizeof(topics); i++)
		o += (size_t)snprintf(topics + o, sizeof(topics) - o, "%s%s", i ? "," : "", c->topics[i]);
	o = 0;
	for (size_t i = 0; i < c->nxprops && o < sizeof(xs); i++) {
		if (secret_name(c->xprops[i]))
			o += (size_t)snprintf(xs + o, sizeof(xs) - o, "%s%.*s=***", i ? "," : "",
					      (int)strcspn(c->xprops[i], "="), c->xprops[i]);
		else
			o += (size_t)snprintf(xs + o, sizeof(xs) - o, "%s%s", i ? "," : "", c->xprops[i]);
	}
	o = 0;
	for (size_t i = 0; i < c->norigins && o < sizeof(origins); i++)
		o += (size_t)snprintf(origins + o, sizeof(origins) - o, "%s%s", i ? "," : "", c->origins[i]);
	static const char *const slow[] = { "drop-oldest", "conflate", "disconnect" };
	log_msg(LOG_INFO, "starting",
		"listen", c->listen_str,
		"brokers", c->demo ? "(demo)" : c->brokers,
		"topics", topics,
		"group", c->group ? c->group : "(fan-out)",
		"x", xs,
		"max_clients", log_num(c->max_clients),
		"client_buffer", log_num((int64_t)c->client_buffer),
		"client_queue", log_num(c->client_queue),
		"slow_client", slow[c->slow],
		"allow_origin", origins,
		"auth", c->jwt_key || c->jwt_secret ? "jwt" : "off",
		"admin_listen", c->admin_listen_str ? c->admin_listen_str : "(main port)",
		"tls", c->tls_cert ? (c->tls_client_ca ? "mtls" : "on") : "off",
		"deflate", c->deflate ? "on" : "off",
		"workers", log_num(c->workers),
		NULL);
}

static struct file_stamp file_stamp(const char *path)
{
	struct file_stamp s = { 0 };
	struct stat st;
	if (path && stat(path, &st) == 0) {
		s.mtime = st.st_mtim;
		s.size = st.st_size;
		s.ino = st.st_ino;
	}
	return s;
}

static int file_stamp_eq(struct file_stamp a, struct file_stamp b)
{
	return a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec &&
	       a.size == b.size && a.ino == b.ino;
}

void file_watch_mark(struct file_watch *w, int64_t now, int64_t period_ms)
{
	for (int i = 0; i < FILE_WATCH_MAX; i++) w->st[i] = file_stamp(w->path[i]);
	w->next = now + period_ms;
}

int file_watch_changed(struct file_watch *w, int64_t now, int64_t period_ms)
{
	if (now < w->next) return 0;
	w->next = now + period_ms;
	for (int i = 0; i < FILE_WATCH_MAX; i++)
		if (!file_stamp_eq(file_stamp(w->path[i]), w->st[i])) return 1;
	return 0;
}
