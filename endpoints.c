/* endpoints.c - the plain HTTP endpoints (endpoints.h; docs/operations.md
 * for what each reports): /health, /ready, /stats and /ws/stats, /metrics
 * (Prometheus text format 0.0.4), /docs, /asyncapi.json and /openapi.json
 * (asyncapi.c, openapi.c; from the live routes and configuration) and the
 * console at /.
 * One table says which paths exist, which of them pages of other origins
 * may read and which are the admin's (--admin-listen, --admin-token).
 * Each fills a status and a body; none does I/O but reading the admin
 * token file at start and on SIGHUP.
 * Counters come from metrics.c; live state of the layers above (clients,
 * channels, Kafka) through the sources given to endpoints_init. */
#include "endpoints.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "asyncapi.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "tp.h"
#include "version.h"

static const struct endpoints_sources *src;
static const struct config *conf;
static char *admin_token;      /* --admin-token's content, NULL: none required */
static size_t admin_token_len;

/* ---- the admin token ------------------------------------------------------------ */

/* Reads the token file: its bytes, one trailing newline removed. It must
 * be one line of visible ASCII (it is sent in a header line: anything
 * else could never match). 0 and a malloc'd *out, or -1 with err. */
static int read_token(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "--admin-token: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(ENDPOINTS_TOKEN_MAX + 2);
	size_t n = buf ? fread(buf, 1, ENDPOINTS_TOKEN_MAX + 2, f) : 0;
	int bad = !buf || ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "--admin-token: cannot read %s", path);
		free(buf);
		return -1;
	}
	if (n && buf[n - 1] == '\n') n--;
	const char *why = n == 0 ? "is empty" : n > ENDPOINTS_TOKEN_MAX ? "is longer than 4096 bytes" : NULL;
	for (size_t i = 0; !why && i < n; i++)
		if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
			why = "must be one line of visible ASCII characters (no spaces)";
	if (why) {
		snprintf(err, errlen, "--admin-token: %s %s", path, why);
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

int endpoints_init(const struct config *cfg, const struct endpoints_sources *sources, char *err, size_t errlen)
{
	conf = cfg;
	src = sources;
	if (cfg->admin_token && read_token(cfg->admin_token, &admin_token, &admin_token_len, err, errlen) < 0)
		return -1;
	return 0;
}

int endpoints_reload(void)
{
	if (!conf || !conf->admin_token) return 0;
	char err[512], *tok;
	size_t len;
	if (read_token(conf->admin_token, &tok, &len, err, sizeof(err)) < 0) {
		log_msg(LOG_ERROR, "admin token not reloaded: the old one stays", "error", err, NULL);
		return 1;
	}
	free(admin_token);
	admin_token = tok;
	admin_token_len = len;
	log_msg(LOG_INFO, "admin token reloaded", "file", conf->admin_token, NULL);
	return 1;
}

/* Authorization: Bearer <token> (RFC 6750 §2.1; the scheme is
 * case-insensitive, RFC 9110 §11.1), compared in constant time so the
 * answer's timing does not tell how much of a guess was right. -1: no
 * bearer credentials, 0: wrong ones, 1: the token. */
static int admin_authorized(const struct http_request *req)
{
	const struct http_header *h = http_header_get(req, "Authorization");
	if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0) return -1;
	const char *t = h->value + 7;
	size_t n = h->value_len - 7;
	while (n && *t == ' ') { t++; n--; }
	if (http_header_count(req, "Authorization") != 1) return 0;
	/* Lengths may differ: compare the token with itself then, so the
	 * time taken does not depend on the guess either. */
	int same = n == admin_token_len;
	return CRYPTO_memcmp(same ? t : admin_token, admin_token, admin_token_len) == 0 && same;
}

/* ---- helpers ----------------------------------------------------------------- */

/* Appends a string literal; its length comes from the compiler. */
#define LIT(b, s) json_append((b), (s), sizeof(s) - 1)

