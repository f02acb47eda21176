/* tp.h - "topic:partition" keys: the one place that formats and parses the
 * text form of a Kafka partition, used as map keys (lag, positions, history)
 * and on the wire (resume positions, "earliest" of RESUME_GAP). */
#ifndef KB_TP_H
#define KB_TP_H
#include <stddef.h>
#include <stdint.h>

/* Kafka topic names are at most 249 bytes; ':' and an int32 fit in the rest. */
#define TP_TOPIC_MAX 256
#define TP_KEY_MAX   300

/* Writes "topic:partition" into buf (truncated to cap - 1 bytes, always
 * NUL-terminated) and returns its length. */
size_t tp_format(char *buf, size_t cap, const char *topic, int32_t partition);

/* Splits tp[0..n) at its last ':' into topic (a NUL-terminated copy; cap
 * bytes at most, NUL included) and partition (decimal digits only, about a
 * billion at most: far beyond any real partition number). Returns 0, or -1
 * when it is not of that form. */
int tp_parse(const char *tp, size_t n, char *topic, size_t cap, int32_t *partition);

/* Reads a resume position "topic:partition:offset" (item NUL-terminated;
 * the offset a decimal integer >= -1: the last one seen) into topic (as
 * tp_parse), partition and last. Returns 0, or -1 when it is not of that
 * form. */
int tp_position_parse(const char *item, char *topic, size_t cap, int32_t *partition, int64_t *last);

/* The value m holds under "topic:partition", or NULL. The key is left in
 * key/klen for a map_put that adds one. */
struct map;
void *tp_map_get(const struct map *m, const char *topic, int32_t partition, char key[TP_KEY_MAX], size_t *klen);
#endif
