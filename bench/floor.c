/* floor.c - the reference sender of kbridge's benchmarks (bench/README.md,
 * "The floor rows"): what the machine costs to deliver the bench's data
 * messages to wsload's clients with no Kafka and no per-record work.
 * One thread, one epoll set, non-blocking sockets. It accepts the
 * WebSocket clients bench/wsload.c makes (the upgrade answered with a
 * computed Sec-WebSocket-Accept, SHA-1 from libcrypto), answers each
 * subscribe with an ack (the key of a keyed subscribe, "key":"k<N>", is
 * the one field read), then makes its own records at --rate on
 * bench/produce.c's schedule (record j due at start + j/R, everything due
 * made at once on a --tick-us wake-up), each record's frame built once:
 * the same text frame kbridge sends, its envelope around produce.c's
 * stream payload of exactly --size bytes,
 *   {"type":<channel>,"channel":..,"key":"k<K>","seq":..,"topic":..,
 *    "partition":0,"offset":..,"timestamp":"..Z","data":{"pad":"xx..",
 *    "ts_us":..,"n":..,"k":..,"kn":..}}
 * so wsload's latency and sequence checks work unchanged.
 *   --mode fanout  every subscriber gets every record: per tick, one
 *                  write() per client carrying every frame due this tick
 *   --mode keyed   record j has key j % K; each of the key's subscribers
 *                  gets its frame by a write() of its own as it is made
 * A write the socket does not take whole waits in the client's backlog
 * (EPOLLOUT) and later frames queue behind it; a backlog past 16 MiB
 * closes the client (slow_closed).
 * --control: stdin takes "go" (start the records) and "quit"; EOF quits.
 * Prints {"event":"listening","port":P}, {"event":"start",...} when the
 * clock starts and {"event":"result",...} after the last record, one JSON
 * object per line (the start and result lines have produce.c's fields). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "benchclock.h"
#include "benchctl.h"

#define MAX_IN       8192          /* a client's unparsed input: upgrade head, small frames */
#define MAX_BACKLOG  (16u << 20)   /* a client's unsent output before it is closed */
#define MAX_BATCH    4096          /* records made in one go (one write per client each) */
#define MAX_SIZE     16384         /* --size at most (a frame then stays below 64 KiB) */
#define EVENTS       1024
#define NO_KEY       UINT32_MAX
#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   /* RFC 6455 §1.3 */

enum conn_state { C_FREE, C_HEAD, C_WS, C_SUB };

struct conn {
	uint8_t state;          /* enum conn_state */
	uint8_t closing;        /* close frame sent: drop after the backlog */
	uint32_t key;           /* keyed subscribe's key index; NO_KEY: all */
	int32_t next_key;       /* next subscriber of the same key (fd), -1: none */
	uint32_t sub_pos;       /* index in F.subs */
	uint32_t in_len;
	uint32_t out_off, out_len, out_cap;
	unsigned char *in;      /* unparsed input; NULL when none */
	unsigned char *out;     /* backlog; NULL when none */
};

static struct {
	/* options */
	const char *host, *channel, *topic;
	int port, keyed, control, max_clients;
	double rate, duration;
	long size, keys, tick_us;
	/* state */
	int ep, lfd, tfd;
	struct conn *conns;     /* indexed by fd */
	int nconns;             /* size of conns */
	int32_t *subs;          /* subscribed fds, in order of subscription */
	uint32_t nsubs;
	int32_t *key_head;      /* keyed: first subscriber of each key (fd), -1: none */
	uint64_t *kn;           /* per-key sequence */
	unsigned char *batch;   /* the frames of one go */
	size_t batch_cap;
	int started, done, quit;
	uint64_t total, n;
	int64_t start_mono, start_wall, end_wall;
	/* counters */
	uint64_t deliveries, writes, data_writes, partial, bytes, slow_closed, accepted, upgraded, subscribed, closed;
	uint64_t backlog_max;
	struct benchctl ctl;         /* --control: commands on stdin */
} F;

