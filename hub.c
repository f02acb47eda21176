/* hub.c - routing (hub.h). A record finds its topic's route (cached per
 * topic name), takes the next seq of its channel and is encoded at most
 * once per format (envelope.c) into a shared frame that every matching
 * subscriber's queue references. Subscriptions with key lists are indexed
 * by key, so keyed fan-out touches only the subscribers of that key; the
 * rest of a channel's subscribers sit in one flat array, and channel-less
 * subscriptions (action dialect) in one more. */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conflate.h"
#include "envelope.h"
#include "history.h"
#include "json_parse.h"
#include "log.h"
#include "lvc.h"
#include "map.h"
#include "metrics.h"
#include "position.h"
#include "sse.h"
#include "ssesets.h"
#include "state.h"

struct sublist {
	struct sub **v;
	uint32_t n, cap;
};

struct channel {
	char *name;
	uint64_t seq;             /* last seq routed (starts at 1 for the first record) */
	struct lvc lvc;           /* the last-value cache, for snapshots */
	struct state_chan st;     /* the state dialect's state (beside the cache) */
	struct sublist any;       /* subscriptions without a key list */
	struct map keys;          /* key -> struct sublist *: subscriptions by key */
	uint32_t nsubs;
	int fed;                  /* some topic routes here: keep it forever */
	int fixed;                /* named by a route: keep it forever */
};

/* Every topic ever seen, routed or not; never freed, so a struct topic
 * pointer is a stable identity (the history's resume gates use it). */
struct topic {
	struct channel *ch;       /* NULL: no route */
	char *type;
	char *name;
	struct metrics_topic *counter;
};

static struct {
	struct route *routes;
	size_t nroutes;
	struct map channels;      /* name -> struct channel * */
	struct map topics;        /* name -> struct topic * */
	struct sublist all;       /* every-channel subscriptions (action dialect) */
	uint64_t stamp;           /* per-record mark: one delivery per client */
	int gc_due;               /* some channel may be unused: see hub_gc() */
} H;

/* ---- lists --------------------------------------------------------------- */

static int list_add(struct sublist *l, struct sub *s)
{
	if (l->n == l->cap) {
		uint32_t ncap = l->cap ? l->cap * 2 : 4;
		struct sub **nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv) return -1;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = s;
	return 0;
}

/* Swap-removes element i; the moved element's pos is fixed up when the
 * list tracks positions (the flat lists do, key lists do not). */
static void list_del_at(struct sublist *l, uint32_t i, int track_pos)
{
	l->v[i] = l->v[--l->n];
	if (track_pos && i < l->n) l->v[i]->pos = i;
	if (l->n == 0) {
		free(l->v);
		l->v = NULL;
		l->cap = 0;
	}
}

static void list_del(struct sublist *l, struct sub *s)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i] == s) { list_del_at(l, i, 0); return; }
}

/* ---- routes and channels ------------------------------------------------- */

static struct channel *channel_new(const char *name, size_t len)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	if (!ch || !(ch->name = strndup(name, len)) || map_put(&H.channels, name, len, ch) < 0) {
		if (ch) free(ch->name);
		free(ch);
		return NULL;
	}
	state_chan_init(&ch->st, ch->name, &ch->lvc);
	return ch;
}

static void channel_free(struct channel *ch)
{
	size_t i = 0;
	struct map_slot *s;
	state_chan_free(&ch->st);
	lvc_clear(&ch->lvc);
	while (map_next(&ch->keys, &i, &s)) {
		struct sublist *l = s->val;
		free(l->v);
		free(l);
	}
	map_free(&ch->keys);
	free(ch->any.v);
	free(ch->name);
	free(ch);
}

/* A channel nobody routes to and nobody watches is forgotten, so clients
 * cannot grow the table by subscribing to names a regex could produce.
 * Only marked here and freed by hub_gc() between turns' work: a request
 * being handled may still hold the pointer (or its name). */
static void channel_maybe_free(struct channel *ch)
{
	if (ch->nsubs || ch->fed || ch->fixed) return;
	H.gc_due = 1;
}

