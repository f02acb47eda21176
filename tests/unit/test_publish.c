/* test_publish.c - the producer (publish.c) against librdkafka's mock
 * cluster, a real Kafka protocol peer in this process: acknowledgements
 * carry the record's partition and offset, a broker that is down makes
 * the answer PUBLISH_FAILED at --publish-timeout, an owner that went is
 * not called, the drain answers what is in flight, and the routes are
 * checked. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "clock.h"
#include "config.h"
#include "kafka.h"
#include "metrics.h"
#include "publish.h"

#define MAX_ANSWERS 64

static struct answer {
	void *owner;
	char note[64];
	int ok;
	int32_t partition;
	int64_t offset;
	char error[200];
	int64_t at;
} answers[MAX_ANSWERS];
static int nanswers;

static void done(void *owner, const void *note, size_t note_len, const struct publish_outcome *o)
{
	if (nanswers == MAX_ANSWERS) return;
	struct answer *a = &answers[nanswers++];
	a->owner = owner;
	snprintf(a->note, sizeof(a->note), "%.*s", (int)note_len, (const char *)note);
	a->ok = o->ok;
	a->partition = o->partition;
	a->offset = o->offset;
	snprintf(a->error, sizeof(a->error), "%s", o->error ? o->error : "");
	a->at = clock_now();
}

/* Runs the loop's side of the producer until want answers came (or
 * inflight is 0 when want is -1), at most ms. */