static volatile sig_atomic_t stop_signal;

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

/* ---- connections ---------------------------------------------------------- */

static int pending(const struct conn *c)
{
	return c->out_len > c->out_off;
}

static void set_events(int fd, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | (pending(c) ? EPOLLOUT : 0u), .data.fd = fd };
	epoll_ctl(F.ep, EPOLL_CTL_MOD, fd, &ev);
}

static void unsubscribe(int fd, struct conn *c)
{
	if (c->state != C_SUB) return;
	uint32_t last = --F.nsubs;
	if (c->sub_pos != last) {
		F.subs[c->sub_pos] = F.subs[last];
		F.conns[F.subs[last]].sub_pos = c->sub_pos;
	}
	if (F.keyed && c->key != NO_KEY && c->key < (uint32_t)F.keys) {
		int32_t *p = &F.key_head[c->key];
		while (*p >= 0 && *p != fd) p = &F.conns[*p].next_key;
		if (*p == fd) *p = c->next_key;
	}
}

static void conn_close(int fd)
{
	struct conn *c = &F.conns[fd];
	if (c->state == C_FREE) return;
	unsubscribe(fd, c);
	if (c->state >= C_WS) F.closed++;
	free(c->in);
	free(c->out);
	*c = (struct conn){ .state = C_FREE, .next_key = -1 };
	close(fd);
}

/* Appends to the backlog; closes a client whose backlog outgrows the bound.
 * Returns -1 when it closed the client. */
static int backlog(int fd, struct conn *c, const unsigned char *p, size_t len)
{
	if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
	if ((size_t)(c->out_len - c->out_off) + len > MAX_BACKLOG) {
		F.slow_closed++;
		conn_close(fd);
		return -1;
	}
	if ((size_t)c->out_len + len > c->out_cap) {
		if (c->out_off) {       /* move what is left to the front first */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < (size_t)c->out_len + len) cap *= 2;
		unsigned char *o = realloc(c->out, cap);
		if (!o) { conn_close(fd); return -1; }
		c->out = o;
		c->out_cap = (uint32_t)cap;
	}
	int was_empty = !pending(c);
	memcpy(c->out + c->out_len, p, len);
	c->out_len += (uint32_t)len;
	if (c->out_len - c->out_off > F.backlog_max) F.backlog_max = c->out_len - c->out_off;
	if (was_empty) set_events(fd, c);
	return 0;
}

/* One write() of len bytes to client fd, or behind its backlog. */
static void send_bytes(int fd, const unsigned char *p, size_t len)
{
	struct conn *c = &F.conns[fd];
	F.bytes += len;
	if (pending(c)) { backlog(fd, c, p, len); return; }
	ssize_t w = write(fd, p, len);
	F.writes++;
	if (w == (ssize_t)len) return;
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) { conn_close(fd); return; }
		w = 0;
	}
	F.partial++;
	backlog(fd, c, p + w, len - (size_t)w);
}

static void flush_backlog(int fd, struct conn *c)
{
	ssize_t w = write(fd, c->out + c->out_off, c->out_len - c->out_off);
	F.writes++;
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) conn_close(fd);
		return;
	}
	c->out_off += (uint32_t)w;
	if (c->out_off < c->out_len) return;
	c->out_off = c->out_len = 0;
	if (c->closing) { conn_close(fd); return; }
	if (c->out_cap > 65536) {       /* a burst's buffer goes back */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	set_events(fd, c);
}

/* An unmasked server frame of op with payload p. */
static void send_frame(int fd, int op, const void *p, size_t len)
{
	unsigned char h[4 + 125 + 200];
	if (len > sizeof(h) - 4) return;
	size_t hl = 2;
	h[0] = (unsigned char)(0x80 | op);
	if (len < 126) {
		h[1] = (unsigned char)len;
	} else {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	}
	memcpy(h + hl, p, len);
	send_bytes(fd, h, hl + len);
}