void hub_gc(void)
{
	if (!H.gc_due) return;
	H.gc_due = 0;
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&H.channels, &i, &s)) {
		struct channel *ch = s->val;
		if (ch->nsubs || ch->fed || ch->fixed) continue;
		map_del(&H.channels, ch->name, strlen(ch->name));   /* leaves a tombstone: iteration goes on */
		channel_free(ch);
	}
}

static history_release_fn release_held;

int hub_init(const struct config *cfg, char *err, size_t errlen)
{
	/* The layer's other modules take their settings here, once. */
	envelope_configure(cfg->headers);
	lvc_configure((uint32_t)cfg->snapshot_keys);
	history_configure(cfg->history, cfg->headers, (uint32_t)cfg->client_queue);
	history_on_release(release_held);
	if (routes_parse(cfg->topics, cfg->ntopics, &H.routes, err, errlen) < 0) return -1;
	H.nroutes = cfg->ntopics;
	if (state_configure(cfg, err, errlen) < 0) return -1;
	/* Channels a route names exist from the start: they can be subscribed
	 * to before their first record. A regex route without "=channel"
	 * names none (each matched topic is its own channel). */
	for (size_t i = 0; i < H.nroutes; i++) {
		const struct route *r = &H.routes[i];
		const char *cname = r->channel ? r->channel : (r->is_regex ? NULL : r->topic);
		if (!cname) continue;
		struct channel *ch = map_get(&H.channels, cname, strlen(cname));
		if (!ch && !(ch = channel_new(cname, strlen(cname)))) { snprintf(err, errlen, "out of memory"); return -1; }
		ch->fixed = 1;
	}
	/* --state-shape may name only channels a route can produce. */
	for (size_t i = 0; i < cfg->nstate_shapes; i++) {
		const char *item = cfg->state_shapes[i];
		size_t nl = (size_t)(strrchr(item, '=') - item);
		if (!map_get(&H.channels, item, nl) && !route_could_name(H.routes, H.nroutes, item, nl)) {
			snprintf(err, errlen, "--state-shape: no route produces channel '%.*s'", (int)(nl > 100 ? 100 : nl), item);
			return -1;
		}
	}
	return 0;
}

/* The topic named `name`, created on first sight with its route resolved
 * once: the hot path then pays one map lookup per record. */
static struct topic *topic_get(const char *name)
{
	size_t len = strlen(name);
	struct topic *t = map_get(&H.topics, name, len);
	if (t) return t;
	if (!(t = calloc(1, sizeof(*t)))) return NULL;
	const struct route *r = route_match(H.routes, H.nroutes, name);
	if (r) {
		const char *cname = r->channel ? r->channel : name;
		t->ch = map_get(&H.channels, cname, strlen(cname));
		if (!t->ch) t->ch = channel_new(cname, strlen(cname));
		t->type = strdup(r->type ? r->type : name);
		if (!t->ch || !t->type) { free(t->type); free(t); return NULL; }
		t->ch->fed = 1;
	}
	t->counter = metrics_topic(name, METRICS_CONSUMED);
	if (!(t->name = strdup(name)) || map_put(&H.topics, name, len, t) < 0) {
		free(t->name);
		free(t->type);
		free(t);
		return NULL;
	}
	return t;
}

const struct channel *hub_topic_channel(const char *topic)
{
	const struct topic *t = topic_get(topic);
	return t ? t->ch : NULL;
}

struct channel *hub_channel(const char *name, size_t len)
{
	struct channel *ch = map_get(&H.channels, name, len);
	if (ch) return ch;
	/* A name a regex route without "=channel" could produce is valid
	 * before any such topic exists (docs/protocol.md#overview). */
	if (!route_could_name(H.routes, H.nroutes, name, len)) return NULL;
	H.gc_due = 1;   /* freed again unless a subscription keeps it */
	return channel_new(name, len);
}

const char *hub_channel_name(const struct channel *ch)
{
	return ch ? ch->name : "*";
}

