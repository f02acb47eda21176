/* envelope.h - one Kafka record as a data message
 * (docs/protocol.md#data-messages): the JSON envelope built once per
 * record, and the WebSocket frame of each format (JSON text, MessagePack
 * binary) and its Server-Sent Event built at most once, on first need, and
 * shared by reference by every client that gets it.
 * Knows records and formats, not subscribers or clients. */
#ifndef KB_ENVELOPE_H
#define KB_ENVELOPE_H
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "json.h"
#include "pmd.h"
#include "record.h"

/* With on, data messages carry the record's headers (--headers). */
void envelope_configure(int headers);

/* The encodings of one record, valid for one routing call. */
struct envelope {
	const struct record *r;
	const char *type, *channel;
	uint64_t seq;             /* 0: no "seq" (a record this instance never routed) */
	int json;                 /* -1 unknown, 0 no, 1 the value is valid JSON */
	struct jbuf text;         /* the JSON envelope, built on first need */
	struct frame *frame[2];   /* [0] JSON, [1] MessagePack, built on first need */
	unsigned failed;          /* bit i: frame[i] could not be built (memory, size); bit 2 + i: sse[i] */
	/* Each format compressed for each window in use (permessage-deflate;
	 * pmd_window: the smallest that reaches across the message), on first
	 * need: the compressed twin, or a reference to the plain frame when
	 * compression does not pay. */
	struct frame *zframe[2][PMD_VARIANTS];
	/* Server-Sent Events (docs/protocol.md#sse), on first need: [0] the
	 * event without id, [1] with the id every stream in step with the
	 * live one shares (the routing layer names it). */
	struct frame *sse[2];
};

void envelope_init(struct envelope *e, const struct record *r, const char *type, const char *channel, uint64_t seq);
/* 1 when the record's value is valid JSON (computed once). */
int  envelope_is_json(struct envelope *e);
/* The record's frame in one format, borrowed until envelope_done (take a
 * reference to keep it). NULL when out of memory or when the message would
 * pass the largest frame (docs/operations.md#limits); e->failed says so. */
struct frame *envelope_frame(struct envelope *e, int msgpack);
/* The same for a client that negotiated permessage-deflate with window
 * zbits (0: none, the plain frame): compressed at most once per format
 * and window, and shared the same way. */
struct frame *envelope_frame_for(struct envelope *e, int msgpack, unsigned zbits);
/* The record's SSE event without an `id:` line (borrowed like
 * envelope_frame), or with the id given the first time it is asked for. */
struct frame *envelope_sse(struct envelope *e, const char *id, size_t id_len);
/* Drops the envelope's own references and buffers. */
void envelope_done(struct envelope *e);
#endif
