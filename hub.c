/* hub.c - routes, channels, subscriptions and fan-out.
 * A record finds its topic's route (cached per topic name), takes the next
 * seq of its channel and is encoded at most once into a shared frame that
 * every matching subscriber's queue references. Subscriptions with key
 * lists are indexed by key, so keyed fan-out touches only the subscribers of
 * that key; the rest of a channel's subscribers sit in one flat array. */
#include "hub.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "clock.h"
#include "conflate.h"
#include "endpoints.h"
#include "json.h"
#include "log.h"
#include "map.h"
#include "msgpack.h"
#include "server.h"
#include "utf8.h"
#include "ws.h"

struct route {
	char *topic;              /* literal topic or regex source */
	regex_t re;
	int is_regex;
	char *channel;            /* NULL: the topic's own name */
	char *type;               /* NULL: the topic's own name */
};

struct sublist {
	struct sub **v;
	uint32_t n, cap;
};

/* Last-value cache entry: the newest value of one key of a channel, in a
 * list from least to most recently updated (the eviction order). */
enum lv_kind { LV_JSON, LV_TEXT, LV_BINARY };
struct lv {
	struct lv *prev, *next;
	char *key;                /* raw key bytes (a copy) */
	size_t key_len;
	unsigned char *val;       /* raw value bytes (a copy) */
	size_t val_len;
	uint8_t kind;             /* enum lv_kind: how "data" renders it (§4) */
};

struct channel {
	char *name;
	uint64_t seq;             /* last seq routed (§4: starts at 1) */
	struct map lvc;           /* key -> struct lv *: the last-value cache */
	struct lv *lv_old, *lv_new;
	uint32_t nlv;
	struct sublist any;       /* subscriptions without a key list */
	struct map keys;          /* key -> struct sublist * */
	uint32_t nsubs;
	int fed;                  /* some topic routes here: keep it forever */
	int fixed;                /* named by a route: keep it forever */
};

struct topic {
	struct channel *ch;       /* NULL: no route */
	char *type;
	char *name;
	uint64_t records;
};

/* History for resume: every routed record, newest last, in one FIFO across
 * partitions (eviction order) and one list per partition (offset order). */
struct hist {
	struct hist *gnext, *pnext;
	struct hpart *part;
	int64_t offset, ts;
	uint64_t seq;
	uint32_t key_len, val_len, hdr_len;
	uint8_t key_null, val_null, nheaders;
	unsigned char data[];     /* key bytes, value bytes, then headers (hdr_put) */
};

struct hpart {
	struct topic *t;
	int32_t partition;
	struct hist *first, *last;
	int64_t covered_from;     /* every record routed from this offset on is here */
};

static struct {
	struct route *routes;
	size_t nroutes;
	struct hub_route_info *info;
	struct map channels;      /* name -> struct channel * */
	struct map topics;        /* name -> struct topic * */
	struct sublist all;       /* every-channel subscriptions (action dialect) */
	uint64_t stamp;           /* per-record mark: one delivery per client */
	uint64_t records_in;
	uint32_t snapshot_keys;
	int headers;
	struct hist *hist_old, *hist_new;
	size_t hist_bytes, hist_max;
	struct map hparts;        /* "topic:partition" -> struct hpart * */
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
 * list tracks positions. */
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

static int valid_topic_name(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 249) return 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static struct channel *channel_new(const char *name, size_t len)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	if (!ch || !(ch->name = strndup(name, len)) || map_put(&H.channels, name, len, ch) < 0) {
		if (ch) free(ch->name);
		free(ch);
		return NULL;
	}
	return ch;
}

static void lv_unlink(struct channel *ch, struct lv *e)
{
	if (e->prev) e->prev->next = e->next; else ch->lv_old = e->next;
	if (e->next) e->next->prev = e->prev; else ch->lv_new = e->prev;
	e->prev = e->next = NULL;
}

static void lv_free(struct lv *e)
{
	free(e->key);
	free(e->val);
	free(e);
}

static void lv_remove(struct channel *ch, struct lv *e)
{
	lv_unlink(ch, e);
	map_del(&ch->lvc, e->key, e->key_len);
	ch->nlv--;
	lv_free(e);
}