/* ---- subscriptions ------------------------------------------------------- */

static void sub_free(struct sub *s)
{
	filter_free(&s->f);
	free(s->spec);
	free(s);
}

/* Unlinks s from the channel's structures (not from the client's list). */
static void sub_detach(struct sub *s)
{
	struct channel *ch = s->ch;
	if (!ch) {
		list_del_at(&H.all, s->pos, 1);
		return;
	}
	if (s->st) {
		/* a state-dialect subscription sits in no fan-out list */
	} else if (!s->f.keys) {
		list_del_at(&ch->any, s->pos, 1);
	} else {
		for (uint32_t i = 0; i < s->f.nkeys; i++) {
			size_t kl = strlen(s->f.keys[i]);
			struct sublist *l = map_get(&ch->keys, s->f.keys[i], kl);
			if (!l) continue;
			list_del(l, s);
			if (l->n == 0) {
				map_del(&ch->keys, s->f.keys[i], kl);
				free(l);
			}
		}
	}
	ch->nsubs--;
	channel_maybe_free(ch);
}

/* Links s where fan-out finds it: the every-channel list, the channel's
 * flat list, or one key list per key. All or nothing: -1 leaves no trace. */
static int sub_attach(struct sub *s)
{
	struct channel *ch = s->ch;
	if (!ch) {
		s->pos = H.all.n;
		return list_add(&H.all, s);
	}
	if (s->st) {
		/* a state-dialect subscription sits in no fan-out list */
	} else if (!s->f.keys) {
		s->pos = ch->any.n;
		if (list_add(&ch->any, s) < 0) return -1;
	} else {
		for (uint32_t i = 0; i < s->f.nkeys; i++) {
			size_t kl = strlen(s->f.keys[i]);
			struct sublist *l = map_get(&ch->keys, s->f.keys[i], kl);
			if (!l) {
				if (!(l = calloc(1, sizeof(*l))) || map_put(&ch->keys, s->f.keys[i], kl, l) < 0) {
					free(l);
					goto undo;
				}
			}
			/* keys[] holds no duplicates (proto.c), so one entry per key. */
			if (list_add(l, s) < 0) goto undo;
			continue;
undo:
			/* Take back the keys already added, then fail. */
			for (uint32_t k = 0; k < i; k++) {
				struct sublist *u = map_get(&ch->keys, s->f.keys[k], strlen(s->f.keys[k]));
				if (u) list_del(u, s);
			}
			return -1;
		}
	}
	ch->nsubs++;
	return 0;
}

static int subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len,
		     uint32_t interval_ms, int state)
{
	struct sub **tail = &c->subs;
	for (struct sub *s = c->subs; s; s = s->cnext) {
		if (s->ch == ch && s->spec_len == spec_len && memcmp(s->spec, spec, spec_len) == 0) {
			/* The same subscription, asked again: the new filter
			 * replaces its own (a refreshed token may allow more, or
			 * less, than when it was made; docs/security.md). */
			s->interval_ms = interval_ms;
			free(spec);
			struct filter old = s->f;
			sub_detach(s);
			s->f = *f;
			memset(f, 0, sizeof(*f));
			if (sub_attach(s) == 0) {
				filter_free(&old);
				return 0;
			}
			filter_free(&s->f);
			s->f = old;
			if (sub_attach(s) == 0) return -1;
			*tail = s->cnext;       /* no memory to index it either way: it goes */
			sub_free(s);
			c->nsubs--;
			return -1;
		}
		tail = &s->cnext;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s) {
		filter_free(f);
		free(spec);
		if (ch) channel_maybe_free(ch);
		return -1;
	}
	s->c = c;
	s->ch = ch;
	s->spec = spec;
	s->spec_len = spec_len;
	s->interval_ms = interval_ms;
	s->st = state ? &ch->st : NULL;
	s->f = *f;                       /* the filter's memory moves in */
	memset(f, 0, sizeof(*f));
	if (sub_attach(s) < 0) {
		sub_free(s);
		if (ch) channel_maybe_free(ch);
		return -1;
	}
	*tail = s;
	c->nsubs++;
	return 1;
}

