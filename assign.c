/* assign.c - where each partition starts and where it stands (assign.h).
 * Fan-out mode with literal routes joins no group: the topics are
 * described (DescribeTopics, asynchronously, again every
 * topic.metadata.refresh.interval.ms) and every partition is assigned
 * directly, so /ready needs no coordinator and no rebalance delay; new
 * partitions and topics found later are added. Otherwise (group mode, regex
 * routes) the rebalance callback assigns. Either way start offsets are
 * chosen the same way: fan-out mode continues a
 * partition after the last record routed, starts topics first seen after
 * start-up at their beginning, and otherwise follows --offset; group mode
 * lets committed offsets win. "latest" and @MS (and, in group mode, the
 * committed offsets) are looked up with librdkafka's asynchronous admin
 * API, whose results arrive on the consumer's admin queue: the assignment
 * waits for them, the loop never does. Also keeps, per partition, the next
 * offset to route and the lag, for resume positions, /stats and /metrics. */
#include "assign.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "map.h"
#include "tp.h"

/* What we know of one assigned (or once assigned) partition. */
struct part {
	int64_t next;      /* offset after the last record routed, -1 if none */
	int64_t start;     /* logical start assigned (BEGINNING, END, TAIL) while next < 0 */
	int64_t lag;       /* hi_offset - app_offset from statistics, -1 unknown */
	int assigned;      /* in the consumer's assignment now */
};

static struct {
	const struct config *cfg;
	rd_kafka_t *rk;
	rd_kafka_queue_t *adminq;      /* where ListOffsets and ListConsumerGroupOffsets answer */
	void (*on_assigned)(void);
	int ready, assigned_once;
	struct map parts;              /* "topic:partition" -> struct part * */
	struct map topics_seen;        /* topic -> (void *)1 once assigned */
	rd_kafka_topic_partition_list_t *waiting;   /* assignment awaiting offset lookups */
	rd_kafka_topic_partition_list_t *lookup;    /* still to look up, spec as offset */
	int lookups;                   /* ListOffsets requests not answered yet */
	int committed_pending;         /* ListConsumerGroupOffsets not answered yet */
	int64_t lookup_due;            /* when to ask again after a failure, 0: not */
	int lookup_backoff;            /* ms, doubling to 2 s */
	/* Direct assignment (assign_direct): the literal topics, described
	 * again at describe_due; one DescribeTopics in flight at most. */
	char **topics;                 /* copies of the names, NULL-terminated */
	size_t ntopics;
	int describing;
	int described;                 /* the first description was acted on */
	int64_t describe_due;
	int describe_backoff;          /* ms after a failure, doubling to 2 s */
	int refresh_ms;                /* topic.metadata.refresh.interval.ms */
	struct map missing_logged;     /* topic -> 1 while "not found" was logged */
} A;

void assign_init(const struct config *cfg, rd_kafka_t *rk, rd_kafka_queue_t *adminq, void (*on_assigned)(void))
{
	A.cfg = cfg;
	A.rk = rk;
	A.adminq = adminq;
	A.on_assigned = on_assigned;
}

/* ---- the partition table -------------------------------------------------- */

static struct part *part_get(const char *topic, int32_t partition, int create)
{
	char key[TP_KEY_MAX];
	size_t kl;
	struct part *p = tp_map_get(&A.parts, topic, partition, key, &kl);
	if (p || !create) return p;
	if (!(p = malloc(sizeof(*p)))) return NULL;
	p->next = -1;
	p->start = RD_KAFKA_OFFSET_INVALID;
	p->lag = -1;
	p->assigned = 0;
	if (map_put(&A.parts, key, kl, p) < 0) { free(p); return NULL; }
	return p;
}

void assign_routed(const char *topic, int32_t partition, int64_t offset)
{
	struct part *p = part_get(topic, partition, 1);
	if (p) p->next = offset + 1;
}

void assign_set_lag(const char *topic, int32_t partition, int64_t lag)
{
	struct part *p = part_get(topic, partition, 0);
	if (p) p->lag = lag;
}

int assign_ready(void)
{
	return A.ready;
}

int assign_position(const char *topic, int32_t partition, int64_t *last)
{
	const struct part *p = part_get(topic, partition, 0);
	if (!p || p->next < 0) return -1;
	*last = p->next - 1;
	return 0;
}

