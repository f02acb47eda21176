/* publish.c - the producer (publish.h; docs/operations.md#publishing).
 * Every publish is an entry handed to librdkafka as the message's opaque;
 * its delivery report comes back on the producer's main queue, which
 * signals an eventfd the loop polls. Entries not yet answered also sit in
 * a list in deadline order (every publish has the same timeout, so the
 * list is in send order): publish_service answers those whose deadline
 * passed, and the late delivery report then only frees the entry.
 * A producer that fails for good (a fatal error: idempotence refused or
 * broken by the cluster) is retired: what it holds is purged and answered
 * from its reports, it is destroyed once it holds nothing, and a new one
 * starts after a backoff (1 s, doubling to 30 s, back to 1 s after a
 * delivery). Meanwhile publishes are refused with the fatal error's text. */
#include "publish.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "route.h"

struct publish_route {
	char *name;                  /* the channel (--publish) or the message type (--command) */
	const char *topic;           /* inside name's allocation */
	int command;
	struct metrics_topic *m;
};

struct entry {
	struct entry *prev, *next;   /* the unanswered list, in deadline order */
	struct entry *oprev, *onext; /* the owner's unanswered entries (P.owners) */
	void *owner;                 /* NULL once answered, or when the owner went */
	publish_done_fn *done;
	const struct publish_route *route;
	int64_t deadline;            /* turn-clock ms */
	int answered;
	size_t note_len;
	char note[];
};

#define RENEW_MIN_MS 1000
#define RENEW_MAX_MS 30000

static struct {
	const struct config *cfg;
	struct publish_route *routes;
	size_t nroutes;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	rd_kafka_t *old;             /* a producer that failed for good, until it holds nothing */
	rd_kafka_queue_t *oldq;
	const char *demo_bootstrap;
	int fatal;                   /* P.rk raised a fatal error: retire it */
	char fatal_why[240];
	int64_t renew_at;            /* when to start a new producer (turn clock ms); 0: none due */
	int64_t look_at;             /* when to serve the retired producer again, while it drains */
	int backoff_ms;
	int efd;
	int stopping;                /* publish_drain: refuse new ones */
	int64_t drain_deadline;
	struct entry *head, *tail;   /* unanswered */
	struct map owners;           /* owner (its pointer's bytes) -> its first unanswered entry */
	uint32_t inflight;           /* entries librdkafka holds */
	uint32_t unanswered;         /* of them, those not answered yet (the list) */
	char why[256];               /* the last refusal */
} P = { .efd = -1, .backoff_ms = RENEW_MIN_MS };

/* ---- routes ------------------------------------------------------------------ */

static int add_routes(const char *const *specs, size_t n, int command, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(specs[i], '=');
		if (!eq || eq == specs[i] || !eq[1]) {
			snprintf(err, errlen, "--%s %s: expected %s=TOPIC", command ? "command" : "publish", specs[i],
				 command ? "TYPE" : "CHANNEL");
			return -1;
		}
		size_t nlen = (size_t)(eq - specs[i]);
		if (!route_topic_valid(eq + 1)) {
			snprintf(err, errlen, "--%s %s: '%s' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
				 command ? "command" : "publish", specs[i], eq + 1);
			return -1;
		}
		if ((command ? publish_command : publish_channel)(specs[i], nlen)) {
			snprintf(err, errlen, "--%s %.*s: named twice", command ? "command" : "publish", (int)nlen, specs[i]);
			return -1;
		}
		struct publish_route *r = &P.routes[P.nroutes];
		if (!(r->name = strdup(specs[i]))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		r->name[nlen] = '\0';
		r->topic = r->name + nlen + 1;
		r->command = command;
		r->m = metrics_topic(r->topic, METRICS_PUBLISHED);
		P.nroutes++;
	}
	return 0;
}

int publish_configure(const struct config *cfg, char *err, size_t errlen)
{
	P.cfg = cfg;
	metrics_set(M_PUBLISH_INFLIGHT, 0);   /* this process's slot may hold a crashed one's */
	for (size_t i = 0; i < P.nroutes; i++) free(P.routes[i].name);
	free(P.routes);
	P.nroutes = 0;
	P.routes = calloc(cfg->npublishes + cfg->ncommands + 1, sizeof(*P.routes));
	if (!P.routes) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (add_routes(cfg->publishes, cfg->npublishes, 0, err, errlen) < 0) return -1;
	return add_routes(cfg->commands, cfg->ncommands, 1, err, errlen);
}

