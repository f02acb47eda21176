/* kbridge.c - main(), the poll() loop, client lifecycle and signals.
 * One thread runs one poll() over the listener, the signal fd, librdkafka's
 * wake-up fd and the client set: an epoll fd that is readable when any
 * client is ready, so a turn costs O(ready clients), not O(all clients).
 * A turn: poll, accept, read and handle input, run due timers, flush queued
 * output (one writev per client), reap the dead. Data frames are corked for
 * up to FLUSH_CORK_MS so one writev carries several records.
 * Protocol parsing lives in http.c/ws.c/json.c; routing in hub.c. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "config.h"
#include "conflate.h"
#include "frame.h"
#include "healthcheck.h"
#include "http.h"
#include "endpoints.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "msgpack.h"
#include "proto.h"
#include "server.h"
#include "utf8.h"
#include "ws.h"

#ifndef KBRIDGE_VERSION
#define KBRIDGE_VERSION "0.1.0"
#endif

#define TICK_MS          250     /* timer resolution: pings, timeouts */
#define LINGER_MS        2000    /* after our last bytes: wait for the peer's FIN */
#define CLOSE_WAIT_MS    5000    /* after our close frame: wait for the peer's */
#define ACCEPT_BATCH     256     /* accepts per turn, so clients are not starved */
#define READ_CHUNK       65536
#define HTTP_CONN_CAP    1024    /* plain HTTP / not-yet-upgraded connections */
#define MAX_TOKENS       512     /* JSON tokens in one control message */
#define MAX_DEPTH        16      /* JSON nesting in one control message */
#define RATE_LIMIT_CLOSE_MS 10000 /* §10: ten seconds over the rate in a row */
#define RATE_LIMIT_QUIET_MS 1000  /* a run of RATE_LIMITED ends after this long without one */
#define EPOLL_BATCH      1024    /* ready clients handled per turn */
#define FLUSH_CORK_MS    3       /* data waits this long for company in one writev */

enum { PFD_LISTEN, PFD_SIGNAL, PFD_KAFKA, PFD_CLIENTS, NPFD };

static struct {
	struct config cfg;
	struct pollfd pfds[NPFD];
	int epfd;                     /* every client socket, level-triggered */
	struct client **clients;      /* all clients, for timers and stats */
	uint32_t nclients, cap;
	uint32_t ws_clients, http_conns;
	uint32_t next_id;
	int listen_fd;
	int64_t accept_paused_until;  /* out of fds: retry accept later */
	struct client *flush_head;    /* clients with output queued this turn */
	int64_t flush_due;            /* when the flush list must be written */
	int dead_on_flush_list;       /* flush before reaping */
	int64_t start_ms, now, next_tick;
	int stopping;                 /* first signal seen */
	int64_t stop_deadline;
	struct frame *ping_frame;     /* shared, static */
	struct server_stats stats;
} S;

static unsigned char read_buf[READ_CHUNK];

/* ---- time ---------------------------------------------------------------- */

int64_t server_now(void) { return S.now; }
int64_t server_uptime_s(void) { return (S.now - S.start_ms) / 1000; }
const struct config *server_config(void) { return &S.cfg; }
struct server_stats *server_stats(void) { return &S.stats; }
uint32_t server_ws_clients(void) { return S.ws_clients; }
uint32_t server_nclients(void) { return S.nclients; }
const struct client *server_client(uint32_t i) { return i < S.nclients ? S.clients[i] : NULL; }

const char *server_peer(const struct client *c)
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

/* ---- output -------------------------------------------------------------- */

/* Puts c on the flush list. Replies go out at the end of this turn; data
 * may wait FLUSH_CORK_MS for more records to share its writev. */
static void want_flush_at(struct client *c, int64_t due)
{
	if (!S.flush_head || due < S.flush_due) S.flush_due = due;
	if (c->in_flush) return;
	c->in_flush = 1;
	c->flush_next = S.flush_head;
	S.flush_head = c;
}

static void want_flush(struct client *c)
{
	want_flush_at(c, S.now);
}

/* Queues a frame regardless of limits (replies to HTTP, close frames). */
static void queue_raw(struct client *c, struct frame *f)
{
	if (!f) return;
	if (outq_push(&c->q, f) == 0) want_flush(c);
}

/* A server message for c, given as JSON text: a text frame, or for a
 * format=msgpack client the same object as MessagePack in a binary frame. */
struct frame *frame_for(const struct client *c, const char *json, size_t len, enum frame_kind kind)
{
	if (!c->msgpack) return frame_ws(WS_OP_TEXT, json, len, kind);
	struct jbuf mp;
	json_init(&mp);
	struct frame *f = mp_from_json(&mp, json, len) == 0 && !mp.failed ?
		frame_ws(WS_OP_BINARY, mp.buf, mp.len, kind) : NULL;
	json_free(&mp);
	return f;
}

/* Builds a frame holding a WebSocket header + payload. */
struct frame *frame_ws(enum ws_opcode op, const void *payload, size_t len, enum frame_kind kind)
{
	size_t hl = ws_header_len(len);
	struct frame *f = frame_new(hl + len, kind);
	if (!f) return NULL;
	ws_header_encode(f->data, op, len);
	if (len) memcpy(f->data + hl, payload, len);
	return f;
}

