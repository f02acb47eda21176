/* replay.c - resume from Kafka (replay.h): one short-lived consumer per
 * resume request, assigned the asked partitions from the asked offsets,
 * with partition EOF on so "caught up" is an event, and
 * auto.offset.reset=error so a position Kafka no longer holds is reported
 * (a gap), never silently skipped. Its records and outcomes go to the
 * owner through the hooks given to replay_init; this module builds no
 * client message. Replay consumers are polled every 5 ms while any runs. */
#include "replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "kafka.h"
#include "log.h"

#define MAX_REPLAYS   16     /* replay consumers at once */
#define REPLAY_BUDGET 512    /* records per replay per loop turn */

struct replay_part {
	char topic[256];
	int32_t partition;
	int done;
};

struct replay {
	void *owner;              /* whom the records are for (opaque here) */
	char *cookie;             /* the owner's bytes, handed back with a gap */
	size_t cookie_len;
	rd_kafka_t *rk;
	struct replay_part *parts;
	int nparts, left;
	int64_t stalled;          /* ms since when the owner took nothing, 0 when it takes */
	struct replay *next;
};

static struct {
	const struct config *cfg;
	const struct replay_hooks *hooks;
	struct replay *list;
	int n;
	int64_t due;              /* next poll of the replay consumers */
} R;

static void replay_free(struct replay *rp)
{
	if (rp->rk) rd_kafka_destroy_flags(rp->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	free(rp->cookie);
	free(rp->parts);
	free(rp);
	R.n--;
}

static void replay_part_done(struct replay *rp, int i)
{
	if (rp->parts[i].done) return;
	rp->parts[i].done = 1;
	rp->left--;
	R.hooks->done(rp->owner, rp->parts[i].topic, rp->parts[i].partition);
}

static int replay_find(const struct replay *rp, const char *topic, int32_t partition)
{
	for (int i = 0; i < rp->nparts; i++)
		if (rp->parts[i].partition == partition && strcmp(rp->parts[i].topic, topic) == 0) return i;
	return -1;
}

int replay_start(void *owner, const struct replay_req *req, int n,
		 const char *cookie, size_t cookie_len, char *err, size_t errlen)
{
	char why[512], gid[96];
	if (R.n >= MAX_REPLAYS) {
		snprintf(err, errlen, "too many resumes are being served from Kafka right now; retry shortly");
		return -1;
	}
	struct replay *rp = calloc(1, sizeof(*rp));
	if (!rp || !(rp->parts = calloc((size_t)n, sizeof(*rp->parts)))) {
		free(rp);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	R.n++;
	rp->owner = owner;
	if (cookie && (rp->cookie = malloc(cookie_len))) {
		memcpy(rp->cookie, cookie, cookie_len);
		rp->cookie_len = cookie_len;
	}
	/* assign() needs a group.id but commits nothing: a unique one keeps
	 * replays out of every real group. */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	snprintf(gid, sizeof(gid), "kbridge-replay-%d-%" PRId64, (int)getpid(), mono_ms());
	struct { const char *k, *v; } props[] = {
		{ "bootstrap.servers", kafka_bootstrap() },
		{ "group.id", gid },
		{ "enable.auto.commit", "false" },
		{ "auto.offset.reset", "error" },      /* a gap must be reported, not skipped */
		{ "enable.partition.eof", "true" },    /* "caught up" */
		{ "fetch.queue.backoff.ms", "20" },
		/* What a replay fetches ahead while its owner does not read. */
		{ "queued.max.messages.kbytes", "4096" },
		{ "client.id", "kbridge-replay" },
	};
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
		if (kafka_conf_set(conf, props[i].k, props[i].v, err, errlen) < 0) goto fail;
	if (R.cfg->demo && kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, errlen) < 0) goto fail;
	/* The same settings as the live consumer (security, fetch tuning), but
	 * not those that make this consumer a replay. */
	static const char *const replay_own[] = { "group.id", "enable.partition.eof", "auto.offset.reset", NULL };
	if (kafka_conf_user(conf, replay_own, err, errlen) < 0) goto fail;
	rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
	if (!(rp->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
		snprintf(err, errlen, "replay consumer: %s", why);
		replay_free(rp);
		return -1;
	}
	rd_kafka_poll_set_consumer(rp->rk);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++) {
		snprintf(rp->parts[i].topic, sizeof(rp->parts[i].topic), "%s", req[i].topic);
		rp->parts[i].partition = req[i].partition;
		rd_kafka_topic_partition_list_add(l, req[i].topic, req[i].partition)->offset = req[i].last + 1;
	}
	rp->nparts = rp->left = n;
	rd_kafka_resp_err_t e = rd_kafka_assign(rp->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, errlen, "replay assign: %s", rd_kafka_err2str(e));
		replay_free(rp);
		return -1;
	}
	rp->next = R.list;
	R.list = rp;
	R.due = mono_ms();
	return 0;
fail:
	rd_kafka_conf_destroy(conf);
	replay_free(rp);
	return -1;
}

