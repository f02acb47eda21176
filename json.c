/* json.c - the JSON (RFC 8259) emitter: values written into a growable
 * buffer that tracks commas and nesting, strings escaped so the output is
 * always valid JSON and safe to embed in JavaScript. Reading JSON
 * (validation, scanning, the control-message parser) is json_parse.c. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "utf8.h"

/* ---- Shared byte-level helper ------------------------------------------ */

/* Inside a string, a byte is "plain" unless it is '"', '\\', a control
 * character or non-ASCII; only those need a closer look. */
static int is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Length of the run of plain bytes at the start of p[0..n). This is the hot
 * loop of both json_str and json_validate, so it tests 8 bytes per step
 * with the classic SWAR tricks: (x - 0x01..) & ~x & 0x80.. is non-zero iff
 * some byte of x is zero, and likewise "less than k" for k <= 0x80. Borrows
 * can flag bytes above a real hit but never below it, so on little-endian
 * machines the lowest flag is exact; elsewhere the byte loop finds it. */
size_t json_plain_run(const unsigned char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, q, b, hit;
		memcpy(&x, p + i, 8);
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		hit = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & highs;
		if (hit) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return i + (size_t)__builtin_ctzll(hit) / 8;
#else
			break;
#endif
		}
	}
	while (i < n && is_plain(p[i]))
		i++;
	return i;
}

/* ---- Emitter ----------------------------------------------------------- */

void json_init(struct jbuf *b)
{
	memset(b, 0, sizeof *b);
}

void json_free(struct jbuf *b)
{
	free(b->buf);
	json_init(b);
}

void json_reset(struct jbuf *b)
{
	/* Also forgets a past failure, so a buffer can be reused after one. */
	b->len = 0;
	b->failed = 0;
	b->depth = 0;
	b->has_items = 0;
	b->after_key = 0;
}

int json_reserve(struct jbuf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return -1;
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX - b->len)
		goto fail;
	need = b->len + extra;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;  /* doubling keeps appends O(1) amortized */
	p = realloc(b->buf, cap);
	if (!p)
		goto fail;
	b->buf = p;
	b->cap = cap;
	return 0;
fail:
	b->failed = 1;
	return -1;
}