static void close_frame(struct client *c, unsigned code, const char *reason)
{
	unsigned char p[2 + WS_MAX_CONTROL];
	size_t n = 0;
	if (code) {
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > WS_MAX_CONTROL - 2) rl = WS_MAX_CONTROL - 2;
		p[0] = (unsigned char)(code >> 8);
		p[1] = (unsigned char)code;
		if (rl) memcpy(p + 2, reason, rl);
		n = 2 + rl;
	}
	queue_raw(c, frame_ws(WS_OP_CLOSE, p, n, FRAME_CONTROL));
	c->close_sent = 1;
}

/* Drops everything queued except a partly written frame, whose remaining
 * bytes must still go out or the peer's framing would break. */
static void drop_queued(struct client *c)
{
	while (c->q.count > (c->q.off ? 1u : 0u))
		outq_remove(&c->q, c->q.count - 1);
}

static void set_state(struct client *c, enum client_state st)
{
	if (c->state == CS_HTTP && st != CS_HTTP) S.http_conns--;
	c->state = (uint8_t)st;
}

static void client_kill(struct client *c, const char *why)
{
	if (c->state == CS_DEAD) return;
	if (!c->why) c->why = why;
	if (c->in_flush) S.dead_on_flush_list = 1;
	set_state(c, CS_DEAD);
}

/* Stop talking: send what is queued, then FIN, then read until the peer's
 * FIN so our last bytes are not destroyed by an RST (RFC 6455 §7.1.1). */
static void linger(struct client *c)
{
	set_state(c, CS_LINGER);
	c->deadline = S.now + LINGER_MS;
	want_flush(c);
}

/* Fail the WebSocket connection (§7.1.7): close frame, then TCP close. */
static void ws_fail(struct client *c, unsigned code, const char *reason)
{
	if (!c->why) c->why = reason;
	if (!c->close_sent) {
		drop_queued(c);
		close_frame(c, code, reason);
	}
	if (log_enabled(LOG_DEBUG))
		log_msg(LOG_DEBUG, "websocket failed", "client", log_num(c->id), "code", log_num(code), "reason", reason ? reason : "", NULL);
	linger(c);
}

/* Start a clean close and wait for the peer's close frame. */
static void ws_close(struct client *c, unsigned code, const char *reason, int64_t wait_ms)
{
	if (c->state != CS_WS) return;
	if (!c->why) c->why = reason;
	close_frame(c, code, reason);
	set_state(c, CS_CLOSING);
	c->deadline = S.now + wait_ms;
}

/* SLOW_CONSUMER notices go right where the gap is: in front of whatever is
 * still queued (§4). A notice not yet sent absorbs later drops. */
static void insert_notice(struct client *c)
{
	uint64_t total = c->dropped;
	uint32_t pos = c->q.off ? 1 : 0;
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
	struct frame *f = b.failed ? NULL : frame_for(c, b.buf, b.len, FRAME_NOTICE);
	json_free(&b);
	if (!f) return;
	f->key_hash = total;
	if (outq_push_front(&c->q, f) == 0) c->dropped = 0;
}

static int queue_full(const struct client *c, const struct frame *f)
{
	return c->q.count >= (uint32_t)S.cfg.client_queue ||
	       c->q.bytes + f->len > S.cfg.client_buffer;
}

void client_send(struct client *c, struct frame *f)
{
	if (c->state != CS_WS || c->close_sent) {
		frame_unref(f);
		return;
	}
	if (queue_full(c, f)) {
		/* Bytes the kernel takes are not ours to count (§10): write what
		 * this turn has queued so far before judging the client slow. */
		ssize_t w = outq_write(&c->q, c->fd);
		if (w < 0) {
			frame_unref(f);
			client_kill(c, strerror(errno));
			return;
		}
		S.stats.bytes_out += (uint64_t)w;
	}
	if (queue_full(c, f)) {
		if (S.cfg.slow == SLOW_DISCONNECT) {
			frame_unref(f);
			S.stats.slow_disconnects++;
			log_msg(LOG_WARN, "slow client disconnected", "client", log_num(c->id), "peer", server_peer(c),
				"queued_bytes", log_num((int64_t)c->q.bytes), "queued_messages", log_num(c->q.count), NULL);
			drop_queued(c);
			ws_close(c, WS_CLOSE_POLICY, "slow consumer", LINGER_MS);
			return;
		}
		uint32_t i = c->q.off ? 1 : 0;
		/* conflate: an older queued record of the same channel and key
		 * gives way to the newest; without one, fall back to drop-oldest. */
		if (S.cfg.slow == SLOW_CONFLATE && f->kind == FRAME_DATA && f->key_hash) {
			for (uint32_t k = c->q.count; k-- > i;) {
				struct frame *old = outq_at(&c->q, k);
				if (old->kind == FRAME_DATA && old->key_hash == f->key_hash) {
					c->dropped++;
					S.stats.dropped++;
					outq_remove(&c->q, k);
					break;
				}
			}
		}
		/* drop-oldest: drop the oldest droppable frames until the new one fits. */
		while (queue_full(c, f) && i < c->q.count) {
			struct frame *old = outq_at(&c->q, i);
			if (old->kind == FRAME_DATA || old->kind == FRAME_REPLY) {
				if (old->kind == FRAME_DATA) c->dropped++;
				S.stats.dropped++;
				outq_remove(&c->q, i);
			} else {
				i++;
			}
		}
		if (queue_full(c, f)) {     /* nothing left to drop: drop the newcomer */
			if (f->kind == FRAME_DATA) c->dropped++;
			S.stats.dropped++;
			frame_unref(f);
			want_flush(c);
			return;
		}
	}
	int data = f->kind == FRAME_DATA;
	if (outq_push(&c->q, f) == 0) want_flush_at(c, data ? S.now + FLUSH_CORK_MS : S.now);
}

