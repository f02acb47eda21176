/* proto.c - the protocol layer (proto.h): client control messages of both
 * dialects ("type" and the CryptoViz "action" form) turned into
 * subscriptions, snapshots and resumes, answered with acks, pongs and
 * errors; upgrade query parameters (proto_query.c validates them before
 * the 101) applied after it; a token's limits (auth.c) on every
 * subscription and snapshot; resume orchestrated across the history and Kafka, RESUME_GAP
 * included. It receives whole, parsed messages from the session layer and
 * calls down into routing (hub.c), the Kafka layer (positions, replays)
 * and the client layer (replies, conflation). Routing records to
 * subscribers is hub.c's job. */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "auth.h"
#include "conflate.h"
#include "http.h"
#include "hub.h"
#include "json_parse.h"
#include "log.h"
#include "proto_publish.h"
#include "replay.h"
#include "state.h"
#include "tp.h"

static long max_subscriptions;   /* --max-subscriptions */

/* ---- replays from Kafka: their outcomes come back here ----------------------- */

static void replay_record(void *owner, const struct record *r)
{
	hub_replay_record(owner, r);
}

static void replay_done(void *owner, const char *topic, int32_t partition)
{
	hub_replay_done(owner, topic, partition);
}

/* RESUME_GAP (docs/protocol.md#resume): Kafka no longer holds the records
 * after the resume offset; name the first one it has. The cookie is the
 * resume request's raw "id". */
static void replay_gap(void *owner, const char *cookie, size_t cookie_len, const char *topic, int32_t partition,
		       int64_t earliest)
{
	char tp[TP_KEY_MAX];
	struct jbuf b;
	tp_format(tp, sizeof(tp), topic, partition);
	reply_begin(&b, "error", cookie, cookie_len);
	json_key(&b, "code");    json_cstr(&b, "RESUME_GAP");
	json_key(&b, "message"); json_cstr(&b, "Kafka no longer holds the records after the resume offset; "
					      "live records continue, ask for a snapshot to catch up");
	json_key(&b, "earliest");
	json_obj_begin(&b);
	json_key(&b, tp);
	if (earliest >= 0) json_int(&b, earliest); else json_null(&b);
	json_obj_end(&b);
	reply_send(owner, &b);
}

/* A replay feeds its client only while the client reads (client_has_room). */
static int replay_ready(void *owner)
{
	return client_has_room(owner);
}

static const struct replay_hooks replay_hooks = { replay_record, replay_gap, replay_done, replay_ready };

int proto_init(const struct config *cfg, char *err, size_t errlen)
{
	max_subscriptions = cfg->max_subscriptions;
	replay_init(cfg, &replay_hooks);
	if (auth_init(cfg, err, errlen) < 0 || proto_publish_init(cfg, err, errlen) < 0) return -1;
	return hub_init(cfg, err, errlen);
}

/* {"type":"auth","token":T}: auth.c checks it and answers. */
static void auth_msg(const struct msg_ctx *m)
{
	int t = json_obj_get(m->src, m->tok, 0, "token");
	if (t < 0 || m->tok[t].type != JSON_STRING) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "auth needs a \"token\" string");
		return;
	}
	/* A JWT is base64url and dots: escapes would be malformed anyway. */
	auth_message(m->c, m->src + m->tok[t].start, m->tok[t].len, m->id, m->id_len);
}

static void pong(const struct msg_ctx *m)
{
	struct jbuf b;
	reply_begin(&b, "pong", m->id, m->id_len);
	reply_send(m->c, &b);
}

static void tok_raw(const struct msg_ctx *m, int t, const char **p, size_t *n)
{
	json_tok_raw(m->src, m->tok, t, p, n);
}

static char *tok_strdup(const struct msg_ctx *m, int t)
{
	return json_tok_strdup(m->src, m->tok, t, NULL);
}

/* "*": any key, any value, any type, wherever a filter takes a value. */
static int is_star(const struct msg_ctx *m, int t)
{
	return m->tok[t].type == JSON_STRING && json_str_eq(m->src, m->tok, t, "*", 1);
}