static void appendf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct jbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0) json_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Prometheus label values escape backslash, quote and newline. */
static void label_value(struct jbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"') LIT(b, "\\");
		if (*v == '\n') { LIT(b, "\\n"); continue; }
		json_append(b, v, 1);
	}
}

/* HTML text escaping for the docs page. */
static void html_text(struct jbuf *b, const char *v)
{
	for (; *v; v++) {
		switch (*v) {
		case '<': LIT(b, "&lt;"); break;
		case '>': LIT(b, "&gt;"); break;
		case '&': LIT(b, "&amp;"); break;
		case '"': LIT(b, "&quot;"); break;
		default: json_append(b, v, 1);
		}
	}
}

/* A family of counters: each one's key in /stats and its label value in
 * /metrics. */
struct counter { enum metric m; const char *stats_key, *label; };
#define NCOUNTERS(t) (sizeof(t) / sizeof((t)[0]))

/* Upgrade outcomes: /stats "connections" and kbridge_connections_total. */
static const struct counter conn_results[] = {
	{ M_ACCEPTED,        "accepted",        "accepted" },
	{ M_REJECTED_FULL,   "rejected_full",   "rejected_full" },
	{ M_REJECTED_ORIGIN, "rejected_origin", "rejected_origin" },
	{ M_REJECTED_BAD,    "rejected_bad",    "rejected_bad_request" },
};

/* Refusals by an abuse limit: /stats "rejected" and kbridge_rejected_total. */
static const struct counter rejected[] = {
	{ M_REJECTED_PER_IP,       "per_ip",       "per_ip" },
	{ M_REJECTED_RATE,         "upgrade_rate", "upgrade_rate" },
	{ M_REJECTED_AUTH_TIMEOUT, "auth_timeout", "auth_timeout" },
};

/* "key":{stats_key: value,...} */
static void stats_counters(struct jbuf *b, const char *key, const struct counter *t, size_t n)
{
	json_key(b, key);
	json_obj_begin(b);
	for (size_t k = 0; k < n; k++) {
		json_key(b, t[k].stats_key);
		json_uint(b, metrics_get(t[k].m));
	}
	json_obj_end(b);
}

/* ---- JSON endpoints ------------------------------------------------------------ */

static void health(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct jbuf *b = &o->body;
	o->status = 200;
	json_obj_begin(b);
	json_key(b, "status");   json_cstr(b, "ok");
	json_key(b, "kafka");    json_cstr(b, src->kafka_up() ? "up" : "down");
	json_key(b, "clients");  json_uint(b, src->clients());
	json_key(b, "uptime_s"); json_int(b, metrics_uptime_s());
	json_obj_end(b);
}

static void ready(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct jbuf *b = &o->body;
	int ok = src->kafka_ready();
	o->status = ok ? 200 : 503;
	json_obj_begin(b);
	json_key(b, "ready"); json_bool(b, ok);
	json_key(b, "kafka"); json_cstr(b, src->kafka_up() ? "up" : "down");
	json_obj_end(b);
}

