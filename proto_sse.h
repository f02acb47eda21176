/* proto_sse.h - the protocol side of a Server-Sent Events stream
 * (docs/protocol.md#sse): GET /sse's query and Last-Event-ID read into
 * the subscribe message they amount to (checked before the response
 * begins, so every refusal is an HTTP status), the subscription made with
 * the same rules as a WebSocket client's, and the heartbeat. */
#ifndef KB_PROTO_SSE_H
#define KB_PROTO_SSE_H
#include <stddef.h>

#include "client.h"
#include "json.h"

/* An SSE request read from its query. */
struct sse_req {
	struct jbuf sub;          /* {"type":"subscribe",...}: channels, keys, filter, snapshot, resume */
	int interval_ms;          /* interval=: conflation, 0 = none */
	char channels[2048];      /* the channels named, comma-separated */
};

/* A refusal: the HTTP status, the error code of docs/protocol.md#errors
 * and one line saying why. */
struct sse_refusal {
	int status;
	const char *code;         /* static text */
	char message[320];
};

/* Reads the query and the Last-Event-ID header's value (NULL when absent;
 * it wins over resume=). 0, or -1 with *no filled (400). Free r with
 * proto_sse_free either way. */
int  proto_sse_parse(const char *query, size_t qlen, const char *last_id, size_t last_len, struct sse_req *r,
		     struct sse_refusal *no);
/* Subscribes c (an SSE stream whose response head is queued) as r asks:
 * its start position, a snapshot when asked and not resuming, the replay
 * of a resume. 0, or -1 with *no filled (400, 401, 403, 404): nothing of
 * it is left subscribed then (the caller drops what it queued). A resume
 * that cannot start now (Kafka replays busy) is no refusal: the stream
 * says so in an `event: error` and ends, and the reader comes back. */
int  proto_sse_open(struct client *c, const struct sse_req *r, struct sse_refusal *no);
void proto_sse_free(struct sse_req *r);
/* Every 15 s: the comment that keeps proxies from closing an idle
 * response, with the stream's position (hub_sse_position). */
#define SSE_HEARTBEAT_MS 15000
void proto_sse_heartbeat(struct client *c);
/* Every tick: a stream with interval= whose events went without id gets
 * an id line (its position, short of what conflation still holds). */
void proto_sse_tick(struct client *c);
#endif
