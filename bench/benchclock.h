/* benchclock.h - the clocks the bench tools share, in microseconds: the
 * wall clock the producers stamp records with (ts_us) and the monotonic
 * clock they pace by. Header-only: each tool is one C file. */
#ifndef KB_BENCHCLOCK_H
#define KB_BENCHCLOCK_H
#include <stdint.h>
#include <time.h>

static inline int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
#endif
