/* test_http.c - the HTTP/1.1 request-head parser and its helpers. Every
 * request is fed whole and as each of its prefixes, from a heap buffer of the
 * exact size so ASan catches a read past len; valid heads are also tried with
 * bare-LF line endings. Covers the 8192-byte and 64-header limits at their
 * exact boundaries, every malformed form RFC 9112 makes us reject, and the
 * token, query-parameter, keep-alive and response-head helpers, and the
 * query iterator (http_query_next: order, empty pairs, names without '=',
 * percent-decoding and '+' in names and values, bad escapes and %00,
 * capacities at their exact boundaries, qlen, empty and NULL queries). */
#include <stdlib.h>
#include <sys/types.h>

#include "check.h"
#include "http.h"

/* Parses s[0..n) from an exact-size heap copy (so over-reads are caught). */
static ssize_t parse_exact(const char *s, size_t n, struct http_request *req)
{
	char *b = malloc(n ? n : 1);
	if (!b) abort();
	memcpy(b, s, n);
	ssize_t r = http_parse_request(b, n, req);
	free(b);
	return r;
}

/* Feeds s[0..n) whole and as every prefix. `want` is the whole-input result.
 * A success means every prefix shorter than it needs more and every longer
 * prefix returns the same length; an error means every prefix returns 0 or
 * that same error. */
static void feed(const char *s, size_t n, ssize_t want, int line)
{
	struct http_request req;
	ssize_t r = parse_exact(s, n, &req);
	CHECKF(r == want, "line %d: whole input (%zu bytes) gave %zd, want %zd", line, n, r, want);
	for (size_t k = 0; k < n; k++) {
		r = parse_exact(s, k, &req);
		ssize_t ok = want > 0 ? ((ssize_t)k < want ? 0 : want) : 0;
		if (!(r == ok || (want < 0 && r == want))) {
			CHECKF(0, "line %d: prefix of %zu/%zu bytes gave %zd, want %zd", line, k, n, r, ok);
			return;       /* one message per input is enough */
		}
	}
	check_pass++;
}

/* Replaces every CRLF by LF; returns the new length. */
static size_t to_lf(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') continue;
		out[o++] = s[i];
	}
	return o;
}

/* A valid head: fed as is and with bare LFs, whole and byte by byte. */
static void valid(const char *s, int line)
{
	size_t n = strlen(s);
	char *lf = malloc(n + 1);
	if (!lf) abort();
	feed(s, n, (ssize_t)n, line);
	size_t m = to_lf(s, n, lf);
	feed(lf, m, (ssize_t)m, line);
	free(lf);
}

#define BAD(s, code) feed(s, sizeof(s) - 1, code, __LINE__)
#define VALID(s) valid(s, __LINE__)

