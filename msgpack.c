/* msgpack.c - JSON <-> MessagePack transcoding (spec: msgpack/msgpack
 * spec.md). JSON -> MessagePack walks json_parse()'s tokens, which come in
 * document order with container sizes known, so one linear pass suffices.
 * MessagePack -> JSON keeps an explicit stack of open containers. */
#include "msgpack.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "json_parse.h"

/* ---- writing ------------------------------------------------------------- */

static void put8(struct jbuf *o, unsigned v)
{
	unsigned char b = (unsigned char)v;
	json_append(o, &b, 1);
}

/* tag followed by v in n big-endian bytes. */
static void put_be(struct jbuf *o, unsigned tag, uint64_t v, int n)
{
	unsigned char b[9];
	b[0] = (unsigned char)tag;
	for (int i = 0; i < n; i++) b[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
	json_append(o, b, (size_t)n + 1);
}

static void put_uint(struct jbuf *o, uint64_t v)
{
	if (v < 128) put8(o, (unsigned)v);                     /* positive fixint */
	else if (v <= UINT8_MAX) put_be(o, 0xcc, v, 1);
	else if (v <= UINT16_MAX) put_be(o, 0xcd, v, 2);
	else if (v <= UINT32_MAX) put_be(o, 0xce, v, 4);
	else put_be(o, 0xcf, v, 8);
}

static void put_int(struct jbuf *o, int64_t v)
{
	if (v >= 0) { put_uint(o, (uint64_t)v); return; }
	if (v >= -32) put8(o, (unsigned)(uint8_t)(int8_t)v);  /* negative fixint */
	else if (v >= INT8_MIN) put_be(o, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN) put_be(o, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN) put_be(o, 0xd2, (uint64_t)v, 4);
	else put_be(o, 0xd3, (uint64_t)v, 8);
}

static void put_double(struct jbuf *o, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, 8);
	put_be(o, 0xcb, bits, 8);
}

static void put_len(struct jbuf *o, uint32_t n, unsigned fix, unsigned fixmax,
		    unsigned t8, unsigned t16, unsigned t32)
{
	if (n <= fixmax) put8(o, fix | n);
	else if (t8 && n <= UINT8_MAX) put_be(o, t8, n, 1);
	else if (n <= UINT16_MAX) put_be(o, t16, n, 2);
	else put_be(o, t32, n, 4);
}

static void put_str(struct jbuf *o, const void *s, size_t n)
{
	if (n > UINT32_MAX) { o->failed = 1; return; }    /* str 32 is the longest */
	put_len(o, (uint32_t)n, 0xa0, 31, 0xd9, 0xda, 0xdb);
	json_append(o, s, n);
}

void mp_put_map(struct jbuf *o, uint32_t n)
{
	put_len(o, n, 0x80, 15, 0, 0xde, 0xdf);
}

void mp_put_str(struct jbuf *o, const char *s, size_t n)
{
	put_str(o, s, n);
}

void mp_put_uint(struct jbuf *o, uint64_t v)
{
	put_uint(o, v);
}

void mp_put_timestamp(struct jbuf *o, int64_t ms)
{
	int64_t sec = ms / 1000, msr = ms % 1000;
	if (msr < 0) { msr += 1000; sec--; }
	uint64_t nsec = (uint64_t)msr * 1000000u;
	if (sec >= 0 && (uint64_t)sec < (1ull << 34)) {
		unsigned char b[10] = { 0xd7, 0xff };      /* fixext 8, type -1 */
		uint64_t v = nsec << 34 | (uint64_t)sec;
		for (int i = 0; i < 8; i++) b[2 + i] = (unsigned char)(v >> (8 * (7 - i)));
		json_append(o, b, 10);
	} else {
		unsigned char b[15] = { 0xc7, 12, 0xff };  /* ext 8, 12 bytes, type -1 */
		for (int i = 0; i < 4; i++) b[3 + i] = (unsigned char)(nsec >> (8 * (3 - i)));
		for (int i = 0; i < 8; i++) b[7 + i] = (unsigned char)((uint64_t)sec >> (8 * (7 - i)));
		json_append(o, b, 15);
	}
}

/* A JSON number: an integer when it has no fraction or exponent and fits,
 * else a float64 (docs/protocol.md#messagepack). */