/* Filter values are strings, numbers, booleans or null: things a
 * top-level payload field can equal. */
static int is_scalar(int type)
{
	return type != JSON_ARRAY && type != JSON_OBJECT;
}

/* A request being turned into subscriptions: its channels, its filter and
 * the canonical JSON of the filter fields (the ack's "subscription"). The
 * canonical JSON is also the subscription's identity: subscribing twice
 * with the same filter is one subscription, and unsubscribe names one by
 * repeating its filter. */
struct sub_req {
	struct channel *chans[64];
	const char *names[64];     /* for the ack */
	size_t name_lens[64];
	int nchans;
	int all_channels;          /* action dialect without a channel */
	struct filter f;
	struct jbuf spec;
	int has_filter;            /* any filter field given (for unsubscribe) */
};

static void sub_req_free(struct sub_req *r)
{
	filter_free(&r->f);
	json_free(&r->spec);
}

/* Collects "channel" / "channels". Returns 0, or -1 after replying. */
static int take_channels(const struct msg_ctx *m, struct sub_req *r, int required)
{
	int one = json_obj_get(m->src, m->tok, 0, "channel");
	int many = json_obj_get(m->src, m->tok, 0, "channels");
	const char *bad = NULL;
	int list[64], n = 0;

	if (one >= 0) {
		if (m->tok[one].type != JSON_STRING) bad = "\"channel\" must be a string";
		else list[n++] = one;
	}
	if (!bad && many >= 0) {
		if (m->tok[many].type != JSON_ARRAY) bad = "\"channels\" must be an array of strings";
		for (int i = many + 1, k = 0; !bad && k < (int)m->tok[many].size; k++, i = (int)m->tok[i].next) {
			if (m->tok[i].type != JSON_STRING) bad = "\"channels\" must be an array of strings";
			else if (n == 64) bad = "too many channels in one request (at most 64)";
			else list[n++] = i;
		}
	}
	if (!bad && n == 0 && required) bad = "subscribe and unsubscribe need \"channel\" or \"channels\"";
	if (bad) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", bad);
		return -1;
	}
	r->all_channels = n == 0;
	/* Resolve every name before anything is subscribed: one unknown
	 * channel fails the whole request. */
	for (int i = 0; i < n; i++) {
		char name[256];
		ssize_t len = json_str_decode(m->src, m->tok, list[i], name, sizeof(name) - 1);
		struct channel *ch = len > 0 ? hub_channel(name, (size_t)len) : NULL;
		if (!ch) {
			char msg[320];
			snprintf(msg, sizeof(msg), "no route produces channel \"%.*s\"", len > 0 ? (int)len : 0, name);
			reply_error(m->c, m->id, m->id_len, "UNKNOWN_CHANNEL", msg);
			return -1;
		}
		int dup = 0;
		for (int k = 0; k < r->nchans; k++) dup |= r->chans[k] == ch;
		if (dup) continue;
		r->chans[r->nchans] = ch;
		r->names[r->nchans] = hub_channel_name(ch);
		r->name_lens[r->nchans] = strlen(r->names[r->nchans]);
		r->nchans++;
	}
	return 0;
}

/* A field filter: the name unescaped, the value kept as raw JSON text so
 * the hub compares it by JSON equality ("5" is not 5, 1 is 1.0). */
static int add_field(struct filter *f, const struct msg_ctx *m, int name_tok, int val_tok)
{
	struct field_filter *nf = realloc(f->fields, (f->nfields + 1) * sizeof(*nf));
	if (!nf) return -1;
	f->fields = nf;
	struct field_filter *ff = &f->fields[f->nfields];
	memset(ff, 0, sizeof(*ff));
	const char *raw;
	size_t rl;
	tok_raw(m, val_tok, &raw, &rl);
	ff->name = tok_strdup(m, name_tok);
	ff->any = is_star(m, val_tok);
	ff->value = strndup(raw, rl);
	ff->value_len = rl;
	f->nfields++;
	return ff->name && ff->value ? 0 : -1;
}