static void stats(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct jbuf *b = &o->body;
	const char *name;
	uint32_t subs;
	uint64_t seq;
	int64_t lag;
	size_t i;

	o->status = 200;
	json_obj_begin(b);
	json_key(b, "clients");  json_uint(b, src->clients());
	json_key(b, "uptime_s"); json_int(b, metrics_uptime_s());
	json_key(b, "kafka");    json_cstr(b, src->kafka_up() ? "up" : "down");
	json_key(b, "ready");    json_bool(b, src->kafka_ready());
	json_key(b, "channels");
	json_obj_begin(b);
	for (i = 0; src->channel_next(&i, &name, &subs, &seq);) {
		json_key(b, name);
		json_obj_begin(b);
		json_key(b, "subscribers"); json_uint(b, subs);
		json_key(b, "seq");         json_uint(b, seq);
		json_obj_end(b);
	}
	json_obj_end(b);
	json_key(b, "topics");
	json_obj_begin(b);
	const struct metrics_topic_counts *tc;
	uint64_t pub[METRICS_PUB_N] = { 0 };
	for (i = 0; metrics_topic_next(&i, &name, &tc);) {
		for (int r = 0; r < METRICS_PUB_N; r++) pub[r] += tc->published[r];
		if (!(tc->roles & METRICS_CONSUMED)) continue;
		json_key(b, name);
		json_obj_begin(b);
		json_key(b, "records"); json_uint(b, tc->records);
		json_obj_end(b);
	}
	json_obj_end(b);
	/* Publishes answered, and those Kafka has not answered yet. */
	json_key(b, "published");
	json_obj_begin(b);
	json_key(b, "ok");           json_uint(b, pub[METRICS_PUB_OK]);
	json_key(b, "failed");       json_uint(b, pub[METRICS_PUB_FAILED]);
	json_key(b, "rate_limited"); json_uint(b, pub[METRICS_PUB_RATE_LIMITED]);
	json_key(b, "inflight");     json_uint(b, metrics_get(M_PUBLISH_INFLIGHT));
	json_obj_end(b);
	json_key(b, "records_in");       json_uint(b, metrics_get(M_RECORDS_IN));
	json_key(b, "messages_out");     json_uint(b, metrics_get(M_MESSAGES_OUT));
	uint64_t out = metrics_get(M_BYTES_OUT), plain = metrics_get(M_BYTES_UNCOMPRESSED);
	json_key(b, "bytes_out");        json_uint(b, out);
	json_key(b, "bytes_uncompressed"); json_uint(b, plain);
	/* What permessage-deflate saves: 1 when nothing was compressed. */
	json_key(b, "compression_ratio");
	json_double(b, out && plain > out ? (double)(uint64_t)((double)plain / (double)out * 100 + 0.5) / 100 : 1.0);
	json_key(b, "deflate_clients");  json_uint(b, src->deflate_clients());
	json_key(b, "sse_clients");      json_uint(b, src->sse_clients());
	json_key(b, "dropped");          json_uint(b, metrics_get(M_DROPPED));
	json_key(b, "slow_disconnects"); json_uint(b, metrics_get(M_SLOW_DISCONNECTS));
	uint32_t sc, sg;
	uint64_t su;
	src->state_counts(&sc, &sg, &su);
	json_key(b, "state");
	json_obj_begin(b);
	json_key(b, "clients"); json_uint(b, sc);
	json_key(b, "groups");  json_uint(b, sg);
	json_key(b, "updates"); json_uint(b, su);
	json_obj_end(b);
	stats_counters(b, "connections", conn_results, NCOUNTERS(conn_results));
	stats_counters(b, "rejected", rejected, NCOUNTERS(rejected));
	json_key(b, "auth_failures");
	json_obj_begin(b);
	for (int e = JWT_OK + 1; e < JWT_NERRORS; e++) {
		json_key(b, jwt_error_name(e));
		json_uint(b, metrics_auth_failures((enum jwt_error)e));
	}
	json_obj_end(b);
	json_key(b, "lag");
	json_obj_begin(b);
	for (i = 0; src->lag_next(&i, &name, &lag);) {
		json_key(b, name);
		if (lag >= 0) json_int(b, lag); else json_null(b);
	}
	json_obj_end(b);
	/* Per-client summaries, capped: a stats call must stay cheap. Who is
	 * connected from where is the operator's business: once clients
	 * authenticate, only for the admin listener or the admin token. */
	int listed = !(conf->jwt_key || conf->jwt_secret) || conf->admin_listen_len || admin_token;
	json_key(b, "client_list");
	json_arr_begin(b);
	uint32_t shown = 0;
	struct endpoints_client c;
	for (i = 0; listed && shown < ENDPOINTS_CLIENTS_MAX && src->client_next(&i, &c); shown++) {
		json_obj_begin(b);
		json_key(b, "id");              json_uint(b, c.id);
		json_key(b, "peer");            json_cstr(b, c.peer);
		json_key(b, "identity");
		if (c.identity) json_cstr(b, c.identity); else json_null(b);
		json_key(b, "subscriptions");   json_uint(b, c.subscriptions);
		json_key(b, "queued_messages"); json_uint(b, c.queued_messages);
		json_key(b, "queued_bytes");    json_uint(b, c.queued_bytes);
		json_key(b, "deflate");         json_bool(b, c.deflate);
		json_key(b, "transport");       json_cstr(b, c.sse ? "sse" : "websocket");
		if (c.worker >= 0) { json_key(b, "worker"); json_uint(b, (uint64_t)c.worker); }
		json_obj_end(b);
	}
	json_arr_end(b);
	json_key(b, "client_list_truncated"); json_bool(b, listed && src->clients() > shown);
	if (!listed) { json_key(b, "client_list_hidden"); json_bool(b, 1); }
	if (src->worker_next) {
		struct endpoints_worker w;
		json_key(b, "workers");
		json_arr_begin(b);
		for (i = 0; src->worker_next(&i, &w);) {
			json_obj_begin(b);
			json_key(b, "index");    json_uint(b, w.index);
			json_key(b, "pid");
			if (w.pid) json_int(b, w.pid); else json_null(b);
			json_key(b, "ready");    json_bool(b, w.ready);
			json_key(b, "kafka");    json_cstr(b, w.kafka_up ? "up" : "down");
			json_key(b, "clients");  json_uint(b, w.clients);
			json_key(b, "restarts"); json_uint(b, w.restarts);
			json_obj_end(b);
		}
		json_arr_end(b);
	}
	json_key(b, "version");    json_cstr(b, KBRIDGE_VERSION);
	json_key(b, "target");     json_cstr(b, KBRIDGE_TARGET);
	json_key(b, "librdkafka"); json_cstr(b, src->kafka_version());
	json_obj_end(b);
}

