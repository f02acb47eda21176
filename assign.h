/* assign.h - the Kafka layer's partition assignment: start offsets chosen
 * in the rebalance callback (looked up asynchronously where --offset or the
 * group's commits ask for it), and per partition the next offset to route
 * and the lag (docs/operations.md#start-position). Used by kafka.c, which
 * owns the consumer; never blocks the loop. */
#ifndef KB_ASSIGN_H
#define KB_ASSIGN_H
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* rk: the live consumer; adminq: the queue admin results arrive on (the
 * caller polls it and passes them to assign_event); on_assigned: called
 * after every assignment (it proves a coordinator answered). */
void assign_init(const struct config *cfg, rd_kafka_t *rk, rd_kafka_queue_t *adminq, void (*on_assigned)(void));
/* Fan-out with literal topics: no group join. Describes the topics (the
 * names are copied) and assigns every partition directly,
 * then again every topic.metadata.refresh.interval.ms for partitions and
 * topics that appeared. Call instead of rd_kafka_subscribe. */
/* Returns -1 when out of memory. */
int  assign_direct(const char *const *topics, size_t ntopics);
/* The rebalance callback to register on the consumer's configuration. */
void assign_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque);
/* An event from the admin queue: 1 when it was an answer of ours. */
int  assign_event(rd_kafka_event_t *ev);
/* Monotonic ms when a failed lookup is retried or the topics are described
 * again (0: none); assign_service does what is due. */
int64_t assign_due(void);
void assign_service(void);
void assign_stop(void);

/* Partitions have been assigned at least once. */
int  assign_ready(void);
/* A record of topic:partition at offset was routed. */
void assign_routed(const char *topic, int32_t partition, int64_t offset);
/* The offset of the last record routed of topic:partition (start offset
 * - 1 before the first): 0, or -1 while unknown. */
int  assign_position(const char *topic, int32_t partition, int64_t *last);
/* Lag from librdkafka's statistics (-1 unknown). */
void assign_set_lag(const char *topic, int32_t partition, int64_t lag);
/* Iterates partitions with a known position: "topic:partition" and the
 * offset of the last record routed (start offset - 1 before the first). */
int  assign_position_next(size_t *i, const char **tp, int64_t *last);
/* Iterates partitions: "topic:partition" and its lag (-1 unknown). */
int  assign_lag_next(size_t *i, const char **tp, int64_t *lag);
#endif
