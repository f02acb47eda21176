/* session.c - the session layer (session.h): what a peer says. Bytes read
 * by the server become, in CS_HTTP, request heads answered from the plain
 * endpoints (endpoints.c) or turned into a WebSocket upgrade
 * (RFC 6455 §4.2); in CS_WS and CS_CLOSING, frames assembled into messages
 * (fragments, UTF-8 of text, control frames, the close handshake, the
 * --max-message and --client-rate limits) and handed as parsed JSON to
 * the protocol layer (proto.c). MessagePack control messages are
 * transcoded to JSON first, so proto.c sees one form.
 * OPTIONS and the CORS headers of the JSON and text endpoints are answered
 * here too (cors.c says what they hold).
 * It never reads or writes sockets: the server does, the client layer
 * queues. Everything here runs inside one call from the server and leaves
 * the client in a state the server acts on (more output, linger, dead). */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "answer.h"
#include "auth.h"
#include "clock.h"
#include "cors.h"
#include "endpoints.h"
#include "http.h"
#include "iplimit.h"
#include "json.h"
#include "json_parse.h"
#include "log.h"
#include "metrics.h"
#include "msgpack.h"
#include "pmd.h"
#include "proto.h"
#include "proto_publish.h"
#include "session_post.h"
#include "session_sse.h"
#include "utf8.h"
#include "ws.h"

#define MAX_TOKENS          512    /* JSON tokens in one control message */
#define MAX_DEPTH           16     /* JSON nesting in one control message */
#define RATE_LIMIT_CLOSE_MS 10000  /* ten seconds over --client-rate in a row: close 1008 */
#define RATE_LIMIT_QUIET_MS 1000   /* a run of RATE_LIMITED ends after this long without one */

static struct {
	const struct config *cfg;
	int body_wait;               /* process_http: a publish's head came, its body is incomplete */
} SS;

/* What a client pipelined behind a publish, read once it was answered. */
static void input_more(struct client *c)
{
	if (!c->rlen) return;
	size_t used = session_input(c, c->rbuf, c->rlen);
	if (c->state == CS_DEAD || c->state == CS_LINGER) {
		c->rlen = 0;
		return;
	}
	memmove(c->rbuf, c->rbuf + used, c->rlen - used);
	c->rlen -= (uint32_t)used;
}

void session_init(const struct config *cfg)
{
	SS.cfg = cfg;
	answer_init(cfg);
	session_post_init(cfg, input_more);
	iplimit_init(cfg->max_clients_per_ip, cfg->upgrade_rate);
	frame_deflate_min(cfg->deflate_min_size);
}

/* The bytes a message may take as it arrives: --max-message, or for a
 * compressed one what may still inflate to no more (--max-message bounds
 * the inflated size, and DEFLATE can grow what does not compress by up to
 * an eighth: fixed Huffman codes of 9 bits). */
static size_t message_max(int compressed)
{
	size_t m = SS.cfg->max_message;
	return compressed ? m + m / 8 + 64 : m;
}

void session_drain(int64_t deadline_ms)
{
	answer_drain();
	session_post_drain();
	proto_publish_drain(deadline_ms);
}

/* ---- WebSocket messages -------------------------------------------------- */