/* Queues a frame past the slow-client limits (snapshots: dropping one would
 * break the stream's consistency; what follows it stays under the policy). */
void client_send_always(struct client *c, struct frame *f)
{
	if (!f) return;
	if (c->state != CS_WS || c->close_sent) {
		frame_unref(f);
		return;
	}
	queue_raw(c, f);
}

/* ---- replies --------------------------------------------------------------- */

/* Starts a reply object: {"type":TYPE[,"id":ID] ... (caller adds fields). */
void reply_begin(struct jbuf *b, const char *type, const char *id, size_t id_len)
{
	json_init(b);
	json_obj_begin(b);
	json_key(b, "type");
	json_cstr(b, type);
	if (id) {
		json_key(b, "id");
		json_raw(b, id, id_len);
	}
}

/* Closes the object, frames it and queues it; frees the buffer. */
void reply_send(struct client *c, struct jbuf *b)
{
	json_obj_end(b);
	if (!b->failed) client_send(c, frame_for(c, b->buf, b->len, FRAME_REPLY));
	json_free(b);
}

void reply_error(struct client *c, const char *id, size_t id_len, const char *code, const char *msg)
{
	struct jbuf b;
	reply_begin(&b, "error", id, id_len);
	json_key(&b, "code");
	json_cstr(&b, code);
	json_key(&b, "message");
	json_cstr(&b, msg);
	reply_send(c, &b);
}

/* ---- WebSocket messages -------------------------------------------------- */

/* Token bucket of --client-rate messages per second, burst twice that. */
static int rate_ok(struct client *c)
{
	double rate = (double)S.cfg.client_rate;
	double elapsed = (double)(S.now - c->rl_last) / 1000.0;
	c->rl_last = S.now;
	c->rl_tokens += (float)(elapsed * rate);
	if (c->rl_tokens > 2 * rate) c->rl_tokens = (float)(2 * rate);
	if (c->rl_tokens >= 1) {
		c->rl_tokens -= 1;
		/* A flood lets a message through whenever a token refills: the
		 * run only ends after a quiet second without RATE_LIMITED. */
		if (c->rl_since && S.now - (c->rl_since + c->rl_latest) >= RATE_LIMIT_QUIET_MS) c->rl_since = 0;
		return 1;
	}
	if (!c->rl_since) c->rl_since = S.now;
	c->rl_latest = (uint32_t)(S.now - c->rl_since);
	return 0;
}

/* The raw "id" of a message that parsed as an object, else NULL. */
static const char *message_id(const char *m, const struct json_tok *tok, int n, size_t *id_len)
{
	if (n <= 0 || tok[0].type != JSON_OBJECT) return NULL;
	int t = json_obj_get(m, tok, 0, "id");
	if (t < 0) return NULL;
	int quoted = tok[t].type == JSON_STRING;
	*id_len = tok[t].len + 2 * (size_t)quoted;
	return m + tok[t].start - quoted;
}

/* The rate limit (§4): 1 when this message is not to be handled; a client
 * over the limit for too long is closed, else told RATE_LIMITED. */
static int rate_limited(struct client *c, const char *id, size_t id_len)
{
	if (rate_ok(c)) return 0;
	if (S.now - c->rl_since >= RATE_LIMIT_CLOSE_MS) {
		log_msg(LOG_WARN, "client closed for exceeding the rate limit", "client", log_num(c->id), "peer", server_peer(c), NULL);
		ws_close(c, WS_CLOSE_POLICY, "rate limit exceeded", CLOSE_WAIT_MS);
	} else {
		reply_error(c, id, id_len, "RATE_LIMITED", "too many messages: this one was ignored");
	}
	return 1;
}

static void handle_message(struct client *c, int binary, const char *m, size_t len)
{
	/* MessagePack control messages become JSON and are handled as such. */
	if (binary && c->msgpack) {
		struct jbuf js;
		json_init(&js);
		if (mp_to_json(&js, (const unsigned char *)m, len, MAX_DEPTH) < 0 || js.failed) {
			json_free(&js);
			if (rate_limited(c, NULL, 0)) return;
			reply_error(c, NULL, 0, "INVALID_JSON", "message is not valid MessagePack");
			return;
		}
		handle_message(c, 0, js.buf, js.len);
		json_free(&js);
		return;
	}
	struct json_tok tok[MAX_TOKENS];
	int n = binary ? JSON_EINVAL : json_parse(m, len, tok, MAX_TOKENS, MAX_DEPTH);
	size_t id_len = 0;
	const char *id = message_id(m, tok, n, &id_len);
	/* Valid JSON beyond the parser's limits still has its id echoed (§4). */
	if (n == JSON_ETOOMANY || n == JSON_EDEPTH) {
		if (!json_top_field(m, len, "id", 2, &id, &id_len)) id = NULL;
	}

	if (rate_limited(c, id, id_len)) return;
	if (binary) {   /* MessagePack connections took the branch above */
		reply_error(c, NULL, 0, "BAD_REQUEST", "binary frames are not accepted on a JSON connection");
		return;
	}

	if (n == JSON_EINVAL) {
		reply_error(c, NULL, 0, "INVALID_JSON", "message is not valid JSON");
		return;
	}
	if (n < 0) {
		reply_error(c, id, id_len, "BAD_REQUEST", n == JSON_EDEPTH ? "message nested too deeply" : "message has too many elements");
		return;
	}
	if (tok[0].type != JSON_OBJECT) {
		reply_error(c, NULL, 0, "BAD_REQUEST", "message must be a JSON object");
		return;
	}
	/* The id is echoed verbatim, whatever JSON value it is (§4). */
	struct msg_ctx ctx = { .c = c, .src = m, .tok = tok, .ntok = n, .id = id, .id_len = id_len };
	proto_handle(&ctx);
}