/* Emits a filter value into the spec: strings re-encoded, scalars verbatim. */
static void spec_value(struct jbuf *b, const struct msg_ctx *m, int t)
{
	if (m->tok[t].type == JSON_STRING) {
		char *s = tok_strdup(m, t);
		if (s) json_cstr(b, s); else b->failed = 1;
		free(s);
	} else {
		json_raw(b, m->src + m->tok[t].start, m->tok[t].len);
	}
}

/* Native dialect: key / keys / filter. Returns 0, or -1 after replying. */
static int take_native_filter(const struct msg_ctx *m, struct sub_req *r)
{
	const char *src = m->src;
	int key = json_obj_get(src, m->tok, 0, "key");
	int keys = json_obj_get(src, m->tok, 0, "keys");
	int filt = json_obj_get(src, m->tok, 0, "filter");
	int any_key = 0;
	struct jbuf *b = &r->spec;

	/* The spec echoes the fields in a fixed order (key, keys, filter),
	 * strings re-encoded, so equal filters give equal specs. */
	json_obj_begin(b);
	if (key >= 0) {
		if (m->tok[key].type != JSON_STRING) goto bad_key;
		if (is_star(m, key)) any_key = 1;
		else if (filter_add_key(&r->f, tok_strdup(m, key)) < 0) goto oom;
		json_key(b, "key");
		spec_value(b, m, key);
	}
	if (keys >= 0) {
		if (m->tok[keys].type != JSON_ARRAY || m->tok[keys].size == 0) goto bad_key;
		json_key(b, "keys");
		json_arr_begin(b);
		for (int i = keys + 1, k = 0; k < (int)m->tok[keys].size; k++, i = (int)m->tok[i].next) {
			if (m->tok[i].type != JSON_STRING) goto bad_key;
			if (is_star(m, i)) any_key = 1;
			else if (filter_add_key(&r->f, tok_strdup(m, i)) < 0) goto oom;
			spec_value(b, m, i);
		}
		json_arr_end(b);
	}
	/* "*" as a key matches every record, null keys included. */
	if (any_key) {
		for (uint32_t i = 0; i < r->f.nkeys; i++) free(r->f.keys[i]);
		free(r->f.keys);
		r->f.keys = NULL;
		r->f.nkeys = 0;
	}
	if (filt >= 0) {
		if (m->tok[filt].type != JSON_OBJECT) {
			reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "\"filter\" must be an object of field: value");
			return -1;
		}
		json_key(b, "filter");
		json_obj_begin(b);
		/* Members are name token then value token; .next skips a whole
		 * value, nested or not. */
		for (int i = filt + 1, k = 0; k < (int)m->tok[filt].size; k++) {
			int v = (int)m->tok[i].next;
			if (!is_scalar(m->tok[v].type)) {
				reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "filter values must be strings, numbers, booleans or null");
				return -1;
			}
			if (add_field(&r->f, m, i, v) < 0) goto oom;
			json_key(b, r->f.fields[r->f.nfields - 1].name);
			spec_value(b, m, v);
			i = (int)m->tok[v].next;
		}
		json_obj_end(b);
	}
	json_obj_end(b);
	r->has_filter = key >= 0 || keys >= 0 || filt >= 0;
	return 0;
bad_key:
	reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "\"key\" must be a string and \"keys\" a non-empty array of strings");
	return -1;
oom:
	reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory");
	return -1;
}

/* Action dialect: every member but action, id, channel(s) is a filter;
 * "type" matches the message type, others top-level payload fields. */
