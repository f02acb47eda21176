/* test_http_body.c - request bodies in http.c: the Content-Length and
 * Transfer-Encoding fields http_parse_request reads, and http_body, which
 * finds a Content-Length body after the head. A POST is fed at every split
 * (head incomplete: 0; head in, body not: -1; all in: the body), from heap
 * buffers of the exact size so ASan catches a read past len; a POST and a
 * GET pipelined in one buffer; every malformed Content-Length RFC 9110 §8.6
 * leaves us unsure of (signs, non-digits, empty elements, over 15 digits,
 * differing values in a list or on several lines) fed whole and as every
 * prefix; repeated equal values and leading zeros; bare-LF heads; and the
 * reason phrases of 411 and 413. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "check.h"
#include "http.h"

/* s[0..n) in a heap buffer of exactly n bytes (ASan bounds it). */
static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);
	if (!b) abort();
	memcpy(b, s, n);
	return b;
}

static const char post[] =
	"POST /publish/x HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\n{\"a\":[1,2,3]}";
#define POST_HEAD (sizeof(post) - 1 - 13)

/* The POST split after every byte: what the head parser and http_body say
 * about each prefix, i.e. what a connection sees as the bytes trickle in. */
static void test_byte_by_byte(void)
{
	size_t n = sizeof(post) - 1;
	struct http_request r;
	int bad = 0;
	CHECK(memcmp(post + POST_HEAD - 4, "\r\n\r\n", 4) == 0);
	for (size_t k = 0; k <= n && !bad; k++) {
		char *b = exact(post, k);
		const char *body = NULL;
		ssize_t h = http_parse_request(b, k, &r);
		if (k < POST_HEAD) {
			CHECKF(h == 0, "prefix %zu: head gave %zd, want 0", k, h);
			bad = h != 0;
		} else {
			CHECKF(h == (ssize_t)POST_HEAD && r.content_length == 13 && !r.transfer_encoding,
			       "prefix %zu: head %zd, length %lld", k, h, (long long)r.content_length);
			ssize_t got = http_body(b, k, (size_t)h, &r, &body);
			if (k < n) {
				CHECKF(got == -1, "prefix %zu: body gave %zd, want -1", k, got);
				bad = got != -1;
			} else {
				CHECK(got == 13 && body == b + POST_HEAD);
				CHECK_MEM(body, (size_t)(got > 0 ? got : 0), "{\"a\":[1,2,3]}", 13);
			}
		}
		free(b);
	}
	CHECK(!bad);

	/* The same request with bare LF line endings. */
	static const char lf[] = "POST /publish/x HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc";
	const char *body;
	CHECK(http_parse_request(lf, sizeof(lf) - 1, &r) == (ssize_t)sizeof(lf) - 4);
	CHECK(r.content_length == 3);
	CHECK(http_body(lf, sizeof(lf) - 1, sizeof(lf) - 4, &r, &body) == 3 && body == lf + sizeof(lf) - 4);
	CHECK(http_body(lf, sizeof(lf) - 2, sizeof(lf) - 4, &r, &body) == -1);
}

/* A POST with its body, then a GET, in one buffer: the GET's head starts
 * right after the body, at every prefix of the whole. */
static void test_pipelined(void)
{
	static const char get[] = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t pn = sizeof(post) - 1, gn = sizeof(get) - 1, n = pn + gn;
	char *all = malloc(n);
	struct http_request r;
	const char *body;
	if (!all) abort();
	memcpy(all, post, pn);
	memcpy(all + pn, get, gn);

	CHECK(http_parse_request(all, n, &r) == (ssize_t)POST_HEAD);
	CHECK(http_body(all, n, POST_HEAD, &r, &body) == 13 && body == all + POST_HEAD);
	CHECK(http_parse_request(all + pn, n - pn, &r) == (ssize_t)gn);
	CHECK_MEM(r.path, r.path_len, "/health", 7);
	CHECK(r.content_length == -1 && !r.transfer_encoding);
	CHECK(http_body(all + pn, n - pn, gn, &r, &body) == 0 && body == all + n);

	/* Every prefix: the POST completes at pn, the GET at n, never earlier. */
	int bad = 0;
	for (size_t k = 0; k <= n && !bad; k++) {
		char *b = exact(all, k);
		size_t done = 0;
		ssize_t h = http_parse_request(b, k, &r), got = -1;
		if (h > 0 && (got = http_body(b, k, (size_t)h, &r, &body)) >= 0) {
			done = (size_t)h + (size_t)got;
			h = http_parse_request(b + done, k - done, &r);
			if (h > 0 && http_body(b + done, k - done, (size_t)h, &r, &body) == 0)
				done += (size_t)h;
		}
		size_t want = k < pn ? 0 : k < n ? pn : n;
		CHECKF(done == want, "prefix %zu: consumed %zu, want %zu", k, done, want);
		bad = done != want;
		free(b);
	}

	/* A body that looks like a request is still the body. */
	static const char sneaky[] = "POST /publish/x HTTP/1.1\r\nContent-Length: 18\r\n\r\n"
				     "GET / HTTP/1.1\r\n\r\n";
	ssize_t h = http_parse_request(sneaky, sizeof(sneaky) - 1, &r);
	CHECK(h > 0 && http_body(sneaky, sizeof(sneaky) - 1, (size_t)h, &r, &body) == 18);
	CHECK(h > 0 && (size_t)h + 18 == sizeof(sneaky) - 1);
	free(all);
}