/* ---- /metrics ------------------------------------------------------------------- */

static void metric_head(struct jbuf *b, const char *name, const char *type, const char *help)
{
	appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct jbuf *b = &o->body;
	const char *name;
	uint32_t subs;
	uint64_t seq;
	int64_t lag;
	size_t i;

	o->status = 200;
	o->ctype = "text/plain; version=0.0.4; charset=utf-8";
	metric_head(b, "kbridge_clients", "gauge", "Connected clients (WebSocket and SSE).");
	appendf(b, "kbridge_clients %u\n", src->clients());
	metric_head(b, "kbridge_sse_clients", "gauge", "Connected SSE streams (counted in kbridge_clients too).");
	appendf(b, "kbridge_sse_clients %u\n", src->sse_clients());

	metric_head(b, "kbridge_connections_total", "counter",
		    "WebSocket upgrade attempts by result.");
	for (size_t k = 0; k < NCOUNTERS(conn_results); k++)
		appendf(b, "kbridge_connections_total{result=\"%s\"} %llu\n", conn_results[k].label,
			(unsigned long long)metrics_get(conn_results[k].m));

	metric_head(b, "kbridge_rejected_total", "counter",
		    "Upgrades refused by a per-address limit (429), and clients closed for not authenticating in time, by reason.");
	for (size_t k = 0; k < NCOUNTERS(rejected); k++)
		appendf(b, "kbridge_rejected_total{reason=\"%s\"} %llu\n", rejected[k].label,
			(unsigned long long)metrics_get(rejected[k].m));
	metric_head(b, "kbridge_auth_failures_total", "counter", "Tokens refused, by reason.");
	for (int e = JWT_OK + 1; e < JWT_NERRORS; e++)
		appendf(b, "kbridge_auth_failures_total{reason=\"%s\"} %llu\n", jwt_error_name(e),
			(unsigned long long)metrics_auth_failures((enum jwt_error)e));

	metric_head(b, "kbridge_subscriptions", "gauge", "Subscriptions per channel.");
	for (i = 0; src->channel_next(&i, &name, &subs, &seq);) {
		LIT(b, "kbridge_subscriptions{channel=\"");
		label_value(b, name);
		appendf(b, "\"} %u\n", subs);
	}
	metric_head(b, "kbridge_records_consumed_total", "counter", "Kafka records consumed per topic.");
	const struct metrics_topic_counts *tc;
	for (i = 0; metrics_topic_next(&i, &name, &tc);) {
		if (!(tc->roles & METRICS_CONSUMED)) continue;
		LIT(b, "kbridge_records_consumed_total{topic=\"");
		label_value(b, name);
		appendf(b, "\"} %llu\n", (unsigned long long)tc->records);
	}
	metric_head(b, "kbridge_published_total", "counter", "Client publishes per topic, by outcome.");
	static const char *const results[METRICS_PUB_N] = { "ok", "failed", "rate_limited" };
	for (i = 0; metrics_topic_next(&i, &name, &tc);) {
		if (!(tc->roles & METRICS_PUBLISHED)) continue;
		for (int r = 0; r < METRICS_PUB_N; r++) {
			LIT(b, "kbridge_published_total{topic=\"");
			label_value(b, name);
			appendf(b, "\",result=\"%s\"} %llu\n", results[r], (unsigned long long)tc->published[r]);
		}
	}
	metric_head(b, "kbridge_publish_inflight", "gauge", "Client publishes Kafka has not acknowledged yet.");
	appendf(b, "kbridge_publish_inflight %llu\n", (unsigned long long)metrics_get(M_PUBLISH_INFLIGHT));
	metric_head(b, "kbridge_messages_sent_total", "counter", "Data messages written in full to clients.");
	appendf(b, "kbridge_messages_sent_total %llu\n", (unsigned long long)metrics_get(M_MESSAGES_OUT));
	metric_head(b, "kbridge_bytes_sent_total", "counter", "Bytes written to client sockets.");
	appendf(b, "kbridge_bytes_sent_total %llu\n", (unsigned long long)metrics_get(M_BYTES_OUT));
	metric_head(b, "kbridge_bytes_uncompressed_total", "counter",
		    "What kbridge_bytes_sent_total would be without permessage-deflate.");
	appendf(b, "kbridge_bytes_uncompressed_total %llu\n", (unsigned long long)metrics_get(M_BYTES_UNCOMPRESSED));
	metric_head(b, "kbridge_messages_dropped_total", "counter", "Messages dropped by the slow-client policy.");
	appendf(b, "kbridge_messages_dropped_total %llu\n", (unsigned long long)metrics_get(M_DROPPED));
	metric_head(b, "kbridge_slow_disconnects_total", "counter", "Clients disconnected for reading too slowly.");
	appendf(b, "kbridge_slow_disconnects_total %llu\n", (unsigned long long)metrics_get(M_SLOW_DISCONNECTS));
	/* Records per flush is their ratio: how well flushes gather frames. */
	metric_head(b, "kbridge_tls_records_total", "counter", "TLS records written to clients (without kernel TLS).");
	appendf(b, "kbridge_tls_records_total %llu\n", (unsigned long long)metrics_get(M_TLS_RECORDS));
	metric_head(b, "kbridge_tls_flushes_total", "counter", "Flushes of TLS clients that wrote records.");
	appendf(b, "kbridge_tls_flushes_total %llu\n", (unsigned long long)metrics_get(M_TLS_FLUSHES));
	metric_head(b, "kbridge_tls_handshakes_total", "counter",
		    "TLS connections by handshake: full (a new session), resumed, failed (closed before it completed).");
	appendf(b, "kbridge_tls_handshakes_total{result=\"full\"} %llu\n", (unsigned long long)metrics_get(M_TLS_FULL));
	appendf(b, "kbridge_tls_handshakes_total{result=\"resumed\"} %llu\n", (unsigned long long)metrics_get(M_TLS_RESUMED));
	appendf(b, "kbridge_tls_handshakes_total{result=\"failed\"} %llu\n", (unsigned long long)metrics_get(M_TLS_FAILED));

	metric_head(b, "kbridge_consumer_lag", "gauge", "Records behind the partition's high watermark.");
	for (i = 0; src->lag_next(&i, &name, &lag);) {
		char topic[TP_TOPIC_MAX];
		int32_t partition;
		if (lag < 0 || tp_parse(name, strlen(name), topic, sizeof(topic), &partition) < 0) continue;
		LIT(b, "kbridge_consumer_lag{topic=\"");
		label_value(b, topic);
		appendf(b, "\",partition=\"%d\"} %lld\n", (int)partition, (long long)lag);
	}
	metric_head(b, "kbridge_kafka_up", "gauge", "1 while a Kafka broker is reachable.");
	appendf(b, "kbridge_kafka_up %d\n", src->kafka_up());

	metric_head(b, "kbridge_broadcast_latency_seconds", "histogram",
		    "From a record's Kafka timestamp to its frame being queued to clients.");
	struct metrics_histogram lat;
	metrics_latency(&lat);
	uint64_t cum = 0;
	for (size_t k = 0; k < lat.nbounds; k++) {
		cum += lat.buckets[k];
		appendf(b, "kbridge_broadcast_latency_seconds_bucket{le=\"%g\"} %llu\n", lat.bounds[k], (unsigned long long)cum);
	}
	appendf(b, "kbridge_broadcast_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)lat.count);
	appendf(b, "kbridge_broadcast_latency_seconds_sum %.6f\n", lat.sum);
	appendf(b, "kbridge_broadcast_latency_seconds_count %llu\n", (unsigned long long)lat.count);

	/* Without --workers, the one process is the one worker. */
	uint32_t running = 0, restarts = 0;
	struct endpoints_worker w;
	for (i = 0; src->worker_next && src->worker_next(&i, &w);) {
		running += w.pid != 0;
		restarts += w.restarts;
	}
	metric_head(b, "kbridge_workers", "gauge", "Worker processes running (--workers).");
	appendf(b, "kbridge_workers %u\n", src->worker_next ? running : 1);
	metric_head(b, "kbridge_worker_restarts_total", "counter", "Worker processes started again after one ended.");
	appendf(b, "kbridge_worker_restarts_total %u\n", restarts);

	metric_head(b, "kbridge_uptime_seconds", "gauge", "Seconds since start.");
	appendf(b, "kbridge_uptime_seconds %lld\n", (long long)metrics_uptime_s());
	metric_head(b, "kbridge_build_info", "gauge", "Version of kbridge, the target it was built for and the librdkafka linked in.");
	appendf(b, "kbridge_build_info{version=\"%s\",target=\"%s\",librdkafka=\"%s\"} 1\n", KBRIDGE_VERSION, KBRIDGE_TARGET, src->kafka_version());
}

/* ---- /docs and /asyncapi.json ------------------------------------------------------- */

static void routes_html(struct jbuf *b)
{
	const struct route *ri;
	size_t n = src->routes(&ri);
	LIT(b, "<table class=\"routes\"><thead><tr><th>topic</th><th>channel</th><th>type</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < n; i++) {
		LIT(b, "<tr><td><code>");
		html_text(b, ri[i].topic);
		LIT(b, "</code></td><td><code>");
		html_text(b, ri[i].channel ? ri[i].channel : ri[i].is_regex ? "(each matched topic)" : ri[i].topic);
		LIT(b, "</code></td><td><code>");
		html_text(b, ri[i].type ? ri[i].type : "(the topic name)");
		LIT(b, "</code></td></tr>\n");
	}
	if (n == 0) LIT(b, "<tr><td colspan=\"3\">no routes configured</td></tr>\n");
	LIT(b, "</tbody></table>\n");
}

static void docs(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct asset a = asset_docs();
	const char *page = (const char *)a.data;
	static const char mark[] = "<!--ROUTES-->";
	const char *at = memmem(page, a.len, mark, sizeof(mark) - 1);
	o->status = 200;
	o->ctype = "text/html; charset=utf-8";
	if (!at) {
		json_append(&o->body, page, a.len);
		return;
	}
	json_append(&o->body, page, (size_t)(at - page));
	routes_html(&o->body);
	size_t after = (size_t)(at - page) + sizeof(mark) - 1;
	json_append(&o->body, at + sizeof(mark) - 1, a.len - after);
}

static void asyncapi(struct http_out *o, const struct http_request *req)
{
	const struct http_header *host = http_header_get(req, "Host");
	struct asyncapi_input in = { .cfg = conf, .host = host ? host->value : NULL, .host_len = host ? host->value_len : 0 };
	in.nroutes = src->routes(&in.routes);
	o->status = 200;
	asyncapi_write(&o->body, &in);
}

static void console(struct http_out *o, const struct http_request *req)
{
	(void)req;
	struct asset a = asset_console();
	o->status = 200;
	o->ctype = "text/html; charset=utf-8";
	json_append(&o->body, a.data, a.len);
}

static void openapi(struct http_out *o, const struct http_request *req)
{
	const struct http_header *host = http_header_get(req, "Host");
	struct openapi_input in = { .cfg = conf, .host = host ? host->value : NULL, .host_len = host ? host->value_len : 0 };
	in.nroutes = src->routes(&in.routes);
	o->status = 200;
	openapi_write(&o->body, &in);
}

/* ---- the table ---------------------------------------------------------------------- */

#define METHODS "GET, HEAD, OPTIONS"
enum { ANY, MAIN, ADMIN };

static const struct endpoint {
	const char *path;
	void (*answer)(struct http_out *o, const struct http_request *req);
	int cors;           /* JSON or text: pages of other origins may read it */
	int newline;        /* a JSON body, ended with a newline */
	int where;          /* ANY port, the MAIN port only, or the ADMIN endpoints */
} endpoints[] = {
	{ "/health",        health,   1, 1, ANY },
	{ "/ready",         ready,    1, 1, ANY },
	{ "/stats",         stats,    1, 1, ADMIN },
	{ "/ws/stats",      stats,    1, 1, ADMIN },
	{ "/metrics",       metrics,  1, 0, ADMIN },
	{ "/asyncapi.json", asyncapi, 1, 1, MAIN },
	{ "/openapi.json",  openapi,  1, 1, MAIN },
	{ "/docs",          docs,     0, 0, MAIN },
	{ "/",              console,  0, 0, MAIN },
	{ "/index.html",    console,  0, 0, MAIN },
};

/* The endpoint of req's path on this port. With --admin-listen the admin
 * endpoints move there, and that port serves nothing else but the
 * probes an orchestrator asks (/health, /ready). */
static const struct endpoint *find(const struct http_request *req, int admin)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		const struct endpoint *e = &endpoints[i];
		if (!http_path_is(req, e->path)) continue;
		if (conf->admin_listen_len && e->where != ANY && (e->where == ADMIN) != (admin != 0)) return NULL;
		return e;
	}
	return NULL;
}