static const struct publish_route *find(const char *name, size_t len, int command)
{
	for (size_t i = 0; i < P.nroutes; i++)
		if (P.routes[i].command == command && strlen(P.routes[i].name) == len &&
		    memcmp(P.routes[i].name, name, len) == 0)
			return &P.routes[i];
	return NULL;
}

const struct publish_route *publish_channel(const char *name, size_t len)
{
	return find(name, len, 0);
}

const struct publish_route *publish_command(const char *name, size_t len)
{
	return find(name, len, 1);
}

const char *publish_route_name(const struct publish_route *r)
{
	return r->name;
}

const char *publish_route_topic(const struct publish_route *r)
{
	return r->topic;
}

const struct publish_route *publish_route_next(size_t *i, int commands)
{
	while (*i < P.nroutes) {
		const struct publish_route *r = &P.routes[(*i)++];
		if (r->command == commands) return r;
	}
	return NULL;
}

/* ---- answers ----------------------------------------------------------------- */

/* Entries by owner, so that an owner going away costs its own entries
 * and not every one in flight. */
static int link_owner(struct entry *e)
{
	struct entry *first = map_get(&P.owners, &e->owner, sizeof(e->owner));
	if (map_put(&P.owners, &e->owner, sizeof(e->owner), e) < 0) return -1;
	e->oprev = NULL;
	e->onext = first;
	if (first) first->oprev = e;
	return 0;
}

static void unlink_owner(struct entry *e)
{
	if (!e->owner) return;
	if (e->oprev) e->oprev->onext = e->onext;
	else if (e->onext) map_put(&P.owners, &e->owner, sizeof(e->owner), e->onext);   /* replaces: cannot fail */
	else map_del(&P.owners, &e->owner, sizeof(e->owner));
	if (e->onext) e->onext->oprev = e->oprev;
	e->oprev = e->onext = NULL;
}

static void unlink_entry(struct entry *e)
{
	if (e->prev) e->prev->next = e->next; else P.head = e->next;
	if (e->next) e->next->prev = e->prev; else P.tail = e->prev;
	e->prev = e->next = NULL;
}

/* The one answer an entry gets: counted, then told to its owner. */
static void answer(struct entry *e, const struct publish_outcome *o)
{
	e->answered = 1;
	unlink_entry(e);
	metrics_set(M_PUBLISH_INFLIGHT, --P.unanswered);
	unlink_owner(e);
	metrics_topic_published(e->route->m, o->ok ? METRICS_PUB_OK : METRICS_PUB_FAILED);
	void *owner = e->owner;
	e->owner = NULL;
	if (owner && e->done) e->done(owner, e->note, e->note_len, o);
}

/* rk raised a fatal error (from its error event, or seen first on a
 * report that it failed): said once, and P.rk is retired next. */
static void fatal_seen(rd_kafka_t *rk)
{
	if (rk != P.rk || P.fatal) return;   /* a retired one's, or said already */
	char fatal[400];
	rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
	P.fatal = 1;
	snprintf(P.fatal_why, sizeof(P.fatal_why), "the Kafka producer failed: %.160s; a new one starts in %d s",
		 fatal, P.backoff_ms / 1000);
	log_msg(LOG_ERROR, "kafka producer failed: publishes fail until a new producer starts", "error", fatal,
		"retry_in_s", log_num(P.backoff_ms / 1000), NULL);
}

/* The answer to a publish that --publish-timeout ran out on. librdkafka's
 * own report of the same timeout (message.timeout.ms is the same value)
 * can come first when its periodic scan beats the loop: it says the same. */