static int take_action_filter(const struct msg_ctx *m, struct sub_req *r)
{
	struct jbuf *b = &r->spec;
	json_obj_begin(b);
	for (int i = 1, k = 0; k < (int)m->tok[0].size; k++) {
		int v = (int)m->tok[i].next;
		int skip = json_str_eq(m->src, m->tok, i, "action", 6) || json_str_eq(m->src, m->tok, i, "id", 2) ||
			   json_str_eq(m->src, m->tok, i, "channel", 7) || json_str_eq(m->src, m->tok, i, "channels", 8);
		if (!skip) {
			if (!is_scalar(m->tok[v].type)) {
				reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "filter values must be strings, numbers, booleans or null");
				return -1;
			}
			if (json_str_eq(m->src, m->tok, i, "type", 4)) {
				if (m->tok[v].type != JSON_STRING) {
					reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "\"type\" must be a string");
					return -1;
				}
				free(r->f.type);
				r->f.type = is_star(m, v) ? NULL : tok_strdup(m, v);
				json_key(b, "type");
			} else {
				if (add_field(&r->f, m, i, v) < 0) {
					reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory");
					return -1;
				}
				json_key(b, r->f.fields[r->f.nfields - 1].name);
			}
			spec_value(b, m, v);
			r->has_filter = 1;
		}
		i = (int)m->tok[v].next;
	}
	json_obj_end(b);
	return 0;
}

/* Sends channel ch's snapshot to c. Records already queued come before it
 * (all have seq <= its seq); records held back by conflation would come
 * after it, so they go: the snapshot holds their values. */
static void send_snapshot(struct client *c, struct channel *ch, const char *id, size_t id_len)
{
	struct jbuf b;
	json_init(&b);
	hub_snapshot_json(&b, ch, id, id_len, auth_view(c, ch));
	struct frame *f = b.failed ? NULL : client_message(c, b.buf, b.len, FRAME_CONTROL);
	if (f) {
		conflate_drop_channel(c, ch);
		client_send_always(c, f);
	} else {
		log_msg(LOG_WARN, "snapshot not sent", "client", log_num(c->id), "channel", hub_channel_name(ch),
			"bytes", log_num((int64_t)b.len),
			"reason", "out of memory, or it would pass the largest frame (4 GiB)", NULL);
	}
	json_free(&b);
}

/* Partitions a subscribe named in "resume": their position is the client's. */
struct resume_list {
	const char (*topics)[256];
	const int32_t *parts;
	int n;
};

static int in_resume(const struct resume_list *rl, const char *topic, int32_t partition)
{
	for (int i = 0; rl && i < rl->n; i++)
		if (rl->parts[i] == partition && strcmp(rl->topics[i], topic) == 0) return 1;
	return 0;
}

/* "positions" of a subscribe ack: for each partition feeding the subscribed
 * channels, the offset of the last record routed before the subscription
 * began. Everything after it reaches the client live, so a client that
 * stores these with the positions of the data messages can later resume
 * also the partitions that sent it nothing. */
static void ack_positions(struct jbuf *b, const struct sub_req *r, const struct resume_list *rl)
{
	size_t i = 0;
	const char *tp;
	int64_t last;
	char topic[256];
	int32_t partition;
	json_key(b, "positions");
	json_obj_begin(b);
	while (assign_position_next(&i, &tp, &last)) {
		if (tp_parse(tp, strlen(tp), topic, sizeof(topic), &partition) < 0 || in_resume(rl, topic, partition))
			continue;
		const struct channel *ch = hub_topic_channel(topic);
		if (!ch) continue;
		int wanted = r->all_channels;
		for (int k = 0; k < r->nchans && !wanted; k++) wanted = r->chans[k] == ch;
		if (!wanted) continue;
		json_key(b, tp);
		json_int(b, last);
	}
	json_obj_end(b);
}

/* The ack of subscribe (with "positions") or unsubscribe (with "removed",
 * removed >= 0): the channels and the canonical filter echoed back. */