/* The 101 for an upgrade request (RFC 6455 §4.2.2): the key's SHA-1 with
 * the GUID, in base64. Anything else gets a 200 and is closed (a readiness
 * probe). Returns the head's length, 0 when more is needed, -1 when closed. */
static ssize_t on_head(int fd, const unsigned char *b, size_t len)
{
	const unsigned char *e = memmem(b, len, "\r\n\r\n", 4);
	if (!e) {
		if (len >= MAX_IN) { conn_close(fd); return -1; }
		return 0;
	}
	size_t hl = (size_t)(e - b) + 4;
	const unsigned char *k = NULL;
	for (const unsigned char *l = b; l < e; ) {
		const unsigned char *eol = memmem(l, (size_t)(e - l) + 2, "\r\n", 2);
		if (eol - l > 18 && !strncasecmp((const char *)l, "Sec-WebSocket-Key:", 18)) { k = l + 18; break; }
		l = eol + 2;
	}
	if (!k) {
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nfloor\n";
		F.conns[fd].closing = 1;
		send_bytes(fd, (const unsigned char *)ok, sizeof(ok) - 1);
		if (F.conns[fd].state != C_FREE && !pending(&F.conns[fd])) conn_close(fd);
		return -1;
	}
	while (*k == ' ' || *k == '\t') k++;
	const unsigned char *ke = memchr(k, '\r', (size_t)(e + 2 - k));
	while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
	char cat[128 + sizeof(WS_GUID)];
	size_t kl = (size_t)(ke - k);
	if (kl == 0 || kl > 128) { conn_close(fd); return -1; }
	memcpy(cat, k, kl);
	memcpy(cat + kl, WS_GUID, sizeof(WS_GUID) - 1);
	unsigned char dg[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)cat, kl + sizeof(WS_GUID) - 1, dg);
	unsigned char acc[32];
	EVP_EncodeBlock(acc, dg, SHA_DIGEST_LENGTH);
	char resp[256];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n", (const char *)acc);
	F.conns[fd].state = C_WS;
	F.upgraded++;
	send_bytes(fd, (const unsigned char *)resp, (size_t)n);
	return F.conns[fd].state == C_FREE ? -1 : (ssize_t)hl;
}

/* A subscribe: the first text message. Keyed mode reads "key":"k<N>". */
static void on_subscribe(int fd, struct conn *c, const unsigned char *p, size_t len)
{
	char ack[200];
	uint32_t key = NO_KEY;
	const unsigned char *q = memmem(p, len, "\"key\":\"k", 8);
	if (q) {
		q += 8;
		uint64_t v = 0;
		int digits = 0;
		while (q < p + len && *q >= '0' && *q <= '9' && digits < 10) v = v * 10 + (uint64_t)(*q++ - '0'), digits++;
		if (digits && v < UINT32_MAX) key = (uint32_t)v;
	}
	int n = key == NO_KEY
		? snprintf(ack, sizeof(ack), "{\"type\":\"ack\",\"action\":\"subscribe\",\"channels\":[\"%s\"],"
			   "\"subscription\":{}}", F.channel)
		: snprintf(ack, sizeof(ack), "{\"type\":\"ack\",\"action\":\"subscribe\",\"channels\":[\"%s\"],"
			   "\"subscription\":{\"keys\":[\"k%u\"]}}", F.channel, key);
	send_frame(fd, 0x1, ack, n > 0 && (size_t)n < sizeof(ack) ? (size_t)n : 0);
	if (c->state != C_WS) return;           /* closed meanwhile, or subscribed already */
	c->state = C_SUB;
	c->key = key;
	c->sub_pos = F.nsubs;
	F.subs[F.nsubs++] = fd;
	F.subscribed++;
	if (F.keyed && key != NO_KEY && key < (uint32_t)F.keys) {
		c->next_key = F.key_head[key];
		F.key_head[key] = fd;
	}
}