void json_append(struct jbuf *b, const void *s, size_t n)
{
	if (n == 0 || json_reserve(b, n))
		return;
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

static void put1(struct jbuf *b, char c)
{
	if (json_reserve(b, 1))
		return;
	b->buf[b->len++] = c;
}

/* Before a value or a key: the comma, unless this is the first element of
 * its container or the value of the key just written. */
static void pre_item(struct jbuf *b)
{
	uint64_t bit;

	if (b->after_key) {
		b->after_key = 0;
		return;
	}
	if (b->depth == 0)
		return;
	bit = 1ull << b->depth;
	if (b->has_items & bit)
		put1(b, ',');
	else
		b->has_items |= bit;
}

static void open_container(struct jbuf *b, char c)
{
	pre_item(b);
	if (b->depth >= JSON_EMIT_MAX_DEPTH) {
		b->failed = 1;  /* has_items has one bit per level */
		return;
	}
	put1(b, c);
	b->depth++;
	b->has_items &= ~(1ull << b->depth);
}

static void close_container(struct jbuf *b, char c)
{
	if (b->depth == 0 || b->after_key) {
		b->failed = 1;  /* unbalanced, or a key without a value: a caller bug */
		return;
	}
	put1(b, c);
	b->depth--;
}

void json_obj_begin(struct jbuf *b) { open_container(b, '{'); }
void json_obj_end(struct jbuf *b)   { close_container(b, '}'); }
void json_arr_begin(struct jbuf *b) { open_container(b, '['); }
void json_arr_end(struct jbuf *b)   { close_container(b, ']'); }

/* The quoted, escaped string; see json.h for the rules. */
static void str_body(struct jbuf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	/* One reservation covers the usual case of nothing to escape. */
	if (json_reserve(b, n + 2))
		return;
	b->buf[b->len++] = '"';
	while (i < n) {
		size_t run = json_plain_run(p + i, n - i), k;
		uint32_t cp;
		char *o;

		if (run) {
			if (json_reserve(b, run))
				return;
			memcpy(b->buf + b->len, p + i, run);
			b->len += run;
			i += run;
			if (i == n)
				break;
		}
		/* Longest output for one input sequence is 6 bytes (\uXXXX). */
		if (json_reserve(b, 6))
			return;
		o = b->buf + b->len;
		if (p[i] < 0x80) {
			unsigned char c = p[i++];
			o[0] = '\\';
			switch (c) {
			case '"':  o[1] = '"';  b->len += 2; continue;
			case '\\': o[1] = '\\'; b->len += 2; continue;
			case '\n': o[1] = 'n';  b->len += 2; continue;
			case '\r': o[1] = 'r';  b->len += 2; continue;
			case '\t': o[1] = 't';  b->len += 2; continue;
			case '\b': o[1] = 'b';  b->len += 2; continue;
			case '\f': o[1] = 'f';  b->len += 2; continue;
			}
			memcpy(o + 1, "u00", 3);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			b->len += 6;
			continue;
		}
		k = utf8_decode(p + i, n - i, &cp);
		if (k == 0) {
			/* One replacement per bad byte, then resync on the next. */
			memcpy(o, "\\ufffd", 6);
			b->len += 6;
			i++;
		} else if (cp == 0x2028 || cp == 0x2029) {
			/* Legal in JSON but line terminators in older JavaScript. */
			memcpy(o, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
			b->len += 6;
			i += k;
		} else {
			memcpy(o, p + i, k);
			b->len += k;
			i += k;
		}
	}
	put1(b, '"');
}

void json_keyn(struct jbuf *b, const char *key, size_t n)
{
	pre_item(b);
	str_body(b, (const unsigned char *)key, n);
	put1(b, ':');
	b->after_key = 1;
}

void json_key(struct jbuf *b, const char *key)
{
	json_keyn(b, key, strlen(key));
}

void json_str(struct jbuf *b, const char *s, size_t n)
{
	pre_item(b);
	str_body(b, (const unsigned char *)s, n);
}

void json_cstr(struct jbuf *b, const char *s)
{
	json_str(b, s, strlen(s));
}

static void put_u64(struct jbuf *b, uint64_t v, int neg)
{
	char tmp[24], *end = tmp + sizeof tmp, *q = end;

	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		*--q = '-';
	json_append(b, q, (size_t)(end - q));
}

void json_int(struct jbuf *b, int64_t v)
{
	pre_item(b);
	/* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
	if (v < 0)
		put_u64(b, 0 - (uint64_t)v, 1);
	else
		put_u64(b, (uint64_t)v, 0);
}

void json_uint(struct jbuf *b, uint64_t v)
{
	pre_item(b);
	put_u64(b, v, 0);
}

void json_double(struct jbuf *b, double v)
{
	char tmp[40], *e;
	int prec, len = 0, x;

	pre_item(b);
	if (!isfinite(v)) {
		json_append(b, "null", 4);  /* JSON has no NaN or infinity (RFC 8259 §6) */
		return;
	}
	/* Fewest digits that read back as the same double. %g output is JSON
	 * number syntax ("1e+20", "-0", "1.5e-07") in the C locale, which
	 * kbridge never changes. Not hot: used for stats, not per record. */
	for (prec = 1; prec <= 17; prec++) {
		len = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* %g goes exponential once the exponent reaches the precision, so
	 * 100 would read "1e+02". Below 1e17 print such values in full: the
	 * digits added are zeros of an exactly representable integer. */
	e = strchr(tmp, 'e');
	if (e && e[1] == '+' && (x = atoi(e + 2)) < 17)
		len = snprintf(tmp, sizeof tmp, "%.*g", x + 1, v);
	json_append(b, tmp, (size_t)len);
}

void json_bool(struct jbuf *b, int v)
{
	pre_item(b);
	if (v)
		json_append(b, "true", 4);
	else
		json_append(b, "false", 5);
}

void json_null(struct jbuf *b)
{
	pre_item(b);
	json_append(b, "null", 4);
}

void json_raw(struct jbuf *b, const char *s, size_t n)
{
	pre_item(b);
	json_append(b, s, n);
}


void json_base64(struct jbuf *b, const void *p, size_t n)
{
	/* Encoded straight into the buffer between two quotes: no temporary. */
	size_t el = BASE64_ENCODED_LEN(n);
	pre_item(b);
	if (json_reserve(b, el + 2) < 0) return;
	b->buf[b->len++] = '"';
	b->len += base64_encode(p, n, b->buf + b->len);
	b->buf[b->len++] = '"';
}
