/* fuzz_base64.c - libFuzzer target for base64.c: the strict decoder accepts
 * only canonical text, so whatever it decodes must encode back to exactly
 * the input; and any bytes must survive encode then decode. The base64url
 * decoder accepts only the unpadded URL-safe spelling of what it decodes:
 * encoding its output and translating must give the input back.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_base64.c base64.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *dec = malloc(size / 4 * 3 + 1);
	char *enc = malloc(BASE64_ENCODED_LEN(size) + 1);
	ssize_t n;
	size_t m;

	ASSERT(dec && enc);
	n = base64_decode((const char *)data, size, dec);
	if (n >= 0) {
		ASSERT((size_t)n <= size / 4 * 3);
		m = base64_encode(dec, (size_t)n, enc);
		ASSERT(m == size && memcmp(enc, data, size) == 0);
	}
	m = base64_encode(data, size, enc);
	ASSERT(m == BASE64_ENCODED_LEN(size));
	free(dec);
	dec = malloc(m / 4 * 3 + 1);
	ASSERT(dec != NULL);
	n = base64_decode(enc, m, dec);
	ASSERT(n == (ssize_t)size && memcmp(dec, data, size) == 0);
	free(dec);

	dec = malloc(BASE64URL_DECODED_LEN(size) + 1);
	ASSERT(dec != NULL);
	n = base64url_decode((const char *)data, size, dec);
	if (n >= 0) {
		ASSERT((size_t)n == BASE64URL_DECODED_LEN(size));
		m = base64_encode(dec, (size_t)n, enc);
		while (m && enc[m - 1] == '=')
			m--;
		for (size_t i = 0; i < m; i++)
			enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
		ASSERT(m == size && memcmp(enc, data, size) == 0);
	}
	free(dec);
	free(enc);
	return 0;
}
