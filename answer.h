/* answer.h - the session layer's HTTP answers (docs/protocol.md#http-errors): a
 * whole response queued as one frame, errors that end the connection,
 * OPTIONS and the CORS header lines, and the checks an upgrade and an SSE
 * request share before they are served: the Origin, the token (401 with
 * its reason) and the per-address limits (429). */
#ifndef KB_ANSWER_H
#define KB_ANSWER_H
#include <stddef.h>

#include "client.h"
#include "config.h"
#include "endpoints.h"
#include "http.h"

void answer_init(const struct config *cfg);
/* Queues a complete response (head and body in one frame); HEAD gets the
 * head of the same response. */
void answer_respond(struct client *c, int status, const char *ctype, const char *body, size_t blen,
		    int keep_alive, int head_only, const char *extra);
/* Until called again with NULL, every answer carries the CORS header
 * lines for req (an SSE request: its refusals are read by pages of other
 * origins). */
void answer_cors_on(const struct http_request *req);
/* An answer {"error":msg}, the connection kept when keep says so. */
void answer_error_body(struct client *c, int status, const char *msg, int keep, const char *extra);
/* An error answer that ends the connection (counted as an HTTP error). */
void answer_error(struct client *c, int status, const char *msg, const char *extra);
/* --allow-origin admits the request's Origin (none: not a browser). */
int  answer_origin_allowed(const struct http_request *req);
/* Appends the CORS header lines for req (a preflight's with methods) to extra. */
void answer_add_cors(char *extra, size_t cap, const struct http_request *req, const char *methods);
/* OPTIONS of a path that exists: 204 with Allow, or a CORS preflight's answer. */
void answer_options(struct client *c, const struct http_request *req, const struct endpoint_info *ei, int keep);
/* Shutting down: from now on every new stream is refused with 503. */
void answer_drain(void);
/* Room for one more stream (WebSocket or SSE): fewer than --max-clients
 * of this process and not shutting down. 1, or 0 after a 503. */
int  answer_room(struct client *c);
/* A request for a stream that is not a valid one: counted, then answer_error. */
void answer_refused(struct client *c, int status, const char *msg, const char *extra);
/* The request's token (Authorization: Bearer, else access_token=): 0
 * when c may go on, -1 after a 401 naming the reason. required: a
 * request without one (a POST /publish) is a 401 too, where an upgrade
 * may still authenticate by message. */
int  answer_token(struct client *c, const struct http_request *req, int required);
/* The per-address limits on the address c counts as (behind a
 * --trusted-proxy, the one it names, which becomes c's peer). 0, or -1
 * after a 429. */
int  answer_admitted(struct client *c, const struct http_request *req);
#endif