int endpoints_find(const struct http_request *req, int admin, struct endpoint_info *info)
{
	const struct endpoint *e = find(req, admin);
	if (!e) return -1;
	info->methods = METHODS;
	info->cors = e->cors;
	return 0;
}

static void error_body(struct http_out *o, int status, const char *msg)
{
	o->status = status;
	json_obj_begin(&o->body);
	json_key(&o->body, "error");
	json_cstr(&o->body, msg);
	json_obj_end(&o->body);
	LIT(&o->body, "\n");
}

void endpoints_handle(const struct http_request *req, int admin, struct http_out *o)
{
	const struct endpoint *e = find(req, admin);
	json_init(&o->body);
	if (!e) {
		error_body(o, 404, "not found");
		return;
	}
	/* The probes stay open: an orchestrator has no token. */
	int auth = e->where == ADMIN && admin_token ? admin_authorized(req) : 1;
	if (auth <= 0) {
		/* RFC 6750 §3: the challenge, and why when a token came. */
		o->extra = auth < 0 ? "WWW-Authenticate: Bearer realm=\"kbridge-admin\"\r\n"
				    : "WWW-Authenticate: Bearer realm=\"kbridge-admin\", error=\"invalid_token\"\r\n";
		error_body(o, 401, auth < 0 ? "admin token required" : "invalid admin token");
		return;
	}
	e->answer(o, req);
	if (e->newline) LIT(&o->body, "\n");
}
