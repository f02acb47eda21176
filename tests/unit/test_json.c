/* test_json.c - the JSON module: emitter escaping and number forms, comma
 * placement, validator accept/reject tables (RFC 8259 grammar), the token
 * parser's layout and limits, the unescaping helpers, json_top_field and
 * json_value_eq. Long inputs put the interesting byte at every offset so the
 * word-at-a-time fast paths are covered too. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "json.h"
#include "json_parse.h"
#include "utf8.h"

/* ---- Emitter ------------------------------------------------------------ */

/* Runs the statements with a fresh buffer b, then checks the text. */
#define EMITS(want, ...) do { \
	struct jbuf b; \
	json_init(&b); \
	__VA_ARGS__; \
	CHECK(!b.failed); \
	CHECK_MEM(b.buf, b.len, want, sizeof(want) - 1); \
	CHECKF(json_validate(b.buf, b.len), "emitted text not valid: %.*s", (int)b.len, b.buf); \
	json_free(&b); \
} while (0)

static void test_emit_strings(void)
{
	struct jbuf jb;
	char want[16];
	unsigned c;

	json_init(&jb);
	for (c = 0; c < 0x20; c++) {
		char in = (char)c;
		json_reset(&jb);
		json_str(&jb, &in, 1);
		switch (c) {
		case '\b': strcpy(want, "\"\\b\""); break;
		case '\t': strcpy(want, "\"\\t\""); break;
		case '\n': strcpy(want, "\"\\n\""); break;
		case '\f': strcpy(want, "\"\\f\""); break;
		case '\r': strcpy(want, "\"\\r\""); break;
		default: snprintf(want, sizeof want, "\"\\u%04x\"", c);
		}
		CHECKF(jb.len == strlen(want) && memcmp(jb.buf, want, jb.len) == 0,
		       "control 0x%02x gave %.*s", c, (int)jb.len, jb.buf);
	}
	json_free(&jb);

	EMITS("\"\\\"\"", json_str(&b, "\"", 1));
	EMITS("\"\\\\\"", json_str(&b, "\\", 1));
	EMITS("\"/\"", json_str(&b, "/", 1));               /* '/' needs no escape */
	EMITS("\"\x7f\"", json_str(&b, "\x7f", 1));         /* DEL is not a control char in JSON */
	EMITS("\"\"", json_str(&b, "", 0));
	EMITS("\"a\\u0000b\"", json_str(&b, "a\0b", 3));
	EMITS("\"plain text, nothing to escape\"", json_cstr(&b, "plain text, nothing to escape"));
	EMITS("\"\\u2028\\u2029\"", json_cstr(&b, "\xe2\x80\xa8\xe2\x80\xa9"));
	/* Neighbours of U+2028/2029 pass through. */
	EMITS("\"\xe2\x80\xa7\xe2\x80\xaa\"", json_cstr(&b, "\xe2\x80\xa7\xe2\x80\xaa"));
	EMITS("\"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80\"",
	      json_cstr(&b, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80"));
	/* Each byte of an invalid sequence becomes U+FFFD. */
	EMITS("\"\\ufffd\"", json_cstr(&b, "\xff"));
	EMITS("\"a\\ufffd\\ufffdb\"", json_cstr(&b, "a\xe2\x80" "b"));
	EMITS("\"\\ufffd\\ufffd\"", json_cstr(&b, "\xc0\x80"));
	EMITS("\"\\ufffd\\ufffd\\ufffd\"", json_cstr(&b, "\xed\xa0\x80"));
	EMITS("\"\\ufffd\\ufffd\\ufffd\\ufffd\"", json_cstr(&b, "\xf4\x90\x80\x80"));
	EMITS("\"\\ufffd\xc3\xa9\"", json_cstr(&b, "\x80\xc3\xa9"));
	EMITS("\"x\\ufffd\"", json_cstr(&b, "x\xe2"));      /* truncated at the end */
	EMITS("\"\\\"\\\\\\n\\u001f\"", json_cstr(&b, "\"\\\n\x1f"));
}

/* A special byte at every offset of a long string, for the SWAR path. */
static void test_emit_offsets(void)
{
	static const struct { const char *in; const char *out; } sp[] = {
		{ "\"", "\\\"" }, { "\\", "\\\\" }, { "\x01", "\\u0001" }, { "\x1f", "\\u001f" },
		{ "\xc3\xa9", "\xc3\xa9" }, { "\xff", "\\ufffd" }, { " ", " " }, { "\x7f", "\x7f" },
	};
	char in[64], want[128];
	struct jbuf b;
	size_t s, pos, bad = 0;

	json_init(&b);
	for (s = 0; s < sizeof sp / sizeof sp[0]; s++)
		for (pos = 0; pos + strlen(sp[s].in) <= 40; pos++) {
			size_t il = strlen(sp[s].in), n = 40, wl;
			memset(in, 'x', n);
			memcpy(in + pos, sp[s].in, il);
			want[0] = '"';
			memset(want + 1, 'x', pos);
			memcpy(want + 1 + pos, sp[s].out, strlen(sp[s].out));
			wl = 1 + pos + strlen(sp[s].out);
			memset(want + wl, 'x', n - pos - il);
			wl += n - pos - il;
			want[wl++] = '"';
			json_reset(&b);
			json_str(&b, in, n);
			bad += b.len != wl || memcmp(b.buf, want, wl) != 0;
		}
	CHECKF(bad == 0, "%zu offset cases wrong", bad);
	json_free(&b);
}

static void test_emit_numbers(void)
{
	static const double dv[] = {
		0.1, 0.2, 0.1 + 0.2, 1.5, -2.25, 1e21, 1e-7, 123456789.125, 5e-324,
		1.7976931348623157e308, 2.2250738585072014e-308, 3.141592653589793, 100, 1e100,
	};
	struct jbuf jb;
	char txt[64];
	size_t i, bad = 0;

	EMITS("0", json_int(&b, 0));
	EMITS("-1", json_int(&b, -1));
	EMITS("9223372036854775807", json_int(&b, INT64_MAX));
	EMITS("-9223372036854775808", json_int(&b, INT64_MIN));
	EMITS("18446744073709551615", json_uint(&b, UINT64_MAX));
	EMITS("0", json_uint(&b, 0));
	EMITS("0.1", json_double(&b, 0.1));
	EMITS("0.30000000000000004", json_double(&b, 0.1 + 0.2));
	EMITS("1.5", json_double(&b, 1.5));
	EMITS("100", json_double(&b, 100.0));
	EMITS("15000000000", json_double(&b, 1.5e10));
	EMITS("1e+17", json_double(&b, 1e17));
	EMITS("1e-05", json_double(&b, 1e-5));
	EMITS("0.0001", json_double(&b, 1e-4));
	EMITS("-0", json_double(&b, -0.0));
	EMITS("5e-324", json_double(&b, 5e-324));
	EMITS("1e+300", json_double(&b, 1e300));
	EMITS("null", json_double(&b, NAN));
	EMITS("null", json_double(&b, INFINITY));
	EMITS("null", json_double(&b, -INFINITY));
	EMITS("[true,false,null]", json_arr_begin(&b); json_bool(&b, 1); json_bool(&b, 0); json_null(&b); json_arr_end(&b));

	/* Doubles read back exactly and are valid JSON numbers. */
	json_init(&jb);
	for (i = 0; i < sizeof dv / sizeof dv[0]; i++) {
		json_reset(&jb);
		json_double(&jb, dv[i]);
		snprintf(txt, sizeof txt, "%.*s", (int)jb.len, jb.buf);
		bad += strtod(txt, NULL) != dv[i] || !json_validate(jb.buf, jb.len);
	}
	srand(7);
	for (i = 0; i < 2000; i++) {
		uint64_t bits = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand();
		double d;
		memcpy(&d, &bits, sizeof d);
		if (!isfinite(d))
			continue;
		json_reset(&jb);
		json_double(&jb, d);
		snprintf(txt, sizeof txt, "%.*s", (int)jb.len, jb.buf);
		bad += strtod(txt, NULL) != d || !json_validate(jb.buf, jb.len);
	}
	for (i = 0; i < 3000; i++) {
		/* Integers and fractions around the plain/exponent switch */
		double d = ldexp((double)rand(), (int)(i % 80) - 20);
		if (i % 3 == 0)
			d = -d;
		json_reset(&jb);
		json_double(&jb, d);
		snprintf(txt, sizeof txt, "%.*s", (int)jb.len, jb.buf);
		bad += strtod(txt, NULL) != d || !json_validate(jb.buf, jb.len);
	}
	CHECKF(bad == 0, "%zu doubles did not round-trip", bad);
	json_free(&jb);
}

static void test_emit_structure(void)
{
	EMITS("{}", json_obj_begin(&b); json_obj_end(&b));
	EMITS("[]", json_arr_begin(&b); json_arr_end(&b));
	EMITS("[[],[[]],{}]",
	      json_arr_begin(&b); json_arr_begin(&b); json_arr_end(&b);
	      json_arr_begin(&b); json_arr_begin(&b); json_arr_end(&b); json_arr_end(&b);
	      json_obj_begin(&b); json_obj_end(&b); json_arr_end(&b));
	EMITS("{\"a\":1,\"b\":[1,2,{}],\"c\":{\"d\":null,\"e\":\"x\"},\"f\":2}",
	      json_obj_begin(&b);
	      json_key(&b, "a"); json_int(&b, 1);
	      json_key(&b, "b"); json_arr_begin(&b); json_int(&b, 1); json_uint(&b, 2);
	      json_obj_begin(&b); json_obj_end(&b); json_arr_end(&b);
	      json_key(&b, "c"); json_obj_begin(&b); json_key(&b, "d"); json_null(&b);
	      json_key(&b, "e"); json_cstr(&b, "x"); json_obj_end(&b);
	      json_key(&b, "f"); json_int(&b, 2);
	      json_obj_end(&b));
	EMITS("{\"k\\n\\\"\":true}", json_obj_begin(&b); json_keyn(&b, "k\n\"", 3); json_bool(&b, 1); json_obj_end(&b));
	/* json_raw is one value; json_append adds no comma. */
	EMITS("[{\"x\":[1, 2]},3,\"s\"]",
	      json_arr_begin(&b); json_raw(&b, "{\"x\":[1, 2]}", 12); json_int(&b, 3);
	      json_raw(&b, "\"s\"", 3); json_arr_end(&b));
	EMITS("{\"data\":{\"a\":1},\"n\":[7]}",
	      json_obj_begin(&b); json_key(&b, "data"); json_raw(&b, "{\"a\":1}", 7);
	      json_key(&b, "n"); json_arr_begin(&b); json_raw(&b, "7", 1); json_arr_end(&b);
	      json_obj_end(&b));
	EMITS("\"top\"", json_cstr(&b, "top"));
	EMITS("42", json_append(&b, "4", 1); json_append(&b, "2", 1));

	/* Deep but within the limit; then one level too many fails. */
	{
		struct jbuf b;
		int i;
		json_init(&b);
		for (i = 0; i < JSON_EMIT_MAX_DEPTH; i++)
			json_arr_begin(&b);
		json_int(&b, 1);
		json_int(&b, 2);
		for (i = 0; i < JSON_EMIT_MAX_DEPTH; i++)
			json_arr_end(&b);
		CHECK(!b.failed && b.depth == 0);
		CHECK(json_validate(b.buf, b.len));
		json_reset(&b);
		for (i = 0; i <= JSON_EMIT_MAX_DEPTH; i++)
			json_arr_begin(&b);
		CHECK(b.failed);
		json_reset(&b);          /* reset clears the failure */
		CHECK(!b.failed && b.len == 0);
		json_arr_end(&b);        /* unbalanced close */
		CHECK(b.failed);
		json_reset(&b);
		json_obj_begin(&b);
		json_key(&b, "k");
		json_obj_end(&b);        /* key without a value */
		CHECK(b.failed);
		json_free(&b);
		CHECK(b.buf == NULL && b.len == 0 && b.cap == 0);
	}
	/* Growth across many reallocations keeps the content. */
	{
		struct jbuf b;
		int i, ok;
		json_init(&b);
		json_arr_begin(&b);
		for (i = 0; i < 100000; i++)
			json_int(&b, i);
		json_arr_end(&b);
		ok = !b.failed && json_validate(b.buf, b.len) && b.len > 500000 &&
		     memcmp(b.buf, "[0,1,2,", 7) == 0 && memcmp(b.buf + b.len - 7, ",99999]", 7) == 0;
		CHECK(ok);
		CHECK(json_reserve(&b, 10) == 0);
		CHECK(json_reserve(&b, SIZE_MAX) == -1 && b.failed);
		json_free(&b);
	}
}

/* Random bytes through json_str: always valid JSON, and valid UTF-8 comes
 * back unchanged through the parser. */
static void test_emit_random(void)
{
	unsigned char in[48];
	char dec[64];
	struct json_tok tok[2];
	struct jbuf b;
	size_t i, k, n, bad = 0, bad_rt = 0;

	json_init(&b);
	srand(1);
	for (i = 0; i < 20000; i++) {
		n = (size_t)rand() % sizeof in;
		for (k = 0; k < n; k++) {
			int r = rand();
			/* Mostly ASCII, some high bytes, some specials. */
			in[k] = (unsigned char)(r % 4 == 0 ? (r >> 8) : r % 4 == 1 ? (r >> 8) % 0x20 : 'a' + (r >> 8) % 26);
		}
		json_reset(&b);
		json_str(&b, (const char *)in, n);
		bad += !json_validate(b.buf, b.len);
		if (utf8_valid(in, n)) {
			ssize_t dl;
			if (json_parse(b.buf, b.len, tok, 2, 1) != 1) {
				bad_rt++;
				continue;
			}
			dl = json_str_decode(b.buf, tok, 0, dec, sizeof dec);
			bad_rt += dl != (ssize_t)n || memcmp(dec, in, n) != 0;
		}
	}
	CHECKF(bad == 0, "%zu emitted strings invalid", bad);
	CHECKF(bad_rt == 0, "%zu strings did not round-trip", bad_rt);
	json_free(&b);
}

/* ---- Validator ------------------------------------------------------------ */

static const char *const valid_json[] = {
	"0", "-0", "1", "123", "-123", "1.5", "-0.0", "1e5", "1E5", "1e+5", "1e-5",
	"1.5e+10", "-1E-7", "0.000001", "1e0001",
	"true", "false", "null", "\"\"", "\"abc\"", " \t\r\n1 \t\r\n", " \"x\" ",
	"[]", "{}", "[ ]", "{ }", "[1,\"a\",{\"b\":null}]", "[ 1 , 2 ]", "{ \"a\" : 1 , \"b\" : [ ] }",
	"{\"a\":{\"b\":{\"c\":[[],[{}]]}}}", "[[[[[]]]]]", "{\"\":\"\"}", "{\"a\":1,\"a\":2}",
	"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0000\"", "\"\\uD83D\\uDE00\"", "\"\\ud800\"",
	"\"\\udc00\\ud800\"", "\"\\uFFFF\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"", "\"\x7f\"",
	"\"\xe2\x80\xa8\"", "[-1,0,1,1.0,-1e-0]", "{\"n\":-0.5e-10}",
};

static const char *const invalid_json[] = {
	"", " ", "\n", "01", "-01", "00", "-", "1.", ".5", "1e", "1e+", "1E-", "+1", "0x10", "1.e5",
	"-.5", "1 2", "NaN", "Infinity", "-Infinity", "tru", "nul", "fals", "True", "NULL", "truex",
	"[", "]", "{", "}", "[1", "[1,]", "[,1]", "[,]", "[1 2]", "[1}", "{\"a\":1]", "{,}",
	"{\"a\":1,}", "{\"a\" 1}", "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}", "{1:2}", "{\"a\":1 \"b\":2}",
	"[1]x", "[1] [2]", "{} {}", "\"a\" \"b\"", "1,", "\"abc", "\"", "\"\\\"", "\"\\x\"", "\"\\u12\"",
	"\"\\u12g4\"", "\"\\U0041\"", "\"\\'\"", "\"\x01\"", "\"\x1f\"", "\"a\tb\"", "\"a\nb\"",
	"\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xe2\x80\"", "\"\xf4\x90\x80\x80\"",
	"\357\273\2771", "\v1", "\f1", "1\v", "/*c*/1", "1//c", "[1,2,]", "'a'",
};

static void test_validate(void)
{
	size_t i;
	char *deep;
	int d;

	for (i = 0; i < sizeof valid_json / sizeof valid_json[0]; i++)
		CHECKF(json_validate(valid_json[i], strlen(valid_json[i])), "rejected %s", valid_json[i]);
	for (i = 0; i < sizeof invalid_json / sizeof invalid_json[0]; i++)
		CHECKF(!json_validate(invalid_json[i], strlen(invalid_json[i])), "accepted %s", invalid_json[i]);
	/* Length bounds the text, not NUL: */
	CHECK(!json_validate("1\0", 2));
	CHECK(json_validate("\"a\\u0000\"", 9));
	CHECK(!json_validate("\"a\0\"", 4));
	CHECK(json_validate("[1,2]garbage", 5));
	CHECK(!json_validate("[1,2]garbage", 4));

	/* Nesting: JSON_VALIDATE_MAX_DEPTH levels pass, one more does not. */
	deep = malloc(2 * 100000 + 16);
	CHECK(deep != NULL);
	if (!deep)
		return;
	for (d = JSON_VALIDATE_MAX_DEPTH; d <= JSON_VALIDATE_MAX_DEPTH + 1; d++) {
		memset(deep, '[', (size_t)d);
		memset(deep + d, ']', (size_t)d);
		CHECKF(json_validate(deep, 2 * (size_t)d) == (d == JSON_VALIDATE_MAX_DEPTH), "depth %d", d);
	}
	for (i = 0; i < (size_t)JSON_VALIDATE_MAX_DEPTH + 1; i++)
		memcpy(deep + 5 * i, "{\"a\":", 5);
	/* 1024 objects around a 1 */
	for (d = JSON_VALIDATE_MAX_DEPTH; d <= JSON_VALIDATE_MAX_DEPTH + 1; d++) {
		size_t n = 5 * (size_t)d;
		deep[n] = '1';
		memset(deep + n + 1, '}', (size_t)d);
		CHECKF(json_validate(deep, n + 1 + (size_t)d) == (d == JSON_VALIDATE_MAX_DEPTH), "object depth %d", d);
		for (i = 0; i < (size_t)JSON_VALIDATE_MAX_DEPTH + 1; i++)
			memcpy(deep + 5 * i, "{\"a\":", 5);
	}
	memset(deep, '[', 100000);
	CHECK(!json_validate(deep, 100000));
	memset(deep + 100000, ']', 100000);
	CHECK(!json_validate(deep, 200000));
	free(deep);
}

/* A bad byte at every offset inside a long string must be seen. */
static void test_validate_offsets(void)
{
	static const char *const bad[] = { "\x01", "\x1f", "\xff", "\xc0", "\\x", "\xed\xa0\x80", "\"x" };
	static const char *const good[] = { " ", "\x7f", "\xc3\xa9", "\\n", "\\u00e9", "\xf0\x9f\x98\x80" };
	char s[64];
	size_t b, pos, fails = 0;

	for (b = 0; b < sizeof bad / sizeof bad[0]; b++)
		for (pos = 1; pos + strlen(bad[b]) < 40; pos++) {
			memset(s, 'a', 41);
			s[0] = '"';
			s[40] = '"';
			memcpy(s + pos, bad[b], strlen(bad[b]));
			fails += json_validate(s, 41) != 0;
		}
	for (b = 0; b < sizeof good / sizeof good[0]; b++)
		for (pos = 1; pos + strlen(good[b]) < 40; pos++) {
			memset(s, 'a', 41);
			s[0] = '"';
			s[40] = '"';
			memcpy(s + pos, good[b], strlen(good[b]));
			fails += json_validate(s, 41) != 1;
		}
	CHECKF(fails == 0, "%zu offset cases misjudged", fails);
}

/* ---- Parser --------------------------------------------------------------- */

#define NTOK 128

/* Checks token layout: every container's size matches the children found
 * by following `next`, and every span lies inside the source. */
static int layout_ok(const char *src, size_t n, const struct json_tok *tok, int ntok)
{
	int i;

	(void)src;
	for (i = 0; i < ntok; i++) {
		const struct json_tok *t = &tok[i];
		uint32_t c = 0, j;

		if ((size_t)t->start + t->len > n || (int)t->next > ntok || (int)t->next <= i)
			return 0;
		if (t->type != JSON_ARRAY && t->type != JSON_OBJECT) {
			if (t->size != 0 || t->next != (uint32_t)i + 1)
				return 0;
			continue;
		}
		for (j = (uint32_t)i + 1; j < t->next; c++)
			j = t->type == JSON_OBJECT ? tok[j + 1].next : tok[j].next;
		if (j != t->next || c != t->size)
			return 0;
	}
	return 1;
}

/* Emits the token tree back as JSON (strings decoded and re-escaped). */
static void reemit(const char *src, const struct json_tok *tok, int ntok, struct jbuf *b)
{
	uint32_t end[JSON_PARSE_MAX_DEPTH + 1];
	int obj[JSON_PARSE_MAX_DEPTH + 1], cnt[JSON_PARSE_MAX_DEPTH + 1];
	char s[512];
	int sp = 0, i;

	for (i = 0; i < ntok; i++) {
		const struct json_tok *t = &tok[i];
		int is_key;
		ssize_t sl;

		while (sp && end[sp - 1] == (uint32_t)i) {
			if (obj[--sp]) json_obj_end(b); else json_arr_end(b);
		}
		is_key = sp && obj[sp - 1] && cnt[sp - 1]++ % 2 == 0;
		switch (t->type) {
		case JSON_OBJECT:
		case JSON_ARRAY:
			if (t->type == JSON_OBJECT) json_obj_begin(b); else json_arr_begin(b);
			end[sp] = t->next;
			obj[sp] = t->type == JSON_OBJECT;
			cnt[sp++] = 0;
			break;
		case JSON_STRING:
			sl = json_str_decode(src, tok, i, s, sizeof s);
			if (sl < 0) { b->failed = 1; return; }
			if (is_key) json_keyn(b, s, (size_t)sl); else json_str(b, s, (size_t)sl);
			break;
		default:
			json_raw(b, src + t->start, t->len);
		}
	}
	while (sp)
		if (obj[--sp]) json_obj_end(b); else json_arr_end(b);
}

static void roundtrip(const char *in, const char *want, int line)
{
	struct json_tok tok[NTOK];
	struct jbuf b;
	int n = json_parse(in, strlen(in), tok, NTOK, JSON_PARSE_MAX_DEPTH);

	CHECKF(n > 0, "line %d: parse of %s gave %d", line, in, n);
	if (n <= 0)
		return;
	CHECKF(layout_ok(in, strlen(in), tok, n), "line %d: token layout of %s", line, in);
	json_init(&b);
	reemit(in, tok, n, &b);
	CHECKF(!b.failed && b.len == strlen(want) && memcmp(b.buf, want, b.len) == 0,
	       "line %d: %s came back as %.*s", line, in, (int)b.len, b.buf);
	json_free(&b);
}

#define RT(in) roundtrip(in, in, __LINE__)
#define RT2(in, want) roundtrip(in, want, __LINE__)

static void test_parse_roundtrip(void)
{
	RT("1");
	RT("\"s\"");
	RT("[]");
	RT("{}");
	RT("[[],{},[[]]]");
	RT("{\"a\":[1,2.5,-3e2,true,false,null,{\"b\":\"c\\\"d\\n\"}],\"e\":{},\"f\":[],\"g\":\"\xc3\xa9\"}");
	RT("{\"type\":\"subscribe\",\"channels\":[\"a\",\"b\"],\"filter\":{\"key\":\"*\",\"field\":{\"x\":5}}}");
	RT("[[[1],[2,[3,[4]]]],{\"k\":{\"k\":{\"k\":[]}}},5]");
	RT2(" { \"a\" : [ 1 , 2 ] , \"\\u0062\" : \"\\u00e9\\/\\ud83d\\ude00\" } ",
	    "{\"a\":[1,2],\"b\":\"\xc3\xa9/\xf0\x9f\x98\x80\"}");
	RT2("\"\\u2028\\ud800\"", "\"\\u2028\xef\xbf\xbd\"");
}

static void test_parse_tokens(void)
{
	static const char msg[] = "{\"type\":\"subscribe\",\"channels\":[\"a\",\"b\"],\"n\":5,\"n\":-7}";
	struct json_tok tok[NTOK];
	int n, t, i, k;
	int64_t v;
	char s[32];

	n = json_parse(msg, strlen(msg), tok, NTOK, 4);
	CHECK(n == 11);
	CHECK(tok[0].type == JSON_OBJECT && tok[0].size == 4 && tok[0].next == 11);
	CHECK(tok[0].start == 0 && tok[0].len == strlen(msg));
	t = json_obj_get(msg, tok, 0, "type");
	CHECK(t == 2 && tok[t].type == JSON_STRING && json_str_eq(msg, tok, t, "subscribe", 9));
	CHECK(!json_str_eq(msg, tok, t, "subscrib", 8) && !json_str_eq(msg, tok, t, "subscribe!", 10));
	CHECK(json_str_eq(msg, tok, 1, "type", 4));   /* name tokens are strings */
	t = json_obj_get(msg, tok, 0, "channels");
	CHECK(t == 4 && tok[t].type == JSON_ARRAY && tok[t].size == 2 && tok[t].next == 7);
	for (i = t + 1, k = 0; k < (int)tok[t].size; k++, i = (int)tok[i].next)
		CHECK(json_str_eq(msg, tok, i, k ? "b" : "a", 1));
	CHECK(i == (int)tok[t].next);
	/* The last duplicate wins, as in json_top_field. */
	t = json_obj_get(msg, tok, 0, "n");
	CHECK(t == 10 && json_tok_int(msg, tok, t, &v) == 0 && v == -7);
	CHECK(json_obj_get(msg, tok, 0, "missing") == -1);
	CHECK(json_obj_get(msg, tok, 4, "a") == -1);   /* not an object */
	CHECK(json_obj_get(msg, tok, 2, "a") == -1);
	CHECK(json_tok_int(msg, tok, 2, &v) == -1);    /* a string is not a number */
	CHECK(json_str_decode(msg, tok, 8, s, sizeof s) == -1);  /* nor is a number a string */
	CHECK(!json_str_eq(msg, tok, 8, "5", 1));

	/* Token spans: strings exclude quotes, containers include brackets. */
	n = json_parse(" [ \"ab\" , 12.5e1 , true , { } ] ", 32, tok, NTOK, 4);
	CHECK(n == 5);
	CHECK(tok[0].start == 1 && tok[0].len == 30 && tok[0].size == 4);
	CHECK(tok[1].start == 4 && tok[1].len == 2);
	CHECK(tok[2].type == JSON_NUMBER && tok[2].start == 10 && tok[2].len == 6);
	CHECK(tok[3].type == JSON_TRUE && tok[3].len == 4);
	CHECK(tok[4].type == JSON_OBJECT && tok[4].size == 0 && tok[4].len == 3 && tok[4].next == 5);
	CHECK(json_parse("false", 5, tok, 1, 0) == 1 && tok[0].type == JSON_FALSE);
	CHECK(json_parse("null", 4, tok, 1, 0) == 1 && tok[0].type == JSON_NULL);
}

static void test_parse_strings(void)
{
	static const char in[] = "[\"a\\u0062\\\"\\\\\\/\\n\\ud83d\\ude00\",\"\\ud800x\",\"\\udc00\",\"\\ud800\\u0041\",\"\\ud800\\ud800\\udc00\",\"\"]";
	struct json_tok tok[8];
	char out[32];
	int n;

	n = json_parse(in, strlen(in), tok, 8, 2);
	CHECK(n == 7);
	CHECK(json_str_eq(in, tok, 1, "ab\"\\/\n\xf0\x9f\x98\x80", 10));
	CHECK(!json_str_eq(in, tok, 1, "ab\"\\/\n\xf0\x9f\x98", 9));
	CHECK(!json_str_eq(in, tok, 1, "ab\"\\/\n\xf0\x9f\x98\x80!", 11));
	CHECK(json_str_decode(in, tok, 1, out, sizeof out) == 10 && memcmp(out, "ab\"\\/\n\xf0\x9f\x98\x80", 11) == 0);
	/* Lone surrogates decode to U+FFFD. */
	CHECK(json_str_decode(in, tok, 2, out, sizeof out) == 4 && memcmp(out, "\xef\xbf\xbdx", 5) == 0);
	CHECK(json_str_decode(in, tok, 3, out, sizeof out) == 3 && memcmp(out, "\xef\xbf\xbd", 4) == 0);
	CHECK(json_str_decode(in, tok, 4, out, sizeof out) == 4 && memcmp(out, "\xef\xbf\xbd" "A", 5) == 0);
	CHECK(json_str_decode(in, tok, 5, out, sizeof out) == 7 && memcmp(out, "\xef\xbf\xbd\xf0\x90\x80\x80", 8) == 0);
	CHECK(json_str_eq(in, tok, 2, "\xef\xbf\xbdx", 4));
	CHECK(json_str_eq(in, tok, 6, "", 0) && json_str_decode(in, tok, 6, out, 1) == 0 && out[0] == '\0');
	CHECK(json_str_decode(in, tok, 6, out, 0) == 0);
	/* Capacity: exactly enough (no NUL), one short, and room for the NUL. */
	memset(out, 'Z', sizeof out);
	CHECK(json_str_decode(in, tok, 2, out, 4) == 4 && out[4] == 'Z');
	CHECK(json_str_decode(in, tok, 2, out, 3) == -1);
	CHECK(json_str_decode(in, tok, 2, out, 5) == 4 && out[4] == '\0');
}

static void test_tok_int(void)
{
	static const struct { const char *s; int ok; int64_t v; } c[] = {
		{ "0", 1, 0 }, { "-0", 1, 0 }, { "7", 1, 7 }, { "-7", 1, -7 },
		{ "9223372036854775807", 1, INT64_MAX }, { "-9223372036854775808", 1, INT64_MIN },
		{ "9223372036854775808", 0, 0 }, { "-9223372036854775809", 0, 0 },
		{ "18446744073709551615", 0, 0 }, { "18446744073709551616", 0, 0 },
		{ "99999999999999999999999", 0, 0 },
		{ "1.0", 1, 1 }, { "1e2", 1, 100 }, { "1E+2", 1, 100 }, { "100e-2", 1, 1 }, { "1.50e1", 1, 15 },
		{ "1.5", 0, 0 }, { "1e-1", 0, 0 }, { "0.5", 0, 0 }, { "-1.25e1", 0, 0 },
		{ "1e18", 1, 1000000000000000000 }, { "1e19", 0, 0 }, { "-9.223372036854775808e18", 1, INT64_MIN },
		{ "92233720368547758070e-1", 1, INT64_MAX }, { "0.0e99999999999999999999", 1, 0 },
		{ "1e99999999999999999999", 0, 0 }, { "1e-99999999999999999999", 0, 0 },
		{ "0.00000000000000000000000000001e29", 1, 1 },
	};
	struct json_tok tok[1];
	size_t i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		int64_t v = 12345;
		int n = json_parse(c[i].s, strlen(c[i].s), tok, 1, 0), r;
		CHECKF(n == 1, "parse %s", c[i].s);
		r = json_tok_int(c[i].s, tok, 0, &v);
		CHECKF(c[i].ok ? r == 0 && v == c[i].v : r == -1, "%s gave %d, %lld", c[i].s, r, (long long)v);
	}
}

static void test_parse_errors(void)
{
	struct json_tok tok[NTOK];
	char *deep;
	clock_t t0;
	size_t i;
	int d;

	for (i = 0; i < sizeof invalid_json / sizeof invalid_json[0]; i++)
		CHECKF(json_parse(invalid_json[i], strlen(invalid_json[i]), tok, NTOK, 8) == JSON_EINVAL,
		       "parse accepted or misreported %s", invalid_json[i]);
	for (i = 0; i < sizeof valid_json / sizeof valid_json[0]; i++) {
		int n = json_parse(valid_json[i], strlen(valid_json[i]), tok, NTOK, 8);
		CHECKF(n > 0 && layout_ok(valid_json[i], strlen(valid_json[i]), tok, n), "parse of %s gave %d", valid_json[i], n);
	}

	/* Token limits */
	CHECK(json_parse("[1,2,3]", 7, tok, 4, 4) == 4);
	CHECK(json_parse("[1,2,3]", 7, tok, 3, 4) == JSON_ETOOMANY);
	CHECK(json_parse("{\"a\":1}", 7, tok, 2, 4) == JSON_ETOOMANY);  /* names count */
	CHECK(json_parse("{\"a\":1}", 7, tok, 3, 4) == 3);
	CHECK(json_parse("1", 1, tok, 0, 4) == JSON_ETOOMANY);
	CHECK(json_parse("1", 1, NULL, 5, 4) == JSON_ETOOMANY);
	/* Depth limits: containers count, scalars do not. */
	CHECK(json_parse("[[1]]", 5, tok, NTOK, 2) == 3);
	CHECK(json_parse("[[1]]", 5, tok, NTOK, 1) == JSON_EDEPTH);
	CHECK(json_parse("{\"a\":{}}", 8, tok, NTOK, 1) == JSON_EDEPTH);
	CHECK(json_parse("7", 1, tok, NTOK, 0) == 1);
	CHECK(json_parse("[]", 2, tok, NTOK, 0) == JSON_EDEPTH);
	CHECK(json_parse("[]", 2, tok, NTOK, -5) == JSON_EDEPTH);

	deep = malloc(200000);
	CHECK(deep != NULL);
	if (!deep)
		return;
	/* maxdepth is clamped to JSON_PARSE_MAX_DEPTH, which holds any payload
	 * json_validate accepts with the levels of a message around it. */
	CHECK(JSON_PARSE_MAX_DEPTH >= JSON_VALIDATE_MAX_DEPTH + 2);
	struct json_tok *many = malloc((JSON_PARSE_MAX_DEPTH + 2) * sizeof(*many));
	CHECK(many != NULL);
	for (d = JSON_PARSE_MAX_DEPTH; many && d <= JSON_PARSE_MAX_DEPTH + 1; d++) {
		memset(deep, '[', (size_t)d);
		memset(deep + d, ']', (size_t)d);
		CHECKF(json_parse(deep, 2 * (size_t)d, many, JSON_PARSE_MAX_DEPTH + 2, 100000) ==
		       (d == JSON_PARSE_MAX_DEPTH ? d : JSON_EDEPTH), "depth %d", d);
	}
	/* 100000 '[' fail fast with EDEPTH and no stack growth. */
	memset(deep, '[', 100000);
	t0 = clock();
	for (i = 0; many && i < 1000; i++)
		d = json_parse(deep, 100000, many, JSON_PARSE_MAX_DEPTH + 2, JSON_PARSE_MAX_DEPTH);
	free(many);
	CHECK(d == JSON_EDEPTH);
	CHECKF(clock() - t0 < CLOCKS_PER_SEC, "1000 deep parses took %ld ticks", (long)(clock() - t0));
	memset(deep, '{', 1);
	CHECK(json_parse(deep, 100000, tok, NTOK, 8) == JSON_EINVAL);  /* "{[" is bad before too deep */
	free(deep);
}

/* ---- Payload scanning --------------------------------------------------- */

static void field(const char *s, const char *key, size_t keylen, const char *want, int line)
{
	const char *v = NULL;
	size_t vl = 0;
	int r = json_top_field(s, strlen(s), key, keylen, &v, &vl);

	if (want)
		CHECKF(r == 1 && vl == strlen(want) && memcmp(v, want, vl) == 0,
		       "line %d: %s[%s] gave %d %.*s", line, s, key, r, (int)vl, v ? v : "");
	else
		CHECKF(r == 0, "line %d: %s[%s] found %.*s", line, s, key, (int)vl, v ? v : "");
}

#define FIELD(s, key, want) field(s, key, strlen(key), want, __LINE__)

static void test_top_field(void)
{
	static const char doc[] = "{\"a\":1,\"b\":{\"c\":2,\"a\":3},\"d\":[1,{\"a\":9}],\"e\":\"x\\\"y\",\"f\":null,\"g\":-2.5e3}";
	char *deep;
	size_t i, n;

	FIELD(doc, "a", "1");
	FIELD(doc, "b", "{\"c\":2,\"a\":3}");
	FIELD(doc, "c", NULL);                 /* nested names do not count */
	FIELD(doc, "d", "[1,{\"a\":9}]");
	FIELD(doc, "e", "\"x\\\"y\"");          /* raw span with quotes */
	FIELD(doc, "f", "null");
	FIELD(doc, "g", "-2.5e3");
	FIELD(doc, "", NULL);
	FIELD(doc, "aa", NULL);
	FIELD(" { \"a\" : 1 , \"b\" : [ 2 ] } ", "a", "1");
	FIELD(" { \"a\" : 1 , \"b\" : [ 2 ] } ", "b", "[ 2 ]");
	FIELD("{\"\\u0061b\":5}", "ab", "5");   /* escaped names */
	FIELD("{\"a\\\"b\":1}", "a\"b", "1");
	FIELD("{\"\\u00e9\":1}", "\xc3\xa9", "1");
	FIELD("{\"\":7}", "", "7");
	FIELD("{\"a\":1,\"a\":2}", "a", "2");   /* last duplicate wins */
	FIELD("{\"a\":1,\"b\":0,\"\\u0061\":{}}", "a", "{}");
	field("{\"a\\u0000b\":1}", "a\0b", 3, "1", __LINE__);
	field("{\"a\":1}", "a\0", 2, NULL, __LINE__);
	/* Not an object, or malformed anywhere: no fields. */
	FIELD("[{\"a\":1}]", "a", NULL);
	FIELD("\"a\"", "a", NULL);
	FIELD("{}", "a", NULL);
	FIELD("", "a", NULL);
	FIELD("{\"a\":1,", "a", NULL);
	FIELD("{\"a\":1", "a", NULL);
	FIELD("{\"a\":1} x", "a", NULL);
	FIELD("{\"a\":1}{}", "a", NULL);
	FIELD("{\"a\":1,\"b\":[}", "a", NULL);
	FIELD("{\"a\":1,\"b\":01}", "a", NULL);
	FIELD("{\"a\" 1}", "a", NULL);
	FIELD("{\"a\":}", "a", NULL);
	FIELD("{a:1}", "a", NULL);
	FIELD("{\"a\":\"\xff\"}", "a", NULL);
	FIELD("{} ", "a", NULL);

	/* Depth matches json_validate: the object counts as one level. */
	deep = malloc(4096);
	CHECK(deep != NULL);
	if (!deep)
		return;
	for (i = JSON_VALIDATE_MAX_DEPTH - 1; i <= JSON_VALIDATE_MAX_DEPTH; i++) {
		const char *v;
		size_t vl;
		memcpy(deep, "{\"a\":", 5);
		memset(deep + 5, '[', i);
		memset(deep + 5 + i, ']', i);
		deep[5 + 2 * i] = '}';
		n = 6 + 2 * i;
		CHECKF(json_top_field(deep, n, "a", 1, &v, &vl) == json_validate(deep, n) &&
		       json_validate(deep, n) == (i == JSON_VALIDATE_MAX_DEPTH - 1), "depth %zu", i);
	}
	free(deep);
}

static void veq(const char *a, const char *b, int want, int line)
{
	int r1 = json_value_eq(a, strlen(a), b, strlen(b));
	int r2 = json_value_eq(b, strlen(b), a, strlen(a));

	CHECKF(r1 == want && r2 == want, "line %d: %s vs %s gave %d/%d", line, a, b, r1, r2);
}

#define EQ(a, b) veq(a, b, 1, __LINE__)
#define NE(a, b) veq(a, b, 0, __LINE__)

static void test_value_eq(void)
{
	/* Type matters. */
	NE("\"5\"", "5");
	NE("\"true\"", "true");
	NE("null", "\"null\"");
	NE("0", "false");
	NE("[]", "{}");
	NE("\"\"", "null");
	/* Numbers by value. */
	EQ("5", "5");
	EQ("1", "1.0");
	EQ("1", "1e0");
	EQ("1.0", "1e0");
	EQ("1", "10e-1");
	EQ("1", "0.1e1");
	EQ("1", "1.00E+0");
	EQ("100", "1e2");
	EQ("12", "1.2e1");
	EQ("0", "-0");
	EQ("0", "0.0e10");
	EQ("-0.0", "0e-5");
	EQ("-1.5", "-15e-1");
	EQ("123.456", "123456e-3");
	EQ("0.001", "1e-3");
	EQ("1e400", "10e399");
	NE("1", "-1");
	NE("1", "2");
	NE("10", "100");
	NE("1", "1.0000000000000001");
	NE("9007199254740993", "9007199254740992");
	NE("12", "21");
	NE("1e2", "1e3");
	NE("0.1", "1");
	EQ("1e99999999999999999999", "1e99999999999999999999");
	EQ("0e99999999999999999999", "0");
	/* Strings by unescaped content. */
	EQ("\"ab\"", "\"a\\u0062\"");
	EQ("\"/\"", "\"\\/\"");
	EQ("\"\xc3\xa9\"", "\"\\u00e9\"");
	EQ("\"\xc3\xa9\"", "\"\\u00E9\"");
	EQ("\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"");
	EQ("\"\\n\"", "\"\\u000a\"");
	EQ("\"\"", "\"\"");
	EQ(" \"x\" ", "\"x\"");
	EQ("\"\\ud800\"", "\"\\udbff\"");   /* both lone surrogates: both U+FFFD */
	NE("\"a\"", "\"ab\"");
	NE("\"a\"", "\"A\"");
	NE("\"\\u00e9\"", "\"e\"");
	/* Literals, and containers byte for byte after trimming. */
	EQ("true", "true");
	EQ(" null\n", "null");
	NE("true", "false");
	EQ("{\"a\":1}", " {\"a\":1} ");
	NE("{\"a\":1}", "{\"a\": 1}");
	EQ("[1,2]", "[1,2]");
	NE("[1,2]", "[2,1]");
	/* Not exactly one valid value: never equal. */
	NE("[1,", "[1,");
	NE("", "");
	NE("1 2", "1 2");
	NE("01", "01");
	NE("\"\xff\"", "\"\xff\"");
	NE("tru", "tru");
}

int main(void)
{
	test_emit_strings();
	test_emit_offsets();
	test_emit_numbers();
	test_emit_structure();
	test_emit_random();
	test_validate();
	test_validate_offsets();
	test_parse_roundtrip();
	test_parse_tokens();
	test_parse_strings();
	test_tok_int();
	test_parse_errors();
	test_top_field();
	test_value_eq();
	return check_summary("json");
}