int hub_subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len,
		  uint32_t interval_ms)
{
	return subscribe(c, ch, f, spec, spec_len, interval_ms, 0);
}

int hub_state_subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len)
{
	return subscribe(c, ch, f, spec, spec_len, 0, 1);
}

int hub_unsubscribe(struct client *c, struct channel *ch, int all_channels, const char *spec, size_t spec_len)
{
	int n = 0;
	for (struct sub **pp = &c->subs; *pp;) {
		struct sub *s = *pp;
		int same_ch = all_channels || s->ch == ch;
		int same_spec = !spec || (s->spec_len == spec_len && memcmp(s->spec, spec, spec_len) == 0);
		if (same_ch && same_spec) {
			*pp = s->cnext;
			sub_detach(s);
			sub_free(s);
			c->nsubs--;
			n++;
		} else {
			pp = &s->cnext;
		}
	}
	return n;
}

int hub_restrict(struct client *c, const struct channel *ch, const struct filter *only)
{
	int removed = 0;
	for (struct sub **pp = &c->subs; *pp;) {
		struct sub *s = *pp;
		if (s->ch != ch) { pp = &s->cnext; continue; }
		int failed = 0;
		struct filter f = filter_copy(&s->f, &failed);
		int rc = failed ? -2 : filter_restrict(&f, only);
		if (rc == -2) { filter_free(&f); return -1; }
		sub_detach(s);
		if (rc == 0) {
			filter_free(&s->f);
			s->f = f;
			if (sub_attach(s) == 0) { pp = &s->cnext; continue; }
		} else {
			filter_free(&f);
		}
		/* Nothing left to read (or no memory to index it): it goes. */
		*pp = s->cnext;
		sub_free(s);
		c->nsubs--;
		removed++;
	}
	return removed;
}

void hub_client_gone(struct client *c)
{
	if (c->subs) hub_unsubscribe(c, NULL, 1, NULL, 0);
	history_gate_free(c);
}

/* ---- fan-out ------------------------------------------------------------- */

/* 1 if s wants the record. Key lists are checked only when the caller did
 * not find s through the key index already (check_keys). */
static int filter_match(const struct sub *s, struct envelope *e, int check_keys)
{
	const struct filter *f = &s->f;
	const struct record *r = e->r;
	if (check_keys && !filter_key_ok(f, r->key, r->key_len)) return 0;
	if (f->type && strcmp(f->type, e->type) != 0) return 0;
	/* Validating the value as JSON is paid only when a field filter asks. */
	return !f->nfields || filter_fields_ok(f, r->value, r->value_len, envelope_is_json(e));
}

/* Releases e; a record whose message could not be built for some client
 * is said once, in one line (docs/operations.md#limits). */
static void envelope_finish(struct envelope *e)
{
	if (e->failed) {
		const struct record *r = e->r;
		metrics_add(M_DROPPED, 1);
		log_msg(LOG_WARN, "record not delivered", "topic", r->topic, "partition", log_num(r->partition),
			"offset", log_num(r->offset), "value_bytes", log_num((int64_t)r->value_len),
			"reason", "out of memory, or the message would pass the largest frame (4 GiB)", NULL);
	}
	envelope_done(e);
}

/* ---- SSE positions (docs/protocol.md#sse) ------------------------------------- */

/* Whether t's records reach a subscription of c. */
static int reads_topic(const struct client *c, const struct topic *t)
{
	if (!t->ch) return 0;
	for (const struct sub *s = c->subs; s; s = s->cnext)
		if (!s->ch || s->ch == t->ch) return 1;
	return 0;
}

/* Which topics a stream reads, for position_token: one channel's (a
 * stream in step with the live consumer, only), else c's subscriptions'. */
struct reader {
	const struct client *c;
	const struct channel *only;
};

static const char *reads(const struct reader *r, const struct topic *t)
{
	return t && t->ch && (r->only ? t->ch == r->only : reads_topic(r->c, t)) ? t->name : NULL;
}