static void timeout_text(char *why, size_t size)
{
	snprintf(why, size, "not acknowledged by Kafka within %g s (--publish-timeout)", P.cfg->publish_timeout);
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)opaque;
	struct entry *e = m->_private;
	if (!e) return;
	P.inflight--;
	if (e->answered) {
		/* The deadline answered first: say so when Kafka wrote it after all. */
		if (!m->err)
			log_msg(LOG_WARN, "a publish answered PUBLISH_FAILED (timeout) was written after all",
				"topic", e->route->topic, "partition", log_num(m->partition), "offset", log_num(m->offset), NULL);
		free(e);
		return;
	}
	char why[300];
	struct publish_outcome o = { .ok = !m->err, .topic = e->route->topic, .partition = m->partition,
				     .offset = m->offset };
	if (m->err) {
		int maybe = rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
		/* A failed producer's purge says "Purged in queue": say why. */
		if (rd_kafka_fatal_error(rk, NULL, 0)) fatal_seen(rk);
		char timeout[120];
		const char *text = rd_kafka_err2str(m->err);
		if (rk != P.rk || P.fatal) {
			text = P.fatal_why;
		} else if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
			timeout_text(timeout, sizeof(timeout));
			text = timeout;
		}
		snprintf(why, sizeof(why), "%.240s%s", text, maybe ? " (the record may have been written)" : "");
		o.error = why;
	} else if (rk == P.rk) {
		P.backoff_ms = RENEW_MIN_MS;
	}
	answer(e, &o);
	free(e);
}

static void producer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)opaque;
	if (err != RD_KAFKA_RESP_ERR__FATAL) {
		log_msg(LOG_DEBUG, "kafka producer", "error", reason, NULL);
		return;
	}
	fatal_seen(rk);
}

static void producer_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* The consumer's -X properties are given to the producer too: that
	 * it ignores them is not news. */
	if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "consumer property")) {
		log_msg(LOG_DEBUG, "librdkafka", "facility", fac, "text", buf, NULL);
		return;
	}
	kafka_log_cb(rk, level, fac, buf);
}

/* ---- start and stop ---------------------------------------------------------- */

/* A producer in P.rk and its main queue in P.q. 0, or -1 with the reason. */
static int create(char *err, size_t errlen)
{
	const struct config *cfg = P.cfg;
	const char *demo_bootstrap = P.demo_bootstrap;
	char ms[32], why[512];
	snprintf(ms, sizeof(ms), "%.0f", cfg->publish_timeout * 1000);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct { const char *k, *v; } defaults[] = {
		{ "client.id", "kbridge" },
		{ "enable.idempotence", "true" },
		{ "acks", "all" },
		{ "message.timeout.ms", ms },
		/* A gateway answers people: a short wait to fill batches. */
		{ "linger.ms", "1" },
		{ "reconnect.backoff.max.ms", "2000" },
		{ "log.queue", "true" },
	};
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (kafka_conf_set(conf, defaults[i].k, defaults[i].v, err, errlen) < 0) goto fail;
	if (!demo_bootstrap && kafka_conf_set(conf, "bootstrap.servers", cfg->brokers, err, errlen) < 0) goto fail;
	if (kafka_conf_user(conf, NULL, err, errlen) < 0) goto fail;
	if (demo_bootstrap && kafka_conf_set(conf, "bootstrap.servers", demo_bootstrap, err, errlen) < 0) goto fail;
	/* Idempotence and the timeout are the answers' promises: -X cannot
	 * take them back. */
	if (kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) < 0 ||
	    kafka_conf_set(conf, "message.timeout.ms", ms, err, errlen) < 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, delivered);
	rd_kafka_conf_set_error_cb(conf, producer_error);
	rd_kafka_conf_set_log_cb(conf, producer_log);
	if (!(P.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
		snprintf(err, errlen, "kafka producer: %s", why);
		goto fail;                    /* conf is still ours when rd_kafka_new fails */
	}
	rd_kafka_set_log_queue(P.rk, NULL);
	P.q = rd_kafka_queue_get_main(P.rk);
	return 0;
fail:
	rd_kafka_conf_destroy(conf);
	return -1;
}

int publish_start(const char *demo_bootstrap, char *err, size_t errlen)
{
	if (!P.nroutes) return -2;
	P.demo_bootstrap = demo_bootstrap;
	if (create(err, errlen) < 0) return -1;
	return P.efd = kafka_wake_fd(&P.q, 1, -1, err, errlen);
}

