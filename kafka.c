/* kafka.c - the live librdkafka consumer on kbridge's poll loop (kafka.h).
 * Everything librdkafka reports (records, rebalances, errors, statistics,
 * logs) arrives on the one consumer queue, whose io-event fd wakes poll():
 * the fd is cleared first, then the queue drained, at most TURN_BUDGET
 * records per turn so clients are not starved (draining first and clearing
 * after would lose wake-ups). Records are handed to the routing layer
 * through the callback given to kafka_start. Start offsets and positions
 * are assign.c's, replays replay.c's, the --demo cluster demo.c's.
 * Nothing here blocks. */
#include "kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "assign.h"
#include "clock.h"
#include "json_parse.h"
#include "log.h"

#define BATCH          256    /* records per consume call */
#define TURN_BUDGET    4096   /* records per loop turn, so clients are not starved */

static struct {
	const struct config *cfg;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;           /* the consumer queue: records and every event */
	rd_kafka_queue_t *adminq;      /* offset lookup answers (assign.c) */
	int efd;                       /* the eventfd both queues write to */
	int pending;                   /* stopped at the turn budget */
	int up;                        /* -1 unknown, 0 no broker reachable, 1 up */
	int64_t last_err_logged;       /* error class last logged, to log changes only */
	const char *bootstrap;         /* what the live consumer connects to (replays too) */
	kafka_record_fn *on_record;
	struct record_header *hv;      /* kafka_record's header list, grown as needed */
	size_t hcap;
} K;

/* ---- configuration and records -------------------------------------------- */

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
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

int kafka_conf_user(rd_kafka_conf_t *conf, const char *const *skip, char *err, size_t errlen)
{
	if (K.cfg->ca_file && kafka_conf_set(conf, "ssl.ca.location", K.cfg->ca_file, err, errlen) < 0) return -1;
	for (size_t i = 0; i < K.cfg->nxprops; i++) {
		/* Values may be long (ssl.ca.pem holds a whole certificate). */
		char *kv = strdup(K.cfg->xprops[i]);
		if (!kv) { snprintf(err, errlen, "out of memory"); return -1; }
		char *eq = strchr(kv, '=');
		*eq = '\0';
		int skipped = 0;
		for (const char *const *s = skip; s && *s; s++) skipped |= strcmp(kv, *s) == 0;
		int rc = skipped ? 0 : kafka_conf_set(conf, kv, eq + 1, err, errlen);
		free(kv);
		if (rc < 0) return -1;
	}
	return 0;
}

/* Grows hv to hold n headers; 0, or -1 when out of memory. */
static int headers_reserve(size_t n)
{
	if (n <= K.hcap) return 0;
	size_t cap = K.hcap ? K.hcap : 16;
	while (cap < n) cap *= 2;
	struct record_header *v = realloc(K.hv, cap * sizeof(*v));
	if (!v) return -1;
	K.hv = v;
	K.hcap = cap;
	return 0;
}

