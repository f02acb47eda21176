/* test_msgpack.c - JSON <-> MessagePack transcoding (msgpack.h). JSON ->
 * MessagePack is compared byte for byte with hand-written encodings at
 * every format boundary (fixint/8/16/32/64, fixstr/str8/16/32, fix/16/32
 * containers, float64 for fractions, exponents and out-of-range integers);
 * MessagePack -> JSON is checked for every type and every refusal: each
 * prefix of several valid encodings (copied to an exact-size heap block so
 * ASan sees any over-read), trailing bytes, 0xc1, ext types, bin keys,
 * impossible counts and depth. Round trips go both ways and compare
 * token by token. After a -1 the output buffer must be usable again. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "json.h"
#include "json_parse.h"
#include "msgpack.h"

/* ---- helpers ------------------------------------------------------------ */

/* Hex dump of a short prefix, for failure messages. */
static const char *hex(const void *p, size_t n)
{
	static char s[3 * 24 + 8];
	const unsigned char *b = p;
	size_t i, k = 0;

	for (i = 0; i < n && i < 24; i++)
		k += (size_t)snprintf(s + k, sizeof s - k, "%02x ", b[i]);
	if (n > 24)
		snprintf(s + k, sizeof s - k, "...");
	else if (k)
		s[k - 1] = '\0';
	else
		s[0] = '\0';
	return s;
}

/* mp_from_json(json) must give exactly want[0..wn), appended after a prefix
 * that stays intact. */
static void from_json(const char *json, size_t jn, const void *want, size_t wn, int line)
{
	struct jbuf b;
	int r;

	json_init(&b);
	json_append(&b, "pre", 3);
	r = mp_from_json(&b, json, jn);
	CHECKF(r == 0 && !b.failed && b.len == 3 + wn && memcmp(b.buf, "pre", 3) == 0 &&
	       memcmp(b.buf + 3, want, wn) == 0,
	       "line %d: %.40s -> r=%d len=%zu, got %s", line, json, r, b.len - 3,
	       hex(b.buf + 3, b.len - 3));
	json_free(&b);
}

#define FJ(json, ...) do { \
	static const unsigned char w_[] = { __VA_ARGS__ }; \
	from_json(json, strlen(json), w_, sizeof w_, __LINE__); \
} while (0)

/* mp_from_json must refuse and leave the buffer exactly as it was. */
static void from_json_bad(const char *json, size_t jn, int line)
{
	struct jbuf b;
	int r;

	json_init(&b);
	json_append(&b, "keep", 4);
	r = mp_from_json(&b, json, jn);
	CHECKF(r == -1 && !b.failed && b.len == 4 && memcmp(b.buf, "keep", 4) == 0,
	       "line %d: %.40s -> r=%d len=%zu", line, json, r, b.len);
	json_free(&b);
}

#define FJ_BAD(json) from_json_bad(json, strlen(json), __LINE__)

/* mp_to_json(mp) must give exactly the JSON text want, which must validate. */
static void to_json(const void *mp, size_t n, int maxdepth, const char *want, int line)
{
	struct jbuf b;
	unsigned char *copy = malloc(n ? n : 1);   /* exact size: over-reads trip ASan */
	int r;

	memcpy(copy, mp, n);
	json_init(&b);
	r = mp_to_json(&b, copy, n, maxdepth);
	CHECKF(r == 0 && !b.failed && b.len == strlen(want) && memcmp(b.buf, want, b.len) == 0,
	       "line %d: %s -> r=%d, got %.*s, want %s", line, hex(mp, n), r, (int)b.len,
	       b.buf ? b.buf : "", want);
	if (r == 0)
		CHECKF(json_validate(b.buf, b.len), "line %d: invalid JSON %.*s", line, (int)b.len, b.buf);
	json_free(&b);
	free(copy);
}

#define TJ(want, ...) do { \
	static const unsigned char m_[] = { __VA_ARGS__ }; \
	to_json(m_, sizeof m_, MP_MAX_DEPTH, want, __LINE__); \
} while (0)

/* mp_to_json must refuse; the buffer keeps its old contents and works on. */
static void to_json_bad(const void *mp, size_t n, int maxdepth, int line)
{
	struct jbuf b;
	unsigned char *copy = malloc(n ? n : 1);
	int r;

	memcpy(copy, mp, n);
	json_init(&b);
	json_append(&b, "keep", 4);
	r = mp_to_json(&b, copy, n, maxdepth);
	CHECKF(r == -1 && !b.failed && b.len == 4 && memcmp(b.buf, "keep", 4) == 0,
	       "line %d: %s (%zu bytes) -> r=%d, out %.*s", line, hex(mp, n), n, r,
	       (int)b.len, b.buf);
	/* Reusable: a fresh value appends cleanly after the refusal. */
	r = mp_to_json(&b, (const unsigned char *)"\x01", 1, maxdepth);
	CHECKF(r == 0 && !b.failed && b.len == 5 && memcmp(b.buf, "keep1", 5) == 0,
	       "line %d: buffer not reusable after -1: %.*s", line, (int)b.len, b.buf);
	json_free(&b);
	free(copy);
}

#define TJ_BAD(...) do { \
	static const unsigned char m_[] = { __VA_ARGS__ }; \
	to_json_bad(m_, sizeof m_, MP_MAX_DEPTH, __LINE__); \
} while (0)

/* Every proper prefix of a valid encoding is refused. */
static void truncations(const void *mp, size_t n, int line)
{
	size_t cut;
	for (cut = 0; cut < n; cut++)
		to_json_bad(mp, cut, MP_MAX_DEPTH, line);
}

#define CUTS(...) do { \
	static const unsigned char m_[] = { __VA_ARGS__ }; \
	truncations(m_, sizeof m_, __LINE__); \
} while (0)

/* Big-endian header: tag then n bytes of v. */
static size_t hdr(unsigned char *p, unsigned tag, uint64_t v, int n)
{
	int i;
	p[0] = (unsigned char)tag;
	for (i = 0; i < n; i++)
		p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
	return (size_t)n + 1;
}

/* ---- JSON -> MessagePack ------------------------------------------------ */

