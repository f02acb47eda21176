/* clock.h - the two clocks kbridge reads: monotonic for timers and
 * deadlines, wall for Kafka timestamps and latency. Milliseconds. */
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
#endif
