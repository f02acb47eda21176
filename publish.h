/* publish.h - the producer: records that clients publish (the WebSocket
 * publish message, commands, POST /publish) go to Kafka through one
 * librdkafka producer, idempotent with acks=all (docs/protocol.md#publishing).
 * Its delivery reports wake the loop through the producer queue's event fd,
 * like the consumer's records. Kafka layer: it knows no clients. A sender
 * is an opaque owner with a hook that hears the outcome once: Kafka's
 * acknowledgement, Kafka's error, or --publish-timeout passing without
 * either. Nothing here blocks: a full producer queue is an error at once. */
#ifndef KB_PUBLISH_H
#define KB_PUBLISH_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A --publish channel or a --command type, and the topic it writes to. */
struct publish_route;

/* Reads --publish and --command (a channel or a type named twice, an empty
 * name or topic: -1 with the reason in err, a configuration error). */
int  publish_configure(const struct config *cfg, char *err, size_t errlen);
/* Starts the producer when any route exists (demo_bootstrap: --demo's mock
 * cluster, else NULL: --brokers and -X). Returns the fd that becomes
 * readable when delivery reports wait, -2 when nothing is configured
 * (no producer), or -1 with a one-line reason in err. */
int  publish_start(const char *demo_bootstrap, char *err, size_t errlen);

/* The route of a --publish channel or a --command type; NULL: none. */
const struct publish_route *publish_channel(const char *name, size_t len);
const struct publish_route *publish_command(const char *name, size_t len);
const char *publish_route_name(const struct publish_route *r);
const char *publish_route_topic(const struct publish_route *r);
/* for (size_t i = 0; (r = publish_route_next(&i, commands));) the routes
 * of --publish (commands 0) or of --command (1), in the order given. */
const struct publish_route *publish_route_next(size_t *i, int commands);

/* One record to write. key NULL: none. Header values are bytes. */
struct publish_header { const char *name; size_t name_len; const char *value; size_t value_len; };
struct publish_record {
	const char *value; size_t value_len;
	const char *key; size_t key_len;
	const struct publish_header *headers; size_t nheaders;
};

/* The outcome of one publish, given once to its hook. */
struct publish_outcome {
	int ok;                      /* 1: Kafka acknowledged (topic, partition, offset) */
	const char *topic;
	int32_t partition;
	int64_t offset;
	const char *error;           /* when !ok: Kafka's reason, or the timeout's */
};
/* note: the bytes given to publish_send, as they were. */
typedef void publish_done_fn(void *owner, const void *note, size_t note_len, const struct publish_outcome *o);

enum publish_refusal {
	PUBLISH_QUEUED = 0,
	PUBLISH_FULL = -1,           /* librdkafka's queue is full: RATE_LIMITED, nothing written */
	PUBLISH_TOO_LARGE = -2,      /* over message.max.bytes */
	PUBLISH_STOPPING = -3,       /* shutting down: nothing written */
	PUBLISH_ERROR = -4,          /* any other refusal: publish_refusal_text() */
};
/* Hands rec to librdkafka for r's topic. PUBLISH_QUEUED: done(owner,
 * note...) runs exactly once later, from publish_service(), unless
 * publish_owner_gone(owner) came first. Otherwise nothing was written and
 * done never runs. note (copied) travels with the record. */
int  publish_send(const struct publish_route *r, const struct publish_record *rec, void *owner,
		  publish_done_fn *done, const void *note, size_t note_len);
/* A publish for r refused before the producer (--max-inflight): counted
 * as rate_limited like a full queue. */
void publish_rate_limited(const struct publish_route *r);
/* A publish for r answered PUBLISH_FAILED (or 503) without reaching the
 * producer (shutting down, out of memory): counted as failed, as Kafka's
 * refusals are. publish_send counts its own. */
void publish_refused(const struct publish_route *r);
/* Why the last publish_send was refused (one line). */
const char *publish_refusal_text(void);

/* Serves delivery reports and timeouts: call when the fd is readable or
 * publish_timeout_ms() says 0. */
void publish_service(void);
/* ms until the nearest publish deadline, -1 when none. */
int  publish_timeout_ms(void);
/* owner is going away: its publishes still complete in Kafka (and are
 * counted) but done is not called for them. */
void publish_owner_gone(void *owner);
/* Shutting down: new publishes are refused, and every publish not yet
 * answered is answered (PUBLISH_FAILED) by deadline_ms (turn clock) at
 * the latest. */
void publish_drain(int64_t deadline_ms);
/* Publishes given to librdkafka and not yet answered. */
uint32_t publish_inflight(void);
/* Purges what is left (their owners are gone) and destroys the producer. */
void publish_stop(void);
#endif
