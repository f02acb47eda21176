/* test_http_fields.c - the http.c helpers of the strict upgrade and of
 * logging: http_header_count over repeated lines (names case-insensitive,
 * prefixes not counted), http_query_redact replacing every access_token
 * value and nothing else, at the start, middle and end, with empty values
 * and names that only look alike, and cut to every buffer size without a
 * byte of the secret; and the reason phrases of 401 and 429. */
#include <stdio.h>

#include "check.h"
#include "http.h"

static void test_count(void)
{
	static const char head[] = "GET /ws HTTP/1.1\r\nHost: a\r\nhost: b\r\nHostile: c\r\n"
				   "Sec-WebSocket-Key: k\r\nUpgrade: websocket\r\nUPGRADE: websocket\r\n\r\n";
	struct http_request req;
	CHECK(http_parse_request(head, sizeof(head) - 1, &req) == (ssize_t)(sizeof(head) - 1));
	CHECK(http_header_count(&req, "Host") == 2);
	CHECK(http_header_count(&req, "Upgrade") == 2);
	CHECK(http_header_count(&req, "Sec-WebSocket-Key") == 1);
	CHECK(http_header_count(&req, "Sec-WebSocket-Version") == 0);
	CHECK(http_header_count(&req, "Hos") == 0);
}

static void redact_is(const char *q, const char *want)
{
	char out[256];
	memset(out, '#', sizeof(out));
	size_t n = http_query_redact(q, q ? strlen(q) : 0, "access_token", out, sizeof(out));
	CHECKF(n == strlen(want) && strcmp(out, want) == 0, "%s -> %s (want %s)", q ? q : "(null)", out, want);
}

static void test_redact(void)
{
	redact_is(NULL, "");
	redact_is("", "");
	redact_is("channel=a", "channel=a");
	redact_is("access_token=abc.def.ghi", "access_token=REDACTED");
	redact_is("channel=a&access_token=xyz&format=json", "channel=a&access_token=REDACTED&format=json");
	redact_is("access_token=x&access_token=y", "access_token=REDACTED&access_token=REDACTED");
	redact_is("access_token=", "access_token=REDACTED");
	redact_is("access_token", "access_token");
	redact_is("my_access_token=x&access_tokens=y", "my_access_token=x&access_tokens=y");
	redact_is("a=1&&access_token=s%20t&", "a=1&&access_token=REDACTED&");

	/* Cut anywhere: NUL-terminated, never a byte of the value. */
	static const char q[] = "channel=ab&access_token=SECRET&x=1";
	static const char full[] = "channel=ab&access_token=REDACTED&x=1";
	for (size_t cap = 1; cap <= sizeof(full) + 2; cap++) {
		char out[64];
		memset(out, '#', sizeof(out));
		size_t n = http_query_redact(q, sizeof(q) - 1, "access_token", out, cap);
		size_t want = cap - 1 < sizeof(full) - 1 ? cap - 1 : sizeof(full) - 1;
		CHECKF(n == want && out[n] == '\0' && memcmp(out, full, n) == 0, "cap %zu: %s", cap, out);
		CHECK(strstr(out, "SECRET") == NULL && strstr(out, "S") == NULL);
	}
	char none[1] = { '#' };
	CHECK(http_query_redact(q, sizeof(q) - 1, "access_token", none, 0) == 0 && none[0] == '#');
}

int main(void)
{
	test_count();
	test_redact();
	CHECK(strcmp(http_reason(401), "Unauthorized") == 0);
	CHECK(strcmp(http_reason(429), "Too Many Requests") == 0);
	return check_summary("test_http_fields");
}
