/* metrics.h - every counter kbridge keeps, per-topic record counts and the
 * broadcast latency histogram. This module owns them; the modules that see
 * the events add to them, and /stats and /metrics (endpoints.c) read the
 * same numbers from here. Live state that is not a counter (clients,
 * channels, lag) stays with the module that owns it. */
#ifndef KB_METRICS_H
#define KB_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

enum metric {
	M_ACCEPTED,          /* WebSocket upgrades that succeeded */
	M_REJECTED_FULL,     /* 503: --max-clients, shutting down, or the plain-HTTP cap */
	M_REJECTED_ORIGIN,   /* 403: Origin not allowed */
	M_REJECTED_BAD,      /* 400/426: an upgrade that is not a valid one */
	M_HTTP_REQUESTS,     /* request heads parsed (upgrades included) */
	M_HTTP_ERRORS,       /* error responses that close the connection */
	M_BYTES_OUT,         /* bytes written to client sockets */
	M_MESSAGES_OUT,      /* data messages (Kafka records) written in full */
	M_DROPPED,           /* messages dropped by the slow-client policy */
	M_SLOW_DISCONNECTS,  /* clients closed by --slow-client disconnect */
	M_RECORDS_IN,        /* Kafka records consumed, routed or not */
	M_REJECTED_PER_IP,   /* 429: --max-clients-per-ip */
	M_REJECTED_RATE,     /* 429: --upgrade-rate */
	M_REJECTED_AUTH_TIMEOUT, /* closed 1008: no valid token within --auth-timeout */
	M_TLS_RECORDS,       /* TLS records written by the gathering path (not kernel TLS) */
	M_TLS_FLUSHES,       /* flushes of a TLS client that wrote at least one record */
	M_BYTES_UNCOMPRESSED, /* M_BYTES_OUT as it would have been without permessage-deflate */
	M_PUBLISH_INFLIGHT,  /* a gauge (metrics_set): publishes Kafka has not answered yet */
	M_TLS_FULL,          /* TLS handshakes completed with a new session */
	M_TLS_RESUMED,       /* TLS handshakes that resumed a session (ticket or cache) */
	M_TLS_FAILED,        /* TLS connections closed before their handshake completed */
	M_COUNT
};

/* With --workers every process writes its own slot of a table in shared
 * memory and reads the sums of all slots: metrics_share(slots, n, self)
 * before anything is counted; slots is n * metrics_slot_size() bytes,
 * zeroed when created. A slot keeps its numbers when its process is
 * replaced, so totals never go down. Without it, one private slot. */
size_t   metrics_slot_size(void);
void     metrics_share(void *slots, unsigned n, unsigned self);

/* Adds to this process's slot; metrics_get and the readers below sum
 * every slot. */
void     metrics_add(enum metric m, uint64_t n);
/* Sets this process's value of a gauge kept beside the counters: a
 * process started in a slot sets its own from scratch, so what a crashed
 * one left is not summed for ever. */
void     metrics_set(enum metric m, uint64_t v);
uint64_t metrics_get(enum metric m);

/* Tokens refused, by reason (kbridge_auth_failures_total{reason}). */
void     metrics_auth_failure(enum jwt_error e);
uint64_t metrics_auth_failures(enum jwt_error e);

/* Seconds since metrics_start() (called once at start-up), by the turn clock. */
void    metrics_start(void);
void    metrics_start_at(int64_t ms);   /* --workers: the master's start (monotonic ms) */
int64_t metrics_uptime_s(void);

/* Per topic: records consumed (a route reads it) and publishes answered
 * (a --publish or --command writes to it). A handle stays valid for the
 * process's life, so the hot path adds through it without a lookup.
 * NULL: out of memory or the table is full (adding to NULL is a no-op). */
#define METRICS_CONSUMED  1u
#define METRICS_PUBLISHED 2u
enum metrics_pub { METRICS_PUB_OK, METRICS_PUB_FAILED, METRICS_PUB_RATE_LIMITED, METRICS_PUB_N };
struct metrics_topic;
struct metrics_topic *metrics_topic(const char *name, unsigned role);
void metrics_topic_add(struct metrics_topic *t, uint64_t n);
void metrics_topic_published(struct metrics_topic *t, enum metrics_pub result);
/* Every process's counts of one topic, summed; roles says which kind of
 * topic it is (both when a route reads what clients publish). */
struct metrics_topic_counts {
	uint64_t records;
	uint64_t published[METRICS_PUB_N];
	unsigned roles;
};
/* for (size_t i = 0; metrics_topic_next(&i, &name, &counts);) */
int  metrics_topic_next(size_t *i, const char **name, const struct metrics_topic_counts **counts);

/* The broadcast latency histogram: from a record's Kafka timestamp to its
 * frame being queued to clients. */
void metrics_observe_latency(double seconds);
struct metrics_histogram {
	const double *bounds;     /* upper bounds, ascending */
	size_t nbounds;
	const uint64_t *buckets;  /* nbounds + 1 (the last is +Inf), not cumulative */
	uint64_t count;
	double sum;
};
void metrics_latency(struct metrics_histogram *out);
#endif
