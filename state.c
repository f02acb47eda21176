/* state.c - the state dialect (state.h): per-channel state, groups of
 * clients that see the same thing, per-period views, ticks, and the
 * snapshot and update messages in both formats. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "filter.h"
#include "frame.h"
#include "hub.h"
#include "json.h"
#include "map.h"
#include "metrics.h"
#include "msgpack.h"
#include "pmd.h"
#include "statediff.h"
#include "stateview.h"

#define PERIOD_MIN_MS 10   /* interval=0 (or less) in this dialect: as often as this */

/* One client of the dialect (c->sc). */
struct state_client {
	struct group *g;
	uint32_t pos;              /* index in g->m */
	uint64_t seq;              /* snapshot and update messages sent */
	uint8_t fresh;             /* a snapshot since the period's last tick: next changes go whole per key */
	uint8_t resync;            /* an update could not be queued: a snapshot once the queue is empty */
};

struct period {
	uint32_t ms;
	int64_t due;
	uint64_t tick;
	struct group *groups;
	struct period *next;
};

/* Clients with one period, one format and one set of subscriptions. */
struct group {
	struct period *p;
	char *sig;
	size_t siglen;
	int msgpack;
	int dotted;                /* a channel name holds '.': no path can name it, changes go as snapshots */
	struct client **m;
	uint32_t n, cap;
	struct state_chan **chans; /* its distinct channels, in subscription order */
	uint32_t nchans;
	struct group *next;        /* in its period */
};

static struct {
	struct { char *name; uint8_t shape; } *shapes;
	size_t nshapes;
	struct period *periods;
	struct map groups;         /* signature -> struct group * */
	uint32_t clients, ngroups;
	uint64_t updates;
} S;

/* ---- configuration and channel state ---------------------------------------- */