static const char *gate_topic(const void *topic, void *arg)
{
	return reads(arg, topic);
}

static const char *topic_named(const char *name, void *arg)
{
	return reads(arg, topic_get(name));   /* known before its first record too */
}

/* The token of c's stream (only: of any stream of that channel in step
 * with the live one); rt:rp at roff the record the event carries. */
static ssize_t sse_token(const struct client *c, const struct channel *only, const struct topic *rt, int32_t rp,
			 int64_t roff, char *out, size_t cap)
{
	struct reader r = { c, only };
	const struct position_reader pr = { gate_topic, topic_named, &r };
	return position_token(only ? NULL : c, &pr, rt ? rt->name : NULL, rp, roff, out, cap);
}

/* A new frame: before[0..bl), the line `id: ID` (none when id is NULL),
 * then after[0..al). NULL when out of memory. */
static struct frame *id_frame(const char *before, size_t bl, const char *id, size_t il, const void *after, size_t al,
			      enum frame_kind kind)
{
	size_t line = id ? 4 + il + 1 : 0;
	struct frame *f = frame_new(bl + line + al, kind);
	if (!f) return NULL;
	memcpy(f->data, before, bl);
	if (id) {
		memcpy(f->data + bl, "id: ", 4);
		memcpy(f->data + bl + 4, id, il);
		f->data[bl + 4 + il] = '\n';
	}
	memcpy(f->data + bl + line, after, al);
	return f;
}

/* An event of c's own: its token, then the shared event without id. A new
 * reference, NULL when out of memory or the token does not fit. */
static struct frame *sse_own(const struct client *c, const struct frame *body, const struct topic *t, int32_t p,
			     int64_t off)
{
	char id[SSE_TOKEN_MAX + 1];
	ssize_t il = sse_token(c, NULL, t, p, off, id, sizeof(id));
	struct frame *f = il < 0 ? NULL : id_frame("", 0, id, (size_t)il, body->data, body->len, (enum frame_kind)body->kind);
	if (f) f->key_hash = body->key_hash;
	return f;
}

/* The event of record e for SSE stream c, as a new reference: shared by
 * every stream that reads only t's channel and is in step with the live
 * one, or reads the same channels and has never resumed; else c's own.
 * NULL when out of memory. */
static struct frame *sse_event_for(struct client *c, struct envelope *e, const struct topic *t)
{
	struct reader r = { c, NULL };
	position_settle(c, &(const struct position_reader){ gate_topic, topic_named, &r });
	int shared = !c->rs, one = 1;
	for (const struct sub *s = c->subs; s; s = s->cnext) one &= s->ch == t->ch;
	struct frame *body = envelope_sse(e, NULL, 0), *f = NULL;
	if (!body) return NULL;
	if (c->interval_ms) {
		/* Conflation sends a key's value later than records routed
		 * after it: an id here could pass a value still held. The
		 * position goes in a line of its own, short of what is held
		 * (hub_sse_position from proto_sse_tick). */
		c->sse_moved = 1;
		return frame_ref(body);
	}
	if (shared && !one) {                /* in step, several channels: one event per set */
		if ((f = ssesets_get(c))) return f;
		if ((f = sse_own(c, body, t, e->r->partition, e->r->offset))) ssesets_put(c, f);
	} else if (!shared) {                /* resumed: its gates decide its position */
		f = sse_own(c, body, t, e->r->partition, e->r->offset);
	} else {                             /* in step, one channel: one event per record */
		char id[SSE_TOKEN_MAX + 1];
		ssize_t il;
		if (!e->sse[1] && (il = sse_token(NULL, t->ch, NULL, 0, 0, id, sizeof(id))) >= 0)
			envelope_sse(e, id, (size_t)il);
		if ((f = e->sse[1])) frame_ref(f);
	}
	/* A position past what a token holds: the event goes without id. */
	return f ? f : frame_ref(body);
}

