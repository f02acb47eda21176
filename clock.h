/* clock.h - the clocks kbridge reads, in milliseconds: monotonic for timers
 * and deadlines, wall for Kafka timestamps and latency, and the loop's turn
 * clock (monotonic, read once per turn, so every decision in one turn sees
 * the same "now"). Owns no other state. */
#ifndef KB_CLOCK_H
#define KB_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static inline int64_t wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

/* The turn clock: clock_advance() reads the monotonic clock (the loop calls
 * it once after poll() returns); clock_now() returns that reading. */
int64_t clock_advance(void);
int64_t clock_now(void);

#define CLOCK_ISO8601_LEN 32
/* UTC ISO 8601 with milliseconds ("2026-11-22T15:39:33.123Z") of a wall
 * clock time in ms since the epoch. */
void clock_iso8601(char out[CLOCK_ISO8601_LEN], int64_t ms);
#endif
