/* test_metrics.c - counters, per-topic record counts and the latency
 * histogram (metrics.h). Counters start at zero and add independently;
 * a topic's handle is the same pointer every time it is asked for (the hot
 * path keeps it), adding through it shows in the iteration under that name
 * only, and adding through NULL is harmless. The histogram puts a value equal
 * to a bound in that bound's bucket (Prometheus "le"), one just above it in
 * the next, past the last bound in +Inf; buckets are per bucket (not
 * cumulative); a negative latency (producer clock ahead) counts as 0.
 * Shared slots (--workers): each process adds to its own slot and reads
 * the sums of all; topics of the same name in two slots are one in the
 * totals; a process that takes over a slot continues its numbers, topic
 * entries included; the histogram's count is its buckets' sum. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "clock.h"
#include "metrics.h"

static void test_counters(void)
{
	for (int m = 0; m < M_COUNT; m++) CHECKF(metrics_get((enum metric)m) == 0, "metric %d starts at %llu", m,
						    (unsigned long long)metrics_get((enum metric)m));
	metrics_add(M_DROPPED, 3);
	metrics_add(M_DROPPED, 4);
	metrics_add(M_BYTES_OUT, 1ull << 40);
	metrics_add(M_RECORDS_IN, 0);
	CHECK(metrics_get(M_DROPPED) == 7);
	CHECK(metrics_get(M_BYTES_OUT) == 1ull << 40);
	CHECK(metrics_get(M_RECORDS_IN) == 0);
	for (int m = 0; m < M_COUNT; m++)
		if (m != M_DROPPED && m != M_BYTES_OUT) CHECKF(metrics_get((enum metric)m) == 0, "metric %d moved", m);

	/* Uptime by the turn clock: 0 right after the start. */
	clock_advance();
	metrics_start();
	CHECK(metrics_uptime_s() == 0);
}

/* Records counted for name by the iteration, -1 when it is not listed. */
static int64_t topic_records(const char *want, int *listed)
{
	const char *name;
	const struct metrics_topic_counts *tc;
	int64_t got = -1;
	*listed = 0;
	for (size_t i = 0; metrics_topic_next(&i, &name, &tc);) {
		(*listed)++;
		if (strcmp(name, want) == 0) got = (int64_t)tc->records;
	}
	return got;
}

static void test_topics(void)
{
	int listed;
	CHECK(topic_records("orders", &listed) == -1 && listed == 0);
	struct metrics_topic *a = metrics_topic("orders", METRICS_CONSUMED);
	struct metrics_topic *b = metrics_topic("prices", METRICS_CONSUMED);
	CHECK(a && b && a != b);
	CHECK(topic_records("orders", &listed) == 0 && listed == 2);   /* listed once asked for */
	metrics_topic_add(a, 5);
	metrics_topic_add(b, 1);
	metrics_topic_add(a, 2);
	metrics_topic_add(NULL, 9);
	CHECK(topic_records("orders", &listed) == 7 && listed == 2);
	CHECK(topic_records("prices", &listed) == 1);

	/* Many more topics (the map grows): the old handles stay valid. */
	char name[32];
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "topic-%d", i);
		metrics_topic_add(metrics_topic(name, METRICS_CONSUMED), (uint64_t)i);
	}
	CHECK(metrics_topic("orders", METRICS_CONSUMED) == a && metrics_topic("prices", METRICS_CONSUMED) == b);
	metrics_topic_add(a, 1);
	CHECK(topic_records("orders", &listed) == 8 && listed == 502);
	CHECK(topic_records("topic-499", &listed) == 499);
	CHECK(topic_records("topic-0", &listed) == 0);
	/* Publishes are counted per topic and outcome; a topic both read and
	 * written carries both roles. */
	struct metrics_topic *o = metrics_topic("orders", METRICS_PUBLISHED);
	CHECK(o == a);
	metrics_topic_published(o, METRICS_PUB_OK);
	metrics_topic_published(o, METRICS_PUB_OK);
	metrics_topic_published(o, METRICS_PUB_RATE_LIMITED);
	metrics_topic_published(NULL, METRICS_PUB_FAILED);
	const char *name2;
	const struct metrics_topic_counts *tc;
	int seen = 0;
	for (size_t i = 0; metrics_topic_next(&i, &name2, &tc);) {
		if (strcmp(name2, "orders") == 0) {
			seen = 1;
			CHECK(tc->published[METRICS_PUB_OK] == 2 && tc->published[METRICS_PUB_FAILED] == 0 &&
			      tc->published[METRICS_PUB_RATE_LIMITED] == 1 && tc->records == 8);
			CHECK(tc->roles == (METRICS_CONSUMED | METRICS_PUBLISHED));
		} else if (strcmp(name2, "prices") == 0) {
			CHECK(tc->roles == METRICS_CONSUMED && tc->published[METRICS_PUB_OK] == 0);
		}
	}
	CHECK(seen);
	/* A name that is a prefix of another is its own topic. */
	CHECK(metrics_topic("topic-4", METRICS_CONSUMED) != metrics_topic("topic-49", METRICS_CONSUMED));
}

