/* json.h - writing JSON (RFC 8259): an emitter into a growable buffer that
 * never fails loudly and always produces valid JSON. Reading JSON is
 * json_parse.h. */
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

/* A JSON string holding the base64 (RFC 4648) of p[0..n): how bytes that
 * are not UTF-8 travel in messages (keys, values, headers). */
void json_base64(struct jbuf *b, const void *p, size_t n);

/* Length of the run of bytes at the start of p[0..n) that a JSON string
 * carries as they are (printable ASCII but '"' and '\\'): the hot loop of
 * both the emitter and the validator (json_parse.c). */
size_t json_plain_run(const unsigned char *p, size_t n);
#endif
