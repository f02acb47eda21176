/* json_parse.h - reading JSON (RFC 8259): a validator for record payloads,
 * a scanner for top-level payload fields, value equality for filters, and a
 * small bounded parser for client control messages. No recursion anywhere:
 * hostile nesting costs a bounded stack. Writing JSON is json.h. */
#ifndef KB_JSON_PARSE_H
#define KB_JSON_PARSE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Validation and payload scanning (no allocation) ------------------- */

/* Payloads nested deeper than this are reported as not JSON. */
#define JSON_VALIDATE_MAX_DEPTH 1024

/* 1 if s[0..n) is exactly one RFC 8259 value with optional surrounding
 * whitespace (strings must be valid UTF-8), else 0. Linear time. */
int json_validate(const char *s, size_t n);

/* If s[0..n) is a JSON object with a top-level member whose (unescaped) name
 * equals key[0..keylen), stores the raw text span of its value in *val and *vlen
 * and returns 1. Returns 0 when absent, not an object, or malformed. When a
 * name occurs twice the last one wins (as in JavaScript). */
int json_top_field(const char *s, size_t n, const char *key, size_t keylen,
		   const char **val, size_t *vlen);

/* JSON equality of two raw values: strings compare by their unescaped
 * content, numbers by numeric value (1 == 1.0 == 1e0), true/false/null by
 * literal; values of different types are never equal; objects and arrays
 * compare byte for byte after trimming whitespace. Returns 1 or 0. */
int json_value_eq(const char *a, size_t alen, const char *b, size_t blen);

/* ---- Parser for client control messages -------------------------------- */

enum json_type {
	JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
};

/* One token per value and per object member name. Members are laid out as
 * name token then value token. Children of a container follow it directly;
 * `next` is the index of the first token after the whole subtree, so
 * siblings are walked with i = tok[i].next. */
struct json_tok {
	uint8_t type;        /* enum json_type; member names are JSON_STRING */
	uint32_t start, len; /* raw span in the source; strings exclude quotes */
	uint32_t size;       /* arrays: elements; objects: members; else 0 */
	uint32_t next;
};

#define JSON_EINVAL   (-1)  /* not JSON (syntax, bad escape, bad UTF-8, trailing bytes) */
#define JSON_ETOOMANY (-2)  /* more tokens than maxtok */
#define JSON_EDEPTH   (-3)  /* nested deeper than maxdepth */

/* Hard upper bound for maxdepth: room for any payload json_validate accepts
 * inside the server message that carries it (a snapshot adds two levels). */
#define JSON_PARSE_MAX_DEPTH (JSON_VALIDATE_MAX_DEPTH + 8)

/* Parses exactly one value (surrounding whitespace allowed). Returns the
 * number of tokens (>= 1; token 0 is the root) or a negative JSON_E* code:
 * the first problem met while reading left to right.
 * maxdepth is clamped to JSON_PARSE_MAX_DEPTH. */
int json_parse(const char *s, size_t n, struct json_tok *tok, int maxtok, int maxdepth);

/* json_parse into a token array of its own, grown as needed (a long
 * string is one token, so no array of n / 2 tokens up front). Returns the
 * count (> 0; *out is malloc'd, the caller frees it) or a negative JSON_E*
 * code (JSON_ETOOMANY also when out of memory; *out is then NULL). */
int json_parse_alloc(const char *s, size_t n, int maxdepth, struct json_tok **out);

/* Index of the value of member `key` in object token obj, or -1. When the
 * name repeats, the last one wins (as in json_top_field). */
int json_obj_get(const char *src, const struct json_tok *tok, int obj, const char *key);
/* 1 if string token t unescapes to exactly s[0..n). */
int json_str_eq(const char *src, const struct json_tok *tok, int t, const char *s, size_t n);
/* Unescapes string token t into out (UTF-8, no NUL unless room). Returns the
 * unescaped length, or -1 when it needs more than cap bytes. */
ssize_t json_str_decode(const char *src, const struct json_tok *tok, int t, char *out, size_t cap);
/* The raw text of token t in src, quotes included for a string: a
 * value's exact JSON text. */
void json_tok_raw(const char *src, const struct json_tok *tok, int t, const char **p, size_t *n);
/* Unescaped, NUL-terminated copy of string token t (malloc'd), its
 * length in *len when len is not NULL (a \u0000 is a byte of it); NULL
 * when out of memory. */
char *json_tok_strdup(const char *src, const struct json_tok *tok, int t, size_t *len);
/* Number token t as an integer: 0 on success, -1 if not an integral number
 * within int64 range. */
int json_tok_int(const char *src, const struct json_tok *tok, int t, int64_t *out);
#endif
