/* fuzz_http_body.c - libFuzzer target for http.c's body framing. The input
 * is a byte stream on one connection: it is read as pipelined requests
 * (head by http_parse_request, body by http_body) the way a session does,
 * once whole and once for each of two split points derived from the input
 * (the first part arrives, then the rest). Every request found must lie
 * inside the bytes buffered, its body right after its head; content_length
 * must be -1 exactly when no Content-Length field was parsed and
 * transfer_encoding 1 exactly when a Transfer-Encoding field was; and the
 * split readings must find the same requests, end and error as the whole
 * one (the parser never changes its mind as bytes arrive). Each parse runs
 * on an exact-size heap copy, so a read past what is buffered is caught.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_http_body.c http.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define MAX_REQUESTS 64   /* requests read per reading; enough for any seed */

/* What one reading of the stream found. */
struct reading {
	size_t n;                      /* requests complete */
	size_t head[MAX_REQUESTS];     /* their head lengths */
	int64_t cl[MAX_REQUESTS];
	int te[MAX_REQUESTS];
	size_t body[MAX_REQUESTS];     /* their body lengths */
	size_t end;                    /* bytes consumed by them */
	ssize_t err;                   /* 0, or the head error that stopped it */
};

static struct http_request req;
static struct reading whole, part;

static int inside(const char *p, size_t n, const char *lo, size_t len)
{
	return p >= lo && n <= len && p - lo <= (ptrdiff_t)(len - n);
}

/* One request's fields against the header lines the parser kept. */
static void check_fields(void)
{
	const struct http_header *clh = http_header_get(&req, "Content-Length");
	ASSERT(req.content_length >= -1 && req.content_length < 1000000000000000LL);
	ASSERT((clh == NULL) == (req.content_length == -1));
	ASSERT(req.transfer_encoding == (http_header_get(&req, "Transfer-Encoding") != NULL));
	/* A first value of digits alone is the length (later ones equal it). */
	if (clh && clh->value_len > 0 && clh->value_len <= HTTP_MAX_CL_DIGITS) {
		int64_t v = 0;
		size_t i = 0;
		while (i < clh->value_len && clh->value[i] >= '0' && clh->value[i] <= '9')
			v = v * 10 + (clh->value[i++] - '0');
		if (i == clh->value_len) ASSERT(v == req.content_length);
	}
}

/* Reads data[0..size) as a stream of which data[0..split) arrives first. */
static void read_stream(const uint8_t *data, size_t size, size_t split, struct reading *out)
{
	size_t pos = 0, avail = split;
	memset(out, 0, sizeof(*out));
	while (out->n < MAX_REQUESTS) {
		size_t len = avail - pos;
		char *b = malloc(len ? len : 1);
		const char *body = NULL;
		ASSERT(b);
		memcpy(b, data + pos, len);
		ssize_t h = http_parse_request(b, len, &req), got = -1;
		if (h < 0) {
			ASSERT(h == -400 || h == -431 || h == -505);
			out->err = h;
			free(b);
			break;
		}
		if (h > 0) {
			ASSERT((size_t)h <= len);
			check_fields();
			got = http_body(b, len, (size_t)h, &req, &body);
			ASSERT(got >= -1);
			if (got >= 0) {
				ASSERT(body == b + h && (size_t)h + (size_t)got <= len);
				ASSERT(inside(body, (size_t)got, b, len));
				ASSERT(got == (req.content_length > 0 ? req.content_length : 0));
			} else {
				ASSERT(req.content_length > 0 && (uint64_t)req.content_length > len - (size_t)h);
			}
		}
		if (h == 0 || got < 0) {
			free(b);
			if (avail == size) break;           /* nothing more will come */
			avail = size;                        /* the rest arrives */
			continue;
		}
		out->head[out->n] = (size_t)h;
		out->cl[out->n] = req.content_length;
		out->te[out->n] = req.transfer_encoding;
		out->body[out->n] = (size_t)got;
		out->n++;
		pos += (size_t)h + (size_t)got;
		free(b);
	}
	out->end = pos;
}

static int same(const struct reading *a, const struct reading *b)
{
	if (a->n != b->n || a->end != b->end || a->err != b->err) return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->head[i] != b->head[i] || a->cl[i] != b->cl[i] || a->te[i] != b->te[i] ||
		    a->body[i] != b->body[i])
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Split points from a hash of the input: reproducible from the input alone. */
	uint64_t hash = 1469598103934665603ULL;                 /* FNV-1a */
	for (size_t i = 0; i < size; i++) hash = (hash ^ data[i]) * 1099511628211ULL;

	read_stream(data, size, size, &whole);
	ASSERT(whole.end <= size);
	size_t splits[2] = { (size_t)(hash % (size + 1)), (size_t)((hash >> 32) % (size + 1)) };
	for (int s = 0; s < 2; s++) {
		read_stream(data, size, splits[s], &part);
		ASSERT(same(&whole, &part));
	}

	/* A head with no body in front of it: 0, pointing at the end. */
	struct http_request none;
	const char *body = NULL;
	memset(&none, 0, sizeof(none));
	none.content_length = -1;
	ASSERT(http_body((const char *)data, size, size, &none, &body) == 0 && body == (const char *)data + size);
	return 0;
}