static void serve(int want, int ms)
{
	int64_t end = clock_advance() + ms;
	while (clock_advance() < end) {
		publish_service();
		if (want >= 0 ? nanswers >= want : publish_inflight() == 0) return;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static int pub(const struct publish_route *r, const char *value, const char *key, void *owner, const char *note)
{
	struct publish_header h = { "h1", 2, "v1", 2 };
	struct publish_record rec = { value, strlen(value), key, key ? strlen(key) : 0, &h, 1 };
	return publish_send(r, &rec, owner, done, note, strlen(note));
}

static void test_routes(void)
{
	char err[300];
	static const char *bad_topic[] = { "c=bad topic" };
	struct config c = { .publishes = bad_topic, .npublishes = 1 };
	CHECK(publish_configure(&c, err, sizeof(err)) < 0 && strstr(err, "not a valid Kafka topic name"));
	static const char *twice[] = { "c=t", "c=u" };
	c = (struct config){ .publishes = twice, .npublishes = 2 };
	CHECK(publish_configure(&c, err, sizeof(err)) < 0 && strstr(err, "named twice"));
}

int main(void)
{
	test_routes();

	/* The mock cluster lives in a producer of its own. */
	char why[512];
	rd_kafka_conf_t *mconf = rd_kafka_conf_new();
	rd_kafka_conf_set(mconf, "test.mock.num.brokers", "1", why, sizeof(why));
	rd_kafka_conf_set(mconf, "log_level", "0", why, sizeof(why));
	rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, why, sizeof(why));
	CHECK(mrk != NULL);
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(mrk);
	CHECK(mc != NULL);
	rd_kafka_mock_topic_create(mc, "t", 1, 1);
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);

	static const char *pubs[] = { "c=t" };
	static const char *cmds[] = { "place_order=t" };
	static const char *xprops[] = { "log_level=0" };
	struct config cfg = { .publishes = pubs, .npublishes = 1, .commands = cmds, .ncommands = 1,
			      .publish_timeout = 1.0, .max_message = 65536, .xprops = xprops, .nxprops = 1 };
	char err[300];
	clock_advance();
	CHECK(publish_configure(&cfg, err, sizeof(err)) == 0);
	CHECK(kafka_check_props(&cfg, err, sizeof(err)) == 0);   /* as at start-up: -X is read there */
	const struct publish_route *r = publish_channel("c", 1), *cmd = publish_command("place_order", 11);
	CHECK(r && cmd && !publish_channel("place_order", 11) && !publish_command("c", 1));
	CHECK(r && !strcmp(publish_route_topic(r), "t") && !strcmp(publish_route_name(r), "c"));
	CHECKF(publish_start(boot, err, sizeof(err)) >= 0, "%s", err);

	/* Acknowledged in order, with their notes back. */
	int a = 1, b = 2;
	CHECK(pub(r, "{\"n\":1}", "k", &a, "one") == PUBLISH_QUEUED);
	CHECK(pub(r, "{\"n\":2}", "k", &a, "two") == PUBLISH_QUEUED);
	CHECK(pub(cmd, "[3]", NULL, &b, "three") == PUBLISH_QUEUED);
	CHECK(publish_inflight() == 3 && metrics_get(M_PUBLISH_INFLIGHT) == 3);
	serve(3, 10000);
	CHECK(nanswers == 3);
	for (int i = 0; i < 3 && i < nanswers; i++)
		CHECKF(answers[i].ok && answers[i].partition == 0 && answers[i].offset == i, "answer %d: ok %d p %d o %lld %s",
		       i, answers[i].ok, answers[i].partition, (long long)answers[i].offset, answers[i].error);
	CHECK(!strcmp(answers[0].note, "one") && !strcmp(answers[2].note, "three") && answers[2].owner == &b);
	CHECK(publish_inflight() == 0 && publish_timeout_ms() == -1);
	CHECK(metrics_get(M_PUBLISH_INFLIGHT) == 0);

	/* One owner going leaves the others' answers alone, whatever the
	 * order their entries were sent in. */
	nanswers = 0;
	int c1 = 3;
	CHECK(pub(r, "a1", NULL, &a, "a1") == PUBLISH_QUEUED);
	CHECK(pub(r, "c1", NULL, &c1, "c1") == PUBLISH_QUEUED);
	CHECK(pub(r, "a2", NULL, &a, "a2") == PUBLISH_QUEUED);
	CHECK(pub(r, "b1", NULL, &b, "b1") == PUBLISH_QUEUED);
	publish_owner_gone(&a);
	publish_owner_gone(&a);   /* twice: nothing left the second time */
	serve(-1, 10000);
	CHECK(nanswers == 2 && answers[0].owner == &c1 && answers[1].owner == &b && answers[1].ok);
	CHECK(publish_inflight() == 0);

	/* A broker that is down: the answer is the timeout's, on time. */
	rd_kafka_mock_broker_set_down(mc, 1);
	nanswers = 0;
	int64_t sent = clock_advance();
	CHECK(pub(r, "4", NULL, &a, "four") == PUBLISH_QUEUED);
	CHECK(publish_timeout_ms() > 900);
	serve(1, 5000);
	CHECK(nanswers == 1 && !answers[0].ok && strstr(answers[0].error, "--publish-timeout"));
	CHECKF(nanswers == 1 && answers[0].at - sent >= 1000 && answers[0].at - sent < 1500, "answered after %lld ms",
	       (long long)(answers[0].at - sent));

	/* A loop that comes late (2.5 s here): librdkafka's own report of the
	 * timeout, queued by its once-a-second scan, is read before the
	 * deadlines are. The answer is the same. */
	nanswers = 0;
	CHECK(pub(r, "4b", NULL, &a, "four-b") == PUBLISH_QUEUED);
	struct timespec late = { 2, 500 * 1000 * 1000 };
	nanosleep(&late, NULL);
	serve(1, 3000);
	CHECKF(nanswers == 1 && !answers[0].ok && strstr(answers[0].error, "--publish-timeout"), "%s",
	       nanswers ? answers[0].error : "no answer");

	/* An owner that went is not called; its publish still completes. */
	nanswers = 0;
	CHECK(pub(r, "5", NULL, &b, "five") == PUBLISH_QUEUED);
	publish_owner_gone(&b);
	serve(-1, 5000);
	CHECK(nanswers == 0);

	/* Back up: publishes succeed again (once librdkafka has reconnected),
	 * after those before. */
	rd_kafka_mock_broker_set_up(mc, 1);
	int ok = 0;
	for (int tries = 0; tries < 10 && !ok; tries++) {
		nanswers = 0;
		CHECK(pub(r, "6", NULL, &a, "six") == PUBLISH_QUEUED);
		serve(1, 3000);
		ok = nanswers == 1 && answers[0].ok;
	}
	CHECKF(ok && answers[0].offset >= 3, "ok %d offset %lld: %s", ok, (long long)answers[0].offset, answers[0].error);

	/* The drain: in flight answered by its deadline, new ones refused. */
	rd_kafka_mock_broker_set_down(mc, 1);
	nanswers = 0;
	CHECK(pub(r, "7", NULL, &a, "seven") == PUBLISH_QUEUED);
	int64_t drain_at = clock_advance();
	publish_drain(drain_at + 200);
	CHECK(pub(r, "8", NULL, &a, "eight") == PUBLISH_STOPPING && strstr(publish_refusal_text(), "shutting down"));
	serve(1, 3000);
	CHECK(nanswers == 1 && !answers[0].ok && strstr(answers[0].error, "shutting down"));
	CHECKF(nanswers == 1 && answers[0].at - drain_at < 1000, "drain answered after %lld ms",
	       (long long)(answers[0].at - drain_at));

	publish_stop();
	rd_kafka_destroy(mrk);
	return check_summary("publish");
}