/* A new producer is due after the backoff, which doubles for the next. */
static void renew_later(void)
{
	P.renew_at = clock_now() + P.backoff_ms;
	P.backoff_ms = P.backoff_ms * 2 > RENEW_MAX_MS ? RENEW_MAX_MS : P.backoff_ms * 2;
}

/* P.rk failed for good: it becomes P.old, whose reports answer what it
 * held; a new producer is due after the backoff. */
static void retire(void)
{
	P.old = P.rk;
	P.oldq = P.q;
	P.rk = NULL;
	P.q = NULL;
	P.fatal = 0;
	rd_kafka_purge(P.old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
	renew_later();
}

/* Serves the retired producer's reports; destroys it once it holds
 * nothing (nothing left for its threads to wait for). */
static void retire_service(void)
{
	rd_kafka_poll(P.old, 0);
	if (rd_kafka_outq_len(P.old) > 0) {
		P.look_at = clock_now() + 100;   /* its purge completes in its own threads */
		return;
	}
	/* Like a finished replay's consumer (replay.c), destroyed on the
	 * loop: with nothing left in it, its threads only have to end. */
	int64_t t0 = mono_ms();
	rd_kafka_queue_destroy(P.oldq);
	rd_kafka_destroy(P.old);
	P.old = NULL;
	P.oldq = NULL;
	P.look_at = 0;
	int64_t took = mono_ms() - t0;
	log_msg(took > 100 ? LOG_WARN : LOG_DEBUG, "kafka producer retired", "destroy_ms", log_num(took), NULL);
}

static void renew(void)
{
	char err[512];
	P.renew_at = 0;
	if (create(err, sizeof(err)) < 0) {
		snprintf(P.fatal_why, sizeof(P.fatal_why), "a new Kafka producer failed to start: %.140s; next try in %d s",
			 err, P.backoff_ms / 1000);
		log_msg(LOG_ERROR, "kafka producer: a new one failed to start", "error", err,
			"retry_in_s", log_num(P.backoff_ms / 1000), NULL);
		renew_later();
		return;
	}
	kafka_wake_fd(&P.q, 1, P.efd, err, sizeof(err));   /* P.efd exists: joining it cannot fail */
	log_msg(LOG_INFO, "kafka producer started again", NULL);
}

/* Exiting: nothing waits for brokers that may be gone (each purged
 * record is counted failed through its report). */
static void destroy(rd_kafka_t *rk, rd_kafka_queue_t *q)
{
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_flush(rk, 500);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void publish_stop(void)
{
	if (P.efd < 0) return;        /* never started */
	/* What is left has no one to answer; owners may be gone. */
	for (struct entry *e = P.head; e; e = e->next) e->owner = NULL;
	map_free(&P.owners);
	if (P.old) destroy(P.old, P.oldq);
	if (P.rk) destroy(P.rk, P.q);
	P.rk = P.old = NULL;
	close(P.efd);
	P.efd = -1;
}

/* ---- sending ------------------------------------------------------------------- */

void publish_rate_limited(const struct publish_route *r)
{
	metrics_topic_published(r->m, METRICS_PUB_RATE_LIMITED);
}

void publish_refused(const struct publish_route *r)
{
	metrics_topic_published(r->m, METRICS_PUB_FAILED);
}

const char *publish_refusal_text(void)
{
	return P.why;
}

int publish_send(const struct publish_route *r, const struct publish_record *rec, void *owner,
		 publish_done_fn *done, const void *note, size_t note_len)
{
	/* Refusals answered PUBLISH_FAILED count as failed, as Kafka's do:
	 * an alert on failures sees a shutdown or a failed producer. */
	if (P.stopping) {
		snprintf(P.why, sizeof(P.why), "server shutting down: nothing was written");
		publish_refused(r);
		return PUBLISH_STOPPING;
	}
	if (!P.rk) {
		snprintf(P.why, sizeof(P.why), "%.200s: nothing was written", P.fatal_why);
		publish_refused(r);
		return PUBLISH_ERROR;
	}
	struct entry *e = malloc(sizeof(*e) + note_len);
	rd_kafka_headers_t *h = rec->nheaders ? rd_kafka_headers_new(rec->nheaders) : NULL;
	if (!e || (rec->nheaders && !h)) {
		free(e);
		if (h) rd_kafka_headers_destroy(h);
		snprintf(P.why, sizeof(P.why), "out of memory");
		publish_refused(r);
		return PUBLISH_ERROR;
	}
	for (size_t i = 0; i < rec->nheaders; i++)
		rd_kafka_header_add(h, rec->headers[i].name, (ssize_t)rec->headers[i].name_len, rec->headers[i].value,
				    (ssize_t)rec->headers[i].value_len);
	*e = (struct entry){ .owner = owner, .done = done, .route = r, .note_len = note_len,
			     .deadline = clock_now() + (int64_t)(P.cfg->publish_timeout * 1000) };
	if (note_len) memcpy(e->note, note, note_len);
	rd_kafka_resp_err_t err = rd_kafka_producev(P.rk, RD_KAFKA_V_TOPIC(r->topic),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_VALUE((void *)rec->value, rec->value_len),
		RD_KAFKA_V_KEY((void *)rec->key, rec->key ? rec->key_len : 0),
		RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(e), RD_KAFKA_V_END);
	if (err) {
		if (h) rd_kafka_headers_destroy(h);   /* ours again when producev fails */
		free(e);
		snprintf(P.why, sizeof(P.why), "%s", rd_kafka_err2str(err));
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			metrics_topic_published(r->m, METRICS_PUB_RATE_LIMITED);
			return PUBLISH_FULL;
		}
		if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) return PUBLISH_TOO_LARGE;   /* the client's: BAD_REQUEST */
		publish_refused(r);
		return PUBLISH_ERROR;
	}
	P.inflight++;
	metrics_set(M_PUBLISH_INFLIGHT, ++P.unanswered);
	e->prev = P.tail;
	if (P.tail) P.tail->next = e; else P.head = e;
	P.tail = e;
	if (e->owner && link_owner(e) < 0) e->owner = NULL;   /* out of memory: counted, but nobody is told */
	return PUBLISH_QUEUED;
}