static void ack(const struct msg_ctx *m, const char *action, const struct sub_req *r, int removed,
		const struct resume_list *rl)
{
	struct jbuf b;
	if (m->c->sse) return;   /* an SSE stream's only subscription is its request's */
	reply_begin(&b, "ack", m->id, m->id_len);
	json_key(&b, "action");
	json_cstr(&b, action);
	json_key(&b, "channels");
	json_arr_begin(&b);
	if (r->all_channels) json_cstr(&b, "*");
	for (int i = 0; i < r->nchans; i++) json_str(&b, r->names[i], r->name_lens[i]);
	json_arr_end(&b);
	json_key(&b, "subscription");
	json_raw(&b, r->spec.buf, r->spec.len);
	if (removed >= 0) {
		json_key(&b, "removed");
		json_int(&b, removed);
	} else if (!m->c->dialect) {
		ack_positions(&b, r, rl);
	}
	reply_send(m->c, &b);
}

#define RESUME_MAX 256   /* partitions in one resume request */

/* Starts the resume of each listed partition: replayed at once from the
 * history, or fetched back from Kafka. Returns 0, or -1 with err set. */
static int start_resume(struct client *c, char (*topics)[256], const int32_t *parts, const int64_t *last,
			int n, const char *id, size_t id_len, char *err, size_t errlen)
{
	struct replay_req req[RESUME_MAX];
	int nk = 0;
	/* With tokens, only what this connection reads: a replay for a
	 * channel it has no subscription to (one its token refused) would
	 * cost a Kafka consumer and deliver nothing. */
	for (int i = 0; auth_enabled() && i < n; i++) {
		const struct channel *ch = hub_topic_channel(topics[i]);
		const struct sub *s = c->subs;
		while (ch && s && s->ch && s->ch != ch) s = s->cnext;
		if (ch && !s) {
			snprintf(err, errlen, "cannot resume %s:%d: this connection reads no channel of that topic",
				 topics[i], (int)parts[i]);
			return -1;
		}
	}
	/* Every partition's gate first: what the history replays of one goes
	 * out before the others have begun (an SSE id passes none of them). */
	for (int i = 0; i < n; i++) hub_resume_hold(c, topics[i], parts[i], last[i]);
	if (c->sse) hub_sse_position(c, 0);
	for (int i = 0; i < n; i++) {
		int64_t from;
		int rc = hub_resume(c, topics[i], parts[i], last[i], &from);
		if (rc < 0) {
			snprintf(err, errlen, "cannot resume %s:%d: no route consumes that topic", topics[i], (int)parts[i]);
			for (int k = 0; k < n; k++) hub_replay_done(c, topics[k], parts[k]);   /* nothing held */
			return -1;
		}
		if (rc == 1) req[nk++] = (struct replay_req){ topics[i], parts[i], from };
	}
	/* One replay consumer serves all of them; its records come back
	 * through replay_record() above, its end through replay_done(). */
	/* What the history does not cover comes from Kafka; the id comes
	 * back with a RESUME_GAP. */
	if (nk && replay_start(c, req, nk, id, id_len, err, errlen) < 0) {
		/* No replay: release the live records held for it. */
		for (int i = 0; i < nk; i++) hub_replay_done(c, req[i].topic, req[i].partition);
		return -1;
	}
	return 0;
}

/* "resume":{"topic:partition":last_offset,...}: parsed before subscribing,
 * so a malformed request changes nothing. */
static int parse_resume(const struct msg_ctx *m, int t, char (*topics)[256], int32_t *parts, int64_t *last, int *n)
{
	const char *bad = NULL;
	*n = 0;
	if (m->tok[t].type != JSON_OBJECT) bad = "\"resume\" must be an object of \"topic:partition\": offset";
	for (int i = t + 1, k = 0; !bad && k < (int)m->tok[t].size; k++) {
		int v = (int)m->tok[i].next;
		char name[300];
		ssize_t nl = json_str_decode(m->src, m->tok, i, name, sizeof(name));
		if (*n == RESUME_MAX) bad = "too many partitions in \"resume\"";
		else if (nl < 0 || tp_parse(name, (size_t)nl, topics[*n], 256, &parts[*n]) < 0)
			bad = "\"resume\" keys must be \"topic:partition\"";
		else if (m->tok[v].type != JSON_NUMBER || json_tok_int(m->src, m->tok, v, &last[*n]) < 0 || last[*n] < -1)
			bad = "\"resume\" offsets must be integers >= -1";
		else
			(*n)++;
		i = (int)m->tok[v].next;
	}
	if (bad) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", bad);
		return -1;
	}
	return 0;
}

