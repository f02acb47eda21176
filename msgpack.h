/* msgpack.h - MessagePack for format=msgpack connections
 * (docs/protocol.md#messagepack): every server message is built as JSON
 * once and transcoded here, so JSON and MessagePack clients see the same
 * objects; client control messages in
 * MessagePack are transcoded to JSON and handled like JSON ones. Neither
 * direction recurses: nesting costs a bounded, explicit stack. */
#ifndef KB_MSGPACK_H
#define KB_MSGPACK_H
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* JSON -> MessagePack goes as deep as any payload kbridge accepts as JSON
 * (with the levels of the message around it), so MessagePack clients get
 * the same objects as JSON clients. MessagePack -> JSON (client control
 * messages) stops at the JSON emitter's own limit. */
#define MP_FROM_JSON_MAX_DEPTH JSON_PARSE_MAX_DEPTH
#define MP_MAX_DEPTH JSON_EMIT_MAX_DEPTH

/* Appends the MessagePack form of one valid JSON value: objects become
 * maps, arrays arrays, strings str, integers that fit int64/uint64 ints,
 * other numbers float64. Returns 0, or -1 (out untouched beyond its old
 * length) when the text is not JSON, nests deeper than
 * MP_FROM_JSON_MAX_DEPTH or memory runs out. */
int mp_from_json(struct jbuf *out, const char *json, size_t len);

/* Writers for messages built piece by piece (the state dialect's, whose
 * timestamp has no JSON form). */
void mp_put_map(struct jbuf *out, uint32_t n);            /* a map of n pairs follows */
void mp_put_str(struct jbuf *out, const char *s, size_t n);
void mp_put_uint(struct jbuf *out, uint64_t v);
/* The Timestamp extension (type -1) for ms since the epoch: 64-bit form
 * when the seconds fit in 34 bits, else the 96-bit one. */
void mp_put_timestamp(struct jbuf *out, int64_t ms);

/* Appends the JSON form of exactly one MessagePack value. Map keys that are
 * not strings become their JSON text as a string (NaN and infinities:
 * "null"); bin becomes a base64 string; ext types are refused. Returns 0,
 * or -1 on malformed input, trailing bytes or nesting deeper than maxdepth
 * (at most MP_MAX_DEPTH, less what out already has open); on -1, out is as
 * it was. */
int mp_to_json(struct jbuf *out, const unsigned char *mp, size_t len, int maxdepth);
/* When mp starts with a map that has the string key `key`, appends the
 * JSON form of its (first) value as mp_to_json does and returns 0; else
 * -1. Only the members before it are walked, never converted, so a
 * message too deep to convert whole still gives up its "id". */
int mp_map_field_json(struct jbuf *out, const unsigned char *mp, size_t len, const char *key, int maxdepth);
#endif
