/* lvc.c - last-value cache and snapshots (lvc.h). Entries sit in a map for
 * lookup and a doubly linked list for eviction order; an update moves its
 * entry to the newest end. */
#include "lvc.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* How "data" renders a cached value. */
enum lv_kind { LV_JSON, LV_TEXT, LV_BINARY };

struct lv {
	struct lv *prev, *next;
	char *key;                /* raw key bytes (a copy) */
	size_t key_len;
	unsigned char *val;       /* raw value bytes (a copy) */
	size_t val_len;
	uint8_t kind;             /* enum lv_kind */
};

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
	free(e->val);
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
	unsigned char *val = malloc(value_len ? value_len : 1);
	if (!val) return;
	if (value_len) memcpy(val, value, value_len);
	if (!e) {
		if (!(e = calloc(1, sizeof(*e))) || !(e->key = malloc(key_len ? key_len : 1))) {
			free(e);
			free(val);
			return;
		}
		memcpy(e->key, key, key_len);
		e->key_len = key_len;
		if (map_put(&l->index, e->key, e->key_len, e) < 0) {
			free_lv(e);
			free(val);
			return;
		}
		l->n++;
	} else {
		unlink_lv(l, e);
		free(e->val);
	}
	e->val = val;
	e->val_len = value_len;
	e->kind = is_json ? LV_JSON : utf8_valid(value, value_len) ? LV_TEXT : LV_BINARY;
	/* Newest at the tail; past the bound the least recently updated goes. */
	e->prev = l->new;
	if (l->new) l->new->next = e; else l->old = e;
	l->new = e;
	while (l->n > max_keys) remove_lv(l, l->old);
}

void lvc_snapshot_json(struct jbuf *b, const struct lvc *l, const char *channel, uint64_t seq,
		       const char *id, size_t id_len)
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
		if (utf8_valid(e->key, e->key_len)) {
			json_keyn(b, e->key, e->key_len);
		} else {
			json_reset(&kb);
			json_base64(&kb, e->key, e->key_len);
			if (kb.failed) { b->failed = 1; break; }
			json_keyn(b, kb.buf + 1, kb.len - 2);   /* without its quotes */
			b64k++;
		}
		if (e->kind == LV_JSON) json_raw(b, (const char *)e->val, e->val_len);
		else if (e->kind == LV_TEXT) json_str(b, (const char *)e->val, e->val_len);
		else { json_base64(b, e->val, e->val_len); b64v++; }
	}
	json_free(&kb);
	json_obj_end(b);
	/* The lists name keys as they appear in "data". */
	if (b64k) {
		json_key(b, "base64_keys");
		json_arr_begin(b);
		for (const struct lv *e = l->old; e; e = e->next)
			if (!utf8_valid(e->key, e->key_len)) json_base64(b, e->key, e->key_len);
		json_arr_end(b);
	}
	if (b64v) {
		json_key(b, "base64_values");
		json_arr_begin(b);
		for (const struct lv *e = l->old; e; e = e->next) {
			if (e->kind != LV_BINARY) continue;
			if (utf8_valid(e->key, e->key_len)) json_str(b, e->key, e->key_len);
			else json_base64(b, e->key, e->key_len);
		}
		json_arr_end(b);
	}
	json_obj_end(b);
}

void lvc_clear(struct lvc *l)
{
	while (l->old) remove_lv(l, l->old);
	map_free(&l->index);
	memset(l, 0, sizeof(*l));
}