/* Token bucket of --client-rate messages per second, burst twice that. */
static int rate_ok(struct client *c)
{
	double rate = (double)SS.cfg->client_rate;
	double elapsed = (double)(clock_now() - c->rl_last) / 1000.0;
	c->rl_last = clock_now();
	c->rl_tokens += (float)(elapsed * rate);
	if (c->rl_tokens > 2 * rate) c->rl_tokens = (float)(2 * rate);
	if (c->rl_tokens >= 1) {
		c->rl_tokens -= 1;
		/* A flood lets a message through whenever a token refills: the
		 * run only ends after a quiet second without RATE_LIMITED. */
		if (c->rl_since && clock_now() - (c->rl_since + c->rl_latest) >= RATE_LIMIT_QUIET_MS) c->rl_since = 0;
		return 1;
	}
	if (!c->rl_since) c->rl_since = clock_now();
	c->rl_latest = (uint32_t)(clock_now() - c->rl_since);
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

/* Over the limit for too long: closed (1008). 1 when it was. */
static int rate_close_due(struct client *c)
{
	if (clock_now() - c->rl_since < RATE_LIMIT_CLOSE_MS) return 0;
	log_msg(LOG_WARN, "client closed for exceeding the rate limit", "client", log_num(c->id), "peer", client_peer(c), NULL);
	client_ws_close(c, WS_CLOSE_POLICY, "rate limit exceeded", CLIENT_CLOSE_WAIT_MS);
	return 1;
}

/* The rate limit (--client-rate): 1 when this message is not to be handled; a client
 * over the limit for too long is closed, else told RATE_LIMITED. */
static int rate_limited(struct client *c, const char *id, size_t id_len)
{
	if (rate_ok(c)) return 0;
	if (!rate_close_due(c)) reply_error(c, id, id_len, "RATE_LIMITED", "too many messages: this one was ignored");
	return 1;
}

static void handle_parsed(struct client *c, int binary, const char *m, const struct json_tok *tok, int n,
			  const char *id, size_t id_len);

/* One complete client message. The order of checks is the protocol's:
 * the rate limit applies to every message, valid or not (so garbage cannot
 * flood either), except a publish that goes to Kafka; and the id is found
 * first so even errors echo it. Only a JSON object reaches the protocol
 * layer. */
static void handle_message(struct client *c, int binary, const char *m, size_t len)
{
	/* MessagePack messages become JSON and are handled as such (as deep
	 * as a record may be: the JSON parse below bounds control messages). */
	if (binary && c->msgpack) {
		struct jbuf js;
		json_init(&js);
		if (mp_to_json(&js, (const unsigned char *)m, len, JSON_VALIDATE_MAX_DEPTH) < 0 || js.failed) {
			/* Its id still answers, when it has one we can read. */
			json_free(&js);
			json_init(&js);
			int has_id = mp_map_field_json(&js, (const unsigned char *)m, len, "id", MAX_DEPTH) == 0 && !js.failed;
			if (!rate_limited(c, has_id ? js.buf : NULL, has_id ? js.len : 0))
				reply_error(c, has_id ? js.buf : NULL, has_id ? js.len : 0, "INVALID_JSON",
					    "message is not valid MessagePack, or nested deeper than 63 levels");
			json_free(&js);
			return;
		}
		handle_message(c, 0, js.buf, js.len);
		json_free(&js);
		return;
	}
	/* Parsed once into tokens on the stack: bounded by MAX_TOKENS and
	 * MAX_DEPTH whatever the client sends. */
	struct json_tok stack_tok[MAX_TOKENS], *tok = stack_tok, *big = NULL;
	int n = binary ? JSON_EINVAL : json_parse(m, len, tok, MAX_TOKENS, MAX_DEPTH);
	/* A publish carries a record (up to --max-message) that may hold
	 * more, and deeper, JSON than a control message: such a message is
	 * parsed again with tokens of its own. Whether it is one is read off
	 * the text first, so nothing else gets that far. */
	int publish = !binary && proto_publish_text(m, len);
	if (publish && (n == JSON_ETOOMANY || n == JSON_EDEPTH)) {
		int nb = json_parse_alloc(m, len, JSON_PARSE_MAX_DEPTH, &big);
		if (nb > 0) {
			tok = big;
			n = nb;
		}
	}
	size_t id_len = 0;
	const char *id = message_id(m, tok, n, &id_len);
	/* Valid JSON beyond the parser's limits still has its id echoed. */
	if (n == JSON_ETOOMANY || n == JSON_EDEPTH) {
		if (!json_top_field(m, len, "id", 2, &id, &id_len)) id = NULL;
	}
	/* Publishes are paced by their acknowledgements (--max-inflight),
	 * not by --client-rate; one refused at once (answered with an error)
	 * costs like a control message, so refusals cannot flood. */
	if (!publish && rate_limited(c, id, id_len)) {
		free(big);
		return;
	}
	uint16_t before = c->publishing;
	handle_parsed(c, binary, m, tok, n, id, id_len);
	if (publish && c->publishing <= before && !rate_ok(c)) rate_close_due(c);
	free(big);
}

/* The checks after the rate limit, then the protocol layer. */
static void handle_parsed(struct client *c, int binary, const char *m, const struct json_tok *tok, int n,
			  const char *id, size_t id_len)
{
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
	/* The id is echoed verbatim, whatever JSON value it is. */
	struct msg_ctx ctx = { .c = c, .src = m, .tok = tok, .ntok = n, .id = id, .id_len = id_len };
	proto_handle(&ctx);
}

/* Appends a fragment to the message being assembled, enforcing
 * --max-message. The buffer doubles but never past the limit, and is freed
 * with the message (msg_reset): an idle client holds none. Returns 0 or a
 * negative close code. */
static int msg_append(struct client *c, const unsigned char *p, size_t n)
{
	size_t max = message_max(c->msg_z);
	if (n == 0) return 0;    /* empty fragments are legal (RFC 6455 §5.4) */
	if ((uint64_t)c->msg_len + n > max) return -WS_CLOSE_TOO_BIG;
	if (c->msg_len + n > c->msg_cap) {
		size_t cap = c->msg_cap ? c->msg_cap : 256;
		while (cap < c->msg_len + n) cap *= 2;
		if (cap > max) cap = max;
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
	c->msg_z = 0;
	c->utf8 = UTF8_ACCEPT;
}

/* A compressed message, whole (RFC 7692 §7.2.2): inflated under
 * --max-message into pmd's buffer, its text checked as UTF-8 only then,
 * and handed on like any message. Nothing of it is kept afterwards. */
static void handle_compressed(struct client *c, int binary, const unsigned char *p, size_t n)
{
	const unsigned char *m;
	size_t mlen;
	unsigned code = 0;
	const char *why = NULL;
	if (c->state != CS_WS) return;   /* closing: messages are no longer read */
	switch (pmd_inflate(p, n, SS.cfg->max_message, &m, &mlen)) {
	case PMD_OK:
		if (binary || utf8_valid(m, mlen)) handle_message(c, binary, (const char *)m, mlen);
		else code = WS_CLOSE_BAD_DATA, why = "text is not valid UTF-8";
		break;
	case PMD_TOO_BIG:   code = WS_CLOSE_TOO_BIG, why = "message too big"; break;
	case PMD_BAD_DATA:  code = WS_CLOSE_BAD_DATA, why = "compressed data does not inflate"; break;
	case PMD_NO_MEMORY: code = WS_CLOSE_INTERNAL, why = "out of memory"; break;
	}
	pmd_trim();   /* whatever came of it: a bomb's buffer does not stay */
	if (code) client_ws_fail(c, code, why);
}

/* The peer's close frame (RFC 6455 §5.5.1, §7.4): a malformed one fails
 * the connection; a valid one is echoed (unless ours went first) and the
 * connection lingers until the peer's FIN. */
static void handle_close_frame(struct client *c, const unsigned char *p, size_t n)
{
	unsigned code = 0;
	if (n == 1) { client_ws_fail(c, WS_CLOSE_PROTOCOL, "close payload of one byte"); return; }
	if (n >= 2) {
		code = (unsigned)p[0] << 8 | p[1];
		if (!ws_close_code_valid(code)) { client_ws_fail(c, WS_CLOSE_PROTOCOL, "invalid close code"); return; }
		if (!utf8_valid(p + 2, n - 2)) { client_ws_fail(c, WS_CLOSE_BAD_DATA, "close reason is not UTF-8"); return; }
	}
	if (!c->why) c->why = c->close_sent ? "close handshake complete" : "client closed";
	/* RFC 6455 §5.5.1: answer with a close echoing the status code, then close TCP. */
	if (!c->close_sent) {
		client_drop_queued(c);
		client_close_frame(c, code, NULL);
	}
	client_linger(c);
}

/* Feeds a text message's next bytes to its UTF-8 validator, starting from
 * state: invalid text fails the connection with 1007 at the first byte
 * that makes it impossible (RFC 6455 §8.1), or at the end of a message
 * that stops inside a code point. Returns 1 while the text is valid. */
static int text_ok(struct client *c, uint32_t state, const unsigned char *p, size_t n, int fin)
{
	c->utf8 = utf8_feed(state, p, n);
	if (c->utf8 == UTF8_REJECT || (fin && c->utf8 != UTF8_ACCEPT)) {
		client_ws_fail(c, WS_CLOSE_BAD_DATA, "text is not valid UTF-8");
		return 0;
	}
	return 1;
}

/* One complete client frame, payload unmasked. Control frames may arrive
 * between the fragments of a message (RFC 6455 §5.4) and are answered at
 * once; data frames either form a message alone or are assembled. In
 * CS_CLOSING frames are still read (the peer's close frame is due) but
 * messages are no longer handled. */
static void handle_frame(struct client *c, const struct ws_frame *f, unsigned char *p)
{
	size_t n = (size_t)f->len;
	switch (f->opcode) {
	case WS_OP_PING:
		/* RFC 6455 §5.5.3: the pong carries the ping's payload. */
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
		if (c->msg_op) { client_ws_fail(c, WS_CLOSE_PROTOCOL, "new message inside a fragmented one"); return; }
		if (f->rsv1) {  /* compressed: text is checked once inflated */
			if (f->fin) {
				handle_compressed(c, f->opcode == WS_OP_BINARY, p, n);
				return;
			}
			c->msg_z = 1;
		} else if (f->opcode == WS_OP_TEXT && !text_ok(c, UTF8_ACCEPT, p, n, f->fin)) {
			return;
		}
		if (f->fin) {   /* the common case: one frame, no copy */
			c->utf8 = UTF8_ACCEPT;
			if (c->state == CS_WS) handle_message(c, f->opcode == WS_OP_BINARY, (const char *)p, n);
			return;
		}
		c->msg_op = (uint8_t)f->opcode;
		break;
	case WS_OP_CONT:
		if (!c->msg_op) { client_ws_fail(c, WS_CLOSE_PROTOCOL, "continuation without a message"); return; }
		if (c->msg_op == WS_OP_TEXT && !c->msg_z && !text_ok(c, c->utf8, p, n, f->fin)) return;
		break;
	}
	int rc = msg_append(c, p, n);
	if (rc < 0) { client_ws_fail(c, (unsigned)-rc, rc == -WS_CLOSE_TOO_BIG ? "message too big" : "out of memory"); return; }
	if (f->fin) {
		if (c->msg_z) handle_compressed(c, c->msg_op == WS_OP_BINARY, c->msg, c->msg_len);
		else if (c->state == CS_WS) handle_message(c, c->msg_op == WS_OP_BINARY, (const char *)c->msg, c->msg_len);
		msg_reset(c);
	}
}

/* Consumes complete frames from buf; returns bytes consumed (a frame not
 * yet whole stays for the next read). Unmasking happens in place, in the
 * read buffer: a single-frame message is handled without a copy. */
static size_t process_ws(struct client *c, unsigned char *buf, size_t len)
{
	size_t pos = 0;
	while (pos < len && (c->state == CS_WS || c->state == CS_CLOSING)) {
		struct ws_frame f;
		int hl = ws_parse_header(buf + pos, len - pos, &f);
		if (hl == 0) break;
		if (hl < 0) { client_ws_fail(c, (unsigned)-hl, "protocol error"); break; }
		/* RFC 7692 §6.1: RSV1 marks the first frame of a compressed
		 * message, and only when permessage-deflate was negotiated. */
		if (f.rsv1 && (!c->zbits || f.opcode == WS_OP_CONT)) {
			client_ws_fail(c, WS_CLOSE_PROTOCOL, c->zbits ? "RSV1 on a continuation frame" :
							    "RSV1 set without permessage-deflate");
			break;
		}
		/* Refuse oversized data before buffering it (1009); a
		 * compressed message is bounded by what it inflates to. */
		int z = f.rsv1 || (f.opcode == WS_OP_CONT && c->msg_z);
		if (f.opcode < WS_OP_CLOSE && (uint64_t)c->msg_len + f.len > message_max(z)) {
			client_ws_fail(c, WS_CLOSE_TOO_BIG, "message too big");
			break;
		}
		if (len - pos - (size_t)hl < f.len) break;
		unsigned char *p = buf + pos + hl;
		ws_unmask(p, (size_t)f.len, f.mask, 0);
		pos += (size_t)hl + (size_t)f.len;
		c->last_rx = clock_now();        /* any frame proves the peer alive */
		handle_frame(c, &f, p);
	}
	return pos;
}

/* ---- HTTP ---------------------------------------------------------------- */
/* The HTTP answers themselves (status, CORS, tokens, per-address limits)
 * are answer.c's. */

/* Fields an upgrade must carry once (RFC 6455 §11.3.1, §11.3.5), and
 * Upgrade too: a proxy in front and kbridge must not read one request two
 * ways. The name of the first one given twice, or NULL. */
static const char *repeated_field(const struct http_request *req)
{
	static const char *const once[] = { "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Upgrade" };
	for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
		if (http_header_count(req, once[i]) > 1) return once[i];
	return NULL;
}

/* The first permessage-deflate offer of the request kbridge can honour,
 * over every Sec-WebSocket-Extensions line in order (RFC 7692 §5.1); 1 and
 * *p, or 0. */
static int deflate_offered(const struct http_request *req, struct pmd_params *p)
{
	static const char name[] = "Sec-WebSocket-Extensions";
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len == sizeof(name) - 1 && !strncasecmp(h->name, name, sizeof(name) - 1) &&
		    pmd_offer(h->value, h->value_len, p))
			return 1;
	}
	return 0;
}