static void put_number(struct jbuf *o, const char *s, size_t n)
{
	char small[64], *buf = n < sizeof(small) ? small : malloc(n + 1);
	if (!buf) { o->failed = 1; return; }
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!strpbrk(buf, ".eE")) {
		char *end;
		errno = 0;
		if (buf[0] == '-') {
			long long v = strtoll(buf, &end, 10);
			if (!errno && !*end) { put_int(o, v); goto done; }
		} else {
			unsigned long long v = strtoull(buf, &end, 10);
			if (!errno && !*end) { put_uint(o, v); goto done; }
		}
	}
	put_double(o, strtod(buf, NULL));
done:
	if (buf != small) free(buf);
}

int mp_from_json(struct jbuf *o, const char *json, size_t len)
{
	struct json_tok *t;
	int n = json_parse_alloc(json, len, MP_FROM_JSON_MAX_DEPTH, &t);
	if (n <= 0) return -1;

	size_t mark = o->len;
	char *tmp = NULL;
	size_t tmp_cap = 0;
	for (int i = 0; i < n && !o->failed; i++) {
		switch (t[i].type) {
		case JSON_NULL:  put8(o, 0xc0); break;
		case JSON_FALSE: put8(o, 0xc2); break;
		case JSON_TRUE:  put8(o, 0xc3); break;
		case JSON_NUMBER: put_number(o, json + t[i].start, t[i].len); break;
		case JSON_ARRAY:  put_len(o, t[i].size, 0x90, 15, 0, 0xdc, 0xdd); break;
		case JSON_OBJECT: put_len(o, t[i].size, 0x80, 15, 0, 0xde, 0xdf); break;
		case JSON_STRING: {
			/* Unescaping never makes a string longer. */
			if (tmp_cap < (size_t)t[i].len + 1) {
				free(tmp);
				tmp_cap = (size_t)t[i].len + 1;
				if (!(tmp = malloc(tmp_cap))) { o->failed = 1; break; }
			}
			ssize_t sl = json_str_decode(json, t, i, tmp, tmp_cap);
			if (sl < 0) { o->failed = 1; break; }
			put_str(o, tmp, (size_t)sl);
			break;
		}
		}
	}
	free(tmp);
	free(t);
	if (o->failed) {
		o->len = mark;
		o->failed = 0;
		return -1;
	}
	return 0;
}

/* ---- reading ------------------------------------------------------------- */

struct rd {
	const unsigned char *p;
	size_t n, i;
};

static int need(const struct rd *r, size_t k)
{
	return r->n - r->i >= k;
}

static uint64_t be(const struct rd *r, int k)
{
	uint64_t v = 0;
	for (int j = 0; j < k; j++) v = v << 8 | r->p[r->i + (size_t)j];
	return v;
}

/* Open containers: items left, and for maps whether a key comes next. */
struct level {
	uint64_t left;
	int map, want_key;
};

/* Reads a length of k bytes after the tag; -1 if truncated. */
static int64_t read_len(struct rd *r, int k)
{
	if (!need(r, (size_t)k)) return -1;
	uint64_t v = be(r, k);
	r->i += (size_t)k;
	return (int64_t)v;
}

static void emit_base64(struct jbuf *o, const unsigned char *p, size_t n)
{
	char *tmp = malloc(BASE64_ENCODED_LEN(n) + 1);
	if (!tmp) { o->failed = 1; return; }
	size_t el = base64_encode(p, n, tmp);
	json_str(o, tmp, el);
	free(tmp);
}

