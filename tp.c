/* tp.c - "topic:partition" keys (tp.h): formatting, parsing and map
 * lookups by partition. No state of its own. */
#include "tp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

size_t tp_format(char *buf, size_t cap, const char *topic, int32_t partition)
{
	int n = snprintf(buf, cap, "%s:%" PRId32, topic, partition);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int tp_parse(const char *tp, size_t n, char *topic, size_t cap, int32_t *partition)
{
	/* The last ':' separates: a topic name cannot hold one, but scanning
	 * from the end keeps "a:b:1" from parsing as topic "a". */
	const char *colon = NULL;
	for (size_t i = 0; i < n; i++) if (tp[i] == ':') colon = tp + i;
	if (!colon || colon == tp || (size_t)(colon - tp) >= cap || colon + 1 == tp + n) return -1;
	long p = 0;
	for (const char *q = colon + 1; q < tp + n; q++) {
		if (*q < '0' || *q > '9' || p > 100000000) return -1;
		p = p * 10 + (*q - '0');
	}
	memcpy(topic, tp, (size_t)(colon - tp));
	topic[colon - tp] = '\0';
	*partition = (int32_t)p;
	return 0;
}

int tp_position_parse(const char *item, char *topic, size_t cap, int32_t *partition, int64_t *last)
{
	const char *colon = strrchr(item, ':');
	char *end;
	if (!colon || !colon[1]) return -1;
	long long off = strtoll(colon + 1, &end, 10);
	if (*end || off < -1 || tp_parse(item, (size_t)(colon - item), topic, cap, partition) < 0) return -1;
	*last = off;
	return 0;
}

void *tp_map_get(const struct map *m, const char *topic, int32_t partition, char key[TP_KEY_MAX], size_t *klen)
{
	*klen = tp_format(key, TP_KEY_MAX, topic, partition);
	return map_get(m, key, *klen);
}
