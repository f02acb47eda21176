/* cors.c - cross-origin answers for the JSON and text endpoints (cors.h;
 * docs/protocol.md#cors for the rules and why). With --allow-origin * the
 * answer is "Access-Control-Allow-Origin: *" and never depends on the
 * request: any page may read these endpoints, but never with the user's
 * cookies (browsers refuse credentials with "*"), which keeps a default
 * kbridge behind a cookie-checking proxy from being read by every site its
 * users visit. With a list, an allowed Origin is echoed and credentials are
 * allowed: the operator named those origins, and they may already open
 * WebSockets with the same cookies. */
#include "cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int cors_origin_allowed(const char *const *origins, size_t n, const char *origin, size_t len)
{
	if (!origin || n == 0) return 1;
	for (size_t i = 0; i < n; i++)
		if (strlen(origins[i]) == len && strncasecmp(origins[i], origin, len) == 0) return 1;
	return 0;
}

int cors_is_preflight(const struct http_request *req)
{
	return req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0 &&
	       http_header_get(req, "Origin") && http_header_get(req, "Access-Control-Request-Method");
}

int cors_headers(char *out, size_t cap, const char *const *origins, size_t n,
		 const struct http_request *req, const char *methods)
{
	const struct http_header *o = http_header_get(req, "Origin");
	int len;
	if (n == 0)
		len = snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n");
	else if (o && cors_origin_allowed(origins, n, o->value, o->value_len))
		len = snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\n"
				   "Access-Control-Allow-Credentials: true\r\n"
				   "Vary: Origin\r\n", (int)o->value_len, o->value);
	else
		len = snprintf(out, cap, "Vary: Origin\r\n");
	if (len < 0 || (size_t)len >= cap) return -1;
	if (methods && (n == 0 || (o && cors_origin_allowed(origins, n, o->value, o->value_len)))) {
		int m = snprintf(out + len, cap - (size_t)len,
				 "Access-Control-Allow-Methods: %s\r\n"
				 "Access-Control-Allow-Headers: " CORS_ALLOW_HEADERS "\r\n"
				 "Access-Control-Max-Age: %d\r\n", methods, CORS_MAX_AGE);
		if (m < 0 || (size_t)m >= cap - (size_t)len) return -1;
		len += m;
	}
	return len;
}
