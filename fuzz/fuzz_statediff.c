/* fuzz_statediff.c - libFuzzer target for statediff.c, the state dialect's
 * changes between two record values (both come from producers, so both are
 * hostile). The input is two documents split at its first NUL byte.
 * Whatever they are, the changes are a valid JSON object whose
 * paths all lie under the prefix given; a value compared with itself is
 * equal and gives no change; when the two differ as texts, statediff and
 * statediff_equal agree on whether anything changed.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_statediff.c statediff.c json.c json_parse.c utf8.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_parse.h"
#include "statediff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

/* statediff(a -> b) under the path "c.k"; returns the members added and
 * checks the output. */
static size_t run(const char *a, size_t an, const char *b, size_t bn)
{
	struct jbuf out, path;
	json_init(&out);
	json_init(&path);
	json_append(&path, "c.k", 3);
	json_obj_begin(&out);
	size_t n = statediff(&out, &path, a, an, b, bn);
	json_obj_end(&out);
	ASSERT(path.len == 3 && !out.failed);
	ASSERT(json_validate(out.buf, out.len));
	struct json_tok *t;
	int r = json_parse_alloc(out.buf, out.len, JSON_VALIDATE_MAX_DEPTH, &t);
	ASSERT(r > 0 && t[0].type == JSON_OBJECT && t[0].size == n);
	for (uint32_t k = 0, m = 1; k < t[0].size; k++, m = t[m + 1].next) {
		char p[8];
		ssize_t pl = json_str_decode(out.buf, t, (int)m, p, sizeof(p));
		/* "c.k" itself, or below it */
		ASSERT(pl == -1 || (pl >= 3 && memcmp(p, "c.k", 3) == 0 && (pl == 3 || p[3] == '.')));
		if (pl == -1) ASSERT(t[m].len > 4 && memcmp(out.buf + t[m].start, "c.k.", 4) == 0);
	}
	free(t);
	json_free(&out);
	json_free(&path);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	if (!nul) return 0;
	const char *a = (const char *)data, *b = (const char *)nul + 1;
	size_t an = (size_t)(nul - data), bn = size - an - 1;
	if (!json_validate(a, an) || !json_validate(b, bn)) return 0;
	ASSERT(statediff_equal(a, an, a, an) && run(a, an, a, an) == 0);
	size_t n = run(a, an, b, bn);
	ASSERT((n == 0) == statediff_equal(a, an, b, bn));
	return 0;
}
