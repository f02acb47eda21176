/* client.c - the client layer (client.h): a connection's state changes, its
 * output queue under the slow-client policy, SLOW_CONSUMER notices, replies.
 * Frames come in by reference from the layers above (one encoded record is
 * shared by every subscriber's queue); this module decides what stays
 * queued when a client is slow and writes the queue with writev. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "ws.h"

static struct {
	size_t max_bytes;            /* --client-buffer */
	uint32_t max_messages;       /* --client-queue */
	enum slow_policy slow;       /* --slow-client */
	int64_t header_timeout_ms;   /* --header-timeout: a new connection's deadline */
	client_flush_fn *on_output;  /* the server's flush list */
	uint32_t next_id;
	uint32_t http, ws;           /* connections reading a head; open WebSockets */
	uint32_t deflate;            /* open WebSockets with permessage-deflate */
	uint32_t sse;                /* open SSE streams (counted in ws too) */
	uint32_t dead;               /* killed since client_take_dead() */
	struct client_capture *cap;  /* client_capture */
} C;

void client_init(const struct config *cfg, client_flush_fn *on_output)
{
	C.max_bytes = cfg->client_buffer;
	C.max_messages = (uint32_t)cfg->client_queue;
	C.slow = cfg->slow;
	C.header_timeout_ms = (int64_t)(cfg->header_timeout * 1000);
	C.on_output = on_output;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct client *client_new(int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct client *c = calloc(1, sizeof(*c));
	if (!c) return NULL;
	c->fd = fd;
	c->id = ++C.next_id;
	c->state = CS_HTTP;
	c->deadline = clock_now() + C.header_timeout_ms;
	c->last_data = (uint32_t)(clock_now() - CLIENT_STREAM_MS);  /* no data yet: the first goes at once */
	if ((size_t)salen <= sizeof(c->peer)) memcpy(&c->peer, sa, (size_t)salen);
	C.http++;
	return c;
}

void client_free(struct client *c)
{
	if (c->ws)
		log_msg(LOG_INFO, c->sse ? "sse closed" : "websocket closed", "client", log_num(c->id), "peer", client_peer(c),
			"reason", c->why ? c->why : "", NULL);
	client_unupgrade(c);   /* no longer counted */
	if (c->state == CS_HTTP) C.http--;   /* freed before it ever left CS_HTTP */
	tls_free(c->ssl);
	free(c->tls_out);
	close(c->fd);
	outq_clear(&c->q);
	free(c->rbuf);
	free(c->msg);
	free(c);
}

/* Every state change goes through here, so the counts stay exact. */
static void set_state(struct client *c, enum client_state st)
{
	if (c->state == CS_HTTP && st != CS_HTTP) C.http--;
	if (st == CS_DEAD && c->state != CS_DEAD) C.dead++;
	c->state = (uint8_t)st;
}

void client_upgrade(struct client *c)
{
	set_state(c, CS_WS);
	c->ws = 1;
	C.ws++;
	C.deflate += c->zbits != 0;
	C.sse += c->sse;
}

void client_unupgrade(struct client *c)
{
	if (!c->ws) return;
	C.ws--;
	C.deflate -= c->zbits != 0;
	C.sse -= c->sse;
	c->ws = 0;
	c->sse = 0;
}

uint32_t client_http_count(void) { return C.http; }
uint32_t client_ws_count(void) { return C.ws; }
uint32_t client_deflate_count(void) { return C.deflate; }
uint32_t client_sse_count(void) { return C.sse; }

uint32_t client_take_dead(void)
{
	uint32_t n = C.dead;
	C.dead = 0;
	return n;
}

const char *client_peer(const struct client *c)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (c->peer.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &c->peer.v4.sin_addr, ip, sizeof(ip));
		port = ntohs(c->peer.v4.sin_port);
	} else if (c->peer.sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &c->peer.v6.sin6_addr, ip, sizeof(ip));
		port = ntohs(c->peer.v6.sin6_port);
	}
	snprintf(buf, sizeof(buf), "%s:%u", ip, port);
	return buf;
}

/* ---- state changes ---------------------------------------------------------- */

void client_kill(struct client *c, const char *why)
{
	if (c->state == CS_DEAD) return;
	if (!c->why) c->why = why;
	set_state(c, CS_DEAD);
}