int assign_position_next(size_t *i, const char **tp, int64_t *last)
{
	struct map_slot *s;
	while (map_next(&A.parts, i, &s)) {
		const struct part *p = s->val;
		if (p->next < 0) continue;
		*tp = s->key;
		*last = p->next - 1;
		return 1;
	}
	return 0;
}

int assign_lag_next(size_t *i, const char **tp, int64_t *lag)
{
	struct map_slot *s;
	if (!map_next(&A.parts, i, &s)) return 0;
	const struct part *p = s->val;
	*tp = s->key;
	*lag = p->lag;
	/* Fresher than the 2 s statistics, and known from the first fetch on:
	 * the cached high watermark (no broker call) minus our position. */
	char topic[TP_TOPIC_MAX];
	int32_t partition;
	int64_t lo, hi;
	if (!A.rk || tp_parse(s->key, s->klen, topic, sizeof(topic), &partition) < 0) return 1;
	if (rd_kafka_get_watermark_offsets(A.rk, topic, partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
		return 1;
	/* Before the first record: where the assignment said to start. */
	int64_t at = p->next >= 0 ? p->next :
		     p->start == RD_KAFKA_OFFSET_BEGINNING && lo >= 0 ? lo :
		     p->start <= RD_KAFKA_OFFSET_TAIL_BASE && lo >= 0 ?
			(hi - (RD_KAFKA_OFFSET_TAIL_BASE - p->start) > lo ? hi - (RD_KAFKA_OFFSET_TAIL_BASE - p->start) : lo) :
		     p->start == RD_KAFKA_OFFSET_END ? hi : -1;
	if (at >= 0) *lag = hi > at ? hi - at : 0;
	return 1;
}

/* ---- start offsets and the assignment -------------------------------------- */

/* After a failed admin request: the next backoff (100 ms, doubling to 2 s)
 * in *ms, and the monotonic time to ask again. */
static int64_t backoff_due(int *ms)
{
	*ms = *ms ? *ms * 2 : 100;
	if (*ms > 2000) *ms = 2000;
	return mono_ms() + *ms;
}


/* Starts p where --offset says. "latest" and @MS need a lookup: p then
 * starts at the end unless the lookup answers, and is added to *req with
 * the spec (LATEST or the timestamp) as offset. */
static void start_by_offset_flag(rd_kafka_topic_partition_t *p, rd_kafka_topic_partition_list_t **req, int cap)
{
	int64_t spec = RD_KAFKA_OFFSET_SPEC_LATEST;
	switch (A.cfg->offset) {
	case OFFSET_EARLIEST: p->offset = RD_KAFKA_OFFSET_BEGINNING; return;
	case OFFSET_TAIL:     p->offset = RD_KAFKA_OFFSET_TAIL(A.cfg->offset_arg); return;
	case OFFSET_TIME:     spec = A.cfg->offset_arg; break;
	case OFFSET_LATEST:   break;
	}
	p->offset = RD_KAFKA_OFFSET_END;
	if (!*req) *req = rd_kafka_topic_partition_list_new(cap);
	rd_kafka_topic_partition_list_add(*req, p->topic, p->partition)->offset = spec;
}

/* Start offsets for newly assigned partitions (fan-out mode): partitions of
 * topics first seen after start-up begin at the beginning, so nothing
 * produced before the assignment is lost
 * (docs/operations.md#rebalancing-and-new-topics);
 * partitions seen
 * before continue after the last record routed or where they first started;
 * the rest follow --offset. "latest" and @MS are looked up (ListOffsets,
 * asynchronously) and assigned as concrete offsets: librdkafka's own END
 * is resolved only after the assignment, so a record produced between
 * /ready and that moment would be skipped. Returns the partitions to look
 * up, with the spec (LATEST or a timestamp) as offset, or NULL. */
static rd_kafka_topic_partition_list_t *choose_offsets(rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *req = NULL;
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		struct part *known = part_get(p->topic, p->partition, 0);
		int topic_known = map_get(&A.topics_seen, p->topic, strlen(p->topic)) != NULL;
		if (A.cfg->group) {
			/* Committed offsets win (docs/operations.md#start-position), even over what this instance
			 * routed itself: another member may have moved on since. */
			p->offset = RD_KAFKA_OFFSET_INVALID;
		} else if (known && known->next >= 0) {
			p->offset = known->next;
		} else if ((A.assigned_once || A.described) && (!topic_known || !known)) {
			p->offset = RD_KAFKA_OFFSET_BEGINNING;
		} else {
			start_by_offset_flag(p, &req, parts->cnt);
		}
		part_get(p->topic, p->partition, 1);
		map_put(&A.topics_seen, p->topic, strlen(p->topic), (void *)1);
	}
	return req;
}

static void do_assign(rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_error_t *e = NULL;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	/* Where each partition now starts: a partition that routed nothing yet
	 * starts here again if it is revoked and assigned back (a rejoin), not
	 * at a new "latest"; lag is measured from here until the first record. */
	for (int i = 0; i < parts->cnt; i++) {
		struct part *p = part_get(parts->elems[i].topic, parts->elems[i].partition, 1);
		if (!p) continue;
		if (parts->elems[i].offset >= 0) p->next = parts->elems[i].offset;
		else if (p->next < 0) p->start = parts->elems[i].offset;
		p->assigned = 1;
	}
	/* Direct assignment adds to what is assigned, as a cooperative
	 * rebalance does; an eager one replaces it. */
	const char *proto = rd_kafka_rebalance_protocol(A.rk);
	if (A.topics || (proto && strcmp(proto, "COOPERATIVE") == 0))
		e = rd_kafka_incremental_assign(A.rk, parts);
	else
		err = rd_kafka_assign(A.rk, parts);
	if (e) {
		log_msg(LOG_ERROR, "kafka assign failed", "error", rd_kafka_error_string(e), NULL);
		rd_kafka_error_destroy(e);
	} else if (err) {
		log_msg(LOG_ERROR, "kafka assign failed", "error", rd_kafka_err2str(err), NULL);
	}
	A.assigned_once = 1;
	A.ready = 1;
	A.on_assigned();           /* an assignment needed a coordinator: Kafka is up */
	log_msg(LOG_INFO, "partitions assigned", "count", log_num(parts->cnt), NULL);
}

/* Every offset is in: the waiting assignment goes ahead. */
static void lookup_finish(void)
{
	rd_kafka_topic_partition_list_t *w = A.waiting;
	if (A.lookup) rd_kafka_topic_partition_list_destroy(A.lookup);
	A.lookup = NULL;
	A.waiting = NULL;
	A.lookup_backoff = 0;
	A.lookup_due = 0;
	if (!w) return;
	do_assign(w);      /* even if all were revoked: librdkafka waits for the call */
	rd_kafka_topic_partition_list_destroy(w);
}

static void lookup_send(void);

/* After an answer: ask for what is still unknown, or assign. */
static void lookup_progress(void)
{
	if (A.lookups || A.committed_pending) return;
	if (A.lookup && A.lookup->cnt) lookup_send();
	else lookup_finish();
}

/* Adds parts, with their offsets, to the assignment waiting for lookups. */
static void waiting_add(rd_kafka_topic_partition_list_t **l, const rd_kafka_topic_partition_list_t *parts)
{
	if (!*l) *l = rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++)
		rd_kafka_topic_partition_list_add(*l, parts->elems[i].topic,
						  parts->elems[i].partition)->offset = parts->elems[i].offset;
}

