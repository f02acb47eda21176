/* proto_publish.c - the publish message and commands (proto_publish.h;
 * docs/protocol.md#publishing). A message becomes one record for the
 * producer (publish.h); its answer, an ack with the record's topic,
 * partition and offset or PUBLISH_FAILED, goes back to the client when
 * Kafka has spoken. What travels with a record is its reply's framing:
 * the action, the channel and the request's raw "id". */
#include "proto_publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "base64.h"
#include "clock.h"
#include "publish.h"

#define HEADERS_MAX 64           /* record headers in one publish */
#define DRAIN_ANSWER_MS 250      /* before the drain ends: answers still get out */

static struct {
	const struct config *cfg;
	int stopping;
	int64_t stop_deadline;
} PP;

/* Message types of the protocol itself: a --command cannot take them. */
static const char *const builtin[] = { "subscribe", "unsubscribe", "ping", "list", "list_subscriptions",
				       "refresh", "auth", "publish", NULL };

int proto_publish_init(const struct config *cfg, char *err, size_t errlen)
{
	PP.cfg = cfg;
	if (publish_configure(cfg, err, errlen) < 0) return -1;
	size_t i = 0;
	for (const struct publish_route *r; (r = publish_route_next(&i, 1));)
		for (const char *const *b = builtin; *b; b++)
			if (strcmp(publish_route_name(r), *b) == 0) {
				snprintf(err, errlen, "--command %s: a message type of the protocol itself", *b);
				return -1;
			}
	return 0;
}

void proto_publish_drain(int64_t deadline_ms)
{
	PP.stopping = 1;
	PP.stop_deadline = deadline_ms;
	int64_t answer_by = deadline_ms - DRAIN_ANSWER_MS;
	publish_drain(answer_by > clock_now() ? answer_by : clock_now());
}

/* ---- answers ------------------------------------------------------------------- */

/* A note is "ACTION\0CHANNEL\0" and the raw id text (empty: no id). */
static void answered(void *owner, const void *note, size_t note_len, const struct publish_outcome *o)
{
	struct client *c = owner;
	const char *action = note, *channel = action + strlen(action) + 1;
	const char *id = channel + strlen(channel) + 1;
	size_t id_len = note_len - (size_t)(id - action);
	c->publishing--;
	if (o->ok) {
		struct jbuf b;
		reply_begin(&b, "ack", id_len ? id : NULL, id_len);
		json_key(&b, "action");    json_cstr(&b, action);
		if (*channel) { json_key(&b, "channel"); json_cstr(&b, channel); }
		json_key(&b, "topic");     json_cstr(&b, o->topic);
		json_key(&b, "partition"); json_int(&b, o->partition);
		json_key(&b, "offset");    json_int(&b, o->offset);
		reply_send_always(c, &b);
	} else {
		reply_error_always(c, id_len ? id : NULL, id_len, "PUBLISH_FAILED", o->error);
	}
	/* The drain held this client open for its answers: now it may go. */
	if (PP.stopping && !c->publishing && c->state == CS_WS) {
		int64_t left = PP.stop_deadline - clock_now();
		client_ws_close(c, 1001, "server shutting down", left > 0 ? left : 0);
	}
}

/* ---- the message -------------------------------------------------------------- */

/* What one publish message holds, decoded; freed by take_free. */
struct take {
	struct publish_record rec;
	struct publish_header h[HEADERS_MAX];
	char *key, *bytes, *names[HEADERS_MAX], *values[HEADERS_MAX];
};

static void take_free(struct take *k)
{
	free(k->key);
	free(k->bytes);
	for (size_t i = 0; i < k->rec.nheaders; i++) {
		free(k->names[i]);
		free(k->values[i]);
	}
}

/* Reads the value (data_name's exact JSON text, or data_base64's bytes),
 * key and headers of m into k. NULL, or the BAD_REQUEST reason. */
static const char *take(const struct msg_ctx *m, const char *data_name, struct take *k)
{
	const char *src = m->src;
	const struct json_tok *tok = m->tok;
	int d = json_obj_get(src, tok, 0, data_name);
	int d64 = json_obj_get(src, tok, 0, "data_base64");
	if ((d >= 0) == (d64 >= 0))
		return d64 >= 0 ? "give \"data\" or \"data_base64\", not both" : *data_name == 'p' ? "a command needs a \"payload\""
			: "publish needs \"data\" (JSON) or \"data_base64\" (bytes)";
	if (d >= 0) {
		json_tok_raw(src, tok, d, &k->rec.value, &k->rec.value_len);
	} else {
		size_t n = 0;
		char *text = tok[d64].type == JSON_STRING ? json_tok_strdup(src, tok, d64, &n) : NULL;
		if (!text) return "\"data_base64\" must be a base64 string";
		k->bytes = malloc(n / 4 * 3 + 1);
		ssize_t len = k->bytes ? base64_decode(text, n, (unsigned char *)k->bytes) : -1;
		free(text);
		if (len < 0) return "\"data_base64\" is not valid base64 (RFC 4648, padded)";
		k->rec.value = k->bytes;
		k->rec.value_len = (size_t)len;
	}
	if (k->rec.value_len > PP.cfg->max_message) return "the record is larger than --max-message";
	int kt = json_obj_get(src, tok, 0, "key");
	if (kt >= 0 && tok[kt].type != JSON_NULL) {
		if (tok[kt].type != JSON_STRING || !(k->key = json_tok_strdup(src, tok, kt, &k->rec.key_len)))
			return "\"key\" must be a string";
		k->rec.key = k->key;
	}
	int ht = json_obj_get(src, tok, 0, "headers");
	if (ht >= 0 && tok[ht].type != JSON_NULL) {
		if (tok[ht].type != JSON_OBJECT) return "\"headers\" must be an object of strings";
		if (tok[ht].size > HEADERS_MAX) return "more than 64 headers";
		for (int i = ht + 1; i < (int)tok[ht].next; i = (int)tok[i + 1].next) {
			size_t n = k->rec.nheaders;
			if (tok[i + 1].type != JSON_STRING) return "\"headers\" must be an object of strings";
			size_t nlen = 0, vlen = 0;
			k->names[n] = json_tok_strdup(src, tok, i, &nlen);
			k->values[n] = json_tok_strdup(src, tok, i + 1, &vlen);
			k->rec.nheaders++;
			if (!k->names[n] || !k->values[n]) return "out of memory";
			k->h[n] = (struct publish_header){ k->names[n], nlen, k->values[n], vlen };
		}
		k->rec.headers = k->h;
	}
	return NULL;
}