/* Lingering clients are written until empty, then shut down for writing
 * (client_write), then read until EOF or the deadline (server). */
void client_linger(struct client *c)
{
	set_state(c, CS_LINGER);
	c->deadline = clock_now() + CLIENT_LINGER_MS;
	C.on_output(c, clock_now());
}

void client_queue(struct client *c, struct frame *f)
{
	if (!f) return;
	if (outq_push(&c->q, f) == 0) C.on_output(c, clock_now());
}

void client_close_frame(struct client *c, unsigned code, const char *reason)
{
	unsigned char p[2 + WS_MAX_CONTROL];
	size_t n = 0;
	if (code) {
		/* RFC 6455 §5.5: a control payload is at most 125 bytes. */
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > WS_MAX_CONTROL - 2) rl = WS_MAX_CONTROL - 2;
		p[0] = (unsigned char)(code >> 8);
		p[1] = (unsigned char)code;
		if (rl) memcpy(p + 2, reason, rl);
		n = 2 + rl;
	}
	client_queue(c, frame_ws(WS_OP_CLOSE, p, n, FRAME_CONTROL));
	c->close_sent = 1;
}

void client_drop_queued(struct client *c)
{
	/* A partly written frame must still go out whole, or the peer's
	 * framing would break. */
	while (c->q.count > outq_first_free(&c->q))
		outq_remove(&c->q, c->q.count - 1);
}

void client_ws_fail(struct client *c, unsigned code, const char *reason)
{
	if (!c->why) c->why = reason;
	if (!c->close_sent && !c->sse) {
		client_drop_queued(c);
		client_close_frame(c, code, reason);
	}
	if (log_enabled(LOG_DEBUG))
		log_msg(LOG_DEBUG, "websocket failed", "client", log_num(c->id), "code", log_num(code),
			"reason", reason ? reason : "", NULL);
	client_linger(c);
}

void client_ws_close(struct client *c, unsigned code, const char *reason, int64_t wait_ms)
{
	if (c->state != CS_WS) return;
	if (!c->why) c->why = reason;
	if (c->sse) {              /* the response ends: its last bytes, then FIN */
		client_linger(c);
		return;
	}
	client_close_frame(c, code, reason);
	set_state(c, CS_CLOSING);
	c->deadline = clock_now() + wait_ms;
}

/* ---- output ------------------------------------------------------------------- */

struct frame *client_message(const struct client *c, const char *json, size_t len, enum frame_kind kind)
{
	if (c->sse) return frame_sse(NULL, 0, json, len, kind);
	return frame_for(frame_message(c->msgpack, json, len, kind), c->zbits);
}

/* TLS without the kernel's help: queued frames are gathered into one
 * record's worth of plaintext (TLS_STAGE), so a flush of many small frames
 * costs a few records, not one each (issue 14). Gathered bytes leave the
 * queue at once, as bytes the kernel took would; what SSL_write has not
 * taken yet stays in tls_out and goes first next time, the same bytes, as
 * OpenSSL requires after a want-write. The buffer is freed once empty, so
 * an idle client holds none. Returns 0, or -1 after killing c. */
static int write_tls(struct client *c)
{
	struct outq_done done = { 0, 0 };
	uint64_t bytes = 0, records = 0;
	int rc = 0;
	for (;;) {
		if (c->tls_off == c->tls_len) {
			c->tls_off = c->tls_len = 0;
			if (c->q.count == 0) break;
			if (!c->tls_out && !(c->tls_out = malloc(TLS_STAGE))) {
				client_kill(c, "out of memory");
				rc = -1;
				break;
			}
			c->tls_len = (uint16_t)outq_gather(&c->q, c->tls_out, TLS_STAGE, &done);
		}
		ssize_t w = tls_write(c->ssl, c->tls_out + c->tls_off, (size_t)(c->tls_len - c->tls_off));
		if (w == TLS_WANT_WRITE || w == TLS_WANT_READ) break;   /* the same bytes next time */
		if (w <= 0) {
			if (log_enabled(LOG_DEBUG))
				log_msg(LOG_DEBUG, "tls write failed", "client", log_num(c->id), "error", tls_last_error(), NULL);
			client_kill(c, "tls write failed");   /* static text: why outlives the call */
			rc = -1;
			break;
		}
		c->tls_off = (uint16_t)(c->tls_off + w);
		bytes += (uint64_t)w;
		records += ((uint64_t)w + TLS_STAGE - 1) / TLS_STAGE;
	}
	if (c->tls_off == c->tls_len) {
		free(c->tls_out);
		c->tls_out = NULL;
		c->tls_off = c->tls_len = 0;
	}
	metrics_add(M_MESSAGES_OUT, done.data);
	metrics_add(M_BYTES_OUT, bytes);
	metrics_add(M_BYTES_UNCOMPRESSED, bytes + done.saved);
	if (records) {
		metrics_add(M_TLS_RECORDS, records);
		metrics_add(M_TLS_FLUSHES, 1);
	}
	return rc;
}

