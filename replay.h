/* replay.h - resume from Kafka (docs/protocol.md#resume): records a client
 * missed that the in-memory history no longer holds are fetched back from
 * Kafka by a consumer of their own, without blocking the loop. The owner
 * of a replay (a client, to this module an opaque pointer) gets the
 * records, a gap when Kafka no longer holds what was asked, and the end of
 * each partition, through hooks registered once at start-up. */
#ifndef KB_REPLAY_H
#define KB_REPLAY_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"

struct replay_hooks {
	/* A record of one of the owner's partitions, in offset order. */
	void (*record)(void *owner, const struct record *r);
	/* Kafka no longer holds the records after the asked offset; earliest
	 * is the first offset it has (-1 unknown). cookie: as given to
	 * replay_start. done() follows for the partition. */
	void (*gap)(void *owner, const char *cookie, size_t cookie_len, const char *topic, int32_t partition,
		    int64_t earliest);
	/* The partition's replay is over: caught up, gap, or failed. */
	void (*done)(void *owner, const char *topic, int32_t partition);
	/* Whether the owner takes records now (NULL: always). A replay waits
	 * while it does not, at most REPLAY_STALL_MS in a row; after that its
	 * records go anyway (the owner's own limits decide). */
	int (*ready)(void *owner);
};
#define REPLAY_STALL_MS 10000

void replay_init(const struct config *cfg, const struct replay_hooks *hooks);

struct replay_req { const char *topic; int32_t partition; int64_t last; };
/* Replays each topic:partition from last + 1 until caught up, for owner.
 * cookie (copied; may be NULL) comes back with a gap. 0, or -1 with err
 * set (too many replays at once, or librdkafka refused). */
int  replay_start(void *owner, const struct replay_req *req, int n, const char *cookie, size_t cookie_len,
		  char *err, size_t errlen);
/* Stops and frees owner's replays, with no further hooks. */
void replay_owner_gone(void *owner);
/* Polls the replay consumers (call when replay_timeout_ms() is 0). */
void replay_service(void);
/* ms until the replays want polling, -1 when none runs. */
int  replay_timeout_ms(void);
void replay_stop(void);
#endif
