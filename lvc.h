/* lvc.h - the last-value cache of one channel: the newest value of each
 * record key, as a compacted topic would keep it, bounded by --snapshot-keys
 * (least recently updated key evicted first), and the snapshot message built
 * from it (docs/protocol.md#snapshots). Owned by its channel (hub.c). */
#ifndef KB_LVC_H
#define KB_LVC_H
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "map.h"

/* Keys per channel at most (0: no cache, snapshots are empty). */
void lvc_configure(uint32_t max_keys);
/* 1 when the cache keeps anything (lvc_update is a no-op otherwise). */
int  lvc_enabled(void);

/* A cached value: immutable once made, shared by reference (the state
 * dialect's per-period views hold references to what their clients were
 * last sent, state.c). */
enum lv_kind { LV_JSON, LV_TEXT, LV_BINARY };   /* how "data" renders it */
struct lv_value {
	uint32_t refs;
	uint8_t kind;             /* enum lv_kind */
	size_t len;
	unsigned char bytes[];
};
/* A new value (refs = 1) of n bytes; is_json as for lvc_update. NULL when
 * out of memory. */
struct lv_value *lv_value_new(const void *p, size_t n, int is_json);
struct lv_value *lv_value_ref(struct lv_value *v);
void lv_value_unref(struct lv_value *v);   /* NULL is fine */

struct lv;
struct lvc {
	struct map index;         /* key -> struct lv * */
	struct lv *old, *new;     /* least to most recently updated */
	uint32_t n;
	uint64_t born;            /* entries ever created: each entry's birth number */
};

/* Keeps value as the newest of key (both copied). value NULL is a tombstone:
 * the key goes. is_json says value is valid JSON (sent verbatim); else it
 * is sent as a string when UTF-8, as base64 otherwise. A NULL key is not
 * cached. Out of memory: the update is skipped. */
void lvc_update(struct lvc *l, const void *key, size_t key_len, const void *value, size_t value_len, int is_json);
/* A cached value as JSON: verbatim, as a string, or as a base64 string;
 * NULL: null. */
void lv_value_json(struct jbuf *b, const struct lv_value *v);
/* A record key's name in a JSON object: itself when UTF-8, else its
 * base64 text, written into tmp (without quotes). NULL when out of memory. */
const char *lv_key_text(struct jbuf *tmp, const char *key, size_t key_len, size_t *len);
/* {"type":"snapshot"[,"id":ID],"channel":C,"seq":N,"data":{key: value,...}
 *  [,"base64_keys":[...]][,"base64_values":[...]]}; with `only` (not
 *  NULL), just the entries whose key and value pass that filter (what a
 *  client's token lets it read). */
struct filter;
void lvc_snapshot_json(struct jbuf *b, const struct lvc *l, const char *channel, uint64_t seq,
		       const char *id, size_t id_len, const struct filter *only);
/* The entry that caching a value for a new key would evict (the least
 * recently updated, when the cache is full), or NULL. */
const struct lv *lvc_victim(const struct lvc *l, const void *key, size_t key_len);
/* The entries, least recently updated first:
 * for (const struct lv *e = lvc_first(l); e; e = lv_next(e)) */
const struct lv *lvc_first(const struct lvc *l);
const struct lv *lv_next(const struct lv *e);
/* The entry of a key, or NULL. */
const struct lv *lvc_get(const struct lvc *l, const void *key, size_t key_len);
const char *lv_key(const struct lv *e, size_t *len);
struct lv_value *lv_val(const struct lv *e);
/* Order of first appearance: a key deleted and cached again is newer. */
uint64_t lv_born(const struct lv *e);
/* Frees every entry; l is empty and reusable. */
void lvc_clear(struct lvc *l);
#endif
