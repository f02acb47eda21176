/* test_cors.c - cors.c: which origins --allow-origin admits, what a
 * preflight is, and the exact header lines of each kind of answer
 * (docs/protocol.md#cors), parsed from real request heads. */
#include <string.h>

#include "check.h"
#include "cors.h"
#include "http.h"

static const char *const two[] = { "https://a.example", "http://b.example:8080" };

static struct http_request parse(const char *head)
{
	struct http_request r;
	ssize_t n = http_parse_request(head, strlen(head), &r);
	CHECKF(n == (ssize_t)strlen(head), "%s", head);
	return r;
}

static void test_origin_allowed(void)
{
	/* n == 0 is "*": anything, also "null" and garbage. */
	CHECK(cors_origin_allowed(NULL, 0, "https://x.example", 17) == 1);
	CHECK(cors_origin_allowed(NULL, 0, "null", 4) == 1);
	/* No Origin: not a browser page, always allowed. */
	CHECK(cors_origin_allowed(two, 2, NULL, 0) == 1);

	CHECK(cors_origin_allowed(two, 2, "https://a.example", 17) == 1);
	CHECK(cors_origin_allowed(two, 2, "HTTPS://A.Example", 17) == 1);   /* case-insensitive */
	CHECK(cors_origin_allowed(two, 2, "http://b.example:8080", 21) == 1);
	/* Whole values only: no prefixes, suffixes, other ports or schemes. */
	CHECK(cors_origin_allowed(two, 2, "https://a.example.evil.example", 30) == 0);
	CHECK(cors_origin_allowed(two, 2, "https://a.exampl", 16) == 0);
	CHECK(cors_origin_allowed(two, 2, "https://a.example/", 18) == 0);
	CHECK(cors_origin_allowed(two, 2, "https://a.example:443", 21) == 0);
	CHECK(cors_origin_allowed(two, 2, "http://a.example", 16) == 0);
	CHECK(cors_origin_allowed(two, 2, "http://b.example", 16) == 0);
	CHECK(cors_origin_allowed(two, 2, "", 0) == 0);
	CHECK(cors_origin_allowed(two, 2, "null", 4) == 0);
	/* The length given counts, not a NUL: a longer buffer compares its prefix. */
	CHECK(cors_origin_allowed(two, 2, "https://a.exampleXYZ", 17) == 1);
}

static void test_is_preflight(void)
{
	struct http_request r;
	r = parse("OPTIONS /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n"
		  "Access-Control-Request-Method: GET\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 1);
	r = parse("OPTIONS /stats HTTP/1.1\r\nHost: h\r\norigin: https://a.example\r\n"
		  "access-control-request-method: GET\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 1);                       /* header names in any case */
	r = parse("OPTIONS /stats HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 0);                       /* plain OPTIONS */
	r = parse("OPTIONS /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 0);                       /* no requested method */
	r = parse("OPTIONS /stats HTTP/1.1\r\nHost: h\r\nAccess-Control-Request-Method: GET\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 0);                       /* no Origin */
	r = parse("GET /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n"
		  "Access-Control-Request-Method: GET\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 0);                       /* not OPTIONS */
	r = parse("options /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n"
		  "Access-Control-Request-Method: GET\r\n\r\n");
	CHECK(cors_is_preflight(&r) == 0);                       /* methods are case-sensitive (RFC 9110 §9.1) */
}

#define PREFLIGHT_TAIL "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n" \
	"Access-Control-Allow-Headers: Authorization, Content-Type\r\n" \
	"Access-Control-Max-Age: 7200\r\n"

static void expect(const char *const *origins, size_t n, const char *head, const char *methods, const char *want)
{
	char out[512];
	struct http_request r = parse(head);
	int len = cors_headers(out, sizeof(out), origins, n, &r, methods);
	CHECK_MEM(out, len < 0 ? 0 : (size_t)len, want, strlen(want));
}

static void test_headers(void)
{
	const char *get_a = "GET /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n\r\n";
	const char *get_evil = "GET /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\n\r\n";
	const char *get_none = "GET /stats HTTP/1.1\r\nHost: h\r\n\r\n";
	const char *pre_a = "OPTIONS /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://A.example\r\n"
			    "Access-Control-Request-Method: GET\r\n\r\n";
	const char *pre_evil = "OPTIONS /stats HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\n"
			       "Access-Control-Request-Method: GET\r\n\r\n";

	/* "*": the same answer for everyone, no credentials, no Vary. */
	expect(NULL, 0, get_a, NULL, "Access-Control-Allow-Origin: *\r\n");
	expect(NULL, 0, get_none, NULL, "Access-Control-Allow-Origin: *\r\n");
	expect(NULL, 0, pre_evil, "GET, HEAD, OPTIONS", "Access-Control-Allow-Origin: *\r\n" PREFLIGHT_TAIL);

	/* A list: the allowed Origin echoed as the browser sent it, with
	 * credentials; Vary: Origin on every answer. */
	expect(two, 2, get_a, NULL, "Access-Control-Allow-Origin: https://a.example\r\n"
				    "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
	expect(two, 2, pre_a, "GET, HEAD, OPTIONS", "Access-Control-Allow-Origin: https://A.example\r\n"
				    "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n" PREFLIGHT_TAIL);
	expect(two, 2, get_evil, NULL, "Vary: Origin\r\n");
	expect(two, 2, get_none, NULL, "Vary: Origin\r\n");
	/* A refused preflight gets no Access-Control-* at all. */
	expect(two, 2, pre_evil, "GET, HEAD, OPTIONS", "Vary: Origin\r\n");

	/* Capacity: -1 when it does not fit, never written past cap. */
	char out[512];
	struct http_request r = parse(pre_a);
	int full = cors_headers(out, sizeof(out), two, 2, &r, "GET, HEAD, OPTIONS");
	CHECK(full > 0);
	for (size_t cap = 0; cap <= (size_t)full + 1; cap++) {
		memset(out, 0x5a, sizeof(out));
		int n = cors_headers(out, cap, two, 2, &r, "GET, HEAD, OPTIONS");
		CHECKF(n == (cap > (size_t)full ? full : -1), "cap %zu gave %d", cap, n);
		CHECKF((unsigned char)out[cap] == 0x5a, "wrote past cap %zu", cap);
	}
}

int main(void)
{
	test_origin_allowed();
	test_is_preflight();
	test_headers();
	return check_summary("cors");
}
