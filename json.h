/* json.h - JSON (RFC 8259) for kbridge: an emitter into a growable buffer, a
 * validator for record payloads, a scanner for top-level payload fields, and
 * a small bounded parser for client control messages. No recursion anywhere:
 * hostile nesting costs a bounded stack. */
#ifndef KB_JSON_H
#define KB_JSON_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Emitter ----------------------------------------------------------- */

#define JSON_EMIT_MAX_DEPTH 63

/* A growable output buffer that also tracks where commas go. Emitting
 * functions never fail loudly: on allocation failure they set `failed` and
 * stop writing; check it once at the end. */
struct jbuf {
	char *buf;
	size_t len, cap;
	int failed;
	unsigned depth;      /* open objects/arrays */
	uint64_t has_items;  /* bit d: the container at depth d has an element */
	int after_key;       /* a key was just written: the next value needs no comma */
};

void json_init(struct jbuf *b);
void json_free(struct jbuf *b);           /* frees buf, back to the init state */
void json_reset(struct jbuf *b);          /* len = 0, keeps the allocation, clears failed */
int  json_reserve(struct jbuf *b, size_t extra); /* 0 or -1 (and failed = 1) */
/* Appends bytes with no comma logic (framing, prefixes, raw text). */
void json_append(struct jbuf *b, const void *s, size_t n);

void json_obj_begin(struct jbuf *b);
void json_obj_end(struct jbuf *b);
void json_arr_begin(struct jbuf *b);
void json_arr_end(struct jbuf *b);
void json_key(struct jbuf *b, const char *key);            /* NUL-terminated */
void json_keyn(struct jbuf *b, const char *key, size_t n);
/* A string value. Valid UTF-8 passes through unchanged except that '"', '\\',
 * control characters (< 0x20, as \n \r \t \b \f or \u00XX) and U+2028/U+2029
 * (as \u2028 \u2029, for JavaScript embedding) are escaped; each byte of an
 * invalid UTF-8 sequence becomes \ufffd. Output is always valid JSON. */
void json_str(struct jbuf *b, const char *s, size_t n);
void json_cstr(struct jbuf *b, const char *s);             /* NUL-terminated */
void json_int(struct jbuf *b, int64_t v);
void json_uint(struct jbuf *b, uint64_t v);
void json_double(struct jbuf *b, double v);  /* shortest round-trip form; NaN/inf -> null */
void json_bool(struct jbuf *b, int v);
void json_null(struct jbuf *b);
/* A complete JSON value, already valid, inserted verbatim as one value. */
void json_raw(struct jbuf *b, const char *s, size_t n);

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

#define JSON_PARSE_MAX_DEPTH 64   /* hard upper bound for maxdepth */

/* Parses exactly one value (surrounding whitespace allowed). Returns the
 * number of tokens (>= 1; token 0 is the root) or a negative JSON_E* code:
 * the first problem met while reading left to right.
 * maxdepth is clamped to JSON_PARSE_MAX_DEPTH. */
int json_parse(const char *s, size_t n, struct json_tok *tok, int maxtok, int maxdepth);

/* Index of the value of member `key` in object token obj, or -1. When the
 * name repeats, the last one wins (as in json_top_field). */
int json_obj_get(const char *src, const struct json_tok *tok, int obj, const char *key);
/* 1 if string token t unescapes to exactly s[0..n). */
int json_str_eq(const char *src, const struct json_tok *tok, int t, const char *s, size_t n);
/* Unescapes string token t into out (UTF-8, no NUL unless room). Returns the
 * unescaped length, or -1 when it needs more than cap bytes. */
ssize_t json_str_decode(const char *src, const struct json_tok *tok, int t, char *out, size_t cap);
/* Number token t as an integer: 0 on success, -1 if not an integral number
 * within int64 range. */
int json_tok_int(const char *src, const struct json_tok *tok, int t, int64_t *out);
#endif