/* Kafka no longer has the offset asked for: the owner hears the first
 * offset it has (when librdkafka learnt it from the failed fetch, else -1),
 * then that the partition is done. */
static void replay_gap(struct replay *rp, int i)
{
	int64_t lo = -1, hi = -1;
	rd_kafka_get_watermark_offsets(rp->rk, rp->parts[i].topic, rp->parts[i].partition, &lo, &hi);
	R.hooks->gap(rp->owner, rp->cookie, rp->cookie_len, rp->parts[i].topic, rp->parts[i].partition, lo);
	replay_part_done(rp, i);
}

/* The owner takes records now, or has taken none for REPLAY_STALL_MS (a
 * reader that stopped must not keep a replay consumer for ever). */
static int owner_ready(struct replay *rp)
{
	if (!R.hooks->ready || R.hooks->ready(rp->owner)) {
		rp->stalled = 0;
		return 1;
	}
	int64_t now = mono_ms();
	if (!rp->stalled) rp->stalled = now;
	return now - rp->stalled >= REPLAY_STALL_MS;
}

/* Drains each replay consumer up to REPLAY_BUDGET messages a turn, so a
 * long replay shares the loop with live traffic. A replay is freed once
 * every one of its partitions reported its end (EOF) or a gap. */
void replay_service(void)
{
	R.due = mono_ms() + 5;   /* polled, not woken: every 5 ms while any runs */
	for (struct replay **pp = &R.list; *pp;) {
		struct replay *rp = *pp;
		for (int k = 0; k < REPLAY_BUDGET && rp->left > 0 && owner_ready(rp); k++) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rp->rk, 0);
			if (!m) break;
			const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
			int i = replay_find(rp, topic, m->partition);
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (i >= 0) replay_part_done(rp, i);
			} else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
				   m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
				if (i >= 0) replay_gap(rp, i);
			} else if (m->err) {
				log_msg(LOG_WARN, "replay error", "code", rd_kafka_err2name(m->err),
					"reason", rd_kafka_message_errstr(m), NULL);
			} else if (i >= 0 && !rp->parts[i].done) {
				/* Records of a partition already done (fetched before
				 * its EOF was seen) are not the owner's any more. */
				struct record r = kafka_record(m);
				R.hooks->record(rp->owner, &r);
			}
			rd_kafka_message_destroy(m);
		}
		if (rp->left == 0) {
			*pp = rp->next;
			replay_free(rp);
		} else {
			pp = &rp->next;
		}
	}
}

void replay_owner_gone(void *owner)
{
	for (struct replay **pp = &R.list; *pp;) {
		struct replay *rp = *pp;
		if (rp->owner == owner) {
			*pp = rp->next;
			replay_free(rp);
		} else {
			pp = &rp->next;
		}
	}
}

void replay_init(const struct config *cfg, const struct replay_hooks *hooks)
{
	R.cfg = cfg;
	R.hooks = hooks;
}

int replay_timeout_ms(void)
{
	if (!R.list) return -1;
	int64_t d = R.due - mono_ms();
	return d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
}

void replay_stop(void)
{
	while (R.list) {
		struct replay *rp = R.list;
		R.list = rp->next;
		replay_free(rp);
	}
}