/* The publish (r: its channel's route, channel: its name) or command
 * (channel NULL) in m, after its checks. */
static void send_record(const struct msg_ctx *m, const struct publish_route *r, const char *action,
			const char *channel)
{
	struct client *c = m->c;
	if (!auth_may_publish(c, channel ? channel : action)) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the token does not allow publishing %s %.200s",
			 channel ? "on channel" : "the command", channel ? channel : action);
		reply_error(c, m->id, m->id_len, "UNAUTHORIZED", msg);
		return;
	}
	struct take k = { 0 };
	const char *bad = take(m, channel ? "data" : "payload", &k);
	if (bad) {
		reply_error(c, m->id, m->id_len, "BAD_REQUEST", bad);
		take_free(&k);
		return;
	}
	if (PP.stopping) {
		reply_error(c, m->id, m->id_len, "PUBLISH_FAILED", "server shutting down: nothing was written");
		publish_refused(r);
	} else if (c->q.count >= (uint32_t)(PP.cfg->client_queue > PP.cfg->max_inflight ? PP.cfg->client_queue
											 : PP.cfg->max_inflight)) {
		/* Answers are never dropped, so a client that does not read them
		 * may not add to them (its queue would only grow): at most
		 * --client-queue (or --max-inflight) messages wait, data included. */
		reply_error(c, m->id, m->id_len, "RATE_LIMITED", "this connection's replies are not being read: nothing was written");
		publish_rate_limited(r);
	} else if (c->publishing >= PP.cfg->max_inflight) {
		char msg[120];
		snprintf(msg, sizeof(msg), "%ld publishes await Kafka's answer (--max-inflight): nothing was written",
			 PP.cfg->max_inflight);
		reply_error(c, m->id, m->id_len, "RATE_LIMITED", msg);
		publish_rate_limited(r);
	} else {
		size_t alen = strlen(action), clen = channel ? strlen(channel) : 0;
		size_t note_len = alen + 1 + clen + 1 + m->id_len;
		char *note = malloc(note_len);
		int rc = note ? PUBLISH_QUEUED : PUBLISH_ERROR;
		if (note) {
			memcpy(note, action, alen + 1);
			if (clen) memcpy(note + alen + 1, channel, clen);
			note[alen + 1 + clen] = '\0';
			if (m->id_len) memcpy(note + alen + clen + 2, m->id, m->id_len);
			rc = publish_send(r, &k.rec, c, answered, note, note_len);
			free(note);
		}
		if (rc == PUBLISH_QUEUED) c->publishing++;
		else if (rc == PUBLISH_FULL)
			reply_error(c, m->id, m->id_len, "RATE_LIMITED", "Kafka's producer queue is full: nothing was written");
		else if (rc == PUBLISH_TOO_LARGE)
			reply_error(c, m->id, m->id_len, "BAD_REQUEST", "the record is larger than Kafka accepts (message.max.bytes)");
		else if (note)
			reply_error(c, m->id, m->id_len, "PUBLISH_FAILED", publish_refusal_text());   /* counted there */
		else {
			reply_error(c, m->id, m->id_len, "PUBLISH_FAILED", "out of memory");
			publish_refused(r);
		}
	}
	take_free(&k);
}

int proto_publish_text(const char *m, size_t len)
{
	const char *v;
	size_t vl;
	/* The operation: "action" when present, else "type" (as proto.c reads it). */
	if (!json_top_field(m, len, "action", 6, &v, &vl) && !json_top_field(m, len, "type", 4, &v, &vl)) return 0;
	if (vl < 2 || v[0] != '"') return 0;
	v++;
	vl -= 2;
	return (vl == 7 && memcmp(v, "publish", 7) == 0) || publish_command(v, vl) != NULL;
}

int proto_publish_handle(const struct msg_ctx *m, int t)
{
	const char *src = m->src;
	const struct json_tok *tok = m->tok;
	if (json_str_eq(src, tok, t, "publish", 7)) {
		int ct = json_obj_get(src, tok, 0, "channel");
		size_t clen = 0;
		char *channel = ct >= 0 && tok[ct].type == JSON_STRING ? json_tok_strdup(src, tok, ct, &clen) : NULL;
		const struct publish_route *r = channel ? publish_channel(channel, clen) : NULL;
		if (!channel)
			reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "publish needs a \"channel\" string");
		else if (!r)
			reply_error(m->c, m->id, m->id_len, "UNKNOWN_CHANNEL", "not a channel clients may publish on");
		else
			send_record(m, r, "publish", channel);
		free(channel);
		return 1;
	}
	size_t tlen = 0;
	char *type = json_tok_strdup(src, tok, t, &tlen);
	const struct publish_route *r = type ? publish_command(type, tlen) : NULL;
	if (r) send_record(m, r, type, NULL);
	free(type);
	return r != NULL;
}

void proto_publish_gone(struct client *c)
{
	if (c->publishing) publish_owner_gone(c);
	c->publishing = 0;
}