static int hdr_is(const struct http_request *r, size_t i, const char *name, const char *value)
{
	return i < r->nheaders &&
	       r->headers[i].name_len == strlen(name) && memcmp(r->headers[i].name, name, strlen(name)) == 0 &&
	       r->headers[i].value_len == strlen(value) && memcmp(r->headers[i].value, value, strlen(value)) == 0;
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static void test_valid(void)
{
	static const char get[] =
		"GET /ws?channel=a&format=json HTTP/1.1\r\n"
		"Host: example.com:8080\r\n"
		"Upgrade: websocket\r\n"
		"Connection: keep-alive, Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Version: 13\r\n"
		"X-Empty:\r\n"
		"X-Pad: \t padded  value \t \r\n"
		"X-Obs: caf\xc3\xa9 \x80\xff\r\n"
		"\r\n";
	struct http_request r;
	size_t n = sizeof(get) - 1;

	VALID(get);
	CHECK(http_parse_request(get, n, &r) == (ssize_t)n);
	CHECK_MEM(r.method, r.method_len, "GET", 3);
	CHECK_MEM(r.path, r.path_len, "/ws", 3);
	CHECK(r.query != NULL);
	CHECK_MEM(r.query, r.query_len, "channel=a&format=json", 21);
	CHECK(r.minor == 1);
	CHECKF(r.nheaders == 8, "nheaders %zu", r.nheaders);
	CHECK(hdr_is(&r, 0, "Host", "example.com:8080"));
	CHECK(hdr_is(&r, 1, "Upgrade", "websocket"));
	CHECK(hdr_is(&r, 2, "Connection", "keep-alive, Upgrade"));
	CHECK(hdr_is(&r, 3, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="));
	CHECK(hdr_is(&r, 4, "Sec-WebSocket-Version", "13"));
	CHECK(hdr_is(&r, 5, "X-Empty", ""));
	CHECK(hdr_is(&r, 6, "X-Pad", "padded  value"));      /* inner spaces kept */
	CHECK(hdr_is(&r, 7, "X-Obs", "caf\xc3\xa9 \x80\xff")); /* obs-text allowed */
	for (size_t i = 0; i < r.nheaders; i++) {
		CHECK(inside(r.headers[i].name, r.headers[i].name_len, get, n));
		CHECK(inside(r.headers[i].value, r.headers[i].value_len, get, n));
	}

	/* The same head with bare LF line endings parses to the same fields. */
	{
		char lf[sizeof(get)];
		size_t m = to_lf(get, n, lf);
		CHECK(http_parse_request(lf, m, &r) == (ssize_t)m);
		CHECK(r.nheaders == 8 && hdr_is(&r, 6, "X-Pad", "padded  value") && r.minor == 1);
		/* Mixed endings too. */
		static const char mixed[] = "GET / HTTP/1.1\nHost: a\r\nX: y\n\r\n";
		VALID(mixed);
		CHECK(http_parse_request(mixed, sizeof(mixed) - 1, &r) == (ssize_t)sizeof(mixed) - 1);
		CHECK(r.nheaders == 2 && hdr_is(&r, 0, "Host", "a") && hdr_is(&r, 1, "X", "y"));
	}

	/* HTTP/1.0, no headers, HEAD, any tchar method (405 is the caller's). */
	VALID("HEAD / HTTP/1.0\r\n\r\n");
	CHECK(http_parse_request("HEAD / HTTP/1.0\r\n\r\n", 19, &r) == 19);
	CHECK_MEM(r.method, r.method_len, "HEAD", 4);
	CHECK(r.minor == 0 && r.nheaders == 0 && r.query == NULL && r.query_len == 0);
	CHECK_MEM(r.path, r.path_len, "/", 1);
	VALID("M-SEARCH!#$%&'*+.^_`|~ /x HTTP/1.1\r\n\r\n");
	VALID("GET /a%20b/c;d=e HTTP/1.1\r\n\r\n");
	VALID("GET / HTTP/1.9\r\n\r\n");
	CHECK(http_parse_request("GET / HTTP/1.9\r\n\r\n", 18, &r) == 18 && r.minor == 9);

	/* The body is not part of the head. */
	{
		static const char post[] = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
		CHECK(http_parse_request(post, sizeof(post) - 1, &r) == (ssize_t)sizeof(post) - 6);
	}
}

static void test_query_split(void)
{
	struct http_request r;
	static const char a[] = "GET /p? HTTP/1.1\r\n\r\n";
	CHECK(http_parse_request(a, sizeof(a) - 1, &r) > 0);
	CHECK_MEM(r.path, r.path_len, "/p", 2);
	CHECK(r.query == a + 7 && r.query_len == 0);           /* "?" alone: empty query */

	static const char b[] = "GET /a?b?c=d HTTP/1.1\r\n\r\n";
	CHECK(http_parse_request(b, sizeof(b) - 1, &r) > 0);
	CHECK_MEM(r.path, r.path_len, "/a", 2);
	CHECK_MEM(r.query, r.query_len, "b?c=d", 5);            /* first '?' splits */

	static const char c[] = "GET /ws/stats HTTP/1.1\r\n\r\n";
	CHECK(http_parse_request(c, sizeof(c) - 1, &r) > 0);
	CHECK_MEM(r.path, r.path_len, "/ws/stats", 9);
	CHECK(r.query == NULL && r.query_len == 0);

	static const char d[] = "GET /?channels=a,b HTTP/1.1\r\n\r\n";
	CHECK(http_parse_request(d, sizeof(d) - 1, &r) > 0);
	CHECK_MEM(r.path, r.path_len, "/", 1);
	CHECK_MEM(r.query, r.query_len, "channels=a,b", 12);
}

static void test_pipelined(void)
{
	static const char two[] =
		"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /ready HTTP/1.1\r\nHost: b\r\n\r\n";
	size_t first = strlen("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	struct http_request r;

	feed(two, sizeof(two) - 1, (ssize_t)first, __LINE__);
	CHECK(http_parse_request(two, sizeof(two) - 1, &r) == (ssize_t)first);
	CHECK_MEM(r.path, r.path_len, "/health", 7);
	CHECK(r.nheaders == 1 && hdr_is(&r, 0, "Host", "a"));
	CHECK(http_parse_request(two + first, sizeof(two) - 1 - first, &r) == (ssize_t)(sizeof(two) - 1 - first));
	CHECK_MEM(r.path, r.path_len, "/ready", 6);
	CHECK(hdr_is(&r, 0, "Host", "b"));

	/* A complete first head followed by garbage: still the first head. */
	static const char junk[] = "GET / HTTP/1.1\r\n\r\n\x01\x02 garbage";
	CHECK(http_parse_request(junk, sizeof(junk) - 1, &r) == 18);
	/* A first head followed by more than 8 KiB: the limit is per head. */
	{
		size_t n = 18 + 9000;
		char *big = malloc(n);
		if (!big) abort();
		memcpy(big, "GET / HTTP/1.1\r\n\r\n", 18);
		memset(big + 18, 'A', 9000);
		CHECK(http_parse_request(big, n, &r) == 18);
		free(big);
	}
}

static void test_leading_empty_lines(void)
{
	static const char s[] = "\r\n\n\r\nGET /x HTTP/1.1\r\nA: b\r\n\r\n";
	struct http_request r;
	VALID(s);
	CHECK(http_parse_request(s, sizeof(s) - 1, &r) == (ssize_t)sizeof(s) - 1);
	CHECK(r.method == s + 5);
	CHECK_MEM(r.path, r.path_len, "/x", 2);

	/* At most 64 bytes of empty lines (http.c's own bound); 65 is refused. */
	char buf[256];
	size_t n = 0;
	for (int i = 0; i < 32; i++) { buf[n++] = '\r'; buf[n++] = '\n'; }
	memcpy(buf + n, "GET / HTTP/1.1\r\n\r\n", 18);
	feed(buf, n + 18, (ssize_t)(n + 18), __LINE__);
	memmove(buf + 1, buf, 64 + 18);
	buf[0] = '\n';                   /* "\n" + 32 x "\r\n": 65 bytes */
	feed(buf, 65 + 18, -400, __LINE__);

	/* "\r" then anything but "\n" before the request line. */
	BAD("\rGET / HTTP/1.1\r\n\r\n", -400);
	BAD("\r\rGET / HTTP/1.1\r\n\r\n", -400);

	/* Only CR/LF bytes: once more than 64 of them are in, the answer is
	 * already -400; it must not stay "need more" forever (regression: the
	 * bound used to be checked only after the first non-empty byte). */
	{
		size_t m = 2 * 8192;
		char *crlf = malloc(m);
		if (!crlf) abort();
		for (size_t i = 0; i < m; i += 2) { crlf[i] = '\r'; crlf[i + 1] = '\n'; }
		ssize_t rc = http_parse_request(crlf, 66, &r);
		CHECKF(rc == -400, "66 bytes of CRLF gave %zd, want -400 (over the 64-byte bound)", rc);
		rc = http_parse_request(crlf, m, &r);
		CHECKF(rc < 0, "16384 bytes of CRLF gave %zd, want -400 or -431", rc);
		free(crlf);
	}
}

static void test_malformed(void)
{
	/* Request line. */
	BAD("GET /\r\n\r\n", -400);                    /* missing version */
	BAD("GET\r\n\r\n", -400);                      /* method only */
	BAD("GET \r\n\r\n", -400);                     /* empty target */
	BAD("GET / \r\n\r\n", -400);                   /* empty version */
	BAD("GET / HTTP/1.1x\r\n\r\n", -400);
	BAD("GET / HTTP/1.1 \r\n\r\n", -400);          /* trailing space */
	BAD("GET / http/1.1\r\n\r\n", -400);           /* name is case-sensitive */
	BAD("GET / HTTP/11\r\n\r\n", -400);
	BAD("GET / HTTP/1.\r\n\r\n", -400);
	BAD("GET / HTTP/1.10\r\n\r\n", -400);
	BAD("GET / HTTP/a.1\r\n\r\n", -400);
	BAD("GET / HTTP/1.a\r\n\r\n", -400);
	BAD("GET / HTTP 1.1\r\n\r\n", -400);
	BAD("GET  / HTTP/1.1\r\n\r\n", -400);          /* two spaces */
	BAD("GET /  HTTP/1.1\r\n\r\n", -400);
	BAD("GET\t/ HTTP/1.1\r\n\r\n", -400);
	BAD("GET /\tHTTP/1.1\r\n\r\n", -400);
	BAD(" GET / HTTP/1.1\r\n\r\n", -400);          /* empty method */
	BAD(" / HTTP/1.1\r\n\r\n", -400);
	BAD("GE(T / HTTP/1.1\r\n\r\n", -400);          /* method with non-tchar */
	BAD("GE\"T / HTTP/1.1\r\n\r\n", -400);
	BAD("G\x80T / HTTP/1.1\r\n\r\n", -400);
	BAD("GET * HTTP/1.1\r\n\r\n", -400);           /* asterisk-form */
	BAD("GET http://a/ HTTP/1.1\r\n\r\n", -400);   /* absolute-form */
	BAD("GET ws HTTP/1.1\r\n\r\n", -400);
	BAD("GET ?a=b HTTP/1.1\r\n\r\n", -400);
	BAD("GET /a\x01" "b HTTP/1.1\r\n\r\n", -400);  /* control char in target */
	BAD("GET /a\x7f" "b HTTP/1.1\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\rX\r\n\r\n", -400);        /* stray CR */
	BAD("GET / HTTP/1.1\r\r\n\r\n", -400);
	BAD("GET /\r HTTP/1.1\r\n\r\n", -400);
	feed("GET /\0 HTTP/1.1\r\n\r\n", 19, -400, __LINE__);   /* NUL in target */

	/* Versions other than 1.x. */
	BAD("GET / HTTP/2.0\r\n\r\n", -505);
	BAD("GET / HTTP/0.9\r\n\r\n", -505);
	BAD("GET / HTTP/3.1\r\n\r\n", -505);
	BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505);

	/* Header lines. */
	BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400);   /* space before colon */
	BAD("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nX Y: a\r\n\r\n", -400);     /* space in name */
	BAD("GET / HTTP/1.1\r\nNoColon\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA: b\r\nNoColon\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA(b: c\r\n\r\n", -400);     /* non-tchar in name */
	BAD("GET / HTTP/1.1\r\nA\x80: c\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", -400);   /* obs-fold (RFC 9112 §5.2) */
	BAD("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\n X: y\r\n\r\n", -400);        /* space before first field (RFC 9112 §2.2) */
	BAD("GET / HTTP/1.1\r\nA: b\x01" "c\r\n\r\n", -400); /* control chars in values */
	BAD("GET / HTTP/1.1\r\nA: b\x1b" "c\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA: \x1f\r\n\r\n", -400);
	feed("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 26, -400, __LINE__);   /* NUL in value */
	BAD("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", -400);      /* stray CR in value */
	BAD("GET / HTTP/1.1\r\nA: b\r\r\n\r\n", -400);
	BAD("GET / HTTP/1.1\r\nA: b\r\n\r\r\n", -400);       /* CR CR LF as the end */
	BAD("GET / HTTP/1.1\r\nA: b\n\rx\n\n", -400);
}

/* "GET / HTTP/1.1\r\nX-Pad: aaa...\r\n\r\n" of exactly `total` bytes, with
 * CRLF (crlf = 1) or bare LF line endings. */
static char *head_of(size_t total, int crlf)
{
	const char *line1 = crlf ? "GET / HTTP/1.1\r\n" : "GET / HTTP/1.1\n";
	size_t fixed = strlen(line1) + strlen("X-Pad: ") + (crlf ? 4 : 2);
	char *b = malloc(total);
	if (!b || total < fixed) abort();
	size_t n = strlen(line1);
	memcpy(b, line1, n);
	memcpy(b + n, "X-Pad: ", 7);
	n += 7;
	memset(b + n, 'a', total - fixed);
	n += total - fixed;
	memcpy(b + n, crlf ? "\r\n\r\n" : "\n\n", crlf ? 4 : 2);
	return b;
}

static void test_size_limit(void)
{
	/* http.c counts every byte up to and including the LF that ends the
	 * head (leading empty lines included): a head of exactly 8192 bytes
	 * parses, 8193 is 431. An incomplete head is 431 as soon as 8192 bytes
	 * are buffered without completing it, and 0 up to 8191. */
	for (int crlf = 0; crlf <= 1; crlf++) {
		char *b = head_of(HTTP_MAX_HEADER_BYTES, crlf);
		feed(b, HTTP_MAX_HEADER_BYTES, HTTP_MAX_HEADER_BYTES, __LINE__);
		free(b);
		b = head_of(HTTP_MAX_HEADER_BYTES + 1, crlf);
		feed(b, HTTP_MAX_HEADER_BYTES + 1, -431, __LINE__);
		struct http_request r;
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES - 1, &r) == 0);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES, &r) == -431);
		free(b);
	}
	/* A request line alone that never ends. */
	{
		char *b = malloc(HTTP_MAX_HEADER_BYTES + 100);
		struct http_request r;
		if (!b) abort();
		memcpy(b, "GET /", 5);
		memset(b + 5, 'a', HTTP_MAX_HEADER_BYTES + 95);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES - 1, &r) == 0);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES, &r) == -431);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES + 100, &r) == -431);
		/* A request line of exactly 8192 bytes leaves no room for the
		 * final CRLF (head 8194); 2 bytes shorter, the head is 8192. */
		memcpy(b + HTTP_MAX_HEADER_BYTES - 11, " HTTP/1.1\r\n", 11);
		memcpy(b + HTTP_MAX_HEADER_BYTES, "\r\n", 2);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES + 2, &r) == -431);
		memcpy(b + HTTP_MAX_HEADER_BYTES - 13, " HTTP/1.1\r\n\r\n", 13);
		CHECK(parse_exact(b, HTTP_MAX_HEADER_BYTES, &r) == HTTP_MAX_HEADER_BYTES);
		free(b);
	}
	/* Leading empty lines count toward the limit. */
	{
		char *b = head_of(HTTP_MAX_HEADER_BYTES - 1, 1);
		char *c = malloc(HTTP_MAX_HEADER_BYTES + 1);
		struct http_request r;
		if (!c) abort();
		c[0] = '\n';
		memcpy(c + 1, b, HTTP_MAX_HEADER_BYTES - 1);
		CHECK(parse_exact(c, HTTP_MAX_HEADER_BYTES, &r) == HTTP_MAX_HEADER_BYTES);
		c[0] = '\r'; c[1] = '\n';
		memcpy(c + 2, b, HTTP_MAX_HEADER_BYTES - 1);
		CHECK(parse_exact(c, HTTP_MAX_HEADER_BYTES + 1, &r) == -431);
		free(b);
		free(c);
	}
}

