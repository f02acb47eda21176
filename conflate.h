/* conflate.h - per-client conflation (docs/protocol.md#conflation): at most
 * one message per channel and key per interval, always the newest, and
 * every key that changed in an interval is delivered. Part of the client
 * layer: it holds frames for a client and hands them to client_send. */
#ifndef KB_CONFLATE_H
#define KB_CONFLATE_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "frame.h"

/* Where a record sits in Kafka; topic is a stable pointer to its name
 * (the routing table's), compared as a pointer. */
struct conflate_at {
	const char *topic;
	int32_t partition;
	int64_t offset;
};

/* Delivers f (a record's frame; the caller's reference moves in) to c now,
 * or holds it as the newest of its channel and key until the interval
 * since that key's last delivery has passed. at: the record's place. */
void conflate_offer(struct client *c, const void *chan, const void *key, size_t key_len,
		    struct frame *f, uint32_t interval_ms, struct conflate_at at);
/* Sends what is due. Call every loop turn (cheap when nothing waits). */
void conflate_service(int64_t now);
/* ms until something is due, -1 when nothing waits. */
int  conflate_timeout_ms(int64_t now);
/* Forgets what c holds for chan (a snapshot is about to cover it, or c
 * may no longer read it); chan NULL: for every channel. */
void conflate_drop_channel(struct client *c, const void *chan);
void conflate_client_gone(struct client *c);
/* The lowest offset of topic:partition held for c: 1 and *offset, or 0
 * when none is (an SSE stream's position must not pass it). */
int  conflate_first_held(const struct client *c, const char *topic, int32_t partition, int64_t *offset);
#endif
