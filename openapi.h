/* openapi.h - GET /openapi.json: an OpenAPI 3.1.0 document of the HTTP
 * endpoints kbridge serves (what Swagger UI and client generators load),
 * generated per request from the live configuration, as /asyncapi.json
 * is for the WebSocket messages. */
#ifndef KB_OPENAPI_H
#define KB_OPENAPI_H
#include <stddef.h>

#include "config.h"
#include "json.h"
#include "route.h"

struct openapi_input {
	const struct config *cfg;      /* --listen, --allow-origin, --max-clients */
	const struct route *routes;    /* the channel parameter's values */
	size_t nroutes;
	const char *host;              /* the request's Host value, or NULL */
	size_t host_len;
};

/* Writes the whole document, one JSON object, into b. */
void openapi_write(struct jbuf *b, const struct openapi_input *in);
#endif