/* Appends a fragment to the message being assembled, enforcing --max-message. */
static int msg_append(struct client *c, const unsigned char *p, size_t n)
{
	if (n == 0) return 0;    /* empty fragments are legal (RFC 6455 §5.4) */
	if ((uint64_t)c->msg_len + n > S.cfg.max_message) return -WS_CLOSE_TOO_BIG;
	if (c->msg_len + n > c->msg_cap) {
		size_t cap = c->msg_cap ? c->msg_cap : 256;
		while (cap < c->msg_len + n) cap *= 2;
		if (cap > S.cfg.max_message) cap = S.cfg.max_message;
		unsigned char *nm = realloc(c->msg, cap);
		if (!nm) return -WS_CLOSE_INTERNAL;
		c->msg = nm;
		c->msg_cap = (uint32_t)cap;
	}
	memcpy(c->msg + c->msg_len, p, n);
	c->msg_len += (uint32_t)n;
	return 0;
}

static void msg_reset(struct client *c)
{
	free(c->msg);
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	c->msg_op = 0;
	c->utf8 = UTF8_ACCEPT;
}

static void handle_close_frame(struct client *c, const unsigned char *p, size_t n)
{
	unsigned code = 0;
	if (n == 1) { ws_fail(c, WS_CLOSE_PROTOCOL, "close payload of one byte"); return; }
	if (n >= 2) {
		code = (unsigned)p[0] << 8 | p[1];
		if (!ws_close_code_valid(code)) { ws_fail(c, WS_CLOSE_PROTOCOL, "invalid close code"); return; }
		if (!utf8_valid(p + 2, n - 2)) { ws_fail(c, WS_CLOSE_BAD_DATA, "close reason is not UTF-8"); return; }
	}
	if (!c->why) c->why = c->close_sent ? "close handshake complete" : "client closed";
	/* §5.5.1: answer with a close echoing the status code, then close TCP. */
	if (!c->close_sent) {
		drop_queued(c);
		close_frame(c, code, NULL);
	}
	linger(c);
}

/* One complete client frame, payload unmasked. */
static void handle_frame(struct client *c, const struct ws_frame *f, unsigned char *p)
{
	size_t n = (size_t)f->len;
	switch (f->opcode) {
	case WS_OP_PING:
		if (c->state == CS_WS)
			client_send(c, frame_ws(WS_OP_PONG, p, n, FRAME_CONTROL));
		return;
	case WS_OP_PONG:
		return;
	case WS_OP_CLOSE:
		handle_close_frame(c, p, n);
		return;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (c->msg_op) { ws_fail(c, WS_CLOSE_PROTOCOL, "new message inside a fragmented one"); return; }
		if (f->opcode == WS_OP_TEXT) {
			c->utf8 = utf8_feed(UTF8_ACCEPT, p, n);
			if (c->utf8 == UTF8_REJECT || (f->fin && c->utf8 != UTF8_ACCEPT)) {
				ws_fail(c, WS_CLOSE_BAD_DATA, "text is not valid UTF-8");
				return;
			}
		}
		if (f->fin) {   /* the common case: one frame, no copy */
			c->utf8 = UTF8_ACCEPT;
			if (c->state == CS_WS) handle_message(c, f->opcode == WS_OP_BINARY, (const char *)p, n);
			return;
		}
		c->msg_op = (uint8_t)f->opcode;
		break;
	case WS_OP_CONT:
		if (!c->msg_op) { ws_fail(c, WS_CLOSE_PROTOCOL, "continuation without a message"); return; }
		if (c->msg_op == WS_OP_TEXT) {
			c->utf8 = utf8_feed(c->utf8, p, n);
			if (c->utf8 == UTF8_REJECT || (f->fin && c->utf8 != UTF8_ACCEPT)) {
				ws_fail(c, WS_CLOSE_BAD_DATA, "text is not valid UTF-8");
				return;
			}
		}
		break;
	}
	int rc = msg_append(c, p, n);
	if (rc < 0) { ws_fail(c, (unsigned)-rc, rc == -WS_CLOSE_TOO_BIG ? "message too big" : "out of memory"); return; }
	if (f->fin) {
		if (c->state == CS_WS) handle_message(c, c->msg_op == WS_OP_BINARY, (const char *)c->msg, c->msg_len);
		msg_reset(c);
	}
}