struct record kafka_record(rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	struct record r = {
		.topic = rd_kafka_topic_name(m->rkt), .partition = m->partition, .offset = m->offset,
		.timestamp_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
		.key = m->key, .key_len = m->key_len,
		.value = m->payload, .value_len = m->len,
	};
	rd_kafka_headers_t *hdrs = NULL;
	if (!K.cfg->headers || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return r;
	size_t total = rd_kafka_header_cnt(hdrs);
	size_t want = total < RECORD_MAX_HEADERS ? total : RECORD_MAX_HEADERS;
	/* Out of memory forwards none, and says how many, like the bound. */
	if (headers_reserve(want) < 0) want = 0;
	const char *name;
	const void *val;
	size_t vl;
	while (r.nheaders < want &&
	       rd_kafka_header_get_all(hdrs, r.nheaders, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR)
		K.hv[r.nheaders++] = (struct record_header){ name, val, vl };
	r.headers = K.hv;
	r.headers_truncated = total - r.nheaders;
	return r;
}

/* K.up: -1 before anything is known, then 0 or 1; each change is one line. */
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
					assign_set_lag(topic, (int32_t)id, (hi >= 0 && app >= 0) ? (hi > app ? hi - app : 0) : -1);
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



/* An assignment (assign.c) proves a coordinator answered. */
static void assigned(void)
{
	set_state_up(1, NULL);
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

void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
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


int kafka_wake_fd(rd_kafka_queue_t *const *queues, size_t n, int fd, char *err, size_t errlen)
{
	if (fd < 0) fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	/* An eventfd takes exactly 8 bytes: a 1-byte write fails with EINVAL,
	 * which librdkafka ignores, and the loop would never wake. */
	static const uint64_t one = 1;
	for (size_t i = 0; i < n; i++) rd_kafka_queue_io_event_enable(queues[i], fd, &one, sizeof(one));
	/* Events queued during rd_kafka_new() produced no wake-up: make one. */
	if (write(fd, &one, sizeof(one)) < 0) { /* cannot fail on a fresh eventfd */ }
	return fd;
}

/* ---- start, service, stop -------------------------------------------------- */

int kafka_check_props(const struct config *cfg, char *err, size_t errlen)
{
	K.cfg = cfg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc = kafka_conf_user(conf, NULL, err, errlen);
	rd_kafka_conf_destroy(conf);
	return rc;
}

int kafka_start(const struct config *cfg, const char *demo_bootstrap, const char *const *topics, size_t ntopics,
		kafka_record_fn *on_record, char *err, size_t errlen)
{
	char why[512], buf[256];
	K.cfg = cfg;
	K.efd = -1;
	K.up = -1;
	K.on_record = on_record;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	/* Defaults first, so -X can override any of them. */
	if (cfg->group) {
		if (kafka_conf_set(conf, "group.id", cfg->group, err, errlen) < 0) goto fail;
		if (kafka_conf_set(conf, "enable.auto.commit", "true", err, errlen) < 0) goto fail;
	} else {
		/* Fan-out: a group of our own, so every partition is ours. */
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		snprintf(buf, sizeof(buf), "kbridge-fanout-%s-%d-%" PRId64, host, (int)getpid(), wall_ms());
		if (kafka_conf_set(conf, "group.id", buf, err, errlen) < 0) goto fail;
		if (kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) < 0) goto fail;
		/* Alone in its group, a member gains nothing from a long session;
		 * a short one lets a rejoin (new topic or partitions) finish in
		 * seconds where a coordinator holds it for the session timeout. */
		if (kafka_conf_set(conf, "session.timeout.ms", "6000", err, errlen) < 0) goto fail;
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
		if (kafka_conf_set(conf, defaults[i].k, defaults[i].v, err, errlen) < 0) goto fail;
	if (cfg->demo) {
		/* The mock holds every fetch for fetch.wait.max.ms: keep it short. */
		if (kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, errlen) < 0) goto fail;
	} else if (kafka_conf_set(conf, "bootstrap.servers", cfg->brokers, err, errlen) < 0) {
		goto fail;
	} else {
		K.bootstrap = cfg->brokers;
	}
	if (kafka_conf_user(conf, NULL, err, errlen) < 0) goto fail;
	/* The mock cluster of --demo wins over any -X bootstrap.servers. */
	if (cfg->demo) {
		if (kafka_conf_set(conf, "bootstrap.servers", demo_bootstrap, err, errlen) < 0) goto fail;
		K.bootstrap = demo_bootstrap;
	}

	rd_kafka_conf_set_rebalance_cb(conf, assign_rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rd_kafka_conf_set_log_cb(conf, kafka_log_cb);

	if (!(K.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
		/* Configuration the library rejects as a whole is the user's to fix. */
		snprintf(err, errlen, "kafka: %s", why);
		return -2;
	}
	rd_kafka_set_log_queue(K.rk, NULL);
	rd_kafka_poll_set_consumer(K.rk);
	K.q = rd_kafka_queue_get_consumer(K.rk);
	K.adminq = rd_kafka_queue_new(K.rk);
	assign_init(cfg, K.rk, K.adminq, assigned);
	rd_kafka_queue_t *queues[] = { K.q, K.adminq };
	if ((K.efd = kafka_wake_fd(queues, 2, -1, err, errlen)) < 0) return -1;

	int regex = 0;
	for (size_t i = 0; i < ntopics; i++) regex |= topics[i][0] == '^';
	if (ntopics && !cfg->group && !regex) {
		/* Fan-out with literal topics: every partition assigned directly,
		 * no group to join (no coordinator, no rebalance delay). */
		if (assign_direct(topics, ntopics) < 0) {
			snprintf(err, errlen, "kafka: out of memory");
			rd_kafka_destroy(K.rk);
			K.rk = NULL;
			return -1;
		}
	} else if (ntopics) {
		/* Group mode, or a regex route: librdkafka subscribes and finds
		 * new matching topics by itself. There is no non-blocking topic
		 * listing to match a regex against (rd_kafka_metadata blocks). */
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ntopics);
		for (size_t i = 0; i < ntopics; i++)
			rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = rd_kafka_subscribe(K.rk, l);
		rd_kafka_topic_partition_list_destroy(l);
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
	struct record r = kafka_record(m);
	assign_routed(r.topic, r.partition, r.offset);
	K.on_record(&r);
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
	/* Answers to offset lookups share the wake-up fd. */
	rd_kafka_event_t *ev;
	while ((ev = rd_kafka_queue_poll(K.adminq, 0))) {
		assign_event(ev);
		rd_kafka_event_destroy(ev);
	}
	assign_service();
}

int kafka_pending(void)
{
	return K.pending;
}

int kafka_timeout_ms(void)
{
	int64_t due = assign_due();
	if (!due) return -1;
	int64_t d = due - mono_ms();
	return d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
}

void kafka_stop(void)
{
	if (K.rk) {
		/* Commits in group mode; leaves the group either way. */
		rd_kafka_resp_err_t e = rd_kafka_consumer_close(K.rk);
		if (e) log_msg(LOG_WARN, "kafka close", "error", rd_kafka_err2str(e), NULL);
		rd_kafka_queue_destroy(K.adminq);
		rd_kafka_queue_destroy(K.q);
		rd_kafka_destroy(K.rk);
		K.rk = NULL;
	}
	/* After the consumer is gone: closing it revokes partitions, which
	 * runs the rebalance callback one last time. */
	assign_stop();
	if (K.efd >= 0) close(K.efd);
	free(K.hv);
	K.hv = NULL;
	K.hcap = 0;
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
	return assign_ready() && K.up == 1;
}

const char *kafka_bootstrap(void)
{
	return K.bootstrap;
}
