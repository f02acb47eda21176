/* fuzz_msgpack.c - libFuzzer target for msgpack.c. The input is read both
 * ways. As MessagePack: whatever mp_to_json accepts is valid JSON, does not
 * depend on maxdepth except by refusing deeper input, transcodes back with
 * mp_from_json to the same document, and from the second lap on the JSON
 * text is a fixed point; a refusal leaves the buffer as it was. As JSON: whatever mp_from_json
 * accepts is valid JSON and its MessagePack transcodes back to the same
 * document (same tree, strings equal, numbers the same double). A member
 * mp_map_field_json finds is valid JSON too.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_msgpack.c \
 *        msgpack.c json.c utf8.c base64.c */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_parse.h"
#include "msgpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define SMALL_DEPTH 6

/* Deepest container nesting of a valid JSON text (strings skipped). */
static int json_depth(const char *s, size_t n)
{
	int d = 0, max = 0, in_str = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\') i++;
			else if (c == '"') in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++d > max) max = d;
		} else if (c == ']' || c == '}') {
			d--;
		}
	}
	return max;
}

/* The double a number token stands for. */
static double tok_double(const char *s, const struct json_tok *t)
{
	char buf[64], *p = buf;
	double d;

	if (t->len >= sizeof buf)
		p = malloc((size_t)t->len + 1);
	ASSERT(p != NULL);
	memcpy(p, s + t->start, t->len);
	p[t->len] = '\0';
	d = strtod(p, NULL);
	if (p != buf)
		free(p);
	return d;
}

/* in and out are the same document: same tree, strings equal after
 * unescaping, numbers equal by value - exactly (json_value_eq: 0 == -0) or,
 * with as_double, as the same double (infinite ones come back as null,
 * JSON having no infinity). */
static void same_document(const char *in, size_t inn, const char *out, size_t outn,
			  int as_double)
{
	struct json_tok *ta = malloc((inn + 2) * sizeof *ta), *tb = malloc((outn + 2) * sizeof *tb);
	int na, nb, i;

	ASSERT(ta != NULL && tb != NULL);
	na = json_parse(in, inn, ta, (int)inn + 2, JSON_PARSE_MAX_DEPTH);
	nb = json_parse(out, outn, tb, (int)outn + 2, JSON_PARSE_MAX_DEPTH);
	ASSERT(na > 0 && na == nb);
	for (i = 0; i < na; i++) {
		const struct json_tok *x = &ta[i], *y = &tb[i];
		ASSERT(x->size == y->size && x->next == y->next);
		if (x->type == JSON_NUMBER && !as_double) {
			ASSERT(y->type == JSON_NUMBER);
			ASSERT(json_value_eq(in + x->start, x->len, out + y->start, y->len));
		} else if (x->type == JSON_NUMBER) {
			double d = tok_double(in, x);
			if (isinf(d))
				ASSERT(y->type == JSON_NULL);
			else
				ASSERT(y->type == JSON_NUMBER && tok_double(out, y) == d);
		} else {
			ASSERT(x->type == y->type);
			if (x->type == JSON_STRING)
				ASSERT(json_value_eq(in + x->start - 1, x->len + 2,
						     out + y->start - 1, y->len + 2));
		}
	}
	free(ta);
	free(tb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jbuf js, deep, mp, js2, js3;
	int r, rd;

	/* ---- a member of the input as a map: valid JSON when found ---- */
	json_init(&js);
	if (mp_map_field_json(&js, data, size, "id", SMALL_DEPTH) == 0 && !js.failed)
		ASSERT(json_validate(js.buf, js.len));
	json_free(&js);

	/* ---- the input as MessagePack ---- */
	json_init(&js);
	json_init(&deep);
	json_init(&mp);
	json_init(&js2);
	json_init(&js3);
	json_append(&js, "#", 1);   /* a prefix that must survive a refusal */
	r = mp_to_json(&js, data, size, SMALL_DEPTH);
	rd = mp_to_json(&deep, data, size, MP_MAX_DEPTH);
	ASSERT(!js.failed && !deep.failed);
	ASSERT(js.len >= 1 && js.buf[0] == '#');
	if (r < 0) {
		ASSERT(r == -1 && js.len == 1);
		/* Refused at a small depth but not at the most: only for depth. */
		if (rd == 0)
			ASSERT(json_depth(deep.buf, deep.len) > SMALL_DEPTH);
	} else {
		const char *j = js.buf + 1;
		size_t jn = js.len - 1;

		ASSERT(r == 0 && rd == 0);
		ASSERT(deep.len == jn && memcmp(deep.buf, j, jn) == 0);
		ASSERT(json_validate(j, jn));
		ASSERT(json_depth(j, jn) <= SMALL_DEPTH);
		/* Back to MessagePack and again to JSON: the same document.
		 * The text may change once - "\ufffd" for bad UTF-8 comes back
		 * as the raw character, float -0.0 as the integer 0 - and is
		 * then a fixed point: a third lap gives it byte for byte. */
		ASSERT(mp_from_json(&mp, j, jn) == 0);
		ASSERT(mp_to_json(&js2, (const unsigned char *)mp.buf, mp.len, SMALL_DEPTH) == 0);
		same_document(j, jn, js2.buf, js2.len, 0);
		json_reset(&mp);
		ASSERT(mp_from_json(&mp, js2.buf, js2.len) == 0);
		ASSERT(mp_to_json(&js3, (const unsigned char *)mp.buf, mp.len, SMALL_DEPTH) == 0);
		if (js3.len != js2.len || memcmp(js3.buf, js2.buf, js2.len) != 0) {
			fprintf(stderr, "second lap: %.*s\nthird lap:  %.*s\n",
				(int)js2.len, js2.buf, (int)js3.len, js3.buf);
			ASSERT(!"third lap differs");
		}
	}
	if (rd < 0)
		ASSERT(rd == -1 && deep.len == 0);
	json_free(&js);
	json_free(&deep);
	json_free(&mp);
	json_free(&js2);
	json_free(&js3);

	/* ---- the input as JSON ---- */
	json_init(&mp);
	json_init(&js);
	json_append(&mp, "#", 1);
	r = mp_from_json(&mp, (const char *)data, size);
	ASSERT(!mp.failed && mp.len >= 1 && mp.buf[0] == '#');
	if (r < 0) {
		ASSERT(r == -1 && mp.len == 1);
		/* Whatever json_validate accepts transcodes, at any depth it
		 * allows: refused means not JSON (or deeper than JSON goes). */
		ASSERT(!json_validate((const char *)data, size) ||
		       json_depth((const char *)data, size) > MP_FROM_JSON_MAX_DEPTH);
	} else {
		ASSERT(r == 0);
		ASSERT(json_depth((const char *)data, size) <= MP_FROM_JSON_MAX_DEPTH);
		/* Back to JSON the emitter goes MP_MAX_DEPTH deep. */
		if (json_depth((const char *)data, size) <= MP_MAX_DEPTH) {
			ASSERT(mp_to_json(&js, (const unsigned char *)mp.buf + 1, mp.len - 1, MP_MAX_DEPTH) == 0);
			ASSERT(!js.failed && json_validate(js.buf, js.len));
			same_document((const char *)data, size, js.buf, js.len, 1);
		}
	}
	json_free(&mp);
	json_free(&js);
	return 0;
}