int state_configure(const struct config *cfg, char *err, size_t errlen)
{
	static const char *const words[] = { [SHAPE_MAP] = "map", [SHAPE_VALUE] = "value", [SHAPE_LIST] = "list" };
	if (!cfg->nstate_shapes) return 0;
	if (!(S.shapes = calloc(cfg->nstate_shapes, sizeof(*S.shapes)))) goto oom;
	for (size_t i = 0; i < cfg->nstate_shapes; i++) {
		const char *item = cfg->state_shapes[i], *eq = strrchr(item, '=');
		int shape = SHAPE_NONE;
		for (int k = SHAPE_MAP; eq && k <= SHAPE_LIST; k++)
			if (strcmp(eq + 1, words[k]) == 0) shape = k;
		if (!eq || eq == item || shape == SHAPE_NONE) {
			snprintf(err, errlen, "--state-shape: '%.100s' is not CHANNEL=map|value|list", item);
			return -1;
		}
		if (!(S.shapes[i].name = strndup(item, (size_t)(eq - item)))) goto oom;
		S.shapes[i].shape = (uint8_t)shape;
		S.nshapes++;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int state_shape_of(const char *channel)
{
	int shape = SHAPE_NONE;
	for (size_t i = 0; i < S.nshapes; i++)             /* the last one named wins */
		if (strcmp(S.shapes[i].name, channel) == 0) shape = S.shapes[i].shape;
	return shape;
}

void state_chan_init(struct state_chan *s, const char *name, struct lvc *lvc)
{
	*s = (struct state_chan){ .name = name, .lvc = lvc, .shape = (uint8_t)state_shape_of(name) };
}

void state_chan_free(struct state_chan *s)
{
	lv_value_unref(s->value);
	free(s->vkey);
	memset(s, 0, sizeof(*s));
}

int state_wants_json(const struct state_chan *s)
{
	return s->shape == SHAPE_NONE || s->shape == SHAPE_VALUE;
}

void state_record(struct state_chan *s, const struct record *r, int is_json)
{
	s->ver++;
	/* Before the cache takes it: the key a tombstone deletes, or the one
	 * a new key evicts, is noted for clients whose snapshot holds it. */
	if (s->views && r->key && s->shape != SHAPE_VALUE) {
		const struct lv *gone = r->value ? lvc_victim(s->lvc, r->key, r->key_len) : lvc_get(s->lvc, r->key, r->key_len);
		size_t gl;
		const char *gk = gone ? lv_key(gone, &gl) : NULL;
		if (gk) view_note_removed(s, gk, gl);
	}
	/* The first record decides, unless --state-shape did: a record without
	 * a key makes the channel one value, keyed ones a map. */
	if (s->shape == SHAPE_NONE) s->shape = r->key ? SHAPE_MAP : SHAPE_VALUE;
	if (s->shape != SHAPE_VALUE) return;       /* map and list live in the last-value cache */
	struct lv_value *v = r->value ? lv_value_new(r->value, r->value_len, is_json) : NULL;
	char *k = r->key ? malloc(r->key_len ? r->key_len : 1) : NULL;
	if ((r->value && !v) || (r->key && !k)) {  /* out of memory: the old value stays */
		lv_value_unref(v);
		free(k);
		return;
	}
	if (k) memcpy(k, r->key, r->key_len);
	lv_value_unref(s->value);
	free(s->vkey);
	s->value = v;
	s->vkey = k;
	s->vkey_len = r->key ? r->key_len : 0;
}

/* ---- what a group sees ------------------------------------------------------ */

/* Whether a value (with its record key) passes one of m0's subscriptions
 * on channel s. */
static int visible(const struct client *m0, const struct state_chan *s, const char *key, size_t klen,
		   const struct lv_value *v)
{
	for (const struct sub *u = m0->subs; u; u = u->cnext)
		if (u->st == s && filter_key_ok(&u->f, key, klen) &&
		    filter_fields_ok(&u->f, v ? v->bytes : NULL, v ? v->len : 0, v && v->kind == LV_JSON))
			return 1;
	return 0;
}

/* Whether one of m0's subscriptions on s lets key through whatever the
 * value (its key filter): what a late client may hold. */
static int key_possible(const struct client *m0, const struct state_chan *s, const char *key, size_t klen)
{
	for (const struct sub *u = m0->subs; u; u = u->cnext)
		if (u->st == s && filter_key_ok(&u->f, key, klen)) return 1;
	return 0;
}

static int by_born(const void *a, const void *b)
{
	uint64_t x = lv_born(*(const struct lv *const *)a), y = lv_born(*(const struct lv *const *)b);
	return x < y ? -1 : x > y;
}

/* Whether two cached values are the same to a client. */
static int same_value(const struct lv_value *a, const struct lv_value *b)
{
	if (!a || !b || a->kind != b->kind) return a == b;
	if (a->kind == LV_JSON) return statediff_equal((const char *)a->bytes, a->len, (const char *)b->bytes, b->len);
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* The channel's whole state as m0's subscriptions see it. */
static void put_state(struct jbuf *b, const struct client *m0, const struct state_chan *s)
{
	if (s->shape == SHAPE_NONE) {              /* nothing routed yet: any shape may follow */
		json_null(b);
		return;
	}
	if (s->shape == SHAPE_VALUE) {
		lv_value_json(b, s->value && visible(m0, s, s->vkey, s->vkey_len, s->value) ? s->value : NULL);
		return;
	}
	size_t klen;
	if (s->shape == SHAPE_LIST) {
		/* The newest value of each key, keys in order of first appearance. */
		const struct lv **v = malloc((s->lvc->n ? s->lvc->n : 1) * sizeof(*v));
		uint32_t n = 0;
		if (!v) { b->failed = 1; return; }
		for (const struct lv *e = lvc_first(s->lvc); e; e = lv_next(e)) {
			const char *key = lv_key(e, &klen);
			if (visible(m0, s, key, klen, lv_val(e))) v[n++] = e;
		}
		qsort(v, n, sizeof(*v), by_born);
		json_arr_begin(b);
		for (uint32_t i = 0; i < n; i++) lv_value_json(b, lv_val(v[i]));
		json_arr_end(b);
		free(v);
		return;
	}
	struct jbuf tmp;
	json_init(&tmp);
	json_obj_begin(b);
	for (const struct lv *e = lvc_first(s->lvc); e; e = lv_next(e)) {
		const char *key = lv_key(e, &klen);
		if (!visible(m0, s, key, klen, lv_val(e))) continue;
		size_t tl;
		const char *t = lv_key_text(&tmp, key, klen, &tl);
		if (!t) { b->failed = 1; break; }
		json_keyn(b, t, tl);
		lv_value_json(b, lv_val(e));
	}
	json_obj_end(b);
	json_free(&tmp);
}

/* ---- messages ----------------------------------------------------------------- */

/* The head of a message, up to and with "seq": {"type":T,"seq":N[,"id":ID],
 * in JSON with the comma after it, in MessagePack as a map of all its
 * members (the tail's two included). 0, or -1 when out of memory. */
static int put_head(struct jbuf *b, int msgpack, const char *type, uint64_t seq, const char *id, size_t id_len)
{
	if (msgpack) {
		mp_put_map(b, id ? 5 : 4);
		mp_put_str(b, "type", 4);
		mp_put_str(b, type, strlen(type));
		mp_put_str(b, "seq", 3);
		mp_put_uint(b, seq);
		if (id) {
			mp_put_str(b, "id", 2);
			if (mp_from_json(b, id, id_len) < 0) return -1;
		}
	} else {
		char n[64];
		snprintf(n, sizeof(n), "{\"type\":\"%s\",\"seq\":%llu,", type, (unsigned long long)seq);
		json_append(b, n, strlen(n));
		if (id) {
			json_append(b, "\"id\":", 5);
			json_append(b, id, id_len);
			json_append(b, ",", 1);
		}
	}
	return b->failed ? -1 : 0;
}

/* The tail: "timestamp" (an ISO 8601 string, or MessagePack's Timestamp
 * extension) and `key` holding the JSON text body, then the closing brace. */
static int put_tail(struct jbuf *b, int msgpack, int64_t ms, const char *key, const struct jbuf *body)
{
	if (msgpack) {
		mp_put_str(b, "timestamp", 9);
		mp_put_timestamp(b, ms);
		mp_put_str(b, key, strlen(key));
		if (mp_from_json(b, body->buf, body->len) < 0) return -1;
	} else {
		char ts[CLOCK_ISO8601_LEN];
		clock_iso8601(ts, ms);
		json_append(b, "\"timestamp\":\"", 13);
		json_append(b, ts, strlen(ts));
		json_append(b, "\",\"", 3);
		json_append(b, key, strlen(key));
		json_append(b, "\":", 2);
		json_append(b, body->buf, body->len);
		json_append(b, "}", 1);
	}
	return b->failed ? -1 : 0;
}

/* {"type":"snapshot","seq":N,"timestamp":...,"data":{channel: state,...}}
 * of every channel c subscribes to; past the queue limits (a snapshot is
 * never dropped). */
static void send_snapshot(struct client *c, const char *id, size_t id_len)
{
	struct state_client *sc = c->sc;
	const struct group *g = sc->g;
	struct jbuf data, msg;
	json_init(&data);
	json_init(&msg);
	json_obj_begin(&data);
	for (uint32_t i = 0; g && i < g->nchans; i++) {
		json_key(&data, g->chans[i]->name);
		put_state(&data, c, g->chans[i]);
	}
	json_obj_end(&data);
	if (!data.failed && put_head(&msg, c->msgpack, "snapshot", sc->seq + 1, id, id_len) == 0 &&
	    put_tail(&msg, c->msgpack, wall_ms(), "data", &data) == 0) {
		struct frame *f = frame_for(frame_ws(c->msgpack ? WS_OP_BINARY : WS_OP_TEXT, msg.buf, msg.len,
						     FRAME_CONTROL), c->zbits);
		if (f) {
			sc->seq++;
			sc->resync = 0;
			metrics_add(M_MESSAGES_OUT, 1);   /* counted when queued: never dropped */
			client_send_always(c, f);
		}
	}
	json_free(&data);
	json_free(&msg);
}

/* ---- groups ------------------------------------------------------------------ */

/* Whether the client subscription u is on a channel already listed. */
static int listed(struct state_chan *const *v, uint32_t n, const struct state_chan *s)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i] == s) return 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A client's identity for sharing: period, format and its subscriptions
 * (channel and the filter in force, which a token may have narrowed),
 * sorted so the order they came in does not count. */
static char *signature(const struct client *c, size_t *len)
{
	uint32_t n = 0;
	for (const struct sub *u = c->subs; u; u = u->cnext) n += u->st != NULL;
	char **items = calloc(n ? n : 1, sizeof(*items));
	struct jbuf b;
	json_init(&b);
	if (!items) return NULL;
	n = 0;
	struct jbuf f;
	json_init(&f);
	for (const struct sub *u = c->subs; u; u = u->cnext) {
		if (!u->st) continue;
		/* The filter as applied, not as asked: two clients asking the
		 * same under different tokens may see different state. */
		json_reset(&f);
		json_append(&f, u->spec, u->spec_len);
		json_append(&f, "\x1f", 1);
		filter_text(&u->f, &f);
		size_t nl = strlen(u->st->name);
		if (f.failed || !(items[n] = malloc(nl + f.len + 2))) break;
		memcpy(items[n], u->st->name, nl);
		items[n][nl] = '\x1f';
		memcpy(items[n] + nl + 1, f.buf, f.len);
		items[n][nl + 1 + f.len] = '\0';
		n++;
	}
	json_free(&f);
	qsort(items, n, sizeof(*items), cmp_str);
	char head[48];
	snprintf(head, sizeof(head), "%u|%d", (unsigned)c->interval_ms, (int)c->msgpack);
	json_append(&b, head, strlen(head));
	for (uint32_t i = 0; i < n; i++) {
		json_append(&b, "\x1e", 1);
		json_append(&b, items[i], strlen(items[i]));
		free(items[i]);
	}
	free(items);
	if (b.failed) { json_free(&b); return NULL; }
	*len = b.len;
	return b.buf;
}

static struct period *period_get(uint32_t ms)
{
	struct period *p;
	for (p = S.periods; p && p->ms != ms; p = p->next) {}
	if (p || !(p = calloc(1, sizeof(*p)))) return p;
	int64_t now = clock_now();
	*p = (struct period){ .ms = ms, .due = (now / ms + 1) * ms, .next = S.periods };
	S.periods = p;
	return p;
}

static void group_free(struct group *g)
{
	for (uint32_t i = 0; i < g->nchans; i++) view_release(g->chans[i], g->p->ms);
	struct period *p = g->p;
	for (struct group **pp = &p->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) { *pp = g->next; break; }
	if (!p->groups) {
		for (struct period **pp = &S.periods; *pp; pp = &(*pp)->next)
			if (*pp == p) { *pp = p->next; break; }
		free(p);
	}
	map_del(&S.groups, g->sig, g->siglen);
	free(g->chans);
	free(g->m);
	free(g->sig);
	free(g);
	S.ngroups--;
}

/* The group of signature sig (moved in), made from c's subscriptions when
 * new. NULL when out of memory. */
static struct group *group_get(struct client *c, char *sig, size_t siglen)
{
	struct group *g = map_get(&S.groups, sig, siglen);
	if (g) { free(sig); return g; }
	uint32_t ms = c->interval_ms < PERIOD_MIN_MS ? PERIOD_MIN_MS : c->interval_ms;
	struct period *p = period_get(ms);
	if (!p || !(g = calloc(1, sizeof(*g)))) { free(sig); return NULL; }
	g->p = p;
	g->sig = sig;
	g->siglen = siglen;
	g->msgpack = c->msgpack;
	uint32_t n = 0;
	for (const struct sub *u = c->subs; u; u = u->cnext) n += u->st != NULL;
	g->chans = calloc(n ? n : 1, sizeof(*g->chans));
	for (const struct sub *u = c->subs; g->chans && u; u = u->cnext) {
		if (!u->st || listed(g->chans, g->nchans, u->st)) continue;
		if (!view_hold(u->st, ms)) break;
		g->chans[g->nchans++] = u->st;
		g->dotted |= strchr(u->st->name, '.') != NULL;
	}
	g->next = p->groups;
	p->groups = g;
	S.ngroups++;
	if (!g->chans || map_put(&S.groups, sig, siglen, g) < 0) {
		group_free(g);
		return NULL;
	}
	return g;
}

static void leave(struct client *c)
{
	struct state_client *sc = c->sc;
	struct group *g = sc->g;
	if (!g) return;
	g->m[sc->pos] = g->m[--g->n];
	if (sc->pos < g->n) g->m[sc->pos]->sc->pos = sc->pos;
	sc->g = NULL;
	if (!g->n) group_free(g);
}

static int join(struct client *c, struct group *g)
{
	if (g->n == g->cap) {
		uint32_t ncap = g->cap ? g->cap * 2 : 4;
		struct client **nm = realloc(g->m, ncap * sizeof(*nm));
		if (!nm) return -1;
		g->m = nm;
		g->cap = ncap;
	}
	c->sc->pos = g->n;
	g->m[g->n++] = c;
	c->sc->g = g;
	return 0;
}

void state_client_changed(struct client *c, const char *id, size_t id_len)
{
	if (!c->sc) {
		if (!(c->sc = calloc(1, sizeof(*c->sc)))) return;
		S.clients++;
	}
	struct state_client *sc = c->sc;
	size_t siglen;
	char *sig = signature(c, &siglen);
	if (!sig) return;
	if (sc->g && sc->g->siglen == siglen && memcmp(sc->g->sig, sig, siglen) == 0) {
		free(sig);                     /* the same set: nothing to send */
		return;
	}
	leave(c);
	struct group *g = group_get(c, sig, siglen);
	if (g && join(c, g) < 0 && !g->n) group_free(g);
	/* Its state as of now: changes of the period so far go whole per key
	 * at the next tick (it may have some of them already, never fewer). */
	sc->fresh = 1;
	send_snapshot(c, id, id_len);
}

void state_client_snapshot(struct client *c, const char *id, size_t id_len)
{
	if (!c->sc) {
		state_client_changed(c, id, id_len);
		return;
	}
	c->sc->fresh = 1;
	send_snapshot(c, id, id_len);
}

void state_client_gone(struct client *c)
{
	if (!c->sc) return;
	leave(c);
	free(c->sc);
	c->sc = NULL;
	S.clients--;
}

/* ---- ticks -------------------------------------------------------------------- */

/* path = "channel.key" (the key's name as in the state; tmp is scratch).
 * 0, or -1 when out of memory. */
static int key_path(struct jbuf *path, struct jbuf *tmp, const char *channel, const char *key, size_t klen)
{
	size_t tl;
	const char *t = lv_key_text(tmp, key, klen, &tl);
	if (!t) return -1;
	json_reset(path);
	json_append(path, channel, strlen(channel));
	json_append(path, ".", 1);
	json_append(path, t, tl);
	return path->failed ? -1 : 0;
}

/* The group's changes since the period's last tick as JSON ({} when none):
 * field by field, or (whole) each changed key's value whole. */
static size_t build_changes(struct jbuf *b, const struct group *g, int whole)
{
	const struct client *m0 = g->m[0];
	struct jbuf path, tmp, ov, nv;
	size_t n = 0;
	json_init(&path);
	json_init(&tmp);
	json_init(&ov);
	json_init(&nv);
	json_obj_begin(b);
	for (uint32_t i = 0; i < g->nchans; i++) {
		const struct state_chan *s = g->chans[i];
		const struct state_view *v = view_find(s, g->p->ms);
		const char *name = s->name;
		int all = v->shape_changed;
		/* A client whose snapshot came after the last tick (whole) may
		 * hold what the view never saw: anything touched since is sent,
		 * null when it does not see it now. */
		if (!all && s->shape == SHAPE_VALUE) {
			if (!v->value_changed && !(whole && v->ver != s->ver)) continue;
			const struct lv_value *o = v->value && visible(m0, s, v->vkey, v->vkey_len, v->value) ? v->value : NULL;
			const struct lv_value *w = s->value && visible(m0, s, s->vkey, s->vkey_len, s->value) ? s->value : NULL;
			if (!o && !w && !whole) continue;
			if (whole || !o || !w) {
				json_key(b, name);
				lv_value_json(b, w);
				n++;
				continue;
			}
			json_reset(&ov); lv_value_json(&ov, o);
			json_reset(&nv); lv_value_json(&nv, w);
			json_reset(&path); json_append(&path, name, strlen(name));
			n += statediff(b, &path, ov.buf, ov.len, nv.buf, nv.len);
			continue;
		}
		/* map and list: the keys that changed and that the group sees
		 * (before or after); a list, or a key no path can name, sends
		 * the channel whole. */
		uint32_t seen = 0;
		for (uint32_t k = 0; !all && k < v->nchg; k++) {
			const struct state_change *c = &v->chg[k];
			int vo = c->old && visible(m0, s, c->key, c->klen, c->old);
			int vn = c->nw && visible(m0, s, c->key, c->klen, c->nw);
			if (!vo && !vn && !(whole && key_possible(m0, s, c->key, c->klen))) continue;
			seen++;
			all = memchr(c->key, '.', c->klen) != NULL ||
			      (s->shape == SHAPE_LIST && (whole || !vo || !vn || !same_value(c->old, c->nw)));
		}
		/* A client whose snapshot came after the last tick may hold keys
		 * created and deleted since: a list goes whole, a map names them. */
		if (whole && s->shape == SHAPE_LIST && v->removed.count) all = 1;
		if (all) {
			json_key(b, name);
			put_state(b, m0, s);
			n++;
			continue;
		}
		if (s->shape == SHAPE_LIST) continue;     /* every change the same value again */
		for (uint32_t k = 0; seen && k < v->nchg; k++) {
			const struct state_change *c = &v->chg[k];
			int vo = c->old && visible(m0, s, c->key, c->klen, c->old);
			int vn = c->nw && visible(m0, s, c->key, c->klen, c->nw);
			if (!vo && !vn && !(whole && key_possible(m0, s, c->key, c->klen))) continue;
			if (key_path(&path, &tmp, name, c->key, c->klen) < 0) { b->failed = 1; break; }
			if (whole || !vo || !vn) {
				json_keyn(b, path.buf, path.len);
				lv_value_json(b, vn ? c->nw : NULL);
				n++;
				continue;
			}
			json_reset(&ov); lv_value_json(&ov, c->old);
			json_reset(&nv); lv_value_json(&nv, c->nw);
			n += statediff(b, &path, ov.buf, ov.len, nv.buf, nv.len);
		}
		size_t r = 0;
		struct map_slot *slot;
		while (whole && s->shape == SHAPE_MAP && map_next(&v->removed, &r, &slot)) {
			if (lvc_get(s->lvc, slot->key, slot->klen) || map_get(&v->keys, slot->key, slot->klen) ||
			    !key_possible(m0, s, slot->key, slot->klen))
				continue;
			if (key_path(&path, &tmp, name, slot->key, slot->klen) < 0) { b->failed = 1; break; }
			json_keyn(b, path.buf, path.len);
			json_null(b);
			n++;
		}
	}
	json_obj_end(b);
	json_free(&path);
	json_free(&tmp);
	json_free(&ov);
	json_free(&nv);
	return n;
}

/* The shared part of an update: its tail as a frame without WebSocket
 * header (the per-client head carries it). NULL: no changes, or no memory. */
static struct frame *update_body(const struct group *g, int whole, int64_t ms)
{
	struct jbuf ch, tail;
	json_init(&ch);
	json_init(&tail);
	struct frame *f = NULL;
	if (build_changes(&ch, g, whole) && !ch.failed && put_tail(&tail, g->msgpack, ms, "changes", &ch) == 0 &&
	    (f = frame_new(tail.len, FRAME_CONTROL))) {
		memcpy(f->data, tail.buf, tail.len);
		f->glued = 1;
	}
	json_free(&ch);
	json_free(&tail);
	return f;
}

/* Queues an update to c: its own head (WebSocket header and seq), then the
 * shared body by reference. With permessage-deflate (zbody: the body
 * compressed for c's window) the head goes in a DEFLATE stored block ahead
 * of it, so the body is still compressed once for every client. */
static void send_update(struct client *c, struct frame *body, struct frame *zbody, int msgpack)
{
	struct jbuf head;
	json_init(&head);
	if (put_head(&head, msgpack, "update", c->sc->seq + 1, NULL, 0) == 0) {
		if (head.len > 0xffff) zbody = NULL;   /* one stored block holds 64 KiB */
		enum ws_opcode op = msgpack ? WS_OP_BINARY : WS_OP_TEXT;
		size_t plain = head.len + body->len, total = plain, own = head.len;
		if (zbody) {
			own = PMD_STORED_OVERHEAD + head.len;
			total = own + zbody->len;
			op = (enum ws_opcode)(op | WS_RSV1);
		}
		size_t hl = ws_header_len(total);
		struct frame *f = frame_new(hl + own, FRAME_CONTROL);
		if (f) {
			ws_header_encode(f->data, op, total);
			if (zbody) {
				pmd_stored_block(f->data + hl, head.buf, head.len);
				f->saved = (uint32_t)(ws_header_len(plain) - hl);
			} else {
				memcpy(f->data + hl, head.buf, head.len);
			}
			client_queue(c, f);
			client_queue(c, frame_ref(zbody ? zbody : body));
			c->sc->seq++;
			S.updates++;
			metrics_add(M_MESSAGES_OUT, 1);
		}
	}
	json_free(&head);
}

static void tick_group(struct group *g, int64_t ms)
{
	struct frame *body[2] = { NULL, NULL };   /* [0] field by field, [1] whole per key */
	int built[2] = { 0, 0 };
	/* body[i] compressed for each window (permessage-deflate), on first need */
	struct frame *zbody[2][PMD_VARIANTS] = { { NULL } };
	unsigned char ztried[2][PMD_VARIANTS] = { { 0 } };
	for (uint32_t i = 0; i < g->n; i++) {
		struct client *c = g->m[i];
		struct state_client *sc = c->sc;
		if (c->state != CS_WS || c->close_sent) continue;
		int whole = sc->fresh;
		sc->fresh = 0;
		if (sc->resync) {
			/* It missed an update: its state whole, once it has caught up. */
			if (c->q.count == 0) send_snapshot(c, NULL, 0);
			continue;
		}
		if (!built[whole]) {
			body[whole] = update_body(g, whole, ms);
			built[whole] = 1;
		}
		struct frame *f = body[whole];
		if (!f) continue;
		if (g->dotted || client_would_wait(c, f->len)) {
			/* A channel no path can name, or a client that is behind:
			 * a snapshot instead, now or when it has caught up. */
			sc->resync = 1;
			if (c->q.count == 0) send_snapshot(c, NULL, 0);
			continue;
		}
		struct frame *z = NULL;
		if (c->zbits) {
			unsigned w = pmd_window(c->zbits, f->len), k = w - PMD_MIN_BITS;
			if (!ztried[whole][k]) {
				zbody[whole][k] = frame_deflate_body(f, w);
				ztried[whole][k] = 1;
			}
			z = zbody[whole][k];
		}
		send_update(c, f, z, g->msgpack);
	}
	frame_unref(body[0]);
	frame_unref(body[1]);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < PMD_VARIANTS; k++) frame_unref(zbody[i][k]);
}