int mp_to_json(struct jbuf *o, const unsigned char *mp, size_t len, int maxdepth)
{
	struct level st[MP_MAX_DEPTH + 1];
	int depth = 0;
	struct rd r = { mp, len, 0 };
	/* What to restore on failure: the output and the emitter's state. */
	size_t mark = o->len;
	unsigned o_depth = o->depth;
	uint64_t o_items = o->has_items;
	int o_after_key = o->after_key;
	char key[64];
	if (maxdepth > MP_MAX_DEPTH - (int)o->depth) maxdepth = MP_MAX_DEPTH - (int)o->depth;

	do {
		/* A map key that is not a string is written as its text. */
		int as_key = depth > 0 && st[depth - 1].map && st[depth - 1].want_key;
		if (depth > 0) {
			st[depth - 1].left--;
			if (st[depth - 1].map) st[depth - 1].want_key = !st[depth - 1].want_key;
		}
		if (!need(&r, 1)) goto bad;
		unsigned tag = r.p[r.i++];
		int64_t n = -1;
		int container = 0, is_map = 0;

		if (tag <= 0x7f || tag >= 0xe0 || (tag >= 0xcc && tag <= 0xd3)) {
			/* integers */
			int64_t sv = 0;
			uint64_t uv = 0;
			int is_unsigned = 0;
			if (tag <= 0x7f) { uv = tag; is_unsigned = 1; }
			else if (tag >= 0xe0) sv = (int8_t)tag;
			else {
				static const int sizes[] = { 1, 2, 4, 8, 1, 2, 4, 8 };
				int k = sizes[tag - 0xcc];
				if (!need(&r, (size_t)k)) goto bad;
				uint64_t v = be(&r, k);
				r.i += (size_t)k;
				if (tag <= 0xcf) { uv = v; is_unsigned = 1; }
				else if (k == 1) sv = (int8_t)v;
				else if (k == 2) sv = (int16_t)v;
				else if (k == 4) sv = (int32_t)v;
				else sv = (int64_t)v;
			}
			if (as_key) {
				if (is_unsigned) snprintf(key, sizeof(key), "%llu", (unsigned long long)uv);
				else snprintf(key, sizeof(key), "%lld", (long long)sv);
				json_key(o, key);
			} else if (is_unsigned) {
				json_uint(o, uv);
			} else {
				json_int(o, sv);
			}
		} else if ((tag & 0xf0) == 0x80 || tag == 0xde || tag == 0xdf) {
			n = (tag & 0xf0) == 0x80 ? (int64_t)(tag & 0x0f) : read_len(&r, tag == 0xde ? 2 : 4);
			container = 1;
			is_map = 1;
		} else if ((tag & 0xf0) == 0x90 || tag == 0xdc || tag == 0xdd) {
			n = (tag & 0xf0) == 0x90 ? (int64_t)(tag & 0x0f) : read_len(&r, tag == 0xdc ? 2 : 4);
			container = 1;
		} else if ((tag & 0xe0) == 0xa0 || tag == 0xd9 || tag == 0xda || tag == 0xdb ||
			   tag == 0xc4 || tag == 0xc5 || tag == 0xc6) {
			int bin = tag >= 0xc4 && tag <= 0xc6;
			if ((tag & 0xe0) == 0xa0) n = tag & 0x1f;
			else if (tag == 0xd9 || tag == 0xc4) n = read_len(&r, 1);
			else if (tag == 0xda || tag == 0xc5) n = read_len(&r, 2);
			else n = read_len(&r, 4);
			if (n < 0 || !need(&r, (size_t)n)) goto bad;
			const unsigned char *s = r.p + r.i;
			r.i += (size_t)n;
			if (as_key && !bin) json_keyn(o, (const char *)s, (size_t)n);
			else if (as_key) goto bad;             /* bin keys are not text */
			else if (bin) emit_base64(o, s, (size_t)n);
			else json_str(o, (const char *)s, (size_t)n);   /* invalid UTF-8 becomes U+FFFD */
		} else if (tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
			if (as_key) json_key(o, tag == 0xc0 ? "null" : tag == 0xc2 ? "false" : "true");
			else if (tag == 0xc0) json_null(o);
			else json_bool(o, tag == 0xc3);
		} else if (tag == 0xca || tag == 0xcb) {
			double d;
			if (tag == 0xca) {
				if (!need(&r, 4)) goto bad;
				uint32_t bits = (uint32_t)be(&r, 4);
				float f;
				memcpy(&f, &bits, 4);
				d = f;
				r.i += 4;
			} else {
				if (!need(&r, 8)) goto bad;
				uint64_t bits = be(&r, 8);
				memcpy(&d, &bits, 8);
				r.i += 8;
			}
			if (as_key) {
				/* The key is the value's JSON text, as json_double writes it. */
				struct jbuf kt;
				json_init(&kt);
				json_double(&kt, d);
				if (kt.failed) { json_free(&kt); goto bad; }
				json_keyn(o, kt.buf, kt.len);
				json_free(&kt);
			} else {
				json_double(o, d);
			}
		} else {
			goto bad;      /* 0xc1 (never used) and ext types */
		}

		if (container) {
			if (n < 0 || as_key || depth >= maxdepth) goto bad;
			/* Each element takes at least one byte: refuse absurd counts early. */
			if ((uint64_t)n * (is_map ? 2 : 1) > len - r.i) goto bad;
			if (is_map) json_obj_begin(o); else json_arr_begin(o);
			st[depth++] = (struct level){ (uint64_t)n * (is_map ? 2 : 1), is_map, 1 };
		}
		/* Close every container that is complete. */
		while (depth > 0 && st[depth - 1].left == 0) {
			if (st[depth - 1].map) json_obj_end(o); else json_arr_end(o);
			depth--;
		}
	} while (depth > 0 && !o->failed);

	if (o->failed || r.i != len) goto bad;
	return 0;
bad:
	o->len = mark;
	o->failed = 0;
	o->depth = o_depth;
	o->after_key = o_after_key;
	o->has_items = o_items;
	return -1;
}

