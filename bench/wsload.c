/* wsload.c - WebSocket load generator for kbridge's benchmarks (bench/README.md).
 * One thread, one epoll set, thousands of connections: non-blocking connects
 * with a bound on handshakes in flight, upgrade, subscribe, then read and
 * parse every frame. Each data message carries the producer's payload
 * (bench/produce.c) with "ts_us" (wall clock at produce time), "n" (global
 * sequence), "k" (key index) and "kn" (per-key sequence): wsload records the
 * latency ts_us -> receipt in a log-linear histogram and checks the sequence
 * each client should see for gaps. Prints one JSON line when done.
 * --format msgpack: the connection asks for format=msgpack and every server
 * message is walked as MessagePack (a minimal decoder, below) instead.
 * --interval MS: the clients ask for conflation (at most one message per
 * channel and key per interval, always the newest): skipped sequence numbers
 * are then by design, so instead of gaps wsload checks that each key's "n"
 * strictly increases (no duplicate, no reordering) and that every client
 * ends up with each key's newest value.
 * --channel A,B,C: clients subscribe to several channels ("channels":[...]);
 * records of different topics interleave, so instead of the global "n"
 * each key's "kn" is checked ("k" tells the key).
 * --state web|tui: the state dialect (docs/protocol.md#state-dialect):
 * type=web on the upgrade, one snapshot then updates of changed paths.
 * Every snapshot and update is walked (JSON or MessagePack) for the
 * "<channel>.k<N>.kn" and ".ts_us" values it carries: per client and key
 * "kn" must never go back and must end at the newest; each "ts_us" gives
 * the age of the value when its update arrived; the time between a
 * client's updates, the age of each update's newest value (but a client's
 * last: it follows the end of the records) and the time from an update's
 * "timestamp" to its receipt are kept too.
 * --tokens FILE: one token per line; client i sends line i % lines as
 * "Authorization: Bearer" on its upgrade (a server with authentication on).
 * --deflate: every client offers permessage-deflate (RFC 7692), requires
 * the 101 to accept it, and inflates each compressed message (RSV1) before
 * the checks above; no inflate state is kept between messages.
 * --sse: Server-Sent Events instead of WebSocket: each connection sends
 * GET /sse?channel=... (key=, interval= in the query too), needs a 200
 * text/event-stream answer, then parses the close-delimited event stream
 * line by line; each data event is one delivery, its data line (the JSON
 * a WebSocket client would get) parsed and checked as a message is.
 * --publish R: publishers (issue 19): each client publishes R records a
 * second on the first --channel (a "publish" message, key k<i>, id "<seq>",
 * data produce.c's payload with "k" = the client and "kn" = seq) and
 * matches every ack or error by its id: ack latency send -> ack. Readers
 * of that channel take --per-key (each key's "kn" checked).
 * Not a WebSocket library: it speaks just enough of RFC 6455 for a client. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include "benchctl.h"

#define READ_BUF      (1u << 20)   /* one shared read buffer for every connection */
#define MAX_FRAME     (READ_BUF / 2) /* a leftover partial frame always fits in front */
#define MAX_HEAD      8192         /* HTTP response head */
#define MAX_SOURCES   250          /* 127.0.0.1 .. 127.0.0.250 */
#define TAIL_WINDOW   128          /* where "ts_us" sits in kbridge's envelope */
#define EVENTS        1024
#define MAX_KEY_INDEX (1u << 20)   /* conflation checks: highest "k" tracked */
#define MAX_CHANNELS  64           /* --channel A,B,...: names at most */
#define SW_DEPTH      32           /* --state: nesting walked at most */
#define MAX_TOKEN     7000         /* --tokens: a line at most (kbridge reads 8 KiB of head) */
#define ZCACHE        4096         /* --deflate: inflated messages kept, by their compressed bytes, */
#define ZCACHE_WAYS   8            /* ... in sets of 8, the least recently used one replaced */
#define ZCACHE_MAX    4096         /* ... of compressed payloads at most this long */
#define ZCACHE_MAX_OUT 65536       /* ... inflating to at most this */
#define PUB_RING      256          /* --publish: a client's publishes in flight at most
				    * (kbridge's --max-inflight is 64 by default) */
#define PUB_MAX_SIZE  512          /* --publish: --size at most (a frame of send_frame) */

/* The RFC 6455 §1.3 example key: every connection may use the same one, and
 * checking the reply needs no SHA-1 here. */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* ---- latency histogram ----------------------------------------------------
 * Log-linear (HDR style): values below 2^SUB_BITS are exact; above, each
 * power of two is split into 2^SUB_BITS equal buckets, so a bucket is at most
 * 1/64 (1.6%) of its value wide. Fixed size, O(1) to record, no samples kept. */
#define SUB_BITS 6
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

struct hist {
	uint64_t count, sum, min, max;
	uint64_t b[NBUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	if (v < SUB) return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);   /* v in [2^e, 2^(e+1)) */
	unsigned shift = e - SUB_BITS;
	return (shift + 1) * SUB + (unsigned)((v >> shift) - SUB);
}

/* Highest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i)
{
	if (i < SUB) return i;
	unsigned shift = i / SUB - 1;
	uint64_t lower = (uint64_t)(SUB + i % SUB) << shift;
	return lower + (((uint64_t)1 << shift) - 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	if (h->count == 0 || v < h->min) h->min = v;
	if (v > h->max) h->max = v;
	h->count++;
	h->sum += v;
	h->b[hist_index(v)]++;
}

/* Value at quantile q (0..1): the upper edge of the bucket holding the
 * ceil(q * count)-th smallest value, capped by the exact maximum. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0) return 0;
	uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want < 1) want = 1;
	if (want > h->count) want = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

/* ---- connections ---------------------------------------------------------- */

enum conn_state {
	C_IDLE,        /* not started yet */
	C_CONNECTING,  /* non-blocking connect in progress */
	C_TLS,         /* --tls: TLS handshake in progress */
	C_HANDSHAKE,   /* upgrade request sent, reading the 101 */
	C_SUBSCRIBING, /* subscribe sent, waiting for the ack */
	C_OPEN,        /* subscribed: data flows */
	C_FAILED,      /* connect, handshake or subscribe failed */
	C_CLOSED,      /* the server closed it after it was open */
};

struct conn {
	int fd;
	uint8_t state;          /* enum conn_state */
	uint8_t src;            /* source address 127.0.0.(src+1) */
	uint8_t frag_op;        /* opcode of a fragmented message in progress */
	uint8_t frag_has_ts;
	uint8_t tls_wantw;      /* --tls: the TLS layer waits for the socket to be writable */
	uint8_t frag_z;         /* --deflate: the fragmented message in progress is compressed */
	uint8_t sse_blk;        /* --sse: what the event block in progress has had (SB_*) */
	uint32_t id;            /* index; in keyed mode the key is id % keys */
	uint32_t gaps;          /* sequence jumps seen */
	uint32_t part_len;      /* bytes in part */
	uint32_t out_len;       /* bytes in out */
	unsigned char *part;    /* unparsed input left from the last read; NULL when none */
	unsigned char *out;     /* unsent output (rare: pongs, subscribe); NULL when none */
	SSL *ssl;               /* --tls: the connection's TLS state; NULL without --tls */
	uint64_t next_seq;      /* sequence number the next data message should carry */
	uint64_t msgs;          /* data messages received */
	int64_t t_start;        /* us: connect started */
	uint64_t frag_ts, frag_n, frag_k, frag_kn;
	unsigned char *mfrag;   /* msgpack: a fragmented binary message so far */
	uint32_t mfrag_len;
	uint32_t disorder;      /* --interval: a key's "n" did not increase */
	uint32_t nlast;         /* --interval: entries in last_n */
	uint64_t *last_n;       /* --interval: last "n" per key index (keyed: [0]);
				 * several channels, --state: last "kn" per key */
	int64_t t_update;       /* --state: when the last update arrived (us) */
	uint64_t newest_held;   /* --state: the last update's newest-value age + 1 (us),
				 * counted once another update follows; 0: none */
	uint32_t mwire;         /* --state: wire bytes of the message gathered so far */
	uint64_t pub_seq;       /* --publish: publishes sent (the last one's id) */
	int64_t *pub_sent;      /* --publish: send time (us) by id % PUB_RING, 0 when answered */
};

struct opts {
	const char *host, *path, *channel, *sub_tmpl;
	int port, clients, inflight, keys, src_addrs, no_ack, no_subscribe, control;
	int seq_any;            /* first message sets the baseline instead of expecting 1 */
	int msgpack;            /* --format msgpack */
	int interval_ms;        /* --interval: conflation asked for */
	const char *state;      /* --state: the dialect's type (web, tui), NULL: none */
	const char *tokens;     /* --tokens FILE: a bearer token per line */
	int tls;                /* --tls: wss (TLS over each connection) */
	const char *ca;         /* --ca FILE: verify the server's certificate (and its IP) */
	int deflate;            /* --deflate: offer permessage-deflate, inflate RSV1 messages */
	int deflate_level;      /* --deflate-level: zlib level of the compression timed at the end */
	int no_zcache;          /* --no-inflate-cache: inflate every message, even the same bytes again */
	int period_ms;          /* --state: the update period asked for (250 for web) */
	int sse;                /* --sse: Server-Sent Events (GET /sse) instead of WebSocket */
	int per_key;            /* --per-key: one channel, but each key's "kn" checked */
	int pub_rate;           /* --publish: records a second per client (0: a reader) */
	int pub_size;           /* --size: bytes of a publish's data */
	double ack_wait;        /* --ack-wait: seconds after publishing for the last answers */
	double duration, timeout;
	uint64_t expect;
	int quiet_ms;
};

struct zentry {             /* b: the compressed bytes, then the text */
	unsigned char *b;
	uint32_t zlen, len, hash;
	uint64_t used;          /* W.zclock when last found or filled */
};

static struct {
	struct opts o;
	struct conn *conns;
	int ep;
	int next_to_start;       /* connections started so far */
	int in_flight;           /* connecting or handshaking */
	int src_cur;             /* source used by new connections when they spill over */
	int src_used;            /* highest source index used + 1 */
	int connected, subscribed, failed, closed, fail_addr;
	int64_t t0, t_connected, t_ready, t_first, t_last;   /* us, wall clock */
	int64_t t_done_deadline;                              /* us: --duration end */
	int ready_printed;
	uint64_t msgs, bytes, missing, dups, misrouted, gaps, other, server_errors;
	uint64_t pings, acks, sub_errors, unparsed, wrong_format;
	uint64_t *key_max;       /* --interval: newest "n" seen per key index, any client;
				  * several channels, --state: newest "kn" */
	uint32_t nkey_max;
	/* --channel A,B,...: the names; a key's slot is k (streams) or, in the
	 * state dialect, key number x channels + channel index */
	struct { const char *s; size_t l; } chans[MAX_CHANNELS];
	int nch;
	/* --state */
	uint64_t snapshots, updates, snapshot_bytes, update_bytes, values, superseded, repeats, seq_errors;
	struct hist newest_age;  /* us: per update, the age of the newest value in it */
	struct hist update_gap;  /* us: per client, time between two updates */
	struct hist update_delay; /* us: an update's "timestamp" (when made) to its receipt */
	struct leaf { uint32_t slot; uint8_t ts; uint64_t v; } *leaf;  /* one message's values */
	size_t nleaf, leafcap;
	uint64_t frame_wire;     /* bytes of the frame being handled, head included */
	uint64_t gap_client, gap_expected, gap_got;   /* the first gap seen, to diagnose */
	/* drain command: exit when expect reached, or quiet, or at the deadline */
	int draining;
	uint64_t drain_expect;
	int64_t drain_quiet_us, drain_deadline;
	int stop;
	struct hist lat;         /* us */
	struct hist conn_lat;    /* us: connect start -> 101 */
	struct benchctl ctl;     /* --control: commands on stdin */
	uint64_t rng;
	unsigned char *rbuf;
	char first_error[160];
	char req[1024];          /* the upgrade request, the same for every connection */
	size_t req_len;
	/* --tokens: the lines, and the request with client i's token in it
	 * (W.req's head, then "Authorization: Bearer <token>", built per send) */
	char **tok;
	uint32_t *tok_len, ntok;
	char *req_auth;
	uint64_t refused;        /* upgrades answered with a status other than 101 */
	SSL_CTX *tls_ctx;        /* --tls */
	uint64_t tls_handshakes; /* --tls: handshakes completed */
	uint64_t tls_resumed;    /* --tls: of which resumed (none: no session is offered) */
	z_stream zin;            /* --deflate: one raw inflate stream, reset per message */
	unsigned char *zbuf;     /* --deflate: the message inflated (MAX_FRAME bytes) */
	uint64_t deflated;       /* --deflate: compressed messages received */
	uint64_t deflated_bytes, inflated_bytes;   /* their payloads, as sent and inflated */
	uint64_t ext_declined;   /* --deflate: 101s that did not accept permessage-deflate */
	struct zentry *zcache;   /* --deflate: recent payloads inflated (NULL: --no-inflate-cache) */
	uint64_t inflates, zcache_hits;   /* compressed messages inflated, and found inflated */
	uint64_t zclock;
	unsigned char zsample[ZCACHE_MAX];   /* the last payload inflated, for inflate_cost */
	size_t zsample_len;
	double icost_us, icost_total_s;      /* CPU us to inflate it once, and the timing's CPU s */
	size_t zlast;            /* --deflate: length of the last message inflated (in zbuf) */
	double zcost_us;         /* --deflate: CPU us to compress that message once (deflate_cost) */
	size_t zcost_out;        /* its compressed length (the 4-byte tail cut) */
	double zcost_total_s;    /* CPU s the timing took (run.py leaves it out of wsload's) */
	/* --sse: what came besides data events, and what broke the contract */
	uint64_t sse_ids, sse_id_only, sse_comments, sse_retry, sse_snapshots, sse_no_ts, sse_bad;
	size_t req_key_at;       /* --sse --keys: where "&key=k<N>" goes in W.req (0: nowhere) */
	/* --publish: the schedule (wall us; 0: not started), what was sent and answered */
	int64_t pub_t0, pub_end, pub_last_ack, pub_last_send;
	uint64_t published, pub_answered, pub_acked, pub_rate_limited, pub_failed, pub_errors;
	uint64_t pub_unmatched, pub_no_offset, pub_overrun;
	struct hist ack_lat;     /* us: publish sent -> its ack received */
	struct hist send_lag;    /* us: publish due (schedule) -> sent */
} W;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note_error(const char *fmt, ...)
{
	if (W.first_error[0]) return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(W.first_error, sizeof(W.first_error), fmt, ap);
	va_end(ap);
}

static uint32_t rng32(void)
{
	/* xorshift64*: mask keys need no cryptographic quality here */
	W.rng ^= W.rng >> 12;
	W.rng ^= W.rng << 25;
	W.rng ^= W.rng >> 27;
	return (uint32_t)((W.rng * 2685821657736338717ull) >> 32);
}

/* ---- tokens (--tokens) ------------------------------------------------------- */

/* Splits text (NUL-terminated, modified in place) into W.tok: one token a
 * line, "\r\n" or "\n", blank lines skipped. A line with a space or a
 * control character, or longer than MAX_TOKEN, would not make one header
 * line: -1 with the reason in err. Else the number of tokens (0: none). */
static int parse_tokens(char *text, char *err, size_t errlen)
{
	uint32_t n = 0, cap = 0, line = 0;
	free(W.tok); free(W.tok_len);
	W.tok = NULL; W.tok_len = NULL; W.ntok = 0;
	for (char *p = text; *p;) {
		char *eol = strchr(p, '\n'), *next = eol ? eol + 1 : p + strlen(p);
		size_t l = (size_t)((eol ? eol : next) - p);
		line++;
		if (l && p[l - 1] == '\r') l--;
		p[l] = '\0';
		if (l) {
			for (size_t i = 0; i < l; i++)
				if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f) {
					snprintf(err, errlen, "line %u: a token has no space or control character", line);
					return -1;
				}
			if (l > MAX_TOKEN) { snprintf(err, errlen, "line %u: token longer than %d", line, MAX_TOKEN); return -1; }
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				char **t = realloc(W.tok, cap * sizeof(*t));
				if (t) W.tok = t;
				uint32_t *tl = t ? realloc(W.tok_len, cap * sizeof(*tl)) : NULL;
				if (tl) W.tok_len = tl;
				if (!t || !tl) { snprintf(err, errlen, "out of memory"); return -1; }
			}
			W.tok[n] = p;
			W.tok_len[n++] = (uint32_t)l;
		}
		p = next;
	}
	W.ntok = n;
	return (int)n;
}

/* The upgrade (or --sse: GET) request of client c: W.req, or in
 * W.req_auth W.req's head with client c's own parts: with --sse --keys
 * "&key=k<id % keys>" at the end of the query, with --tokens its token
 * (line id % lines) as "Authorization: Bearer". Valid until the next call
 * (a partial send copies what is left). */
static const char *upgrade_request(const struct conn *c, size_t *len)
{
	if (!W.ntok && !W.req_key_at) { *len = W.req_len; return W.req; }
	size_t head = W.req_len - 2, o = head;    /* W.req's head without its blank line */
	if (W.req_key_at) {
		o = W.req_key_at;
		o += (size_t)snprintf(W.req_auth + o, 24, "&key=k%u", c->id % (uint32_t)W.o.keys);
		memcpy(W.req_auth + o, W.req + W.req_key_at, head - W.req_key_at);
		o += head - W.req_key_at;
	}
	if (W.ntok) {
		uint32_t i = c->id % W.ntok;
		memcpy(W.req_auth + o, "Authorization: Bearer ", 22);
		o += 22;
		memcpy(W.req_auth + o, W.tok[i], W.tok_len[i]);
		o += W.tok_len[i];
		memcpy(W.req_auth + o, "\r\n", 2);
		o += 2;
	}
	memcpy(W.req_auth + o, "\r\n", 2);
	*len = o + 2;
	return W.req_auth;
}

/* Once W.req is built: room for a key and the longest token, and W.req's
 * head in front (what precedes the key stays put). */
static int tokens_ready(void)
{
	free(W.req_auth);
	W.req_auth = malloc(W.req_len + 24 + 22 + MAX_TOKEN + 4);
	if (!W.req_auth) return -1;
	memcpy(W.req_auth, W.req, W.req_len - 2);
	return 0;
}

/* --tokens FILE: the whole file, split. -1 after saying why. */
static int load_tokens(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) { fprintf(stderr, "wsload: --tokens %s: %s\n", path, strerror(errno)); return -1; }
	size_t cap = 1 << 16, len = 0;
	char *text = malloc(cap);
	for (size_t r; text && (r = fread(text + len, 1, cap - len - 1, f)) > 0;) {
		len += r;
		if (len + 1 == cap) {
			char *t = realloc(text, cap *= 2);
			if (!t) { free(text); text = NULL; }
			else text = t;
		}
	}
	int rerr = ferror(f);
	fclose(f);
	if (!text || rerr) { fprintf(stderr, "wsload: --tokens %s: %s\n", path, text ? "read error" : "out of memory"); free(text); return -1; }
	text[len] = '\0';
	if (memchr(text, '\0', len)) { fprintf(stderr, "wsload: --tokens %s: a NUL byte\n", path); free(text); return -1; }
	char err[128];
	int n = parse_tokens(text, err, sizeof(err));   /* W.tok points into text, kept all run long */
	if (n <= 0) {
		fprintf(stderr, "wsload: --tokens %s: %s\n", path, n < 0 ? err : "no token in it");
		return -1;
	}
	return 0;
}

/* ---- output ---------------------------------------------------------------- */

static void set_events(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (c->state == C_CONNECTING || c->out_len || c->tls_wantw) ev.events |= EPOLLOUT;
	epoll_ctl(W.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_fail(struct conn *c, const char *why);

/* --tls: what an SSL call's failure means. Returns the bytes (> 0), 0 when
 * it must wait (c->tls_wantw says for which readiness), -1 when the
 * connection failed (already failed here), -2 on a clean TLS EOF. */
static int tls_result(struct conn *c, int r)
{
	if (r > 0) { if (c->tls_wantw) { c->tls_wantw = 0; set_events(c); } return r; }
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		if (c->tls_wantw) { c->tls_wantw = 0; set_events(c); }
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (!c->tls_wantw) { c->tls_wantw = 1; set_events(c); }
		return 0;
	}
	if (e == SSL_ERROR_ZERO_RETURN) return -2;
	char why[160];
	unsigned long q = ERR_get_error();
	if (q) {
		snprintf(why, sizeof(why), "TLS: ");
		ERR_error_string_n(q, why + 5, sizeof(why) - 5);
	} else if (e == SSL_ERROR_SYSCALL) {
		snprintf(why, sizeof(why), "TLS: %s", errno ? strerror(errno) : "EOF");
	} else {
		snprintf(why, sizeof(why), "TLS: error %d", e);
	}
	ERR_clear_error();
	conn_fail(c, why);
	return -1;
}

/* One write: send() or SSL_write(). Returns the bytes taken, 0 when the
 * socket (or TLS) must wait, -1 when the connection failed (already failed). */
static ssize_t conn_send(struct conn *c, const void *p, size_t len)
{
	if (c->ssl) {
		ERR_clear_error();
		int r = tls_result(c, SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len));
		if (r == -2) { conn_fail(c, "EOF"); return -1; }
		return r;
	}
	ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
	if (w >= 0) return w;
	if (errno == EAGAIN || errno == EINTR) return 0;
	conn_fail(c, strerror(errno));
	return -1;
}

