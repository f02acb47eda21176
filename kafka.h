/* kafka.h - the librdkafka consumer on kbridge's poll loop (DESIGN.md §5, §6):
 * configuration passthrough, subscription, draining records in bounded
 * batches into the hub, broker state and lag, and the --demo mock cluster. */
#ifndef KB_KAFKA_H
#define KB_KAFKA_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Starts the consumer. Returns the fd that becomes readable when records or
 * events wait, -2 for a configuration error (exit 2), -1 for other failures;
 * err holds one line. */
int  kafka_start(const struct config *cfg, char *err, size_t errlen);
/* 1 when the last service() stopped at its per-turn bound with more left. */
int  kafka_pending(void);
/* Drains events and up to a bounded batch of records. */
void kafka_service(void);
void kafka_stop(void);
void kafka_print_version(void);
/* ms until kafka_service() has timed work (demo producer, lookups), -1 none. */
int  kafka_timeout_ms(void);
/* Checks every -X (and --ca-file) against librdkafka without starting
 * anything: 0, or -1 with err set (a configuration error, exit 2). */
int  kafka_check_props(const struct config *cfg, char *err, size_t errlen);
const char *kafka_version(void);
/* Iterates partitions: "topic:partition" and its lag (-1 unknown). */
int  kafka_lag_next(size_t *i, const char **tp, int64_t *lag);
/* Iterates partitions with a known position: "topic:partition" and the
 * offset of the last record routed (start offset - 1 before the first). */
int  kafka_position_next(size_t *i, const char **tp, int64_t *last);
/* Resume from Kafka: fetch topic:partition from last + 1 for c until
 * caught up, on a consumer of its own (hub_replay_record/hub_replay_done
 * get the results). 0, or -1 with err set. */
struct client;
struct kafka_replay_req { const char *topic; int32_t partition; int64_t last; };
int  kafka_replay_start(struct client *c, const struct kafka_replay_req *req, int n,
			const char *id, size_t id_len, char *err, size_t errlen);
void kafka_replay_client_gone(struct client *c);
int  kafka_up(void);       /* a broker is reachable */
int  kafka_ready(void);    /* metadata fetched and partitions assigned */
#endif