/* Writes what the socket takes; counts bytes and whole data messages.
 * Returns 0, or -1 after killing c on a socket error. */
static int write_queue(struct client *c)
{
	if (c->ssl && !c->ktls) return write_tls(c);
	struct outq_done done = { 0, 0 };
	ssize_t w = outq_write(&c->q, c->fd, &done);
	int err = errno;
	metrics_add(M_MESSAGES_OUT, done.data);
	if (w < 0) {
		client_kill(c, strerror(err));
		return -1;
	}
	metrics_add(M_BYTES_OUT, (uint64_t)w);
	metrics_add(M_BYTES_UNCOMPRESSED, (uint64_t)w + done.saved);
	return 0;
}

/* SLOW_CONSUMER notices go right where the gap is: in front of whatever is
 * still queued (docs/protocol.md#slow_consumer). A notice not yet
 * sent absorbs later drops; its running total rides in key_hash. */
static void insert_notice(struct client *c)
{
	uint64_t total = c->dropped;
	uint32_t pos = outq_first_free(&c->q);
	struct frame *front = outq_at(&c->q, pos);
	if (front && front->kind == FRAME_NOTICE) {
		total += front->key_hash;
		outq_remove(&c->q, pos);
	}
	struct jbuf b;
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "type"); json_cstr(&b, "error");
	json_key(&b, "code"); json_cstr(&b, "SLOW_CONSUMER");
	json_key(&b, "message"); json_cstr(&b, "messages were dropped because this client reads too slowly");
	json_key(&b, "dropped"); json_uint(&b, total);
	json_obj_end(&b);
	struct frame *f = b.failed ? NULL : client_message(c, b.buf, b.len, FRAME_NOTICE);
	json_free(&b);
	if (!f) return;
	f->key_hash = total;
	if (outq_push_front(&c->q, f) == 0) c->dropped = 0;
}

int client_write(struct client *c)
{
	/* The notice is made at write time, once per flush, however many
	 * records were dropped since the last one. */
	if (c->dropped) insert_notice(c);
	if (write_queue(c) < 0) return -1;
	if (c->q.count == 0 && !c->tls_len && c->state == CS_LINGER && !c->wr_shut) {
		if (c->ssl) tls_shutdown(c->ssl);   /* close_notify before our FIN */
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = 1;
	}
	return 0;
}

/* The bytes queued behind the message being written (the head): what
 * --client-buffer bounds. Only for a queue that is not empty. */
static size_t behind_head(const struct client *c)
{
	return c->q.bytes - (outq_at(&c->q, 0)->len - c->q.off);
}

/* Whether f would take c past --client-queue messages or --client-buffer
 * bytes (docs/protocol.md#slow_consumer). The limits bound what waits
 * behind the message being written (the head of the queue), as an output
 * buffer limit does: an empty queue takes any message whatever its size,
 * and so does a queue where only the head waits, so a record larger than
 * --client-buffer reaches every client that keeps reading. Only bytes
 * still held here count: the kernel's are not ours. */
static int queue_full(const struct client *c, const struct frame *f)
{
	if (c->q.count == 0) return 0;
	if (c->q.count >= C.max_messages) return 1;
	if (behind_head(c) + f->len <= C.max_bytes) return 0;
	/* Over the bytes: full unless all that waits is what the policy never
	 * drops (a SLOW_CONSUMER notice, a ping): f is then the lone waiting
	 * message, and the newest record still reaches a stalled client. */
	for (uint32_t i = 1; i < c->q.count; i++) {
		uint8_t k = outq_at(&c->q, i)->kind;
		if (k == FRAME_DATA || k == FRAME_REPLY) return 1;
	}
	return 0;
}