/* Writes now; what the socket does not take waits in c->out for EPOLLOUT. */
static void conn_write(struct conn *c, const void *p, size_t len)
{
	if (c->out_len == 0) {
		ssize_t w = conn_send(c, p, len);
		if (w == (ssize_t)len) return;
		if (w < 0) return;
		/* TLS: a retried SSL_write must offer the same bytes again: they
		 * wait in c->out (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) */
		p = (const char *)p + w;
		len -= (size_t)w;
	}
	unsigned char *n = realloc(c->out, c->out_len + len);
	if (!n) { conn_fail(c, "out of memory"); return; }
	memcpy(n + c->out_len, p, len);
	c->out = n;
	c->out_len += (uint32_t)len;
	set_events(c);
}

static void flush_out(struct conn *c)
{
	ssize_t w = conn_send(c, c->out, c->out_len);
	if (w <= 0) return;
	memmove(c->out, c->out + w, c->out_len - (size_t)w);
	c->out_len -= (uint32_t)w;
	if (c->out_len == 0) { free(c->out); c->out = NULL; set_events(c); }
}

/* A client frame: FIN, opcode, masked payload (RFC 6455 §5.3). */
static void send_frame(struct conn *c, int op, const void *payload, size_t len)
{
	unsigned char buf[14 + 1024];
	if (len > 1024) len = 1024;
	size_t h = 0;
	buf[h++] = (unsigned char)(0x80 | op);
	if (len < 126) {
		buf[h++] = (unsigned char)(0x80 | len);
	} else {
		buf[h++] = 0x80 | 126;
		buf[h++] = (unsigned char)(len >> 8);
		buf[h++] = (unsigned char)len;
	}
	uint32_t m = rng32();
	unsigned char mask[4] = { (unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16), (unsigned char)(m >> 24) };
	memcpy(buf + h, mask, 4);
	h += 4;
	const unsigned char *p = payload;
	for (size_t i = 0; i < len; i++) buf[h + i] = p[i] ^ mask[i & 3];
	conn_write(c, buf, h + len);
}

/* ---- connection lifecycle -------------------------------------------------- */

static void start_more(void);

static void conn_release(struct conn *c)
{
	if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
	c->tls_wantw = 0;
	if (c->fd >= 0) { close(c->fd); c->fd = -1; }
	free(c->part); c->part = NULL; c->part_len = 0;
	free(c->out); c->out = NULL; c->out_len = 0;
	free(c->mfrag); c->mfrag = NULL; c->mfrag_len = 0;
	free(c->pub_sent); c->pub_sent = NULL;   /* its answers will not come: unanswered */
}

static void conn_fail(struct conn *c, const char *why)
{
	if (c->state == C_FAILED || c->state == C_CLOSED) return;
	if (c->state == C_CONNECTING || c->state == C_TLS || c->state == C_HANDSHAKE) {
		W.in_flight--;
		if (W.connected + W.failed + 1 == W.o.clients) W.t_connected = now_us();
	}
	if (c->state == C_OPEN || (c->state == C_SUBSCRIBING && W.o.no_ack)) {
		c->state = C_CLOSED;
		W.closed++;
	} else {
		c->state = C_FAILED;
		W.failed++;
	}
	note_error("client %u: %s", c->id, why);
	conn_release(c);
}

static void addr_for(struct sockaddr_in *a, int src)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)src);
}

static void send_upgrade(struct conn *c);

/* --tls: drives the handshake; once done, sends the upgrade. */
static void tls_handshake(struct conn *c)
{
	ERR_clear_error();
	int r = tls_result(c, SSL_do_handshake(c->ssl));
	if (r == -2) { conn_fail(c, "TLS: EOF in the handshake"); return; }
	if (r <= 0) return;
	W.tls_handshakes++;
	if (SSL_session_reused(c->ssl)) W.tls_resumed++;
	send_upgrade(c);
}

/* --tls: a TLS client on the connected (or connecting) socket, in the epoll
 * set; the ClientHello goes out at once (or when the connect completes: a
 * write before that is a want-write). Returns -1 when the connection failed. */
static int tls_start(struct conn *c)
{
	c->ssl = SSL_new(W.tls_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) { conn_fail(c, "TLS: SSL_new failed"); return -1; }
	SSL_set_connect_state(c->ssl);
	c->state = C_TLS;
	c->tls_wantw = 1;   /* the first readiness wanted: writable (connect completed) */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(W.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) { conn_fail(c, strerror(errno)); return -1; }
	tls_handshake(c);
	return c->fd >= 0 ? 0 : -1;
}

/* Opens one connection. Returns 0, or -1 when this source address has no
 * port left (EADDRNOTAVAIL): the caller moves on to the next address. */
static int conn_connect(struct conn *c, int src)
{
	struct sockaddr_in dst;
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)W.o.port);
	if (inet_pton(AF_INET, W.o.host, &dst.sin_addr) != 1) { conn_fail(c, "bad --host"); return 0; }

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) { conn_fail(c, strerror(errno)); return 0; }
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src > 0) {
		/* Pick the port at connect() from the 4-tuple, not at bind(): each
		 * source address then has the whole ephemeral range per destination. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		struct sockaddr_in sa;
		addr_for(&sa, src);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			if (e == EADDRINUSE || e == EADDRNOTAVAIL) return -1;
			conn_fail(c, strerror(e));
			return 0;
		}
	}
	c->fd = fd;
	c->src = (uint8_t)src;
	if (src + 1 > W.src_used) W.src_used = src + 1;
	c->state = C_CONNECTING;
	c->t_start = now_us();
	W.in_flight++;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		if (e == EADDRNOTAVAIL) {
			/* Out of ephemeral ports for this source: undo, try the next one. */
			close(fd);
			c->fd = -1;
			c->state = C_IDLE;
			W.in_flight--;
			return -1;
		}
		conn_fail(c, strerror(e));
		return 0;
	}
	if (W.tls_ctx) { tls_start(c); return 0; }
	/* On loopback the TCP handshake has usually completed by the time
	 * connect() returns: send the upgrade at once and save a wake-up per
	 * connection. EAGAIN means still connecting: wait for EPOLLOUT. */
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	size_t req_len;
	const char *req = upgrade_request(c, &req_len);
	ssize_t w = send(fd, req, req_len, MSG_NOSIGNAL);
	if (w == (ssize_t)req_len) {
		c->state = C_HANDSHAKE;
	} else if (w < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
		ev.events |= EPOLLOUT;
	} else if (w < 0) {
		conn_fail(c, strerror(errno));
		return 0;
	} else {
		c->state = C_HANDSHAKE;          /* partial: the rest waits in c->out */
		c->out = malloc(req_len - (size_t)w);
		if (!c->out) { conn_fail(c, "out of memory"); return 0; }
		c->out_len = (uint32_t)(req_len - (size_t)w);
		memcpy(c->out, req + w, c->out_len);
		ev.events |= EPOLLOUT;
	}
	if (epoll_ctl(W.ep, EPOLL_CTL_ADD, fd, &ev) < 0) conn_fail(c, strerror(errno));
	return 0;
}

/* Starts connections while fewer than --inflight are handshaking. */
static void start_more(void)
{
	while (W.next_to_start < W.o.clients && W.in_flight < W.o.inflight) {
		struct conn *c = &W.conns[W.next_to_start];
		/* --src-addrs N spreads clients over N addresses from the start;
		 * beyond that a new address is taken when the ports run out. */
		int src = W.o.src_addrs > 1 ? (int)(c->id % (uint32_t)W.o.src_addrs) : 0;
		if (src < W.src_cur) src = W.src_cur;
		while (conn_connect(c, src) < 0) {
			W.fail_addr++;
			if (++src >= MAX_SOURCES) { conn_fail(c, "no source address left"); break; }
			if (src > W.src_cur) W.src_cur = src;
		}
		W.next_to_start++;
	}
}

static void send_upgrade(struct conn *c)
{
	c->state = C_HANDSHAKE;
	set_events(c);
	size_t len;
	const char *req = upgrade_request(c, &len);
	conn_write(c, req, len);
}

/* Fills the subscribe template: {channel} (the first of --channel),
 * {channels} (all of them, as JSON strings: "a","b"), {key} (k<id % keys>),
 * {id}, {interval} (--interval). */
static void send_subscribe(struct conn *c)
{
	char msg[1024], val[64], list[900];
	size_t o = 0;
	for (const char *t = W.o.sub_tmpl; *t && o < sizeof(msg) - 64;) {
		const char *rep = NULL;
		size_t skip = 1;
		if (!strncmp(t, "{channel}", 9)) { rep = W.chans[0].s; skip = 9; }
		else if (!strncmp(t, "{channels}", 10)) {
			size_t l = 0;
			for (int i = 0; i < W.nch && l + W.chans[i].l + 4 < sizeof(list); i++)
				l += (size_t)snprintf(list + l, sizeof(list) - l, "%s\"%s\"", i ? "," : "", W.chans[i].s);
			rep = list; skip = 10;
		}
		else if (!strncmp(t, "{key}", 5)) {
			snprintf(val, sizeof(val), "k%u", W.o.keys > 0 ? c->id % (uint32_t)W.o.keys : c->id);
			rep = val; skip = 5;
		} else if (!strncmp(t, "{id}", 4)) {
			snprintf(val, sizeof(val), "%u", c->id);
			rep = val; skip = 4;
		} else if (!strncmp(t, "{interval}", 10)) {
			snprintf(val, sizeof(val), "%d", W.o.interval_ms);
			rep = val; skip = 10;
		}
		if (rep) {
			size_t l = strlen(rep);
			if (l > sizeof(msg) - 64 - o) l = sizeof(msg) - 64 - o;
			memcpy(msg + o, rep, l);
			o += l;
		} else {
			msg[o++] = *t;
		}
		t += skip;
	}
	send_frame(c, 0x1, msg, o);
}

static void became_subscribed(struct conn *c)
{
	c->state = C_OPEN;
	W.subscribed++;
}

static void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t l = sizeof(err);
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err) { conn_fail(c, strerror(err)); return; }
	send_upgrade(c);
}

/* ---- data messages ---------------------------------------------------------- */

/* Last occurrence of a needle in [p, p + len). A few memrchr() steps over a
 * short tail: glibc's memmem() spends more on set-up than this whole search. */
static const unsigned char *find_last(const unsigned char *p, size_t len, const char *needle, size_t nlen)
{
	size_t end = len;
	while (end >= nlen) {
		const unsigned char *q = memrchr(p, needle[0], end - nlen + 1);
		if (!q) return NULL;
		if (memcmp(q, needle, nlen) == 0) return q;
		end = (size_t)(q - p) + nlen - 1;      /* candidates before q only */
	}
	return NULL;
}

/* An unsigned integer at q (after optional blanks); NULL when none. */
static const unsigned char *parse_num(const unsigned char *q, const unsigned char *e, uint64_t *out)
{
	while (q < e && (*q == ' ' || *q == '\t')) q++;
	if (q >= e || *q < '0' || *q > '9') return NULL;
	uint64_t v = 0;
	while (q < e && *q >= '0' && *q <= '9') v = v * 10 + (uint64_t)(*q++ - '0');
	*out = v;
	return q;
}

static int lit(const unsigned char **q, const unsigned char *e, const char *s, size_t l)
{
	if ((size_t)(e - *q) < l || memcmp(*q, s, l) != 0) return 0;
	*q += l;
	return 1;
}

static void find_uint(const unsigned char *p, size_t len, const char *needle, size_t nlen, uint64_t *out)
{
	const unsigned char *q = find_last(p, len, needle, nlen);
	if (q) parse_num(q + nlen, p + len, out);
}

/* The fast path: produce.c's payload ends `"ts_us":T,"n":N,"k":K,"kn":KN}`
 * and kbridge's envelope ends with the payload, so the four numbers are
 * parsed backwards from the last byte: ~50 bytes looked at once, no search. */
static const unsigned char *back_num(const unsigned char *p, const unsigned char *q, uint64_t *out)
{
	const unsigned char *d = q;
	while (q > p && q[-1] >= '0' && q[-1] <= '9') q--;
	if (q == d || d - q > 19) return NULL;
	uint64_t v = 0;
	for (const unsigned char *x = q; x < d; x++) v = v * 10 + (uint64_t)(*x - '0');
	*out = v;
	return q;
}

/* Steps back over the literal s (a constant: memcmp is inlined). */
#define BACK_LIT(q, p, s) ((size_t)((q) - (p)) >= sizeof(s) - 1 && \
			   memcmp((q) - (sizeof(s) - 1), s, sizeof(s) - 1) == 0 && ((q) -= sizeof(s) - 1, 1))

static int parse_tail(const unsigned char *p, size_t len, uint64_t *ts, uint64_t *n, uint64_t *k, uint64_t *kn)
{
	const unsigned char *q = p + len;
	while (q > p && (q[-1] == '}' || q[-1] == ' ' || q[-1] == '\n')) q--;
	if ((q = back_num(p, q, kn)) && BACK_LIT(q, p, ",\"kn\":") &&
	    (q = back_num(p, q, k)) && BACK_LIT(q, p, ",\"k\":") &&
	    (q = back_num(p, q, n)) && BACK_LIT(q, p, ",\"n\":") &&
	    (q = back_num(p, q, ts)) && BACK_LIT(q, p, "\"ts_us\":"))
		return 0;
	return -1;
}

/* Pulls ts_us, n, k, kn out of one message (or fragment): the fast path
 * above, else a search (a bridge that re-encodes the JSON, reorders fields,
 * or puts something after "data"). */
static int parse_fields(const unsigned char *p, size_t len, uint64_t *ts, uint64_t *n, uint64_t *k, uint64_t *kn)
{
	if (parse_tail(p, len, ts, n, k, kn) == 0) return 0;
	const unsigned char *e = p + len;
	size_t from = len > TAIL_WINDOW ? len - TAIL_WINDOW : 0;
	const unsigned char *q = find_last(p + from, len - from, "\"ts_us\":", 8);
	if (!q && from) q = find_last(p, len, "\"ts_us\":", 8);
	if (!q || !(q = parse_num(q + 8, e, ts))) return -1;
	*n = *k = *kn = UINT64_MAX;
	if (lit(&q, e, ",\"n\":", 5) && (q = parse_num(q, e, n)) && lit(&q, e, ",\"k\":", 5) &&
	    (q = parse_num(q, e, k)) && lit(&q, e, ",\"kn\":", 6) && parse_num(q, e, kn))
		return 0;
	find_uint(p, len, "\"n\":", 4, n);
	find_uint(p, len, "\"k\":", 4, k);
	find_uint(p, len, "\"kn\":", 5, kn);
	return 0;
}

/* ---- MessagePack (--format msgpack) ---------------------------------------------
 * Just enough to walk kbridge's envelope: the top-level map's "type" (a
 * string) and "data" (a map holding "ts_us", "n", "k", "kn" as integers);
 * every other value is skipped by its encoded length, nested maps and
 * arrays included, without recursion. */
enum mp_kind { MP_NIL, MP_BOOL, MP_UINT, MP_NINT, MP_FLOAT, MP_STR, MP_BIN, MP_EXT, MP_ARR, MP_MAP };

struct mp_item {
	int kind;
	uint64_t u;                 /* MP_UINT: value; MP_NINT: -value; str/bin/ext: length; arr/map: count */
	const unsigned char *s;     /* str/bin/ext: the bytes */
};

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++) v = v << 8 | p[i];
	return v;
}

/* Reads one value's head at p (and the bytes of a str, bin or ext); the
 * elements of an array or map follow it. Returns the byte after what it
 * read, or NULL when the input is cut short or not MessagePack (0xc1). */
static const unsigned char *mp_head(const unsigned char *p, const unsigned char *e, struct mp_item *it)
{
	if (p >= e) return NULL;
	unsigned b = *p++;
	int w = 0;          /* width of a length or number that follows */
	size_t extra = 0;   /* ext: the type byte */
	it->s = NULL;
	if (b <= 0x7f) { it->kind = MP_UINT; it->u = b; return p; }
	if (b >= 0xe0) { it->kind = MP_NINT; it->u = 256 - b; return p; }
	if (b <= 0x8f) { it->kind = MP_MAP; it->u = b & 0x0f; return p; }
	if (b <= 0x9f) { it->kind = MP_ARR; it->u = b & 0x0f; return p; }
	if (b <= 0xbf) { it->kind = MP_STR; it->u = b & 0x1f; goto bytes; }
	switch (b) {
	case 0xc0: it->kind = MP_NIL; it->u = 0; return p;
	case 0xc2: case 0xc3: it->kind = MP_BOOL; it->u = b & 1; return p;
	case 0xc4: case 0xc5: case 0xc6: it->kind = MP_BIN; w = 1 << (b - 0xc4); break;
	case 0xc7: case 0xc8: case 0xc9: it->kind = MP_EXT; w = 1 << (b - 0xc7); extra = 1; break;
	case 0xca: case 0xcb:
		w = b == 0xca ? 4 : 8;
		if (e - p < w) return NULL;
		it->kind = MP_FLOAT; it->u = 0;
		return p + w;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		w = 1 << (b - 0xcc);
		if (e - p < w) return NULL;
		it->kind = MP_UINT; it->u = be(p, w);
		return p + w;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		w = 1 << (b - 0xd0);
		if (e - p < w) return NULL;
		uint64_t v = be(p, w);
		int sh = 64 - 8 * w;
		int64_t sv = (int64_t)(v << sh) >> sh;        /* sign-extend */
		if (sv >= 0) { it->kind = MP_UINT; it->u = (uint64_t)sv; }
		else { it->kind = MP_NINT; it->u = (uint64_t)0 - (uint64_t)sv; }
		return p + w;
	}
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		it->kind = MP_EXT; it->u = (uint64_t)1 << (b - 0xd4); extra = 1;
		goto bytes;
	case 0xd9: case 0xda: case 0xdb: it->kind = MP_STR; w = 1 << (b - 0xd9); break;
	case 0xdc: case 0xdd: case 0xde: case 0xdf:
		w = b & 1 ? 4 : 2;
		if (e - p < w) return NULL;
		it->kind = b <= 0xdd ? MP_ARR : MP_MAP; it->u = be(p, w);
		return p + w;
	default:
		return NULL;   /* 0xc1 */
	}
	if (e - p < w) return NULL;      /* bin, ext, str8/16/32: the length */
	it->u = be(p, w);
	p += w;
bytes:
	if ((size_t)(e - p) < extra || (uint64_t)(e - p) - extra < it->u) return NULL;
	it->s = p + extra;
	return p + extra + it->u;
}

/* Skips the elements that follow the head it (none unless an array or a
 * map), nested ones included, with a count instead of a stack. */
static const unsigned char *mp_skip_rest(const unsigned char *p, const unsigned char *e, const struct mp_item *it)
{
	uint64_t left = it->kind == MP_ARR ? it->u : it->kind == MP_MAP ? 2 * it->u : 0;
	struct mp_item x;
	while (left) {
		if (left > (uint64_t)(e - p)) return NULL;   /* every value takes a byte at least */
		if (!(p = mp_head(p, e, &x))) return NULL;
		left--;
		if (x.kind == MP_ARR) left += x.u;
		else if (x.kind == MP_MAP) left += 2 * x.u;
	}
	return p;
}

static int mp_key_is(const struct mp_item *k, const char *s, size_t l)
{
	return k->kind == MP_STR && k->u == l && memcmp(k->s, s, l) == 0;
}

/* One server message: 0 and the numbers when it is a data message (a map
 * with "data", a map holding "ts_us"); 1 and its "type" (type_len 0 when it
 * has none) when it is some other well-formed message; -1 when it is not
 * one MessagePack map. Fields missing from data are UINT64_MAX. */