/* Handles GET /ws...: validates the upgrade (RFC 6455 §4.2.1) and switches. */
static void handle_upgrade(struct client *c, const struct http_request *req)
{
	const struct http_header *ver = http_header_get(req, "Sec-WebSocket-Version");
	const struct http_header *key = http_header_get(req, "Sec-WebSocket-Key");
	const char *twice = repeated_field(req);
	char accept[WS_ACCEPT_LEN + 1];

	if (twice) {
		char msg[80];
		snprintf(msg, sizeof(msg), "more than one %s header", twice);
		answer_refused(c, 400, msg, NULL);
		return;
	}
	if (!http_header_has_token(req, "Upgrade", "websocket") ||
	    !http_header_has_token(req, "Connection", "upgrade")) {
		answer_refused(c, 426, "this endpoint needs a WebSocket upgrade",
			   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
		return;
	}
	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0 || req->minor < 1) {
		answer_refused(c, 400, "a WebSocket upgrade must be an HTTP/1.1 GET", NULL);
		return;
	}
	if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
		answer_refused(c, 426, "unsupported WebSocket version: only 13 is spoken",
			   "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (!key || ws_accept_key(key->value, key->value_len, accept) < 0) {
		answer_refused(c, 400, "missing or invalid Sec-WebSocket-Key", NULL);
		return;
	}
	if (!answer_origin_allowed(req)) {
		metrics_add(M_REJECTED_ORIGIN, 1);
		answer_error(c, 403, "origin not allowed", NULL);
		return;
	}
	if (!answer_room(c) || answer_admitted(c, req) < 0) return;
	/* Validate query parameters before switching: errors are still HTTP. */
	char err[160];
	struct upgrade_opts uo;
	if (proto_upgrade_parse(req->query, req->query_len, &uo, err, sizeof(err)) < 0) {
		answer_refused(c, 400, err, NULL);
		return;
	}
	if (answer_token(c, req, 0) < 0) return;

	/* The 101 is queued like any frame; from here on the bytes of this
	 * connection are WebSocket frames (the client's first may already be
	 * in the same read). */
	struct pmd_params zp;
	char ext[32 + PMD_ANSWER_MAX] = "";
	int deflate = SS.cfg->deflate && deflate_offered(req, &zp);
	if (deflate) {
		memcpy(ext, "Sec-WebSocket-Extensions: ", 26);
		if (pmd_answer(&zp, ext + 26, PMD_ANSWER_MAX) < 0) deflate = 0, ext[0] = '\0';
		else strcat(ext, "\r\n");
	}
	char resp[384];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept, ext);
	struct frame *f = frame_new((size_t)n, FRAME_CONTROL);
	if (!f) { client_kill(c, "out of memory"); return; }
	memcpy(f->data, resp, (size_t)n);
	client_queue(c, f);

	c->zbits = deflate ? zp.server_bits : 0;
	client_upgrade(c);
	c->ip_counted = (unsigned)iplimit_open(&c->peer.sa);   /* the server's remove_client uncounts */
	metrics_add(M_ACCEPTED, 1);
	c->last_rx = clock_now();
	c->next_ping = clock_now() + (int64_t)(SS.cfg->ping_interval * 1000);
	c->rl_last = clock_now();
	c->rl_tokens = (float)(2 * SS.cfg->client_rate);   /* a full burst to start with */
	c->utf8 = UTF8_ACCEPT;
	/* The query as asked, but never a token (access_token=). */
	char query[512];
	http_query_redact(req->query, req->query_len, "access_token", query, sizeof(query));
	/* Last: a client without identity (no token, no certificate) ends
	 * the list there. */
	const char *who = auth_identity(c);
	log_msg(LOG_INFO, "websocket open", "client", log_num(c->id), "peer", client_peer(c),
		"path", log_str(req->path, req->path_len), "query", query, "deflate", c->zbits ? "on" : "off",
		who ? "identity" : NULL, who, NULL);
	proto_upgrade_apply(c, &uo);
}

