/* kafka.c - the librdkafka consumer on kbridge's poll loop (DESIGN.md §5, §6)
 * and the --demo mock cluster with its market-data producer (§7).
 * Everything librdkafka reports (records, rebalances, errors, statistics,
 * logs) arrives on the one consumer queue, whose io-event fd wakes poll()
 * (KAFKA-NOTES.md: clear the fd first, then drain; bounded per turn).
 * Nothing here blocks: offsets by timestamp are looked up asynchronously. */
#include "kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "clock.h"
#include "hub.h"
#include "json.h"
#include "log.h"
#include "map.h"
#include "server.h"

#define BATCH          256    /* records per consume call */
#define TURN_BUDGET    4096   /* records per loop turn, so clients are not starved */

/* What we know of one assigned (or once assigned) partition. */
struct part {
	int64_t next;      /* offset after the last record routed, -1 if none */
	int64_t start;     /* logical start assigned (BEGINNING, END, TAIL) while next < 0 */
	int64_t lag;       /* hi_offset - app_offset from statistics, -1 unknown */
};

static struct {
	const struct config *cfg;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	rd_kafka_queue_t *adminq;      /* ListOffsets, ListConsumerGroupOffsets results */
	int efd;
	int pending;                   /* stopped at the turn budget */
	int up, ready, assigned_once;
	int64_t last_err_logged;       /* error code last logged, to log changes only */
	int down_logged;
	struct map parts;              /* "topic\0partition" -> struct part * */
	struct map topics_seen;        /* topic -> (void *)1 once assigned */
	rd_kafka_topic_partition_list_t *waiting;   /* assignment awaiting offset lookups */
	rd_kafka_topic_partition_list_t *lookup;    /* still to look up, spec as offset */
	int lookups;                   /* ListOffsets requests not answered yet */
	int committed_pending;         /* ListConsumerGroupOffsets not answered yet */
	int64_t lookup_due;            /* when to ask again after a failure, 0: not */
	int lookup_backoff;            /* ms, doubling to 2 s */
	const char *bootstrap;         /* what the live consumer connects to (replays too) */
	int64_t replay_due;            /* next poll of the replay consumers */

	/* --demo */
	rd_kafka_t *demo;
	int64_t demo_next_ms;
	uint64_t demo_n;
} K;

/* ---- helpers ------------------------------------------------------------- */

static size_t part_key(char *buf, size_t cap, const char *topic, int32_t partition)
{
	int n = snprintf(buf, cap, "%s:%" PRId32, topic, partition);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static struct part *part_get(const char *topic, int32_t partition, int create)
{
	char key[300];
	size_t kl = part_key(key, sizeof(key), topic, partition);
	struct part *p = map_get(&K.parts, key, kl);
	if (p || !create) return p;
	if (!(p = malloc(sizeof(*p)))) return NULL;
	p->next = -1;
	p->start = RD_KAFKA_OFFSET_INVALID;
	p->lag = -1;
	if (map_put(&K.parts, key, kl, p) < 0) { free(p); return NULL; }
	return p;
}

static int set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
	char why[512];
	rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, why, sizeof(why));
	if (r == RD_KAFKA_CONF_OK) return 0;
	if (r == RD_KAFKA_CONF_UNKNOWN)
		snprintf(err, errlen, "-X %s: unknown librdkafka property", name);
	else
		snprintf(err, errlen, "-X %s=%s: %s", name, value, why);
	return -1;
}

/* K.up: -1 before anything is known, then 0 or 1; each change is one line. */
/* The user's settings: --ca-file, then every -X (so -X wins), except the
 * names in skip (NULL-terminated; the caller owns those). */
static int set_user_props(rd_kafka_conf_t *conf, const char *const *skip, char *err, size_t errlen)
{
	if (K.cfg->ca_file && set_prop(conf, "ssl.ca.location", K.cfg->ca_file, err, errlen) < 0) return -1;
	for (size_t i = 0; i < K.cfg->nxprops; i++) {
		/* Values may be long (ssl.ca.pem holds a whole certificate). */
		char *kv = strdup(K.cfg->xprops[i]);
		if (!kv) { snprintf(err, errlen, "out of memory"); return -1; }
		char *eq = strchr(kv, '=');
		*eq = '\0';
		int skipped = 0;
		for (const char *const *s = skip; s && *s; s++) skipped |= strcmp(kv, *s) == 0;
		int rc = skipped ? 0 : set_prop(conf, kv, eq + 1, err, errlen);
		free(kv);
		if (rc < 0) return -1;
	}
	return 0;
}

/* A consumed message as the hub sees it, borrowing its memory; record
 * headers go to hv (up to HUB_MAX_HEADERS) when hv is given and --headers is on. */