static int parse_msgpack(const unsigned char *p, size_t len, uint64_t *ts, uint64_t *n, uint64_t *k,
			 uint64_t *kn, const unsigned char **type, size_t *type_len)
{
	const unsigned char *e = p + len;
	struct mp_item top, key, val;
	int has_ts = 0;
	*type = NULL;
	*type_len = 0;
	*ts = *n = *k = *kn = UINT64_MAX;
	if (!(p = mp_head(p, e, &top)) || top.kind != MP_MAP) return -1;
	for (uint64_t i = 0; i < top.u; i++) {
		if (!(p = mp_head(p, e, &key)) || !(p = mp_skip_rest(p, e, &key))) return -1;
		if (!(p = mp_head(p, e, &val))) return -1;
		if (mp_key_is(&key, "type", 4) && val.kind == MP_STR) {
			*type = val.s;
			*type_len = (size_t)val.u;
		} else if (mp_key_is(&key, "data", 4) && val.kind == MP_MAP) {
			for (uint64_t j = 0; j < val.u; j++) {
				struct mp_item dk, dv;
				if (!(p = mp_head(p, e, &dk)) || !(p = mp_skip_rest(p, e, &dk))) return -1;
				if (!(p = mp_head(p, e, &dv))) return -1;
				if (dv.kind == MP_UINT && dk.kind == MP_STR) {
					if (mp_key_is(&dk, "ts_us", 5)) { *ts = dv.u; has_ts = 1; }
					else if (mp_key_is(&dk, "n", 1)) *n = dv.u;
					else if (mp_key_is(&dk, "k", 1)) *k = dv.u;
					else if (mp_key_is(&dk, "kn", 2)) *kn = dv.u;
				} else if (!(p = mp_skip_rest(p, e, &dv))) {
					return -1;
				}
			}
			continue;
		}
		if (!(p = mp_skip_rest(p, e, &val))) return -1;
	}
	if (p != e) return -1;      /* one value, nothing after it */
	return has_ts ? 0 : 1;
}

/* --interval: grows a per-key array of "n" to hold index i. */
static int grow_n(uint64_t **a, uint32_t *cap, uint64_t i)
{
	if (i < *cap) return 0;
	if (i >= MAX_KEY_INDEX) return -1;
	uint32_t nc = *cap ? *cap : 16;
	while (nc <= i) nc *= 2;
	uint64_t *na = realloc(*a, nc * sizeof(**a));
	if (!na) return -1;
	memset(na + *cap, 0, (nc - *cap) * sizeof(**a));
	*a = na;
	*cap = nc;
	return 0;
}

/* --interval: conflation skips records by design, so no gap counts; what
 * must hold is that each key's "n" strictly increases (no duplicate, no
 * reordering). The newest "n" of each key any client saw is kept too, so
 * the result can tell clients that never got a key's newest value. */
static void on_conflated(struct conn *c, uint64_t n, uint64_t k)
{
	uint64_t slot = W.o.keys > 0 ? 0 : k;
	if (n == UINT64_MAX || k == UINT64_MAX || grow_n(&c->last_n, &c->nlast, slot) < 0 ||
	    grow_n(&W.key_max, &W.nkey_max, k) < 0) {
		W.unparsed++;
		return;
	}
	if (n <= c->last_n[slot]) {
		W.dups++;   /* duplicate or out of order */
		c->disorder++;
	} else {
		c->last_n[slot] = n;
	}
	if (n > W.key_max[k]) W.key_max[k] = n;
}

/* Several channels (--channel A,B,...): the records of different topics
 * interleave, so a client follows each key's "kn" ("k" tells the key, over
 * all topics) instead of the global "n": 1, 2, 3, ... per key. */
static void on_perkey(struct conn *c, uint64_t k, uint64_t kn)
{
	if (k == UINT64_MAX || kn == UINT64_MAX || grow_n(&c->last_n, &c->nlast, k) < 0) {
		W.unparsed++;
		return;
	}
	uint64_t last = c->last_n[k];
	if (last == 0 && W.o.seq_any) last = kn - 1;
	if (kn == last + 1) {
		c->last_n[k] = kn;
	} else if (kn > last + 1) {
		if (!W.gaps) { W.gap_client = c->id; W.gap_expected = last + 1; W.gap_got = kn; }
		c->gaps++;
		W.gaps++;
		W.missing += kn - last - 1;
		c->last_n[k] = kn;
	} else {
		W.dups++;   /* duplicate or out of order */
	}
}

static void on_data(struct conn *c, uint64_t ts, uint64_t n, uint64_t k, uint64_t kn, int64_t now)
{
	W.msgs++;
	c->msgs++;
	if (!W.t_first) W.t_first = now;
	W.t_last = now;
	hist_add(&W.lat, now > (int64_t)ts ? (uint64_t)(now - (int64_t)ts) : 0);

	/* Keyed clients follow their key's sequence; channel clients the global one. */
	uint64_t seq = n;
	if (W.o.keys > 0) {
		seq = kn;
		if (k != UINT64_MAX && k != c->id % (uint64_t)W.o.keys) { W.misrouted++; return; }
	}
	if (W.o.interval_ms) { on_conflated(c, n, k); return; }
	if ((W.nch > 1 || W.o.per_key) && W.o.keys == 0) { on_perkey(c, k, kn); return; }
	if (seq == UINT64_MAX) { W.unparsed++; return; }
	if (c->next_seq == 0 && W.o.seq_any) c->next_seq = seq;
	if (c->next_seq == 0) c->next_seq = 1;
	if (seq == c->next_seq) {
		c->next_seq++;
	} else if (seq > c->next_seq) {
		if (!W.gaps) { W.gap_client = c->id; W.gap_expected = c->next_seq; W.gap_got = seq; }
		c->gaps++;
		W.gaps++;
		W.missing += seq - c->next_seq;
		c->next_seq = seq + 1;
	} else {
		W.dups++;   /* duplicate or out of order */
	}
}

/* A complete message that is not data: ack, error, pong... For JSON, p is
 * the text; for MessagePack, p is the message's "type" (NULL when none). */
static void on_control(struct conn *c, const unsigned char *p, size_t len, int msgpack)
{
	int is_ack, is_err;
	if (msgpack) {
		is_ack = p && len == 3 && memcmp(p, "ack", 3) == 0;
		is_err = p && len == 5 && memcmp(p, "error", 5) == 0;
	} else {
		is_ack = memmem(p, len, "\"ack\"", 5) != NULL;
		is_err = memmem(p, len, "\"error\"", 7) != NULL;
	}
	if (is_ack) W.acks++;
	if (is_err) W.server_errors++;
	if (!is_ack && !is_err) W.other++;
	if (c->state == C_SUBSCRIBING) {
		if (!is_ack) {
			W.sub_errors++;
			if (msgpack)
				note_error("client %u: subscribe answered a MessagePack message of type \"%.*s\"",
					   c->id, p ? (int)(len > 40 ? 40 : len) : 0, p ? (const char *)p : "");
			else
				note_error("client %u: subscribe answered %.*s", c->id, (int)(len > 100 ? 100 : len), (const char *)p);
		}
		became_subscribed(c);
	}
}

/* ---- publishing (--publish) ---------------------------------------------------
 * Each open client publishes --publish R records a second on the first
 * --channel, from "publish SECONDS" on stdin (or the ready line, without
 * --control) for that long. Client i's j-th record (j from 0) is due at
 * start + (j + i / clients) / R: the clients take turns over each period,
 * and a late wake-up sends what is due at once (send_lag says how late).
 * The record's id is "<j + 1>"; its send time waits in the client's ring
 * until the answer with that id comes: an ack gives the ack latency, an
 * error is counted by its code. Answers whose id was never sent, or was
 * answered already, are "unmatched". */

enum { PA_OTHER, PA_ACK, PA_RATE_LIMITED, PA_FAILED, PA_ERROR };

struct pub_answer {
	int kind;               /* PA_* */
	uint64_t id;            /* 0: none (or not a number) */
	int has_offset;         /* an ack carries "offset":<digits> */
};

/* Pure: what one server text message says about a publish. kbridge writes
 * its JSON without blanks, so the members are matched as it spells them
 * (docs/protocol.md#publishing); the id may be a string or a number. */
static void pub_parse(const unsigned char *p, size_t len, struct pub_answer *a)
{
	const unsigned char *e = p + len, *q;
	*a = (struct pub_answer){ .kind = PA_OTHER };
	if (memmem(p, len, "\"type\":\"ack\"", 12)) a->kind = PA_ACK;
	else if (!memmem(p, len, "\"type\":\"error\"", 14)) return;
	else if (memmem(p, len, "\"code\":\"RATE_LIMITED\"", 21)) a->kind = PA_RATE_LIMITED;
	else if (memmem(p, len, "\"code\":\"PUBLISH_FAILED\"", 23)) a->kind = PA_FAILED;
	else a->kind = PA_ERROR;
	if ((q = memmem(p, len, "\"id\":", 5))) {
		q += 5;
		if (q < e && *q == '"') q++;
		if (!parse_num(q, e, &a->id)) a->id = 0;
	}
	uint64_t off;
	q = memmem(p, len, "\"offset\":", 9);
	a->has_offset = q && parse_num(q + 9, e, &off) != NULL;
}

static void pub_start(double seconds)
{
	if (W.pub_t0 || seconds <= 0) return;
	W.pub_t0 = now_us();
	W.pub_end = W.pub_t0 + (int64_t)(seconds * 1e6);
}

/* One publish: produce.c's stream payload ({"pad":"x..","ts_us":..,"n":..,
 * "k":..,"kn":..}, --size bytes unless the numbers need more) as data. */
static void pub_send(struct conn *c, int64_t due)
{
	if (!c->pub_sent && !(c->pub_sent = calloc(PUB_RING, sizeof(*c->pub_sent)))) {
		conn_fail(c, "out of memory");
		return;
	}
	static char xs[PUB_MAX_SIZE];
	char nums[128], msg[PUB_MAX_SIZE + 256];
	if (!xs[0]) memset(xs, 'x', sizeof(xs));
	uint64_t seq = ++c->pub_seq;
	int64_t t = now_us();
	int nl = snprintf(nums, sizeof(nums), "\",\"ts_us\":%" PRId64 ",\"n\":%" PRIu64 ",\"k\":%u,\"kn\":%" PRIu64 "}",
			  t, seq, c->id, seq);
	int pad = W.o.pub_size - 8 - nl;      /* 8: {"pad":" */
	if (pad < 0) pad = 0;
	if (pad > PUB_MAX_SIZE) pad = PUB_MAX_SIZE;
	int ml = snprintf(msg, sizeof(msg), "{\"type\":\"publish\",\"channel\":\"%s\",\"key\":\"k%u\",\"id\":\"%" PRIu64
			  "\",\"data\":{\"pad\":\"%.*s%s}", W.chans[0].s, c->id, seq, pad, xs, nums);
	if (ml < 0 || (size_t)ml >= sizeof(msg)) { conn_fail(c, "publish message too long"); return; }
	int64_t *slot = &c->pub_sent[seq % PUB_RING];
	if (*slot) W.pub_overrun++;           /* an older one never answered: forgotten */
	*slot = t;
	W.published++;
	W.pub_last_send = t;
	hist_add(&W.send_lag, t > due ? (uint64_t)(t - due) : 0);
	send_frame(c, 0x1, msg, (size_t)ml);
}

/* Sends every publish due by now (called every turn of the loop). */
static void pub_tick(int64_t now)
{
	if (!W.pub_t0 || now < W.pub_t0) return;
	double period = 1e6 / W.o.pub_rate;
	for (int i = 0; i < W.o.clients; i++) {
		struct conn *c = &W.conns[i];
		while (c->state == C_OPEN && c->fd >= 0) {
			int64_t due = W.pub_t0 + (int64_t)(((double)c->pub_seq + (double)i / W.o.clients) * period);
			if (due > now || due >= W.pub_end) break;
			pub_send(c, due);
		}
	}
}

/* A publisher's text message that is not data: the answer to a publish. */
static void on_pub_answer(struct conn *c, const unsigned char *p, size_t len, int64_t now)
{
	struct pub_answer a;
	pub_parse(p, len, &a);
	if (a.kind == PA_OTHER) { W.other++; return; }
	if (a.kind == PA_ACK) W.acks++;
	else {
		W.server_errors++;
		if (a.kind == PA_RATE_LIMITED) W.pub_rate_limited++;
		else if (a.kind == PA_FAILED) W.pub_failed++;
		else W.pub_errors++;
		note_error("client %u: %.*s", c->id, (int)(len > 120 ? 120 : len), (const char *)p);
	}
	int64_t *slot = c->pub_sent && a.id && a.id <= c->pub_seq && a.id + PUB_RING > c->pub_seq
		? &c->pub_sent[a.id % PUB_RING] : NULL;
	if (!slot || !*slot) { W.pub_unmatched++; return; }
	int64_t sent = *slot;
	*slot = 0;
	W.pub_answered++;
	if (a.kind != PA_ACK) return;
	W.pub_acked++;
	if (!a.has_offset) W.pub_no_offset++;
	W.pub_last_ack = now;
	hist_add(&W.ack_lat, now > sent ? (uint64_t)(now - sent) : 0);
}

/* Publishing is over (and the run with it) once the schedule ended and
 * every publish was answered, or --ack-wait after the schedule's end. */
static int pub_done(int64_t now)
{
	if (!W.pub_t0 || now < W.pub_end) return 0;
	return W.pub_answered + W.pub_overrun >= W.published || now >= W.pub_end + (int64_t)(W.o.ack_wait * 1e6);
}

/* A binary frame on a --format msgpack connection. A message must be whole
 * to be walked, so fragments are gathered first (kbridge sends none). */
static void on_msgpack(struct conn *c, int fin, int op, const unsigned char *p, size_t len, int64_t now)
{
	uint64_t ts, n, k, kn;
	const unsigned char *type;
	size_t tl;
	if (!fin || c->frag_op) {
		if (op) c->frag_op = (uint8_t)op;
		if ((size_t)c->mfrag_len + len > MAX_FRAME) { conn_fail(c, "fragmented message too large for wsload"); return; }
		unsigned char *nb = realloc(c->mfrag, c->mfrag_len + len + 1);
		if (!nb) { conn_fail(c, "out of memory"); return; }
		memcpy(nb + c->mfrag_len, p, len);
		c->mfrag = nb;
		c->mfrag_len += (uint32_t)len;
		if (!fin) return;
		c->frag_op = 0;
		p = c->mfrag;
		len = c->mfrag_len;
	}
	int r = parse_msgpack(p, len, &ts, &n, &k, &kn, &type, &tl);
	if (r == 0) {
		on_data(c, ts, n, k, kn, now);
	} else {
		if (r < 0) W.wrong_format++;
		on_control(c, r > 0 ? type : NULL, r > 0 ? tl : 0, 1);
	}
	if (p == c->mfrag) { free(c->mfrag); c->mfrag = NULL; c->mfrag_len = 0; }
}

/* ---- the state dialect (--state) ------------------------------------------------
 * A snapshot {"type":"snapshot","seq":S,"data":{channel:{key:value}}} or an
 * update {"type":"update","seq":S,"changes":{"channel.key.field":v,
 * "channel.key":{...},"channel":{...}}} is walked whole, JSON or MessagePack
 * alike, with the path so far as segments: the dots of a changes path split
 * it, each nested member adds one. Where the path is <a --channel>.k<N>.kn
 * or .ts_us and the value an unsigned integer, the message carries key N of
 * that channel: such values are gathered (W.leaf), then counted by
 * on_state_msg(). Arrays are skipped (no key of ours is inside one). */
enum { ST_OTHER, ST_SNAPSHOT, ST_UPDATE };

struct sw {
	const unsigned char *p, *e;
	struct { const unsigned char *s; size_t l; } seg[3];   /* the path's first three segments */
	int nseg;                   /* segments of the path so far (may be more than 3) */
	const unsigned char *type;  /* the top-level "type" */
	size_t type_len;
	uint64_t seq;
	int has_seq;
	int64_t made_us;            /* the top-level "timestamp" (wall clock us), 0: none */
};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): no timegm(), no time zone. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* kbridge's JSON timestamp, "2026-12-03T09:30:00.250Z" (the fraction may
 * have any number of digits), as us since the epoch; 0 when not that. */
static int64_t iso_us(const unsigned char *s, size_t l)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd";
	int v[6] = { 0 }, f = 0;
	if (l < sizeof(pat)) return 0;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'd') {
			if (s[i] < '0' || s[i] > '9') return 0;
			v[f] = v[f] * 10 + (s[i] - '0');
		} else if (s[i] != (unsigned char)pat[i]) {
			return 0;
		} else {
			f++;
		}
	}
	size_t i = sizeof(pat) - 1;
	int64_t frac = 0, scale = 1000000;
	if (i < l && s[i] == '.')
		for (i++; i < l && s[i] >= '0' && s[i] <= '9'; i++)
			if (scale > 1) { scale /= 10; frac += (s[i] - '0') * scale; }
	if (i + 1 != l || s[i] != 'Z' || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31) return 0;
	int64_t days = days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]);
	return ((days * 24 + v[3]) * 60 + v[4]) * 60 * 1000000 + (int64_t)v[5] * 1000000 + frac;
}

/* The MessagePack Timestamp extension (type -1: 32, 64 or 96 bits) as us. */
static int64_t mp_timestamp_us(const struct mp_item *it)
{
	if (it->kind != MP_EXT || (signed char)it->s[-1] != -1) return 0;
	if (it->u == 4) return (int64_t)be(it->s, 4) * 1000000;
	if (it->u == 8) {
		uint64_t x = be(it->s, 8);
		return (int64_t)(x & 0x3ffffffffull) * 1000000 + (int64_t)(x >> 34) / 1000;
	}
	if (it->u == 12) return (int64_t)be(it->s + 4, 8) * 1000000 + (int64_t)be(it->s, 4) / 1000;
	return 0;
}

/* An unsigned integer at the current path: kept when the path is
 * <one of --channel>.k<digits>.(kn|ts_us). */
static void sw_leaf(struct sw *w, uint64_t v)
{
	if (w->nseg != 3) return;
	int ts;
	if (w->seg[2].l == 2 && memcmp(w->seg[2].s, "kn", 2) == 0) ts = 0;
	else if (w->seg[2].l == 5 && memcmp(w->seg[2].s, "ts_us", 5) == 0) ts = 1;
	else return;
	int ch = -1;
	for (int i = 0; i < W.nch; i++)
		if (W.chans[i].l == w->seg[0].l && memcmp(W.chans[i].s, w->seg[0].s, w->seg[0].l) == 0) { ch = i; break; }
	const unsigned char *k = w->seg[1].s;
	size_t kl = w->seg[1].l;
	if (ch < 0 || kl < 2 || kl > 8 || k[0] != 'k') return;
	uint64_t key = 0;
	for (size_t i = 1; i < kl; i++) {
		if (k[i] < '0' || k[i] > '9') return;
		key = key * 10 + (uint64_t)(k[i] - '0');
	}
	uint64_t slot = key * (uint64_t)W.nch + (uint64_t)ch;
	if (slot >= MAX_KEY_INDEX) return;
	if (W.nleaf == W.leafcap) {
		size_t nc = W.leafcap ? 2 * W.leafcap : 1024;
		struct leaf *nl = realloc(W.leaf, nc * sizeof(*nl));
		if (!nl) return;
		W.leaf = nl;
		W.leafcap = nc;
	}
	W.leaf[W.nleaf++] = (struct leaf){ .slot = (uint32_t)slot, .ts = (uint8_t)ts, .v = v };
}

static void sw_push(struct sw *w, const unsigned char *s, size_t l)
{
	if (w->nseg < 3) { w->seg[w->nseg].s = s; w->seg[w->nseg].l = l; }
	w->nseg++;
}

/* Pushes a member's name; split (an update's changes): its dots separate
 * segments. Returns the segments pushed. */
static int sw_push_name(struct sw *w, const unsigned char *s, size_t l, int split)
{
	int n = 1;
	const unsigned char *d;
	while (split && (d = memchr(s, '.', l))) {
		sw_push(w, s, (size_t)(d - s));
		l -= (size_t)(d - s) + 1;
		s = d + 1;
		n++;
	}
	sw_push(w, s, l);
	return n;
}

static void jw_ws(struct sw *w)
{
	while (w->p < w->e && (*w->p == ' ' || *w->p == '\n' || *w->p == '\r' || *w->p == '\t')) w->p++;
}

/* A JSON string at p (its quote): its raw bytes, escapes as they are. */
static int jw_str(struct sw *w, const unsigned char **s, size_t *l)
{
	if (w->p >= w->e || *w->p != '"') return -1;
	const unsigned char *b = w->p + 1, *q = b;
	for (;;) {
		q = memchr(q, '"', (size_t)(w->e - q));
		if (!q) return -1;
		size_t bs = 0;                     /* backslashes right before the quote */
		while ((size_t)(q - b) > bs && q[-(ptrdiff_t)bs - 1] == '\\') bs++;
		if (!(bs & 1)) break;
		q++;
	}
	*s = b;
	*l = (size_t)(q - b);
	w->p = q + 1;
	return 0;
}