/* Parses "POST /publish/x HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n" whole
 * and as every prefix. want >= -1: the head parses with that
 * content_length; want < -1: the whole head is that error and every prefix
 * 0 or that error. */
static void cl(const char *fields, int64_t want, int line)
{
	char s[512];
	int n = snprintf(s, sizeof(s), "POST /publish/x HTTP/1.1\r\nHost: a\r\n%s\r\n", fields);
	struct http_request r;
	if (n < 0 || (size_t)n >= sizeof(s)) abort();
	for (size_t k = 0; k <= (size_t)n; k++) {
		char *b = exact(s, k);
		ssize_t h = http_parse_request(b, k, &r);
		free(b);
		int ok;
		if (k < (size_t)n) ok = h == 0 || (want < -1 && h == want);
		else if (want < -1) ok = h == want;
		else ok = h == n && r.content_length == want;
		if (!ok) {
			CHECKF(0, "line %d: %zu/%d bytes gave %zd (length %lld), want %lld",
			       line, k, n, h, (long long)r.content_length, (long long)want);
			return;   /* one message per input */
		}
	}
	check_pass++;
}
#define CL(fields, want) cl(fields, want, __LINE__)

static void test_content_length(void)
{
	CL("", -1);                                        /* none: -1 */
	CL("Content-Length: 5\r\n", 5);
	CL("Content-Length: 0\r\n", 0);
	CL("content-LENGTH: 7\r\n", 7);                    /* names are case-insensitive */
	CL("Content-Length:  \t5 \t\r\n", 5);              /* OWS around the value */
	CL("Content-Length: 005\r\n", 5);                  /* leading zeros: 1*DIGIT */
	CL("Content-Length: 999999999999999\r\n", 999999999999999);   /* 15 digits */
	CL("Content-Length: 000000000000005\r\n", 5);
	/* The same value repeated is that value (RFC 9110 §8.6). */
	CL("Content-Length: 5, 5\r\n", 5);
	CL("Content-Length: 5,5,\t5\r\n", 5);
	CL("Content-Length: 5\r\nContent-Length: 5\r\n", 5);
	CL("Content-Length: 5\r\nX: y\r\ncontent-length: 5, 5\r\n", 5);
	CL("Content-Length: 5\r\nContent-Length: 05\r\n", 5);          /* equal as numbers */

	/* Malformed: we cannot be sure of the length, so no body is read. */
	CL("Content-Length: -1\r\n", -400);
	CL("Content-Length: +5\r\n", -400);
	CL("Content-Length: 5a\r\n", -400);
	CL("Content-Length: a5\r\n", -400);
	CL("Content-Length:\r\n", -400);                   /* empty */
	CL("Content-Length:   \r\n", -400);
	CL("Content-Length: 0x10\r\n", -400);
	CL("Content-Length: 1e3\r\n", -400);
	CL("Content-Length: 5.0\r\n", -400);
	CL("Content-Length: 5 5\r\n", -400);               /* two values, no comma */
	CL("Content-Length: 1000000000000000\r\n", -400);  /* 16 digits */
	CL("Content-Length: 0000000000000005\r\n", -400);  /* 16 digits, zeros count */
	CL("Content-Length: 99999999999999999999\r\n", -400);   /* would overflow int64_t */
	CL("Content-Length: 5, 6\r\n", -400);
	CL("Content-Length: 5,\r\n", -400);                /* empty list elements */
	CL("Content-Length: ,5\r\n", -400);
	CL("Content-Length: 5,,5\r\n", -400);
	CL("Content-Length: 5\r\nContent-Length: 6\r\n", -400);
	CL("Content-Length: 5\r\nContent-Length: 5, 6\r\n", -400);
	CL("Content-Length: 5\r\nContent-Length:\r\n", -400);
	CL("Content-Length: \xd9\xa5\r\n", -400);          /* a non-ASCII digit */
	/* The field is checked as soon as its line is in: the head need not end. */
	{
		static const char s[] = "POST /p HTTP/1.1\r\nContent-Length: x\r\nHost: a";
		struct http_request r;
		CHECK(http_parse_request(s, sizeof(s) - 1, &r) == -400);
	}
	/* Other fields whose names only start alike are not Content-Length. */
	CL("Content-Lengthy: x\r\nX-Content-Length: y\r\n", -1);
}

