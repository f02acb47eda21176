/* history.c - record history and resume gates (history.h).
 * Each held record is one allocation: the struct, then key bytes, value
 * bytes and headers. It sits on two singly linked lists: the global FIFO
 * (eviction order) and its partition's list (offset order); the oldest of
 * the FIFO is always the first of its partition, so eviction pops both. */
#include "history.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "map.h"
#include "tp.h"

struct hist {
	struct hist *gnext, *pnext;
	struct hpart *part;
	int64_t offset, ts;
	uint64_t seq;
	uint32_t key_len, val_len, hdr_len;
	uint32_t nheaders, headers_truncated;
	uint8_t key_null, val_null;
	unsigned char data[];     /* key bytes, value bytes, then headers (hdr_put) */
};

struct hpart {
	char *topic;
	int32_t partition;
	struct hist *first, *last;
	int64_t covered_from;     /* every record routed from this offset on is here, -1: none */
};

/* A client's gate on one partition. */
struct gate {
	const void *topic;
	int32_t partition;
	int64_t next;             /* offsets below it were delivered (or skipped) */
	int active;               /* a replay from Kafka is running: hold live records */
	int replaying;            /* from history_gate_hold until history_gate_release */
	struct held { struct frame *f; int64_t offset; } *held;
	uint32_t nheld, cap;
};

struct resume {
	struct gate *v;
	uint32_t n;
};

static struct {
	size_t max_bytes, bytes;
	int headers;
	uint32_t hold_max;
	struct hist *old, *new;   /* the FIFO */
	struct map parts;         /* "topic:partition" -> struct hpart * */
	struct record_header *hv; /* history_replay's header list, grown as needed */
	size_t hcap;
	history_release_fn *release;
} H;

void history_configure(size_t max_bytes, int headers, uint32_t hold_max)
{
	H.max_bytes = max_bytes;
	H.headers = headers;
	H.hold_max = hold_max;
}

/* ---- the history ---------------------------------------------------------- */

static struct hpart *hpart_get(const char *topic, int32_t partition, int create)
{
	char key[TP_KEY_MAX];
	size_t kl;
	struct hpart *hp = tp_map_get(&H.parts, topic, partition, key, &kl);
	if (hp || !create) return hp;
	if (!(hp = calloc(1, sizeof(*hp)))) return NULL;
	if (!(hp->topic = strdup(topic)) || map_put(&H.parts, key, kl, hp) < 0) {
		free(hp->topic);
		free(hp);
		return NULL;
	}
	hp->partition = partition;
	hp->covered_from = -1;
	return hp;
}

/* Headers, each as: name with its NUL, a 4-byte value length (UINT32_MAX:
 * no value), the value. hdr_put(NULL, ...) measures. */