static void test_header_count(void)
{
	/* Short lines, so the count and not the byte limit is what is hit. */
	size_t cap = 16 * (HTTP_MAX_HEADERS + 2) + 64;
	char *buf = malloc(cap), last[32];
	struct http_request r;
	if (!buf) abort();
	for (int extra = 0; extra <= 1; extra++) {
		size_t n = 0;
		n += (size_t)sprintf(buf + n, "GET / HTTP/1.1\r\n");
		for (int i = 0; i < HTTP_MAX_HEADERS + extra; i++)
			n += (size_t)sprintf(buf + n, "H%d: %d\r\n", i, i);
		n += (size_t)sprintf(buf + n, "\r\n");
		CHECKF(n <= HTTP_MAX_HEADER_BYTES, "%d headers take %zu bytes: test needs rework", HTTP_MAX_HEADERS, n);
		feed(buf, n, extra ? -431 : (ssize_t)n, __LINE__);
		if (!extra) {
			CHECK(http_parse_request(buf, n, &r) == (ssize_t)n);
			CHECK(r.nheaders == HTTP_MAX_HEADERS);
			sprintf(last, "H%d", HTTP_MAX_HEADERS - 1);
			const struct http_header *h = http_header_get(&r, last);
			CHECK(h && h == &r.headers[HTTP_MAX_HEADERS - 1]);
		}
	}
	free(buf);
}

