/* metrics.c - kbridge's counters, per-topic record counts and the latency
 * histogram (metrics.h). Plain numbers in one place: an increment costs a
 * call, a load and a store. The numbers live in a slot: a static one, or,
 * with --workers, this process's slot of a table in shared memory that the
 * other processes read (metrics_share). Each slot has one writer, so the
 * atomics are relaxed loads and stores, never locked adds; readers sum the
 * slots. Nothing here allocates on the hot path. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "map.h"

/* Bucket bounds in seconds: 0.5 ms to 10 s. */
static const double lat_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

#define TOPICS_MAX 4096   /* per slot; Kafka's topic names are at most 249 bytes */
#define TOPIC_NAME 256

struct metrics_topic {
	char name[TOPIC_NAME];
	_Atomic uint64_t records;
	_Atomic uint64_t published[METRICS_PUB_N];
	_Atomic unsigned roles;                   /* METRICS_CONSUMED, METRICS_PUBLISHED */
};

struct metrics_slot {
	_Atomic uint64_t counters[M_COUNT];
	_Atomic uint64_t auth_failures[JWT_NERRORS];
	_Atomic uint64_t lat_buckets[NLAT + 1];   /* last: +Inf */
	_Atomic double lat_sum;
	_Atomic uint32_t ntopics;                 /* published after the entry's name */
	struct metrics_topic topics[TOPICS_MAX];
};

static struct metrics_slot own;

static struct {
	struct metrics_slot *me;        /* written by this process */
	struct metrics_slot *all;       /* every slot, summed by readers */
	unsigned nall;
	int64_t start_ms;
	struct map topics;              /* name -> its entry in *me */
	/* the latest summed histogram and topic list, for the readers */
	uint64_t lat_sum_buckets[NLAT + 1];
	struct map merged;              /* name -> 1 + index in the arrays below */
	const char **merged_names;
	struct metrics_topic_counts *merged_counts;
	size_t nmerged, merged_cap;
} M = { .me = &own, .all = &own, .nall = 1 };

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define BUMP(x, n) STORE(x, LOAD(x) + (n))

size_t metrics_slot_size(void)
{
	return sizeof(struct metrics_slot);
}

void metrics_share(void *slots, unsigned n, unsigned self)
{
	map_free(&M.topics);            /* handles into the slot used before */
	M.all = slots;
	M.nall = n;
	M.me = &M.all[self];
}

void metrics_add(enum metric m, uint64_t n)
{
	BUMP(M.me->counters[m], n);
}

void metrics_set(enum metric m, uint64_t v)
{
	STORE(M.me->counters[m], v);
}

uint64_t metrics_get(enum metric m)
{
	uint64_t sum = 0;
	for (unsigned s = 0; s < M.nall; s++) sum += LOAD(M.all[s].counters[m]);
	return sum;
}

void metrics_auth_failure(enum jwt_error e)
{
	if (e > JWT_OK && e < JWT_NERRORS) BUMP(M.me->auth_failures[e], 1);
}

uint64_t metrics_auth_failures(enum jwt_error e)
{
	uint64_t sum = 0;
	if (e > JWT_OK && e < JWT_NERRORS)
		for (unsigned s = 0; s < M.nall; s++) sum += LOAD(M.all[s].auth_failures[e]);
	return sum;
}

void metrics_start(void)
{
	M.start_ms = clock_now();
}

void metrics_start_at(int64_t ms)
{
	M.start_ms = ms;
}

int64_t metrics_uptime_s(void)
{
	return (clock_now() - M.start_ms) / 1000;
}

/* A topic this slot already counted (an earlier process of the same
 * worker wrote it) keeps counting in the same entry. */
