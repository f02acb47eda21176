/* filter.h - what one subscription asks for (docs/protocol.md#filters): a
 * key list, top-level payload field values, and (action dialect) a message
 * type, and whether a record's key and value pass it. Used by the record
 * fan-out (hub.c) and by the state dialect (state.c); parsed from client
 * messages by the protocol layer. */
#ifndef KB_FILTER_H
#define KB_FILTER_H
#include <stddef.h>
#include <stdint.h>

/* Field filter: payload top-level field `name` equals the raw JSON `value`
 * (or anything when any = 1). */
struct field_filter {
	char *name;
	char *value;
	size_t value_len;
	int any;
};

struct filter {
	char **keys;              /* NULL: any key; a list never holds "*" nor twice one key */
	uint32_t nkeys;
	struct field_filter *fields;
	uint32_t nfields;
	char *type;               /* message type to match (action dialect), NULL: any */
};

/* Adds key k (owned: freed on failure or when already there). 0 or -1. */
int  filter_add_key(struct filter *f, char *k);
/* A deep copy of f (*failed set when out of memory). */
struct filter filter_copy(const struct filter *f, int *failed);
void filter_free(struct filter *f);
/* Narrows f to what `only` allows: its key list becomes the intersection
 * with only's (only's when f has none), and only's field filters are
 * added (ANDed) unless f has the same one. 0; -1 when no key is left (f
 * unchanged); -2 out of memory (f may be partly narrowed: free it). */
int  filter_restrict(struct filter *f, const struct filter *only);

/* Appends a text that is the same for two filters that pass the same
 * records (keys, fields and type in their stored order): the state
 * dialect groups clients by it. */
struct jbuf;
void filter_text(const struct filter *f, struct jbuf *b);

/* 1 when the key passes f's key list (check_keys = 0: the caller found
 * the subscription through the key index already). */
int  filter_key_ok(const struct filter *f, const void *key, size_t key_len);
/* 1 when a value passes f's field filters: each needs a JSON object value
 * (is_json) with that top-level field, equal by JSON equality. */
int  filter_fields_ok(const struct filter *f, const void *value, size_t value_len, int is_json);
#endif