static void test_header_get(void)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: one\r\nX-A: 1\r\nhost: two\r\nHostx: 3\r\n\r\n";
	struct http_request r;
	CHECK(http_parse_request(s, sizeof(s) - 1, &r) > 0);
	const struct http_header *h;
	const char *names[] = { "Host", "host", "HOST", "hOsT" };
	for (size_t i = 0; i < 4; i++) {
		h = http_header_get(&r, names[i]);
		CHECKF(h && h->value_len == 3 && memcmp(h->value, "one", 3) == 0, "%s", names[i]);
	}
	CHECK(http_header_get(&r, "Hos") == NULL);
	CHECK(http_header_get(&r, "Hostxy") == NULL);
	CHECK(http_header_get(&r, "") == NULL);
	h = http_header_get(&r, "HOSTX");
	CHECK(h && h->value_len == 1 && h->value[0] == '3');
	h = http_header_get(&r, "x-a");
	CHECK(h && h->value_len == 1 && h->value[0] == '1');
}

static void token(const char *v, const char *tok, int want, int line)
{
	size_t n = strlen(v);
	char *b = malloc(n ? n : 1);
	if (!b) abort();
	memcpy(b, v, n);
	int got = http_has_token(b, n, tok);
	CHECKF(got == want, "line %d: \"%s\" has \"%s\": %d, want %d", line, v, tok, got, want);
	free(b);
}
#define TOKEN(v, t, w) token(v, t, w, __LINE__)