static struct hub_record record_of(rd_kafka_message_t *m, struct hub_header *hv)
{
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	struct hub_record r = {
		.topic = rd_kafka_topic_name(m->rkt), .partition = m->partition, .offset = m->offset,
		.timestamp_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
		.key = m->key, .key_len = m->key_len,
		.value = m->payload, .value_len = m->len,
		.headers = hv,
	};
	rd_kafka_headers_t *hdrs = NULL;
	if (hv && K.cfg->headers && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t vl;
		while (r.nheaders < HUB_MAX_HEADERS &&
		       rd_kafka_header_get_all(hdrs, r.nheaders, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR)
			hv[r.nheaders++] = (struct hub_header){ name, val, vl };
	}
	return r;
}

static void set_state_up(int up, const char *why)
{
	if (up == K.up) return;
	K.up = up;
	if (up) K.last_err_logged = 0;   /* a later failure is news again */
	if (up) log_msg(LOG_INFO, "kafka up", NULL);
	else log_msg(LOG_WARN, "kafka down", "reason", why, NULL);
}

/* ---- statistics: broker states and lag ------------------------------------ */

/* "brokers": {"name": {"state": "UP", ...}, ...}: up while any broker is. */
static void stats_brokers(const char *js, const struct json_tok *t, int obj)
{
	int any_up = 0;
	for (int i = obj + 1, k = 0; k < (int)t[obj].size; k++) {
		int v = (int)t[i].next;
		int st = json_obj_get(js, t, v, "state");
		/* Bootstrap entries (nodeid -1) count too: they prove reachability. */
		if (st >= 0 && json_str_eq(js, t, st, "UP", 2)) any_up = 1;
		i = (int)t[v].next;
	}
	set_state_up(any_up, "no broker reachable");
}

static void stats_topics(const char *js, const struct json_tok *t, int obj)
{
	for (int i = obj + 1, k = 0; k < (int)t[obj].size; k++) {
		int v = (int)t[i].next;
		char topic[256];
		ssize_t tl = json_str_decode(js, t, i, topic, sizeof(topic) - 1);
		int parts = json_obj_get(js, t, v, "partitions");
		if (tl > 0 && parts >= 0 && t[parts].type == JSON_OBJECT) {
			topic[tl] = '\0';
			for (int pi = parts + 1, pk = 0; pk < (int)t[parts].size; pk++) {
				int pv = (int)t[pi].next;
				int64_t id, hi = -1, app = -1, next = -1, lo = -1;
				int hi_t = json_obj_get(js, t, pv, "hi_offset");
				int app_t = json_obj_get(js, t, pv, "app_offset");
				int next_t = json_obj_get(js, t, pv, "next_offset");
				int lo_t = json_obj_get(js, t, pv, "lo_offset");
				int pid_t = json_obj_get(js, t, pv, "partition");
				if (pid_t >= 0 && json_tok_int(js, t, pid_t, &id) == 0 && id >= 0) {
					if (hi_t >= 0) json_tok_int(js, t, hi_t, &hi);
					if (app_t >= 0) json_tok_int(js, t, app_t, &app);
					if (next_t >= 0) json_tok_int(js, t, next_t, &next);
					if (lo_t >= 0) json_tok_int(js, t, lo_t, &lo);
					/* Before the first record app_offset is -1: the fetch
					 * position stands in; an empty partition lags 0. */
					if (app < 0) app = next;
					if (app < 0 && hi >= 0 && hi == lo) app = hi;
					struct part *p = part_get(topic, (int32_t)id, 0);
					if (p) p->lag = (hi >= 0 && app >= 0) ? (hi > app ? hi - app : 0) : -1;
				}
				pi = (int)t[pv].next;
			}
		}
		i = (int)t[v].next;
	}
}

static void handle_stats(const char *js, size_t len)
{
	int cap = (int)(len / 2) + 16;
	struct json_tok *t = malloc((size_t)cap * sizeof(*t));
	if (!t) return;
	int n = json_parse(js, len, t, cap, 16);
	if (n > 0 && t[0].type == JSON_OBJECT) {
		int b = json_obj_get(js, t, 0, "brokers");
		if (b >= 0 && t[b].type == JSON_OBJECT) stats_brokers(js, t, b);
		int tp = json_obj_get(js, t, 0, "topics");
		if (tp >= 0 && t[tp].type == JSON_OBJECT) stats_topics(js, t, tp);
	}
	free(t);
}

/* ---- rebalancing ----------------------------------------------------------- */

/* Starts p where --offset says. "latest" and @MS need a lookup: p then
 * starts at the end unless the lookup answers, and is added to *req with
 * the spec (LATEST or the timestamp) as offset. */
static void start_by_offset_flag(rd_kafka_topic_partition_t *p, rd_kafka_topic_partition_list_t **req, int cap)
{
	int64_t spec = RD_KAFKA_OFFSET_SPEC_LATEST;
	switch (K.cfg->offset) {
	case OFFSET_EARLIEST: p->offset = RD_KAFKA_OFFSET_BEGINNING; return;
	case OFFSET_TAIL:     p->offset = RD_KAFKA_OFFSET_TAIL(K.cfg->offset_arg); return;
	case OFFSET_TIME:     spec = K.cfg->offset_arg; break;
	case OFFSET_LATEST:   break;
	}
	p->offset = RD_KAFKA_OFFSET_END;
	if (!*req) *req = rd_kafka_topic_partition_list_new(cap);
	rd_kafka_topic_partition_list_add(*req, p->topic, p->partition)->offset = spec;
}

/* Start offsets for newly assigned partitions (fan-out mode): partitions of
 * topics first seen after start-up begin at the beginning, so nothing
 * produced before the assignment is lost (KAFKA-NOTES.md); partitions seen
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
		int topic_known = map_get(&K.topics_seen, p->topic, strlen(p->topic)) != NULL;
		if (K.cfg->group) {
			/* Committed offsets win (§10), even over what this instance
			 * routed itself: another member may have moved on since. */
			p->offset = RD_KAFKA_OFFSET_INVALID;
		} else if (known && known->next >= 0) {
			p->offset = known->next;
		} else if (K.assigned_once && (!topic_known || !known)) {
			p->offset = RD_KAFKA_OFFSET_BEGINNING;
		} else {
			start_by_offset_flag(p, &req, parts->cnt);
		}
		part_get(p->topic, p->partition, 1);
		map_put(&K.topics_seen, p->topic, strlen(p->topic), (void *)1);
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
	}
	if (strcmp(rd_kafka_rebalance_protocol(K.rk), "COOPERATIVE") == 0)
		e = rd_kafka_incremental_assign(K.rk, parts);
	else
		err = rd_kafka_assign(K.rk, parts);
	if (e) {
		log_msg(LOG_ERROR, "kafka assign failed", "error", rd_kafka_error_string(e), NULL);
		rd_kafka_error_destroy(e);
	} else if (err) {
		log_msg(LOG_ERROR, "kafka assign failed", "error", rd_kafka_err2str(err), NULL);
	}
	K.assigned_once = 1;
	K.ready = 1;
	set_state_up(1, NULL);     /* an assignment needed a coordinator */
	log_msg(LOG_INFO, "partitions assigned", "count", log_num(parts->cnt), NULL);
}