static int jw_lit(struct sw *w, const char *s, size_t l)
{
	if ((size_t)(w->e - w->p) < l || memcmp(w->p, s, l) != 0) return -1;
	w->p += l;
	return 0;
}

static int jw_value(struct sw *w, int depth, int leaf_ok, int split);

/* A JSON object at p; split: its member names are paths (an update's changes). */
static int jw_object(struct sw *w, int depth, int leaf_ok, int split)
{
	if (depth > SW_DEPTH) return -1;
	w->p++;
	jw_ws(w);
	if (w->p < w->e && *w->p == '}') { w->p++; return 0; }
	for (;;) {
		const unsigned char *s;
		size_t l;
		jw_ws(w);
		if (jw_str(w, &s, &l) < 0) return -1;
		jw_ws(w);
		if (w->p >= w->e || *w->p != ':') return -1;
		w->p++;
		int pushed = sw_push_name(w, s, l, split);
		int r = jw_value(w, depth + 1, leaf_ok, 0);
		w->nseg -= pushed;
		if (r < 0) return -1;
		jw_ws(w);
		if (w->p >= w->e) return -1;
		if (*w->p == ',') { w->p++; continue; }
		if (*w->p == '}') { w->p++; return 0; }
		return -1;
	}
}

static int jw_value(struct sw *w, int depth, int leaf_ok, int split)
{
	jw_ws(w);
	if (w->p >= w->e) return -1;
	unsigned char ch = *w->p;
	if (ch == '{') return jw_object(w, depth, leaf_ok, split);
	if (ch == '[') {
		if (depth > SW_DEPTH) return -1;
		w->p++;
		jw_ws(w);
		if (w->p < w->e && *w->p == ']') { w->p++; return 0; }
		for (;;) {
			if (jw_value(w, depth + 1, 0, 0) < 0) return -1;
			jw_ws(w);
			if (w->p >= w->e) return -1;
			if (*w->p == ',') { w->p++; continue; }
			if (*w->p == ']') { w->p++; return 0; }
			return -1;
		}
	}
	if (ch == '"') {
		const unsigned char *s;
		size_t l;
		return jw_str(w, &s, &l);
	}
	if (ch == 't') return jw_lit(w, "true", 4);
	if (ch == 'f') return jw_lit(w, "false", 5);
	if (ch == 'n') return jw_lit(w, "null", 4);
	if (ch != '-' && (ch < '0' || ch > '9')) return -1;
	/* a number: a leaf when it is an unsigned integer that fits */
	uint64_t v = 0;
	int plain = ch != '-';
	if (!plain) w->p++;
	const unsigned char *d = w->p;
	while (w->p < w->e && *w->p >= '0' && *w->p <= '9') {
		if (v > (UINT64_MAX - 9) / 10) plain = 0;
		v = v * 10 + (uint64_t)(*w->p++ - '0');
	}
	if (w->p == d) return -1;
	while (w->p < w->e && (*w->p == '.' || *w->p == 'e' || *w->p == 'E' || *w->p == '+' || *w->p == '-' ||
			       (*w->p >= '0' && *w->p <= '9'))) {
		w->p++;
		plain = 0;
	}
	if (leaf_ok && plain) sw_leaf(w, v);
	return 0;
}

/* One JSON message: 0 when it is one well-formed object ("type", "seq" and
 * the values of "data" or "changes" taken), -1 otherwise. */
static int sw_json(struct sw *w)
{
	jw_ws(w);
	if (w->p >= w->e || *w->p != '{') return -1;
	w->p++;
	jw_ws(w);
	if (w->p < w->e && *w->p == '}') {
		w->p++;
	} else {
		for (;;) {
			const unsigned char *s;
			size_t l;
			jw_ws(w);
			if (jw_str(w, &s, &l) < 0) return -1;
			jw_ws(w);
			if (w->p >= w->e || *w->p != ':') return -1;
			w->p++;
			jw_ws(w);
			int r;
			if (l == 4 && memcmp(s, "type", 4) == 0 && w->p < w->e && *w->p == '"') {
				r = jw_str(w, &w->type, &w->type_len);
			} else if (l == 9 && memcmp(s, "timestamp", 9) == 0 && w->p < w->e && *w->p == '"') {
				const unsigned char *ts;
				size_t tl;
				r = jw_str(w, &ts, &tl);
				if (r == 0) w->made_us = iso_us(ts, tl);
			} else if (l == 3 && memcmp(s, "seq", 3) == 0 && w->p < w->e && *w->p >= '0' && *w->p <= '9') {
				const unsigned char *v0 = w->p;
				r = jw_value(w, 1, 0, 0);
				w->has_seq = r == 0 && parse_num(v0, w->p, &w->seq) == w->p;   /* an integer, all of it */
			} else if (l == 4 && memcmp(s, "data", 4) == 0) {
				r = jw_value(w, 1, 1, 0);
			} else if (l == 7 && memcmp(s, "changes", 7) == 0) {
				r = jw_value(w, 1, 1, 1);
			} else {
				r = jw_value(w, 1, 0, 0);
			}
			if (r < 0) return -1;
			jw_ws(w);
			if (w->p >= w->e) return -1;
			if (*w->p == ',') { w->p++; continue; }
			if (*w->p == '}') { w->p++; break; }
			return -1;
		}
	}
	jw_ws(w);
	return w->p == w->e ? 0 : -1;
}

/* A MessagePack value at p, walked like jw_value(). */
static int mw_value(struct sw *w, int depth, int leaf_ok, int split)
{
	struct mp_item it, k;
	const unsigned char *q = mp_head(w->p, w->e, &it);
	if (!q) return -1;
	w->p = q;
	if (it.kind == MP_UINT) {
		if (leaf_ok) sw_leaf(w, it.u);
		return 0;
	}
	if (it.kind != MP_MAP || depth > SW_DEPTH) {
		if (!(q = mp_skip_rest(w->p, w->e, &it))) return -1;
		w->p = q;
		return 0;
	}
	for (uint64_t i = 0; i < it.u; i++) {
		if (!(q = mp_head(w->p, w->e, &k))) return -1;
		w->p = q;
		int pushed;
		if (k.kind == MP_STR) {
			pushed = sw_push_name(w, k.s, (size_t)k.u, split);
		} else {
			if (!(q = mp_skip_rest(w->p, w->e, &k))) return -1;
			w->p = q;
			sw_push(w, (const unsigned char *)"", 0);
			pushed = 1;
		}
		int r = mw_value(w, depth + 1, leaf_ok, 0);
		w->nseg -= pushed;
		if (r < 0) return -1;
	}
	return 0;
}

/* One MessagePack message, as sw_json(). */
static int sw_msgpack(struct sw *w)
{
	struct mp_item top, key, val;
	const unsigned char *q = mp_head(w->p, w->e, &top);
	if (!q || top.kind != MP_MAP) return -1;
	w->p = q;
	for (uint64_t i = 0; i < top.u; i++) {
		if (!(q = mp_head(w->p, w->e, &key)) || !(q = mp_skip_rest(q, w->e, &key))) return -1;
		w->p = q;
		int r = 0;
		if (mp_key_is(&key, "data", 4) || mp_key_is(&key, "changes", 7)) {
			r = mw_value(w, 1, 1, key.u == 7);
		} else {
			if (!(q = mp_head(w->p, w->e, &val))) return -1;
			w->p = q;
			if (mp_key_is(&key, "type", 4) && val.kind == MP_STR) {
				w->type = val.s;
				w->type_len = (size_t)val.u;
			} else if (mp_key_is(&key, "seq", 3) && val.kind == MP_UINT) {
				w->seq = val.u;
				w->has_seq = 1;
			} else if (mp_key_is(&key, "timestamp", 9) && val.kind == MP_EXT) {
				w->made_us = mp_timestamp_us(&val);
			} else if (!(q = mp_skip_rest(w->p, w->e, &val))) {
				return -1;
			} else {
				w->p = q;
			}
		}
		if (r < 0) return -1;
	}
	return w->p == w->e ? 0 : -1;
}

/* --state: key slot's "kn" as a snapshot or update carries it. It may
 * never go back; the same again is a repeat (allowed: the first update
 * after a snapshot may repeat it); a jump skips records the client never
 * got, which the bridge merged into one update by design (superseded). */
static void on_state_kn(struct conn *c, uint32_t slot, uint64_t kn)
{
	if (grow_n(&c->last_n, &c->nlast, slot) < 0 || grow_n(&W.key_max, &W.nkey_max, slot) < 0) {
		W.unparsed++;
		return;
	}
	uint64_t last = c->last_n[slot];
	if (kn > last) {
		W.values++;
		W.superseded += kn - last - 1;
		c->last_n[slot] = kn;
	} else if (kn == last) {
		W.repeats++;
	} else {
		W.dups++;
		c->disorder++;
	}
	if (kn > W.key_max[slot]) W.key_max[slot] = kn;
}

/* --state: one whole message, `wire` bytes on the wire (frame heads too). */
static void on_state_msg(struct conn *c, const unsigned char *p, size_t len, int msgpack, uint64_t wire, int64_t now)
{
	struct sw w = { .p = p, .e = p + len };
	W.nleaf = 0;
	int r = msgpack ? sw_msgpack(&w) : sw_json(&w);
	int kind = ST_OTHER;
	if (r == 0 && w.type) {
		if (w.type_len == 8 && memcmp(w.type, "snapshot", 8) == 0) kind = ST_SNAPSHOT;
		else if (w.type_len == 6 && memcmp(w.type, "update", 6) == 0) kind = ST_UPDATE;
	}
	if (kind == ST_OTHER) {
		if (r < 0) {
			if (msgpack) W.wrong_format++;
			else W.unparsed++;
		}
		if (msgpack) on_control(c, r == 0 ? w.type : NULL, r == 0 ? w.type_len : 0, 1);
		else on_control(c, p, len, 0);
		return;
	}
	if (c->state == C_SUBSCRIBING) became_subscribed(c);    /* a snapshot before any ack */
	if (!w.has_seq || (c->next_seq && w.seq != c->next_seq)) W.seq_errors++;
	c->next_seq = w.seq + 1;
	if (kind == ST_SNAPSHOT) {
		W.snapshots++;
		W.snapshot_bytes += wire;
	} else {
		W.updates++;
		W.msgs++;
		c->msgs++;
		W.update_bytes += wire;
		if (!W.t_first) W.t_first = now;
		W.t_last = now;
		if (c->t_update) hist_add(&W.update_gap, (uint64_t)(now - c->t_update));
		c->t_update = now;
		if (w.made_us) hist_add(&W.update_delay, now > w.made_us ? (uint64_t)(now - w.made_us) : 0);
		/* the previous update's newest-value age counts now that it was not
		 * the last: the last one follows the end of the records, and its
		 * newest value is as old as the time since the last record */
		if (c->newest_held) hist_add(&W.newest_age, c->newest_held - 1);
		c->newest_held = 0;
	}
	uint64_t newest = 0;
	for (size_t i = 0; i < W.nleaf; i++) {
		const struct leaf *l = &W.leaf[i];
		if (!l->ts) {
			on_state_kn(c, l->slot, l->v);
		} else if (kind == ST_UPDATE) {
			/* the age of the value: its production to this update's receipt */
			hist_add(&W.lat, now > (int64_t)l->v ? (uint64_t)(now - (int64_t)l->v) : 0);
			if (l->v > newest) newest = l->v;
		}
	}
	if (newest) c->newest_held = (now > (int64_t)newest ? (uint64_t)(now - (int64_t)newest) : 0) + 1;
}

/* --state: a data frame; fragments are gathered into one message first
 * (kbridge sends none). */
static void on_state_frame(struct conn *c, int fin, int op, const unsigned char *p, size_t len, int64_t now)
{
	uint64_t wire = W.frame_wire;
	if (!fin || c->frag_op) {
		if (op) { c->frag_op = (uint8_t)op; c->mwire = 0; }
		if ((size_t)c->mfrag_len + len > MAX_FRAME) { conn_fail(c, "fragmented message too large for wsload"); return; }
		unsigned char *nb = realloc(c->mfrag, c->mfrag_len + len + 1);
		if (!nb) { conn_fail(c, "out of memory"); return; }
		memcpy(nb + c->mfrag_len, p, len);
		c->mfrag = nb;
		c->mfrag_len += (uint32_t)len;
		c->mwire += (uint32_t)wire;
		if (!fin) return;
		op = c->frag_op;
		c->frag_op = 0;
		p = c->mfrag;
		len = c->mfrag_len;
		wire = c->mwire;
	}
	int msgpack = op == 0x2;
	if (msgpack != W.o.msgpack) W.wrong_format++;
	on_state_msg(c, p, len, msgpack, wire, now);
	if (p == c->mfrag) { free(c->mfrag); c->mfrag = NULL; c->mfrag_len = 0; }
}

/* --deflate: compressed bytes inflated into W.zbuf, RFC 7692 §7.2.2: raw
 * DEFLATE with 00 00 ff ff appended, a fresh stream per message (the server
 * takes no context over). Returns the length, or -1 when the data does not
 * inflate or exceeds MAX_FRAME. */
static ssize_t inflate_raw(const unsigned char *p, size_t len)
{
	static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
	z_stream *z = &W.zin;
	if (inflateReset(z) != Z_OK) return -1;
	z->next_out = W.zbuf;
	z->avail_out = MAX_FRAME;
	z->next_in = (unsigned char *)p;
	z->avail_in = (uInt)len;
	int r = inflate(z, Z_SYNC_FLUSH);
	if (r == Z_OK || (r == Z_BUF_ERROR && len == 0)) {
		if (z->avail_in) return -1;                  /* output full: too large */
		z->next_in = (unsigned char *)tail;
		z->avail_in = sizeof(tail);
		r = inflate(z, Z_SYNC_FLUSH);
	}
	if ((r != Z_OK && r != Z_STREAM_END) || z->avail_out == 0) return -1;
	return (ssize_t)(MAX_FRAME - z->avail_out);
}

static uint32_t zhash(const unsigned char *p, size_t len)
{
	/* every byte, 8 at a time (the parts of a record that change, its
	 * numbers, may sit anywhere in the compressed bits) */
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, p + i, len - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return (uint32_t)(h ^ h >> 29);
}

/* --deflate: one compressed message (its frames' payloads joined),
 * inflated. A server that compresses a record once sends every client the
 * same bytes, so the inflated text of recent compressed payloads is kept
 * (W.zcache: a set per hash, the whole payload compared; the clients of a
 * record read it at different moments, so a set holds several records in
 * flight, or two of them would evict each other 1,000 times): a payload seen
 * before is not inflated again, which lets one wsload inflate 1,000,000
 * messages a second; --no-inflate-cache inflates every one, as each real
 * client would. *out points to the message (W.zbuf or a cache entry,
 * valid until the next call). Returns its length, or -1 when it does not
 * inflate or exceeds MAX_FRAME. */
static ssize_t inflate_message(const unsigned char *p, size_t len, const unsigned char **out)
{
	struct zentry *e = NULL;
	uint32_t h = 0;
	if (W.zcache && len <= ZCACHE_MAX) {
		h = zhash(p, len);
		struct zentry *set = &W.zcache[h % (ZCACHE / ZCACHE_WAYS) * ZCACHE_WAYS];
		e = set;
		for (int i = 0; i < ZCACHE_WAYS; i++) {
			struct zentry *x = &set[i];
			if (x->b && x->hash == h && x->zlen == len && !memcmp(x->b, p, len)) { e = x; break; }
			if (x->used < e->used) e = x;
		}
		e->used = ++W.zclock;
	}
	ssize_t n;
	if (e && e->b && e->hash == h && e->zlen == len && !memcmp(e->b, p, len)) {
		W.zcache_hits++;
		n = (ssize_t)e->len;
		*out = e->b + e->zlen;
	} else {
		n = inflate_raw(p, len);
		if (n < 0) return -1;
		W.inflates++;
		*out = W.zbuf;
		W.zlast = (size_t)n;
		if (len <= ZCACHE_MAX) { memcpy(W.zsample, p, len); W.zsample_len = len; }
		unsigned char *b = e && n <= ZCACHE_MAX_OUT ? realloc(e->b, len + (size_t)n) : NULL;
		if (b) {
			memcpy(b, p, len);
			memcpy(b + len, W.zbuf, (size_t)n);
			*e = (struct zentry){ .b = b, .zlen = (uint32_t)len, .len = (uint32_t)n, .hash = h, .used = W.zclock };
		}
	}
	W.deflated++;
	W.deflated_bytes += len;
	W.inflated_bytes += (uint64_t)n;
	return n;
}

/* --deflate: a frame of a compressed message. Fragments are gathered (in
 * mfrag; kbridge sends none); once the message is whole it is inflated.
 * Returns its length (the text at *out), -2 when more fragments are due,
 * -1 when the connection failed. */
static ssize_t on_compressed(struct conn *c, int fin, int op, const unsigned char *p, size_t len,
			     const unsigned char **out)
{
	if (!fin || c->frag_z) {
		if (op) { c->frag_op = (uint8_t)op; c->frag_z = 1; }
		if ((size_t)c->mfrag_len + len > MAX_FRAME) { conn_fail(c, "fragmented message too large for wsload"); return -1; }
		unsigned char *nb = realloc(c->mfrag, c->mfrag_len + len + 1);
		if (!nb) { conn_fail(c, "out of memory"); return -1; }
		memcpy(nb + c->mfrag_len, p, len);
		c->mfrag = nb;
		c->mfrag_len += (uint32_t)len;
		if (!fin) return -2;
		p = c->mfrag;
		len = c->mfrag_len;
	}
	ssize_t n = inflate_message(p, len, out);
	free(c->mfrag); c->mfrag = NULL; c->mfrag_len = 0;
	c->frag_op = 0;
	c->frag_z = 0;
	if (n < 0) conn_fail(c, "compressed message does not inflate (or inflates past 512 KiB)");
	return n;
}

/* One server frame (unmasked, RFC 6455 §5.1). rsv1: the frame's RSV1 bit
 * (--deflate only: a compressed message's first frame). */
static void on_frame(struct conn *c, int fin, int op, int rsv1, const unsigned char *p, size_t len, int64_t now)
{
	uint64_t ts, n, k, kn;
	if (rsv1 && (op & 0x8)) { conn_fail(c, "RSV1 on a control frame"); return; }
	if (rsv1 && op == 0) { conn_fail(c, "RSV1 on a continuation frame"); return; }
	switch (op) {
	case 0x9:     /* ping: answer with a pong carrying the same payload (RFC 6455 §5.5.2) */
		W.pings++;
		send_frame(c, 0xA, p, len);
		return;
	case 0xA:
		return;
	case 0x8:     /* close: echo the code, then we are done (RFC 6455 §5.5.1) */
		send_frame(c, 0x8, p, len >= 2 ? 2 : 0);
		conn_fail(c, "closed by server");
		return;
	case 0x1: case 0x2: case 0x0:
		break;
	default:
		conn_fail(c, "unknown opcode");
		return;
	}
	if (op != 0 && c->frag_op) { conn_fail(c, "new message inside a fragmented one"); return; }
	if (op == 0 && !c->frag_op) { conn_fail(c, "continuation without a message"); return; }
	if (rsv1 || c->frag_z) {
		/* the whole message, inflated, goes on as one unfragmented frame */
		int mop = op ? op : c->frag_op;
		const unsigned char *text;
		ssize_t m = on_compressed(c, fin, op, p, len, &text);
		if (m < 0) return;
		fin = 1;
		op = mop;
		p = text;
		len = (size_t)m;
	}
	if (W.o.state) {
		on_state_frame(c, fin, op, p, len, now);
		return;
	}
	if (W.o.msgpack && (op == 0x2 || (op == 0 && c->frag_op == 0x2))) {
		on_msgpack(c, fin, op, p, len, now);
		return;
	}
	if (W.o.msgpack && op == 0x1) W.wrong_format++;   /* counted once per text message */
	int has = parse_fields(p, len, &ts, &n, &k, &kn) == 0;
	if (!fin || c->frag_op) {
		/* Fragmented: remember the numbers of whichever fragment had them. */
		if (!c->frag_op) { c->frag_op = (uint8_t)op; c->frag_has_ts = 0; }
		if (has) { c->frag_has_ts = 1; c->frag_ts = ts; c->frag_n = n; c->frag_k = k; c->frag_kn = kn; }
		if (!fin) return;
		has = c->frag_has_ts;
		ts = c->frag_ts; n = c->frag_n; k = c->frag_k; kn = c->frag_kn;
		c->frag_op = 0;
	}
	if (has) on_data(c, ts, n, k, kn, now);
	else if (W.o.pub_rate && c->state == C_OPEN) on_pub_answer(c, p, len, now);
	else on_control(c, p, len, 0);
}

/* Parses every complete frame in buf; returns the bytes consumed, or -1 when
 * the connection failed. */