/* subscribe, in either dialect. Everything is validated before anything
 * changes (a bad request subscribes nothing); then the subscriptions, the
 * ack, any snapshot, and last the resume, so the client sees: ack,
 * replayed records, live records. */
static void subscribe(const struct msg_ctx *m, int action_dialect)
{
	struct sub_req r = { 0 };
	int snap_tok = action_dialect ? -1 : json_obj_get(m->src, m->tok, 0, "snapshot");
	int iv_tok = action_dialect ? -1 : json_obj_get(m->src, m->tok, 0, "interval");
	int64_t iv = 0;
	if (iv_tok >= 0 && (m->tok[iv_tok].type != JSON_NUMBER || json_tok_int(m->src, m->tok, iv_tok, &iv) < 0 ||
			    iv < 0 || iv > 3600000)) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "\"interval\" must be milliseconds 0-3600000");
		return;
	}
	uint32_t interval = (uint32_t)iv;
	if (snap_tok >= 0 && m->tok[snap_tok].type != JSON_TRUE && m->tok[snap_tok].type != JSON_FALSE) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "\"snapshot\" must be true or false");
		return;
	}
	/* Static: 64 KiB is too much for the stack, and one request is
	 * handled at a time. */
	static char rtopics[RESUME_MAX][256];
	static int32_t rparts[RESUME_MAX];
	static int64_t rlast[RESUME_MAX];
	int nres = 0;
	int res_tok = action_dialect ? -1 : json_obj_get(m->src, m->tok, 0, "resume");
	if (m->c->dialect && (res_tok >= 0 || iv_tok >= 0)) {
		/* The state dialect's period is the upgrade's; a state has no
		 * positions to resume from (a snapshot replaces it whole). */
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST",
			    "\"resume\" and \"interval\" do not apply to type=tui|web connections");
		return;
	}
	if (res_tok >= 0 && parse_resume(m, res_tok, rtopics, rparts, rlast, &nres) < 0) return;
	json_init(&r.spec);
	if (take_channels(m, &r, !action_dialect) < 0) goto out;
	if ((action_dialect ? take_action_filter(m, &r) : take_native_filter(m, &r)) < 0) goto out;
	if (r.spec.failed) { reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory"); goto out; }

	/* One subscription per channel, or one for every channel. */
	int want = r.all_channels ? 1 : r.nchans;
	long max = max_subscriptions;
	if ((long)m->c->nsubs + want > max) {
		char msg[96];
		snprintf(msg, sizeof(msg), "at most %ld subscriptions per connection", max);
		reply_error(m->c, m->id, m->id_len, "TOO_MANY_SUBSCRIPTIONS", msg);
		goto out;
	}
	/* The token's limits first (docs/security.md): one channel it does
	 * not allow fails the whole request. */
	for (int i = 0, failed = 0; i < want; i++) {
		struct filter f = filter_copy(&r.f, &failed);
		int rc = failed ? -1 : auth_filter(m->c, r.all_channels ? NULL : r.chans[i], &f, m->id, m->id_len);
		filter_free(&f);
		if (failed) reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory");
		if (rc < 0) goto out;
	}
	int added = 0;
	for (int i = 0; i < want; i++) {
		int failed = 0;
		struct filter f = filter_copy(&r.f, &failed);
		char *spec = strndup(r.spec.buf, r.spec.len);
		if (failed || !spec || auth_filter(m->c, r.all_channels ? NULL : r.chans[i], &f, m->id, m->id_len) < 0) {
			filter_free(&f);
			free(spec);
			if (failed || !spec) reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory");
			goto out;
		}
		int rc = m->c->dialect ? hub_state_subscribe(m->c, r.chans[i], &f, spec, r.spec.len) :
			 hub_subscribe(m->c, r.all_channels ? NULL : r.chans[i], &f, spec, r.spec.len, interval);
		if (rc < 0) {
			reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "out of memory");
			goto out;
		}
		added += rc;
	}
	struct resume_list rl = { rtopics, rparts, nres };
	ack(m, "subscribe", &r, -1, &rl);
	if (m->c->sse && !nres) hub_sse_position(m->c, 0);   /* where the stream starts */
	if (m->c->dialect) {
		/* The state dialect: a new set means a new snapshot, whole. */
		if (added) state_client_changed(m->c, m->id, m->id_len);
		goto out;
	}
	/* "snapshot":true, or snapshot=1 / type=tui|web on the upgrade (not
	 * with a resume, whose replay would follow the snapshot unless asked):
	 * the current state of each channel right after the ack. */
	if (snap_tok >= 0 ? m->tok[snap_tok].type == JSON_TRUE : m->c->snapshots && !nres)
		for (int i = 0; i < r.nchans; i++) send_snapshot(m->c, r.chans[i], m->id, m->id_len);
	/* Resume after the ack: replayed records, then the live stream. */
	if (nres) {
		char err[300];
		if (start_resume(m->c, rtopics, rparts, rlast, nres, m->id, m->id_len, err, sizeof(err)) < 0)
			reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", err);
	}
