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

struct lv;
struct lvc {
	struct map index;         /* key -> struct lv * */
	struct lv *old, *new;     /* least to most recently updated */
	uint32_t n;
};

/* Keeps value as the newest of key (both copied). value NULL is a tombstone:
 * the key goes. is_json says value is valid JSON (sent verbatim); else it
 * is sent as a string when UTF-8, as base64 otherwise. A NULL key is not
 * cached. Out of memory: the update is skipped. */
void lvc_update(struct lvc *l, const void *key, size_t key_len, const void *value, size_t value_len, int is_json);
/* {"type":"snapshot"[,"id":ID],"channel":C,"seq":N,"data":{key: value,...}
 *  [,"base64_keys":[...]][,"base64_values":[...]]} */
void lvc_snapshot_json(struct jbuf *b, const struct lvc *l, const char *channel, uint64_t seq,
		       const char *id, size_t id_len);
/* Frees every entry; l is empty and reusable. */
void lvc_clear(struct lvc *l);
#endif