/* After an answer: the connection closes (all len bytes consumed), or the
 * next request has the same time to arrive and an idle connection that
 * sends nothing more is closed silently (used bytes consumed). */
static size_t http_next(struct client *c, int keep, size_t len, size_t used)
{
	if (!keep) {
		client_linger(c);
		return len;
	}
	c->deadline = clock_now() + (int64_t)(SS.cfg->header_timeout * 1000);
	c->got_bytes = 0;
	return used;
}

/* One request head from buf. Returns bytes consumed, 0 when the head is
 * incomplete; after an answer that ends the connection, all of buf (what
 * follows is not read as requests). */
static size_t process_http(struct client *c, unsigned char *buf, size_t len)
{
	struct http_request req;
	ssize_t r = http_parse_request((const char *)buf, len, &req);
	if (len) c->got_bytes = 1;
	if (r == 0) return 0;
	if (r < 0) {
		int st = (int)-r;
		answer_error(c, st, st == 431 ? "request header fields too large" :
				  st == 505 ? "HTTP version not supported" : "malformed request", NULL);
		return len;
	}
	int get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
	int head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
	int options = req.method_len == 7 && memcmp(req.method, "OPTIONS", 7) == 0;
	int post = req.method_len == 4 && memcmp(req.method, "POST", 4) == 0;
	int keep = http_keep_alive(&req);
	int publish = session_post_path(c, &req) && (!options || session_post_channel(&req));
	const char *body = NULL;
	size_t body_len = 0;
	if (post && publish) {
		/* The whole request first, so it is counted and served once. */
		int b = session_post_body(c, (const char *)buf, len, (size_t)r, &req, &body, &body_len);
		if (b < 0) return len;
		if (b == 0) {
			SS.body_wait = 1;
			return 0;
		}
	} else if (req.content_length > 0 || req.transfer_encoding) {
		/* No other request has a body we read: it cannot share the connection. */
		keep = 0;
	}
	/* RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request
	 * with more than one, is answered 400. */
	size_t hosts = http_header_count(&req, "Host");
	if (hosts > 1 || (req.minor >= 1 && !hosts)) {
		answer_error(c, 400, hosts ? "more than one Host header" : "missing Host header", NULL);
		return len;
	}
	metrics_add(M_HTTP_REQUESTS, 1);

	/* /ws and /ws/<anything> upgrade, except /ws/stats, which is always
	 * the stats endpoint; the admin port has no WebSockets. */
	int is_ws_path = !c->admin &&
			 (http_path_is(&req, "/ws") || (req.path_len >= 4 && memcmp(req.path, "/ws/", 4) == 0)) &&
			 !http_path_is(&req, "/ws/stats");
	if (publish && (post || options)) {
		if (options) {
			struct endpoint_info pi = { .methods = "POST, OPTIONS", .cors = 1 };
			answer_options(c, &req, &pi, keep);
		} else {
			session_post(c, &req, body, body_len, keep);
			if (c->state != CS_HTTP) return len;
			if (c->publishing) return (size_t)r + body_len;   /* the answer waits for Kafka */
		}
		return http_next(c, keep, len, (size_t)r + body_len);
	}
	if (!get && !head && !options) {
		answer_error(c, 405, "method not allowed", publish ? "Allow: POST, OPTIONS\r\n" : "Allow: GET, HEAD, OPTIONS\r\n");
		return len;
	}
	if (publish) {   /* GET or HEAD (the head alone) of a publish path */
		static const char e405[] = "{\"error\":\"method not allowed\"}\n";
		answer_respond(c, 405, "application/json", e405, sizeof(e405) - 1, 0, head, "Allow: POST, OPTIONS\r\n");
		metrics_add(M_HTTP_ERRORS, 1);
		client_linger(c);
		return len;
	}
	struct endpoint_info ei = { .methods = "GET, HEAD, OPTIONS", .cors = 0 };   /* /ws: no CORS */
	int known = is_ws_path || endpoints_find(&req, c->admin, &ei) == 0;
	if (is_ws_path && !options) {
		handle_upgrade(c, &req);
		return (size_t)r;
	}
	/* GET /sse: the same streams as an event-stream response. */
	int is_sse = !c->admin && http_path_is(&req, "/sse");
	if (is_sse && !options) {
		session_sse(c, &req, head);
		return len;          /* what follows the request is never read */
	}
	if (is_sse) ei = (struct endpoint_info){ .methods = "GET, HEAD, OPTIONS", .cors = 1 };
	known |= is_sse;
	if (options && known) {
		answer_options(c, &req, &ei, keep);
	} else {
		struct http_out out = { .status = 404 };
		endpoints_handle(&req, c->admin, &out);
		char extra[1024];
		snprintf(extra, sizeof(extra), "%s", out.extra ? out.extra : "");
		if (known && ei.cors) answer_add_cors(extra, sizeof(extra), &req, NULL);
		answer_respond(c, out.status, out.ctype ? out.ctype : "application/json", out.body.buf, out.body.len,
			     keep, head, extra);
		json_free(&out.body);
	}
	return http_next(c, keep, len, (size_t)r);
}

