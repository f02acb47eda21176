/* asyncapi.h - GET /asyncapi.json: an AsyncAPI 2.6.0 document of the
 * messages a client and kbridge exchange on /ws, generated per request
 * from the live routes and configuration, as /openapi.json is for the
 * HTTP endpoints. */
#ifndef KB_ASYNCAPI_H
#define KB_ASYNCAPI_H
#include <stddef.h>

#include "config.h"
#include "json.h"
#include "route.h"

struct asyncapi_input {
	const struct config *cfg;      /* authentication, --publish, --command */
	const struct route *routes;    /* the channels clients subscribe to */
	size_t nroutes;
	const char *host;              /* the request's Host value, or NULL */
	size_t host_len;
};

/* Writes the whole document, one JSON object, into b. */
void asyncapi_write(struct jbuf *b, const struct asyncapi_input *in);
#endif