static void test_from_json_ints(void)
{
	FJ("0", 0x00);
	FJ("1", 0x01);
	FJ("127", 0x7f);
	FJ("128", 0xcc, 0x80);
	FJ("255", 0xcc, 0xff);
	FJ("256", 0xcd, 0x01, 0x00);
	FJ("65535", 0xcd, 0xff, 0xff);
	FJ("65536", 0xce, 0x00, 0x01, 0x00, 0x00);
	FJ("4294967295", 0xce, 0xff, 0xff, 0xff, 0xff);
	FJ("4294967296", 0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00);
	FJ("9223372036854775807", 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	FJ("9223372036854775808", 0xcf, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("18446744073709551615", 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	/* One past uint64: a float64 (2^64 = 0x43f0000000000000). */
	FJ("18446744073709551616", 0xcb, 0x43, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("-1", 0xff);
	FJ("-32", 0xe0);
	FJ("-33", 0xd0, 0xdf);
	FJ("-128", 0xd0, 0x80);
	FJ("-129", 0xd1, 0xff, 0x7f);
	FJ("-32768", 0xd1, 0x80, 0x00);
	FJ("-32769", 0xd2, 0xff, 0xff, 0x7f, 0xff);
	FJ("-2147483648", 0xd2, 0x80, 0x00, 0x00, 0x00);
	FJ("-2147483649", 0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff);
	FJ("-9223372036854775808", 0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	/* One past int64: float64 -2^63 = 0xc3e0000000000000. */
	FJ("-9223372036854775809", 0xcb, 0xc3, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("-0", 0x00);   /* integral, and zero */
	/* Far out of range with no fraction: still a float64. */
	FJ("100000000000000000000", 0xcb, 0x44, 0x15, 0xaf, 0x1d, 0x78, 0xb5, 0x8c, 0x40);
}

static void test_from_json_floats(void)
{
	FJ("1.5", 0xcb, 0x3f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("1e3", 0xcb, 0x40, 0x8f, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("1E3", 0xcb, 0x40, 0x8f, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("1e+3", 0xcb, 0x40, 0x8f, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("1.0", 0xcb, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("0.0", 0xcb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("-0.0", 0xcb, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("-1.5", 0xcb, 0xbf, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	FJ("0.1", 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
	FJ("1e-3", 0xcb, 0x3f, 0x50, 0x62, 0x4d, 0xd2, 0xf1, 0xa9, 0xfc);
	FJ("5e-324", 0xcb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01);
	FJ("1.7976931348623157e308", 0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

	/* Long numbers: more digits than the transcoder's 400-byte buffer.
	 * "1" + 400 zeros + "e-400" is exactly 1.0, and "0." + 450 zeros +
	 * "1e451" is 1.0 too; the exponent sits past byte 400. */
	{
		static char s[1024];
		size_t k = 0;
		static const unsigned char one[] = { 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0 };

		s[k++] = '1';
		memset(s + k, '0', 400);
		k += 400;
		memcpy(s + k, "e-400", 5);
		k += 5;
		from_json(s, k, one, sizeof one, __LINE__);

		k = 0;
		memcpy(s, "0.", 2);
		k = 2;
		memset(s + k, '0', 450);
		k += 450;
		memcpy(s + k, "1e451", 5);
		k += 5;
		from_json(s, k, one, sizeof one, __LINE__);

		/* Many fraction digits without exponent: rounding only. */
		k = 0;
		memcpy(s, "1.", 2);
		k = 2;
		memset(s + k, '0', 600);
		k += 600;
		from_json(s, k, one, sizeof one, __LINE__);
	}
}

/* A string of n 'x' bytes must get header h[0..hn). */
static void str_len_case(size_t n, const unsigned char *h, size_t hn, int line)
{
	char *json = malloc(n + 2);
	unsigned char *want = malloc(hn + n);

	json[0] = '"';
	memset(json + 1, 'x', n);
	json[n + 1] = '"';
	memcpy(want, h, hn);
	memset(want + hn, 'x', n);
	from_json(json, n + 2, want, hn + n, line);
	free(json);
	free(want);
}

#define STRLEN(n, ...) do { \
	static const unsigned char h_[] = { __VA_ARGS__ }; \
	str_len_case(n, h_, sizeof h_, __LINE__); \
} while (0)

static void test_from_json_strings(void)
{
	STRLEN(0, 0xa0);
	STRLEN(1, 0xa1);
	STRLEN(31, 0xbf);
	STRLEN(32, 0xd9, 32);
	STRLEN(255, 0xd9, 0xff);
	STRLEN(256, 0xda, 0x01, 0x00);
	STRLEN(65535, 0xda, 0xff, 0xff);
	STRLEN(65536, 0xdb, 0x00, 0x01, 0x00, 0x00);

	FJ("\"a\\nb\"", 0xa3, 'a', '\n', 'b');
	FJ("\"\\\"\\\\\\/\\b\\f\\r\\t\"", 0xa7, '"', '\\', '/', '\b', '\f', '\r', '\t');
	FJ("\"\\u00e9\"", 0xa2, 0xc3, 0xa9);
	FJ("\"\xc3\xa9\"", 0xa2, 0xc3, 0xa9);                 /* raw UTF-8 passes through */
	FJ("\"\\u20ac\"", 0xa3, 0xe2, 0x82, 0xac);
	FJ("\"\\ud83d\\ude00\"", 0xa4, 0xf0, 0x9f, 0x98, 0x80);
	FJ("\"\\uD83D\\uDE00\"", 0xa4, 0xf0, 0x9f, 0x98, 0x80);
	FJ("\"\\u0000\"", 0xa1, 0x00);
	FJ("\"\\ud800\"", 0xa3, 0xef, 0xbf, 0xbd);            /* lone surrogate: U+FFFD */

	/* The header counts decoded bytes, not JSON text: 31 escapes stay a
	 * fixstr, 32 need str8 though the JSON is 64 bytes. */
	{
		char json[200];
		unsigned char want[200];
		int n;

		for (n = 31; n <= 32; n++) {
			size_t k = 0, w = 0;
			int i;
			json[k++] = '"';
			for (i = 0; i < n; i++) { json[k++] = '\\'; json[k++] = 'n'; }
			json[k++] = '"';
			if (n == 31) want[w++] = 0xbf;
			else { want[w++] = 0xd9; want[w++] = 32; }
			memset(want + w, '\n', (size_t)n);
			from_json(json, k, want, w + (size_t)n, __LINE__);
		}
	}
}

/* An array of n zeros, or an object of n members "hhhh":0 (distinct keys). */
static void container_case(size_t n, int obj, const unsigned char *h, size_t hn, int line)
{
	size_t jcap = 2 + n * 10, wcap = hn + n * 6, k = 0, w = 0, i;
	char *json = malloc(jcap);
	unsigned char *want = malloc(wcap);

	json[k++] = obj ? '{' : '[';
	memcpy(want, h, hn);
	w = hn;
	for (i = 0; i < n; i++) {
		if (i)
			json[k++] = ',';
		if (obj) {
			char key[8];
			snprintf(key, sizeof key, "%04zx", i);
			json[k++] = '"';
			memcpy(json + k, key, 4);
			k += 4;
			json[k++] = '"';
			json[k++] = ':';
			want[w++] = 0xa4;
			memcpy(want + w, key, 4);
			w += 4;
		}
		json[k++] = '0';
		want[w++] = 0x00;
	}
	json[k++] = obj ? '}' : ']';
	from_json(json, k, want, w, line);
	free(json);
	free(want);
}

#define ARR(n, ...) do { \
	static const unsigned char h_[] = { __VA_ARGS__ }; \
	container_case(n, 0, h_, sizeof h_, __LINE__); \
} while (0)
#define OBJ(n, ...) do { \
	static const unsigned char h_[] = { __VA_ARGS__ }; \
	container_case(n, 1, h_, sizeof h_, __LINE__); \
} while (0)

static void test_from_json_containers(void)
{
	ARR(0, 0x90);
	ARR(1, 0x91);
	ARR(15, 0x9f);
	ARR(16, 0xdc, 0x00, 0x10);     /* no array8 in MessagePack */
	ARR(255, 0xdc, 0x00, 0xff);
	ARR(256, 0xdc, 0x01, 0x00);
	ARR(65535, 0xdc, 0xff, 0xff);
	ARR(65536, 0xdd, 0x00, 0x01, 0x00, 0x00);
	OBJ(0, 0x80);
	OBJ(1, 0x81);
	OBJ(15, 0x8f);
	OBJ(16, 0xde, 0x00, 0x10);
	OBJ(65535, 0xde, 0xff, 0xff);
	OBJ(65536, 0xdf, 0x00, 0x01, 0x00, 0x00);

	FJ("true", 0xc3);
	FJ("false", 0xc2);
	FJ("null", 0xc0);
	FJ("[true,false,null]", 0x93, 0xc3, 0xc2, 0xc0);
	FJ("{\"a\":[1,{\"b\":null}],\"c\":true}",
	   0x82, 0xa1, 'a', 0x92, 0x01, 0x81, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc3);
	FJ("[[[[]]]]", 0x91, 0x91, 0x91, 0x90);
	FJ("[{},{\"\":[]}]", 0x92, 0x80, 0x81, 0xa0, 0x90);
	FJ("{\"k\":{\"k\":{}}}", 0x81, 0xa1, 'k', 0x81, 0xa1, 'k', 0x80);
	/* Member order and duplicate names are kept as written. */
	FJ("{\"b\":1,\"a\":2,\"b\":3}", 0x83, 0xa1, 'b', 1, 0xa1, 'a', 2, 0xa1, 'b', 3);
	/* An escaped key. */
	FJ("{\"\\u00e9\":1}", 0x81, 0xa2, 0xc3, 0xa9, 0x01);
	/* Surrounding and inner whitespace. */
	FJ(" \t\r\n[ 1 ,\n2 ] \n", 0x92, 0x01, 0x02);
	FJ("  7  ", 0x07);
	FJ("\n{ \"a\" : \"b\" }\t", 0x81, 0xa1, 'a', 0xa1, 'b');
}

/* depth nested arrays (or objects {"a":...}) around a 0. */
static char *nested(int depth, int obj, size_t *len)
{
	char *s = malloc((size_t)depth * 6 + 2);
	size_t k = 0;
	int i;

	for (i = 0; i < depth; i++) {
		if (obj) { memcpy(s + k, "{\"a\":", 5); k += 5; }
		else s[k++] = '[';
	}
	s[k++] = '0';
	for (i = 0; i < depth; i++)
		s[k++] = obj ? '}' : ']';
	*len = k;
	return s;
}

static void test_from_json_errors(void)
{
	static const char *bad[] = {
		"", " ", "[", "]", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}",
		"{1:2}", "{'a':1}", "01", "+1", ".5", "1.", "1e", "-", "--1", "0x10",
		"NaN", "Infinity", "tru", "nul", "True", "\"abc", "\"\\x\"",
		"\"\\u12\"", "\"\xff\"", "\"\xc3\"", "\"a\tb\"", "1 2", "[1]x", "{}{}",
		"[1]]", "\"a\"\"b\"", "/*c*/1",
	};
	size_t i, n;
	char *s;
	int d;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		from_json_bad(bad[i], strlen(bad[i]), __LINE__);
	/* A NUL inside the span is not JSON either. */
	from_json_bad("[1]\0", 4, __LINE__);
	from_json_bad("\"a\0b\"", 5, __LINE__);

	/* MP_FROM_JSON_MAX_DEPTH levels transcode (any payload JSON clients get
	 * as JSON, inside its message); one more is refused. */
	CHECK(MP_FROM_JSON_MAX_DEPTH >= JSON_VALIDATE_MAX_DEPTH + 2);
	for (d = 0; d < 2; d++) {
		unsigned char *want = malloc(MP_FROM_JSON_MAX_DEPTH * 3 + 1);
		size_t w = 0;
		int k;

		for (k = 0; k < MP_FROM_JSON_MAX_DEPTH; k++) {
			if (d) { want[w++] = 0x81; want[w++] = 0xa1; want[w++] = 'a'; }
			else want[w++] = 0x91;
		}
		want[w++] = 0x00;
		s = nested(MP_FROM_JSON_MAX_DEPTH, d, &n);
		from_json(s, n, want, w, __LINE__);
		free(s);
		s = nested(MP_FROM_JSON_MAX_DEPTH + 1, d, &n);
		from_json_bad(s, n, __LINE__);
		free(s);
		s = nested(10000, d, &n);
		from_json_bad(s, n, __LINE__);
		free(s);
		free(want);
	}

	/* A refusal leaves a buffer with earlier MessagePack in it usable. */
	{
		struct jbuf b;
		json_init(&b);
		CHECK(mp_from_json(&b, "[1,2]", 5) == 0);
		CHECK(mp_from_json(&b, "[1,2", 4) == -1);
		CHECK(mp_from_json(&b, "\"x\"", 3) == 0);
		CHECK_MEM(b.buf, b.len, "\x92\x01\x02\xa1x", 5);
		CHECK(!b.failed);
		json_free(&b);
	}
}

/* ---- MessagePack -> JSON ------------------------------------------------ */

static void test_to_json_scalars(void)
{
	TJ("0", 0x00);
	TJ("127", 0x7f);
	TJ("-1", 0xff);
	TJ("-32", 0xe0);
	TJ("255", 0xcc, 0xff);
	TJ("65535", 0xcd, 0xff, 0xff);
	TJ("4294967295", 0xce, 0xff, 0xff, 0xff, 0xff);
	TJ("18446744073709551615", 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	TJ("-128", 0xd0, 0x80);
	TJ("127", 0xd0, 0x7f);
	TJ("-32768", 0xd1, 0x80, 0x00);
	TJ("-2147483648", 0xd2, 0x80, 0x00, 0x00, 0x00);
	TJ("-9223372036854775808", 0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	TJ("9223372036854775807", 0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	/* Non-canonical (wider than needed) forms are accepted. */
	TJ("0", 0xcc, 0x00);
	TJ("1", 0xcf, 0, 0, 0, 0, 0, 0, 0, 1);
	TJ("-1", 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	TJ("5", 0xd1, 0x00, 0x05);

	TJ("null", 0xc0);
	TJ("false", 0xc2);
	TJ("true", 0xc3);

	/* float32 */
	TJ("1.5", 0xca, 0x3f, 0xc0, 0x00, 0x00);
	TJ("0", 0xca, 0x00, 0x00, 0x00, 0x00);
	TJ("-2", 0xca, 0xc0, 0x00, 0x00, 0x00);
	TJ("0.10000000149011612", 0xca, 0x3d, 0xcc, 0xcc, 0xcd);   /* 0.1f, widened exactly */
	TJ("null", 0xca, 0x7f, 0x80, 0x00, 0x00);                  /* +inf */
	TJ("null", 0xca, 0xff, 0x80, 0x00, 0x00);                  /* -inf */
	TJ("null", 0xca, 0x7f, 0xc0, 0x00, 0x00);                  /* NaN */
	/* float64 */
	TJ("1.5", 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
	TJ("1000", 0xcb, 0x40, 0x8f, 0x40, 0, 0, 0, 0, 0);
	TJ("0.1", 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
	TJ("-0", 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0);
	TJ("5e-324", 0xcb, 0, 0, 0, 0, 0, 0, 0, 1);
	TJ("1.7976931348623157e+308", 0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	TJ("null", 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0);
	TJ("null", 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0);
}

static void test_to_json_strings(void)
{
	TJ("\"\"", 0xa0);
	TJ("\"abc\"", 0xa3, 'a', 'b', 'c');
	TJ("\"abc\"", 0xd9, 0x03, 'a', 'b', 'c');
	TJ("\"abc\"", 0xda, 0x00, 0x03, 'a', 'b', 'c');
	TJ("\"abc\"", 0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c');
	TJ("\"\"", 0xd9, 0x00);
	TJ("\"\"", 0xdb, 0, 0, 0, 0);
	TJ("\"\\\"\\\\\"", 0xa2, '"', '\\');
	TJ("\"\\n\\u0001\\u0000\"", 0xa3, '\n', 0x01, 0x00);
	TJ("\"\xc3\xa9\"", 0xa2, 0xc3, 0xa9);
	TJ("\"\xf0\x9f\x98\x80\"", 0xa4, 0xf0, 0x9f, 0x98, 0x80);
	TJ("\"\\u2028\"", 0xa3, 0xe2, 0x80, 0xa8);
	/* Invalid UTF-8: each bad byte becomes \ufffd (json_str). */
	TJ("\"\\ufffda\"", 0xa2, 0xff, 'a');
	TJ("\"\\ufffd(\"", 0xa2, 0xc3, '(');
	TJ("\"\\ufffd\"", 0xa1, 0xe2);
	TJ("\"\\ufffd\\ufffd\"", 0xa2, 0xc0, 0x80);                   /* overlong NUL */
	TJ("\"\\ufffd\\ufffd\\ufffd\"", 0xa3, 0xed, 0xa0, 0x80);      /* UTF-8 surrogate */
	/* Long strings through str16/str32. */
	{
		size_t n = 70000, k;
		unsigned char *m = malloc(n + 5);
		char *want = malloc(n + 3);
		k = hdr(m, 0xdb, n, 4);
		memset(m + k, 'z', n);
		want[0] = '"';
		memset(want + 1, 'z', n);
		want[n + 1] = '"';
		want[n + 2] = '\0';
		to_json(m, k + n, MP_MAX_DEPTH, want, __LINE__);
		k = hdr(m, 0xda, 300, 2);
		memset(m + k, 'z', 300);
		want[301] = '"';
		want[302] = '\0';
		to_json(m, k + 300, MP_MAX_DEPTH, want, __LINE__);
		free(m);
		free(want);
	}

	/* bin: base64 strings (RFC 4648). */
	TJ("\"\"", 0xc4, 0x00);
	TJ("\"AQID\"", 0xc4, 0x03, 0x01, 0x02, 0x03);
	TJ("\"/w==\"", 0xc4, 0x01, 0xff);
	TJ("\"//4=\"", 0xc5, 0x00, 0x02, 0xff, 0xfe);
	TJ("\"AA==\"", 0xc6, 0x00, 0x00, 0x00, 0x01, 0x00);
	TJ("\"Zm9vYmFy\"", 0xc4, 0x06, 'f', 'o', 'o', 'b', 'a', 'r');
	TJ("[\"AA==\",1]", 0x92, 0xc4, 0x01, 0x00, 0x01);
	TJ("{\"k\":\"+/8=\"}", 0x81, 0xa1, 'k', 0xc4, 0x02, 0xfb, 0xff);
}

static void test_to_json_containers(void)
{
	TJ("[]", 0x90);
	TJ("{}", 0x80);
	TJ("[]", 0xdc, 0x00, 0x00);
	TJ("[]", 0xdd, 0x00, 0x00, 0x00, 0x00);
	TJ("{}", 0xde, 0x00, 0x00);
	TJ("{}", 0xdf, 0x00, 0x00, 0x00, 0x00);
	TJ("[null]", 0xdc, 0x00, 0x01, 0xc0);
	TJ("[1,2,3]", 0xdd, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03);
	TJ("{\"a\":1}", 0xde, 0x00, 0x01, 0xa1, 'a', 0x01);
	TJ("{\"a\":1,\"b\":2}", 0xdf, 0x00, 0x00, 0x00, 0x02, 0xa1, 'a', 0x01, 0xa1, 'b', 0x02);
	TJ("[[],{},[[]],{\"\":{}}]", 0x94, 0x90, 0x80, 0x91, 0x90, 0x81, 0xa0, 0x80);
	TJ("{\"a\":[1,{\"b\":null}],\"c\":true}",
	   0x82, 0xa1, 'a', 0x92, 0x01, 0x81, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc3);
	TJ("[[[[]]]]", 0x91, 0x91, 0x91, 0x90);
	TJ("[{\"x\":[]},[{}],0]", 0x93, 0x81, 0xa1, 'x', 0x90, 0x91, 0x80, 0x00);
	TJ("{\"a\":{\"b\":{\"c\":[]}},\"d\":1}",
	   0x82, 0xa1, 'a', 0x81, 0xa1, 'b', 0x81, 0xa1, 'c', 0x90, 0xa1, 'd', 0x01);
	TJ("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]",
	   0x9f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	TJ("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
	   0xdc, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

	/* Map keys that are not strings become their JSON text as a string. */
	TJ("{\"1\":\"a\"}", 0x81, 0x01, 0xa1, 'a');
	TJ("{\"-1\":null}", 0x81, 0xff, 0xc0);
	TJ("{\"200\":0}", 0x81, 0xcc, 0xc8, 0x00);
	TJ("{\"-200\":0}", 0x81, 0xd1, 0xff, 0x38, 0x00);
	TJ("{\"18446744073709551615\":1}", 0x81, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	TJ("{\"-9223372036854775808\":1}", 0x81, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01);
	TJ("{\"true\":1,\"false\":2,\"null\":3}", 0x83, 0xc3, 0x01, 0xc2, 0x02, 0xc0, 0x03);
	TJ("{\"1.5\":1}", 0x81, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x01);
	TJ("{\"1.5\":1}", 0x81, 0xca, 0x3f, 0xc0, 0x00, 0x00, 0x01);
	TJ("{\"1000\":1}", 0x81, 0xcb, 0x40, 0x8f, 0x40, 0, 0, 0, 0, 0, 0x01);
	/* The JSON text of the double 0.1 is 0.1 (json_double), so is the key. */
	TJ("{\"0.1\":1}", 0x81, 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a, 0x01);
	/* Same key twice is passed on as is. */
	TJ("{\"1\":1,\"1\":2}", 0x82, 0x01, 0x01, 0xa1, '1', 0x02);
	/* String keys: escaping and invalid UTF-8 as for values. */
	TJ("{\"a\\\"b\":0}", 0x81, 0xa3, 'a', '"', 'b', 0x00);
	TJ("{\"\\ufffd\":1}", 0x81, 0xa1, 0xff, 0x01);
	TJ("{\"\":\"\"}", 0x81, 0xd9, 0x00, 0xda, 0x00, 0x00);
	/* Keys of nested maps. */
	TJ("{\"7\":{\"8\":[9]}}", 0x81, 0x07, 0x81, 0x08, 0x91, 0x09);

	/* NaN and infinite keys still give valid JSON (a string of some kind). */
	{
		static const unsigned char nk[] = { 0x82, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0x01,
						    0xca, 0xff, 0x80, 0x00, 0x00, 0x02 };
		struct jbuf b;
		json_init(&b);
		CHECK(mp_to_json(&b, nk, sizeof nk, MP_MAX_DEPTH) == 0);
		CHECKF(json_validate(b.buf, b.len), "%.*s", (int)b.len, b.buf);
		json_free(&b);
	}
}

static void test_to_json_errors(void)
{
	unsigned char big[16];
	size_t i;

	to_json_bad("", 0, MP_MAX_DEPTH, __LINE__);

	/* Every cut of several valid encodings, as exact-size blocks. */
	CUTS(0xcc, 0xff);
	CUTS(0xcd, 0xff, 0xff);
	CUTS(0xce, 0xff, 0xff, 0xff, 0xff);
	CUTS(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	CUTS(0xd0, 0x80);
	CUTS(0xd1, 0x80, 0x00);
	CUTS(0xd2, 0x80, 0x00, 0x00, 0x00);
	CUTS(0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	CUTS(0xca, 0x3f, 0xc0, 0x00, 0x00);
	CUTS(0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
	CUTS(0xa3, 'a', 'b', 'c');
	CUTS(0xd9, 0x03, 'a', 'b', 'c');
	CUTS(0xda, 0x00, 0x03, 'a', 'b', 'c');
	CUTS(0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c');
	CUTS(0xc4, 0x02, 0x01, 0x02);
	CUTS(0xc5, 0x00, 0x02, 0x01, 0x02);
	CUTS(0xc6, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02);
	CUTS(0x92, 0x01, 0x02);
	CUTS(0xdc, 0x00, 0x02, 0x01, 0x02);
	CUTS(0xdd, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02);
	CUTS(0x81, 0xa1, 'a', 0x01);
	CUTS(0xde, 0x00, 0x01, 0xa1, 'a', 0x01);
	CUTS(0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'a', 0x01);
	CUTS(0x82, 0xa1, 'a', 0x92, 0x01, 0x81, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc3);
	CUTS(0x93, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc4, 0x01, 0x00, 0x91, 0x90);
	CUTS(0x81, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90);

	/* Trailing bytes after one complete value. */
	TJ_BAD(0x00, 0x00);
	TJ_BAD(0xc0, 0xc0);
	TJ_BAD(0x90, 0x00);
	TJ_BAD(0x80, 0x80);
	TJ_BAD(0x91, 0x01, 0x02);
	TJ_BAD(0xa1, 'a', 'b');
	TJ_BAD(0xcc, 0x01, 0x00);

	/* 0xc1 is never used. */
	TJ_BAD(0xc1);
	TJ_BAD(0x91, 0xc1);
	TJ_BAD(0x81, 0xc1, 0x00);
	TJ_BAD(0x81, 0x00, 0xc1);

	/* ext types are refused: fixext 1/2/4/8/16, ext 8/16/32. */
	TJ_BAD(0xd4, 0x01, 0x00);
	TJ_BAD(0xd5, 0x01, 0x00, 0x00);
	TJ_BAD(0xd6, 0x01, 0x00, 0x00, 0x00, 0x00);
	TJ_BAD(0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0);
	TJ_BAD(0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	TJ_BAD(0xd6, 0xff, 0x00, 0x00, 0x00, 0x00);       /* timestamp 32 */
	TJ_BAD(0xc7, 0x00, 0x01);
	TJ_BAD(0xc7, 0x01, 0x01, 0x00);
	TJ_BAD(0xc8, 0x00, 0x01, 0x01, 0x00);
	TJ_BAD(0xc9, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00);
	TJ_BAD(0x91, 0xd4, 0x01, 0x00);
	TJ_BAD(0x81, 0xa0, 0xc7, 0x00, 0x01);

	/* Keys that have no text form: bin, arrays, maps. */
	TJ_BAD(0x81, 0xc4, 0x00, 0x01);
	TJ_BAD(0x81, 0xc4, 0x01, 'a', 0x01);
	TJ_BAD(0x81, 0xc5, 0x00, 0x00, 0x01);
	TJ_BAD(0x81, 0x90, 0x01);
	TJ_BAD(0x81, 0x80, 0x01);
	TJ_BAD(0x81, 0x91, 0x00, 0x01);
	TJ_BAD(0x82, 0xa1, 'a', 0x01, 0xc4, 0x00, 0x02);     /* second key */
	/* ...but bin is fine as a value. */
	TJ("{\"a\":\"\"}", 0x81, 0xa1, 'a', 0xc4, 0x00);

	/* Counts larger than the bytes left. */
	TJ_BAD(0xdd, 0xff, 0xff, 0xff, 0xff);
	TJ_BAD(0xdf, 0xff, 0xff, 0xff, 0xff);
	TJ_BAD(0xdc, 0xff, 0xff, 0x00);
	TJ_BAD(0xde, 0xff, 0xff, 0x00, 0x00);
	TJ_BAD(0xde, 0x00, 0x02, 0xa0, 0xc0);             /* 2 members, 1 present */
	TJ_BAD(0x92, 0x01);
	TJ_BAD(0x9f, 0x01, 0x02, 0x03);
	TJ_BAD(0x81, 0xa0);                               /* key without a value */
	TJ_BAD(0x8f, 0xa0, 0x00);
	TJ_BAD(0xd9, 0x05, 'a');
	TJ_BAD(0xda, 0xff, 0xff, 'a');
	TJ_BAD(0xdb, 0xff, 0xff, 0xff, 0xff, 'a');
	TJ_BAD(0xdb, 0x80, 0x00, 0x00, 0x00);
	TJ_BAD(0xc4, 0x05, 0x00);
	TJ_BAD(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00);
	TJ_BAD(0x91, 0xdd, 0xff, 0xff, 0xff, 0xff);
	TJ_BAD(0x92, 0xdb, 0xff, 0xff, 0xff, 0xf0, 0x00);
	/* A count whose doubling for a map would overflow 32 bits. */
	TJ_BAD(0xdf, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00);
	/* An array whose count exactly matches the bytes left is fine. */
	TJ("[0,0]", 0xdd, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00);

	/* A long run of bytes that would each be valid alone. */
	memset(big, 0x01, sizeof big);
	for (i = 2; i <= sizeof big; i++)
		to_json_bad(big, i, MP_MAX_DEPTH, __LINE__);

	/* A failure after output was written (inside a container) rolls the
	 * buffer back too. */
	TJ_BAD(0x93, 0x01, 0x02, 0xc1);
	TJ_BAD(0x82, 0xa1, 'a', 0x01, 0xa1, 'b');
	TJ_BAD(0x92, 0xa3, 'x', 'y', 'z', 0xd4, 0, 0);
}

/* depth nested fixarrays (or fixmaps {"":...}) around 0. */
static unsigned char *mp_nested(int depth, int map, size_t *len)
{
	unsigned char *m = malloc((size_t)depth * 2 + 1);
	size_t k = 0;
	int i;

	for (i = 0; i < depth; i++) {
		if (map) { m[k++] = 0x81; m[k++] = 0xa0; }
		else m[k++] = 0x91;
	}
	m[k++] = 0x00;
	*len = k;
	return m;
}

static char *json_nested_text(int depth, int map)
{
	char *s = malloc((size_t)depth * 5 + 2);
	size_t k = 0;
	int i;

	for (i = 0; i < depth; i++) {
		if (map) { memcpy(s + k, "{\"\":", 4); k += 4; }
		else s[k++] = '[';
	}
	s[k++] = '0';
	for (i = 0; i < depth; i++)
		s[k++] = map ? '}' : ']';
	s[k] = '\0';
	return s;
}

static void test_to_json_depth(void)
{
	int map, d;

	TJ_BAD(0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	       0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	       0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	       0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	       0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	       0x00);                                  /* 65 levels */

	for (map = 0; map < 2; map++) {
		/* At maxdepth 3: three levels pass, four do not. */
		for (d = 0; d <= 5; d++) {
			size_t n;
			unsigned char *m = mp_nested(d, map, &n);
			if (d <= 3) {
				char *want = json_nested_text(d, map);
				to_json(m, n, 3, want, __LINE__);
				free(want);
			} else {
				to_json_bad(m, n, 3, __LINE__);
			}
			free(m);
		}
		/* maxdepth 0 allows scalars only; negative is the same. */
		{
			size_t n;
			unsigned char *m = mp_nested(1, map, &n);
			to_json_bad(m, n, 0, __LINE__);
			to_json_bad(m, n, -1, __LINE__);
			free(m);
			to_json("\x2a", 1, 0, "42", __LINE__);
			to_json("\x2a", 1, -5, "42", __LINE__);
		}
		/* Clamped to MP_MAX_DEPTH: MP_MAX_DEPTH levels pass ("deeper
		 * than maxdepth" is the only depth refusal), one more does not,
		 * whatever maxdepth says. */
		{
			size_t n;
			unsigned char *m = mp_nested(MP_MAX_DEPTH, map, &n);
			char *want = json_nested_text(MP_MAX_DEPTH, map);
			to_json(m, n, MP_MAX_DEPTH, want, __LINE__);
			to_json(m, n, 1000, want, __LINE__);
			free(m);
			free(want);
			m = mp_nested(MP_MAX_DEPTH - 1, map, &n);
			want = json_nested_text(MP_MAX_DEPTH - 1, map);
			to_json(m, n, MP_MAX_DEPTH, want, __LINE__);
			free(m);
			free(want);
			m = mp_nested(MP_MAX_DEPTH + 1, map, &n);
			to_json_bad(m, n, 1000, __LINE__);
			to_json_bad(m, n, MP_MAX_DEPTH + 1, __LINE__);
			free(m);
			m = mp_nested(5000, map, &n);
			to_json_bad(m, n, 1 << 30, __LINE__);
			free(m);
		}
	}
	/* Depth counts open containers, not total ones: many siblings at
	 * depth 2 are fine at maxdepth 2; one of them going a level deeper
	 * needs maxdepth 3. */
	to_json("\x94\x90\x80\x90\x90", 5, 2, "[[],{},[],[]]", __LINE__);
	to_json_bad("\x93\x90\x90\x91\x90", 5, 2, __LINE__);
	to_json("\x93\x90\x90\x91\x90", 5, 3, "[[],[],[[]]]", __LINE__);
	to_json_bad("\x82\xa0\x90\xa1x\x81\xa0\x90", 8, 2, __LINE__);
	to_json("\x82\xa0\x90\xa1x\x81\xa0\x90", 8, 3, "{\"\":[],\"x\":{\"\":[]}}", __LINE__);
}

/* The jbuf after a -1: contents, length and comma state as before. */
static void test_to_json_reuse(void)
{
	struct jbuf b;
	int r;

	/* Plain: old text kept, next value appends. */
	json_init(&b);
	json_append(&b, "abc", 3);
	CHECK(mp_to_json(&b, (const unsigned char *)"\x92\x01\xc1", 3, 8) == -1);
	CHECK_MEM(b.buf, b.len, "abc", 3);
	CHECK(!b.failed);
	CHECK(mp_to_json(&b, (const unsigned char *)"\x92\x01\x02", 3, 8) == 0);
	CHECK_MEM(b.buf, b.len, "abc[1,2]", 8);
	json_free(&b);

	/* As one value inside a document the caller is building. */
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "k");
	CHECK(mp_to_json(&b, (const unsigned char *)"\x92\x01\x02", 3, 8) == 0);
	json_key(&b, "m");
	CHECK(mp_to_json(&b, (const unsigned char *)"\xc0", 1, 8) == 0);
	json_obj_end(&b);
	CHECK(!b.failed);
	CHECK_MEM(b.buf, b.len, "{\"k\":[1,2],\"m\":null}", 20);
	json_free(&b);

	/* A refusal in the middle of the caller's document leaves its comma
	 * and nesting state alone, so the document still comes out right. */
	json_init(&b);
	json_arr_begin(&b);
	json_int(&b, 1);
	r = mp_to_json(&b, (const unsigned char *)"\x92\x01\xc1", 3, 8);
	CHECK(r == -1);
	CHECK(mp_to_json(&b, (const unsigned char *)"\x02", 1, 8) == 0);
	json_arr_end(&b);
	CHECKF(!b.failed && b.len == 5 && memcmp(b.buf, "[1,2]", 5) == 0,
	       "after a -1 inside an array: failed=%d %.*s", b.failed, (int)b.len, b.buf);
	json_free(&b);

	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "a");
	r = mp_to_json(&b, (const unsigned char *)"\xc1", 1, 8);
	CHECK(r == -1);
	json_null(&b);
	json_obj_end(&b);
	CHECKF(!b.failed && b.len == 10 && memcmp(b.buf, "{\"a\":null}", 10) == 0,
	       "after a -1 as a member value: failed=%d %.*s", b.failed, (int)b.len, b.buf);
	json_free(&b);
}

/* ---- round trips -------------------------------------------------------- */

/* a and b are the same JSON document: same token tree, strings equal after
 * unescaping, numbers equal by value (exact decimal, json_value_eq). */
static int json_same(const char *a, size_t an, const char *b, size_t bn)
{
	struct json_tok *ta = malloc((an + 2) * sizeof *ta), *tb = malloc((bn + 2) * sizeof *tb);
	int na = json_parse(a, an, ta, (int)an + 2, JSON_PARSE_MAX_DEPTH);
	int nb = json_parse(b, bn, tb, (int)bn + 2, JSON_PARSE_MAX_DEPTH);
	int i, same = na > 0 && na == nb;

	for (i = 0; same && i < na; i++) {
		const struct json_tok *x = &ta[i], *y = &tb[i];
		size_t q = x->type == JSON_STRING;
		if (x->type != y->type || x->size != y->size || x->next != y->next)
			same = 0;
		else if (x->type == JSON_STRING || x->type == JSON_NUMBER)
			same = json_value_eq(a + x->start - q, x->len + 2 * q,
					     b + y->start - q, y->len + 2 * q);
	}
	free(ta);
	free(tb);
	return same;
}

static void json_round_trip(const char *json, int line)
{
	struct jbuf mp, js, mp2;
	size_t n = strlen(json);

	json_init(&mp);
	json_init(&js);
	json_init(&mp2);
	CHECKF(mp_from_json(&mp, json, n) == 0, "line %d: %s", line, json);
	CHECKF(mp_to_json(&js, (unsigned char *)mp.buf, mp.len, MP_MAX_DEPTH) == 0,
	       "line %d: %.60s -> %s", line, json, hex(mp.buf, mp.len));
	if (!js.len)
		goto out;   /* reported above; the checks below would only repeat it */
	CHECKF(json_validate(js.buf, js.len), "line %d: %.*s", line, (int)js.len, js.buf);
	CHECKF(json_same(json, n, js.buf, js.len), "line %d: %s came back as %.*s",
	       line, json, (int)js.len, js.buf);
	/* The JSON text is a fixed point: a second lap gives it again (the
	 * MessagePack may differ once: 1.0 is float64, its text "1" an int). */
	{
		struct jbuf js2;
		json_init(&js2);
		CHECKF(mp_from_json(&mp2, js.buf, js.len) == 0 &&
		       mp_to_json(&js2, (unsigned char *)mp2.buf, mp2.len, MP_MAX_DEPTH) == 0 &&
		       js2.len == js.len && memcmp(js2.buf, js.buf, js.len) == 0,
		       "line %d: %s: second lap gave %.*s", line, json, (int)js2.len, js2.buf);
		json_free(&js2);
	}
out:
	json_free(&mp);
	json_free(&js);
	json_free(&mp2);
}

#define RT(json) json_round_trip(json, __LINE__)

/* MessagePack -> JSON -> MessagePack gives want (the input itself when it
 * is already in the smallest form with str keys and no bin or float32). */
static void mp_round_trip(const void *m, size_t mn, const void *want, size_t wn, int line)
{
	struct jbuf js, back;

	json_init(&js);
	json_init(&back);
	CHECKF(mp_to_json(&js, m, mn, MP_MAX_DEPTH) == 0, "line %d: %s", line, hex(m, mn));
	CHECKF(mp_from_json(&back, js.buf, js.len) == 0 && back.len == wn &&
	       memcmp(back.buf, want, wn) == 0, "line %d: via %.*s came back as %s",
	       line, (int)js.len, js.buf, hex(back.buf, back.len));
	json_free(&js);
	json_free(&back);
}

#define MRT(...) do { \
	static const unsigned char m_[] = { __VA_ARGS__ }; \
	mp_round_trip(m_, sizeof m_, m_, sizeof m_, __LINE__); \
} while (0)
/* MRT2({input}, expected...) */
#define MRT2(in, ...) do { \
	static const unsigned char i_[] = in, w_[] = { __VA_ARGS__ }; \
	mp_round_trip(i_, sizeof i_, w_, sizeof w_, __LINE__); \
} while (0)
#define B(...) { __VA_ARGS__ }

static void test_round_trips(void)
{
	RT("0");
	RT("-1");
	RT("18446744073709551615");
	RT("-9223372036854775808");
	RT("9223372036854775807");
	RT("1.5");
	RT("-0.25");
	RT("0.1");
	RT("1e300");
	RT("1.0");
	RT("1e3");
	RT("2.5e-8");
	RT("123456789.125");
	RT("true");
	RT("false");
	RT("null");
	RT("\"\"");
	RT("\"plain\"");
	RT("\"a\\nb\\t\\\"q\\\"\\\\\"");
	RT("\"\\u00e9\\u20ac\\ud83d\\ude00\"");
	RT("\"\\u0000\\u001f\\u007f\"");
	RT("\"\\u2028\\u2029\"");
	RT("\"\xe6\x97\xa5\xe6\x9c\xac\"");
	RT("[]");
	RT("{}");
	RT("[[],{},[[]],{\"\":{}}]");
	RT("{\"type\":\"record\",\"topic\":\"t\",\"partition\":3,\"offset\":18446744073709551615,"
	   "\"key\":null,\"value\":{\"n\":-42,\"f\":0.5,\"ok\":true,\"tags\":[\"a\",\"b\"]},"
	   "\"headers\":[[\"h\",\"v\"]],\"ts\":1700000000000}");
	RT("{\"op\":\"subscribe\",\"id\":7,\"channels\":[\"orders\",\"users\"],\"from\":\"latest\"}");
	RT(" [ 1 , [ 2 , [ 3 , { \"x\" : [ ] } ] ] ] ");
	RT("{\"dup\":1,\"dup\":2}");
	RT("[1,-1,127,128,255,256,65535,65536,4294967295,4294967296,-32,-33,-128,-129,"
	   "-32768,-32769,-2147483648,-2147483649]");

	/* Nesting to the limit. */
	{
		int map;
		for (map = 0; map < 2; map++) {
			char *s = json_nested_text(MP_MAX_DEPTH, map);
			json_round_trip(s, __LINE__);
			free(s);
		}
	}

	/* Numbers that do not survive exactly still come back as the same
	 * double. */
	{
		static const char *imprecise[] = {
			"0.1000000000000000000001", "9007199254740993.0", "1e400", "-1e400",
			"123456789012345678901234567890", "-123456789012345678901234567890",
		};
		size_t i;
		for (i = 0; i < sizeof imprecise / sizeof imprecise[0]; i++) {
			struct jbuf mp, js;
			const char *s = imprecise[i];
			double want = strtod(s, NULL);
			json_init(&mp);
			json_init(&js);
			CHECK(mp_from_json(&mp, s, strlen(s)) == 0);
			CHECK(mp_to_json(&js, (unsigned char *)mp.buf, mp.len, 1) == 0);
			json_append(&js, "", 1);
			if (isinf(want))
				CHECKF(strcmp(js.buf, "null") == 0, "%s -> %s", s, js.buf);
			else
				CHECKF(strtod(js.buf, NULL) == want, "%s -> %s", s, js.buf);
			json_free(&mp);
			json_free(&js);
		}
	}

	/* MessagePack already in smallest form comes back byte for byte. */
	MRT(0x00);
	MRT(0x7f);
	MRT(0xcc, 0x80);
	MRT(0xcd, 0x01, 0x00);
	MRT(0xce, 0x00, 0x01, 0x00, 0x00);
	MRT(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	MRT(0xff);
	MRT(0xe0);
	MRT(0xd0, 0xdf);
	MRT(0xd1, 0xff, 0x7f);
	MRT(0xd2, 0xff, 0xff, 0x7f, 0xff);
	MRT(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
	MRT(0xc0);
	MRT(0xc2);
	MRT(0xc3);
	MRT(0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
	MRT(0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
	MRT(0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	MRT(0xcb, 0x00, 0, 0, 0, 0, 0, 0, 1);
	MRT(0xa0);
	MRT(0xa3, 'a', '\n', 'b');
	MRT(0xa4, 0xf0, 0x9f, 0x98, 0x80);
	MRT(0xa3, 0xe2, 0x80, 0xa8);
	MRT(0xd9, 0x20, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
	    'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a');
	MRT(0x90);
	MRT(0x80);
	MRT(0x94, 0x90, 0x80, 0x91, 0x90, 0x81, 0xa0, 0x80);
	MRT(0x82, 0xa1, 'a', 0x92, 0x01, 0x81, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc3);
	MRT(0xdc, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	MRT(0xde, 0x00, 0x10, 0xa1, 'a', 0, 0xa1, 'b', 0, 0xa1, 'c', 0, 0xa1, 'd', 0,
	    0xa1, 'e', 0, 0xa1, 'f', 0, 0xa1, 'g', 0, 0xa1, 'h', 0, 0xa1, 'i', 0, 0xa1, 'j', 0,
	    0xa1, 'k', 0, 0xa1, 'l', 0, 0xa1, 'm', 0, 0xa1, 'n', 0, 0xa1, 'o', 0, 0xa1, 'p', 0);

	/* Forms JSON cannot keep come back in their JSON-shaped equivalents. */
	MRT2(B(0xcc, 0x05), 0x05);                                         /* widest -> smallest */
	MRT2(B(0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05), 0x05);
	MRT2(B(0xd0, 0x7f), 0x7f);
	MRT2(B(0xda, 0x00, 0x01, 'x'), 0xa1, 'x');
	MRT2(B(0xdd, 0, 0, 0, 1, 0xc0), 0x91, 0xc0);
	MRT2(B(0xdf, 0, 0, 0, 1, 0xa0, 0xc0), 0x81, 0xa0, 0xc0);
	MRT2(B(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), 0x01);                 /* 1.0 -> "1" -> int */
	MRT2(B(0xca, 0x3f, 0xc0, 0x00, 0x00), 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);  /* float32 -> 64 */
	MRT2(B(0xca, 0x7f, 0x80, 0x00, 0x00), 0xc0);                       /* inf -> null */
	MRT2(B(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0), 0x00);                    /* -0.0 -> "-0" -> int 0 */
	MRT2(B(0xc4, 0x03, 0x01, 0x02, 0x03), 0xa4, 'A', 'Q', 'I', 'D');   /* bin -> base64 str */
	MRT2(B(0x81, 0x01, 0x02), 0x81, 0xa1, '1', 0x02);                  /* int key -> str */
	MRT2(B(0x81, 0xc3, 0xc2), 0x81, 0xa4, 't', 'r', 'u', 'e', 0xc2);
	MRT2(B(0x81, 0xc0, 0xc0), 0x81, 0xa4, 'n', 'u', 'l', 'l', 0xc0);
	MRT2(B(0xa1, 0xff), 0xa3, 0xef, 0xbf, 0xbd);                       /* bad UTF-8 -> U+FFFD */
}

/* mp_map_field_json: a member's value out of a map, whatever comes
 * before or after it (also values too deep to convert whole). */
static void field(const unsigned char *m, size_t n, const char *key, const char *want, int line)
{
	struct jbuf b;
	json_init(&b);
	int rc = mp_map_field_json(&b, m, n, key, 16);
	if (want) CHECKF(rc == 0 && b.len == strlen(want) && memcmp(b.buf, want, b.len) == 0, "line %d: %d %.*s", line, rc,
			 (int)b.len, b.buf ? b.buf : "");
	else CHECKF(rc == -1, "line %d: found %.*s", line, (int)b.len, b.buf ? b.buf : "");
	json_free(&b);
}

static void test_map_field(void)
{
	/* {"a":[[1]],"id":"x7","z":1} */
	static const unsigned char m1[] = { 0x83, 0xa1, 'a', 0x91, 0x91, 0x01, 0xa2, 'i', 'd', 0xa2, 'x', '7', 0xa1, 'z', 0x01 };
	field(m1, sizeof(m1), "id", "\"x7\"", __LINE__);
	field(m1, sizeof(m1), "a", "[[1]]", __LINE__);
	field(m1, sizeof(m1), "q", NULL, __LINE__);
	/* Every kind of value before the id is stepped over: nil, bool, ints of
	 * each width, floats, str8, bin8, ext, fixext, array16, map16. */
	static const unsigned char m2[] = { 0x8d,
		0xa1, 'a', 0xc0, 0xa1, 'b', 0xc3, 0xa1, 'c', 0xcd, 0x01, 0x02, 0xa1, 'd', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1,
		0xa1, 'e', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xa1, 'f', 0xd9, 0x02, 'h', 'i',
		0xa1, 'g', 0xc4, 0x01, 0xff, 0xa1, 'h', 0xc7, 0x01, 0x05, 0xaa, 0xa1, 'i', 0xd5, 0x05, 0x01, 0x02,
		0xa1, 'j', 0xdc, 0x00, 0x02, 0x01, 0x02, 0xa1, 'k', 0xde, 0x00, 0x01, 0xa1, 'x', 0x90,
		0xd9, 0x02, 'i', 'd', 0x2a, 0xa1, 'l', 0xe0 };
	field(m2, sizeof(m2), "id", "42", __LINE__);
	field(m2, sizeof(m2), "l", "-32", __LINE__);
	/* The id after data 100 levels deep (too deep to convert whole). */
	unsigned char deep[120];
	size_t n = 0;
	deep[n++] = 0x82;
	deep[n++] = 0xa1; deep[n++] = 'd';
	for (int i = 0; i < 100; i++) deep[n++] = 0x91;
	deep[n++] = 0x01;
	deep[n++] = 0xa2; deep[n++] = 'i'; deep[n++] = 'd'; deep[n++] = 0x07;
	field(deep, n, "id", "7", __LINE__);
	struct jbuf b;
	json_init(&b);
	CHECK(mp_to_json(&b, deep, n, 1024) == -1);
	json_free(&b);
	/* Not a map, cut short, a length past the end: no field. */
	static const unsigned char arr[] = { 0x91, 0xa2, 'i', 'd' };
	field(arr, sizeof(arr), "id", NULL, __LINE__);
	field(m1, 8, "id", NULL, __LINE__);
	static const unsigned char big[] = { 0x81, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa2, 'i', 'd', 0x01 };
	field(big, sizeof(big), "id", NULL, __LINE__);
	static const unsigned char c1[] = { 0x81, 0xc1, 0xa2, 'i', 'd' };
	field(c1, sizeof(c1), "id", NULL, __LINE__);
	field(m1, 0, "id", NULL, __LINE__);
}

int main(void)
{
	test_from_json_ints();
	test_from_json_floats();
	test_from_json_strings();
	test_from_json_containers();
	test_from_json_errors();
	test_to_json_scalars();
	test_to_json_strings();
	test_to_json_containers();
	test_to_json_errors();
	test_to_json_depth();
	test_map_field();
	test_to_json_reuse();
	test_round_trips();
	return check_summary("msgpack");
}
