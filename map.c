/* map.c - string-keyed open-addressing hash map used for channels, topics
 * and key indexes. Grows at 3/4 load (tombstones included), never shrinks. */
#include "map.h"

#include <stdlib.h>
#include <string.h>

static char map_tomb;
#define MAP_TOMB (&map_tomb)

uint64_t map_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct map_slot *find(const struct map *m, const void *key, size_t len, uint64_t h)
{
	if (!m->cap) return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct map_slot *s = &m->slots[i];
		if (!s->key) return NULL;
		if (s->key != MAP_TOMB && s->hash == h && s->klen == len && memcmp(s->key, key, len) == 0)
			return s;
	}
}

void *map_get(const struct map *m, const void *key, size_t len)
{
	struct map_slot *s = find(m, key, len, map_hash(key, len));
	return s ? s->val : NULL;
}

static int grow(struct map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	if (m->count * 2 < m->cap) ncap = m->cap;   /* mostly tombstones: rehash in place size */
	struct map_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns) return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct map_slot *s = &m->slots[i];
		if (!s->key || s->key == MAP_TOMB) continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key) j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->used = m->count;
	return 0;
}

int map_put(struct map *m, const void *key, size_t len, void *val)
{
	uint64_t h = map_hash(key, len);
	struct map_slot *s = find(m, key, len, h);
	if (s) {
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0) return -1;
	char *k = malloc(len + 1);
	if (!k) return -1;
	memcpy(k, key, len);
	k[len] = '\0';
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key && m->slots[i].key != MAP_TOMB) i = (i + 1) & (m->cap - 1);
	if (!m->slots[i].key) m->used++;
	m->slots[i] = (struct map_slot){ .key = k, .klen = len, .hash = h, .val = val };
	m->count++;
	return 0;
}

void *map_del(struct map *m, const void *key, size_t len)
{
	struct map_slot *s = find(m, key, len, map_hash(key, len));
	if (!s) return NULL;
	void *v = s->val;
	free(s->key);
	s->key = MAP_TOMB;
	s->val = NULL;
	m->count--;
	return v;
}

void map_free(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != MAP_TOMB) free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

int map_next(const struct map *m, size_t *i, struct map_slot **slot)
{
	while (*i < m->cap) {
		struct map_slot *s = &m->slots[(*i)++];
		if (s->key && s->key != MAP_TOMB) {
			*slot = s;
			return 1;
		}
	}
	return 0;
}
