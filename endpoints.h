/* endpoints.h - the plain HTTP endpoints of DESIGN.md §3 (/health, /ready,
 * /stats, ...): each fills a status and a body; the loop sends it. */
#ifndef KB_ENDPOINTS_H
#define KB_ENDPOINTS_H
#include "http.h"
#include "json.h"

struct http_out {
	int status;
	const char *ctype;     /* NULL: application/json */
	const char *extra;     /* extra header lines, or NULL */
	struct jbuf body;
};

/* Records one broadcast's latency (record timestamp -> frame queued). */
void endpoints_observe_latency(double seconds);

/* GET/HEAD of a non-WebSocket path. */
void endpoints_handle(const struct http_request *req, struct http_out *out);
#endif