/* Every offset is in: the waiting assignment goes ahead. */
static void lookup_finish(void)
{
	rd_kafka_topic_partition_list_t *w = K.waiting;
	if (K.lookup) rd_kafka_topic_partition_list_destroy(K.lookup);
	K.lookup = NULL;
	K.waiting = NULL;
	K.lookup_backoff = 0;
	K.lookup_due = 0;
	if (!w) return;
	do_assign(w);      /* even if all were revoked: librdkafka waits for the call */
	rd_kafka_topic_partition_list_destroy(w);
}

static void lookup_send(void);

/* After an answer: ask for what is still unknown, or assign. */
static void lookup_progress(void)
{
	if (K.lookups || K.committed_pending) return;
	if (K.lookup && K.lookup->cnt) lookup_send();
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
	K.lookup_due = 0;
	if (!K.lookup->cnt) {              /* all revoked meanwhile */
		lookup_progress();
		return;
	}
	K.lookups++;
	/* The same view of the end as the consumer: read_committed unless
	 * -X isolation.level says otherwise (librdkafka's default). */
	char iso[32] = "";
	size_t isz = sizeof(iso);
	rd_kafka_conf_get(rd_kafka_conf(K.rk), "isolation.level", iso, &isz);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(K.rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_isolation_level(o,
		strcmp(iso, "read_uncommitted") == 0 ? RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED
						     : RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED);
	if (e) rd_kafka_error_destroy(e);
	rd_kafka_ListOffsets(K.rk, K.lookup, o, K.adminq);
	rd_kafka_AdminOptions_destroy(o);
}

/* Looks up the offsets of req without blocking; the assignment of parts
 * waits for the answers (lookup_done), together with any assignment
 * already waiting. */
static void lookup_offsets(rd_kafka_topic_partition_list_t *parts, rd_kafka_topic_partition_list_t *req)
{
	waiting_add(&K.waiting, parts);
	waiting_add(&K.lookup, req);
	K.lookup_backoff = 0;
	lookup_progress();                  /* sent now or when the answers are in */
}

/* Group mode with --offset latest, -N or @MS: a partition without a
 * committed offset would follow auto.offset.reset, which knows neither -N
 * nor @MS and resolves "latest" only after the assignment. So the group's
 * committed offsets are listed first (asynchronously); partitions without
 * one then take --offset like fan-out's first assignment. */
static void committed_lookup(rd_kafka_topic_partition_list_t *parts)
{
	waiting_add(&K.waiting, parts);
	rd_kafka_ListConsumerGroupOffsets_t *q = rd_kafka_ListConsumerGroupOffsets_new(K.cfg->group, parts);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(K.rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
	/* Offsets of a pending transactional commit count, as for the consumer. */
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_require_stable_offsets(o, 1);
	if (e) rd_kafka_error_destroy(e);
	K.committed_pending++;
	rd_kafka_ListConsumerGroupOffsets(K.rk, &q, 1, o, K.adminq);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_ListConsumerGroupOffsets_destroy(q);
}

static void committed_done(rd_kafka_event_t *ev)
{
	K.committed_pending--;
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
			"group", K.cfg->group, "error", why, NULL);
	}
	rd_kafka_topic_partition_list_t *req = NULL;
	for (int i = 0; got && K.waiting && i < got->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &got->elems[i];
		rd_kafka_topic_partition_t *dst = rd_kafka_topic_partition_list_find(K.waiting, tp->topic, tp->partition);
		if (!dst || tp->err) continue;          /* revoked, or left to the consumer */
		if (tp->offset >= 0) {
			dst->offset = tp->offset;       /* committed offsets win (§10) */
			continue;
		}
		start_by_offset_flag(dst, &req, got->cnt);
	}
	if (req) {
		waiting_add(&K.lookup, req);
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
	rd_kafka_topic_partition_list_t *w = K.waiting;
	K.lookups--;
	if (!w || !K.lookup) return;
	if (!K.lookup->cnt) {              /* all revoked meanwhile */
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
			rd_kafka_topic_partition_list_del(K.lookup, tp->topic, tp->partition);
		}
	}
	if (K.lookups) return;             /* the answer to a later request is due */
	if (K.lookup->cnt && why) {
		if (!K.lookup_backoff)
			log_msg(LOG_WARN, "offset lookup failed: retrying, not ready until it succeeds",
				"partitions", log_num(K.lookup->cnt), "error", why, NULL);
		K.lookup_backoff = K.lookup_backoff ? K.lookup_backoff * 2 : 100;
		if (K.lookup_backoff > 2000) K.lookup_backoff = 2000;
		K.lookup_due = mono_ms() + K.lookup_backoff;
		return;
	}
	lookup_progress();                 /* partitions added since the request, or done */
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	(void)opaque;
	int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		/* A cooperative rebalance may add nothing: acknowledge it now,
		 * librdkafka waits for the call. */
		if (parts->cnt == 0) {
			do_assign(parts);
			return;
		}
		if (K.cfg->group && K.cfg->offset != OFFSET_EARLIEST) {
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
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		log_msg(LOG_INFO, "partitions revoked", "count", log_num(parts->cnt), NULL);
		for (int i = 0; i < parts->cnt; i++) {
			/* Not assigned yet: the lookup's answer must not assign them. */
			if (K.waiting) rd_kafka_topic_partition_list_del(K.waiting, parts->elems[i].topic, parts->elems[i].partition);
			if (K.lookup) rd_kafka_topic_partition_list_del(K.lookup, parts->elems[i].topic, parts->elems[i].partition);
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

/* ---- errors, logs ---------------------------------------------------------- */

/* TLS failures arrive as _SSL and, for the same handshake, as _TRANSPORT
 * with OpenSSL's text: one class, so they are logged once and hinted. */
static int tls_failure(int err, const char *reason)
{
	return err == RD_KAFKA_RESP_ERR__SSL ||
	       (err == RD_KAFKA_RESP_ERR__TRANSPORT && reason &&
		(strstr(reason, "SSL") || strstr(reason, "certificate")));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk; (void)opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		set_state_up(0, reason);
		return;
	}
	int cls = tls_failure(err, reason) ? RD_KAFKA_RESP_ERR__SSL : err;
	/* One line per change of error, not one per retry. */
	if (K.last_err_logged == cls) return;
	K.last_err_logged = cls;
	log_msg(rd_kafka_fatal_error(K.rk, NULL, 0) ? LOG_ERROR : LOG_WARN, "kafka error",
		"code", rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason", reason,
		"hint", err == RD_KAFKA_RESP_ERR__RESOLVE ?
			"broker name does not resolve; a bare chroot or scratch root without /etc/hosts "
			"and resolv.conf cannot resolve names (even localhost under musl): use numeric "
			"addresses or provide them" :
		cls == RD_KAFKA_RESP_ERR__SSL ?
			"TLS failed; for certificate verification give a CA with --ca-file, "
			"-X ssl.ca.location=PATH, -X ssl.ca.pem=PEM or SSL_CERT_FILE" : NULL,
		NULL);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk; (void)opaque;
	handle_stats(json, len);
	return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* librdkafka logs every failed connection attempt (FAIL, level 3) on
	 * each retry; error_cb reports state changes once, so its own lines
	 * are debug detail, except critical ones and configuration warnings. */
	if (level <= 4 && strcmp(fac, "OFFSET") == 0) {
		/* A position out of range (retention deleted records not yet
		 * routed): records were skipped, which an operator must see. */
		log_msg(LOG_WARN, "kafka offset reset: records were skipped", "text", buf, NULL);
		return;
	}
	enum log_level l = level <= 2 ? LOG_ERROR : strcmp(fac, "CONFWARN") == 0 ? LOG_WARN : LOG_DEBUG;
	log_msg(l, "librdkafka", "facility", fac, "text", buf, NULL);
}

/* ---- demo ------------------------------------------------------------------ */

static const char *const demo_topics[3] = { "token-info", "trade-info", "aggregate-info" };

static int demo_start(rd_kafka_conf_t *consumer_conf, char *err, size_t errlen)
{
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	char why[512];
	if (rd_kafka_conf_set(pc, "test.mock.num.brokers", "1", why, sizeof(why)) ||
	    rd_kafka_conf_set(pc, "linger.ms", "0", why, sizeof(why)) ||
	    rd_kafka_conf_set(pc, "log.queue", "false", why, sizeof(why))) {
		snprintf(err, errlen, "demo producer: %s", why);
		rd_kafka_conf_destroy(pc);
		return -1;
	}
	rd_kafka_conf_set_log_cb(pc, log_cb);
	if (!(K.demo = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof(why)))) {
		snprintf(err, errlen, "demo producer: %s", why);
		return -1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(K.demo);
	if (!mc) {
		snprintf(err, errlen, "demo: librdkafka did not start its mock cluster");
		return -1;
	}
	rd_kafka_mock_group_initial_rebalance_delay_ms(mc, 0);
	for (int i = 0; i < 3; i++) rd_kafka_mock_topic_create(mc, demo_topics[i], 1, 1);
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
	K.bootstrap = strdup(boot);
	if (rd_kafka_conf_set(consumer_conf, "bootstrap.servers", boot, why, sizeof(why))) {
		snprintf(err, errlen, "demo: %s", why);
		return -1;
	}
	log_msg(LOG_INFO, "demo mock cluster ready: produce with kcat -P -b BOOTSTRAP -t trade-info",
		"bootstrap", boot, "rate", log_num(K.cfg->demo_rate), NULL);
	K.demo_next_ms = mono_ms();
	return 0;
}

static void demo_produce_one(void)
{
	static const struct { const char *sym, *name; double price; } coins[] = {
		{ "BTC/USDT", "Bitcoin", 97000 }, { "ETH/USDT", "Ethereum", 3600 },
		{ "SOL/USDT", "Solana", 240 }, { "BNB/USDT", "BNB", 650 },
		{ "XRP/USDT", "XRP", 2.4 }, { "ADA/USDT", "Cardano", 1.05 },
	};
	uint64_t n = K.demo_n++;
	int ti = (int)(n % 10 < 6 ? 1 : n % 10 < 8 ? 0 : 2);     /* trades dominate */
	int ci = (int)((n * 7 + n / 3) % 6);
	double wobble = 1.0 + (double)((int)((n * 2654435761u) % 2001) - 1000) / 100000.0;
	double price = coins[ci].price * wobble;
	char ts[32], payload[512];
	time_t secs = (time_t)(wall_ms() / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int len;
	if (ti == 1)
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"price\":%.6g,\"size\":%.4f,\"side\":\"%s\",\"trade_id\":%" PRIu64 ",\"timestamp\":\"%s\"}",
			       coins[ci].sym, price, 0.01 + (double)(n % 97) / 10.0, n % 2 ? "buy" : "sell", n, ts);
	else if (ti == 0)
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"name\":\"%s\",\"price\":%.6g,\"change_24h\":%.2f,\"volume_24h\":%.0f,\"timestamp\":\"%s\"}",
			       coins[ci].sym, coins[ci].name, price, (wobble - 1) * 100 * 50, coins[ci].price * 1e4, ts);
	else
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"timeframe\":\"5s\",\"open\":%.6g,\"high\":%.6g,\"low\":%.6g,\"close\":%.6g,\"volume\":%.3f,\"timestamp\":\"%s\"}",
			       coins[ci].sym, coins[ci].price, price * 1.001, price * 0.999, price, (double)(n % 500) / 7.0, ts);
	if (len <= 0) return;
	rd_kafka_resp_err_t e = rd_kafka_producev(K.demo,
		RD_KAFKA_V_TOPIC(demo_topics[ti]),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_KEY(coins[ci].sym, strlen(coins[ci].sym)),
		RD_KAFKA_V_VALUE(payload, (size_t)len),
		RD_KAFKA_V_END);
	if (e && e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
		log_msg(LOG_WARN, "demo produce failed", "error", rd_kafka_err2str(e), NULL);
}

static void demo_tick(void)
{
	if (!K.demo || K.cfg->demo_rate <= 0) return;
	int64_t now = mono_ms();
	double gap = 1000.0 / (double)K.cfg->demo_rate;
	int burst = 0;
	while (K.demo_next_ms <= now && burst++ < 1000) {
		demo_produce_one();
		K.demo_next_ms += gap < 1 ? 1 : (int64_t)gap;
	}
	if (K.demo_next_ms < now - 1000) K.demo_next_ms = now;   /* fell behind: do not catch up */
	rd_kafka_poll(K.demo, 0);
}

/* ---- replay from Kafka (§4 Resume) ------------------------------------------ */

#define MAX_REPLAYS   16     /* replay consumers at once */
#define REPLAY_BUDGET 512    /* records per replay per loop turn */

struct replay_part {
	char topic[256];
	int32_t partition;
	int done;
};

struct replay {
	struct client *c;
	char *id;                 /* the resume request's raw "id", echoed by RESUME_GAP */
	size_t id_len;
	rd_kafka_t *rk;
	struct replay_part *parts;
	int nparts, left;
	struct replay *next;
};

static struct replay *replays;
static int nreplays;

static void replay_free(struct replay *rp)
{
	if (rp->rk) rd_kafka_destroy_flags(rp->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	free(rp->id);
	free(rp->parts);
	free(rp);
	nreplays--;
}

static void replay_part_done(struct replay *rp, int i)
{
	if (rp->parts[i].done) return;
	rp->parts[i].done = 1;
	rp->left--;
	hub_replay_done(rp->c, rp->parts[i].topic, rp->parts[i].partition);
}

static int replay_find(const struct replay *rp, const char *topic, int32_t partition)
{
	for (int i = 0; i < rp->nparts; i++)
		if (rp->parts[i].partition == partition && strcmp(rp->parts[i].topic, topic) == 0) return i;
	return -1;
}

int kafka_replay_start(struct client *c, const struct kafka_replay_req *req, int n,
		       const char *id, size_t id_len, char *err, size_t errlen)
{
	char why[512], gid[96];
	if (nreplays >= MAX_REPLAYS) {
		snprintf(err, errlen, "too many resumes are being served from Kafka right now; retry shortly");
		return -1;
	}
	struct replay *rp = calloc(1, sizeof(*rp));
	if (!rp || !(rp->parts = calloc((size_t)n, sizeof(*rp->parts)))) {
		free(rp);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nreplays++;
	rp->c = c;
	if (id && (rp->id = malloc(id_len))) {
		memcpy(rp->id, id, id_len);
		rp->id_len = id_len;
	}
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	snprintf(gid, sizeof(gid), "kbridge-replay-%d-%" PRId64, (int)getpid(), mono_ms());
	struct { const char *k, *v; } props[] = {
		{ "bootstrap.servers", K.bootstrap },
		{ "group.id", gid },
		{ "enable.auto.commit", "false" },
		{ "auto.offset.reset", "error" },      /* a gap must be reported, not skipped */
		{ "enable.partition.eof", "true" },    /* "caught up" */
		{ "fetch.queue.backoff.ms", "20" },
		{ "client.id", "kbridge-replay" },
	};
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
		if (set_prop(conf, props[i].k, props[i].v, err, errlen) < 0) goto fail;
	if (K.cfg->demo && set_prop(conf, "fetch.wait.max.ms", "10", err, errlen) < 0) goto fail;
	/* The same settings as the live consumer (security, fetch tuning), but
	 * not those that make this consumer a replay. */
	static const char *const replay_own[] = { "group.id", "enable.partition.eof", "auto.offset.reset", NULL };
	if (set_user_props(conf, replay_own, err, errlen) < 0) goto fail;
	rd_kafka_conf_set_log_cb(conf, log_cb);
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
	rp->next = replays;
	replays = rp;
	return 0;
fail:
	rd_kafka_conf_destroy(conf);
	replay_free(rp);
	return -1;
}

/* RESUME_GAP: Kafka no longer has the offset asked for; name the first
 * one it has, when librdkafka learnt it from the failed fetch. */
static void replay_gap(struct replay *rp, int i)
{
	int64_t lo = -1, hi = -1;
	rd_kafka_get_watermark_offsets(rp->rk, rp->parts[i].topic, rp->parts[i].partition, &lo, &hi);
	struct jbuf b;
	char tp[300];
	snprintf(tp, sizeof(tp), "%s:%d", rp->parts[i].topic, (int)rp->parts[i].partition);
	reply_begin(&b, "error", rp->id, rp->id_len);
	json_key(&b, "code");    json_cstr(&b, "RESUME_GAP");
	json_key(&b, "message"); json_cstr(&b, "Kafka no longer holds the records after the resume offset; "
					      "live records continue, ask for a snapshot to catch up");
	json_key(&b, "earliest");
	json_obj_begin(&b);
	json_key(&b, tp);
	if (lo >= 0) json_int(&b, lo); else json_null(&b);
	json_obj_end(&b);
	reply_send(rp->c, &b);
	replay_part_done(rp, i);
}

static void kafka_replay_service(void)
{
	K.replay_due = mono_ms() + 5;   /* polled, not woken: every 5 ms while any runs */
	for (struct replay **pp = &replays; *pp;) {
		struct replay *rp = *pp;
		for (int k = 0; k < REPLAY_BUDGET && rp->left > 0; k++) {
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
				struct hub_header hv[HUB_MAX_HEADERS];
				struct hub_record r = record_of(m, hv);
				hub_replay_record(rp->c, &r);
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

void kafka_replay_client_gone(struct client *c)
{
	for (struct replay **pp = &replays; *pp;) {
		struct replay *rp = *pp;
		if (rp->c == c) {
			*pp = rp->next;
			replay_free(rp);
		} else {
			pp = &rp->next;
		}
	}
}

/* ---- start, service, stop -------------------------------------------------- */

int kafka_check_props(const struct config *cfg, char *err, size_t errlen)
{
	K.cfg = cfg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc = set_user_props(conf, NULL, err, errlen);
	rd_kafka_conf_destroy(conf);
	return rc;
}

int kafka_start(const struct config *cfg, char *err, size_t errlen)
{
	char why[512], buf[256];
	K.cfg = cfg;
	K.efd = -1;
	K.up = -1;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	/* Defaults first, so -X can override any of them. */
	if (cfg->group) {
		if (set_prop(conf, "group.id", cfg->group, err, errlen) < 0) goto fail;
		if (set_prop(conf, "enable.auto.commit", "true", err, errlen) < 0) goto fail;
	} else {
		/* Fan-out: a group of our own, so every partition is ours (§6). */
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		snprintf(buf, sizeof(buf), "kbridge-fanout-%s-%d-%" PRId64, host, (int)getpid(), wall_ms());
		if (set_prop(conf, "group.id", buf, err, errlen) < 0) goto fail;
		if (set_prop(conf, "enable.auto.commit", "false", err, errlen) < 0) goto fail;
		/* Alone in its group, a member gains nothing from a long session;
		 * a short one lets a rejoin (new topic or partitions) finish in
		 * seconds where a coordinator holds it for the session timeout. */
		if (set_prop(conf, "session.timeout.ms", "6000", err, errlen) < 0) goto fail;
	}
	struct { const char *k, *v; } defaults[] = {
		{ "client.id", "kbridge" },
		{ "partition.assignment.strategy", "cooperative-sticky" },
		/* Fan-out assigns every start offset itself, so this only decides
		 * where a partition goes when its position fell out of retention:
		 * the oldest record left loses the fewest. Group mode: where a
		 * partition without a committed offset starts. */
		{ "auto.offset.reset", cfg->offset == OFFSET_EARLIEST || !cfg->group ? "earliest" : "latest" },
		{ "topic.metadata.refresh.interval.ms", "5000" },
		{ "fetch.queue.backoff.ms", "20" },
		{ "statistics.interval.ms", "2000" },
		{ "reconnect.backoff.max.ms", "2000" },
		{ "log.queue", "true" },
		{ "enable.partition.eof", "false" },
	};
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (set_prop(conf, defaults[i].k, defaults[i].v, err, errlen) < 0) goto fail;
	if (cfg->demo) {
		/* The mock holds every fetch for fetch.wait.max.ms: keep it short. */
		if (set_prop(conf, "fetch.wait.max.ms", "10", err, errlen) < 0) goto fail;
	} else if (set_prop(conf, "bootstrap.servers", cfg->brokers, err, errlen) < 0) {
		goto fail;
	} else {
		K.bootstrap = cfg->brokers;
	}
	if (set_user_props(conf, NULL, err, errlen) < 0) goto fail;
	if (cfg->demo && demo_start(conf, err, errlen) < 0) goto fail;

	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);

	if (!(K.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
		/* Configuration the library rejects as a whole is the user's to fix. */
		snprintf(err, errlen, "kafka: %s", why);
		return -2;
	}
	rd_kafka_set_log_queue(K.rk, NULL);
	rd_kafka_poll_set_consumer(K.rk);
	K.q = rd_kafka_queue_get_consumer(K.rk);
	K.adminq = rd_kafka_queue_new(K.rk);
	K.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (K.efd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	/* An eventfd wants exactly 8 bytes (KAFKA-NOTES.md). */
	static const uint64_t one = 1;
	rd_kafka_queue_io_event_enable(K.q, K.efd, &one, sizeof(one));
	rd_kafka_queue_io_event_enable(K.adminq, K.efd, &one, sizeof(one));
	/* Events queued during rd_kafka_new() produced no wake-up: make one. */
	if (write(K.efd, &one, sizeof(one)) < 0) { /* cannot fail on a fresh eventfd */ }

	if (cfg->ntopics) {
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)cfg->ntopics);
		const struct hub_route_info *ri;
		size_t nr = hub_routes(&ri);
		for (size_t i = 0; i < nr; i++)
			rd_kafka_topic_partition_list_add(topics, ri[i].topic, RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = rd_kafka_subscribe(K.rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (e) {
			snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(e));
			/* Stop librdkafka's threads before the process exits. */
			rd_kafka_destroy(K.rk);
			K.rk = NULL;
			return -2;
		}
	} else {
		log_msg(LOG_WARN, "no --topic given: nothing will be consumed", NULL);
	}
	return K.efd;
fail:
	rd_kafka_conf_destroy(conf);
	return -2;
}

static void handle_record(rd_kafka_message_t *m)
{
	if (m->err) {
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
		error_cb(K.rk, m->err, rd_kafka_message_errstr(m), NULL);
		return;
	}
	set_state_up(1, NULL);
	struct hub_header hv[HUB_MAX_HEADERS];
	struct hub_record r = record_of(m, hv);
	struct part *p = part_get(r.topic, m->partition, 1);
	if (p) p->next = m->offset + 1;
	hub_route(&r);
}

void kafka_service(void)
{
	uint64_t v;
	/* Clear the wake-up first, then drain: the other order loses wake-ups. */
	while (read(K.efd, &v, sizeof(v)) > 0) {}
	rd_kafka_message_t *msgs[BATCH];
	int budget = TURN_BUDGET;
	K.pending = 0;
	while (budget > 0) {
		ssize_t n = rd_kafka_consume_batch_queue(K.q, 0, msgs, BATCH);
		if (n <= 0) break;
		for (ssize_t i = 0; i < n; i++) {
			handle_record(msgs[i]);
			rd_kafka_message_destroy(msgs[i]);
		}
		budget -= (int)n;
	}
	if (budget <= 0) K.pending = 1;
	rd_kafka_event_t *ev;
	while ((ev = rd_kafka_queue_poll(K.adminq, 0))) {
		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTOFFSETS_RESULT) lookup_done(ev);
		else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) committed_done(ev);
		rd_kafka_event_destroy(ev);
	}
	if (K.lookup_due && mono_ms() >= K.lookup_due) lookup_send();
	demo_tick();
	kafka_replay_service();
}

int kafka_pending(void)
{
	return K.pending;
}

int kafka_timeout_ms(void)
{
	int64_t due = INT64_MAX;
	if (replays && K.replay_due < due) due = K.replay_due;
	if (K.lookup_due && K.lookup_due < due) due = K.lookup_due;
	if (K.demo && K.cfg->demo_rate > 0 && K.demo_next_ms < due) due = K.demo_next_ms;
	if (due == INT64_MAX) return -1;
	int64_t d = due - mono_ms();
	return d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
}

void kafka_stop(void)
{
	if (K.rk) {
		/* Commits in group mode (§8); leaves the group either way. */
		rd_kafka_resp_err_t e = rd_kafka_consumer_close(K.rk);
		if (e) log_msg(LOG_WARN, "kafka close", "error", rd_kafka_err2str(e), NULL);
		if (K.waiting) rd_kafka_topic_partition_list_destroy(K.waiting);
		if (K.lookup) rd_kafka_topic_partition_list_destroy(K.lookup);
		rd_kafka_queue_destroy(K.adminq);
		rd_kafka_queue_destroy(K.q);
		rd_kafka_destroy(K.rk);
		K.rk = NULL;
	}
	if (K.demo) {
		rd_kafka_flush(K.demo, 100);
		rd_kafka_destroy(K.demo);
		K.demo = NULL;
	}
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&K.parts, &i, &s)) free(s->val);
	map_free(&K.parts);
	map_free(&K.topics_seen);
	if (K.efd >= 0) close(K.efd);
}

void kafka_print_version(void)
{
	char feat[512];
	size_t fl = sizeof(feat);
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (rd_kafka_conf_get(c, "builtin.features", feat, &fl) != RD_KAFKA_CONF_OK) strcpy(feat, "?");
	rd_kafka_conf_destroy(c);
	printf("librdkafka %s\nbuiltin.features %s\n", rd_kafka_version_str(), feat);
}

const char *kafka_version(void)
{
	return rd_kafka_version_str();
}

int kafka_up(void)
{
	return K.up == 1;
}

int kafka_ready(void)
{
	return K.ready && K.up == 1;
}

int kafka_position_next(size_t *i, const char **tp, int64_t *last)
{
	struct map_slot *s;
	while (map_next(&K.parts, i, &s)) {
		const struct part *p = s->val;
		if (p->next < 0) continue;
		*tp = s->key;
		*last = p->next - 1;
		return 1;
	}
	return 0;
}

int kafka_lag_next(size_t *i, const char **tp, int64_t *lag)
{
	struct map_slot *s;
	if (!map_next(&K.parts, i, &s)) return 0;
	const struct part *p = s->val;
	*tp = s->key;
	*lag = p->lag;
	/* Fresher than the 2 s statistics, and known from the first fetch on:
	 * the cached high watermark (no broker call) minus our position. */
	const char *colon = strrchr(s->key, ':');
	char topic[256];
	int64_t lo, hi;
	if (K.rk && colon && (size_t)(colon - s->key) < sizeof(topic)) {
		memcpy(topic, s->key, (size_t)(colon - s->key));
		topic[colon - s->key] = 0;
		if (rd_kafka_get_watermark_offsets(K.rk, topic, (int32_t)atoi(colon + 1), &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		    hi < 0)
			return 1;
		/* Before the first record: where the assignment said to start. */
		int64_t at = p->next >= 0 ? p->next :
			     p->start == RD_KAFKA_OFFSET_BEGINNING && lo >= 0 ? lo :
			     p->start <= RD_KAFKA_OFFSET_TAIL_BASE && lo >= 0 ?
				(hi - (RD_KAFKA_OFFSET_TAIL_BASE - p->start) > lo ? hi - (RD_KAFKA_OFFSET_TAIL_BASE - p->start) : lo) :
			     p->start == RD_KAFKA_OFFSET_END ? hi : -1;
		if (at >= 0) *lag = hi > at ? hi - at : 0;
	}
	return 1;
}