static void test_transfer_encoding(void)
{
	static const struct { const char *head; int te; int64_t cl; } cases[] = {
		{ "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 1, -1 },
		{ "POST /p HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 1, -1 },
		{ "POST /p HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 1, -1 },          /* any value */
		{ "POST /p HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 5 },
		{ "POST /p HTTP/1.1\r\nTransfer-Encodings: chunked\r\n\r\n", 0, -1 },
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_request r;
		size_t n = strlen(cases[i].head);
		char *b = exact(cases[i].head, n);
		ssize_t h = http_parse_request(b, n, &r);
		CHECKF(h == (ssize_t)n && r.transfer_encoding == cases[i].te && r.content_length == cases[i].cl,
		       "case %zu: %zd, te %d, length %lld", i, h, r.transfer_encoding, (long long)r.content_length);
		free(b);
	}
}

/* http_body never reads a byte; it never claims bytes beyond len; and what
 * follows head + length is left alone. */
static void test_body_bounds(void)
{
	struct http_request r;
	const char *body;

	/* Announced 1000, 10 in: the exact-size buffer is not read past. */
	static const char big[] = "POST /p HTTP/1.1\r\nContent-Length: 1000\r\n\r\n0123456789";
	size_t n = sizeof(big) - 1, head = n - 10;
	char *b = exact(big, n);
	CHECK(http_parse_request(b, n, &r) == (ssize_t)head && r.content_length == 1000);
	CHECK(http_body(b, n, head, &r, &body) == -1);
	CHECK(http_body(b, head, head, &r, &body) == -1);       /* head alone */
	free(b);

	/* Exactly the body, then exactly the body plus the next request's bytes. */
	static const char two[] = "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET";
	n = sizeof(two) - 1;
	head = n - 7;
	for (size_t k = head + 4; k <= n; k++) {
		b = exact(two, k);
		CHECK(http_parse_request(b, k, &r) == (ssize_t)head);
		CHECK(http_body(b, k, head, &r, &body) == 4 && body == b + head);
		free(b);
	}

	/* No body announced, or 0: 0 and a pointer at the end of the head. */
	static const char zero[] = "POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	head = sizeof("POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n") - 1;
	CHECK(http_parse_request(zero, sizeof(zero) - 1, &r) == (ssize_t)head && r.content_length == 0);
	CHECK(http_body(zero, sizeof(zero) - 1, head, &r, &body) == 0 && body == zero + head);
	CHECK(http_body(zero, head, head, &r, &body) == 0 && body == zero + head);
	static const char none[] = "GET / HTTP/1.1\r\n\r\n";
	CHECK(http_parse_request(none, 18, &r) == 18 && r.content_length == -1);
	CHECK(http_body(none, 18, 18, &r, &body) == 0 && body == none + 18);

	/* A head_len past len (a caller's bug) is not pointed into. */
	body = none;
	CHECK(http_body(none, 10, 18, &r, &body) == -1 && body == NULL);

	/* The largest length: waits, whatever is buffered. */
	static const char max[] = "POST /p HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\nxyz";
	head = sizeof(max) - 4;
	CHECK(http_parse_request(max, sizeof(max) - 1, &r) == (ssize_t)head);
	CHECK(http_body(max, sizeof(max) - 1, head, &r, &body) == -1);
}

static void test_reasons(void)
{
	CHECK(strcmp(http_reason(411), "Length Required") == 0);
	CHECK(strcmp(http_reason(413), "Content Too Large") == 0);
}

int main(void)
{
	test_byte_by_byte();
	test_pipelined();
	test_content_length();
	test_transfer_encoding();
	test_body_bounds();
	test_reasons();
	return check_summary("http_body");
}
