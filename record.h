/* record.h - one Kafka record as kbridge's modules pass it around: the Kafka
 * layer fills it from a librdkafka message (borrowing that memory for the
 * duration of one call), the routing layer encodes it, the history keeps a
 * copy. Types only: no functions live behind this header. */
#ifndef KB_RECORD_H
#define KB_RECORD_H
#include <stddef.h>
#include <stdint.h>

/* Headers forwarded per record: all of them up to this bound, which only a
 * hostile producer reaches; past it the first ones go and headers_truncated
 * counts the rest (docs/operations.md#limits). */
#define RECORD_MAX_HEADERS 10000

struct record_header {
	const char *name;
	const void *value;      /* NULL: a header without value */
	size_t value_len;
};

struct record {
	const char *topic;
	int32_t partition;
	int64_t offset;
	int64_t timestamp_ms;   /* -1 when the record has none */
	const void *key;        /* NULL: null key */
	size_t key_len;
	const void *value;      /* NULL: tombstone */
	size_t value_len;
	const struct record_header *headers;
	size_t nheaders;
	size_t headers_truncated; /* headers the record had beyond nheaders */
};
#endif