/* Consumes complete frames from buf; returns bytes consumed. */
static size_t process_ws(struct client *c, unsigned char *buf, size_t len)
{
	size_t pos = 0;
	while (pos < len && (c->state == CS_WS || c->state == CS_CLOSING)) {
		struct ws_frame f;
		int hl = ws_parse_header(buf + pos, len - pos, &f);
		if (hl == 0) break;
		if (hl < 0) { ws_fail(c, (unsigned)-hl, "protocol error"); break; }
		/* Refuse oversized data before buffering it (§10: 1009). */
		if (f.opcode < WS_OP_CLOSE && (uint64_t)c->msg_len + f.len > S.cfg.max_message) {
			ws_fail(c, WS_CLOSE_TOO_BIG, "message too big");
			break;
		}
		if (len - pos - (size_t)hl < f.len) break;
		unsigned char *p = buf + pos + hl;
		ws_unmask(p, (size_t)f.len, f.mask, 0);
		pos += (size_t)hl + (size_t)f.len;
		c->last_rx = S.now;
		handle_frame(c, &f, p);
	}
	return pos;
}

/* ---- HTTP ---------------------------------------------------------------- */

/* Queues a complete HTTP response as one private frame. */
static void http_respond(struct client *c, int status, const char *ctype, const char *body, size_t blen,
		  int keep_alive, int head_only, const char *extra)
{
	char head[1024];
	int hl = http_format_head(head, sizeof(head), status, ctype, blen, keep_alive, extra);
	if (hl < 0) return;
	size_t total = (size_t)hl + (head_only ? 0 : blen);
	struct frame *f = frame_new(total, FRAME_REPLY);
	if (!f) return;
	memcpy(f->data, head, (size_t)hl);
	if (!head_only && blen) memcpy(f->data + hl, body, blen);
	queue_raw(c, f);
}

static void http_error(struct client *c, int status, const char *msg, const char *extra)
{
	char body[256];
	struct jbuf b;
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "error");
	json_cstr(&b, msg);
	json_obj_end(&b);
	snprintf(body, sizeof(body), "%.*s\n", (int)b.len, b.buf ? b.buf : "");
	json_free(&b);
	http_respond(c, status, "application/json", body, strlen(body), 0, 0, extra);
	S.stats.http_errors++;
	linger(c);
}

static int origin_allowed(const struct http_request *req)
{
	const struct http_header *o = http_header_get(req, "Origin");
	if (!o || S.cfg.norigins == 0) return 1;
	for (size_t i = 0; i < S.cfg.norigins; i++)
		if (strlen(S.cfg.origins[i]) == o->value_len &&
		    strncasecmp(S.cfg.origins[i], o->value, o->value_len) == 0)
			return 1;
	return 0;
}

/* An upgrade that is not a valid one: counted, then answered like any
 * HTTP error. */
static void upgrade_refused(struct client *c, int status, const char *msg, const char *extra)
{
	S.stats.rejected_bad++;
	http_error(c, status, msg, extra);
}

/* Handles GET /ws...: validates the upgrade (RFC 6455 §4.2.1) and switches. */
static void handle_upgrade(struct client *c, const struct http_request *req)
{
	const struct http_header *ver = http_header_get(req, "Sec-WebSocket-Version");
	const struct http_header *key = http_header_get(req, "Sec-WebSocket-Key");
	char accept[WS_ACCEPT_LEN + 1];

	if (!http_header_has_token(req, "Upgrade", "websocket") ||
	    !http_header_has_token(req, "Connection", "upgrade")) {
		upgrade_refused(c, 426, "this endpoint needs a WebSocket upgrade",
			   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
		return;
	}
	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0 || req->minor < 1) {
		upgrade_refused(c, 400, "a WebSocket upgrade must be an HTTP/1.1 GET", NULL);
		return;
	}
	if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
		upgrade_refused(c, 426, "unsupported WebSocket version: only 13 is spoken",
			   "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (!key || ws_accept_key(key->value, key->value_len, accept) < 0) {
		upgrade_refused(c, 400, "missing or invalid Sec-WebSocket-Key", NULL);
		return;
	}
	if (!origin_allowed(req)) {
		S.stats.rejected_origin++;
		http_error(c, 403, "origin not allowed", NULL);
		return;
	}
	if (S.ws_clients >= (uint32_t)S.cfg.max_clients || S.stopping) {
		S.stats.rejected_full++;
		http_error(c, 503, S.stopping ? "shutting down" : "too many clients", "Retry-After: 1\r\n");
		return;
	}
	/* Validate query parameters before switching: errors are still HTTP. */
	char err[160];
	struct upgrade_opts uo;
	if (proto_upgrade_parse(req->query, req->query_len, &uo, err, sizeof(err)) < 0) {
		upgrade_refused(c, 400, err, NULL);
		return;
	}

	char resp[256];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	struct frame *f = frame_new((size_t)n, FRAME_CONTROL);
	if (!f) { client_kill(c, "out of memory"); return; }
	memcpy(f->data, resp, (size_t)n);
	queue_raw(c, f);

	set_state(c, CS_WS);
	c->ws = 1;
	S.ws_clients++;
	S.stats.accepted++;
	c->last_rx = S.now;
	c->next_ping = S.now + (int64_t)(S.cfg.ping_interval * 1000);
	c->rl_last = S.now;
	c->rl_tokens = (float)(2 * S.cfg.client_rate);
	c->utf8 = UTF8_ACCEPT;
	log_msg(LOG_INFO, "websocket open", "client", log_num(c->id), "peer", server_peer(c),
		"path", log_str(req->path, req->path_len), NULL);
	proto_upgrade_apply(c, &uo);
}

static int path_is(const struct http_request *r, const char *p)
{
	size_t n = strlen(p);
	return r->path_len == n && memcmp(r->path, p, n) == 0;
}

