/* ssesets.h - while one record is routed, its SSE event for each set of
 * several channels that streams in step with the live consumer read: one
 * id, and one copy, per set instead of per stream (docs/protocol.md#sse).
 * Knows clients' subscriptions (hub.h's struct sub) and frames; the
 * routing layer makes the events. */
#ifndef KB_SSESETS_H
#define KB_SSESETS_H
#include "client.h"
#include "frame.h"

#define SSESETS_MAX 8   /* sets per record; streams of more sets get their own */

/* A record begins (sets may be kept) or ends (they are dropped). */
void ssesets_begin(void);
void ssesets_end(void);
/* The event kept for the set of channels c reads, as a new reference, or
 * NULL (none kept, or no record being routed). */
struct frame *ssesets_get(const struct client *c);
/* Keeps f (a reference is taken) as the event for c's set of channels, while
 * there is room and a record is being routed. */
void ssesets_put(const struct client *c, struct frame *f);
#endif
