/* map.h - a string-keyed hash map of pointers (open addressing, linear
 * probing, power-of-two capacity). Keys are copied; values are not owned. */
#ifndef KB_MAP_H
#define KB_MAP_H
#include <stddef.h>
#include <stdint.h>

struct map_slot {
	char *key;        /* NULL: empty; MAP_TOMB: deleted */
	size_t klen;
	uint64_t hash;
	void *val;
};

struct map {
	struct map_slot *slots;
	size_t cap, count, used;   /* used counts tombstones too */
};

uint64_t map_hash(const void *key, size_t len);   /* FNV-1a, 64-bit */
void *map_get(const struct map *m, const void *key, size_t len);
/* Inserts or replaces. Returns 0, or -1 when out of memory. */
int   map_put(struct map *m, const void *key, size_t len, void *val);
/* Removes and returns the value, or NULL when absent. */
void *map_del(struct map *m, const void *key, size_t len);
void  map_free(struct map *m);
/* Iteration: for (size_t i = 0; map_next(m, &i, &slot);) ... */
int   map_next(const struct map *m, size_t *i, struct map_slot **slot);
#endif