static void test_histogram(void)
{
	struct metrics_histogram h;
	metrics_latency(&h);
	CHECK(h.count == 0 && h.sum == 0 && h.nbounds >= 2 && h.bounds && h.buckets);
	if (!h.bounds || h.nbounds < 2) return;
	int ascending = 1;
	for (size_t i = 1; i < h.nbounds; i++) ascending &= h.bounds[i] > h.bounds[i - 1];
	CHECK(ascending);
	CHECK(h.bounds[0] == 0.0005 && h.bounds[h.nbounds - 1] == 10);

	/* Exactly at each bound: that bound's bucket. Just above: the next. */
	for (size_t i = 0; i < h.nbounds; i++) metrics_observe_latency(h.bounds[i]);
	metrics_latency(&h);
	int ok = h.count == h.nbounds && h.buckets[h.nbounds] == 0;
	for (size_t i = 0; i < h.nbounds; i++) ok &= h.buckets[i] == 1;
	CHECKF(ok, "values equal to the bounds landed in the wrong buckets");

	uint64_t before[32];
	memcpy(before, h.buckets, (h.nbounds + 1) * sizeof(uint64_t));
	for (size_t i = 0; i < h.nbounds; i++) metrics_observe_latency(nextafter(h.bounds[i], INFINITY));
	metrics_latency(&h);
	ok = h.buckets[0] == before[0];
	for (size_t i = 1; i <= h.nbounds; i++) ok &= h.buckets[i] == before[i] + 1;
	CHECKF(ok, "values just above the bounds landed in the wrong buckets");
	CHECK(h.count == 2 * h.nbounds);

	/* 0, negative (clamped to 0: bucket 0, adds nothing to the sum), huge. */
	double sum = h.sum;
	memcpy(before, h.buckets, (h.nbounds + 1) * sizeof(uint64_t));
	metrics_observe_latency(0);
	metrics_observe_latency(-3.5);
	metrics_observe_latency(1e9);
	metrics_latency(&h);
	CHECK(h.buckets[0] == before[0] + 2);
	CHECK(h.buckets[h.nbounds] == before[h.nbounds] + 1);
	CHECK(h.count == 2 * h.nbounds + 3);
	CHECKF(h.sum == sum + 1e9, "sum %.17g, want %.17g (a negative latency must add 0)", h.sum, sum + 1e9);

	/* Sum and one value in a middle bucket. */
	metrics_observe_latency(0.03);   /* 0.025 < 0.03 <= 0.05 */
	metrics_latency(&h);
	size_t b = 0;
	while (h.bounds[b] != 0.05) b++;
	CHECK(h.buckets[b] == 3);        /* the bound, the value above 0.025, and 0.03 */
}

/* Three slots, as the master and two workers would have them; the
 * processes are played one after another by sharing as each. */
static void test_shared(void)
{
	size_t size = metrics_slot_size();
	char *slots = calloc(3, size);
	if (!slots) { CHECK(slots != NULL); return; }
	metrics_share(slots, 3, 0);
	CHECK(metrics_get(M_DROPPED) == 0);   /* the private slot's numbers are gone */
	int listed;
	CHECK(topic_records("orders", &listed) == -1 && listed == 0);
	metrics_add(M_MESSAGES_OUT, 10);
	metrics_topic_add(metrics_topic("orders", METRICS_CONSUMED), 4);
	metrics_observe_latency(0.001);
	metrics_auth_failure(JWT_EXPIRED);

	metrics_share(slots, 3, 1);
	metrics_add(M_MESSAGES_OUT, 5);
	metrics_topic_add(metrics_topic("orders", METRICS_CONSUMED), 6);
	metrics_topic_add(metrics_topic("prices", METRICS_CONSUMED), 1);
	metrics_observe_latency(20);
	metrics_auth_failure(JWT_EXPIRED);
	CHECK(metrics_get(M_MESSAGES_OUT) == 15);
	CHECK(metrics_auth_failures(JWT_EXPIRED) == 2);
	CHECK(topic_records("orders", &listed) == 10 && listed == 2);
	CHECK(topic_records("prices", &listed) == 1);

	/* Slot 1's process is replaced: the new one continues its numbers. */
	metrics_share(slots, 3, 1);
	metrics_topic_add(metrics_topic("orders", METRICS_CONSUMED), 1);
	CHECK(topic_records("orders", &listed) == 11 && listed == 2);

	/* The master (slot 2) reads the same totals. */
	metrics_share(slots, 3, 2);
	CHECK(metrics_get(M_MESSAGES_OUT) == 15);
	CHECK(topic_records("orders", &listed) == 11);
	struct metrics_histogram h;
	metrics_latency(&h);
	uint64_t sum = 0;
	for (size_t i = 0; i <= h.nbounds; i++) sum += h.buckets[i];
	CHECK(h.count == 2 && sum == 2 && h.buckets[h.nbounds] == 1);
	CHECKF(fabs(h.sum - 20.001) < 1e-9, "sum %.17g", h.sum);
	metrics_share(&slots[0], 1, 0);   /* this process's numbers are in slots[] again */
	free(slots);
}

int main(void)
{
	test_counters();
	test_topics();
	test_histogram();
	test_shared();
	return check_summary("metrics");
}
