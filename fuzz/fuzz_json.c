/* fuzz_json.c - libFuzzer target for json.c. Beyond "no crash", it checks
 * the properties the bridge relies on: the parser and validator agree
 * (limits aside), every parsed string decodes to valid UTF-8 that compares
 * equal and re-emits as valid JSON, json_top_field agrees with the parser's
 * json_obj_get, json_value_eq is reflexive and symmetric, and json_str
 * turns any bytes into valid JSON.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_json.c json.c utf8.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_parse.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static void check_tokens(const char *s, size_t n, const struct json_tok *tok, int ntok)
{
	struct jbuf b;
	char *dec = malloc(n + 1);
	int i;

	ASSERT(dec != NULL);
	json_init(&b);
	for (i = 0; i < ntok; i++) {
		const struct json_tok *t = &tok[i];
		int64_t v;

		ASSERT((size_t)t->start + t->len <= n);
		ASSERT((int)t->next > i && (int)t->next <= ntok);
		if (t->type == JSON_STRING) {
			/* Unescaping never grows a string. */
			ssize_t dl = json_str_decode(s, tok, i, dec, t->len);
			ASSERT(dl >= 0);
			ASSERT(utf8_valid(dec, (size_t)dl));
			ASSERT(json_str_eq(s, tok, i, dec, (size_t)dl));
			json_reset(&b);
			json_str(&b, dec, (size_t)dl);
			ASSERT(!b.failed && json_validate(b.buf, b.len));
			/* The quoted token equals its re-emitted form. */
			ASSERT(json_value_eq(s + t->start - 1, t->len + 2, b.buf, b.len));
		} else if (t->type == JSON_NUMBER) {
			if (json_tok_int(s, tok, i, &v) == 0) {
				json_reset(&b);
				json_int(&b, v);
				ASSERT(json_value_eq(s + t->start, t->len, b.buf, b.len));
			}
		} else if (t->type == JSON_OBJECT && t->size > 0) {
			/* obj_get finds the (last) member with the first name. */
			ssize_t dl = json_str_decode(s, tok, i + 1, dec, n + 1);
			if (dl >= 0 && !memchr(dec, 0, (size_t)dl)) {
				int k = json_obj_get(s, tok, i, dec);
				ASSERT(k > i && k < (int)t->next);
				ASSERT(json_str_eq(s, tok, k - 1, dec, (size_t)dl));
			}
		}
		if (t->type != JSON_STRING)
			ASSERT(json_value_eq(s + t->start, t->len, s + t->start, t->len));
	}
	json_free(&b);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct json_tok small[16], *tok;
	int valid, r, big;

	valid = json_validate(s, size);

	/* Small limits, as for client messages. */
	r = json_parse(s, size, small, 16, 4);
	if (r > 0) {
		ASSERT(valid);
		check_tokens(s, size, small, r);
	} else {
		ASSERT(r == JSON_EINVAL || r == JSON_ETOOMANY || r == JSON_EDEPTH);
		if (valid)
			ASSERT(r != JSON_EINVAL);
	}

	/* Ample tokens (each starts at a distinct byte): only depth can stop
	 * a valid text, and an invalid one never parses. */
	tok = malloc((size + 1) * sizeof *tok);
	ASSERT(tok != NULL);
	big = json_parse(s, size, tok, (int)size + 1, JSON_VALIDATE_MAX_DEPTH);
	ASSERT(big != JSON_ETOOMANY);
	if (valid)
		ASSERT(big > 0 || big == JSON_EDEPTH);
	else
		ASSERT(big < 0);
	if (big > 0) {
		ASSERT(r < 0 || r == big);
		check_tokens(s, size, tok, big);
	}

	/* Reflexive: a value equals itself exactly when it is one. */
	ASSERT(json_value_eq(s, size, s, size) == valid);

	/* Split: first byte picks a key length, the key, then the document. */
	if (size > 0) {
		size_t kl = data[0] % 8 < size - 1 ? data[0] % 8 : size - 1;
		const char *key = s + 1, *doc = s + 1 + kl, *val = NULL;
		size_t dn = size - 1 - kl, vl = 0, half = dn / 2;
		int tf = json_top_field(doc, dn, key, kl, &val, &vl);
		int e1, e2;

		if (tf) {
			ASSERT(json_validate(doc, dn));
			ASSERT(val >= doc && val + vl <= doc + dn);
			ASSERT(json_validate(val, vl));
			ASSERT(json_value_eq(val, vl, val, vl));
		}
		/* Agrees with the parser whenever the parser can say. */
		big = json_parse(doc, dn, tok, (int)dn + 1, JSON_VALIDATE_MAX_DEPTH);
		if (big > 0 && tok[0].type == JSON_OBJECT && !memchr(key, 0, kl)) {
			char k[8];
			int i;
			memcpy(k, key, kl);
			k[kl] = '\0';
			i = json_obj_get(doc, tok, 0, k);
			ASSERT(tf == (i >= 0));
			if (i >= 0) {
				size_t st = tok[i].start - (tok[i].type == JSON_STRING);
				ASSERT(val == doc + st);
				ASSERT(vl == tok[i].len + 2 * (tok[i].type == JSON_STRING));
			}
		}
		/* Symmetric, and only valid values are ever equal. */
		e1 = json_value_eq(doc, half, doc + half, dn - half);
		e2 = json_value_eq(doc + half, dn - half, doc, half);
		ASSERT(e1 == e2);
		if (e1)
			ASSERT(json_validate(doc, half) && json_validate(doc + half, dn - half));
	}
	free(tok);

	/* Any bytes become a valid JSON string; valid UTF-8 comes back as is. */
	{
		struct jbuf b;
		struct json_tok t1[1];
		char *dec;
		ssize_t dl;

		json_init(&b);
		json_str(&b, s, size);
		ASSERT(!b.failed && json_validate(b.buf, b.len));
		ASSERT(json_parse(b.buf, b.len, t1, 1, 0) == 1 && t1[0].type == JSON_STRING);
		/* Each bad byte comes back as U+FFFD, three bytes long. */
		dec = malloc(3 * size + 1);
		ASSERT(dec != NULL);
		dl = json_str_decode(b.buf, t1, 0, dec, 3 * size + 1);
		ASSERT(dl >= 0 && utf8_valid(dec, (size_t)dl));
		if (utf8_valid(s, size))
			ASSERT((size_t)dl == size && memcmp(dec, s, size) == 0);
		free(dec);
		json_free(&b);
	}
	return 0;
}