struct metrics_topic *metrics_topic(const char *name, unsigned role)
{
	size_t len = strlen(name);
	struct metrics_topic *t = map_get(&M.topics, name, len);
	if (t) {
		atomic_fetch_or_explicit(&t->roles, role, memory_order_relaxed);
		return t;
	}
	if (len >= TOPIC_NAME) len = TOPIC_NAME - 1;
	uint32_t n = atomic_load_explicit(&M.me->ntopics, memory_order_acquire);
	for (uint32_t i = 0; i < n && !t; i++)
		if (!strncmp(M.me->topics[i].name, name, len) && !M.me->topics[i].name[len]) t = &M.me->topics[i];
	if (!t) {
		if (n == TOPICS_MAX) return NULL;
		t = &M.me->topics[n];
		memcpy(t->name, name, len);
		t->name[len] = '\0';
		atomic_store_explicit(&M.me->ntopics, n + 1, memory_order_release);
	}
	atomic_fetch_or_explicit(&t->roles, role, memory_order_relaxed);
	if (map_put(&M.topics, name, strlen(name), t) < 0) return NULL;
	return t;
}

void metrics_topic_add(struct metrics_topic *t, uint64_t n)
{
	if (t) BUMP(t->records, n);
}

void metrics_topic_published(struct metrics_topic *t, enum metrics_pub result)
{
	if (t) BUMP(t->published[result], 1);
}

/* Adds entry t of one slot into the counts c. */
static void add_counts(struct metrics_topic_counts *c, const struct metrics_topic *t)
{
	c->records += LOAD(t->records);
	for (int r = 0; r < METRICS_PUB_N; r++) c->published[r] += LOAD(t->published[r]);
	c->roles |= LOAD(t->roles);
}

/* Sums every slot's topics into the merged arrays (i == 0 of an iteration). */
static void merge_topics(void)
{
	M.nmerged = 0;
	map_free(&M.merged);
	for (unsigned s = 0; s < M.nall; s++) {
		uint32_t n = atomic_load_explicit(&M.all[s].ntopics, memory_order_acquire);
		if (n > TOPICS_MAX) n = TOPICS_MAX;
		for (uint32_t k = 0; k < n; k++) {
			const struct metrics_topic *t = &M.all[s].topics[k];
			size_t len = strnlen(t->name, TOPIC_NAME - 1);
			uintptr_t at = (uintptr_t)map_get(&M.merged, t->name, len);
			if (at) { add_counts(&M.merged_counts[at - 1], t); continue; }
			if (M.nmerged == M.merged_cap) {
				size_t cap = M.merged_cap ? M.merged_cap * 2 : 64;
				const char **nn = realloc(M.merged_names, cap * sizeof(*nn));
				if (nn) M.merged_names = nn;
				struct metrics_topic_counts *nc = nn ? realloc(M.merged_counts, cap * sizeof(*nc)) : NULL;
				if (!nc) return;
				M.merged_counts = nc;
				M.merged_cap = cap;
			}
			if (map_put(&M.merged, t->name, len, (void *)(uintptr_t)(M.nmerged + 1)) < 0) return;
			M.merged_names[M.nmerged] = t->name;
			M.merged_counts[M.nmerged] = (struct metrics_topic_counts){ 0 };
			add_counts(&M.merged_counts[M.nmerged++], t);
		}
	}
}

int metrics_topic_next(size_t *i, const char **name, const struct metrics_topic_counts **counts)
{
	if (*i == 0) merge_topics();
	if (*i >= M.nmerged) return 0;
	*name = M.merged_names[*i];
	*counts = &M.merged_counts[*i];
	(*i)++;
	return 1;
}

void metrics_observe_latency(double seconds)
{
	if (seconds < 0) seconds = 0;   /* clocks of producer and host disagree */
	size_t i = 0;
	while (i < NLAT && seconds > lat_bounds[i]) i++;
	BUMP(M.me->lat_buckets[i], 1);
	STORE(M.me->lat_sum, LOAD(M.me->lat_sum) + seconds);
}

void metrics_latency(struct metrics_histogram *out)
{
	*out = (struct metrics_histogram){ lat_bounds, NLAT, M.lat_sum_buckets, 0, 0 };
	memset(M.lat_sum_buckets, 0, sizeof(M.lat_sum_buckets));
	for (unsigned s = 0; s < M.nall; s++) {
		for (size_t k = 0; k <= NLAT; k++) M.lat_sum_buckets[k] += LOAD(M.all[s].lat_buckets[k]);
		out->sum += LOAD(M.all[s].lat_sum);
	}
	/* the count from the buckets themselves: another process may be
	 * between its two stores, and +Inf must equal the count */
	for (size_t k = 0; k <= NLAT; k++) out->count += M.lat_sum_buckets[k];
}