/* Client frames (masked, RFC 6455 §5.3): text is a subscribe (later ones
 * are acked and otherwise ignored), ping gets a pong, close is echoed.
 * Returns the bytes consumed, -1 when the client is gone. */
static ssize_t on_frames(int fd, unsigned char *b, size_t len)
{
	size_t off = 0;
	while (len - off >= 6) {
		unsigned char *h = b + off;
		int op = h[0] & 0x0f;
		uint64_t plen = h[1] & 0x7f;
		size_t hl = 2;
		if (!(h[1] & 0x80)) { conn_close(fd); return -1; }     /* client frames are masked */
		if (plen == 126) {
			hl = 4;
			plen = (uint64_t)h[2] << 8 | h[3];
		} else if (plen == 127) {
			conn_close(fd);         /* no client of the bench sends 64 KiB */
			return -1;
		}
		if (len - off < hl + 4 + plen) break;
		unsigned char *m = h + hl, *p = m + 4;
		for (uint64_t i = 0; i < plen; i++) p[i] ^= m[i & 3];
		struct conn *c = &F.conns[fd];
		if (op == 0x1 && c->state >= C_WS) {
			on_subscribe(fd, c, p, (size_t)plen);
		} else if (op == 0x9) {
			send_frame(fd, 0xA, p, (size_t)plen);
		} else if (op == 0x8) {
			c->closing = 1;
			send_frame(fd, 0x8, p, plen >= 2 ? 2 : 0);
			if (F.conns[fd].state != C_FREE && !pending(&F.conns[fd])) conn_close(fd);
			return -1;
		}
		if (F.conns[fd].state == C_FREE) return -1;
		off += hl + 4 + (size_t)plen;
	}
	return (ssize_t)off;
}

static void on_readable(int fd)
{
	static unsigned char buf[MAX_IN * 2];
	struct conn *c = &F.conns[fd];
	size_t have = c->in_len;
	if (have) memcpy(buf, c->in, have);
	ssize_t r = read(fd, buf + have, sizeof(buf) - have);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
	if (r <= 0) { conn_close(fd); return; }
	size_t len = have + (size_t)r, off = 0;
	if (c->state == C_HEAD) {
		ssize_t hl = on_head(fd, buf, len);
		if (hl < 0) return;
		if (hl == 0) goto keep;
		off = (size_t)hl;
	}
	ssize_t used = on_frames(fd, buf + off, len - off);
	if (used < 0) return;
	off += (size_t)used;
keep:
	c = &F.conns[fd];
	if (off == len) { free(c->in); c->in = NULL; c->in_len = 0; return; }
	if (len - off > MAX_IN) { conn_close(fd); return; }
	unsigned char *n = realloc(c->in, len - off);
	if (!n) { conn_close(fd); return; }
	memcpy(n, buf + off, len - off);
	c->in = n;
	c->in_len = (uint32_t)(len - off);
}

static void on_accept(void)
{
	for (;;) {
		int fd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) return;
		if (fd >= F.nconns) { close(fd); continue; }
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* as kbridge: no Nagle */
		F.conns[fd] = (struct conn){ .state = C_HEAD, .key = NO_KEY, .next_key = -1 };
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		epoll_ctl(F.ep, EPOLL_CTL_ADD, fd, &ev);
		F.accepted++;
	}
}

/* ---- records ------------------------------------------------------------ */

/* Record j's frame at b (room for --size + 450 bytes): kbridge's envelope around
 * produce.c's stream payload. Returns its length. */
