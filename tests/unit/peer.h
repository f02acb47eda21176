/* peer.h - the far end of a client, for unit tests of the layers that
 * queue output (client, conflate, history, hub, proto). A test client is a
 * real struct client on one end of a non-blocking socketpair; the test
 * reads the other end and decodes the server's WebSocket frames exactly as
 * a browser would see them (RFC 6455 §5.2, unmasked server frames).
 * The client layer's flush callback only records which clients asked;
 * peer_flush() writes them, like the server's flush would at turn end.
 * Include once per test program, after check.h. */
#ifndef KB_PEER_H
#define KB_PEER_H
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <inttypes.h>
#include <stdio.h>

#include "client.h"
#include "config.h"
#include "json.h"
#include "json_parse.h"
#include "msgpack.h"
#include "record.h"
#include "ws.h"

/* Clients that asked to be flushed (client_init's callback), and when. */
#define PEER_MAX_WANT 256
static struct client *peer_want[PEER_MAX_WANT];
static int64_t peer_want_due[PEER_MAX_WANT];
static int peer_nwant;

static inline void peer_on_output(struct client *c, int64_t due)
{
	for (int i = 0; i < peer_nwant; i++)
		if (peer_want[i] == c) {
			if (due < peer_want_due[i]) peer_want_due[i] = due;
			return;
		}
	if (peer_nwant < PEER_MAX_WANT) {
		peer_want[peer_nwant] = c;
		peer_want_due[peer_nwant++] = due;
	}
}

/* A configuration with the defaults of config.c for what the client and
 * routing layers read; tests change fields before peer_init. */
static struct config peer_cfg = {
	.client_buffer = 1 << 20,
	.client_queue = 1024,
	.slow = SLOW_DROP_OLDEST,
	.max_message = 65536,
	.ping_interval = 30,
	.header_timeout = 10,
	.max_subscriptions = 256,
	.client_rate = 50,
	.history = 64 << 20,
	.snapshot_keys = 10000,
	.drain_timeout = 5,
};

static inline void peer_init(void)
{
	client_init(&peer_cfg, peer_on_output);
}

/* A WebSocket client (handshake done) whose socket's peer end is *fd.
 * sndbuf > 0 shrinks both socket buffers so writes stall early. */
static inline struct client *peer_client(int *fd, int msgpack, int sndbuf)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
	if (sndbuf > 0) {
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr.s_addr = htonl(0x7f000001) };
	struct client *c = client_new(sv[0], (struct sockaddr *)&sa, sizeof(sa));
	if (!c) abort();
	client_upgrade(c);
	c->msgpack = (unsigned)msgpack;
	*fd = sv[1];
	return c;
}

/* A test client and its peer fd. */
struct tc {
	struct client *c;
	int fd;
};

static inline struct tc tc_new(int msgpack)
{
	struct tc t;
	t.c = peer_client(&t.fd, msgpack, 0);
	return t;
}

/* Writes every client that asked (client_write, as the server's flush). */
static inline void peer_flush(void)
{
	int n = peer_nwant;
	peer_nwant = 0;
	for (int i = 0; i < n; i++)
		if (peer_want[i]->state != CS_DEAD) client_write(peer_want[i]);
}

/* Forgets a client that is about to be freed (so peer_flush skips it). */
static inline void peer_forget(struct client *c)
{
	for (int i = 0; i < peer_nwant; i++)
		if (peer_want[i] == c) {
			peer_want[i] = peer_want[--peer_nwant];
			peer_want_due[i] = peer_want_due[peer_nwant];
			i--;
		}
}

/* One frame as received: opcode and payload (NUL-terminated copy). */
struct pframe {
	int op;
	char *data;
	size_t len;
};

/* Bytes received per peer fd and not yet decoded (a frame cut by a full
 * socket buffer completes on a later read). */
#define PEER_BUF (8u << 20)
static struct { int fd; unsigned char *buf; size_t have; } peer_in[64];

static inline int peer_slot(int fd)
{
	for (int i = 0; i < 64; i++) if (peer_in[i].buf && peer_in[i].fd == fd) return i;
	for (int i = 0; i < 64; i++)
		if (!peer_in[i].buf) {
			peer_in[i].fd = fd;
			peer_in[i].have = 0;
			if (!(peer_in[i].buf = malloc(PEER_BUF))) abort();
			return i;
		}
	abort();
}

/* Closes a peer fd and drops what was buffered for it. */
static inline void peer_close(int fd)
{
	for (int i = 0; i < 64; i++)
		if (peer_in[i].buf && peer_in[i].fd == fd) {
			free(peer_in[i].buf);
			peer_in[i].buf = NULL;
		}
	close(fd);
}

/* Reads what fd holds and decodes whole frames into out (at most max;
 * the caller frees each data with peer_frames_free). Bytes of a frame
 * not yet complete are kept for the next call. Returns the number of
 * frames, or -1 on a malformed server frame. */
static inline int peer_read(int fd, struct pframe *out, int max)
{
	int slot = peer_slot(fd);
	unsigned char *buf = peer_in[slot].buf;
	size_t have = peer_in[slot].have;
	ssize_t n;
	while (have < PEER_BUF && (n = read(fd, buf + have, PEER_BUF - have)) > 0) have += (size_t)n;
	int nf = 0;
	size_t pos = 0;
	while (nf < max && have - pos >= 2) {
		const unsigned char *p = buf + pos;
		if (!(p[0] & 0x80) || (p[1] & 0x80)) return -1;   /* server frames: FIN set, unmasked */
		uint64_t len = p[1] & 0x7f;
		size_t hl = 2;
		if (len == 126) {
			if (have - pos < 4) break;
			len = (uint64_t)p[2] << 8 | p[3];
			hl = 4;
		} else if (len == 127) {
			if (have - pos < 10) break;
			len = 0;
			for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
			hl = 10;
		}
		if (have - pos - hl < len) break;
		out[nf].op = p[0] & 0x0f;
		out[nf].len = (size_t)len;
		out[nf].data = malloc((size_t)len + 1);
		if (!out[nf].data) abort();
		memcpy(out[nf].data, p + hl, (size_t)len);
		out[nf].data[len] = '\0';
		nf++;
		pos += hl + (size_t)len;
	}
	memmove(buf, buf + pos, have - pos);
	peer_in[slot].have = have - pos;
	return nf;
}