/* The length of the one MessagePack value at p[0..n): containers are
 * walked by a count of items still owed, without recursion. -1 when it
 * is malformed or cut short. */
static int64_t mp_span(const unsigned char *p, size_t n)
{
	struct rd r = { p, n, 0 };
	uint64_t owed = 1;
	while (owed) {
		if (owed > r.n - r.i) return -1;     /* every item takes a byte at least */
		unsigned t = r.p[r.i++];
		uint64_t items = 0;
		int64_t skip = 0, k = 0;
		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) skip = 0;
		else if (t <= 0x8f) items = 2 * (uint64_t)(t & 0x0f);
		else if (t <= 0x9f) items = t & 0x0f;
		else if (t <= 0xbf) skip = t & 0x1f;
		else if (t == 0xc4 || t == 0xd9) skip = read_len(&r, 1);
		else if (t == 0xc5 || t == 0xda) skip = read_len(&r, 2);
		else if (t == 0xc6 || t == 0xdb) skip = read_len(&r, 4);
		else if (t >= 0xc7 && t <= 0xc9) skip = (k = read_len(&r, t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4)) < 0 ? -1 : k + 1;
		else if (t == 0xca || t == 0xce || t == 0xd2) skip = 4;
		else if (t == 0xcb || t == 0xcf || t == 0xd3) skip = 8;
		else if (t == 0xcc || t == 0xd0) skip = 1;
		else if (t == 0xcd || t == 0xd1) skip = 2;
		else if (t >= 0xd4 && t <= 0xd8) skip = 1 + (1 << (t - 0xd4));
		else if (t >= 0xdc && t <= 0xdf) {
			if ((k = read_len(&r, t & 1 ? 4 : 2)) < 0) return -1;
			items = (uint64_t)k * (t >= 0xde ? 2 : 1);
		} else {
			return -1;                       /* 0xc1: never used */
		}
		if (skip < 0 || !need(&r, (size_t)skip)) return -1;
		r.i += (size_t)skip;
		owed = owed - 1 + items;
	}
	return (int64_t)r.i;
}

/* 1 when the value at p[0..n) is the string key[0..klen). */
static int is_str(const unsigned char *p, size_t n, const char *key, size_t klen)
{
	size_t h = p[0] >= 0xa0 && p[0] <= 0xbf ? 1 : p[0] == 0xd9 ? 2 : p[0] == 0xda ? 3 : p[0] == 0xdb ? 5 : 0;
	return h && n - h == klen && memcmp(p + h, key, klen) == 0;
}

int mp_map_field_json(struct jbuf *out, const unsigned char *mp, size_t len, const char *key, int maxdepth)
{
	struct rd r = { mp, len, 0 };
	if (!need(&r, 1)) return -1;
	unsigned t = mp[r.i++];
	int64_t pairs = t >= 0x80 && t <= 0x8f ? (int64_t)(t & 0x0f) : t == 0xde ? read_len(&r, 2) : t == 0xdf ? read_len(&r, 4) : -1;
	size_t klen = strlen(key);
	for (int64_t i = 0; i < pairs; i++) {
		int64_t ks = mp_span(mp + r.i, len - r.i);
		if (ks < 0) return -1;
		const unsigned char *kp = mp + r.i;
		r.i += (size_t)ks;
		int64_t vs = mp_span(mp + r.i, len - r.i);
		if (vs < 0) return -1;
		if (is_str(kp, (size_t)ks, key, klen)) return mp_to_json(out, mp + r.i, (size_t)vs, maxdepth);
		r.i += (size_t)vs;
	}
	return -1;
}