/* Sends one ListOffsets request for the partitions still to look up. */
static void lookup_send(void)
{
	A.lookup_due = 0;
	if (!A.lookup->cnt) {              /* all revoked meanwhile */
		lookup_progress();
		return;
	}
	A.lookups++;
	/* The same view of the end as the consumer: read_committed unless
	 * -X isolation.level says otherwise (librdkafka's default). */
	char iso[32] = "";
	size_t isz = sizeof(iso);
	rd_kafka_conf_get(rd_kafka_conf(A.rk), "isolation.level", iso, &isz);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(A.rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_isolation_level(o,
		strcmp(iso, "read_uncommitted") == 0 ? RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED
						     : RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED);
	if (e) rd_kafka_error_destroy(e);
	rd_kafka_ListOffsets(A.rk, A.lookup, o, A.adminq);
	rd_kafka_AdminOptions_destroy(o);
}

/* Looks up the offsets of req without blocking; the assignment of parts
 * waits for the answers (lookup_done), together with any assignment
 * already waiting. */
static void lookup_offsets(rd_kafka_topic_partition_list_t *parts, rd_kafka_topic_partition_list_t *req)
{
	waiting_add(&A.waiting, parts);
	waiting_add(&A.lookup, req);
	A.lookup_backoff = 0;
	lookup_progress();                  /* sent now or when the answers are in */
}

/* Group mode with --offset latest, -N or @MS: a partition without a
 * committed offset would follow auto.offset.reset, which knows neither -N
 * nor @MS and resolves "latest" only after the assignment. So the group's
 * committed offsets are listed first (asynchronously); partitions without
 * one then take --offset like fan-out's first assignment. */
static void committed_lookup(rd_kafka_topic_partition_list_t *parts)
{
	waiting_add(&A.waiting, parts);
	rd_kafka_ListConsumerGroupOffsets_t *q = rd_kafka_ListConsumerGroupOffsets_new(A.cfg->group, parts);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(A.rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
	/* Offsets of a pending transactional commit count, as for the consumer. */
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_require_stable_offsets(o, 1);
	if (e) rd_kafka_error_destroy(e);
	A.committed_pending++;
	rd_kafka_ListConsumerGroupOffsets(A.rk, &q, 1, o, A.adminq);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_ListConsumerGroupOffsets_destroy(q);
}

static void committed_done(rd_kafka_event_t *ev)
{
	A.committed_pending--;
	const rd_kafka_ListConsumerGroupOffsets_result_t *res = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
	const rd_kafka_topic_partition_list_t *got = NULL;
	const char *why = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : NULL;
	if (!why && res) {
		size_t n;
		const rd_kafka_group_result_t **g = rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n);
		const rd_kafka_error_t *ge = n ? rd_kafka_group_result_error(g[0]) : NULL;
		if (ge) why = rd_kafka_error_string(ge);
		else if (n) got = rd_kafka_group_result_partitions(g[0]);
	}
	if (why) {
		/* The consumer fetches them itself; only -N, @MS and the instant
		 * of "latest" are then approximate (auto.offset.reset=latest). */
		log_msg(LOG_WARN, "committed offset lookup failed: partitions without a commit start at the end",
			"group", A.cfg->group, "error", why, NULL);
	}
	rd_kafka_topic_partition_list_t *req = NULL;
	for (int i = 0; got && A.waiting && i < got->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &got->elems[i];
		rd_kafka_topic_partition_t *dst = rd_kafka_topic_partition_list_find(A.waiting, tp->topic, tp->partition);
		if (!dst || tp->err) continue;          /* revoked, or left to the consumer */
		if (tp->offset >= 0) {
			dst->offset = tp->offset;       /* committed offsets win */
			continue;
		}
		start_by_offset_flag(dst, &req, got->cnt);
	}
	if (req) {
		waiting_add(&A.lookup, req);
		rd_kafka_topic_partition_list_destroy(req);
	}
	lookup_progress();
}

/* An answer: partitions looked up take their offsets; failed ones are asked
 * again with a backoff (the assignment, and /ready, wait: starting at an
 * unknown "end" could skip records produced meanwhile). */
static void lookup_done(rd_kafka_event_t *ev)
{
	const rd_kafka_ListOffsets_result_t *res = rd_kafka_event_ListOffsets_result(ev);
	rd_kafka_topic_partition_list_t *w = A.waiting;
	A.lookups--;
	if (!w || !A.lookup) return;
	if (!A.lookup->cnt) {              /* all revoked meanwhile */
		lookup_progress();
		return;
	}
	const char *why = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : NULL;
	if (!why && res) {
		size_t n;
		const rd_kafka_ListOffsetsResultInfo_t **infos = rd_kafka_ListOffsets_result_infos(res, &n);
		for (size_t i = 0; i < n; i++) {
			const rd_kafka_topic_partition_t *tp = rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
			if (tp->err) {
				why = rd_kafka_err2str(tp->err);
				continue;
			}
			rd_kafka_topic_partition_t *dst = rd_kafka_topic_partition_list_find(w, tp->topic, tp->partition);
			/* -1: no record at or after the timestamp: start at the end. */
			if (dst && tp->offset >= 0) dst->offset = tp->offset;
			rd_kafka_topic_partition_list_del(A.lookup, tp->topic, tp->partition);
		}
	}
	if (A.lookups) return;             /* the answer to a later request is due */
	if (A.lookup->cnt && why) {
		if (!A.lookup_backoff)
			log_msg(LOG_WARN, "offset lookup failed: retrying, not ready until it succeeds",
				"partitions", log_num(A.lookup->cnt), "error", why, NULL);
		A.lookup_due = backoff_due(&A.lookup_backoff);
		return;
	}
	lookup_progress();                 /* partitions added since the request, or done */
}

/* Newly assigned partitions, from a rebalance or a description: start
 * offsets chosen (and looked up where needed), then assigned. */
static void assign_new(rd_kafka_topic_partition_list_t *parts)
{
	/* A cooperative rebalance may add nothing: acknowledge it now,
	 * librdkafka waits for the call. */
	if (parts->cnt == 0) {
		do_assign(parts);
		return;
	}
	if (A.cfg->group && A.cfg->offset != OFFSET_EARLIEST) {
		committed_lookup(parts);
		return;
	}
	rd_kafka_topic_partition_list_t *req = choose_offsets(parts);
	if (req) {
		lookup_offsets(parts, req);
		rd_kafka_topic_partition_list_destroy(req);
	} else {
		do_assign(parts);
	}
}

void assign_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	(void)opaque;
	int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign_new(parts);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		log_msg(LOG_INFO, "partitions revoked", "count", log_num(parts->cnt), NULL);
		for (int i = 0; i < parts->cnt; i++) {
			struct part *p = part_get(parts->elems[i].topic, parts->elems[i].partition, 0);
			if (p) p->assigned = 0;
			/* Not assigned yet: the lookup's answer must not assign them. */
			if (A.waiting) rd_kafka_topic_partition_list_del(A.waiting, parts->elems[i].topic, parts->elems[i].partition);
			if (A.lookup) rd_kafka_topic_partition_list_del(A.lookup, parts->elems[i].topic, parts->elems[i].partition);
		}
		if (coop) {
			rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
			if (e) rd_kafka_error_destroy(e);
		} else {
			rd_kafka_assign(rk, NULL);
		}
		return;
	}
	log_msg(LOG_ERROR, "kafka rebalance failed", "error", rd_kafka_err2str(err), NULL);
	if (coop) {
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
		if (e) rd_kafka_error_destroy(e);
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

/* ---- direct assignment (fan-out, literal routes) ------------------------------ */

#define DESCRIBE_TIMEOUT_MS 10000

static void describe_send(void)
{
	A.describe_due = 0;
	A.describing = 1;
	rd_kafka_TopicCollection_t *c = rd_kafka_TopicCollection_of_topic_names((const char **)A.topics, A.ntopics);
	/* Not librdkafka's 60 s: a failure is logged and retried sooner. */
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(A.rk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
	char why[128];
	rd_kafka_AdminOptions_set_request_timeout(o, DESCRIBE_TIMEOUT_MS, why, sizeof(why));
	rd_kafka_DescribeTopics(A.rk, c, o, A.adminq);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_TopicCollection_destroy(c);
}

int assign_direct(const char *const *topics, size_t ntopics)
{
	char v[32] = "";
	size_t vl = sizeof(v);
	if (!(A.topics = calloc(ntopics + 1, sizeof(*A.topics)))) return -1;
	for (size_t i = 0; i < ntopics; i++)
		if (!(A.topics[i] = strdup(topics[i]))) return -1;
	A.ntopics = ntopics;
	A.refresh_ms = 5000;
	if (rd_kafka_conf_get(rd_kafka_conf(A.rk), "topic.metadata.refresh.interval.ms", v, &vl) == RD_KAFKA_CONF_OK &&
	    atoi(v) > 0)
		A.refresh_ms = atoi(v);
	describe_send();
	return 0;
}

/* A description: partitions not assigned yet (and not waiting for their
 * offsets) are assigned. Those of the first description follow --offset;
 * any found later, of a topic created or grown since, start at the
 * beginning (choose_offsets), so nothing produced before is lost. */
static void describe_done(rd_kafka_event_t *ev)
{
	A.describing = 0;
	const rd_kafka_DescribeTopics_result_t *res = rd_kafka_event_DescribeTopics_result(ev);
	const char *why = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : NULL;
	size_t n = 0;
	const rd_kafka_TopicDescription_t **d = !why && res ? rd_kafka_DescribeTopics_result_topics(res, &n) : NULL;
	if (!d) {
		/* Kafka down or slow: /ready waits for the first answer. */
		if (!A.describe_backoff)
			log_msg(LOG_WARN, "topic description failed: retrying", "error", why ? why : "no result", NULL);
		A.describe_due = backoff_due(&A.describe_backoff);
		return;
	}
	A.describe_backoff = 0;
	rd_kafka_topic_partition_list_t *add = rd_kafka_topic_partition_list_new(8);
	for (size_t i = 0; i < n; i++) {
		const char *topic = rd_kafka_TopicDescription_name(d[i]);
		const rd_kafka_error_t *te = rd_kafka_TopicDescription_error(d[i]);
		size_t tl = strlen(topic);
		if (te) {
			/* Logged once until it appears; its partitions then start
			 * at the beginning. */
			if (!map_get(&A.missing_logged, topic, tl)) {
				log_msg(LOG_WARN, "topic not available: assigned when it appears", "topic", topic,
					"error", rd_kafka_error_string(te), NULL);
				map_put(&A.missing_logged, topic, tl, (void *)1);
			}
			continue;
		}
		map_del(&A.missing_logged, topic, tl);
		size_t np;
		const rd_kafka_TopicPartitionInfo_t **pi = rd_kafka_TopicDescription_partitions(d[i], &np);
		for (size_t j = 0; j < np; j++) {
			int32_t id = (int32_t)rd_kafka_TopicPartitionInfo_partition(pi[j]);
			struct part *p = part_get(topic, id, 0);
			if ((p && p->assigned) || (A.waiting && rd_kafka_topic_partition_list_find(A.waiting, topic, id)))
				continue;
			rd_kafka_topic_partition_list_add(add, topic, id);
		}
	}
	if (add->cnt || !A.described) {
		if (A.described)
			log_msg(LOG_INFO, "new partitions found: assigned from their beginning",
				"count", log_num(add->cnt), NULL);
		assign_new(add);
	}
	/* Later finds start at the beginning even while the first ones still
	 * wait for their offsets. */
	A.described = 1;
	rd_kafka_topic_partition_list_destroy(add);
	A.describe_due = mono_ms() + A.refresh_ms;
}

/* ---- admin answers, retries, stop -------------------------------------------- */

int assign_event(rd_kafka_event_t *ev)
{
	switch (rd_kafka_event_type(ev)) {
	case RD_KAFKA_EVENT_LISTOFFSETS_RESULT: lookup_done(ev); return 1;
	case RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT: committed_done(ev); return 1;
	case RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT: describe_done(ev); return 1;
	default: return 0;
	}
}

int64_t assign_due(void)
{
	if (!A.lookup_due) return A.describe_due;
	if (!A.describe_due) return A.lookup_due;
	return A.lookup_due < A.describe_due ? A.lookup_due : A.describe_due;
}

void assign_service(void)
{
	int64_t now = mono_ms();
	if (A.lookup_due && now >= A.lookup_due) lookup_send();
	if (A.describe_due && now >= A.describe_due && !A.describing) describe_send();
}

void assign_stop(void)
{
	if (A.waiting) rd_kafka_topic_partition_list_destroy(A.waiting);
	if (A.lookup) rd_kafka_topic_partition_list_destroy(A.lookup);
	A.waiting = A.lookup = NULL;
	A.rk = NULL;
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&A.parts, &i, &s)) free(s->val);
	map_free(&A.parts);
	map_free(&A.topics_seen);
	map_free(&A.missing_logged);
	for (size_t t = 0; A.topics && t < A.ntopics; t++) free(A.topics[t]);
	free(A.topics);
	A.topics = NULL;
	A.describe_due = 0;
}
