/* stateview.c - per-period views of a channel's state (stateview.h). */
#include "stateview.h"

#include <stdlib.h>
#include <string.h>

struct state_view *view_find(const struct state_chan *s, uint32_t ms)
{
	struct state_view *v = s->views;
	while (v && v->ms != ms) v = v->next;
	return v;
}

static void view_set_value(struct state_view *v, const struct state_chan *s)
{
	lv_value_unref(v->value);
	free(v->vkey);
	v->value = lv_value_ref(s->value);
	v->vkey = NULL;
	v->vkey_len = 0;
	if (s->vkey && (v->vkey = malloc(s->vkey_len ? s->vkey_len : 1))) {
		memcpy(v->vkey, s->vkey, s->vkey_len);
		v->vkey_len = s->vkey_len;
	}
}

static void view_free(struct state_view *v)
{
	size_t i = 0;
	struct map_slot *slot;
	while (map_next(&v->keys, &i, &slot)) lv_value_unref(slot->val);
	map_free(&v->keys);
	lv_value_unref(v->value);
	free(v->vkey);
	free(v->chg);
	free(v);
}

/* A period's view of s, made (as the channel is now) on first need. */
struct state_view *view_hold(struct state_chan *s, uint32_t ms)
{
	struct state_view *v = view_find(s, ms);
	if (v) { v->users++; return v; }
	if (!(v = calloc(1, sizeof(*v)))) return NULL;
	*v = (struct state_view){ .ms = ms, .users = 1, .shape = s->shape, .ver = s->ver };
	size_t klen;
	for (const struct lv *e = lvc_first(s->lvc); e; e = lv_next(e)) {
		const char *key = lv_key(e, &klen);
		if (map_put(&v->keys, key, klen, lv_val(e)) < 0) { view_free(v); return NULL; }
		lv_value_ref(lv_val(e));
	}
	view_set_value(v, s);
	v->next = s->views;
	s->views = v;
	return v;
}

void view_release(struct state_chan *s, uint32_t ms)
{
	for (struct state_view **pp = &s->views; *pp; pp = &(*pp)->next) {
		struct state_view *v = *pp;
		if (v->ms != ms) continue;
		if (--v->users == 0) {
			*pp = v->next;
			view_free(v);
		}
		return;
	}
}

static int add_change(struct state_view *v, const char *key, size_t klen, struct lv_value *old, struct lv_value *nw)
{
	if (v->nchg == v->cap) {
		uint32_t ncap = v->cap ? v->cap * 2 : 8;
		struct state_change *nc = realloc(v->chg, ncap * sizeof(*nc));
		if (!nc) return -1;
		v->chg = nc;
		v->cap = ncap;
	}
	char *k = malloc(klen ? klen : 1);
	if (!k) return -1;
	memcpy(k, key, klen);
	v->chg[v->nchg++] = (struct state_change){ k, klen, lv_value_ref(old), lv_value_ref(nw) };
	return 0;
}

/* What changed in s since the view's last tick (once per tick). Values
 * are compared by reference: every record makes a new one. */
void view_prepare(struct state_view *v, const struct state_chan *s, uint64_t tick)
{
	if (v->tick == tick) return;
	v->tick = tick;
	/* A channel of unknown shape shows as an empty map: becoming a map
	 * changes nothing a client holds. */
	v->shape_changed = (v->shape == SHAPE_NONE ? SHAPE_MAP : v->shape) != (s->shape == SHAPE_NONE ? SHAPE_MAP : s->shape);
	v->value_changed = v->value != s->value;
	if (v->ver == s->ver || s->shape == SHAPE_VALUE) return;
	size_t klen, seen = 0;
	for (const struct lv *e = lvc_first(s->lvc); e; e = lv_next(e)) {
		const char *key = lv_key(e, &klen);
		struct lv_value *old = map_get(&v->keys, key, klen);
		seen += old != NULL;
		if (old != lv_val(e)) add_change(v, key, klen, old, lv_val(e));
	}
	if (seen == v->keys.count) return;
	/* Keys the view has and the channel lost: deleted or evicted. */
	size_t i = 0;
	struct map_slot *slot;
	while (map_next(&v->keys, &i, &slot))
		if (!lvc_get(s->lvc, slot->key, slot->klen)) add_change(v, slot->key, slot->klen, slot->val, NULL);
}

/* After the tick's messages: the view holds what its clients now hold. */
void view_apply(struct state_view *v, const struct state_chan *s)
{
	if (v->applied == v->tick) return;
	v->applied = v->tick;
	for (uint32_t i = 0; i < v->nchg; i++) {
		struct state_change *c = &v->chg[i];
		/* The map's reference moves from the old value to the new one;
		 * out of memory forgets the key, and the next tick sends it. */
		lv_value_unref(map_del(&v->keys, c->key, c->klen));
		if (c->nw && map_put(&v->keys, c->key, c->klen, c->nw) == 0) lv_value_ref(c->nw);
		lv_value_unref(c->old);
		lv_value_unref(c->nw);
		free(c->key);
	}
	v->nchg = 0;
	if (v->value_changed) view_set_value(v, s);
	v->shape = s->shape;
	v->ver = s->ver;
}