/* Returns bytes consumed, 0 when the head is incomplete. */
static size_t process_http(struct client *c, unsigned char *buf, size_t len)
{
	struct http_request req;
	ssize_t r = http_parse_request((const char *)buf, len, &req);
	if (len) c->got_bytes = 1;
	if (r == 0) return 0;
	if (r < 0) {
		int st = (int)-r;
		http_error(c, st, st == 431 ? "request header fields too large" :
				  st == 505 ? "HTTP version not supported" : "malformed request", NULL);
		return len;
	}
	int get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
	int head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
	int keep = http_keep_alive(&req);
	/* We never read bodies: a request announcing one cannot share the connection. */
	if (http_header_get(&req, "Content-Length") || http_header_get(&req, "Transfer-Encoding")) {
		const struct http_header *cl = http_header_get(&req, "Content-Length");
		if (!cl || cl->value_len != 1 || cl->value[0] != '0') keep = 0;
	}
	/* RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400. */
	if (req.minor >= 1 && !http_header_get(&req, "Host")) {
		http_error(c, 400, "missing Host header", NULL);
		return len;
	}
	S.stats.http_requests++;

	int is_ws_path = (path_is(&req, "/ws") || (req.path_len >= 4 && memcmp(req.path, "/ws/", 4) == 0)) &&
			 !path_is(&req, "/ws/stats");
	if (!get && !head) {
		http_error(c, 405, "method not allowed", "Allow: GET, HEAD\r\n");
		return len;
	}
	if (is_ws_path) {
		handle_upgrade(c, &req);
		return (size_t)r;
	}
	struct http_out out = { .status = 404 };
	endpoints_handle(&req, &out);
	http_respond(c, out.status, out.ctype ? out.ctype : "application/json", out.body.buf, out.body.len,
		     keep, head, out.extra);
	json_free(&out.body);
	if (!keep) {
		linger(c);
		return len;
	}
	c->deadline = S.now + (int64_t)(S.cfg.header_timeout * 1000);
	c->got_bytes = 0;
	return (size_t)r;
}

/* ---- reading ------------------------------------------------------------- */

static size_t process_input(struct client *c, unsigned char *buf, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		size_t used;
		if (c->state == CS_HTTP) used = process_http(c, buf + pos, len - pos);
		else if (c->state == CS_WS || c->state == CS_CLOSING) used = process_ws(c, buf + pos, len - pos);
		else used = len - pos;   /* lingering or dead: discard */
		if (used == 0) break;
		pos += used;
	}
	return pos;
}

/* Keeps unconsumed bytes in the client's own buffer, sized to fit: idle
 * clients hold no input buffer, and one that grew for a big frame shrinks. */
static int keep_rest(struct client *c, const unsigned char *p, size_t n)
{
	if (n == 0) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rcap = 0;
		return 0;
	}
	size_t want = n < 1024 ? 1024 : n;
	if (!c->rbuf || n > c->rcap || c->rcap > 4 * want) {
		unsigned char *nb = malloc(want);
		if (!nb) return -1;
		memcpy(nb, p, n);        /* p may point into the old buffer */
		free(c->rbuf);
		c->rbuf = nb;
		c->rcap = (uint32_t)want;
	} else {
		memmove(c->rbuf, p, n);
	}
	c->rlen = (uint32_t)n;
	return 0;
}

static void client_read(struct client *c)
{
	ssize_t n;
	unsigned char *base;
	size_t have;

	if (c->rlen == 0) {
		n = read(c->fd, read_buf, sizeof(read_buf));
		base = read_buf;
		have = 0;
	} else {
		/* Grow so a whole frame up to --max-message (or a full head) fits. */
		size_t need = c->rlen + READ_CHUNK;
		if (c->rcap < need) {
			unsigned char *nb = realloc(c->rbuf, need);
			if (!nb) { client_kill(c, "out of memory"); return; }
			c->rbuf = nb;
			c->rcap = (uint32_t)need;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		base = c->rbuf;
		have = c->rlen;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
		client_kill(c, strerror(errno));
		return;
	}
	if (n == 0) {
		client_kill(c, c->state == CS_LINGER ? "closed" : "peer closed the connection");
		return;
	}
	size_t len = have + (size_t)n;
	if (c->state == CS_LINGER) {   /* discard */
		keep_rest(c, NULL, 0);
		return;
	}
	size_t used = process_input(c, base, len);
	if (c->state == CS_DEAD) return;
	if (c->state == CS_HTTP && len - used >= HTTP_MAX_HEADER_BYTES) {
		http_error(c, 431, "request header fields too large", NULL);
		used = len;
	}
	if (keep_rest(c, base + used, len - used) < 0) client_kill(c, "out of memory");
}

/* ---- client lifecycle ---------------------------------------------------- */

static struct client *client_new(int fd, const struct sockaddr *sa, socklen_t salen)
{
	if (S.nclients == S.cap) {
		uint32_t ncap = S.cap ? S.cap * 2 : 64;
		struct client **nc = realloc(S.clients, ncap * sizeof(*nc));
		if (!nc) return NULL;
		S.clients = nc;
		S.cap = ncap;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (!c) return NULL;
	c->fd = fd;
	c->id = ++S.next_id;
	c->state = CS_HTTP;
	c->deadline = S.now + (int64_t)(S.cfg.header_timeout * 1000);
	if ((size_t)salen <= sizeof(c->peer)) memcpy(&c->peer, sa, (size_t)salen);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c);
		return NULL;
	}
	c->slot = S.nclients;
	S.clients[S.nclients] = c;
	S.nclients++;
	S.http_conns++;
	return c;
}