static void test_has_token(void)
{
	TOKEN("keep-alive, Upgrade", "upgrade", 1);
	TOKEN("keep-alive, Upgrade", "keep-alive", 1);
	TOKEN("keep-alive, Upgrade", "Keep-Alive", 1);
	TOKEN("keep-alive,Upgrade", "upgrade", 1);
	TOKEN("Upgrade", "UPGRADE", 1);
	TOKEN("upgrade", "upgrade", 1);
	TOKEN("  \t upgrade \t  ", "upgrade", 1);
	TOKEN(",, ,\t,upgrade,,", "upgrade", 1);
	TOKEN("a , \t upgrade\t , b", "upgrade", 1);
	TOKEN("upgrades", "upgrade", 0);
	TOKEN("xupgrade", "upgrade", 0);
	TOKEN("upgrade-h2c", "upgrade", 0);
	TOKEN("up grade", "upgrade", 0);
	TOKEN("upgrade x", "upgrade", 0);
	TOKEN("keep-alive", "upgrade", 0);
	TOKEN("", "upgrade", 0);
	TOKEN(",", "upgrade", 0);
	TOKEN(" , , ", "upgrade", 0);
	TOKEN("upgrad", "upgrade", 0);
	TOKEN("close", "close", 1);
	TOKEN("keep-alive, close", "close", 1);
	TOKEN("closed", "close", 0);
	/* len is respected: only the first 5 bytes are the value. */
	CHECK(http_has_token("close, upgrade", 5, "upgrade") == 0);
	CHECK(http_has_token("close, upgrade", 5, "close") == 1);
	CHECK(http_has_token("upgrade", 6, "upgrade") == 0);
}

static void qp(const char *q, const char *name, size_t cap, ssize_t want, const char *wantv, int line)
{
	size_t n = strlen(q);
	char *b = malloc(n ? n : 1);
	char out[300];
	if (!b) abort();
	memcpy(b, q, n);
	memset(out, 0x5a, sizeof(out));
	ssize_t got = http_query_param(b, n, name, out, cap);
	CHECKF(got == want, "line %d: \"%s\" [%s] cap %zu: %zd, want %zd", line, q, name, cap, got, want);
	if (got >= 0 && want >= 0)
		CHECKF(memcmp(out, wantv, (size_t)want + 1) == 0, "line %d: value %.*s", line, (int)got, out);
	for (size_t i = cap; i < sizeof(out); i++)
		if (out[i] != 0x5a) { CHECKF(0, "line %d: wrote byte %zu past cap %zu", line, i, cap); break; }
	free(b);
}
#define QP(q, name, want, v) qp(q, name, 256, want, v, __LINE__)
#define QPCAP(q, name, cap, want, v) qp(q, name, cap, want, v, __LINE__)