static size_t make_frame(unsigned char *b, uint64_t j, int64_t ts)
{
	static int64_t iso_s = -1;
	static char iso[24];
	uint32_t key = (uint32_t)(j % (uint64_t)F.keys);
	uint64_t kn = ++F.kn[key];
	if (ts / 1000000 != iso_s) {     /* the date part, once a second */
		iso_s = ts / 1000000;
		time_t s = (time_t)iso_s;
		struct tm tm;
		gmtime_r(&s, &tm);
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
	}
	char suffix[160];
	int sl = snprintf(suffix, sizeof(suffix), "\",\"ts_us\":%" PRId64 ",\"n\":%" PRIu64 ",\"k\":%u,\"kn\":%" PRIu64 "}}",
			  ts, j + 1, key, kn);
	char *t = (char *)b + 4;
	int el = snprintf(t, 360, "{\"type\":\"%s\",\"channel\":\"%s\",\"key\":\"k%u\",\"seq\":%" PRIu64 ","
			  "\"topic\":\"%s\",\"partition\":0,\"offset\":%" PRIu64 ",\"timestamp\":\"%s.%03dZ\","
			  "\"data\":{\"pad\":\"", F.channel, F.channel, key, j + 1, F.topic, j, iso, (int)(ts / 1000 % 1000));
	long pad = F.size - 8 - (sl - 1);       /* the payload is exactly --size bytes */
	if (pad < 0) pad = 0;
	memset(t + el, 'x', (size_t)pad);
	memcpy(t + el + pad, suffix, (size_t)sl);
	size_t len = (size_t)el + (size_t)pad + (size_t)sl;
	b[0] = 0x81;
	b[1] = 126;
	b[2] = (unsigned char)(len >> 8);
	b[3] = (unsigned char)len;
	return len + 4;
}

static void print_result(void)
{
	double secs = (double)(F.end_wall - F.start_wall) / 1e6;
	printf("{\"event\":\"result\",\"mode\":\"%s\",\"produced\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"failed\":0,"
	       "\"keys\":%ld,\"size\":%ld,\"rate\":%.1f,\"duration_s\":%.3f,\"tick_us\":%ld,\"subscribed\":%u,"
	       "\"deliveries\":%" PRIu64 ",\"data_writes\":%" PRIu64 ",\"writes\":%" PRIu64 ",\"partial_writes\":%" PRIu64 ",\"bytes\":%" PRIu64 ","
	       "\"backlog_max\":%" PRIu64 ",\"slow_closed\":%" PRIu64 ",\"self_cpu_s\":%.3f,"
	       "\"start_us\":%" PRId64 ",\"end_us\":%" PRId64 "}\n",
	       F.keyed ? "keyed" : "fanout", F.n, F.n, F.keys, F.size, secs > 0 ? (double)F.n / secs : 0.0, secs,
	       F.tick_us, F.nsubs, F.deliveries, F.data_writes, F.writes, F.partial, F.bytes, F.backlog_max, F.slow_closed,
	       cpu_seconds(), F.start_wall, F.end_wall);
	fflush(stdout);
}

/* Everything due by now: record j is due at start + j/R (produce.c's
 * schedule), made in batches of at most MAX_BATCH. */