static ssize_t parse_frames(struct conn *c, const unsigned char *buf, size_t len, int64_t now)
{
	size_t off = 0;
	while (len - off >= 2 && c->fd >= 0) {
		const unsigned char *h = buf + off;
		int fin = h[0] >> 7, op = h[0] & 0x0f;
		if (h[0] & (W.o.deflate ? 0x30 : 0x70)) { conn_fail(c, "RSV bits set"); return -1; }
		if (h[1] & 0x80) { conn_fail(c, "masked server frame"); return -1; }
		uint64_t plen = h[1] & 0x7f;
		size_t hl = 2;
		if (plen == 126) {
			if (len - off < 4) break;
			plen = (uint64_t)h[2] << 8 | h[3];
			hl = 4;
		} else if (plen == 127) {
			if (len - off < 10) break;
			plen = 0;
			for (int i = 0; i < 8; i++) plen = plen << 8 | h[2 + i];
			hl = 10;
		}
		if (plen > MAX_FRAME) { conn_fail(c, "frame too large for wsload"); return -1; }
		if (len - off < hl + plen) break;
		W.bytes += hl + plen;
		W.frame_wire = hl + plen;
		on_frame(c, fin, op, (h[0] >> 6) & 1, h + hl, (size_t)plen, now);
		off += hl + (size_t)plen;
	}
	return c->fd >= 0 ? (ssize_t)off : -1;
}

/* The value of the response head's line named name (lower case, with its
 * colon; the head's in any case), its length in *vl; NULL when none. */
static const unsigned char *header_value(const unsigned char *head, size_t hl, const char *name, size_t *vl)
{
	size_t nl = strlen(name);
	for (const unsigned char *p = head, *e = head + hl; p < e;) {
		const unsigned char *eol = memmem(p, (size_t)(e - p), "\r\n", 2);
		if (!eol) break;
		if ((size_t)(eol - p) >= nl && !strncasecmp((const char *)p, name, nl)) {
			*vl = (size_t)(eol - p) - nl;
			return p + nl;
		}
		p = eol + 2;
	}
	return NULL;
}

/* The value of the response head's Sec-WebSocket-Extensions line. */
static const unsigned char *extensions_value(const unsigned char *head, size_t hl, size_t *vl)
{
	return header_value(head, hl, "sec-websocket-extensions:", vl);
}

/* Checks the 101 (RFC 6455 §4.1 items 1-4 of the client's checks, loosely:
 * status 101 and our accept value; item 5: with --deflate the answer must
 * accept permessage-deflate, without it carry no extension, RFC 7692 §5).
 * Returns the head's length, 0 when more is needed, -1 on failure. */
static ssize_t parse_head(struct conn *c, const unsigned char *buf, size_t len)
{
	const unsigned char *e = memmem(buf, len, "\r\n\r\n", 4);
	if (!e) {
		if (len > MAX_HEAD) { conn_fail(c, "response head too long"); return -1; }
		return 0;
	}
	size_t hl = (size_t)(e - buf) + 4;
	if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
		W.refused++;
		const unsigned char *eol = memchr(buf, '\r', hl);
		char why[96];
		snprintf(why, sizeof(why), "upgrade refused: %.*s", (int)((eol ? eol : e) - buf > 60 ? 60 : (eol ? eol : e) - buf), (const char *)buf);
		conn_fail(c, why);
		return -1;
	}
	if (!memmem(buf, hl, WS_ACCEPT, sizeof(WS_ACCEPT) - 1)) { conn_fail(c, "wrong Sec-WebSocket-Accept"); return -1; }
	size_t vl = 0;
	const unsigned char *ext = extensions_value(buf, hl, &vl);
	if (W.o.deflate && !(ext && memmem(ext, vl, "permessage-deflate", 18))) {
		W.ext_declined++;
		conn_fail(c, "the 101 did not accept permessage-deflate");
		return -1;
	}
	if (!W.o.deflate && ext) { conn_fail(c, "the 101 names an extension none was offered"); return -1; }
	return (ssize_t)hl;
}

/* ---- Server-Sent Events (--sse) ---------------------------------------------
 * The answer to GET /sse: 200, Content-Type text/event-stream, a body
 * delimited by the close (no Content-Length, no chunking), read as lines
 * ending in "\n" or "\r\n" (a lone "\r", which the format allows too, is
 * not taken for one: kbridge never sends it). Lines make blocks ended by a
 * blank line (WHATWG HTML, "Parsing an event stream"): "field: value"
 * (one space after the colon dropped), ":" a comment. What kbridge sends:
 * "retry:" and an id-only block (the start position) first; per record
 * "id: TOKEN", "event: TYPE" and "data: JSON" (the WebSocket message's
 * JSON, always one line); heartbeats ": keep-alive" then an id-only block
 * or a blank line; "event: snapshot" and "event: error" blocks with data
 * and no id. A block is handled at its blank line: one with data that is
 * neither a snapshot nor an error is a data event, one delivery, its data
 * parsed as a WebSocket message is (ts_us, n, k, kn) and checked the same
 * way (latency, sequence, key). A data event without "ts_us" (not a
 * produce.c record: kbridge --demo) is a delivery all the same, with no
 * latency or sequence to check (sse_no_ts). A data event with no id, or
 * with more than one data line, breaks the contract (sse_bad). The
 * numbers of the block's data line wait in frag_ts ... frag_kn. */
enum { SB_ID = 1, SB_DATA = 2, SB_MULTI = 4, SB_SNAPSHOT = 8, SB_ERROR = 16 };

/* Checks the answer's head. Returns its length, 0 when more is needed,
 * -1 on failure (a status other than 200 is a refusal, as for upgrades). */
static ssize_t parse_sse_head(struct conn *c, const unsigned char *buf, size_t len)
{
	const unsigned char *e = memmem(buf, len, "\r\n\r\n", 4);
	if (!e) {
		if (len > MAX_HEAD) { conn_fail(c, "response head too long"); return -1; }
		return 0;
	}
	size_t hl = (size_t)(e - buf) + 4, vl = 0;
	if (len < 12 || memcmp(buf, "HTTP/1.1 200", 12) != 0) {
		W.refused++;
		const unsigned char *eol = memchr(buf, '\r', hl);
		char why[96];
		snprintf(why, sizeof(why), "SSE request refused: %.*s", (int)((eol ? eol : e) - buf > 60 ? 60 : (eol ? eol : e) - buf), (const char *)buf);
		conn_fail(c, why);
		return -1;
	}
	const unsigned char *ct = header_value(buf, hl, "content-type:", &vl);
	if (!ct || !memmem(ct, vl, "text/event-stream", 17)) { conn_fail(c, "the 200 is not text/event-stream"); return -1; }
	if (header_value(buf, hl, "transfer-encoding:", &vl) || header_value(buf, hl, "content-length:", &vl)) {
		conn_fail(c, "the event stream is not close-delimited (Transfer-Encoding or Content-Length)");
		return -1;
	}
	return (ssize_t)hl;
}

/* A blank line: the block ends. */
static void sse_dispatch(struct conn *c, int64_t now)
{
	uint8_t b = c->sse_blk;
	c->sse_blk = 0;
	if (!(b & SB_DATA)) {
		if (b & SB_ID) W.sse_id_only++;
		return;
	}
	if (b & SB_ERROR) { W.server_errors++; return; }
	if (b & SB_SNAPSHOT) { W.sse_snapshots++; return; }
	if (!(b & SB_ID) || (b & SB_MULTI)) {
		W.sse_bad++;
		note_error("client %u: a data event %s", c->id, b & SB_ID ? "with more than one data line" : "without an id");
	}
	if (c->frag_has_ts) {
		on_data(c, c->frag_ts, c->frag_n, c->frag_k, c->frag_kn, now);
		return;
	}
	W.sse_no_ts++;
	W.msgs++;
	c->msgs++;
	if (!W.t_first) W.t_first = now;
	W.t_last = now;
}

/* Handles every complete line in buf; returns the bytes consumed (a line
 * cut short waits for the next read), -1 when the connection failed. */
static ssize_t parse_sse(struct conn *c, const unsigned char *buf, size_t len, int64_t now)
{
	size_t off = 0;
	while (off < len && c->state == C_OPEN) {
		const unsigned char *p = buf + off, *eol = memchr(p, '\n', len - off);
		if (!eol) break;
		size_t l = (size_t)(eol - p);
		off += l + 1;
		W.bytes += l + 1;
		if (l && p[l - 1] == '\r') l--;
		if (l == 0) { sse_dispatch(c, now); continue; }
		if (p[0] == ':') { W.sse_comments++; continue; }
		const unsigned char *colon = memchr(p, ':', l);
		size_t nl = colon ? (size_t)(colon - p) : l;
		const unsigned char *v = colon ? colon + 1 : p + l;
		size_t vl = (size_t)(p + l - v);
		if (vl && *v == ' ') { v++; vl--; }
		if (nl == 4 && !memcmp(p, "data", 4)) {
			c->sse_blk |= c->sse_blk & SB_DATA ? SB_MULTI : SB_DATA;
			c->frag_has_ts = parse_fields(v, vl, &c->frag_ts, &c->frag_n, &c->frag_k, &c->frag_kn) == 0;
			if (c->sse_blk & SB_ERROR)
				note_error("client %u: event: error %.*s", c->id, (int)(vl > 100 ? 100 : vl), (const char *)v);
		} else if (nl == 2 && !memcmp(p, "id", 2)) {
			c->sse_blk |= SB_ID;
			W.sse_ids++;
		} else if (nl == 5 && !memcmp(p, "event", 5)) {
			c->sse_blk &= (uint8_t)~(SB_SNAPSHOT | SB_ERROR);
			if (vl == 8 && !memcmp(v, "snapshot", 8)) c->sse_blk |= SB_SNAPSHOT;
			else if (vl == 5 && !memcmp(v, "error", 5)) c->sse_blk |= SB_ERROR;
		} else if (nl == 5 && !memcmp(p, "retry", 5)) {
			W.sse_retry++;
		} else {
			W.other++;      /* a field the format does not know: ignored, as EventSource does */
		}
	}
	return c->state == C_OPEN ? (ssize_t)off : -1;
}

static void on_upgraded(struct conn *c, int64_t now)
{
	W.in_flight--;
	W.connected++;
	hist_add(&W.conn_lat, (uint64_t)(now - c->t_start));
	if (W.connected + W.failed == W.o.clients || W.connected == W.o.clients) W.t_connected = now;
	if (W.o.no_subscribe || W.o.sse) {
		became_subscribed(c);          /* --sse: the 200 is the subscription */
	} else {
		c->state = C_SUBSCRIBING;
		send_subscribe(c);
		if (c->fd >= 0 && W.o.no_ack) became_subscribed(c);
	}
	start_more();
}

/* --tls: SSL_read into the shared buffer: the records the socket holds, as
 * many as fit (a record is at most 16 KiB of plaintext). Returns the bytes,
 * 0 when TLS waits (nothing read), -1 when the connection failed. */
static ssize_t tls_read(struct conn *c, unsigned char *b, size_t room)
{
	size_t got = 0;
	while (room - got >= 16384 || (got == 0 && room > got)) {
		ERR_clear_error();
		int r = tls_result(c, SSL_read(c->ssl, b + got, (int)(room - got)));
		if (r == -1) return -1;
		if (r == -2) { if (got) break; conn_fail(c, "EOF"); return -1; }
		if (r == 0) break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* One read per readiness event (level-triggered: fair to every connection).
 * A leftover partial frame is copied in front of the shared buffer so frames
 * are always parsed from one contiguous region. */
static void on_readable(struct conn *c)
{
	unsigned char *b = W.rbuf;
	size_t have = c->part_len;
	if (have) memcpy(b, c->part, have);
	ssize_t r;
	if (c->ssl) {
		r = tls_read(c, b + have, READ_BUF - have);
		if (r <= 0) return;
	} else {
		r = read(c->fd, b + have, READ_BUF - have);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR) return;
			conn_fail(c, strerror(errno));
			return;
		}
		if (r == 0) { conn_fail(c, "EOF"); return; }
	}
	int64_t now = now_us();
	size_t len = have + (size_t)r, off = 0;
	if (c->state == C_HANDSHAKE) {
		ssize_t hl = W.o.sse ? parse_sse_head(c, b, len) : parse_head(c, b, len);
		if (hl < 0) return;
		if (hl == 0) goto keep;
		off = (size_t)hl;
		on_upgraded(c, now);
		if (c->fd < 0) return;
	}
	ssize_t used = W.o.sse ? parse_sse(c, b + off, len - off, now) : parse_frames(c, b + off, len - off, now);
	if (used < 0) return;
	off += (size_t)used;
keep:
	if (off == len) {
		free(c->part); c->part = NULL; c->part_len = 0;
		return;
	}
	size_t left = len - off;
	if (left > MAX_FRAME + 14) { conn_fail(c, W.o.sse ? "SSE line too long for wsload" : "frame too large for wsload"); return; }
	if (left > c->part_len || !c->part) {
		unsigned char *n = realloc(c->part, left);
		if (!n) { conn_fail(c, "out of memory"); return; }
		c->part = n;
	}
	memmove(c->part, b + off, left);
	c->part_len = (uint32_t)left;
}

/* ---- control on stdin (bench/run.py) ------------------------------------------
 *   stop                          finish now
 *   drain EXPECT QUIET_MS MAX_MS  finish once EXPECT data messages arrived in
 *                                 total, or none came for QUIET_MS, or MAX_MS passed
 *   publish SECONDS               --publish: publish for SECONDS, then finish once
 *                                 every publish is answered (or --ack-wait passed) */
static void on_control_line(char *line)
{
	unsigned long long e = 0;
	int q = 0, m = 0;
	double secs = 0;
	if (!strncmp(line, "stop", 4)) {
		W.stop = 1;
	} else if (sscanf(line, "publish %lf", &secs) == 1 && W.o.pub_rate) {
		pub_start(secs);
	} else if (sscanf(line, "drain %llu %d %d", &e, &q, &m) == 3) {
		W.draining = 1;
		W.drain_expect = e;
		W.drain_quiet_us = (int64_t)q * 1000;
		W.drain_deadline = now_us() + (int64_t)m * 1000;
	}
}

static void on_stdin(void)
{
	if (benchctl_read(&W.ctl, on_control_line)) W.stop = 1;   /* EOF: the driver went away */
}

/* ---- result ---------------------------------------------------------------- */

