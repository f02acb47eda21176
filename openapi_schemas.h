/* openapi_schemas.h - the members of /openapi.json's components that are
 * the same on every kbridge: named JSON texts openapi.c copies into the
 * document as they are. */
#ifndef KB_OPENAPI_SCHEMAS_H
#define KB_OPENAPI_SCHEMAS_H
#include <stddef.h>

struct openapi_named { const char *name, *json; };   /* json: one JSON value */
struct openapi_table { const struct openapi_named *v; size_t n; };

extern const struct openapi_table openapi_schemas;           /* components/schemas (Channel is openapi.c's) */
extern const struct openapi_table openapi_parameters;
extern const struct openapi_table openapi_headers;           /* Access-Control-Allow-Origin is openapi.c's */
extern const struct openapi_table openapi_responses;
extern const struct openapi_table openapi_security_schemes;
#endif
