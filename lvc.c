/* lvc.c - last-value cache and snapshots (lvc.h). Entries sit in a map for
 * lookup and a doubly linked list for eviction order; an update moves its
 * entry to the newest end. */
#include "lvc.h"

#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "utf8.h"

struct lv {
	struct lv *prev, *next;
	char *key;                /* raw key bytes (a copy) */
	size_t key_len;
	struct lv_value *val;
	uint64_t born;            /* the cache's birth number when the key arrived */
};

struct lv_value *lv_value_new(const void *p, size_t n, int is_json)
{
	struct lv_value *v = malloc(sizeof(*v) + (n ? n : 1));
	if (!v) return NULL;
	v->refs = 1;
	v->len = n;
	if (n) memcpy(v->bytes, p, n);
	v->kind = is_json ? LV_JSON : utf8_valid(p, n) ? LV_TEXT : LV_BINARY;
	return v;
}

struct lv_value *lv_value_ref(struct lv_value *v)
{
	if (v) v->refs++;
	return v;
}

void lv_value_unref(struct lv_value *v)
{
	if (v && --v->refs == 0) free(v);
}

static uint32_t max_keys;

void lvc_configure(uint32_t keys)
{
	max_keys = keys;
}

int lvc_enabled(void)
{
	return max_keys > 0;
}

static void unlink_lv(struct lvc *l, struct lv *e)
{
	if (e->prev) e->prev->next = e->next; else l->old = e->next;
	if (e->next) e->next->prev = e->prev; else l->new = e->prev;
	e->prev = e->next = NULL;
}

static void free_lv(struct lv *e)
{
	free(e->key);
	lv_value_unref(e->val);
	free(e);
}

static void remove_lv(struct lvc *l, struct lv *e)
{
	unlink_lv(l, e);
	map_del(&l->index, e->key, e->key_len);
	l->n--;
	free_lv(e);
}

void lvc_update(struct lvc *l, const void *key, size_t key_len, const void *value, size_t value_len, int is_json)
{
	/* As a compacted topic: a null key is not cached, a tombstone deletes. */
	if (!key || !max_keys) return;
	struct lv *e = map_get(&l->index, key, key_len);
	if (!value) {
		if (e) remove_lv(l, e);
		return;
	}
	/* The value is copied before the entry changes: out of memory keeps
	 * the old value rather than none. */
	struct lv_value *val = lv_value_new(value, value_len, is_json);
	if (!val) return;
	if (!e) {
		if (!(e = calloc(1, sizeof(*e))) || !(e->key = malloc(key_len ? key_len : 1))) {
			free(e);
			lv_value_unref(val);
			return;
		}
		memcpy(e->key, key, key_len);
		e->key_len = key_len;
		if (map_put(&l->index, e->key, e->key_len, e) < 0) {
			free_lv(e);
			lv_value_unref(val);
			return;
		}
		e->born = ++l->born;
		l->n++;
	} else {
		unlink_lv(l, e);
		lv_value_unref(e->val);
	}
	e->val = val;
	/* Newest at the tail; past the bound the least recently updated goes. */
	e->prev = l->new;
	if (l->new) l->new->next = e; else l->old = e;
	l->new = e;
	while (l->n > max_keys) remove_lv(l, l->old);
}

void lv_value_json(struct jbuf *b, const struct lv_value *v)
{
	if (!v) json_null(b);
	else if (v->kind == LV_JSON) json_raw(b, (const char *)v->bytes, v->len);
	else if (v->kind == LV_TEXT) json_str(b, (const char *)v->bytes, v->len);
	else json_base64(b, v->bytes, v->len);
}

const char *lv_key_text(struct jbuf *tmp, const char *key, size_t key_len, size_t *len)
{
	if (utf8_valid(key, key_len)) {
		*len = key_len;
		return key;
	}
	json_reset(tmp);
	json_base64(tmp, key, key_len);
	if (tmp->failed) return NULL;
	*len = tmp->len - 2;
	return tmp->buf + 1;                      /* without its quotes */
}

/* Whether a snapshot restricted to `only` shows entry e. */
static int shown(const struct filter *only, const struct lv *e)
{
	if (!only) return 1;
	return filter_key_ok(only, e->key, e->key_len) &&
	       (!only->nfields || filter_fields_ok(only, e->val->bytes, e->val->len, e->val->kind == LV_JSON));
}

void lvc_snapshot_json(struct jbuf *b, const struct lvc *l, const char *channel, uint64_t seq,
		       const char *id, size_t id_len, const struct filter *only)
{
	json_obj_begin(b);
	json_key(b, "type");    json_cstr(b, "snapshot");
	if (id) { json_key(b, "id"); json_raw(b, id, id_len); }
	json_key(b, "channel"); json_cstr(b, channel);
	json_key(b, "seq");     json_uint(b, seq);
	json_key(b, "data");
	json_obj_begin(b);
	/* Oldest first, so a client applying the snapshot in order ends with
	 * the same newest values. Bytes that are not UTF-8 travel as base64
	 * and are named in the lists after "data". */
	size_t b64k = 0, b64v = 0;
	struct jbuf kb;           /* a key that is not UTF-8, as base64 text */
	json_init(&kb);
	for (const struct lv *e = l->old; e; e = e->next) {
		if (!shown(only, e)) continue;
		size_t kl;
		const char *k = lv_key_text(&kb, e->key, e->key_len, &kl);
		if (!k) { b->failed = 1; break; }
		json_keyn(b, k, kl);
		b64k += k != e->key;
		lv_value_json(b, e->val);
		b64v += e->val->kind == LV_BINARY;
	}
	json_free(&kb);
	json_obj_end(b);
	/* The lists name keys as they appear in "data". */
	if (b64k) {
		json_key(b, "base64_keys");
		json_arr_begin(b);
		for (const struct lv *e = l->old; e; e = e->next)
			if (shown(only, e) && !utf8_valid(e->key, e->key_len)) json_base64(b, e->key, e->key_len);
		json_arr_end(b);
	}
	if (b64v) {
		json_key(b, "base64_values");
		json_arr_begin(b);
		for (const struct lv *e = l->old; e; e = e->next) {
			if (e->val->kind != LV_BINARY || !shown(only, e)) continue;
			if (utf8_valid(e->key, e->key_len)) json_str(b, e->key, e->key_len);
			else json_base64(b, e->key, e->key_len);
		}
		json_arr_end(b);
	}
	json_obj_end(b);
}

const struct lv *lvc_victim(const struct lvc *l, const void *key, size_t key_len)
{
	if (!max_keys || l->n < max_keys || map_get(&l->index, key, key_len)) return NULL;
	return l->old;
}

const struct lv *lvc_first(const struct lvc *l) { return l->old; }
const struct lv *lv_next(const struct lv *e) { return e->next; }
struct lv_value *lv_val(const struct lv *e) { return e->val; }
uint64_t lv_born(const struct lv *e) { return e->born; }

const struct lv *lvc_get(const struct lvc *l, const void *key, size_t key_len)
{
	return map_get(&l->index, key, key_len);
}

const char *lv_key(const struct lv *e, size_t *len)
{
	*len = e->key_len;
	return e->key;
}

void lvc_clear(struct lvc *l)
{
	while (l->old) remove_lv(l, l->old);
	map_free(&l->index);
	memset(l, 0, sizeof(*l));
}