out:
	sub_req_free(&r);
}

/* refresh: a snapshot of the named channels, or of every subscribed one. */
static void refresh(const struct msg_ctx *m)
{
	if (m->c->dialect) {                 /* every subscribed channel, in one snapshot */
		state_client_snapshot(m->c, m->id, m->id_len);
		return;
	}
	struct sub_req r = { 0 };
	json_init(&r.spec);
	if (take_channels(m, &r, 0) < 0) goto out;
	if (r.all_channels) {
		int sent = 0;
		for (const struct sub *s = m->c->subs; s; s = s->cnext) {
			if (!s->ch) continue;
			/* once per channel, even with several subscriptions to it */
			const struct sub *p;
			for (p = m->c->subs; p != s && p->ch != s->ch; p = p->cnext) {}
			if (p != s) continue;
			send_snapshot(m->c, s->ch, m->id, m->id_len);
			sent++;
		}
		if (!sent) reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "refresh without a channel needs a subscription to refresh");
	}
	for (int i = 0; i < r.nchans; i++) {
		struct filter none = { 0 };
		if (auth_filter(m->c, r.chans[i], &none, m->id, m->id_len) < 0) break;
		filter_free(&none);
		send_snapshot(m->c, r.chans[i], m->id, m->id_len);
	}
out:
	sub_req_free(&r);
}

/* unsubscribe: with filter fields, only the subscriptions with exactly
 * that filter; without, every subscription on the named channels. */
static void unsubscribe(const struct msg_ctx *m, int action_dialect)
{
	struct sub_req r = { 0 };
	json_init(&r.spec);
	if (take_channels(m, &r, !action_dialect) < 0) goto out;
	if ((action_dialect ? take_action_filter(m, &r) : take_native_filter(m, &r)) < 0) goto out;
	const char *spec = r.has_filter ? r.spec.buf : NULL;
	int removed = 0;
	if (r.all_channels)
		removed = hub_unsubscribe(m->c, NULL, 1, spec, r.spec.len);
	for (int i = 0; i < r.nchans; i++)
		removed += hub_unsubscribe(m->c, r.chans[i], 0, spec, r.spec.len);
	ack(m, "unsubscribe", &r, removed, NULL);
	if (m->c->dialect && removed) state_client_changed(m->c, m->id, m->id_len);
	if (removed) auth_unsubscribed(m->c);
out:
	sub_req_free(&r);
}

/* list / list_subscriptions: every subscription with its channel ("*"
 * for every channel) and its canonical filter. */