int client_has_room(const struct client *c)
{
	if (c->state != CS_WS) return 0;
	if (c->q.count == 0) return 1;
	/* As the limits themselves: what waits behind the message being written. */
	return c->q.count < (C.max_messages + 1) / 2 && behind_head(c) < C.max_bytes / 2;
}

int client_would_wait(const struct client *c, size_t len)
{
	/* The bytes alone: the state dialect's messages are never dropped by
	 * the policy, so they would never count as droppable. */
	if (c->q.count == 0) return 0;
	if (c->q.count >= C.max_messages) return 1;
	size_t behind = behind_head(c);
	return behind > 0 && behind + len > C.max_bytes;
}

static void drop_at(struct client *c, uint32_t k)
{
	c->dropped++;
	metrics_add(M_DROPPED, 1);
	outq_remove(&c->q, k);
}

/* conflate: drops the oldest record at or past position i whose key has a
 * newer record queued (or is f's). 1 when one went. One pass from the
 * newest, with the keys seen in a small hash set. */
static int drop_stale(struct client *c, uint32_t i, const struct frame *f)
{
	static uint64_t *set;
	static size_t cap;
	size_t need = 4;
	while (need < 2 * ((size_t)c->q.count + 1)) need *= 2;
	if (need > cap) {
		uint64_t *n = realloc(set, need * sizeof(*n));
		if (!n) return 0;
		set = n;
		cap = need;
	}
	memset(set, 0, need * sizeof(*set));
	uint32_t stale = UINT32_MAX;
	for (uint32_t k = c->q.count + 1; k-- > i;) {
		const struct frame *x = k == c->q.count ? f : outq_at(&c->q, k);
		if (x->kind != FRAME_DATA || !x->key_hash) continue;
		size_t h = (size_t)(x->key_hash * 0x9e3779b97f4a7c15ull) & (need - 1);
		while (set[h] && set[h] != x->key_hash) h = (h + 1) & (need - 1);
		if (set[h]) stale = k;          /* a newer one of its key is queued */
		else set[h] = x->key_hash;
	}
	if (stale == UINT32_MAX) return 0;
	drop_at(c, stale);
	return 1;
}

/* The queue is full and f waits: apply --slow-client. Returns 1 when f may
 * now be queued, 0 when it was consumed (dropped, or the client closed). */
static int make_room(struct client *c, struct frame *f)
{
	if (C.slow == SLOW_DISCONNECT) {
		frame_unref(f);
		metrics_add(M_SLOW_DISCONNECTS, 1);
		log_msg(LOG_WARN, "slow client disconnected", "client", log_num(c->id), "peer", client_peer(c),
			"queued_bytes", log_num((int64_t)c->q.bytes), "queued_messages", log_num(c->q.count), NULL);
		client_drop_queued(c);
		client_ws_close(c, WS_CLOSE_POLICY, "slow consumer", CLIENT_LINGER_MS);
		return 0;
	}
	uint32_t i = outq_first_free(&c->q);   /* never the partly written head */
	/* conflate: the oldest queued record of the same channel and key gives
	 * way to the newest; without one, a record whose key has a newer copy
	 * queued; only then drop-oldest, which may take a key's only value. */
	if (C.slow == SLOW_CONFLATE && f->kind == FRAME_DATA && f->key_hash) {
		uint32_t k = i;
		while (k < c->q.count && !(outq_at(&c->q, k)->kind == FRAME_DATA && outq_at(&c->q, k)->key_hash == f->key_hash))
			k++;
		if (k < c->q.count) drop_at(c, k);
		else while (queue_full(c, f) && drop_stale(c, i, f)) {}
	}
	/* drop-oldest: drop the oldest droppable frames until the new one fits.
	 * Replies may go too (uncounted in the notice); controls and notices stay. */
	while (queue_full(c, f) && i < c->q.count) {
		struct frame *old = outq_at(&c->q, i);
		if (old->kind == FRAME_DATA || old->kind == FRAME_REPLY) {
			if (old->kind == FRAME_DATA) c->dropped++;
			metrics_add(M_DROPPED, 1);
			outq_remove(&c->q, i);
		} else {
			i++;
		}
	}
	if (queue_full(c, f)) {              /* nothing left to drop: drop the newcomer */
		if (f->kind == FRAME_DATA) c->dropped++;
		metrics_add(M_DROPPED, 1);
		frame_unref(f);
		C.on_output(c, clock_now());     /* the notice goes out this turn */
		return 0;
	}
	return 1;
}