static void tick(struct period *p)
{
	p->tick++;
	int64_t ms = wall_ms();
	for (struct group *g = p->groups; g; g = g->next)
		for (uint32_t i = 0; i < g->nchans; i++) view_prepare(view_find(g->chans[i], p->ms), g->chans[i], p->tick);
	for (struct group *g = p->groups; g; g = g->next) tick_group(g, ms);
	for (struct group *g = p->groups; g; g = g->next)
		for (uint32_t i = 0; i < g->nchans; i++) view_apply(view_find(g->chans[i], p->ms), g->chans[i]);
}

int state_timeout_ms(int64_t now)
{
	int64_t due = -1;
	for (const struct period *p = S.periods; p; p = p->next)
		if (due < 0 || p->due < due) due = p->due;
	if (due < 0) return -1;
	return due <= now ? 0 : (int)(due - now);
}

void state_service(int64_t now)
{
	for (struct period *p = S.periods; p; p = p->next) {
		if (p->due > now) continue;
		/* A period from when this tick is stamped (the turn may have
		 * begun a while ago), not the next slot of a fixed grid: a tick
		 * that ran late (a busy loop, a descheduled process) would
		 * otherwise be followed by one less than a period after it. */
		p->due = mono_ms() + p->ms;
		tick(p);
	}
}

void state_counts(uint32_t *clients, uint32_t *groups, uint64_t *updates)
{
	*clients = S.clients;
	*groups = S.ngroups;
	*updates = S.updates;
}