static double thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* --deflate, at the end: what the zlib work costs per message, timed on
 * the run's own messages (the last one inflated: a data message, the very
 * bytes the server sent), CPU us per call over rounds of 100 until 50 ms:
 * - compressing its text the way RFC 7692 §7.2.1 says and a server
 *   without context takeover does it: one raw stream of --deflate-level,
 *   window 15, memLevel 8, reset per message, sync-flushed. A compressor
 *   per client pays this per delivery; bench/run.py multiplies it out
 *   (bench/README.md, the deflate row);
 * - inflating it (inflate_raw), what each real client pays per message
 *   (wsload's cache spares itself most of it). */
static z_stream zdef;
static unsigned char zdef_out[MAX_FRAME + 64];

static int deflate_once(void)
{
	deflateReset(&zdef);
	zdef.next_in = W.zbuf;
	zdef.avail_in = (uInt)W.zlast;
	zdef.next_out = zdef_out;
	zdef.avail_out = sizeof(zdef_out);
	return deflate(&zdef, Z_SYNC_FLUSH) == Z_OK && !zdef.avail_in ? 0 : -1;
}

static int inflate_once(void)
{
	return inflate_raw(W.zsample, W.zsample_len) == (ssize_t)W.zlast ? 0 : -1;
}

/* CPU us per call of fn (-1: it failed); *total_s: the timing's CPU s. */
static double cpu_per_call(int (*fn)(void), double *total_s)
{
	unsigned n = 0;
	double t0 = thread_cpu_us(), t = t0;
	while (t - t0 < 50000 || n < 100) {
		for (int i = 0; i < 100; i++, n++)
			if (fn() < 0) return -1;
		t = thread_cpu_us();
	}
	*total_s = (t - t0) / 1e6;
	return (t - t0) / n;
}

static void zlib_costs(void)
{
	if (!W.zlast || deflateInit2(&zdef, W.o.deflate_level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return;
	W.zcost_us = cpu_per_call(deflate_once, &W.zcost_total_s);
	W.zcost_out = sizeof(zdef_out) - zdef.avail_out - 4;
	deflateEnd(&zdef);
	if (W.zsample_len) W.icost_us = cpu_per_call(inflate_once, &W.icost_total_s);
}

static void print_hist_ms(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f, "\"%s\":{\"count\":%" PRIu64 ",\"mean\":%.3f,\"min\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
		"\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}", name, h->count,
		h->count ? (double)h->sum / (double)h->count / 1000.0 : 0.0, (double)h->min / 1000.0,
		(double)hist_quantile(h, 0.5) / 1000.0, (double)hist_quantile(h, 0.9) / 1000.0,
		(double)hist_quantile(h, 0.99) / 1000.0, (double)hist_quantile(h, 0.999) / 1000.0,
		(double)h->max / 1000.0);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void print_ready(void)
{
	int64_t t = W.t_ready;
	printf("{\"event\":\"ready\",\"clients\":%d,\"connected\":%d,\"subscribed\":%d,\"failed\":%d,"
	       "\"connect_s\":%.6f,\"subscribe_s\":%.6f,\"t_us\":%" PRId64 "}\n",
	       W.o.clients, W.connected, W.subscribed, W.failed,
	       (double)((W.t_connected ? W.t_connected : t) - W.t0) / 1e6, (double)(t - W.t0) / 1e6, t);
	fflush(stdout);
}

/* --interval: keys whose newest value (the highest "n" any client saw)
 * client c, still subscribed, never got. A conflating bridge holds a key's
 * newest record at most one interval, so after the drain there is none. */
static unsigned key_count(void)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < W.nkey_max; i++) n += W.key_max[i] > 0;
	return n;
}

static uint64_t stale_keys(const struct conn *c)
{
	uint64_t stale = 0;
	if (c->state != C_OPEN) return 0;
	if (W.o.keys > 0) {
		uint64_t key = c->id % (uint64_t)W.o.keys;
		uint64_t last = c->nlast ? c->last_n[0] : 0;
		return key < W.nkey_max && last < W.key_max[key];
	}
	for (uint32_t key = 0; key < W.nkey_max; key++)
		if ((key < c->nlast ? c->last_n[key] : 0) < W.key_max[key]) stale++;
	return stale;
}

static void print_result(void)
{
	uint64_t mn = UINT64_MAX, mx = 0, stale = 0;
	int with_gaps = 0, open = 0, disorder = 0, with_stale = 0, bad = 0;
	for (int i = 0; i < W.o.clients; i++) {
		struct conn *c = &W.conns[i];
		if (c->gaps) with_gaps++;
		uint64_t st = W.o.interval_ms || W.o.state ? stale_keys(c) : 0;
		stale += st;
		if (st) with_stale++;
		if (c->disorder) disorder++;
		if (c->gaps || c->disorder || st) bad++;
		if (c->state == C_OPEN || c->state == C_SUBSCRIBING) open++;
		if (c->state == C_FAILED) continue;
		if (c->msgs < mn) mn = c->msgs;
		if (c->msgs > mx) mx = c->msgs;
	}
	if (mn == UINT64_MAX) mn = 0;
	FILE *f = stdout;
	fprintf(f, "{\"event\":\"result\",\"clients\":%d,\"keys\":%d,\"connected\":%d,\"subscribed\":%d,"
		"\"failed\":%d,\"closed\":%d,\"open\":%d,\"src_addrs\":%d,\"addr_exhausted\":%d,"
		"\"connect_s\":%.6f,\"subscribe_s\":%.6f,",
		W.o.clients, W.o.keys, W.connected, W.subscribed, W.failed, W.closed, open, W.src_used,
		W.fail_addr, W.t_connected ? (double)(W.t_connected - W.t0) / 1e6 : -1.0,
		W.t_ready ? (double)(W.t_ready - W.t0) / 1e6 : -1.0);
	fprintf(f, "\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"msgs_min\":%" PRIu64 ",\"msgs_max\":%" PRIu64 ","
		"\"gaps\":%" PRIu64 ",\"clients_with_gaps\":%d,\"missing\":%" PRIu64 ",\"dups\":%" PRIu64 ","
		"\"misrouted\":%" PRIu64 ",\"unparsed\":%" PRIu64 ",\"acks\":%" PRIu64 ",\"sub_errors\":%" PRIu64 ","
		"\"server_errors\":%" PRIu64 ",\"other\":%" PRIu64 ",\"pings\":%" PRIu64 ",",
		W.msgs, W.bytes, mn, mx, W.gaps, with_gaps, W.missing, W.dups, W.misrouted, W.unparsed,
		W.acks, W.sub_errors, W.server_errors, W.other, W.pings);
	fprintf(f, "\"format\":\"%s\",\"wrong_format\":%" PRIu64 ",\"interval_ms\":%d,\"keys_seen\":%u,"
		"\"stale\":%" PRIu64 ",\"clients_stale\":%d,\"clients_disorder\":%d,\"clients_bad\":%d,",
		W.o.msgpack ? "msgpack" : "json", W.wrong_format, W.o.interval_ms, W.nkey_max ? key_count() : 0,
		stale, with_stale, disorder, bad);
	fprintf(f, "\"channels\":%d,\"tokens\":%u,\"refused\":%" PRIu64 ",", W.nch, W.ntok, W.refused);
	fprintf(f, "\"tls\":%d,\"tls_handshakes\":%" PRIu64 ",", W.o.tls, W.tls_handshakes);
	fprintf(f, "\"sse\":%d,", W.o.sse);
	if (W.o.sse)
		fprintf(f, "\"sse_ids\":%" PRIu64 ",\"sse_id_only\":%" PRIu64 ",\"sse_comments\":%" PRIu64 ","
			"\"sse_retry\":%" PRIu64 ",\"sse_snapshots\":%" PRIu64 ",\"sse_no_ts\":%" PRIu64 ","
			"\"sse_bad\":%" PRIu64 ",", W.sse_ids, W.sse_id_only, W.sse_comments, W.sse_retry,
			W.sse_snapshots, W.sse_no_ts, W.sse_bad);
	fprintf(f, "\"deflate\":%d,\"ext_declined\":%" PRIu64 ",\"deflated\":%" PRIu64 ",\"deflated_bytes\":%" PRIu64 ","
		"\"inflated_bytes\":%" PRIu64 ",", W.o.deflate, W.ext_declined, W.deflated, W.deflated_bytes, W.inflated_bytes);
	if (W.o.deflate)
		fprintf(f, "\"inflates\":%" PRIu64 ",\"inflate_cache_hits\":%" PRIu64 ",", W.inflates, W.zcache_hits);
	if (W.zcost_us > 0)
		fprintf(f, "\"deflate_cost\":{\"level\":%d,\"in\":%zu,\"out\":%zu,\"cpu_us\":%.3f,\"cpu_s\":%.3f},",
			W.o.deflate_level, W.zlast, W.zcost_out, W.zcost_us, W.zcost_total_s);
	if (W.icost_us > 0)
		fprintf(f, "\"inflate_cost\":{\"in\":%zu,\"out\":%zu,\"cpu_us\":%.3f,\"cpu_s\":%.3f},",
			W.zsample_len, W.zlast, W.icost_us, W.icost_total_s);
	if (W.o.state) {
		fprintf(f, "\"state\":\"%s\",\"period_ms\":%d,\"snapshots\":%" PRIu64 ",\"updates\":%" PRIu64 ","
			"\"snapshot_bytes\":%" PRIu64 ",\"update_bytes\":%" PRIu64 ",\"values\":%" PRIu64 ","
			"\"superseded\":%" PRIu64 ",\"repeats\":%" PRIu64 ",\"seq_errors\":%" PRIu64 ",",
			W.o.state, W.o.period_ms, W.snapshots, W.updates, W.snapshot_bytes, W.update_bytes, W.values,
			W.superseded, W.repeats, W.seq_errors);
		print_hist_ms(f, "newest_age_ms", &W.newest_age);
		fputc(',', f);
		print_hist_ms(f, "update_gap_ms", &W.update_gap);
		fputc(',', f);
		print_hist_ms(f, "update_delay_ms", &W.update_delay);
		fputc(',', f);
	}
	if (W.o.pub_rate) {
		/* acked_per_s: acks over the schedule's length (the rate asked for
		 * when kbridge keeps up), from its start to the last ack */
		double span = W.pub_last_ack > W.pub_t0 ? (double)(W.pub_last_ack - W.pub_t0) / 1e6 : 0;
		double win = (double)(W.pub_end - W.pub_t0) / 1e6;
		fprintf(f, "\"publish\":{\"rate\":%d,\"size\":%d,\"seconds\":%.3f,\"published\":%" PRIu64 ","
			"\"answered\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"rate_limited\":%" PRIu64 ",\"failed\":%" PRIu64 ","
			"\"errors\":%" PRIu64 ",\"unmatched\":%" PRIu64 ",\"unanswered\":%" PRIu64 ",\"no_offset\":%" PRIu64 ","
			"\"overrun\":%" PRIu64 ",\"acked_per_s\":%.1f,\"ack_span_s\":%.3f,\"t_start_us\":%" PRId64 ","
			"\"last_send_us\":%" PRId64 ",\"last_ack_us\":%" PRId64 ",",
			W.o.pub_rate, W.o.pub_size, W.pub_t0 ? win : 0.0, W.published, W.pub_answered, W.pub_acked,
			W.pub_rate_limited, W.pub_failed, W.pub_errors, W.pub_unmatched,
			W.published - W.pub_answered, W.pub_no_offset, W.pub_overrun,
			W.pub_t0 && win > 0 ? (double)W.pub_acked / (span > win ? span : win) : 0.0, span,
			W.pub_t0, W.pub_last_send, W.pub_last_ack);
		print_hist_ms(f, "ack_ms", &W.ack_lat);
		fputc(',', f);
		print_hist_ms(f, "send_lag_ms", &W.send_lag);
		fprintf(f, "},");
	}
	fprintf(f, "\"t0_us\":%" PRId64 ",\"t_ready_us\":%" PRId64 ",\"first_us\":%" PRId64 ",\"last_us\":%" PRId64 ","
		"\"cpu_s\":%.3f,\"wall_s\":%.3f,",
		W.t0, W.t_ready, W.t_first, W.t_last, cpu_seconds(), (double)(now_us() - W.t0) / 1e6);
	fprintf(f, "\"first_gap\":{\"client\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"got\":%" PRIu64 "},",
		W.gap_client, W.gap_expected, W.gap_got);
	print_hist_ms(f, "latency_ms", &W.lat);
	fputc(',', f);
	print_hist_ms(f, "connect_ms", &W.conn_lat);
	fprintf(f, ",\"first_error\":\"");
	for (const char *p = W.first_error; *p; p++) {
		if (*p == '"' || *p == '\\') fputc('\\', f);
		fputc((unsigned char)*p >= 0x20 ? *p : ' ', f);
	}
	fprintf(f, "\"}\n");
	fflush(f);
}

/* ---- self-test ------------------------------------------------------------- */

/* A MessagePack writer for the self-test's messages (the widths are the
 * caller's choice, so every encoding the decoder meets can be produced). */
struct mpw { unsigned char b[2048]; size_t n; };

static void mpw_raw(struct mpw *w, const void *p, size_t l) { memcpy(w->b + w->n, p, l); w->n += l; }
static void mpw_byte(struct mpw *w, unsigned v) { w->b[w->n++] = (unsigned char)v; }
static void mpw_be(struct mpw *w, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) mpw_byte(w, (unsigned)(v >> (8 * i)) & 0xff);
}
static void mpw_str(struct mpw *w, const char *s)
{
	size_t l = strlen(s);
	if (l < 32) mpw_byte(w, 0xa0 | (unsigned)l);
	else if (l < 256) { mpw_byte(w, 0xd9); mpw_be(w, l, 1); }
	else { mpw_byte(w, 0xda); mpw_be(w, l, 2); }
	mpw_raw(w, s, l);
}
static void mpw_uint(struct mpw *w, uint64_t v)
{
	if (v < 128) mpw_byte(w, (unsigned)v);
	else if (v < 256) { mpw_byte(w, 0xcc); mpw_be(w, v, 1); }
	else if (v < 65536) { mpw_byte(w, 0xcd); mpw_be(w, v, 2); }
	else if (v < 4294967296ull) { mpw_byte(w, 0xce); mpw_be(w, v, 4); }
	else { mpw_byte(w, 0xcf); mpw_be(w, v, 8); }
}

/* kbridge's envelope as MessagePack, with a few awkward values thrown in
 * before "data" and inside it; numbers in the given widths (0: smallest). */
static size_t mpw_envelope(struct mpw *w, int odd)
{
	w->n = 0;
	mpw_byte(w, 0x80 | (odd ? 10 : 9));
	mpw_str(w, "type"); mpw_str(w, "bench");
	mpw_str(w, "channel"); mpw_str(w, "bench");
	mpw_str(w, "key"); mpw_str(w, "k6");
	mpw_str(w, "seq"); mpw_uint(w, 100000);
	mpw_str(w, "topic"); mpw_str(w, "bench");
	mpw_str(w, "partition"); mpw_uint(w, 0);
	mpw_str(w, "offset"); mpw_byte(w, 0xd3); mpw_be(w, 5000000000ull, 8);   /* int64 */
	if (odd) {
		/* "headers": [["a", nil], ["b", {"base64": bin}]], "f": -1.5 (float64) */
		mpw_str(w, "headers"); mpw_byte(w, 0xdc); mpw_be(w, 2, 2);
		mpw_byte(w, 0x92); mpw_str(w, "a"); mpw_byte(w, 0xc0);
		mpw_byte(w, 0x92); mpw_str(w, "b"); mpw_byte(w, 0x81); mpw_str(w, "base64");
		mpw_byte(w, 0xc4); mpw_be(w, 3, 1); mpw_raw(w, "\x00\x01\x02", 3);
		mpw_str(w, "f"); mpw_byte(w, 0xcb); mpw_be(w, 0xbff8000000000000ull, 8);
	} else {
		mpw_str(w, "timestamp"); mpw_str(w, "2026-11-22T15:39:33.123Z");
	}
	mpw_str(w, "data");
	if (!odd) {
		mpw_byte(w, 0x85);
		char pad[181];
		memset(pad, 'x', 180); pad[180] = '\0';
		mpw_str(w, "pad"); mpw_str(w, pad);
		mpw_str(w, "ts_us"); mpw_uint(w, 1795370786793684ull);
		mpw_str(w, "n"); mpw_uint(w, 45);
		mpw_str(w, "k"); mpw_uint(w, 6);
		mpw_str(w, "kn"); mpw_uint(w, 70000);
	} else {
		/* sorted keys, a nested map and array, an int16, a float32, an ext,
		 * a negative number; and the numbers in non-minimal widths */
		mpw_byte(w, 0xde); mpw_be(w, 8, 2);
		mpw_str(w, "deep"); mpw_byte(w, 0x81); mpw_str(w, "x"); mpw_byte(w, 0x93);
		mpw_byte(w, 0x01); mpw_byte(w, 0xca); mpw_be(w, 0x3f800000, 4); mpw_byte(w, 0x91); mpw_byte(w, 0x80);
		mpw_str(w, "ts_us"); mpw_byte(w, 0x81); mpw_str(w, "ts_us"); mpw_uint(w, 1);  /* not this one */
		mpw_str(w, "e"); mpw_byte(w, 0xd6); mpw_byte(w, 0xff); mpw_be(w, 0, 4);
		mpw_str(w, "k"); mpw_byte(w, 0xd1); mpw_be(w, 7, 2);
		mpw_str(w, "kn"); mpw_byte(w, 0xcf); mpw_be(w, 8, 8);
		mpw_str(w, "n"); mpw_byte(w, 0xd2); mpw_be(w, 9, 4);
		mpw_str(w, "neg"); mpw_byte(w, 0xff);
		mpw_str(w, "ts_us"); mpw_byte(w, 0xd3); mpw_be(w, 123456789, 8);
	}
	return w->n;
}

