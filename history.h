/* history.h - the in-memory record history and the per-client resume gates
 * (docs/protocol.md#resume). The history keeps every routed record, newest
 * last, in one FIFO across partitions bounded by --history bytes, and knows
 * per partition from which offset on it holds every record. A resume gate
 * sits between a client and one partition it resumes: it drops what the
 * client already has and holds live records while a replay from Kafka
 * catches up, so the client sees each record once, in offset order.
 * Topics are named by the routing layer's stable pointer (an opaque key). */
#ifndef KB_HISTORY_H
#define KB_HISTORY_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "frame.h"
#include "record.h"

/* max_bytes: --history (0: none); headers: keep record headers (--headers);
 * hold_max: live records held per gate while a replay runs (--client-queue). */
void history_configure(size_t max_bytes, int headers, uint32_t hold_max);

/* ---- the history ---------------------------------------------------------- */

/* Appends a routed record with its channel seq, evicting the oldest records
 * of any partition past --history bytes. */
void history_append(const struct record *r, uint64_t seq);
/* 1 when the history holds every record of topic:partition after last. */
int  history_covers(const char *topic, int32_t partition, int64_t last);
/* Calls fn for every held record of topic:partition after last, in offset
 * order, until fn returns non-zero; the record and its memory are valid
 * for the call only. Returns 1 when fn stopped it, else 0. */
typedef int history_fn(void *arg, const struct record *r, uint64_t seq);
int  history_replay(const char *topic, int32_t partition, int64_t last, history_fn *fn, void *arg);

/* ---- resume gates ----------------------------------------------------------- */

/* Opens (or moves) c's gate on topic:partition: offsets up to last are
 * delivered. Returns 0, or -1 when out of memory. */
int  history_gate_open(struct client *c, const void *topic, int32_t partition, int64_t last);
/* A replay from Kafka runs for that partition: hold live records. */
void history_gate_hold(struct client *c, const void *topic, int32_t partition);
/* A live record for c (only call when c->rs): 1 = send it now; 0 = not now
 * (delivered already, or held: the gate took its own reference to f). */
int  history_gate(struct client *c, const void *topic, int32_t partition, int64_t offset, struct frame *f);
/* A replayed record: 1 = not delivered yet (the gate moves past it), 0 =
 * already delivered, skip it. */
int  history_gate_take(struct client *c, const void *topic, int32_t partition, int64_t offset);
/* After a replayed record was sent: once the replay reaches the first held
 * live record, the held ones go out and the partition is live again. */
void history_gate_settle(struct client *c, const void *topic, int32_t partition);
/* The replay of that partition ended (caught up, gap or failure): release. */
void history_gate_release(struct client *c, const void *topic, int32_t partition);
/* Iterates c's gates: the partition, the offset below the gate's next
 * (everything up to it went to c or was skipped) and whether it holds live
 * records for a replay (c's stream is behind the live one there).
 * for (size_t i = 0; history_gate_next(c, &i, &topic, &partition, &last, &held);) */
int  history_gate_next(const struct client *c, size_t *i, const void **topic, int32_t *partition, int64_t *last,
		       int *held);
/* The offset below c's gate on topic:partition's next (-2: no gate). */
int64_t history_gate_last(const struct client *c, const void *topic, int32_t partition);
/* Whether a gate of c holds live records or its replay still runs (a
 * replay goes on to Kafka's end after its held records went out). */
int  history_gate_busy(const struct client *c);
/* How a held record goes out when its gate releases it (default: as it
 * is, client_send); the routing layer sets it once, for SSE streams, whose
 * events carry the position reached at the moment they are queued. */
typedef void history_release_fn(struct client *c, struct frame *f, const void *topic, int32_t partition, int64_t offset);
void history_on_release(history_release_fn *fn);
/* Frees every gate of c. */
void history_gate_free(struct client *c);
#endif