static void test_query_param(void)
{
	const char *q = "channel=a&channels=b,c&format=json&type=&flag&x=1";
	QP(q, "channel", 1, "a");
	QP(q, "channels", 3, "b,c");
	QP(q, "format", 4, "json");
	QP(q, "type", 0, "");              /* present, empty */
	QP(q, "flag", 0, "");              /* present without '=' */
	QP(q, "x", 1, "1");
	QP(q, "chan", -1, NULL);           /* a prefix of a name does not match */
	QP(q, "annel", -1, NULL);
	QP(q, "channelsx", -1, NULL);
	QP(q, "Channel", -1, NULL);        /* names are case-sensitive */
	QP(q, "interval", -1, NULL);
	QP("channels=b&channel=a", "channel", 1, "a");
	QP("channel=a&channel=b", "channel", 1, "a");   /* first wins */
	QP("", "a", -1, NULL);
	QP("&&&", "a", -1, NULL);
	QP("a=b=c", "a", 3, "b=c");
	QP("=v&a=1", "a", 1, "1");
	/* Percent-decoding and '+'. */
	QP("k=%41%62%2C%2f%2F", "k", 5, "Ab,//");
	QP("k=%e2%82%ac", "k", 3, "\xe2\x82\xac");
	QP("k=a+b+", "k", 4, "a b ");
	QP("k=%2B", "k", 1, "+");
	QP("k=100%25", "k", 4, "100%");
	QP("k=%", "k", -2, NULL);          /* truncated escapes */
	QP("k=%4", "k", -2, NULL);
	QP("k=%4&x=1", "k", -2, NULL);     /* the escape may not run into the next pair */
	QP("k=%&x=12", "k", -2, NULL);
	QP("k=%zz", "k", -2, NULL);
	QP("k=%4g", "k", -2, NULL);
	QP("k=%g4", "k", -2, NULL);
	QP("k=% 1", "k", -2, NULL);
	QP("j=%&k=ok", "k", 2, "ok");      /* another pair's bad escape does not matter */
	QP("resume=trade-info%3A0%3A981233", "resume", 19, "trade-info:0:981233");
	/* Capacity: the value and its NUL must fit. */
	QPCAP("k=abcd", "k", 5, 4, "abcd");
	QPCAP("k=abcd", "k", 4, -2, NULL);
	QPCAP("k=abcd", "k", 1, -2, NULL);
	QPCAP("k=abcd", "k", 0, -2, NULL);
	QPCAP("k=", "k", 1, 0, "");
	QPCAP("k=", "k", 0, -2, NULL);
	QPCAP("k=%41%41", "k", 3, 2, "AA");  /* decoded length counts, not encoded */
	QPCAP("k=%41%41", "k", 2, -2, NULL);
	/* qlen is respected and a NULL query has no parameters. */
	{
		char out[16];
		CHECK(http_query_param("k=abc", 3, "k", out, sizeof(out)) == 1 && strcmp(out, "a") == 0);
		CHECK(http_query_param("k=abc&j=1", 5, "j", out, sizeof(out)) == -1);
		CHECK(http_query_param("k=%41", 4, "k", out, sizeof(out)) == -2);
		CHECK(http_query_param(NULL, 0, "k", out, sizeof(out)) == -1);
	}
}

/* Every parameter http_query_next gives for q[0..qlen) (an exact-size heap
 * copy), as "name=value;" each, then "#" and the return that ended it (0 or
 * -2). At most 16 calls; caps as given (bytes past them must stay). */
static void qn(const char *q, size_t qlen, size_t ncap, size_t vcap, const char *want, int line)
{
	char *b = q ? malloc(qlen ? qlen : 1) : NULL;
	char name[300], value[300], got[1024];
	size_t at = 0, o = 0, past = 0;
	int rc = 0, calls = 0;
	if (q && !b) abort();
	if (q) memcpy(b, q, qlen);
	got[0] = '\0';
	while (calls++ < 16) {
		memset(name, 0x5a, sizeof(name));
		memset(value, 0x5a, sizeof(value));
		rc = http_query_next(b, qlen, &at, name, ncap, value, vcap);
		for (size_t i = ncap; i < sizeof(name); i++) past += name[i] != 0x5a;
		for (size_t i = vcap; i < sizeof(value); i++) past += value[i] != 0x5a;
		if (rc != 1) break;
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s=%s;", name, value);
	}
	snprintf(got + o, sizeof(got) - o, "#%d", rc);
	CHECKF(!strcmp(got, want), "line %d: \"%.*s\": %s, want %s", line, (int)qlen, q ? q : "(null)", got, want);
	CHECKF(past == 0, "line %d: %zu bytes written past a cap", line, past);
	/* The end is the end: asked again, still 0. */
	if (rc == 0) CHECKF(http_query_next(b, qlen, &at, name, ncap, value, vcap) == 0, "line %d: again", line);
	free(b);
}
#define QN(q, want) qn(q, strlen(q), 256, 256, want, __LINE__)
#define QNCAP(q, ncap, vcap, want) qn(q, strlen(q), ncap, vcap, want, __LINE__)

