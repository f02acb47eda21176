/* session_sse.c - GET /sse (session_sse.h). The response is close-delimited
 * (no Content-Length, no chunking): its body is the event stream until
 * either side closes, so every event frame is queued as the same shared
 * bytes to every stream. Refusals are JSON like the other endpoints'; the
 * subscription's own ({"error","code"}) come from proto_sse. */
#include "session_sse.h"

#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "auth.h"
#include "clock.h"
#include "iplimit.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "proto_sse.h"

/* {"error":message,"code":code}, then close; counted under metric. */
static void refuse(struct client *c, const struct sse_refusal *no, enum metric metric)
{
	struct jbuf b;
	char extra[96] = "";
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "error"); json_cstr(&b, no->message);
	json_key(&b, "code");  json_cstr(&b, no->code);
	json_obj_end(&b);
	json_append(&b, "\n", 1);
	if (no->status == 401)
		snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"kbridge\"\r\n");
	metrics_add(metric, 1);
	if (!b.failed) answer_respond(c, no->status, "application/json", b.buf, b.len, 0, 0, extra);
	json_free(&b);
	metrics_add(M_HTTP_ERRORS, 1);
	client_linger(c);
}

/* The response head: the stream's headers, CORS for an allowed Origin,
 * and the first field of the body (reconnect after 1 s). */
static int head(char *out, size_t cap, const struct http_request *req)
{
	char cors[512] = "";
	answer_add_cors(cors, sizeof(cors), req, NULL);
	return snprintf(out, cap,
			"HTTP/1.1 200 OK\r\n"
			"Content-Type: text/event-stream; charset=utf-8\r\n"
			"Cache-Control: no-store\r\n"
			"X-Accel-Buffering: no\r\n"
			"Connection: close\r\n"
			"%s\r\n", cors);
}

static void serve(struct client *c, const struct http_request *req, int head_only);

void session_sse(struct client *c, const struct http_request *req, int head_only)
{
	if (!answer_origin_allowed(req)) {
		struct sse_refusal no = { 403, "UNAUTHORIZED", "origin not allowed" };
		refuse(c, &no, M_REJECTED_ORIGIN);
		return;
	}
	answer_cors_on(req);
	serve(c, req, head_only);
	answer_cors_on(NULL);
}

static void serve(struct client *c, const struct http_request *req, int head_only)
{
	static const char retry[] = "retry: 1000\n";
	char h[1024];
	int hl = head(h, sizeof(h), req);
	if (hl < 0 || (size_t)hl >= sizeof(h)) {
		answer_error(c, 500, "response head too large", NULL);
		return;
	}
	if (!head_only && (!answer_room(c) || answer_admitted(c, req) < 0)) return;
	struct sse_req r;
	struct sse_refusal no;
	const struct http_header *lei = http_header_get(req, "Last-Event-ID");
	if (proto_sse_parse(req->query, req->query_len, lei ? lei->value : NULL, lei ? lei->value_len : 0, &r, &no) < 0) {
		proto_sse_free(&r);
		refuse(c, &no, M_REJECTED_BAD);
		return;
	}
	if (head_only) {              /* what a GET would begin with, nothing more */
		proto_sse_free(&r);
		struct frame *f = frame_new((size_t)hl, FRAME_REPLY);
		if (f) memcpy(f->data, h, (size_t)hl);
		client_queue(c, f);
		client_linger(c);
		return;
	}
	if (answer_token(c, req, 0) < 0) {
		proto_sse_free(&r);
		return;
	}
	/* From here c is a stream: the head goes first, then whatever the
	 * subscription queues (its start position, a snapshot, a replay). */
	c->sse = 1;
	client_upgrade(c);
	uint32_t before = c->q.count;
	struct frame *f = frame_new((size_t)hl + sizeof(retry) - 1, FRAME_CONTROL);
	if (!f) { client_kill(c, "out of memory"); proto_sse_free(&r); return; }
	memcpy(f->data, h, (size_t)hl);
	memcpy(f->data + hl, retry, sizeof(retry) - 1);
	client_queue(c, f);
	int rc = proto_sse_open(c, &r, &no);
	proto_sse_free(&r);
	if (rc < 0) {
		while (c->q.count > before) outq_remove(&c->q, c->q.count - 1);
		client_unupgrade(c);
		refuse(c, &no, M_REJECTED_BAD);
		return;
	}
	c->ip_counted = (unsigned)iplimit_open(&c->peer.sa);   /* the server's remove_client uncounts */
	metrics_add(M_ACCEPTED, 1);
	c->last_rx = clock_now();
	c->next_ping = clock_now() + SSE_HEARTBEAT_MS;
	char query[512];
	http_query_redact(req->query, req->query_len, "access_token", query, sizeof(query));
	const char *who = auth_identity(c);
	log_msg(LOG_INFO, "sse open", "client", log_num(c->id), "peer", client_peer(c), "query", query,
		"resume", lei && lei->value_len ? "last-event-id" : "no", who ? "identity" : NULL, who, NULL);
}