static void client_free(struct client *c)
{
	uint32_t slot = c->slot;
	if (c->ws) {
		S.ws_clients--;
		log_msg(LOG_INFO, "websocket closed", "client", log_num(c->id), "peer", server_peer(c),
			"reason", c->why ? c->why : "", NULL);
	}
	proto_client_gone(c);
	close(c->fd);
	outq_clear(&c->q);
	free(c->rbuf);
	free(c->msg);
	/* Move the last client into the hole so the arrays stay dense. */
	S.nclients--;
	if (slot != S.nclients) {
		S.clients[slot] = S.clients[S.nclients];
		S.clients[slot]->slot = slot;
	}
	free(c);
}

static void accept_clients(void)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(S.listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment rather than spin. */
				log_msg(LOG_WARN, "accept paused", "error", strerror(errno), NULL);
				S.accept_paused_until = S.now + 100;
			}
			return;
		}
		if (S.http_conns >= HTTP_CONN_CAP) {
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
			ssize_t w = write(fd, busy, sizeof(busy) - 1);
			(void)w;
			close(fd);
			S.stats.rejected_full++;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!client_new(fd, (struct sockaddr *)&ss, sl)) {
			close(fd);
			return;
		}
	}
}

/* What epoll watches for is derived from the queue alone: always input,
 * and output while bytes wait for the kernel. Told only on a change. */