static void list(const struct msg_ctx *m)
{
	struct jbuf b;
	reply_begin(&b, "subscriptions", m->id, m->id_len);
	json_key(&b, "subscriptions");
	json_arr_begin(&b);
	for (const struct sub *s = m->c->subs; s; s = s->cnext) {
		json_obj_begin(&b);
		json_key(&b, "channel");
		json_cstr(&b, hub_channel_name(s->ch));
		json_key(&b, "subscription");
		json_raw(&b, s->spec, s->spec_len);
		json_obj_end(&b);
	}
	json_arr_end(&b);
	reply_send(m->c, &b);
}

void proto_handle(const struct msg_ctx *m)
{
	const char *src = m->src;
	const struct json_tok *tok = m->tok;
	int action = json_obj_get(src, tok, 0, "action");
	int t = action >= 0 ? action : json_obj_get(src, tok, 0, "type");
	int ad = action >= 0;
	/* The dialect is decided by "action": with it, "type" is a filter
	 * (the message type to match), not the operation. */
	if (t < 0) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "message needs a \"type\" (or \"action\") string");
		return;
	}
	if (tok[t].type != JSON_STRING) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", ad ? "\"action\" must be a string" : "\"type\" must be a string");
		return;
	}
	if (ad && m->c->dialect) {
		reply_error(m->c, m->id, m->id_len, "UNKNOWN_TYPE", "type=tui|web connections take \"type\" messages");
		return;
	}
#define IS(word) json_str_eq(src, tok, t, word, sizeof(word) - 1)
	if (IS("ping")) pong(m);
	else if (IS("auth")) auth_msg(m);
	else if (!auth_may(m->c))
		reply_error(m->c, m->id, m->id_len, "UNAUTHORIZED", ad ? "authenticate first: {\"action\":\"auth\",\"token\":...}" :
			    "authenticate first: {\"type\":\"auth\",\"token\":...}");
	else if (IS("subscribe")) subscribe(m, ad);
	else if (IS("unsubscribe")) unsubscribe(m, ad);
	else if ((!ad && IS("list")) || IS("list_subscriptions")) list(m);
	else if (!ad && IS("refresh")) refresh(m);
	else if (proto_publish_handle(m, t)) {}
	else reply_error(m->c, m->id, m->id_len, "UNKNOWN_TYPE", ad ? "unknown action" : "unknown message type");
#undef IS
}

/* Subscribes to the channels named on the upgrade (already validated). */
void proto_upgrade_apply(struct client *c, const struct upgrade_opts *o)
{
	c->msgpack = (unsigned)o->msgpack;
	c->interval_ms = (uint32_t)o->interval_ms;
	c->snapshots = (unsigned)o->snapshot;
	c->dialect = (unsigned)o->state;
	char list[PROTO_QUERY_MAX], *save = NULL;
	memcpy(list, o->channels, sizeof(list));
	for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		struct channel *ch = hub_channel(name, strlen(name));
		struct filter f = { 0 };
		char *spec = strdup("{}");
		if (ch && spec && (long)c->nsubs < max_subscriptions && auth_filter(c, ch, &f, NULL, 0) == 0) {
			if (c->dialect) hub_state_subscribe(c, ch, &f, spec, 2);
			else if (hub_subscribe(c, ch, &f, spec, 2, 0) >= 0 && o->snapshot) send_snapshot(c, ch, NULL, 0);
		} else {
			filter_free(&f);
			free(spec);
		}
	}
	if (c->dialect && c->nsubs) state_client_changed(c, NULL, 0);
	if (o->nresume) {
		char err[300];
		if (start_resume(c, (char (*)[256])o->rtopics, o->rparts, o->rlast, o->nresume, NULL, 0, err, sizeof(err)) < 0)
			reply_error(c, NULL, 0, "BAD_REQUEST", err);
	}
}

void proto_client_gone(struct client *c)
{
	proto_publish_gone(c);
	state_client_gone(c);              /* before its subscriptions go */
	auth_client_gone(c);
	hub_client_gone(c);
	conflate_client_gone(c);
	replay_owner_gone(c);
}

void proto_tick(void)
{
	auth_tick();
	hub_gc();
}