/* ---- input --------------------------------------------------------------- */

/* Pipelined requests and several frames per read are handled in one
 * call; a request that upgrades switches the rest of buf to frames. */
size_t session_input(struct client *c, unsigned char *buf, size_t len)
{
	size_t pos = 0;
	SS.body_wait = 0;
	while (pos < len) {
		size_t used;
		if (c->state == CS_HTTP && c->publishing) break;   /* one publish at a time (session_post.h) */
		if (c->state == CS_HTTP) used = process_http(c, buf + pos, len - pos);
		else if (c->sse) used = len - pos;   /* an SSE stream's reader has nothing more to say */
		else if (c->state == CS_WS || c->state == CS_CLOSING) used = process_ws(c, buf + pos, len - pos);
		else used = len - pos;   /* lingering or dead: discard */
		if (used == 0) break;
		pos += used;
	}
	/* A head that has not ended within the limit never will: 431. A
	 * publish's body (at most --max-message) and what is pipelined
	 * behind a publish waiting for Kafka have their own bounds. */
	if (c->state == CS_HTTP && c->publishing) {
		if (len - pos > HTTP_MAX_HEADER_BYTES + SS.cfg->max_message) client_kill(c, "pipelined too much behind a publish");
	} else if (c->state == CS_HTTP && !SS.body_wait && len - pos >= HTTP_MAX_HEADER_BYTES) {
		answer_error(c, 431, "request header fields too large", NULL);
		pos = len;
	}
	return pos;
}

void session_head_timeout(struct client *c)
{
	/* A peer that sent nothing is not owed an answer. */
	if (c->got_bytes) answer_error(c, 408, "request headers not received in time", NULL);
	else client_kill(c, "idle");
}