static void test_query_next(void)
{
	/* In order, every pair, duplicates kept. */
	QN("a=1&b=2&c=3", "a=1;b=2;c=3;#0");
	QN("channel=a&channels=b,c&format=json&channel=z", "channel=a;channels=b,c;format=json;channel=z;#0");
	QN("a=b=c", "a=b=c;#0");
	/* Empty pairs are skipped, wherever they stand. */
	QN("a=1&&b=2", "a=1;b=2;#0");
	QN("&a=1&", "a=1;#0");
	QN("&&&", "#0");
	QN("&", "#0");
	QN("a=1&&&&b=2&&", "a=1;b=2;#0");
	/* A name without '=' has an empty value; "=v" an empty name. */
	QN("flag", "flag=;#0");
	QN("flag&x=1&y=", "flag=;x=1;y=;#0");
	QN("=v&a", "=v;a=;#0");
	QN("=", "=;#0");
	/* Percent-decoding and '+' as a space, in names and values. */
	QN("k=%41%62%2C%2f%2F", "k=Ab,//;#0");
	QN("%6B%65%79=v", "key=v;#0");
	QN("a+b=c+d+", "a b=c d ;#0");
	QN("k=%2B&%2B=1", "k=+;+=1;#0");
	QN("k=%26&j=%3D", "k=&;j==;#0");   /* an escaped '&' or '=' does not split */
	QN("k=100%25", "k=100%;#0");
	QN("k=%e2%82%ac", "k=\xe2\x82\xac;#0");
	QN("last-event-id=AQFh%2DAQAA", "last-event-id=AQFh-AQAA;#0");
	/* Bad escapes and %00 (it would cut the C string short) give -2, in
	 * a value or a name, after good pairs as well. */
	QN("k=%", "#-2");
	QN("k=%4", "#-2");
	QN("k=%4&x=1", "#-2");
	QN("k=%zz", "#-2");
	QN("k=%4g", "#-2");
	QN("k=%g4", "#-2");
	QN("k=% 41", "#-2");
	QN("k=%00", "#-2");
	QN("k=a%00b", "#-2");
	QN("%00=1", "#-2");
	QN("%0=1", "#-2");
	QN("%=1", "#-2");
	QN("%", "#-2");
	QN("a=1&k=%zz&b=2", "a=1;#-2");
	QN("a=1&%00", "a=1;#-2");
	QN("k=%01", "k=\x01;#0");          /* any other byte is a byte */
	/* Capacities: the decoded name or value and its NUL must fit. */
	QNCAP("abcd=wxyz", 5, 5, "abcd=wxyz;#0");
	QNCAP("abcd=wxyz", 4, 5, "#-2");
	QNCAP("abcd=wxyz", 5, 4, "#-2");
	QNCAP("a=1&abcd=wxyz", 5, 4, "a=1;#-2");
	QNCAP("%41%41=%42%42", 3, 3, "AA=BB;#0");   /* decoded length counts */
	QNCAP("%41%41=%42%42", 2, 3, "#-2");
	QNCAP("%41%41=%42%42", 3, 2, "#-2");
	QNCAP("a=", 2, 1, "a=;#0");
	QNCAP("a=", 2, 0, "#-2");
	QNCAP("a", 2, 1, "a=;#0");
	QNCAP("a", 1, 1, "#-2");
	QNCAP("a", 0, 1, "#-2");
	/* qlen is respected: the bytes after it do not exist. */
	qn("a=1&b=2", 3, 256, 256, "a=1;#0", __LINE__);
	qn("a=12&b=2", 3, 256, 256, "a=1;#0", __LINE__);
	qn("a=1&b=2", 4, 256, 256, "a=1;#0", __LINE__);
	qn("k=%41", 4, 256, 256, "#-2", __LINE__);
	qn("a=1", 0, 256, 256, "#0", __LINE__);
	/* Empty and NULL queries have no parameters. */
	QN("", "#0");
	qn(NULL, 0, 256, 256, "#0", __LINE__);
	qn(NULL, 5, 256, 256, "#0", __LINE__);
	/* A long query: 100 pairs, in order. */
	{
		char q[1200], want[1200];
		size_t o = 0, w = 0;
		for (int i = 0; i < 100; i++) {
			o += (size_t)snprintf(q + o, sizeof(q) - o, "%sp%d=%d", i ? "&" : "", i, i * 7);
			if (i < 15) w += (size_t)snprintf(want + w, sizeof(want) - w, "p%d=%d;", i, i * 7);
		}
		snprintf(want + w, sizeof(want) - w, "p15=105;#1");   /* qn stops after 16 calls */
		qn(q, o, 256, 256, want, __LINE__);
		/* And all of them by hand. */
		size_t at = 0;
		char name[16], value[16];
		int n = 0, ok = 1, rc;
		while ((rc = http_query_next(q, o, &at, name, sizeof(name), value, sizeof(value))) == 1) {
			char wn[16], wv[16];
			snprintf(wn, sizeof(wn), "p%d", n);
			snprintf(wv, sizeof(wv), "%d", n * 7);
			ok &= !strcmp(name, wn) && !strcmp(value, wv);
			n++;
		}
		CHECK(rc == 0 && n == 100 && ok);
	}
}

static int keep(const char *s)
{
	struct http_request r;
	ssize_t n = http_parse_request(s, strlen(s), &r);
	if (n <= 0) {
		CHECKF(0, "did not parse: %s", s);
		return -1;
	}
	return http_keep_alive(&r);
}