static int self_test(void)
{
	int pass = 0, fail = 0;
#define CHECK(cond) do { if (cond) pass++; else { fail++; fprintf(stderr, "FAIL %s:%d %s\n", __FILE__, __LINE__, #cond); } } while (0)
	/* bucket edges are continuous and every value maps into its bucket */
	for (uint64_t v = 0; v < 200000; v += 1 + v / 50) {
		unsigned i = hist_index(v);
		if (!(hist_upper(i) >= v && (i == 0 || hist_upper(i - 1) < v))) { CHECK(0); break; }
	}
	CHECK(hist_index(UINT64_MAX) < NBUCKETS);
	CHECK(hist_upper(hist_index(UINT64_MAX)) == UINT64_MAX);
	/* quantiles of 1..100000 us within the bucket precision */
	static struct hist h;
	for (uint64_t v = 1; v <= 100000; v++) hist_add(&h, v);
	uint64_t p50 = hist_quantile(&h, 0.5), p99 = hist_quantile(&h, 0.99), p999 = hist_quantile(&h, 0.999);
	CHECK(p50 >= 50000 && p50 <= 50000 + 50000 / 64);
	CHECK(p99 >= 99000 && p99 <= 99000 + 99000 / 64);
	CHECK(p999 >= 99900 && p999 <= 100000);
	CHECK(hist_quantile(&h, 1.0) == 100000);
	CHECK(h.min == 1 && h.max == 100000 && h.count == 100000);
	/* payload fields, tail fast path and whole-payload fallback */
	uint64_t ts, n, k, kn;
	const char *env = "{\"type\":\"bench\",\"seq\":9,\"data\":{\"pad\":\"xxxx\",\"ts_us\":123,\"n\":45,\"k\":6,\"kn\":7}}";
	CHECK(parse_fields((const unsigned char *)env, strlen(env), &ts, &n, &k, &kn) == 0 && ts == 123 && n == 45 && k == 6 && kn == 7);
	const char *sorted = "{\"data\": {\"k\": 6, \"kn\": 7, \"n\": 45, \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", \"ts_us\": 99}, \"timestamp\": \"2026-01-01T00:00:00.000Z\"}";
	CHECK(parse_fields((const unsigned char *)sorted, strlen(sorted), &ts, &n, &k, &kn) == 0 && ts == 99 && n == 45 && k == 6 && kn == 7);
	const char *odd = "{\"ts_us\":5,\"n\":6,\"x\":1,\"kn\":8,\"k\":7}";
	CHECK(parse_fields((const unsigned char *)odd, strlen(odd), &ts, &n, &k, &kn) == 0 && ts == 5 && n == 6 && k == 7 && kn == 8);
	const unsigned char *hay = (const unsigned char *)"xx\"ab\"yy\"ab\"zz";
	CHECK(find_last(hay, 14, "\"ab\"", 4) == hay + 8);
	CHECK(find_last(hay, 8, "\"ab\"", 4) == hay + 2);
	CHECK(find_last(hay, 5, "\"ab\"", 4) == NULL);
	const char *extra = "{\"data\":{\"pad\":\"x\",\"ts_us\":1,\"n\":2,\"k\":3,\"kn\":4},\"seq\":5}";
	CHECK(parse_fields((const unsigned char *)extra, strlen(extra), &ts, &n, &k, &kn) == 0 && ts == 1 && n == 2 && k == 3 && kn == 4);
	CHECK(parse_tail((const unsigned char *)env, strlen(env), &ts, &n, &k, &kn) == 0);
	CHECK(parse_tail((const unsigned char *)extra, strlen(extra), &ts, &n, &k, &kn) < 0);
	const char *ack = "{\"type\":\"ack\",\"action\":\"subscribe\"}";
	CHECK(parse_fields((const unsigned char *)ack, strlen(ack), &ts, &n, &k, &kn) < 0);
	/* MessagePack: kbridge's envelope, an awkward one, every truncation of
	 * both, an ack, and things that are not one map */
	static struct mpw w;
	const unsigned char *ty;
	size_t tl;
	for (int awkward = 0; awkward < 2; awkward++) {
		size_t len = mpw_envelope(&w, awkward);
		int r = parse_msgpack(w.b, len, &ts, &n, &k, &kn, &ty, &tl);
		if (!awkward) CHECK(r == 0 && ts == 1795370786793684ull && n == 45 && k == 6 && kn == 70000);
		else CHECK(r == 0 && ts == 123456789 && n == 9 && k == 7 && kn == 8);
		CHECK(ty && tl == 5 && memcmp(ty, "bench", 5) == 0);
		int cut_ok = 1;
		for (size_t cut = 0; cut < len; cut++)
			if (parse_msgpack(w.b, cut, &ts, &n, &k, &kn, &ty, &tl) != -1) cut_ok = 0;
		CHECK(cut_ok);
		w.b[len] = 0xc0;                                  /* a second value after the map */
		CHECK(parse_msgpack(w.b, len + 1, &ts, &n, &k, &kn, &ty, &tl) == -1);
	}
	w.n = 0;
	mpw_byte(&w, 0x83); mpw_str(&w, "type"); mpw_str(&w, "ack");
	mpw_str(&w, "action"); mpw_str(&w, "subscribe");
	mpw_str(&w, "channels"); mpw_byte(&w, 0x91); mpw_str(&w, "bench");
	CHECK(parse_msgpack(w.b, w.n, &ts, &n, &k, &kn, &ty, &tl) == 1 && tl == 3 && memcmp(ty, "ack", 3) == 0);
	w.n = 0;
	mpw_byte(&w, 0x82); mpw_str(&w, "data"); mpw_str(&w, "{\"ts_us\":1}"); mpw_str(&w, "type"); mpw_str(&w, "x");
	CHECK(parse_msgpack(w.b, w.n, &ts, &n, &k, &kn, &ty, &tl) == 1);   /* data as a string: not ours */
	CHECK(parse_msgpack((const unsigned char *)env, strlen(env), &ts, &n, &k, &kn, &ty, &tl) == -1);
	const unsigned char bad[] = { 0x81, 0xc1, 0x00 }, huge[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1 };
	CHECK(parse_msgpack(bad, sizeof(bad), &ts, &n, &k, &kn, &ty, &tl) == -1);
	CHECK(parse_msgpack(huge, sizeof(huge), &ts, &n, &k, &kn, &ty, &tl) == -1);
	const unsigned char arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };   /* an array claiming 2^32-1 elements */
	struct mp_item it;
	const unsigned char *q = mp_head(arr, arr + sizeof(arr), &it);
	CHECK(q && it.kind == MP_ARR && mp_skip_rest(q, arr + sizeof(arr), &it) == NULL);
	/* --interval checks: per-key order, and the newest value of every key */
	static struct conn cc[2];
	cc[0].state = cc[1].state = C_OPEN;
	on_conflated(&cc[0], 5, 1);
	on_conflated(&cc[0], 7, 1);
	on_conflated(&cc[0], 6, 1);       /* older than 7: out of order */
	on_conflated(&cc[0], 2, 0);       /* another key: no order across keys */
	on_conflated(&cc[1], 7, 1);
	on_conflated(&cc[1], 7, 1);       /* duplicate */
	on_conflated(&cc[1], 9, 3);
	CHECK(cc[0].disorder == 1 && cc[1].disorder == 1 && W.dups == 2);
	CHECK(key_count() == 3 && W.key_max[0] == 2 && W.key_max[1] == 7 && W.key_max[3] == 9);
	CHECK(stale_keys(&cc[0]) == 1 && stale_keys(&cc[1]) == 1);   /* key 3; key 0 */
	W.dups = 0;
	/* several channels: each key's "kn" 1, 2, 3, ... */
	static struct conn pk;
	pk.state = C_OPEN;
	on_perkey(&pk, 3, 1);
	on_perkey(&pk, 3, 2);
	on_perkey(&pk, 5, 1);
	on_perkey(&pk, 3, 4);             /* 3 skipped: a gap of one */
	on_perkey(&pk, 3, 4);             /* again: a duplicate */
	CHECK(pk.gaps == 1 && W.gaps == 1 && W.missing == 1 && W.dups == 1 && pk.last_n[3] == 4 && pk.last_n[5] == 1);
	W.gaps = W.missing = W.dups = 0;
	/* --state: the walkers find <channel>.k<N>.kn and .ts_us, whether a
	 * path, a key sent whole or a channel sent whole; nothing in arrays,
	 * other channels, other keys, negative or fractional numbers */
	W.nch = 2;
	W.chans[0].s = "a"; W.chans[0].l = 1;
	W.chans[1].s = "bench2"; W.chans[1].l = 6;
	const char *upd = "{\"type\":\"update\",\"seq\":7,\"timestamp\":\"2026-12-03T09:30:00.250Z\",\"changes\":{"
		"\"a.k3.kn\":5,\"a.k3.ts_us\":100,\"a.k3.px\":1.5,"
		"\"bench2.k10\":{\"pad\":\"x\\\\\\\"y\\\\\",\"px\":2.25,\"ts_us\":200,\"n\":9,\"k\":1,\"kn\":4,\"arr\":[{\"kn\":99}]},"
		"\"a\":{\"k7\":{\"kn\":2}}, \"zz.k1.kn\":3,\"a.k1.kn\":-4,\"a.kx.kn\":8,\"a.k2.kn\":1.0,\"a.k4\":null,\"a.k5.kn\":true}}";
	struct sw sw = { .p = (const unsigned char *)upd, .e = (const unsigned char *)upd + strlen(upd) };
	W.nleaf = 0;
	CHECK(sw_json(&sw) == 0 && sw.type_len == 6 && memcmp(sw.type, "update", 6) == 0 && sw.has_seq && sw.seq == 7);
	CHECK(W.nleaf == 5);
	if (W.nleaf == 5) {
		CHECK(W.leaf[0].slot == 6 && !W.leaf[0].ts && W.leaf[0].v == 5);
		CHECK(W.leaf[1].slot == 6 && W.leaf[1].ts && W.leaf[1].v == 100);
		CHECK(W.leaf[2].slot == 21 && W.leaf[2].ts && W.leaf[2].v == 200);
		CHECK(W.leaf[3].slot == 21 && !W.leaf[3].ts && W.leaf[3].v == 4);
		CHECK(W.leaf[4].slot == 14 && !W.leaf[4].ts && W.leaf[4].v == 2);
	}
	int cuts_fail = 1;
	for (size_t cut = 0; cut < strlen(upd); cut++) {
		struct sw x = { .p = (const unsigned char *)upd, .e = (const unsigned char *)upd + cut };
		if (sw_json(&x) != -1) cuts_fail = 0;
	}
	CHECK(cuts_fail);
	const char *snap = "{\"type\":\"snapshot\",\"seq\":1,\"data\":{\"a\":{\"k0\":{\"kn\":1,\"ts_us\":5}},\"bench2\":{}}} ";
	sw = (struct sw){ .p = (const unsigned char *)snap, .e = (const unsigned char *)snap + strlen(snap) };
	W.nleaf = 0;
	CHECK(sw_json(&sw) == 0 && sw.type_len == 8 && W.nleaf == 2 && W.leaf[0].slot == 0 && W.leaf[0].v == 1);
	/* timestamps: ISO 8601 as kbridge writes it; MessagePack's 64- and 96-bit forms */
	CHECK(iso_us((const unsigned char *)"2026-12-03T09:30:00.250Z", 24) == 1796290200250000ll);
	CHECK(iso_us((const unsigned char *)"2000-02-29T23:59:59Z", 20) == 951868799000000ll);
	CHECK(iso_us((const unsigned char *)"1970-01-01T00:00:00.000001Z", 27) == 1);
	CHECK(iso_us((const unsigned char *)"2026-12-03 09:30:00.250Z", 24) == 0);
	CHECK(iso_us((const unsigned char *)"2026-12-03T09:30:00.250", 23) == 0);
	const unsigned char ts64[] = { 0xd7, 0xff, 0xee, 0x6b, 0x27, 0xfc, 0x6b, 0x11, 0x15, 0x50 };   /* 999999999 ns, s */
	const unsigned char ts96[] = { 0xc7, 12, 0xff, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x6b, 0x11, 0x15, 0x50 };
	struct mp_item ti;
	CHECK(mp_head(ts64, ts64 + sizeof(ts64), &ti) && mp_timestamp_us(&ti) == 0x6b111550ll * 1000000 + 999999);
	CHECK(mp_head(ts96, ts96 + sizeof(ts96), &ti) && mp_timestamp_us(&ti) == 0x6b111550ll * 1000000 + 1);
	const char *two = "{\"type\":\"ack\"} {}";
	sw = (struct sw){ .p = (const unsigned char *)two, .e = (const unsigned char *)two + strlen(two) };
	CHECK(sw_json(&sw) == -1);
	/* the same update in MessagePack */
	w.n = 0;
	mpw_byte(&w, 0x84);
	mpw_str(&w, "type"); mpw_str(&w, "update");
	mpw_str(&w, "seq"); mpw_uint(&w, 7);
	mpw_str(&w, "timestamp"); mpw_byte(&w, 0xd6); mpw_byte(&w, 0xff); mpw_be(&w, 1796290000, 4);
	mpw_str(&w, "changes"); mpw_byte(&w, 0x87);
	mpw_str(&w, "a.k3.kn"); mpw_uint(&w, 5);
	mpw_str(&w, "a.k3.ts_us"); mpw_byte(&w, 0xcf); mpw_be(&w, 100, 8);
	mpw_str(&w, "a.k3.px"); mpw_byte(&w, 0xcb); mpw_be(&w, 0x3ff8000000000000ull, 8);
	mpw_str(&w, "bench2.k10"); mpw_byte(&w, 0x83);
	mpw_str(&w, "ts_us"); mpw_uint(&w, 200);
	mpw_str(&w, "arr"); mpw_byte(&w, 0x91); mpw_byte(&w, 0x81); mpw_str(&w, "kn"); mpw_uint(&w, 99);
	mpw_str(&w, "kn"); mpw_uint(&w, 4);
	mpw_str(&w, "a"); mpw_byte(&w, 0x81); mpw_str(&w, "k7"); mpw_byte(&w, 0x81); mpw_str(&w, "kn"); mpw_uint(&w, 2);
	mpw_str(&w, "a.k1.kn"); mpw_byte(&w, 0xff);
	mpw_str(&w, "a.k4"); mpw_byte(&w, 0xc0);
	sw = (struct sw){ .p = w.b, .e = w.b + w.n };
	W.nleaf = 0;
	CHECK(sw_msgpack(&sw) == 0 && sw.type_len == 6 && sw.has_seq && sw.seq == 7 && W.nleaf == 5);
	CHECK(sw.made_us == 1796290000ll * 1000000);
	if (W.nleaf == 5)
		CHECK(W.leaf[2].slot == 21 && W.leaf[2].ts && W.leaf[2].v == 200 && W.leaf[3].v == 4 && W.leaf[4].slot == 14);
	cuts_fail = 1;
	for (size_t cut = 0; cut < w.n; cut++) {
		struct sw x = { .p = w.b, .e = w.b + cut };
		if (sw_msgpack(&x) != -1) cuts_fail = 0;
	}
	CHECK(cuts_fail);
	/* --state counting: snapshot, updates, a repeat, a step back, a jump */
	static struct conn sc;
	sc.state = C_OPEN;
	free(W.key_max);                  /* forget the --interval checks' keys */
	W.key_max = NULL;
	W.nkey_max = 0;
	W.o.state = "web";
	int64_t t = now_us();
	on_state_msg(&sc, (const unsigned char *)snap, strlen(snap), 0, 100, t);
	on_state_msg(&sc, (const unsigned char *)upd, strlen(upd), 0, 1000, t + 250000);
	CHECK(W.snapshots == 1 && W.updates == 1 && W.snapshot_bytes == 100 && W.update_bytes == 1000);
	CHECK(W.seq_errors == 1);         /* 1 then 7 */
	CHECK(W.values == 4 && W.superseded == 0 + 4 + 3 + 1 && W.repeats == 0 && sc.disorder == 0);
	CHECK(W.lat.count == 2 && W.newest_age.count == 0 && W.update_gap.count == 0);   /* the age waits */
	CHECK(W.update_delay.count == 1 && W.update_delay.min == (uint64_t)(t + 250000 - 1796290200250000));
	const char *back = "{\"type\":\"update\",\"seq\":8,\"changes\":{\"a.k3.kn\":5,\"a.k7.kn\":1,\"bench2.k10.kn\":6}}";
	on_state_msg(&sc, (const unsigned char *)back, strlen(back), 0, 50, t + 500000);
	CHECK(W.repeats == 1 && W.dups == 1 && sc.disorder == 1 && W.values == 5 && W.superseded == 9);
	CHECK(W.update_gap.count == 1 && W.update_gap.max == 250000 && W.seq_errors == 1);
	CHECK(W.newest_age.count == 1 && W.newest_age.max == (uint64_t)(t + 250000 - 200));   /* now counted */
	CHECK(W.update_delay.count == 1);                                                    /* no timestamp */
	CHECK(stale_keys(&sc) == 0 && key_count() == 4);
	W.o.state = NULL;
	W.nch = 0;
	/* --tokens: lines (CRLF or LF, blank ones skipped), client i takes line
	 * i % lines, the request gets one Authorization line; a space refused */
	char tokens[] = "aa.bb.cc\r\n\nx.y.z\n", spaced[] = "a b\n", err[128];
	CHECK(parse_tokens(tokens, err, sizeof(err)) == 2 && W.tok_len[0] == 8 && !strcmp(W.tok[1], "x.y.z"));
	W.req_len = (size_t)snprintf(W.req, sizeof(W.req), "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(tokens_ready() == 0);
	struct conn tc = { .id = 3 };
	size_t rl;
	const char *rq = upgrade_request(&tc, &rl);
	const char *want = "GET /ws HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x.y.z\r\n\r\n";
	CHECK(rl == strlen(want) && !memcmp(rq, want, rl));
	tc.id = 4;
	rq = upgrade_request(&tc, &rl);
	CHECK(rl == strlen(want) + 3 && !memcmp(rq + rl - 19, "Bearer aa.bb.cc\r\n\r\n", 19));
	CHECK(parse_tokens(spaced, err, sizeof(err)) == -1 && W.ntok == 0 && strstr(err, "line 1"));
	tc.id = 0;
	rq = upgrade_request(&tc, &rl);   /* no tokens: the plain request */
	CHECK(rq == W.req && rl == W.req_len);
	/* --deflate: a 101's extension line found in any case; a message
	 * compressed as RFC 7692 says (raw, sync-flushed, 00 00 ff ff cut),
	 * whole and in two fragments, is inflated and counted as data; RSV1 on
	 * a continuation and data that does not inflate fail the connection */
	const char *h101 = "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-EXTENSIONS: permessage-deflate; "
			   "server_no_context_takeover\r\n\r\n";
	size_t evl = 0;
	const unsigned char *ev = extensions_value((const unsigned char *)h101, strlen(h101), &evl);
	CHECK(ev && evl == 47 && !memcmp(ev, " permessage-deflate;", 20));
	CHECK(!extensions_value((const unsigned char *)"HTTP/1.1 101 x\r\nUpgrade: websocket\r\n\r\n", 39, &evl));
	W.o.deflate = 1;
	W.zbuf = malloc(MAX_FRAME);
	W.zcache = calloc(ZCACHE, sizeof(*W.zcache));
	CHECK(W.zbuf && W.zcache && inflateInit2(&W.zin, -15) == Z_OK);
	static unsigned char zc[512];
	z_stream d = { 0 };
	CHECK(deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	d.next_in = (unsigned char *)env;
	d.avail_in = (uInt)strlen(env);
	d.next_out = zc;
	d.avail_out = sizeof(zc);
	CHECK(deflate(&d, Z_SYNC_FLUSH) == Z_OK && d.avail_in == 0);
	size_t zl = sizeof(zc) - d.avail_out;
	deflateEnd(&d);
	CHECK(zl > 4 && !memcmp(zc + zl - 4, "\x00\x00\xff\xff", 4));
	zl -= 4;
	static struct conn zcn;
	zcn.state = C_OPEN;
	zcn.fd = -1;
	uint64_t m0 = W.msgs, d0 = W.dups;
	on_frame(&zcn, 1, 0x1, 1, zc, zl, now_us());
	CHECK(W.msgs == m0 + 1 && W.deflated == 1 && W.inflated_bytes == strlen(env) && W.deflated_bytes == zl);
	CHECK(zcn.next_seq == 46);        /* "n":45 was parsed from the inflated text */
	on_frame(&zcn, 0, 0x1, 1, zc, 3, now_us());
	CHECK(W.msgs == m0 + 1 && zcn.frag_z && zcn.mfrag_len == 3);
	on_frame(&zcn, 1, 0x0, 0, zc + 3, zl - 3, now_us());
	CHECK(W.msgs == m0 + 2 && W.deflated == 2 && !zcn.frag_z && !zcn.mfrag && zcn.state == C_OPEN);
	CHECK(W.inflates == 1 && W.zcache_hits == 1);   /* the same bytes again: inflated once */
	CHECK(W.dups == d0 + 1);          /* the same "n" again */
	W.first_error[0] = '\0';
	on_frame(&zcn, 0, 0x1, 1, zc, 3, now_us());
	on_frame(&zcn, 1, 0x0, 1, zc + 3, zl - 3, now_us());
	CHECK(zcn.state == C_CLOSED && strstr(W.first_error, "RSV1 on a continuation"));
	static const unsigned char junk[] = { 0xff, 0xff, 0xff, 0xff };
	zcn = (struct conn){ .state = C_OPEN, .fd = -1 };
	W.first_error[0] = '\0';
	on_frame(&zcn, 1, 0x1, 1, junk, sizeof(junk), now_us());
	CHECK(zcn.state == C_CLOSED && strstr(W.first_error, "does not inflate") && W.deflated == 2);
	CHECK(W.zlast == strlen(env) && !memcmp(W.zbuf, env, W.zlast));   /* the last one inflated */
	CHECK(W.zsample_len == zl && !memcmp(W.zsample, zc, zl));
	W.o.deflate_level = 6;
	zlib_costs();                     /* compresses it again as the sender did: the same bytes */
	CHECK(W.zcost_us > 0 && W.zcost_out == zl && W.zcost_total_s >= 0.04);
	CHECK(W.icost_us > 0 && W.icost_total_s >= 0.04);
	W.msgs = W.dups = W.gaps = W.missing = 0;
	W.closed = 0;
	W.first_error[0] = '\0';
	W.o.deflate = 0;
	/* --sse: client i's key goes at the end of the query */
	W.req_len = (size_t)snprintf(W.req, sizeof(W.req), "GET /sse?channel=bench HTTP/1.1\r\nHost: h\r\n\r\n");
	W.req_key_at = 4 + strlen("/sse?channel=bench");
	W.o.keys = 4;
	CHECK(tokens_ready() == 0);
	tc.id = 6;
	rq = upgrade_request(&tc, &rl);
	want = "GET /sse?channel=bench&key=k2 HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK(rl == strlen(want) && !memcmp(rq, want, rl));
	W.o.keys = 0;
	W.req_key_at = 0;
	/* --sse: the answer's head: 200, text/event-stream, close-delimited */
	W.o.sse = 1;
	static struct conn se;
	const char *h200 = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n"
			   "Connection: close\r\n\r\nretry: 1000\n";
	size_t h200l = strlen(h200);
	se = (struct conn){ .state = C_HANDSHAKE, .fd = -1 };
	CHECK(parse_sse_head(&se, (const unsigned char *)h200, 40) == 0);
	CHECK(parse_sse_head(&se, (const unsigned char *)h200, h200l) == (ssize_t)(h200l - 12) && se.state == C_HANDSHAKE);
	const char *hbad[] = {
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	const char *hwhy[] = { "SSE request refused: HTTP/1.1 404 Not Found", "not text/event-stream", "not close-delimited" };
	for (int i = 0; i < 3; i++) {
		se = (struct conn){ .state = C_HANDSHAKE, .fd = -1 };
		W.first_error[0] = '\0';
		CHECK(parse_sse_head(&se, (const unsigned char *)hbad[i], strlen(hbad[i])) == -1 && se.state == C_FAILED &&
		      strstr(W.first_error, hwhy[i]));
	}
	CHECK(W.refused == 1 && W.failed == 3);
	W.refused = 0;
	W.failed = 0;
	W.in_flight = 0;
	W.t_connected = 0;
	/* --sse: a stream in pieces of every size from 1 to 8 bytes and some
	 * longer: the start block, heartbeats (with and without a position),
	 * data events (one with CRLF, no space after the colon; one after a
	 * record left out: a gap), a snapshot, an error, an unknown field, an
	 * event that is not a produce.c record, one without an id */
	char stream[4096], ev_[4][200];
	int64_t tnow = now_us();
	for (int i = 0; i < 4; i++)
		snprintf(ev_[i], sizeof(ev_[i]), "{\"type\":\"bench\",\"seq\":%d,\"data\":{\"pad\":\"x\",\"ts_us\":%" PRId64
			 ",\"n\":%d,\"k\":0,\"kn\":%d}}", i + 1, tnow - 2000, (int[]){ 1, 2, 4, 5 }[i], (int[]){ 1, 2, 4, 5 }[i]);
	size_t sl = (size_t)snprintf(stream, sizeof(stream),
		"retry: 1000\nid: AAA\n\n: keep-alive\nid: BBB\n\n"
		"id: CCC\nevent: bench\ndata: %s\n\n: keep-alive\n\n"
		"id: DDD\r\nevent: bench\r\ndata:%s\r\n\r\n"
		"event: snapshot\ndata: {\"type\":\"snapshot\",\"channel\":\"bench\",\"data\":{}}\n\n"
		"id: EEE\nevent: bench\ndata: %s\n\n"
		"x-unknown: 1\n\nevent: error\ndata: {\"type\":\"error\",\"code\":\"SLOW_CONSUMER\"}\n\n"
		"id: FFF\nevent: trade_data\ndata: {\"symbol\":\"BTC/USDT\",\"price\":1}\n\n"
		"event: bench\ndata: %s\n\nid: GG",
		ev_[0], ev_[1], ev_[2], ev_[3]);
	int sse_ok = 1;
	memset(&W.lat, 0, sizeof(W.lat));
	W.first_error[0] = '\0';
	for (size_t step = 1; step <= sl; step += step < 8 ? 1 : 61) {
		static unsigned char acc[4096];
		size_t have = 0;
		uint64_t lat0 = W.lat.count;
		W.msgs = W.gaps = W.missing = W.dups = W.bytes = W.other = W.server_errors = 0;
		W.sse_ids = W.sse_id_only = W.sse_comments = W.sse_retry = W.sse_snapshots = W.sse_no_ts = W.sse_bad = 0;
		se = (struct conn){ .state = C_OPEN, .fd = -1 };
		for (size_t at = 0; at < sl;) {
			size_t piece = sl - at < step ? sl - at : step;
			memcpy(acc + have, stream + at, piece);
			have += piece;
			at += piece;
			ssize_t used = parse_sse(&se, acc, have, now_us());
			if (used < 0) { sse_ok = 0; break; }
			memmove(acc, acc + used, have - (size_t)used);
			have -= (size_t)used;
		}
		if (!(W.msgs == 5 && se.msgs == 5 && W.lat.count == lat0 + 4 && W.sse_no_ts == 1 && W.sse_bad == 1 &&
		      W.gaps == 1 && W.missing == 1 && W.dups == 0 && se.next_seq == 6 && W.sse_id_only == 2 &&
		      W.sse_comments == 2 && W.sse_retry == 1 && W.sse_ids == 6 && W.sse_snapshots == 1 &&
		      W.server_errors == 1 && W.other == 1 && W.bytes == sl - 6 && have == 6 && se.sse_blk == 0)) {
			fprintf(stderr, "--sse: pieces of %zu bytes: msgs %" PRIu64 " gaps %" PRIu64 " ids %" PRIu64
				" id-only %" PRIu64 " bad %" PRIu64 " bytes %" PRIu64 "\n", step, W.msgs, W.gaps, W.sse_ids,
				W.sse_id_only, W.sse_bad, W.bytes);
			sse_ok = 0;
			break;
		}
	}
	CHECK(sse_ok);
	CHECK(W.lat.min >= 2000 && W.lat.max < 1000000);   /* ts_us came through: about 2 ms */
	CHECK(strstr(W.first_error, "event: error {\"type\":\"error\",\"code\":\"SLOW_CONSUMER\"}"));
	W.msgs = W.gaps = W.missing = W.dups = W.bytes = W.other = W.server_errors = 0;
	W.first_error[0] = '\0';
	W.o.sse = 0;

	/* --publish: answers told apart and matched by id, whichever JSON type it has */
	struct pub_answer pa;
#define PA(text) pub_parse((const unsigned char *)(text), sizeof(text) - 1, &pa)
	PA("{\"type\":\"ack\",\"action\":\"publish\",\"id\":\"17\",\"channel\":\"c\",\"topic\":\"t\",\"partition\":0,\"offset\":42}");
	CHECK(pa.kind == PA_ACK && pa.id == 17 && pa.has_offset);
	PA("{\"type\":\"ack\",\"action\":\"publish\",\"id\":9,\"topic\":\"t\",\"partition\":0}");
	CHECK(pa.kind == PA_ACK && pa.id == 9 && !pa.has_offset);
	PA("{\"type\":\"error\",\"code\":\"RATE_LIMITED\",\"message\":\"64 in flight\",\"id\":\"3\"}");
	CHECK(pa.kind == PA_RATE_LIMITED && pa.id == 3);
	PA("{\"type\":\"error\",\"code\":\"PUBLISH_FAILED\",\"message\":\"timed out\",\"id\":\"4\"}");
	CHECK(pa.kind == PA_FAILED && pa.id == 4);
	PA("{\"type\":\"error\",\"code\":\"UNKNOWN_CHANNEL\",\"message\":\"x\"}");
	CHECK(pa.kind == PA_ERROR && pa.id == 0);
	PA("{\"type\":\"pong\"}");
	CHECK(pa.kind == PA_OTHER);
	PA("{\"type\":\"ack\",\"id\":\"x\"}");
	CHECK(pa.kind == PA_ACK && pa.id == 0);
#undef PA
	/* a client's schedule over a socket pair: 50 ms at 100/s, 5 publishes
	 * due and sent at once (the schedule began 100 ms ago), their frames
	 * unmasked and read back; then answers: an ack matched, the same ack
	 * again and an id never sent unmatched, an error counted */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct conn pc = { .fd = sv[0], .state = C_OPEN, .id = 7 };
	W.conns = &pc;
	W.o.clients = 1; W.o.pub_rate = 100; W.o.pub_size = 100;
	W.nch = 1; W.chans[0].s = "pub"; W.chans[0].l = 3;
	W.pub_t0 = now_us() - 100000; W.pub_end = W.pub_t0 + 50000;
	pub_tick(now_us());
	CHECK(W.published == 5 && pc.pub_seq == 5 && W.send_lag.count == 5 && W.send_lag.min >= 50000);
	unsigned char fb[4096];
	ssize_t fl = read(sv[1], fb, sizeof(fb));
	int frames_ok = fl > 0;
	for (size_t o = 0, fi = 0; frames_ok && o < (size_t)fl; fi++) {
		size_t plen = fb[o + 1] & 0x7f, hl = 6;
		if (plen == 126) { plen = (size_t)fb[o + 2] << 8 | fb[o + 3]; hl = 8; }
		unsigned char *m = fb + o + hl - 4, *pq = fb + o + hl;
		for (size_t x = 0; x < plen; x++) pq[x] ^= m[x & 3];
		char head[80];
		snprintf(head, sizeof(head), "{\"type\":\"publish\",\"channel\":\"pub\",\"key\":\"k7\",\"id\":\"%zu\",", fi + 1);
		uint64_t fts, fn, fk, fkn;
		const unsigned char *dat = memmem(pq, plen, "\"data\":", 7);
		frames_ok = fb[o] == 0x81 && !memcmp(pq, head, strlen(head)) && dat &&
			    pq + plen - (dat + 7) == 100 + 1 &&       /* the data (100 B) and the closing brace */
			    parse_fields(pq, plen, &fts, &fn, &fk, &fkn) == 0 && fk == 7 && fkn == fi + 1;
		o += hl + plen;
	}
	CHECK(frames_ok);
	pub_tick(now_us());
	CHECK(W.published == 5);            /* the schedule is over */
	int64_t t_ack = pc.pub_sent[2] + 1500;
#define ANSWER(text) on_pub_answer(&pc, (const unsigned char *)(text), sizeof(text) - 1, t_ack)
	ANSWER("{\"type\":\"ack\",\"action\":\"publish\",\"id\":\"2\",\"channel\":\"pub\",\"offset\":7}");
	ANSWER("{\"type\":\"ack\",\"action\":\"publish\",\"id\":\"2\",\"channel\":\"pub\",\"offset\":7}");
	ANSWER("{\"type\":\"ack\",\"action\":\"publish\",\"id\":\"6\",\"offset\":8}");
	ANSWER("{\"type\":\"error\",\"code\":\"RATE_LIMITED\",\"message\":\"m\",\"id\":\"3\"}");
#undef ANSWER
	CHECK(W.pub_acked == 1 && W.ack_lat.count == 1 && W.ack_lat.min == 1500 && W.pub_unmatched == 2 &&
	      W.pub_rate_limited == 1 && W.pub_answered == 2 && W.pub_no_offset == 0);
	CHECK(!pub_done(now_us()));         /* 3 of 5 unanswered, --ack-wait (15 s) not over */
	close(sv[0]); close(sv[1]);
	free(pc.pub_sent);
	W.conns = NULL;
	W.o.pub_rate = 0; W.o.clients = 10; W.nch = 0;
	W.pub_t0 = W.pub_end = 0;
	W.published = W.pub_answered = W.pub_acked = W.pub_unmatched = W.pub_rate_limited = 0;
	W.acks = W.server_errors = 0;
	W.first_error[0] = '\0';
#undef CHECK
	printf("wsload self-test: %d passed, %d failed\n", pass, fail);
	return fail ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: wsload --port P [options]\n"
		"  --host ADDR        server address (default 127.0.0.1)\n"
		"  --path PATH        upgrade path (default /ws; /sse with --sse)\n"
		"  --clients N        connections (default 10)\n"
		"  --inflight N       connections handshaking at once (default 256)\n"
		"  --channel LIST     channel(s) to subscribe to, comma-separated (default bench);\n"
		"                     several: \"channels\":[...], each key's \"kn\" checked\n"
		"  --keys K           keyed: client i subscribes to key k<i%%K> and checks \"kn\"\n"
		"  --subscribe TMPL   subscribe message; {channel} (the first) {channels} {key}\n"
		"                     {id} are replaced\n"
		"  --no-ack           the server does not answer subscribe\n"
		"  --no-subscribe     upgrade only (idle clients that subscribe to nothing)\n"
		"  --seq-any          a client's first message sets its sequence baseline\n"
		"  --format F         json (default) or msgpack: ?format=msgpack on the upgrade,\n"
		"                     server messages parsed as MessagePack\n"
		"  --interval MS      conflation: \"interval\":MS on subscribe (or {interval} in\n"
		"                     --subscribe; without it ?interval=MS on the upgrade); no\n"
		"                     gap check, per-key order and newest-value checks instead\n"
		"  --state TYPE       the state dialect: ?type=TYPE (web, tui) on the upgrade;\n"
		"                     counts snapshots and updates, checks each key's \"kn\",\n"
		"                     the age of each \"ts_us\" carried (--interval: ?interval=MS)\n"
		"  --tokens FILE      one token a line: client i sends line i %% lines as\n"
		"                     Authorization: Bearer on its upgrade\n"
		"  --tls              wss: TLS on every connection (no certificate check)\n"
		"  --ca FILE          with --tls: verify the server's certificate against FILE\n"
		"                     (and that it names --host)\n"
		"  --deflate          offer permessage-deflate (RFC 7692) on every upgrade, require\n"
		"                     the 101 to accept it, inflate each compressed message; at\n"
		"                     the end, time compressing the last one (\"deflate_cost\")\n"
		"  --deflate-level L  zlib level of that timing (default 6: zlib's default)\n"
		"  --no-inflate-cache inflate every compressed message, even bytes inflated before\n"
		"  --sse              Server-Sent Events: GET PATH?channel(s)=...[&key=k<i%%K>]\n"
		"                     [&interval=MS], a 200 text/event-stream, each data event\n"
		"                     one delivery (its data line checked as a message)\n"
		"  --per-key          one channel, but each key's \"kn\" checked (readers of --publish)\n"
		"  --publish R        publishers: no subscribe; each client publishes R records/s\n"
		"                     on the first --channel (key k<i>, id \"<seq>\"), from\n"
		"                     \"publish S\" on stdin (or ready, for --duration) for S s;\n"
		"                     acks matched by id (ack latency), errors counted by code\n"
		"  --size S           --publish: bytes of each record's data (default 100, max 512)\n"
		"  --ack-wait S       --publish: wait at most S s after publishing for answers (15)\n"
		"  --src-addrs N      spread over 127.0.0.1..N (more are taken when ports run out)\n"
		"  --duration S       after all are subscribed, run S seconds then finish\n"
		"  --expect N         finish once N data messages arrived in total\n"
		"  --quiet MS         finish when no data came for MS (after the first)\n"
		"  --control          read commands on stdin (stop; drain EXPECT QUIET_MS MAX_MS;\n"
		"                     publish SECONDS)\n"
		"  --timeout S        hard bound on the whole run (default 600)\n"
		"  --self-test        check the histogram and payload parser, then exit\n"
		"Prints {\"event\":\"ready\",...} once every client is subscribed (or failed)\n"
		"and {\"event\":\"result\",...} at the end, one JSON object per line.\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	struct opts *o = &W.o;
	*o = (struct opts){ .host = "127.0.0.1", .channel = "bench", .clients = 10,
			    .inflight = 256, .src_addrs = 1, .timeout = 600, .deflate_level = 6,
			    .pub_size = 100, .ack_wait = 15 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
		if (!strcmp(a, "--self-test")) exit(self_test());
		else if (!strcmp(a, "--no-ack")) o->no_ack = 1;
		else if (!strcmp(a, "--no-subscribe")) o->no_subscribe = 1;
		else if (!strcmp(a, "--seq-any")) o->seq_any = 1;
		else if (!strcmp(a, "--control")) o->control = 1;
		else if (!strcmp(a, "--tls")) o->tls = 1;
		else if (!strcmp(a, "--deflate")) o->deflate = 1;
		else if (!strcmp(a, "--sse")) o->sse = 1;
		else if (!strcmp(a, "--per-key")) o->per_key = 1;
		else if (ARG("--publish")) o->pub_rate = atoi(v);
		else if (ARG("--size")) o->pub_size = atoi(v);
		else if (ARG("--ack-wait")) o->ack_wait = atof(v);
		else if (ARG("--deflate-level")) o->deflate_level = atoi(v);
		else if (!strcmp(a, "--no-inflate-cache")) o->no_zcache = 1;
		else if (ARG("--ca")) { o->ca = v; o->tls = 1; }
		else if (ARG("--host")) o->host = v;
		else if (ARG("--port")) o->port = atoi(v);
		else if (ARG("--path")) o->path = v;
		else if (ARG("--clients")) o->clients = atoi(v);
		else if (ARG("--inflight")) o->inflight = atoi(v);
		else if (ARG("--channel")) o->channel = v;
		else if (ARG("--keys")) o->keys = atoi(v);
		else if (ARG("--subscribe")) o->sub_tmpl = v;
		else if (ARG("--src-addrs")) o->src_addrs = atoi(v);
		else if (ARG("--duration")) o->duration = atof(v);
		else if (ARG("--expect")) o->expect = strtoull(v, NULL, 10);
		else if (ARG("--quiet")) o->quiet_ms = atoi(v);
		else if (ARG("--timeout")) o->timeout = atof(v);
		else if (ARG("--interval")) o->interval_ms = atoi(v);
		else if (ARG("--state")) o->state = v;
		else if (ARG("--tokens")) o->tokens = v;
		else if (ARG("--format")) {
			if (!strcmp(v, "msgpack")) o->msgpack = 1;
			else if (!strcmp(v, "json")) o->msgpack = 0;
			else { fprintf(stderr, "wsload: --format json|msgpack\n"); usage(); }
		}
		else { fprintf(stderr, "wsload: unknown or incomplete option %s\n", a); usage(); }
#undef ARG
	}
	if (o->port <= 0 || o->port > 65535 || o->clients <= 0 || o->inflight <= 0 ||
	    o->src_addrs < 1 || o->src_addrs > MAX_SOURCES || o->keys < 0 || o->interval_ms < 0 ||
	    o->deflate_level < 0 || o->deflate_level > 9)
		usage();
	if (o->sse && (o->msgpack || o->state || o->deflate || o->sub_tmpl || o->no_ack || o->no_subscribe)) {
		fprintf(stderr, "wsload: --sse takes no --format msgpack, --state, --deflate, --subscribe, --no-ack, --no-subscribe\n");
		usage();
	}
	if (o->pub_rate < 0 || o->pub_size < 0 || o->pub_size > PUB_MAX_SIZE || o->ack_wait < 0) usage();
	if (o->pub_rate && (o->sse || o->state || o->msgpack || o->sub_tmpl)) {
		fprintf(stderr, "wsload: --publish takes no --sse, --state, --format msgpack, --subscribe\n");
		usage();
	}
	if (o->pub_rate) o->no_subscribe = 1;       /* publishers read no channel */
	if (!o->path) o->path = o->sse ? "/sse" : "/ws";
	/* --channel A,B,...: the names, each its own string */
	char *names = strdup(o->channel);
	for (char *save = NULL, *t = names ? strtok_r(names, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
		if (W.nch == MAX_CHANNELS) { fprintf(stderr, "wsload: at most %d channels\n", MAX_CHANNELS); usage(); }
		W.chans[W.nch].s = t;
		W.chans[W.nch++].l = strlen(t);
	}
	if (!W.nch) usage();
	if (o->state) {
		for (const char *s = o->state; *s; s++)
			if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) { fprintf(stderr, "wsload: --state web|tui\n"); usage(); }
		o->period_ms = o->interval_ms ? o->interval_ms : !strcmp(o->state, "tui") ? 100 : 250;
		if (o->keys) { fprintf(stderr, "wsload: --state takes no --keys\n"); usage(); }
	}
	/* The state dialect and several channels subscribe with "channels";
	 * the state dialect takes its period on the upgrade only. */
	if (!o->sub_tmpl && (o->state || W.nch > 1) && !o->keys)
		o->sub_tmpl = o->interval_ms && !o->state
			? "{\"type\":\"subscribe\",\"channels\":[{channels}],\"interval\":{interval}}"
			: "{\"type\":\"subscribe\",\"channels\":[{channels}]}";
	if (!o->sub_tmpl && o->interval_ms)
		o->sub_tmpl = o->keys > 0 ? "{\"type\":\"subscribe\",\"channel\":\"{channel}\",\"key\":\"{key}\",\"interval\":{interval}}"
					  : "{\"type\":\"subscribe\",\"channel\":\"{channel}\",\"interval\":{interval}}";
	if (!o->sub_tmpl)
		o->sub_tmpl = o->keys > 0 ? "{\"type\":\"subscribe\",\"channel\":\"{channel}\",\"key\":\"{key}\"}"
					  : "{\"type\":\"subscribe\",\"channel\":\"{channel}\"}";
}

/* --tls: one client context for every connection. No session is kept or
 * offered (each handshake is a full one); buffers are released while a
 * connection is idle, so 10,000 idle clients stay small here too. */
static int tls_setup(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) { fprintf(stderr, "wsload: SSL_CTX_new failed\n"); return -1; }
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	if (W.o.ca) {
		if (SSL_CTX_load_verify_locations(ctx, W.o.ca, NULL) != 1) {
			fprintf(stderr, "wsload: --ca %s: cannot load it\n", W.o.ca);
			return -1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, W.o.host) != 1) {
			fprintf(stderr, "wsload: --host %s: not an IP address to verify\n", W.o.host);
			return -1;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	W.tls_ctx = ctx;
	return 0;
}

static void raise_nofile(int need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)need)
		fprintf(stderr, "wsload: RLIMIT_NOFILE is %llu, %d connections need more: raise ulimit -n\n",
			(unsigned long long)rl.rlim_cur, need);
}

