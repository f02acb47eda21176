/* fuzz_http.c - libFuzzer target for http.c. The input is a request head:
 * a success must lie inside the input, end in LF and point only into it;
 * every prefix of a success needs more bytes, and every prefix of an error
 * needs more bytes or gives the same error (the parser never changes its
 * mind). The query (and the raw input as a query) goes through
 * http_query_param with small capacities; headers through the token helpers.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_http.c http.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static struct http_request req, req2;

/* Parses data[0..k) from an exact-size heap copy, so a read past k is caught. */
static ssize_t parse_prefix(const uint8_t *data, size_t k)
{
	char *b = malloc(k ? k : 1);
	ASSERT(b);
	memcpy(b, data, k);
	ssize_t r = http_parse_request(b, k, &req2);
	free(b);
	return r;
}

static int inside(const char *p, size_t n, const char *lo, size_t len)
{
	return p >= lo && n <= len && p - lo <= (ptrdiff_t)(len - n);
}

/* http_query_param on q[0..qlen) for `name` with a few capacities. */
static void query(const char *q, size_t qlen, const char *name)
{
	static const size_t caps[] = { 0, 1, 2, 8, 300 };
	char out[300 + 1];
	ssize_t full = -3;
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		memset(out, 0x5a, sizeof(out));
		ssize_t r = http_query_param(q, qlen, name, out, caps[i]);
		ASSERT(r >= -2);
		ASSERT(out[caps[i]] == 0x5a);                  /* nothing past cap */
		if (r >= 0) {
			ASSERT((size_t)r < caps[i] && out[r] == '\0' && (size_t)r <= qlen);
			if (full == -3) full = r;
			ASSERT(r == full);                           /* same value at any cap that fits */
		} else if (r == -1) {
			ASSERT(full == -3 || full == -1);
			full = -1;                                   /* absence does not depend on cap */
		}
	}
}

/* The first parameter name in q, NUL-terminated (for a guaranteed match). */
static void first_name(const char *q, size_t qlen, char *name, size_t cap)
{
	size_t i = 0;
	while (i < qlen && i + 1 < cap && q[i] != '=' && q[i] != '&' && q[i] != '\0') {
		name[i] = q[i];
		i++;
	}
	name[i] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	ssize_t n = http_parse_request(buf, size, &req);
	char name[64];

	ASSERT(n >= 0 || n == -400 || n == -431 || n == -505);
	if (n > 0) {
		size_t len = (size_t)n;
		ASSERT(len <= size && len <= HTTP_MAX_HEADER_BYTES && buf[len - 1] == '\n');
		ASSERT(req.method_len > 0 && inside(req.method, req.method_len, buf, len));
		ASSERT(req.path_len > 0 && inside(req.path, req.path_len, buf, len) && req.path[0] == '/');
		ASSERT(memchr(req.path, '?', req.path_len) == NULL);
		if (req.query) {
			ASSERT(inside(req.query, req.query_len, buf, len));
			ASSERT(req.query == req.path + req.path_len + 1 && req.query[-1] == '?');
		} else {
			ASSERT(req.query_len == 0);
		}
		ASSERT(req.minor >= 0 && req.minor <= 9);
		ASSERT(req.nheaders <= HTTP_MAX_HEADERS);
		for (size_t i = 0; i < req.nheaders; i++) {
			const struct http_header *h = &req.headers[i];
			ASSERT(h->name_len > 0 && inside(h->name, h->name_len, buf, len));
			ASSERT(inside(h->value, h->value_len, buf, len));
			ASSERT(memchr(h->name, ':', h->name_len) == NULL);
			ASSERT(memchr(h->value, '\r', h->value_len) == NULL && memchr(h->value, '\n', h->value_len) == NULL);
			ASSERT(memchr(h->value, '\0', h->value_len) == NULL);
			if (h->value_len) {
				ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
				ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
			}
			/* The helpers find what the parser found. */
			size_t nl = h->name_len < sizeof(name) - 1 ? h->name_len : sizeof(name) - 1;
			memcpy(name, h->name, nl);
			name[nl] = '\0';
			if (nl == h->name_len) {
				const struct http_header *g = http_header_get(&req, name);
				ASSERT(g && g <= h);
			}
			(void)http_has_token(h->value, h->value_len, "upgrade");
		}
		ASSERT(http_keep_alive(&req) == 0 || http_keep_alive(&req) == 1);
		(void)http_header_has_token(&req, "Connection", "upgrade");

		/* Prefixes: all of them for short inputs, a sample otherwise. */
		if (len <= 600) {
			for (size_t k = 0; k < len; k++) ASSERT(parse_prefix(data, k) == 0);
		} else {
			ASSERT(parse_prefix(data, len - 1) == 0);
			ASSERT(parse_prefix(data, len / 2) == 0);
			ASSERT(parse_prefix(data, 1) == 0);
		}
		ASSERT(parse_prefix(data, len) == n);

		if (req.query) {
			first_name(req.query, req.query_len, name, sizeof(name));
			query(req.query, req.query_len, name);
			query(req.query, req.query_len, "channel");
		}
	} else if (n < 0) {
		if (size <= 600) {
			for (size_t k = 0; k < size; k++) {
				ssize_t r = parse_prefix(data, k);
				ASSERT(r == 0 || r == n);
			}
		} else {
			ssize_t r = parse_prefix(data, size - 1);
			ASSERT(r == 0 || r == n);
			r = parse_prefix(data, size / 2);
			ASSERT(r == 0 || r == n);
		}
	} else {
		ASSERT(size < HTTP_MAX_HEADER_BYTES);     /* need-more is bounded */
	}

	/* The raw input as a query string. */
	first_name(buf, size, name, sizeof(name));
	query(buf, size, name);
	query(buf, size, "a");
	return 0;
}