/* ---- the loop's side --------------------------------------------------------- */

void publish_service(void)
{
	if (P.efd < 0) return;
	uint64_t v;
	while (read(P.efd, &v, sizeof(v)) > 0) {}   /* clear first, then serve */
	if (P.rk) rd_kafka_poll(P.rk, 0);
	if (P.old) retire_service();
	if (P.fatal && !P.old) {
		retire();
		retire_service();   /* and from now on every 100 ms until it holds nothing */
	}
	int64_t now = clock_now();
	/* One retired producer at a time: a new one starts once the last is
	 * gone (within ms of its purge), so a second failure can retire it. */
	if (!P.rk && !P.old && P.renew_at && now >= P.renew_at && !P.stopping) renew();
	while (P.head && P.head->deadline <= now) {
		struct entry *e = P.head;
		char why[160];
		if (P.stopping && e->deadline >= P.drain_deadline)
			snprintf(why, sizeof(why), "server shutting down before Kafka acknowledged the record");
		else
			timeout_text(why, sizeof(why));
		struct publish_outcome o = { .ok = 0, .topic = e->route->topic, .partition = -1, .offset = -1,
					     .error = why };
		answer(e, &o);   /* the entry stays librdkafka's until its report */
	}
}

int publish_timeout_ms(void)
{
	int64_t now = clock_now(), due = P.head ? P.head->deadline : INT64_MAX;
	if (P.renew_at && !P.stopping && !P.old && P.renew_at < due) due = P.renew_at;
	if (P.look_at && P.look_at < due) due = P.look_at;   /* a retired producer drains */
	if (due == INT64_MAX) return -1;
	int64_t d = due - now;
	return d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
}

void publish_owner_gone(void *owner)
{
	struct entry *e = map_del(&P.owners, &owner, sizeof(owner));
	while (e) {
		struct entry *next = e->onext;
		e->owner = NULL;
		e->oprev = e->onext = NULL;
		e = next;
	}
}

void publish_drain(int64_t deadline_ms)
{
	P.stopping = 1;
	P.drain_deadline = deadline_ms;
	/* min() keeps the list in deadline order. */
	for (struct entry *e = P.head; e; e = e->next)
		if (e->deadline > deadline_ms) e->deadline = deadline_ms;
}

uint32_t publish_inflight(void)
{
	return P.inflight;
}