static void channel_free(struct channel *ch)
{
	size_t i = 0;
	struct map_slot *s;
	while (ch->lv_old) lv_remove(ch, ch->lv_old);
	map_free(&ch->lvc);
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

int hub_init(const struct config *cfg, char *err, size_t errlen)
{
	H.headers = cfg->headers;
	H.snapshot_keys = (uint32_t)cfg->snapshot_keys;
	H.hist_max = cfg->history;
	H.routes = calloc(cfg->ntopics + 1, sizeof(*H.routes));
	H.info = calloc(cfg->ntopics + 1, sizeof(*H.info));
	if (!H.routes || !H.info) { snprintf(err, errlen, "out of memory"); return -1; }

	for (size_t i = 0; i < cfg->ntopics; i++) {
		struct route *r = &H.routes[i];
		char *spec = strdup(cfg->topics[i]);
		if (!spec) { snprintf(err, errlen, "out of memory"); return -1; }
		char *eq = strchr(spec, '=');
		if (eq) {
			*eq = '\0';
			char *colon = strchr(eq + 1, ':');
			if (colon) {
				*colon = '\0';
				if (!colon[1]) { snprintf(err, errlen, "--topic %s: empty type after ':'", cfg->topics[i]); return -1; }
				r->type = colon + 1;
			}
			if (!eq[1]) { snprintf(err, errlen, "--topic %s: empty channel after '='", cfg->topics[i]); return -1; }
			r->channel = eq + 1;
		}
		r->topic = spec;
		r->is_regex = spec[0] == '^';
		if (r->is_regex) {
			int rc = regcomp(&r->re, spec, REG_EXTENDED | REG_NOSUB);
			if (rc) {
				char why[128];
				regerror(rc, &r->re, why, sizeof(why));
				snprintf(err, errlen, "--topic %s: bad regular expression: %s", cfg->topics[i], why);
				return -1;
			}
		} else if (!valid_topic_name(spec)) {
			snprintf(err, errlen, "--topic %s: '%s' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
				 cfg->topics[i], spec);
			return -1;
		}
		/* A literal topic has one route: a second one could never apply. */
		for (size_t k = 0; !r->is_regex && k < i; k++)
			if (!H.routes[k].is_regex && strcmp(H.routes[k].topic, r->topic) == 0) {
				snprintf(err, errlen, "--topic %s: topic %s is already routed by an earlier --topic",
					 cfg->topics[i], r->topic);
				return -1;
			}
		/* Channels a route names exist from the start. */
		const char *cname = r->channel ? r->channel : (r->is_regex ? NULL : r->topic);
		if (cname) {
			struct channel *ch = map_get(&H.channels, cname, strlen(cname));
			if (!ch && !(ch = channel_new(cname, strlen(cname)))) { snprintf(err, errlen, "out of memory"); return -1; }
			ch->fixed = 1;
		}
		H.info[i] = (struct hub_route_info){ r->topic, r->channel, r->type, r->is_regex };
		H.nroutes++;
	}
	return 0;
}

static const struct route *route_for(const char *topic)
{
	for (size_t i = 0; i < H.nroutes; i++)
		if (!H.routes[i].is_regex && strcmp(H.routes[i].topic, topic) == 0) return &H.routes[i];
	for (size_t i = 0; i < H.nroutes; i++)
		if (H.routes[i].is_regex && regexec(&H.routes[i].re, topic, 0, NULL, 0) == 0) return &H.routes[i];
	return NULL;
}

static struct topic *topic_get(const char *name)
{
	size_t len = strlen(name);
	struct topic *t = map_get(&H.topics, name, len);
	if (t) return t;
	if (!(t = calloc(1, sizeof(*t)))) return NULL;
	const struct route *r = route_for(name);
	if (r) {
		const char *cname = r->channel ? r->channel : name;
		t->ch = map_get(&H.channels, cname, strlen(cname));
		if (!t->ch) t->ch = channel_new(cname, strlen(cname));
		t->type = strdup(r->type ? r->type : name);
		if (!t->ch || !t->type) { free(t->type); free(t); return NULL; }
		t->ch->fed = 1;
	}
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
	if (len == 0 || len > 249 || memchr(name, '\0', len)) return NULL;
	char buf[256];
	memcpy(buf, name, len);
	buf[len] = '\0';
	/* §10: a name a regex route without "=channel" could produce is valid
	 * before any such topic exists. */
	for (size_t i = 0; i < H.nroutes; i++)
		if (H.routes[i].is_regex && !H.routes[i].channel && valid_topic_name(buf) &&
		    regexec(&H.routes[i].re, buf, 0, NULL, 0) == 0) {
			H.gc_due = 1;   /* freed again unless a subscription keeps it */
			return channel_new(name, len);
		}
	return NULL;
}

const char *hub_channel_name(const struct channel *ch)
{
	return ch ? ch->name : "*";
}

/* ---- subscriptions ------------------------------------------------------- */

void filter_free(struct filter *f)
{
	for (uint32_t i = 0; i < f->nkeys; i++) free(f->keys[i]);
	free(f->keys);
	for (uint32_t i = 0; i < f->nfields; i++) {
		free(f->fields[i].name);
		free(f->fields[i].value);
	}
	free(f->fields);
	free(f->type);
	memset(f, 0, sizeof(*f));
}

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
	if (!s->f.keys) {
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

static int sub_attach(struct sub *s)
{
	struct channel *ch = s->ch;
	if (!ch) {
		s->pos = H.all.n;
		return list_add(&H.all, s);
	}
	if (!s->f.keys) {
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

int hub_subscribe(struct client *c, struct channel *ch, struct filter *f, char *spec, size_t spec_len,
		  uint32_t interval_ms)
{
	struct sub **tail = &c->subs;
	for (struct sub *s = c->subs; s; s = s->cnext) {
		if (s->ch == ch && s->spec_len == spec_len && memcmp(s->spec, spec, spec_len) == 0) {
			s->interval_ms = interval_ms;   /* the same subscription, asked again */
			filter_free(f);
			free(spec);
			return 0;
		}
		tail = &s->cnext;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s) goto fail;
	s->c = c;
	s->ch = ch;
	s->spec = spec;
	s->spec_len = spec_len;
	s->interval_ms = interval_ms;
	s->f = *f;
	memset(f, 0, sizeof(*f));
	if (sub_attach(s) < 0) {
		sub_free(s);
		if (ch) channel_maybe_free(ch);
		return -1;
	}
	*tail = s;
	c->nsubs++;
	return 1;
fail:
	filter_free(f);
	free(spec);
	if (ch) channel_maybe_free(ch);
	return -1;
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

void hub_client_gone(struct client *c)
{
	hub_unsubscribe(c, NULL, 1, NULL, 0);
}

/* ---- fan-out ------------------------------------------------------------- */

/* What one record looks like, computed once and only when a filter or the
 * encoder needs it. */
struct rec_ctx {
	const struct hub_record *r;
	const struct topic *t;
	int json;                 /* -1 unknown, 0 no, 1 payload is valid JSON */
	struct jbuf text;         /* the JSON envelope, built on first delivery */
	struct frame *frame;      /* JSON frame, built on first delivery */
	struct frame *mp_frame;   /* MessagePack frame, built on first need */
	uint64_t seq;
};

static int rec_is_json(struct rec_ctx *x)
{
	if (x->json < 0)
		x->json = x->r->value && json_validate(x->r->value, x->r->value_len);
	return x->json;
}

static void iso8601(char out[32], int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* A JSON string holding base64 of p[0..n) (§4: keys, values, headers that
 * are not UTF-8). */
static void b64_value(struct jbuf *b, const void *p, size_t n)
{
	size_t el = BASE64_ENCODED_LEN(n);
	char *tmp = malloc(el + 2);
	if (!tmp) { b->failed = 1; return; }
	tmp[0] = '"';
	base64_encode(p, n, tmp + 1);
	tmp[el + 1] = '"';
	json_raw(b, tmp, el + 2);
	free(tmp);
}

/* The data envelope of §4 into b. seq 0 leaves "seq" out (a record this
 * instance never routed); data_json says the value is valid JSON. */
static void envelope(struct jbuf *b, const struct hub_record *r, const char *type,
		     const char *channel, uint64_t seq, int data_json)
{
	char ts[32];
	json_obj_begin(b);
	json_key(b, "type");    json_cstr(b, type);
	json_key(b, "channel"); json_cstr(b, channel);
	if (r->key) {
		json_key(b, "key");
		if (utf8_valid(r->key, r->key_len)) {
			json_str(b, r->key, r->key_len);
		} else {
			b64_value(b, r->key, r->key_len);
			json_key(b, "key_encoding"); json_cstr(b, "base64");
		}
	}
	if (seq) { json_key(b, "seq"); json_uint(b, seq); }
	json_key(b, "topic");     json_cstr(b, r->topic);
	json_key(b, "partition"); json_int(b, r->partition);
	json_key(b, "offset");    json_int(b, r->offset);
	if (r->timestamp_ms >= 0) {
		iso8601(ts, r->timestamp_ms);
		json_key(b, "timestamp"); json_cstr(b, ts);
	}
	if (H.headers && r->nheaders) {
		json_key(b, "headers");
		json_arr_begin(b);
		for (size_t i = 0; i < r->nheaders; i++) {
			const struct hub_header *h = &r->headers[i];
			json_arr_begin(b);
			json_cstr(b, h->name);
			if (!h->value) {
				json_null(b);
			} else if (utf8_valid(h->value, h->value_len)) {
				json_str(b, h->value, h->value_len);
			} else {
				json_obj_begin(b);
				json_key(b, "base64");
				b64_value(b, h->value, h->value_len);
				json_obj_end(b);
			}
			json_arr_end(b);
		}
		json_arr_end(b);
	}
	json_key(b, "data");
	if (!r->value) {
		json_null(b);                          /* tombstone */
	} else if (data_json) {
		json_raw(b, r->value, r->value_len);   /* verbatim */
	} else if (utf8_valid(r->value, r->value_len)) {
		json_str(b, r->value, r->value_len);
	} else {
		b64_value(b, r->value, r->value_len);
		json_key(b, "encoding"); json_cstr(b, "base64");
	}
	json_obj_end(b);
}

/* --slow-client conflate replaces queued records of the same channel and
 * key; records without a key are never conflated (hash 0). */
static void set_key_hash(struct frame *f, const struct hub_record *r, const char *channel)
{
	if (!f || !r->key) return;
	uint64_t h = map_hash(channel, strlen(channel)) ^ (map_hash(r->key, r->key_len) * 31);
	f->key_hash = h ? h : 1;
}

/* The record's frame for one format, built once per record on first need:
 * JSON text, or the same object as MessagePack. */
static struct frame *record_frame(struct rec_ctx *x, const struct channel *ch, int msgpack)
{
	struct frame **slot = msgpack ? &x->mp_frame : &x->frame;
	if (*slot) return *slot;
	if (!x->text.len) envelope(&x->text, x->r, x->t->type, ch->name, x->seq, rec_is_json(x));
	if (x->text.failed) return NULL;
	if (!msgpack) {
		*slot = frame_ws(WS_OP_TEXT, x->text.buf, x->text.len, FRAME_DATA);
	} else {
		struct jbuf mp;
		json_init(&mp);
		if (mp_from_json(&mp, x->text.buf, x->text.len) < 0) {
			/* Nested deeper than MessagePack transcoding goes: send the
			 * payload as a string rather than not at all. */
			struct jbuf flat;
			json_init(&flat);
			envelope(&flat, x->r, x->t->type, ch->name, x->seq, 0);
			json_reset(&mp);
			if (flat.failed || mp_from_json(&mp, flat.buf, flat.len) < 0) mp.failed = 1;
			json_free(&flat);
		}
		if (!mp.failed) *slot = frame_ws(WS_OP_BINARY, mp.buf, mp.len, FRAME_DATA);
		json_free(&mp);
	}
	set_key_hash(*slot, x->r, ch->name);
	return *slot;
}

static int filter_match(const struct sub *s, struct rec_ctx *x, int check_keys)
{
	const struct filter *f = &s->f;
	const struct hub_record *r = x->r;
	if (check_keys && f->keys) {
		if (!r->key) return 0;
		uint32_t i;
		for (i = 0; i < f->nkeys; i++)
			if (strlen(f->keys[i]) == r->key_len && memcmp(f->keys[i], r->key, r->key_len) == 0) break;
		if (i == f->nkeys) return 0;
	}
	if (f->type && strcmp(f->type, x->t->type) != 0) return 0;
	for (uint32_t i = 0; i < f->nfields; i++) {
		const struct field_filter *ff = &f->fields[i];
		const char *v;
		size_t vl;
		/* §10: a field filter needs a JSON object payload with that field. */
		if (!rec_is_json(x) ||
		    !json_top_field(r->value, r->value_len, ff->name, strlen(ff->name), &v, &vl))
			return 0;
		if (!ff->any && !json_value_eq(v, vl, ff->value, ff->value_len)) return 0;
	}
	return 1;
}

/* ---- history ring and resume (§4 Resume, §10) -------------------------------- */

static size_t hpart_key(char *buf, size_t cap, const char *topic, int32_t partition)
{
	int n = snprintf(buf, cap, "%s:%d", topic, (int)partition);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static struct hpart *hpart_get(struct topic *t, int32_t partition, int create)
{
	char key[300];
	size_t kl = hpart_key(key, sizeof(key), t->name, partition);
	struct hpart *hp = map_get(&H.hparts, key, kl);
	if (hp || !create) return hp;
	if (!(hp = calloc(1, sizeof(*hp)))) return NULL;
	hp->t = t;
	hp->partition = partition;
	hp->covered_from = -1;
	if (map_put(&H.hparts, key, kl, hp) < 0) { free(hp); return NULL; }
	return hp;
}

/* Headers in the history, each as: name with its NUL, a 4-byte value
 * length (UINT32_MAX: no value), the value. hdr_put(NULL, ...) measures. */
static size_t hdr_put(unsigned char *out, const struct hub_record *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nheaders && i < HUB_MAX_HEADERS; i++) {
		const struct hub_header *h = &r->headers[i];
		size_t nl = strlen(h->name) + 1;
		uint32_t vl = h->value ? (uint32_t)h->value_len : UINT32_MAX;
		if (out) {
			memcpy(out + n, h->name, nl);
			memcpy(out + n + nl, &vl, 4);
			if (h->value) memcpy(out + n + nl + 4, h->value, h->value_len);
		}
		n += nl + 4 + (h->value ? h->value_len : 0);
	}
	return n;
}

static size_t hdr_get(const struct hist *h, struct hub_header *hv)
{
	const unsigned char *p = h->data + h->key_len + h->val_len;
	for (size_t i = 0; i < h->nheaders; i++) {
		uint32_t vl;
		hv[i].name = (const char *)p;
		p += strlen(hv[i].name) + 1;
		memcpy(&vl, p, 4);
		p += 4;
		hv[i].value = vl == UINT32_MAX ? NULL : p;
		hv[i].value_len = vl == UINT32_MAX ? 0 : vl;
		if (vl != UINT32_MAX) p += vl;
	}
	return h->nheaders;
}

/* Appends a routed record to the history, evicting the oldest records of
 * any partition past --history bytes. */
static void hist_append(struct topic *t, const struct hub_record *r, uint64_t seq)
{
	if (!H.hist_max) return;
	struct hpart *hp = hpart_get(t, r->partition, 1);
	if (!hp) return;
	size_t kl = r->key ? r->key_len : 0, vl = r->value ? r->value_len : 0;
	size_t hl = H.headers ? hdr_put(NULL, r) : 0;
	size_t cost = sizeof(struct hist) + kl + vl + hl;
	if (cost > H.hist_max) { hp->covered_from = r->offset + 1; return; }
	struct hist *h = malloc(cost);
	if (!h) { hp->covered_from = r->offset + 1; return; }
	*h = (struct hist){ .part = hp, .offset = r->offset, .ts = r->timestamp_ms, .seq = seq,
			    .key_len = (uint32_t)kl, .val_len = (uint32_t)vl, .hdr_len = (uint32_t)hl,
			    .key_null = !r->key, .val_null = !r->value,
			    .nheaders = (uint8_t)(hl ? (r->nheaders < HUB_MAX_HEADERS ? r->nheaders : HUB_MAX_HEADERS) : 0) };
	if (kl) memcpy(h->data, r->key, kl);
	if (vl) memcpy(h->data + kl, r->value, vl);
	if (hl) hdr_put(h->data + kl + vl, r);
	/* A partition's history starts with the first record routed here; a
	 * record that skips ahead of what we hold (a reassignment) restarts it. */
	if (hp->covered_from < 0 || (hp->last && r->offset != hp->last->offset + 1 && r->offset <= hp->last->offset))
		hp->covered_from = r->offset;
	if (hp->last) hp->last->pnext = h; else hp->first = h;
	hp->last = h;
	if (H.hist_new) H.hist_new->gnext = h; else H.hist_old = h;
	H.hist_new = h;
	H.hist_bytes += cost;
	while (H.hist_bytes > H.hist_max && H.hist_old) {
		struct hist *o = H.hist_old;
		struct hpart *op = o->part;
		H.hist_old = o->gnext;
		if (!H.hist_old) H.hist_new = NULL;
		op->first = o->pnext;             /* the oldest of the FIFO is its partition's first */
		if (!op->first) op->last = NULL;
		op->covered_from = o->offset + 1;
		H.hist_bytes -= sizeof(struct hist) + o->key_len + o->val_len + o->hdr_len;
		free(o);
	}
}

/* The client's resume state for one partition. */
struct rpart {
	const struct topic *t;
	int32_t partition;
	int64_t next;             /* offsets below it were delivered (or skipped) */
	int active;               /* a replay from Kafka is running: hold live records */
	struct held { struct frame *f; int64_t offset; } *held;
	uint32_t nheld, cap;
};

struct resume {
	struct rpart *v;
	uint32_t n;
};

static struct rpart *rpart_find(const struct client *c, const struct topic *t, int32_t partition)
{
	if (!c->rs) return NULL;
	for (uint32_t i = 0; i < c->rs->n; i++)
		if (c->rs->v[i].t == t && c->rs->v[i].partition == partition) return &c->rs->v[i];
	return NULL;
}

/* Live delivery gate for a resumed partition: 1 = send now, 0 = not now
 * (already delivered by the replay, or held until the replay catches up). */
static int resume_gate(struct client *c, const struct topic *t, const struct hub_record *r, struct frame *f)
{
	struct rpart *rp = rpart_find(c, t, r->partition);
	if (!rp) return 1;
	if (r->offset < rp->next) return 0;            /* the replay had it */
	if (!rp->active) {
		rp->next = r->offset + 1;
		return 1;
	}
	uint32_t limit = (uint32_t)server_config()->client_queue;
	if (rp->nheld == limit) {
		/* A replay slower than the live stream: hold at most a queue's
		 * worth, dropping the oldest like a slow client would. */
		frame_unref(rp->held[0].f);
		memmove(rp->held, rp->held + 1, (rp->nheld - 1) * sizeof(*rp->held));
		rp->nheld--;
		c->dropped++;
	}
	if (rp->nheld == rp->cap) {
		uint32_t ncap = rp->cap ? rp->cap * 2 : 16;
		void *nh = realloc(rp->held, ncap * sizeof(*rp->held));
		if (!nh) return 0;
		rp->held = nh;
		rp->cap = ncap;
	}
	rp->held[rp->nheld++] = (struct held){ frame_ref(f), r->offset };
	return 0;
}

/* Ends the replay of one partition: held live records not already
 * replayed go out in order, and the client is live again. */
static void rpart_release(struct client *c, struct rpart *rp)
{
	for (uint32_t i = 0; i < rp->nheld; i++) {
		if (rp->held[i].offset >= rp->next) {
			rp->next = rp->held[i].offset + 1;
			client_send(c, rp->held[i].f);
		} else {
			frame_unref(rp->held[i].f);
		}
	}
	free(rp->held);
	rp->held = NULL;
	rp->nheld = rp->cap = 0;
	rp->active = 0;
}

/* Sends one replayed record to c if one of its subscriptions wants it. */
static void replay_one(struct client *c, struct topic *t, const struct hub_record *r, uint64_t seq)
{
	struct rpart *rp = rpart_find(c, t, r->partition);
	if (!t->ch || (rp && r->offset < rp->next)) return;
	if (rp) rp->next = r->offset + 1;
	struct rec_ctx x = { .r = r, .t = t, .json = -1, .seq = seq };
	json_init(&x.text);
	for (const struct sub *s = c->subs; s; s = s->cnext) {
		if (s->ch && s->ch != t->ch) continue;
		if (!filter_match(s, &x, 1)) continue;
		struct frame *f = record_frame(&x, t->ch, c->msgpack);
		if (f) client_send(c, frame_ref(f));
		break;
	}
	frame_unref(x.frame);
	frame_unref(x.mp_frame);
	json_free(&x.text);
	if (rp && rp->active && rp->nheld && rp->next >= rp->held[0].offset) rpart_release(c, rp);
}

int hub_resume(struct client *c, const char *topic, int32_t partition, int64_t last)
{
	struct topic *t = topic_get(topic);
	if (!t || !t->ch) return -1;
	if (!c->rs && !(c->rs = calloc(1, sizeof(*c->rs)))) return -1;
	struct rpart *rp = rpart_find(c, t, partition);
	if (!rp) {
		struct rpart *nv = realloc(c->rs->v, (c->rs->n + 1) * sizeof(*nv));
		if (!nv) return -1;
		c->rs->v = nv;
		rp = &nv[c->rs->n++];
		*rp = (struct rpart){ .t = t, .partition = partition };
	}
	rp->next = last + 1;
	struct hpart *hp = hpart_get(t, partition, 0);
	/* The history covers it: replay now, in this turn; live records that
	 * follow have higher offsets. */
	if (hp && hp->covered_from >= 0 && last + 1 >= hp->covered_from) {
		for (const struct hist *h = hp->first; h; h = h->pnext) {
			if (h->offset <= last) continue;
			struct hub_header hv[HUB_MAX_HEADERS];
			struct hub_record r = {
				.topic = t->name, .partition = partition, .offset = h->offset, .timestamp_ms = h->ts,
				.key = h->key_null ? NULL : h->data, .key_len = h->key_len,
				.value = h->val_null ? NULL : (h->val_len ? h->data + h->key_len : (const void *)""),
				.value_len = h->val_len, .headers = hv, .nheaders = hdr_get(h, hv),
			};
			replay_one(c, t, &r, h->seq);
		}
		return 0;
	}
	rp->active = 1;   /* hold live records until Kafka's replay catches up */
	return 1;
}

void hub_replay_record(struct client *c, const struct hub_record *r)
{
	struct topic *t = topic_get(r->topic);
	if (t) replay_one(c, t, r, 0);
}

void hub_replay_done(struct client *c, const char *topic, int32_t partition)
{
	struct topic *t = map_get(&H.topics, topic, strlen(topic));
	struct rpart *rp = t ? rpart_find(c, t, partition) : NULL;
	if (rp && rp->active) rpart_release(c, rp);
}

void hub_resume_gone(struct client *c)
{
	if (!c->rs) return;
	for (uint32_t i = 0; i < c->rs->n; i++) {
		for (uint32_t k = 0; k < c->rs->v[i].nheld; k++) frame_unref(c->rs->v[i].held[k].f);
		free(c->rs->v[i].held);
	}
	free(c->rs->v);
	free(c->rs);
	c->rs = NULL;
}

static void deliver(struct rec_ctx *x, const struct channel *ch, const struct sub *s)
{
	struct client *c = s->c;
	if (c->stamp == H.stamp) return;   /* several of its subscriptions matched */
	c->stamp = H.stamp;
	struct frame *f = record_frame(x, ch, c->msgpack);
	if (!f) return;
	if (c->rs && !resume_gate(c, x->t, x->r, f)) return;
	uint32_t interval = s->interval_ms ? s->interval_ms : c->interval_ms;
	if (interval) conflate_offer(c, ch, x->r->key, x->r->key ? x->r->key_len : 0, frame_ref(f), interval);
	else client_send(c, frame_ref(f));
}

/* ---- last-value cache and snapshots (§4 refresh, §10) ---------------------- */

/* Keeps the newest value of r's key, as a compacted topic would: a
 * tombstone removes the key, records without a key are not cached. Past
 * --snapshot-keys the least recently updated key is evicted. */
static void lvc_update(struct channel *ch, struct rec_ctx *x)
{
	const struct hub_record *r = x->r;
	if (!r->key || !H.snapshot_keys) return;
	struct lv *e = map_get(&ch->lvc, r->key, r->key_len);
	if (!r->value) {
		if (e) lv_remove(ch, e);
		return;
	}
	unsigned char *val = malloc(r->value_len ? r->value_len : 1);
	if (!val) return;
	if (r->value_len) memcpy(val, r->value, r->value_len);
	if (!e) {
		if (!(e = calloc(1, sizeof(*e))) || !(e->key = malloc(r->key_len ? r->key_len : 1))) {
			free(e);
			free(val);
			return;
		}
		memcpy(e->key, r->key, r->key_len);
		e->key_len = r->key_len;
		if (map_put(&ch->lvc, e->key, e->key_len, e) < 0) {
			lv_free(e);
			free(val);
			return;
		}
		ch->nlv++;
	} else {
		lv_unlink(ch, e);
		free(e->val);
	}
	e->val = val;
	e->val_len = r->value_len;
	e->kind = rec_is_json(x) ? LV_JSON : utf8_valid(r->value, r->value_len) ? LV_TEXT : LV_BINARY;
	/* Newest at the tail. */
	e->prev = ch->lv_new;
	if (ch->lv_new) ch->lv_new->next = e; else ch->lv_old = e;
	ch->lv_new = e;
	while (ch->nlv > H.snapshot_keys) lv_remove(ch, ch->lv_old);
}

/* {"type":"snapshot","channel":C,"seq":N,"data":{key: value,...}} with the
 * keys and values that are not UTF-8 listed (§10). */
void hub_snapshot_json(struct jbuf *b, const struct channel *ch, const char *id, size_t id_len)
{
	json_obj_begin(b);
	json_key(b, "type");    json_cstr(b, "snapshot");
	if (id) { json_key(b, "id"); json_raw(b, id, id_len); }
	json_key(b, "channel"); json_cstr(b, ch->name);
	json_key(b, "seq");     json_uint(b, ch->seq);
	json_key(b, "data");
	json_obj_begin(b);
	size_t b64k = 0, b64v = 0;
	char *kb = NULL;
	for (const struct lv *e = ch->lv_old; e; e = e->next) {
		if (utf8_valid(e->key, e->key_len)) {
			json_keyn(b, e->key, e->key_len);
		} else {
			size_t el = BASE64_ENCODED_LEN(e->key_len);
			char *nk = realloc(kb, el + 1);
			if (!nk) { b->failed = 1; break; }
			kb = nk;
			json_keyn(b, kb, base64_encode(e->key, e->key_len, kb));
			b64k++;
		}
		if (e->kind == LV_JSON) json_raw(b, (const char *)e->val, e->val_len);
		else if (e->kind == LV_TEXT) json_str(b, (const char *)e->val, e->val_len);
		else { b64_value(b, e->val, e->val_len); b64v++; }
	}
	json_obj_end(b);
	/* The lists name keys as they appear in "data". */
	if (b64k) {
		json_key(b, "base64_keys");
		json_arr_begin(b);
		for (const struct lv *e = ch->lv_old; e; e = e->next)
			if (!utf8_valid(e->key, e->key_len)) b64_value(b, e->key, e->key_len);
		json_arr_end(b);
	}
	if (b64v) {
		json_key(b, "base64_values");
		json_arr_begin(b);
		for (const struct lv *e = ch->lv_old; e; e = e->next) {
			if (e->kind != LV_BINARY) continue;
			if (utf8_valid(e->key, e->key_len)) json_str(b, e->key, e->key_len);
			else b64_value(b, e->key, e->key_len);
		}
		json_arr_end(b);
	}
	free(kb);
	json_obj_end(b);
}

int hub_route(const struct hub_record *r)
{
	struct topic *t = topic_get(r->topic);
	H.records_in++;
	if (!t) return 0;
	t->records++;
	if (!t->ch) return 0;
	struct channel *ch = t->ch;
	struct rec_ctx x = { .r = r, .t = t, .json = -1, .seq = ++ch->seq };
	json_init(&x.text);
	lvc_update(ch, &x);
	hist_append(t, r, x.seq);
	if (ch->nsubs == 0 && H.all.n == 0) return 1;

	H.stamp++;
	for (uint32_t i = 0; i < ch->any.n; i++) {
		struct sub *s = ch->any.v[i];
		if (filter_match(s, &x, 0)) deliver(&x, ch, s);
	}
	if (r->key && ch->keys.count) {
		struct sublist *l = map_get(&ch->keys, r->key, r->key_len);
		for (uint32_t i = 0; l && i < l->n; i++)
			if (filter_match(l->v[i], &x, 0)) deliver(&x, ch, l->v[i]);
	}
	for (uint32_t i = 0; i < H.all.n; i++)
		if (filter_match(H.all.v[i], &x, 1)) deliver(&x, ch, H.all.v[i]);
	if ((x.frame || x.mp_frame) && r->timestamp_ms >= 0)
		endpoints_observe_latency((double)(wall_ms() - r->timestamp_ms) / 1000.0);
	frame_unref(x.frame);
	frame_unref(x.mp_frame);
	json_free(&x.text);
	return 1;
}

/* ---- introspection ------------------------------------------------------- */

size_t hub_routes(const struct hub_route_info **out)
{
	*out = H.info;
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

int hub_topic_next(size_t *i, const char **topic, uint64_t *records)
{
	struct map_slot *s;
	if (!map_next(&H.topics, i, &s)) return 0;
	*topic = s->key;
	*records = ((const struct topic *)s->val)->records;
	return 1;
}

uint64_t hub_records_in(void)
{
	return H.records_in;
}
