/* kafka.h - the live librdkafka consumer on kbridge's poll loop
 * (docs/operations.md#kafka): configuration passthrough (-X), the
 * subscription, draining records in bounded batches and handing them to
 * the routing layer through a callback, broker state. The Kafka layer's
 * other modules build on it: assign.c (start offsets, positions, lag),
 * replay.c (resume from Kafka), demo.c (the --demo mock cluster). */
#ifndef KB_KAFKA_H
#define KB_KAFKA_H
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "record.h"

/* Receives each consumed record; the record borrows librdkafka's memory
 * for the duration of the call. */
typedef void kafka_record_fn(const struct record *r);

/* Checks every -X (and --ca-file) against librdkafka without starting
 * anything: 0, or -1 with err set (a configuration error, exit 2). */
int  kafka_check_props(const struct config *cfg, char *err, size_t errlen);
/* Starts the consumer on topics (literal names or '^' regexes). With
 * --demo, demo_bootstrap is the mock cluster's address (else NULL: the
 * brokers of cfg). Returns the fd that becomes readable when records or
 * events wait, -2 for a configuration error (exit 2), -1 for other
 * failures; err holds one line. */
int  kafka_start(const struct config *cfg, const char *demo_bootstrap, const char *const *topics, size_t ntopics,
		 kafka_record_fn *on_record, char *err, size_t errlen);
/* Drains events and up to a bounded batch of records. */
void kafka_service(void);
/* 1 when the last kafka_service() stopped at its per-turn bound with more left. */
int  kafka_pending(void);
/* ms until kafka_service() has timed work (offset lookup retries), -1 none. */
int  kafka_timeout_ms(void);
/* Closes the consumer (committing in group mode) and frees everything. */
void kafka_stop(void);

int  kafka_up(void);       /* a broker is reachable */
int  kafka_ready(void);    /* metadata fetched and partitions assigned */
void kafka_print_version(void);
const char *kafka_version(void);

/* ---- for the Kafka layer's other consumers (replay.c, demo.c) ------------ */

/* Sets one property; the error names it as a -X flag. 0 or -1. */
int  kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen);
/* The user's settings: --ca-file, then every -X (so -X wins), except the
 * names in skip (NULL-terminated; the caller sets those itself). 0 or -1. */
int  kafka_conf_user(rd_kafka_conf_t *conf, const char *const *skip, char *err, size_t errlen);
/* An eventfd that becomes readable when any of the n queues has events
 * (the loop polls it), with one wake-up already in it for what was queued
 * before: fd when it is one already (queues that join it), else a new one.
 * The fd, or -1 with the reason in err. */
int  kafka_wake_fd(rd_kafka_queue_t *const *queues, size_t n, int fd, char *err, size_t errlen);
/* A consumed message as a record, borrowing its memory; with --headers
 * its headers too (up to RECORD_MAX_HEADERS), listed in an array of this
 * module's that stays valid until the next call. */
struct record kafka_record(rd_kafka_message_t *m);
/* librdkafka's log lines into kbridge's log (the log callback of every
 * client kbridge creates). */
void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
/* The bootstrap servers the live consumer uses. */
const char *kafka_bootstrap(void);
#endif
