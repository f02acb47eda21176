/* cors.h - cross-origin requests (the Fetch standard's CORS protocol) for
 * the JSON and text endpoints (docs/protocol.md#cors): which Origin values
 * --allow-origin admits, and the Access-Control-* and Vary header lines of
 * an answer. Pure: the allowed origins and the request's headers in, header
 * lines out. The session layer decides which paths take part and answers
 * OPTIONS with them. */
#ifndef KB_CORS_H
#define KB_CORS_H
#include <stddef.h>

#include "http.h"

/* Request headers a cross-origin page may send (in a preflight's answer). */
#define CORS_ALLOW_HEADERS "Authorization, Content-Type"
/* Seconds a browser may reuse a preflight's answer (Chromium honours at
 * most 7200, Firefox 86400). */
#define CORS_MAX_AGE 7200

/* 1 if origin[0..len) is allowed: compared case-insensitively with each of
 * origins[0..n) (whole values, "scheme://host[:port]"); n == 0 means any
 * origin ("*"). A request without Origin (origin NULL) is not a browser
 * page's and is always allowed. */
int cors_origin_allowed(const char *const *origins, size_t n, const char *origin, size_t len);

/* 1 if req is a CORS preflight: OPTIONS with Origin and
 * Access-Control-Request-Method. */
int cors_is_preflight(const struct http_request *req);

/* Writes the CORS header lines ("Name: value\r\n" each) for the answer to
 * req on an endpoint that serves other origins. With any origin allowed
 * (n == 0): "Access-Control-Allow-Origin: *", the same for every request.
 * With a list: an allowed Origin is echoed with
 * "Access-Control-Allow-Credentials: true"; an absent or refused one gets
 * nothing but "Vary: Origin", which every answer carries since it depends on
 * Origin. `methods` (a preflight that is answered): adds
 * Access-Control-Allow-Methods (methods), -Allow-Headers and -Max-Age.
 * Returns the length written, or -1 when cap is too small. */
int cors_headers(char *out, size_t cap, const char *const *origins, size_t n,
		 const struct http_request *req, const char *methods);
#endif