static inline void peer_frames_free(struct pframe *f, int n)
{
	for (int i = 0; i < n; i++) free(f[i].data);
}

/* Flushes, then reads: the frames the peer has now. */
static inline int peer_recv(int fd, struct pframe *out, int max)
{
	peer_flush();
	return peer_read(fd, out, max);
}

/* Like peer_recv, with MessagePack (binary) frames turned into their JSON
 * text (op stays WS_OP_BINARY, so a test can tell which format came). */
static inline int peer_recv_json(int fd, struct pframe *f, int max)
{
	int n = peer_recv(fd, f, max);
	for (int i = 0; i < n; i++) {
		if (f[i].op != WS_OP_BINARY) continue;
		struct jbuf b;
		json_init(&b);
		if (mp_to_json(&b, (const unsigned char *)f[i].data, f[i].len, 64) < 0 || b.failed) {
			json_free(&b);
			continue;   /* left binary: field checks fail */
		}
		json_append(&b, "", 1);
		free(f[i].data);
		f[i].data = b.buf;
		f[i].len = b.len - 1;
	}
	return n;
}

/* The raw JSON of top-level field name of a JSON frame, NULL when absent. */
static inline const char *pframe_field(const struct pframe *f, const char *name, size_t *len)
{
	const char *v;
	if (!f->data || !json_top_field(f->data, f->len, name, strlen(name), &v, len)) return NULL;
	return v;
}

static inline int pframe_has_field(const struct pframe *f, const char *name)
{
	size_t vl;
	return pframe_field(f, name, &vl) != NULL;
}

/* 1 when field name is JSON-equal to raw (objects and arrays: same text). */
static inline int pframe_is(const struct pframe *f, const char *name, const char *raw)
{
	size_t vl;
	const char *v = pframe_field(f, name, &vl);
	return v && json_value_eq(v, vl, raw, strlen(raw));
}

/* Integer field, INT64_MIN when absent. */
static inline int64_t pframe_int(const struct pframe *f, const char *name)
{
	size_t vl;
	const char *v = pframe_field(f, name, &vl);
	char buf[32];
	if (!v || vl >= sizeof(buf)) return INT64_MIN;
	memcpy(buf, v, vl);
	buf[vl] = '\0';
	return strtoll(buf, NULL, 10);
}

/* A data message (one Kafka record): it has a topic and an offset. */
static inline int pframe_is_data(const struct pframe *f)
{
	size_t vl;
	return pframe_field(f, "topic", &vl) && pframe_field(f, "offset", &vl);
}

/* Offsets of the data messages the peer has now, in arrival order; -1
 * when anything else arrived (printed on stderr). */
static inline int peer_recv_offsets(int fd, int64_t *out, int max)
{
	struct pframe f[512];
	int n = peer_recv_json(fd, f, 512), k = 0, other = 0;
	for (int i = 0; i < n; i++) {
		if (!pframe_is_data(&f[i])) {
			fprintf(stderr, "  unexpected frame: %s\n", f[i].data);
			other = 1;
		} else if (k < max) {
			out[k++] = pframe_int(&f[i], "offset");
		}
	}
	peer_frames_free(f, n);
	return other ? -1 : k;
}

static inline const char *peer_fmt_offsets(const int64_t *v, int n)
{
	static char buf[1024];
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && used < sizeof(buf) - 24; i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%" PRId64, i ? "," : "", v[i]);
	return buf;
}

/* The data messages the peer has now carry exactly these offsets, in order. */
#define CHECK_OFFS(fd, ...) do { static const int64_t w_[] = { __VA_ARGS__ }; int64_t g_[512]; \
	int n_ = peer_recv_offsets(fd, g_, 512); \
	CHECKF(n_ == (int)(sizeof(w_) / sizeof(w_[0])) && memcmp(g_, w_, sizeof(w_)) == 0, \
	       "got %d offsets [%s]", n_, n_ > 0 ? peer_fmt_offsets(g_, n_) : ""); } while (0)

/* Nothing arrived at all. */
#define CHECK_NONE(fd) do { int64_t g_[512]; int n_ = peer_recv_offsets(fd, g_, 512); \
	CHECKF(n_ == 0, "got %d messages [%s]", n_, n_ > 0 ? peer_fmt_offsets(g_, n_) : ""); } while (0)

/* A record with string key and value (NULL: null key / tombstone),
 * borrowing them; ts -1: no timestamp. */
static inline struct record peer_record(const char *topic, int32_t p, int64_t off, const char *key, const char *val,
					int64_t ts)
{
	return (struct record){
		.topic = topic, .partition = p, .offset = off, .timestamp_ms = ts,
		.key = key, .key_len = key ? strlen(key) : 0,
		.value = val, .value_len = val ? strlen(val) : 0,
	};
}

/* 1 if text frame f contains the substring s. */
static inline int pframe_has(const struct pframe *f, const char *s)
{
	return f->data && strstr(f->data, s) != NULL;
}
#endif