static void sync_events(struct client *c)
{
	unsigned want_out = c->q.count > 0;
	if (want_out == c->ev_out || c->state == CS_DEAD) return;
	struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(S.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->ev_out = want_out;
}

/* Writes queued output of every client that got some this turn. */
static void flush_all(void)
{
	struct client *c = S.flush_head;
	S.flush_head = NULL;
	while (c) {
		struct client *next = c->flush_next;
		c->in_flush = 0;
		c->flush_next = NULL;
		if (c->state != CS_DEAD) {
			if (c->dropped) insert_notice(c);
			ssize_t w = outq_write(&c->q, c->fd);
			if (w < 0) {
				client_kill(c, strerror(errno));
			} else {
				S.stats.bytes_out += (uint64_t)w;
				if (c->q.count == 0 && c->state == CS_LINGER && !c->wr_shut) {
					shutdown(c->fd, SHUT_WR);
					c->wr_shut = 1;
				}
				sync_events(c);
			}
		}
		c = next;
	}
}

static void run_timers(void)
{
	int64_t ping_ms = (int64_t)(S.cfg.ping_interval * 1000);
	for (uint32_t i = 0; i < S.nclients; i++) {
		struct client *c = S.clients[i];
		switch (c->state) {
		case CS_HTTP:
			if (S.now >= c->deadline) {
				if (c->got_bytes) http_error(c, 408, "request headers not received in time", NULL);
				else client_kill(c, "idle");
			}
			break;
		case CS_WS:
			if (ping_ms <= 0) break;
			/* §10: no frame at all for twice the interval: drop, no close frame. */
			if (S.now - c->last_rx >= 2 * ping_ms) {
				log_msg(LOG_INFO, "client dropped: silent", "client", log_num(c->id), "peer", server_peer(c), NULL);
				client_kill(c, "silent");
			} else if (S.now >= c->next_ping) {
				client_send(c, frame_ref(S.ping_frame));
				c->next_ping = S.now + ping_ms;
			}
			break;
		case CS_CLOSING:
		case CS_LINGER:
			if (S.now >= c->deadline) client_kill(c, "close timeout");
			break;
		}
	}
}

static void reap(void)
{
	/* A corked flush list may still hold a client about to be freed. */
	if (S.dead_on_flush_list) {
		flush_all();
		S.dead_on_flush_list = 0;
	}
	for (uint32_t i = 0; i < S.nclients;) {
		struct client *c = S.clients[i];
		if (c->state == CS_DEAD) {
			client_free(c);
			continue;   /* slot i now holds the former last client */
		}
		i++;
	}
}

/* ---- start-up and signals ------------------------------------------------ */

static int open_listener(char *err, size_t errlen)
{
	int fd = socket(S.cfg.listen.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) { snprintf(err, errlen, "socket: %s", strerror(errno)); return -1; }
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&S.cfg.listen, S.cfg.listen_len) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", S.cfg.listen_str, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before librdkafka starts its threads, so they inherit the mask
	 * and every signal reaches the signalfd. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void begin_shutdown(void)
{
	S.stopping = 1;
	S.stop_deadline = S.now + (int64_t)(S.cfg.drain_timeout * 1000);
	log_msg(LOG_INFO, "shutting down", "clients", log_num(S.ws_clients),
		"drain_timeout_s", log_num((int64_t)S.cfg.drain_timeout), NULL);
	/* Refuse new connections at once (§10). */
	close(S.listen_fd);
	S.listen_fd = -1;
	S.pfds[PFD_LISTEN].fd = -1;
	for (uint32_t i = 0; i < S.nclients; i++) {
		struct client *c = S.clients[i];
		if (c->state == CS_WS) ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down", S.stop_deadline - S.now);
		else if (c->state == CS_HTTP && c->q.count == 0) client_kill(c, "shutdown");
	}
}

static void handle_signals(int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_msg(LOG_INFO, "SIGHUP ignored (logs go to stderr; nothing to reopen)", NULL);
			continue;
		}
		if (S.stopping) {
			log_msg(LOG_WARN, "second signal: exiting now", NULL);
			_exit(1);
		}
		begin_shutdown();
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void print_version(void)
{
	printf("kbridge %s\n", KBRIDGE_VERSION);
	kafka_print_version();
}

int main(int argc, char **argv)
{
	char err[512];

	config_load(&S.cfg, argc, argv, print_version);
	if (S.cfg.healthcheck) return healthcheck_run(S.cfg.healthcheck);
	log_setup((enum log_level)S.cfg.log_level, S.cfg.log_json);
	S.now = S.start_ms = mono_ms();
	raise_fd_limit();

	/* One empty ping frame shared by every client, never freed. */
	if (!(S.ping_frame = frame_ws(WS_OP_PING, NULL, 0, FRAME_CONTROL))) {
		fprintf(stderr, "kbridge: out of memory\n");
		return 1;
	}
	S.ping_frame->refs = UINT32_MAX;

	int sfd = setup_signals();
	if (sfd < 0) { fprintf(stderr, "kbridge: signals: %s\n", strerror(errno)); return 1; }
	/* Configuration errors (routes, -X) exit 2 before anything starts,
	 * also when the port is taken. */
	if (proto_init(&S.cfg, err, sizeof(err)) < 0 || kafka_check_props(&S.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "kbridge: %s\n", err);
		return 2;
	}
	if ((S.listen_fd = open_listener(err, sizeof(err))) < 0) {
		fprintf(stderr, "kbridge: %s\n", err);
		return 1;
	}
	int kfd = kafka_start(&S.cfg, err, sizeof(err));
	if (kfd == -2) {
		fprintf(stderr, "kbridge: %s\n", err);
		return 2;
	}
	if (kfd < 0) {
		fprintf(stderr, "kbridge: %s\n", err);
		return 1;
	}

	S.cap = 64;
	S.clients = calloc(S.cap, sizeof(*S.clients));
	if (!S.clients) { fprintf(stderr, "kbridge: out of memory\n"); return 1; }
	if ((S.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		fprintf(stderr, "kbridge: epoll: %s\n", strerror(errno));
		return 1;
	}
	S.pfds[PFD_LISTEN] = (struct pollfd){ .fd = S.listen_fd, .events = POLLIN };
	S.pfds[PFD_SIGNAL] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	S.pfds[PFD_KAFKA] = (struct pollfd){ .fd = kfd, .events = POLLIN };
	S.pfds[PFD_CLIENTS] = (struct pollfd){ .fd = S.epfd, .events = POLLIN };

	config_log_summary(&S.cfg);
	S.next_tick = S.now + TICK_MS;

	static struct epoll_event evs[EPOLL_BATCH];
	for (;;) {
		/* Timeout: the next tick or flush, sooner when Kafka has work. */
		int64_t wake = S.next_tick;
		if (S.stopping && S.stop_deadline < wake) wake = S.stop_deadline;
		if (S.accept_paused_until && S.accept_paused_until < wake) wake = S.accept_paused_until;
		if (S.flush_head && S.flush_due < wake) wake = S.flush_due;
		int timeout = kafka_pending() ? 0 : (int)(wake > S.now ? wake - S.now : 0);
		int kt = kafka_timeout_ms();
		if (kt >= 0 && kt < timeout) timeout = kt;
		int ct = conflate_timeout_ms(S.now);
		if (ct >= 0 && ct < timeout) timeout = ct;

		if (S.listen_fd >= 0)
			S.pfds[PFD_LISTEN].fd = S.accept_paused_until > S.now ? -1 : S.listen_fd;

		int n = poll(S.pfds, NPFD, timeout);
		if (n < 0 && errno != EINTR) {
			log_msg(LOG_ERROR, "poll failed", "error", strerror(errno), NULL);
			return 1;
		}
		S.now = mono_ms();
		if (S.accept_paused_until && S.now >= S.accept_paused_until) S.accept_paused_until = 0;

		if (n > 0 && S.pfds[PFD_SIGNAL].revents) handle_signals(sfd);
		if ((n > 0 && S.pfds[PFD_KAFKA].revents) || kafka_pending() || kafka_timeout_ms() == 0) kafka_service();

		/* Ready clients first (events refer to clients that exist now:
		 * nobody is freed before the end of the turn), then new ones. */
		int ne = n > 0 && S.pfds[PFD_CLIENTS].revents ? epoll_wait(S.epfd, evs, EPOLL_BATCH, 0) : 0;
		for (int i = 0; i < ne; i++) {
			struct client *c = evs[i].data.ptr;
			if (c->state == CS_DEAD) continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) client_read(c);
			if ((evs[i].events & EPOLLOUT) && c->state != CS_DEAD) want_flush(c);
		}
		if (n > 0 && S.listen_fd >= 0 && (S.pfds[PFD_LISTEN].revents & POLLIN)) accept_clients();

		if (S.now >= S.next_tick) {
			run_timers();
			proto_tick();
			S.next_tick = S.now + TICK_MS;
		}
		conflate_service(S.now);
		if (S.flush_head && S.now >= S.flush_due) flush_all();
		reap();

		if (S.stopping && (S.nclients == 0 || S.now >= S.stop_deadline)) break;
	}
	log_msg(LOG_INFO, "stopped", "clients_left", log_num(S.nclients), NULL);
	kafka_stop();
	return 0;
}
