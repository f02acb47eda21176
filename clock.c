/* clock.c - the loop's turn clock and timestamp formatting (clock.h). The
 * turn clock is the one piece of shared time: modules below the loop read
 * it instead of asking the loop, so none of them calls upward for "now". */
#include "clock.h"

#include <stdio.h>

static int64_t turn_ms;

int64_t clock_advance(void)
{
	turn_ms = mono_ms();
	return turn_ms;
}

int64_t clock_now(void)
{
	/* Before the first turn (start-up, unit tests) read the clock itself. */
	return turn_ms ? turn_ms : mono_ms();
}

void clock_iso8601(char out[CLOCK_ISO8601_LEN], int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, CLOCK_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, CLOCK_ISO8601_LEN - n, ".%03dZ", (int)(ms % 1000));
}