static void test_keep_alive(void)
{
	CHECK(keep("GET / HTTP/1.1\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.0\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == 1);
	CHECK(keep("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.0\r\nConnection: close\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n") == 0);
	CHECK(keep("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n") == 0);
	/* Connection is a list field: several field lines mean the same as one
	 * comma-joined line (RFC 9110 §5.3, §7.6.1), so every line counts. */
	CHECKF(keep("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n") == 0,
	       "a second Connection: close line is ignored");
	CHECKF(keep("GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n") == 1,
	       "a second Connection: keep-alive line is ignored");

	/* http_header_has_token looks at every line of that name. */
	{
		static const char h[] = "GET / HTTP/1.1\r\nConnection: keep-alive\r\nUpgrade: h2c\r\n"
					"connection: Upgrade\r\nUPGRADE: websocket, foo\r\n\r\n";
		struct http_request r;
		CHECK(http_parse_request(h, sizeof(h) - 1, &r) == (ssize_t)sizeof(h) - 1);
		CHECK(http_header_has_token(&r, "Connection", "upgrade") == 1);
		CHECK(http_header_has_token(&r, "connection", "keep-alive") == 1);
		CHECK(http_header_has_token(&r, "Upgrade", "websocket") == 1);
		CHECK(http_header_has_token(&r, "Upgrade", "h2c") == 1);
		CHECK(http_header_has_token(&r, "Upgrade", "web") == 0);
		CHECK(http_header_has_token(&r, "Connection", "close") == 0);
		CHECK(http_header_has_token(&r, "Sec-WebSocket-Key", "x") == 0);
		CHECK(http_header_has_token(&r, "Connectio", "upgrade") == 0);
	}
}

static void test_format_head(void)
{
	char out[512];
	static const char want1[] =
		"HTTP/1.1 200 OK\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 17\r\n"
		"Connection: keep-alive\r\n"
		"Cache-Control: no-store\r\n"
		"\r\n";
	int n = http_format_head(out, sizeof(out), 200, "application/json", 17, 1, NULL);
	CHECK_MEM(out, n < 0 ? 0 : (size_t)n, want1, sizeof(want1) - 1);

	static const char want2[] =
		"HTTP/1.1 405 Method Not Allowed\r\n"
		"Content-Type: text/plain\r\n"
		"Content-Length: 0\r\n"
		"Connection: close\r\n"
		"Cache-Control: no-store\r\n"
		"Allow: GET, HEAD\r\n"
		"\r\n";
	n = http_format_head(out, sizeof(out), 405, "text/plain", 0, 0, "Allow: GET, HEAD\r\n");
	CHECK_MEM(out, n < 0 ? 0 : (size_t)n, want2, sizeof(want2) - 1);

	/* A 204 (an OPTIONS answer) has no content: no Content-Type, no
	 * Content-Length (RFC 9110 §8.6), whatever the caller passes. */
	static const char want3[] =
		"HTTP/1.1 204 No Content\r\n"
		"Connection: keep-alive\r\n"
		"Cache-Control: no-store\r\n"
		"Allow: GET, HEAD, OPTIONS\r\n"
		"\r\n";
	n = http_format_head(out, sizeof(out), 204, "application/json", 3, 1, "Allow: GET, HEAD, OPTIONS\r\n");
	CHECK_MEM(out, n < 0 ? 0 : (size_t)n, want3, sizeof(want3) - 1);
	n = http_format_head(out, sizeof(out), 204, NULL, 0, 0, NULL);
	CHECK(n > 0 && strstr(out, "Content-") == NULL && strstr(out, "Connection: close\r\n") != NULL);

	n = http_format_head(out, sizeof(out), 299, "x/y", 0, 0, "");
	CHECK(n > 0 && memcmp(out, "HTTP/1.1 299 Unknown\r\n", 22) == 0);
	CHECK(strcmp(http_reason(431), "Request Header Fields Too Large") == 0);
	CHECK(strcmp(http_reason(505), "HTTP Version Not Supported") == 0);
	CHECK(strcmp(http_reason(426), "Upgrade Required") == 0);
	CHECK(strcmp(http_reason(101), "Switching Protocols") == 0);

	/* Capacity: the head plus snprintf's NUL must fit; never written past cap. */
	size_t len = sizeof(want1) - 1;
	for (size_t cap = 0; cap <= len + 1; cap++) {
		memset(out, 0x5a, sizeof(out));
		n = http_format_head(out, cap, 200, "application/json", 17, 1, NULL);
		int want = cap > len ? (int)len : -1;
		CHECKF(n == want, "cap %zu gave %d, want %d", cap, n, want);
		CHECKF(out[cap] == 0x5a, "wrote past cap %zu", cap);
	}
	/* Its output parses as a message head: status line + fields + CRLF. */
	n = http_format_head(out, sizeof(out), 101, "text/plain", 0, 1, "Upgrade: websocket\r\n");
	CHECK(n > 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0 && memchr(out, '\0', (size_t)n) == NULL);
}

int main(void)
{
	test_valid();
	test_query_split();
	test_pipelined();
	test_leading_empty_lines();
	test_malformed();
	test_size_limit();
	test_header_count();
	test_header_get();
	test_has_token();
	test_query_param();
	test_query_next();
	test_keep_alive();
	test_format_head();
	return check_summary("http");
}
