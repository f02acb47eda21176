/* hub.h - routing (docs/architecture.md#layers): routes (topic ->
 * channel + message type), channels, subscriptions with their filters, a key
 * index, and the fan-out of one Kafka record, encoded once, to exactly the
 * clients that asked for it. The cost of a record is O(subscribers of its
 * channel that could match). Also the entry points for snapshots (lvc.c
 * holds the values) and resume (history.c holds the records and gates).
 * Knows clients only as queues to send to; it parses no client messages
 * (proto.c does) and reads no Kafka (records are handed in). */
#ifndef KB_HUB_H
#define KB_HUB_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "filter.h"
#include "json.h"
#include "record.h"
#include "route.h"

struct channel;
struct state_chan;

struct sub {
	struct client *c;
	struct channel *ch;       /* NULL: every channel (action dialect) */
	struct sub *cnext;        /* the client's next subscription */
	uint32_t pos;             /* index in the list that holds it (unkeyed subs) */
	char *spec;               /* canonical JSON of the filter fields, for acks and list */
	uint32_t interval_ms;     /* conflation asked on subscribe, 0 = the client's */
	struct state_chan *st;    /* the state dialect's: the channel's state; never gets records */
	size_t spec_len;
	struct filter f;
};

/* Parses the routes (--topic) and sets up the routing layer (history,
 * last-value cache, envelopes) from cfg. 0, or -1 with a one-line reason
 * in err (a configuration error: exit 2). */
int  hub_init(const struct config *cfg, char *err, size_t errlen);

/* ---- channels and subscriptions --------------------------------------------- */

/* Finds a channel by name, creating it when a route could produce it.
 * NULL: no route can produce that name (UNKNOWN_CHANNEL). */
struct channel *hub_channel(const char *name, size_t len);
/* The channel a topic's records go to, NULL when no route consumes it. */
const struct channel *hub_topic_channel(const char *topic);
const char *hub_channel_name(const struct channel *ch);   /* "*" for NULL */
/* Adds a subscription owning `f` and `spec` (moved in). An identical one
 * (same channel and spec) is not added twice. Returns 1 added, 0 already
 * there, -1 out of memory (f and spec freed either way when not kept). */
int  hub_subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len,
		   uint32_t interval_ms);
/* The same for a client of the state dialect (type=tui|web): the
 * subscription names what state the client sees (state.h) and gets no
 * records. */
int  hub_state_subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len);
/* Removes the client's subscriptions on ch (all_channels: on any channel,
 * ch ignored) whose spec equals spec (spec NULL: all of them). Returns how
 * many. */
int  hub_unsubscribe(struct client *c, struct channel *ch, int all_channels, const char *spec, size_t spec_len);
/* Forgets everything the routing layer holds for c (subscriptions, gates). */
void hub_client_gone(struct client *c);
/* Frees channels no route feeds and nobody subscribes to. Call between
 * requests (the loop's timer tick), never while one is being handled. */
void hub_gc(void);

/* ---- records -------------------------------------------------------------- */

/* Routes one record: assigns its channel seq, updates the last-value cache
 * and the history, encodes it once, queues it to every matching subscriber.
 * Returns 1 routed, 0 no route for its topic. */
int  hub_route(const struct record *r);

/* The snapshot message of channel ch as JSON (docs/protocol.md#snapshots):
 * seq is the channel's last routed seq, data its last-value cache (only
 * what passes `only` when not NULL: the reader's permissions). */
void hub_snapshot_json(struct jbuf *b, const struct channel *ch, const char *id, size_t id_len,
		       const struct filter *only);
/* Replaces the filter of every subscription of c on ch (ch NULL: the
 * every-channel ones) with itself narrowed by `only` (filter_restrict).
 * Returns how many were narrowed to nothing (those are removed), or -1
 * when out of memory. */
int  hub_restrict(struct client *c, const struct channel *ch, const struct filter *only);

/* Resume (docs/protocol.md#resume): c saw `last` of topic:partition.
 * Replays what the history holds after it and returns 0, or returns 1 when
 * Kafka must be asked from *from on (the history does not cover it, or
 * holds more than c's queue takes now: the rest then comes from Kafka at
 * the pace c reads); live records of that partition are then held for c
 * until hub_replay_done. -1 when no route consumes that topic. */
int  hub_resume(struct client *c, const char *topic, int32_t partition, int64_t last, int64_t *from);
/* Before a resume of several partitions: c's gate on each is set at
 * `last` and holds live records, so that what a replay sends before the
 * others have begun carries no position past theirs (SSE ids). 0, or -1
 * when no route consumes the topic or out of memory. */
int  hub_resume_hold(struct client *c, const char *topic, int32_t partition, int64_t last);
/* A record fetched back from Kafka for c (it carries no seq). */
void hub_replay_record(struct client *c, const struct record *r);
/* The replay of topic:partition for c reached Kafka's end (or failed). */
void hub_replay_done(struct client *c, const char *topic, int32_t partition);

/* ---- Server-Sent Events (docs/protocol.md#sse) ----------------------------- */

/* Queues to SSE stream c an `id:` line with its position and a blank line
 * (sets the reader's last event id, dispatches nothing); with heartbeat a
 * `: keep-alive` comment first (a stream with an interval then gets the
 * comment alone: its pending values are not passed yet). Data events go
 * out through hub_route like WebSocket frames, with their ids. */
void hub_sse_position(struct client *c, int heartbeat);

/* ---- introspection (/stats, /metrics, /docs, the Kafka subscription) ------- */

size_t hub_routes(const struct route **out);
/* for (size_t i = 0; hub_channel_next(&i, &name, &subs, &seq);) */
int hub_channel_next(size_t *i, const char **name, uint32_t *subs, uint64_t *seq);
#endif