/* A gate releases a held record: an SSE stream's event gets its id now. */
static void release_held(struct client *c, struct frame *f, const void *topic, int32_t partition, int64_t offset)
{
	if (c->sse && c->interval_ms) {
		c->sse_moved = 1;     /* as in sse_event_for */
	} else if (c->sse) {
		struct frame *own = sse_own(c, f, topic, partition, offset);
		if (own) {            /* else without id, like sse_event_for */
			frame_unref(f);
			f = own;
		}
	}
	client_send(c, f);
}

void hub_sse_position(struct client *c, int heartbeat)
{
	char id[SSE_TOKEN_MAX + 1];
	static const char hb[] = ": keep-alive\n";
	ssize_t il = sse_token(c, NULL, NULL, 0, 0, id, sizeof(id));
	if (il < 0 && !heartbeat) return;
	client_send(c, id_frame(hb, heartbeat ? sizeof(hb) - 1 : 0, il < 0 ? NULL : id, (size_t)(il < 0 ? 0 : il), "\n", 1,
				FRAME_CONTROL));
}

/* Hands the record's shared frame to s's client: through its resume gate
 * when it resumes, through conflation when it asked for an interval. */
static void deliver(struct envelope *e, const struct topic *t, const struct sub *s)
{
	struct client *c = s->c;
	if (c->stamp == H.stamp) return;   /* several of its subscriptions matched */
	c->stamp = H.stamp;
	/* An SSE stream's gate holds the event without id (release_held). */
	struct frame *f = c->sse ? envelope_sse(e, NULL, 0) : envelope_frame_for(e, c->msgpack, c->zbits);
	if (!f) return;
	if (c->rs && !history_gate(c, t, e->r->partition, e->r->offset, f)) return;
	if (!(f = c->sse ? sse_event_for(c, e, t) : frame_ref(f))) return;
	uint32_t interval = s->interval_ms ? s->interval_ms : c->interval_ms;
	if (interval)
		conflate_offer(c, t->ch, e->r->key, e->r->key ? e->r->key_len : 0, f, interval,
			       (struct conflate_at){ t->name, e->r->partition, e->r->offset });
	else client_send(c, f);
}

int hub_route(const struct record *r)
{
	struct topic *t = topic_get(r->topic);
	metrics_add(M_RECORDS_IN, 1);
	if (!t) return 0;
	metrics_topic_add(t->counter, 1);
	if (!t->ch) return 0;
	struct channel *ch = t->ch;
	struct envelope e;
	envelope_init(&e, r, t->type, ch->name, ++ch->seq);
	/* Validating the value as JSON is paid only where it is needed. */
	state_record(&ch->st, r, state_wants_json(&ch->st) && r->value && envelope_is_json(&e));
	if (r->key && lvc_enabled())
		lvc_update(&ch->lvc, r->key, r->key_len, r->value, r->value_len, r->value && envelope_is_json(&e));
	history_append(r, e.seq);
	if (ch->nsubs == 0 && H.all.n == 0) {
		envelope_done(&e);
		return 1;
	}
	/* A new stamp per record: deliver() sends once per client however
	 * many of its subscriptions match. */
	H.stamp++;
	ssesets_begin();
	for (uint32_t i = 0; i < ch->any.n; i++) {
		struct sub *s = ch->any.v[i];
		if (filter_match(s, &e, 0)) deliver(&e, t, s);
	}
	if (r->key && ch->keys.count) {
		struct sublist *l = map_get(&ch->keys, r->key, r->key_len);
		for (uint32_t i = 0; l && i < l->n; i++)
			if (filter_match(l->v[i], &e, 0)) deliver(&e, t, l->v[i]);
	}
	for (uint32_t i = 0; i < H.all.n; i++)
		if (filter_match(H.all.v[i], &e, 1)) deliver(&e, t, H.all.v[i]);
	ssesets_end();
	if ((e.frame[0] || e.frame[1] || e.sse[0]) && r->timestamp_ms >= 0)
		metrics_observe_latency((double)(wall_ms() - r->timestamp_ms) / 1000.0);
	envelope_finish(&e);
	return 1;
}

