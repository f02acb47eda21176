/* fleet.h - with --workers: the table in shared memory through which the
 * processes of one kbridge see each other (docs/operations.md#workers).
 * The master creates it and passes its fd to every worker it starts. Each
 * worker publishes what its own layers say (clients, Kafka state, channels,
 * lag, a client list) into its entry, and keeps its counters in its
 * metrics slot of the same table; any process then answers /health,
 * /ready, /stats and /metrics with the totals, read through
 * fleet_sources(). Nothing is on the data path: a worker publishes at the
 * end of a turn, tables at most every FLEET_PUBLISH_MS. */
#ifndef KB_FLEET_H
#define KB_FLEET_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "endpoints.h"

#define FLEET_PUBLISH_MS 50

/* The master: a table for n workers (its fd, close-on-exec, or -1 with
 * one line in err). The master counts into the slot after the workers'. */
int  fleet_create(unsigned n, char *err, size_t errlen);
/* A worker: maps the table it was given and becomes entry `self`. */
int  fleet_attach(int fd, unsigned self, char *err, size_t errlen);

/* The master's bookkeeping: a worker process started (restart: it
 * replaces one that ended), or ended (its entry is cleared: no clients,
 * not ready; its counters stay). */
void fleet_started(unsigned self, pid_t pid, int restart);
void fleet_gone(unsigned self);
/* The master's watchdog: when worker `self` last ended a turn (monotonic
 * ms, the turn clock of every process), 0 when it has not yet. */
int64_t fleet_turned(unsigned self);

/* A worker, at the end of every turn: the gauges now, the tables when
 * FLEET_PUBLISH_MS have passed since the last time or now_too (clients
 * came, went or spoke this turn, so a client that was answered finds
 * itself in the totals). live: this process's own sources. */
void fleet_publish(const struct endpoints_sources *live, int64_t now, int now_too);
/* ms until a publish is owed (a turn ran since the last), -1 when none. */
int  fleet_timeout_ms(int64_t now);

/* The TLS session ticket keys the master drew for every worker (tls.h),
 * NULL without a table. */
const unsigned char *fleet_ticket_keys(void);

/* The sources the endpoints read: the totals of every worker. own gives
 * what is the same in every process (routes, the librdkafka version) and,
 * in a worker, what fleet_publish() publishes. */
const struct endpoints_sources *fleet_sources(const struct endpoints_sources *own);
#endif