/* Whether the run is over; also prints the ready line once. */
static int finished(int64_t now)
{
	if (W.stop) return 1;
	if (now - W.t0 > (int64_t)(W.o.timeout * 1e6)) { note_error("--timeout reached"); return 1; }
	if (!W.t_ready) {
		if (W.subscribed + W.failed < W.o.clients) return 0;   /* closed ones were subscribed */
		W.t_ready = now;
		if (W.o.pub_rate && !W.o.control) pub_start(W.o.duration > 0 ? W.o.duration : 10);
		else if (W.o.duration > 0) W.t_done_deadline = now + (int64_t)(W.o.duration * 1e6);
	}
	if (!W.ready_printed) { W.ready_printed = 1; print_ready(); }
	if (W.subscribed + W.closed > 0 && W.closed + W.failed == W.o.clients) return 1;   /* nobody left */
	if (W.t_done_deadline && now >= W.t_done_deadline) return 1;
	if (pub_done(now)) return 1;
	/* the state dialect counts values carried (each key's new "kn"), not messages */
	uint64_t got = W.o.state ? W.values : W.msgs;
	if (W.o.expect && got >= W.o.expect) return 1;
	if (W.o.quiet_ms && W.t_last && now - W.t_last >= (int64_t)W.o.quiet_ms * 1000) return 1;
	if (W.draining) {
		if (W.drain_expect && got >= W.drain_expect) return 1;
		if (now >= W.drain_deadline) return 1;
		int64_t since = now - (W.t_last > W.t_ready ? W.t_last : W.t_ready);
		if (W.drain_quiet_us && since >= W.drain_quiet_us) return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(W.o.clients + 64);
	W.rng = (uint64_t)now_us() | 1;
	W.rbuf = malloc(READ_BUF);
	W.conns = calloc((size_t)W.o.clients, sizeof(*W.conns));
	W.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!W.rbuf || !W.conns || W.ep < 0) { fprintf(stderr, "wsload: out of memory\n"); return 1; }
	for (int i = 0; i < W.o.clients; i++) W.conns[i] = (struct conn){ .fd = -1, .id = (uint32_t)i };
	if (W.o.control) {
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		if (epoll_ctl(W.ep, EPOLL_CTL_ADD, 0, &ev) < 0) { perror("wsload: stdin"); return 1; }
	}

	/* The path, plus format=msgpack, plus interval=MS when the subscribe
	 * template has no {interval} to carry it. */
	char path[600];
	int pl = snprintf(path, sizeof(path), "%s", W.o.path);
	if (W.o.state && pl > 0 && (size_t)pl < sizeof(path))
		pl += snprintf(path + pl, sizeof(path) - (size_t)pl, "%ctype=%s", strchr(path, '?') ? '&' : '?', W.o.state);
	if (W.o.msgpack && pl > 0 && (size_t)pl < sizeof(path))
		pl += snprintf(path + pl, sizeof(path) - (size_t)pl, "%cformat=msgpack", strchr(path, '?') ? '&' : '?');
	if (W.o.interval_ms && !strstr(W.o.sub_tmpl, "{interval}") && pl > 0 && (size_t)pl < sizeof(path))
		pl += snprintf(path + pl, sizeof(path) - (size_t)pl, "%cinterval=%d", strchr(path, '?') ? '&' : '?',
			       W.o.interval_ms);
	if (W.o.sse) {
		/* --sse: the channels and conflation in the query (no subscribe
		 * message); client i's key, with --keys, appended per connection */
		pl = snprintf(path, sizeof(path), "%s%c%s=%s", W.o.path, strchr(W.o.path, '?') ? '&' : '?',
			      W.nch > 1 ? "channels" : "channel", W.o.channel);
		if (W.o.interval_ms && pl > 0 && (size_t)pl < sizeof(path))
			pl += snprintf(path + pl, sizeof(path) - (size_t)pl, "&interval=%d", W.o.interval_ms);
	}
	if (pl < 0 || (size_t)pl >= sizeof(path)) { fprintf(stderr, "wsload: --path too long\n"); return 2; }
	if (W.o.sse)
		W.req_len = (size_t)snprintf(W.req, sizeof(W.req),
			"GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
			path, W.o.host, W.o.port);
	else
		W.req_len = (size_t)snprintf(W.req, sizeof(W.req),
			"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
			path, W.o.host, W.o.port,
			W.o.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
	if (W.req_len >= sizeof(W.req)) { fprintf(stderr, "wsload: --path too long\n"); return 2; }
	if (W.o.sse && W.o.keys > 0) W.req_key_at = 4 + (size_t)pl;     /* after "GET " and the query */
	if (W.o.tokens && load_tokens(W.o.tokens) < 0) return 2;
	if ((W.ntok || W.req_key_at) && tokens_ready() < 0) return 2;
	if (W.o.tls && tls_setup() < 0) return 2;
	if (W.o.deflate && (!(W.zbuf = malloc(MAX_FRAME)) || inflateInit2(&W.zin, -15) != Z_OK ||
			    (!W.o.no_zcache && !(W.zcache = calloc(ZCACHE, sizeof(*W.zcache)))))) {
		fprintf(stderr, "wsload: --deflate: cannot set up zlib\n");
		return 2;
	}

	W.t0 = now_us();
	start_more();
	struct epoll_event evs[EVENTS];
	while (!finished(now_us())) {
		/* publishing: a turn at least every millisecond, to keep the schedule */
		int n = epoll_wait(W.ep, evs, EVENTS, W.pub_t0 && !pub_done(now_us()) ? 1 : 20);
		if (n < 0 && errno != EINTR) { perror("wsload: epoll_wait"); break; }
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) { on_stdin(); continue; }
			if (c->fd < 0) continue;
			uint32_t e = evs[i].events;
			if (c->state == C_CONNECTING) {
				if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
				continue;
			}
			if (c->state == C_TLS) { tls_handshake(c); continue; }
			int wantw = c->tls_wantw;
			if ((e & EPOLLOUT) && c->out_len) flush_out(c);
			if (c->fd >= 0 && ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) || (wantw && !c->out_len && (e & EPOLLOUT))))
				on_readable(c);
		}
		start_more();
		if (W.o.pub_rate) pub_tick(now_us());
	}
	if (!W.ready_printed) { W.t_ready = W.t_ready ? W.t_ready : now_us(); print_ready(); }
	if (W.o.deflate) zlib_costs();
	print_result();
	return 0;
}