void hub_snapshot_json(struct jbuf *b, const struct channel *ch, const char *id, size_t id_len,
		       const struct filter *only)
{
	lvc_snapshot_json(b, &ch->lvc, ch->name, ch->seq, id, id_len, only);
}

/* ---- resume ---------------------------------------------------------------- */

struct replay_ctx {
	struct client *c;
	struct topic *t;
};

/* One replayed record (from the history or from Kafka) to one client: sent
 * once if one of its subscriptions wants it, never twice (the gate). */
static void replay_one(void *arg, const struct record *r, uint64_t seq)
{
	const struct replay_ctx *x = arg;
	struct client *c = x->c;
	if (!x->t->ch || !history_gate_take(c, x->t, r->partition, r->offset)) return;
	struct envelope e;
	envelope_init(&e, r, x->t->type, x->t->ch->name, seq);
	for (const struct sub *s = c->subs; s; s = s->cnext) {
		if (s->ch && s->ch != x->t->ch) continue;
		if (!filter_match(s, &e, 1)) continue;
		struct frame *f = c->sse ? sse_event_for(c, &e, x->t) : envelope_frame_for(&e, c->msgpack, c->zbits);
		client_send(c, c->sse || !f ? f : frame_ref(f));
		break;
	}
	envelope_finish(&e);
	history_gate_settle(c, x->t, r->partition);
}

int hub_resume_hold(struct client *c, const char *topic, int32_t partition, int64_t last)
{
	struct topic *t = topic_get(topic);
	if (!t || !t->ch || history_gate_open(c, t, partition, last) < 0) return -1;
	history_gate_hold(c, t, partition);
	return 0;
}

/* A record replayed from the history, while c's queue has room: 1 stops
 * the replay there. */
static int replay_hist(void *arg, const struct record *r, uint64_t seq)
{
	const struct replay_ctx *x = arg;
	/* What the kernel takes now makes room, as client_send would. */
	if (!client_has_room(x->c) && (client_write(x->c) < 0 || !client_has_room(x->c))) return 1;
	replay_one(arg, r, seq);
	return 0;
}

int hub_resume(struct client *c, const char *topic, int32_t partition, int64_t last, int64_t *from)
{
	struct topic *t = topic_get(topic);
	if (!t || !t->ch) return -1;
	if (history_gate_open(c, t, partition, last) < 0) return -1;
	*from = last;
	/* The history covers it: replay now, in this turn; live records that
	 * follow have higher offsets. What does not fit c's queue is left to
	 * a replay from Kafka, which goes at the pace c reads. */
	if (history_covers(topic, partition, last)) {
		struct replay_ctx x = { c, t };
		if (!history_replay(topic, partition, last, replay_hist, &x)) {
			history_gate_release(c, t, partition);   /* held by hub_resume_hold */
			return 0;
		}
		*from = history_gate_last(c, t, partition);
	}
	history_gate_hold(c, t, partition);   /* until Kafka's replay catches up */
	return 1;
}

void hub_replay_record(struct client *c, const struct record *r)
{
	struct replay_ctx x = { c, topic_get(r->topic) };
	if (x.t) replay_one(&x, r, 0);
}

void hub_replay_done(struct client *c, const char *topic, int32_t partition)
{
	struct topic *t = map_get(&H.topics, topic, strlen(topic));
	if (t) history_gate_release(c, t, partition);
}

/* ---- introspection ------------------------------------------------------- */

size_t hub_routes(const struct route **out)
{
	*out = H.routes;
	return H.nroutes;
}

int hub_channel_next(size_t *i, const char **name, uint32_t *subs, uint64_t *seq)
{
	struct map_slot *s;
	if (!map_next(&H.channels, i, &s)) return 0;
	const struct channel *ch = s->val;
	*name = ch->name;
	*subs = ch->nsubs + H.all.n;    /* channel-less (action dialect) ones cover every channel */
	*seq = ch->seq;
	return 1;
}