static void on_tick(void)
{
	uint64_t exp;
	if (read(F.tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN) return;
	if (!F.started || F.done) return;
	uint64_t w0 = F.writes;
	int64_t now = mono_us();
	uint64_t due = (uint64_t)((double)(now - F.start_mono) * F.rate / 1e6) + 1;
	if (due > F.total) due = F.total;
	while (F.n < due) {
		uint64_t m = due - F.n < MAX_BATCH ? due - F.n : MAX_BATCH;
		int64_t ts = wall_us();
		if (F.keyed) {
			/* one write per delivery, as each record is made */
			for (uint64_t i = 0; i < m; i++) {
				size_t len = make_frame(F.batch, F.n + i, ts);
				uint32_t key = (uint32_t)((F.n + i) % (uint64_t)F.keys);
				for (int32_t fd = F.key_head[key]; fd >= 0; ) {
					int32_t next = F.conns[fd].next_key;
					F.deliveries++;
					send_bytes(fd, F.batch, len);
					fd = next;
				}
			}
		} else {
			/* the batch's frames, then one write per client */
			size_t len = 0;
			for (uint64_t i = 0; i < m; i++) len += make_frame(F.batch + len, F.n + i, ts);
			for (uint32_t s = F.nsubs; s-- > 0; ) {   /* from the end: a close swaps in the last */
				F.deliveries += m;
				send_bytes(F.subs[s], F.batch, len);
			}
		}
		F.n += m;
	}
	F.data_writes += F.writes - w0;
	if (F.n >= F.total) {
		F.done = 1;
		F.end_wall = wall_us();
		struct itimerspec off = { 0 };
		timerfd_settime(F.tfd, 0, &off, NULL);
		print_result();
	}
}

static void start_records(void)
{
	if (F.started) return;
	F.started = 1;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	F.start_wall = wall_us();
	F.start_mono = mono_us();
	printf("{\"event\":\"start\",\"t_us\":%" PRId64 ",\"records\":%" PRIu64 ",\"subscribed\":%u}\n",
	       F.start_wall, F.total, F.nsubs);
	fflush(stdout);
	struct itimerspec it = {
		.it_interval = { .tv_sec = F.tick_us / 1000000, .tv_nsec = F.tick_us % 1000000 * 1000 },
		.it_value = { .tv_sec = 0, .tv_nsec = 1 },      /* record 0 at once */
	};
	timerfd_settime(F.tfd, 0, &it, NULL);
}

/* ---- control, set-up ------------------------------------------------------- */

static void on_control_line(char *line)
{
	if (!strncmp(line, "go", 2)) start_records();
	else if (!strncmp(line, "quit", 4)) F.quit = 1;
}

static void on_stdin(void)
{
	if (benchctl_read(&F.ctl, on_control_line)) F.quit = 1;     /* EOF: the driver went away */
}

static void usage(void)
{
	fprintf(stderr,
		"usage: floor [options]\n"
		"  --host ADDR        listen address (default 127.0.0.1)\n"
		"  --port P           listen port (default 0: any; the listening line says which)\n"
		"  --mode M           fanout (default): per tick one write per client with every\n"
		"                     frame due; keyed: one write per delivery, record j to the\n"
		"                     subscribers of key k<j %% K>\n"
		"  --rate R           records per second (default 1000)\n"
		"  --duration D       seconds of records (default 10)\n"
		"  --size S           payload bytes (default 200)\n"
		"  --keys K           keys k0..k<K-1>, cycling (default 1)\n"
		"  --tick-us T        wake every T us and make every record due by then (1000)\n"
		"  --channel NAME     channel named in acks and frames (default bench)\n"
		"  --max-clients N    connections at most (default 20000)\n"
		"  --control          stdin (a pipe): go (start the records), quit; without it the records\n"
		"                     start at once\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	F.host = "127.0.0.1";
	F.channel = "bench";
	F.rate = 1000;
	F.duration = 10;
	F.size = 200;
	F.keys = 1;
	F.tick_us = 1000;
	F.max_clients = 20000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
		if (!strcmp(a, "--control")) F.control = 1;
		else if (ARG("--host")) F.host = v;
		else if (ARG("--port")) F.port = atoi(v);
		else if (ARG("--rate")) F.rate = atof(v);
		else if (ARG("--duration")) F.duration = atof(v);
		else if (ARG("--size")) F.size = atol(v);
		else if (ARG("--keys")) F.keys = atol(v);
		else if (ARG("--tick-us")) F.tick_us = atol(v);
		else if (ARG("--channel")) F.channel = v;
		else if (ARG("--max-clients")) F.max_clients = atoi(v);
		else if (ARG("--mode")) {
			if (!strcmp(v, "keyed")) F.keyed = 1;
			else if (!strcmp(v, "fanout")) F.keyed = 0;
			else { fprintf(stderr, "floor: --mode fanout|keyed\n"); usage(); }
		}
		else { fprintf(stderr, "floor: unknown or incomplete option %s\n", a); usage(); }
#undef ARG
	}
	if (F.port < 0 || F.port > 65535 || F.rate <= 0 || F.duration <= 0 || F.size < 0 ||
	    F.size > MAX_SIZE || F.keys < 1 || F.keys > (1L << 24) || F.tick_us < 1 ||
	    F.max_clients < 1 || strlen(F.channel) > 60 || strchr(F.channel, '"') || strchr(F.channel, '\\'))
		usage();
	F.topic = F.channel;
}

static int listen_on(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)F.port) };
	if (inet_pton(AF_INET, F.host, &a.sin_addr) != 1) { fprintf(stderr, "floor: --host %s: not an IPv4 address\n", F.host); return -1; }
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(F.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(F.lfd, 4096) < 0) {
		perror("floor: listen");
		return -1;
	}
	socklen_t l = sizeof(a);
	getsockname(F.lfd, (struct sockaddr *)&a, &l);
	printf("{\"event\":\"listening\",\"port\":%d}\n", ntohs(a.sin_port));
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM and SIGINT are blocked but inside epoll_pwait, so one can
	 * neither be lost between the check of stop_signal and the wait nor
	 * interrupt anything else. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	F.nconns = F.max_clients + 64;
	F.total = (uint64_t)(F.rate * F.duration + 0.5);
	F.batch_cap = (size_t)MAX_BATCH * ((size_t)F.size + 450);
	F.conns = calloc((size_t)F.nconns, sizeof(*F.conns));
	F.subs = calloc((size_t)F.nconns, sizeof(*F.subs));
	F.kn = calloc((size_t)F.keys, sizeof(*F.kn));
	F.key_head = malloc((size_t)F.keys * sizeof(*F.key_head));
	F.batch = malloc(F.batch_cap);
	F.ep = epoll_create1(EPOLL_CLOEXEC);
	F.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!F.conns || !F.subs || !F.kn || !F.key_head || !F.batch || F.ep < 0 || F.tfd < 0) {
		fprintf(stderr, "floor: out of memory\n");
		return 1;
	}
	for (long i = 0; i < F.keys; i++) F.key_head[i] = -1;
	for (int i = 0; i < F.nconns; i++) F.conns[i].next_key = -1;
	if (listen_on() < 0) return 1;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = F.lfd };
	epoll_ctl(F.ep, EPOLL_CTL_ADD, F.lfd, &ev);
	ev.data.fd = F.tfd;
	epoll_ctl(F.ep, EPOLL_CTL_ADD, F.tfd, &ev);
	if (F.control) {
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
		ev.data.fd = 0;
		if (epoll_ctl(F.ep, EPOLL_CTL_ADD, 0, &ev) < 0) { perror("floor: stdin"); return 1; }
	} else {
		start_records();
	}

	struct epoll_event evs[EVENTS];
	while (!F.quit && !stop_signal) {
		int n = epoll_pwait(F.ep, evs, EVENTS, -1, &waitmask);
		if (n < 0 && errno != EINTR) { perror("floor: epoll_pwait"); return 1; }
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			uint32_t e = evs[i].events;
			if (fd == 0) on_stdin();
			else if (fd == F.lfd) on_accept();
			else if (fd == F.tfd) on_tick();
			else if (F.conns[fd].state != C_FREE) {
				if ((e & EPOLLOUT) && pending(&F.conns[fd])) flush_backlog(fd, &F.conns[fd]);
				if (F.conns[fd].state != C_FREE && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(fd);
			}
		}
	}
	for (int fd = 0; fd < F.nconns; fd++) conn_close(fd);
	close(F.lfd);
	close(F.tfd);
	close(F.ep);
	free(F.conns);
	free(F.subs);
	free(F.kn);
	free(F.key_head);
	free(F.batch);
	return 0;
}
