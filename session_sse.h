/* session_sse.h - GET /sse in the session layer (docs/protocol.md#sse):
 * the request checked like a WebSocket upgrade (Origin, --max-clients,
 * per-address limits, the query, the token), then the event-stream
 * response begun and the connection made a streaming client. */
#ifndef KB_SESSION_SSE_H
#define KB_SESSION_SSE_H
#include "client.h"
#include "http.h"

/* Serves req (GET or, with head_only, HEAD /sse) on c. Every refusal
 * ends the connection. */
void session_sse(struct client *c, const struct http_request *req, int head_only);
#endif
