/* position.h - the position an SSE stream has reached, as the token of
 * its next `id:` line (docs/protocol.md#sse): for every partition feeding
 * the stream, the offset of the last record it got or passed over. Where
 * the reader's resume gate holds live records for a replay, the gate's
 * place; elsewhere the live consumer's, or the gate's when it is further
 * (a resume from a position this instance has not reached: the gate drops
 * what the reader has). Knows gates (history.h) and the consumer's
 * positions (assign.h); which topics a stream reads, the caller says. */
#ifndef KB_POSITION_H
#define KB_POSITION_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

/* What a stream reads, asked by the routing layer's own answers. */
struct position_reader {
	/* A gate's topic (the routing table's pointer): its name when the
	 * stream reads it, else NULL. */
	const char *(*gate_topic)(const void *topic, void *arg);
	/* The topic named name: its stable name (the pointer tokens compare)
	 * when the stream reads it, else NULL. */
	const char *(*topic)(const char *name, void *arg);
	void *arg;
};

/* The token into out (NUL-terminated). c: the reader, for its gates (NULL:
 * a stream in step with the live consumer has none). topic:partition at
 * offset is the record the event carries (topic: the stable name; NULL:
 * none), whose position it is whatever the rest says (a replayed or held
 * record is behind the consumer). Returns the length, or -1 when it does
 * not fit (sse.h: SSE_POS_MAX partitions, SSE_TOKEN_MAX characters). */
/* A stream whose gates hold nothing, whose replays are over and which no
 * gate puts ahead of the consumer (on a topic it reads) has caught up:
 * its gates go (history_gate_free), and it can share events again. The
 * gates stay for WebSocket clients, where they cost nothing per record. */
void position_settle(struct client *c, const struct position_reader *rd);

ssize_t position_token(const struct client *c, const struct position_reader *rd, const char *topic,
		       int32_t partition, int64_t offset, char *out, size_t cap);
#endif