void client_send(struct client *c, struct frame *f)
{
	if (!f) return;
	if (c->state != CS_WS || c->close_sent) {
		frame_unref(f);
		return;
	}
	/* Bytes the kernel takes are not ours to count (docs/operations.md#flags):
	 * write what this turn has queued so far before judging c slow. */
	if (queue_full(c, f) && write_queue(c) < 0) {
		frame_unref(f);
		return;
	}
	if (queue_full(c, f) && !make_room(c, f)) return;
	/* Data of a streaming client (data within the last CLIENT_STREAM_MS)
	 * waits a few ms so one writev carries several records: Kafka hands
	 * records over in fetch-sized bursts, often split over turns, so the
	 * window must span the gap between bursts, not between records. A
	 * client with one frame due now and then (a key of its own) gains
	 * nothing from waiting: its first frame after a pause, like replies
	 * and controls, goes at the end of this turn (which still gathers
	 * everything this turn queued for it). */
	int64_t now = clock_now(), due = now;
	if (f->kind == FRAME_DATA) {
		if ((uint32_t)now - c->last_data < CLIENT_STREAM_MS) due = now + CLIENT_CORK_MS;
		c->last_data = (uint32_t)now;
	}
	if (outq_push(&c->q, f) == 0) C.on_output(c, due);
}

void client_send_always(struct client *c, struct frame *f)
{
	if (!f) return;
	if (c->state != CS_WS || c->close_sent) {
		frame_unref(f);
		return;
	}
	client_queue(c, f);
}

/* ---- replies ------------------------------------------------------------------- */

void reply_begin(struct jbuf *b, const char *type, const char *id, size_t id_len)
{
	json_init(b);
	json_obj_begin(b);
	json_key(b, "type");
	json_cstr(b, type);
	if (id) {
		/* The request's id is echoed verbatim, whatever JSON value it is. */
		json_key(b, "id");
		json_raw(b, id, id_len);
	}
}

void client_capture(struct client_capture *cap)
{
	C.cap = cap;
}

static void reply_out(struct client *c, struct jbuf *b, int always)
{
	json_obj_end(b);
	if (C.cap && C.cap->c == c) {
		static const char err[] = "{\"type\":\"error\"";
		if (!C.cap->got && !b->failed && b->len >= sizeof(err) - 1 && !memcmp(b->buf, err, sizeof(err) - 1)) {
			C.cap->len = b->len < sizeof(C.cap->json) ? b->len : sizeof(C.cap->json);
			memcpy(C.cap->json, b->buf, C.cap->len);
			C.cap->got = 1;
		}
		json_free(b);
		return;
	}
	if (!b->failed) {
		struct frame *f = client_message(c, b->buf, b->len, FRAME_REPLY);
		if (always) client_send_always(c, f);
		else client_send(c, f);
	}
	json_free(b);
}

void reply_send(struct client *c, struct jbuf *b)
{
	reply_out(c, b, 0);
}

void reply_send_always(struct client *c, struct jbuf *b)
{
	reply_out(c, b, 1);
}

static void error_out(struct client *c, const char *id, size_t id_len, const char *code, const char *msg, int always)
{
	struct jbuf b;
	reply_begin(&b, "error", id, id_len);
	json_key(&b, "code");
	json_cstr(&b, code);
	json_key(&b, "message");
	json_cstr(&b, msg);
	reply_out(c, &b, always);
}

void reply_error(struct client *c, const char *id, size_t id_len, const char *code, const char *msg)
{
	error_out(c, id, id_len, code, msg, 0);
}

void reply_error_always(struct client *c, const char *id, size_t id_len, const char *code, const char *msg)
{
	error_out(c, id, id_len, code, msg, 1);
}