static size_t hdr_put(unsigned char *out, const struct record *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct record_header *h = &r->headers[i];
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

/* h's headers into H.hv. Returns how many, or -1 when out of memory. */
static ssize_t hdr_get(const struct hist *h)
{
	if (h->nheaders > H.hcap) {
		struct record_header *v = realloc(H.hv, h->nheaders * sizeof(*v));
		if (!v) return -1;
		H.hv = v;
		H.hcap = h->nheaders;
	}
	struct record_header *hv = H.hv;
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
	return (ssize_t)h->nheaders;
}

static size_t hist_cost(const struct hist *h)
{
	return sizeof(*h) + h->key_len + h->val_len + h->hdr_len;
}

void history_append(const struct record *r, uint64_t seq)
{
	if (!H.max_bytes) return;
	struct hpart *hp = hpart_get(r->topic, r->partition, 1);
	if (!hp) return;
	size_t kl = r->key ? r->key_len : 0, vl = r->value ? r->value_len : 0;
	size_t hl = H.headers ? hdr_put(NULL, r) : 0;
	size_t cost = sizeof(struct hist) + kl + vl + hl;
	/* A record that cannot be kept breaks the partition's coverage: a
	 * resume from before it must go to Kafka. */
	if (cost > H.max_bytes || hl > UINT32_MAX) { hp->covered_from = r->offset + 1; return; }
	struct hist *h = malloc(cost);
	if (!h) { hp->covered_from = r->offset + 1; return; }
	*h = (struct hist){ .part = hp, .offset = r->offset, .ts = r->timestamp_ms, .seq = seq,
			    .key_len = (uint32_t)kl, .val_len = (uint32_t)vl, .hdr_len = (uint32_t)hl,
			    .key_null = !r->key, .val_null = !r->value,
			    .nheaders = H.headers ? (uint32_t)r->nheaders : 0,
			    .headers_truncated = H.headers ? (uint32_t)r->headers_truncated : 0 };
	if (kl) memcpy(h->data, r->key, kl);
	if (vl) memcpy(h->data + kl, r->value, vl);
	if (hl) hdr_put(h->data + kl + vl, r);
	/* A partition's history starts with the first record routed here; a
	 * record that goes back to or before what we hold (a reassignment)
	 * restarts it. */
	if (hp->covered_from < 0 || (hp->last && r->offset != hp->last->offset + 1 && r->offset <= hp->last->offset))
		hp->covered_from = r->offset;
	if (hp->last) hp->last->pnext = h; else hp->first = h;
	hp->last = h;
	if (H.new) H.new->gnext = h; else H.old = h;
	H.new = h;
	H.bytes += cost;
	while (H.bytes > H.max_bytes && H.old) {
		struct hist *o = H.old;
		struct hpart *op = o->part;
		H.old = o->gnext;
		if (!H.old) H.new = NULL;
		op->first = o->pnext;             /* the oldest of the FIFO is its partition's first */
		if (!op->first) op->last = NULL;
		op->covered_from = o->offset + 1;
		H.bytes -= hist_cost(o);
		free(o);
	}
}

int history_covers(const char *topic, int32_t partition, int64_t last)
{
	const struct hpart *hp = hpart_get(topic, partition, 0);
	return hp && hp->covered_from >= 0 && last + 1 >= hp->covered_from;
}

int history_replay(const char *topic, int32_t partition, int64_t last, history_fn *fn, void *arg)
{
	const struct hpart *hp = hpart_get(topic, partition, 0);
	for (const struct hist *h = hp ? hp->first : NULL; h; h = h->pnext) {
		if (h->offset <= last) continue;
		/* Out of memory for the header list: the record goes without
		 * headers and says how many it had. */
		ssize_t nh = hdr_get(h);
		/* An empty value is "" (not a tombstone): it needs a non-NULL pointer. */
		struct record r = {
			.topic = hp->topic, .partition = partition, .offset = h->offset, .timestamp_ms = h->ts,
			.key = h->key_null ? NULL : h->data, .key_len = h->key_len,
			.value = h->val_null ? NULL : (h->val_len ? h->data + h->key_len : (const void *)""),
			.value_len = h->val_len, .headers = H.hv, .nheaders = nh < 0 ? 0 : (size_t)nh,
			.headers_truncated = h->headers_truncated + (nh < 0 ? h->nheaders : 0),
		};
		if (fn(arg, &r, h->seq)) return 1;
	}
	return 0;
}

/* ---- resume gates ----------------------------------------------------------- */

static struct gate *gate_find(const struct client *c, const void *topic, int32_t partition)
{
	if (!c->rs) return NULL;
	for (uint32_t i = 0; i < c->rs->n; i++)
		if (c->rs->v[i].topic == topic && c->rs->v[i].partition == partition) return &c->rs->v[i];
	return NULL;
}

int history_gate_open(struct client *c, const void *topic, int32_t partition, int64_t last)
{
	if (!c->rs && !(c->rs = calloc(1, sizeof(*c->rs)))) return -1;
	struct gate *g = gate_find(c, topic, partition);
	if (!g) {
		struct gate *nv = realloc(c->rs->v, (c->rs->n + 1) * sizeof(*nv));
		if (!nv) return -1;
		c->rs->v = nv;
		g = &nv[c->rs->n++];
		*g = (struct gate){ .topic = topic, .partition = partition };
	}
	g->next = last + 1;
	return 0;
}

void history_gate_hold(struct client *c, const void *topic, int32_t partition)
{
	struct gate *g = gate_find(c, topic, partition);
	if (g) g->active = g->replaying = 1;
}

int history_gate(struct client *c, const void *topic, int32_t partition, int64_t offset, struct frame *f)
{
	struct gate *g = gate_find(c, topic, partition);
	if (!g) return 1;
	if (offset < g->next) return 0;            /* the replay had it */
	if (!g->active) {
		g->next = offset + 1;
		return 1;
	}
	if (g->nheld == H.hold_max) {
		/* A replay slower than the live stream: hold at most a queue's
		 * worth, dropping the oldest like a slow client would (with the
		 * SLOW_CONSUMER notice that c->dropped brings). */
		frame_unref(g->held[0].f);
		memmove(g->held, g->held + 1, (g->nheld - 1) * sizeof(*g->held));
		g->nheld--;
		c->dropped++;
	}
	if (g->nheld == g->cap) {
		uint32_t ncap = g->cap ? g->cap * 2 : 16;
		void *nh = realloc(g->held, ncap * sizeof(*g->held));
		if (!nh) return 0;
		g->held = nh;
		g->cap = ncap;
	}
	g->held[g->nheld++] = (struct held){ frame_ref(f), offset };
	return 0;
}

/* Held live records not already replayed go out in order; c is live again
 * on that partition. */
static void gate_release(struct client *c, struct gate *g)
{
	for (uint32_t i = 0; i < g->nheld; i++) {
		if (g->held[i].offset >= g->next) {
			g->next = g->held[i].offset + 1;
			/* the held reference moves in */
			if (H.release) H.release(c, g->held[i].f, g->topic, g->partition, g->held[i].offset);
			else client_send(c, g->held[i].f);
		} else {
			frame_unref(g->held[i].f);
		}
	}
	free(g->held);
	g->held = NULL;
	g->nheld = g->cap = 0;
	g->active = 0;
}

int history_gate_take(struct client *c, const void *topic, int32_t partition, int64_t offset)
{
	struct gate *g = gate_find(c, topic, partition);
	if (!g) return 1;
	if (offset < g->next) return 0;
	g->next = offset + 1;
	return 1;
}

void history_gate_settle(struct client *c, const void *topic, int32_t partition)
{
	struct gate *g = gate_find(c, topic, partition);
	if (g && g->active && g->nheld && g->next >= g->held[0].offset) gate_release(c, g);
}

void history_gate_release(struct client *c, const void *topic, int32_t partition)
{
	struct gate *g = gate_find(c, topic, partition);
	if (g && g->active) gate_release(c, g);
	if (g) g->replaying = 0;
}

int history_gate_next(const struct client *c, size_t *i, const void **topic, int32_t *partition, int64_t *last,
		      int *held)
{
	if (!c->rs || *i >= c->rs->n) return 0;
	const struct gate *g = &c->rs->v[(*i)++];
	*topic = g->topic;
	*partition = g->partition;
	*last = g->next - 1;
	*held = g->active;
	return 1;
}

int64_t history_gate_last(const struct client *c, const void *topic, int32_t partition)
{
	const struct gate *g = gate_find(c, topic, partition);
	return g ? g->next - 1 : -2;
}

int history_gate_busy(const struct client *c)
{
	for (uint32_t i = 0; c->rs && i < c->rs->n; i++)
		if (c->rs->v[i].active || c->rs->v[i].replaying) return 1;
	return 0;
}

void history_on_release(history_release_fn *fn)
{
	H.release = fn;
}

void history_gate_free(struct client *c)
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
