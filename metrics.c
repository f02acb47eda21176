/* metrics.c - kbridge's counters, per-topic record counts and the latency
 * histogram (metrics.h). Plain numbers in one place: increments cost a
 * call and an add; nothing here allocates except the first time a topic is
 * seen. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "map.h"

struct metrics_topic {
	uint64_t records;
};

/* Bucket bounds in seconds: 0.5 ms to 10 s. */
static const double lat_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

static struct {
	uint64_t counters[M_COUNT];
	uint64_t auth_failures[JWT_NERRORS];
	int64_t start_ms;
	struct map topics;              /* name -> struct metrics_topic * */
	uint64_t lat_buckets[NLAT + 1]; /* last: +Inf */
	uint64_t lat_count;
	double lat_sum;
} M;

void metrics_add(enum metric m, uint64_t n)
{
	M.counters[m] += n;
}

uint64_t metrics_get(enum metric m)
{
	return M.counters[m];
}

void metrics_auth_failure(enum jwt_error e)
{
	if (e > JWT_OK && e < JWT_NERRORS) M.auth_failures[e]++;
}

uint64_t metrics_auth_failures(enum jwt_error e)
{
	return e > JWT_OK && e < JWT_NERRORS ? M.auth_failures[e] : 0;
}

void metrics_start(void)
{
	M.start_ms = clock_now();
}

int64_t metrics_uptime_s(void)
{
	return (clock_now() - M.start_ms) / 1000;
}

struct metrics_topic *metrics_topic(const char *name)
{
	size_t len = strlen(name);
	struct metrics_topic *t = map_get(&M.topics, name, len);
	if (t) return t;
	if (!(t = calloc(1, sizeof(*t)))) return NULL;
	if (map_put(&M.topics, name, len, t) < 0) { free(t); return NULL; }
	return t;
}

void metrics_topic_add(struct metrics_topic *t, uint64_t n)
{
	if (t) t->records += n;
}

int metrics_topic_next(size_t *i, const char **name, uint64_t *records)
{
	struct map_slot *s;
	if (!map_next(&M.topics, i, &s)) return 0;
	*name = s->key;
	*records = ((const struct metrics_topic *)s->val)->records;
	return 1;
}

void metrics_observe_latency(double seconds)
{
	if (seconds < 0) seconds = 0;   /* clocks of producer and host disagree */
	size_t i = 0;
	while (i < NLAT && seconds > lat_bounds[i]) i++;
	M.lat_buckets[i]++;
	M.lat_count++;
	M.lat_sum += seconds;
}

void metrics_latency(struct metrics_histogram *out)
{
	*out = (struct metrics_histogram){ lat_bounds, NLAT, M.lat_buckets, M.lat_count, M.lat_sum };
}
