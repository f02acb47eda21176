/* server.h - what the loop in kbridge.c offers the other modules: the clock
 * of the current turn, counters, and the ways to answer a client. */
#ifndef KB_SERVER_H
#define KB_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "frame.h"
#include "json.h"
#include "ws.h"

struct server_stats {
	uint64_t accepted;          /* WebSocket upgrades */
	uint64_t rejected_full;     /* 503: --max-clients or connection cap */
	uint64_t rejected_origin;   /* 403 */
	uint64_t rejected_bad;      /* 400/426: an upgrade that is not valid */
	uint64_t http_requests, http_errors;
	uint64_t bytes_out;
	uint64_t dropped;           /* frames dropped by the slow-client policy */
	uint64_t slow_disconnects;
};

int64_t server_now(void);                 /* ms, monotonic, fixed for one loop turn */
int64_t server_uptime_s(void);
const struct config *server_config(void);
struct server_stats *server_stats(void);
uint32_t server_ws_clients(void);
/* All connections, for per-client summaries: i < server_nclients(). */
uint32_t server_nclients(void);
const struct client *server_client(uint32_t i);
const char *server_peer(const struct client *c);   /* "ip:port", static buffer */

/* A server message for c from its JSON text: text frame, or MessagePack in
 * a binary frame on a format=msgpack connection. NULL when out of memory. */
struct frame *frame_for(const struct client *c, const char *json, size_t len, enum frame_kind kind);

/* A WebSocket frame (header + payload) in a new reference-counted buffer. */
struct frame *frame_ws(enum ws_opcode op, const void *payload, size_t len, enum frame_kind kind);

void client_send_always(struct client *c, struct frame *f);

/* Replies: begin writes {"type":TYPE[,"id":ID]; the caller adds fields;
 * send closes the object, queues it to c and frees the buffer. */
void reply_begin(struct jbuf *b, const char *type, const char *id, size_t id_len);
void reply_send(struct client *c, struct jbuf *b);
void reply_error(struct client *c, const char *id, size_t id_len, const char *code, const char *msg);
#endif
