/* openapi_schemas.c - the fixed parts of /openapi.json's components
 * (openapi_schemas.h): the schemas of kbridge's JSON bodies, the parameters,
 * headers and responses the paths refer to by $ref, and how clients present
 * tokens. Text only, the same for every instance: what depends on the
 * configuration is openapi.c's. Kept with docs/operations.md and
 * docs/protocol.md. */
#include "openapi_schemas.h"

#include "cors.h"

#define REF(what) "{\"$ref\":\"#/components/" what "\"}"
#define STRING "{\"type\":\"string\"}"

/* The JSON bodies, as docs/operations.md describes them. */
static const struct openapi_named schemas[] = {
	{ "Health", "{\"type\":\"object\",\"required\":[\"status\",\"kafka\",\"clients\",\"uptime_s\"],\"properties\":{"
		"\"status\":{\"const\":\"ok\"},\"kafka\":" REF("schemas/KafkaState") ","
		"\"clients\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"open WebSocket clients\"},"
		"\"uptime_s\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"seconds since start\"}}}" },
	{ "Ready", "{\"type\":\"object\",\"required\":[\"ready\",\"kafka\"],\"properties\":{"
		"\"ready\":{\"type\":\"boolean\",\"description\":\"partitions were assigned at least once and Kafka is up now\"},"
		"\"kafka\":" REF("schemas/KafkaState") "}}" },
	{ "KafkaState", "{\"type\":\"string\",\"enum\":[\"up\",\"down\"],\"description\":\"`up` while a Kafka broker is reachable\"}" },
	{ "Count", "{\"type\":\"integer\",\"minimum\":0}" },
	{ "Stats", "{\"type\":\"object\",\"required\":[\"clients\",\"uptime_s\",\"kafka\",\"ready\",\"channels\",\"topics\","
		"\"records_in\",\"messages_out\",\"bytes_out\",\"bytes_uncompressed\",\"compression_ratio\",\"deflate_clients\","
		"\"sse_clients\",\"dropped\",\"slow_disconnects\",\"state\",\"connections\",\"lag\","
		"\"client_list\",\"client_list_truncated\",\"version\",\"target\",\"librdkafka\"],\"properties\":{"
		"\"clients\":" REF("schemas/Count") ",\"uptime_s\":" REF("schemas/Count") ","
		"\"kafka\":" REF("schemas/KafkaState") ",\"ready\":{\"type\":\"boolean\"},"
		"\"channels\":{\"type\":\"object\",\"description\":\"every known channel: its subscriptions (every-channel ones "
		"included) and the last routed seq\",\"additionalProperties\":{\"type\":\"object\",\"required\":[\"subscribers\",\"seq\"],"
		"\"properties\":{\"subscribers\":" REF("schemas/Count") ",\"seq\":" REF("schemas/Count") "}}},"
		"\"topics\":{\"type\":\"object\",\"description\":\"records consumed per topic\",\"additionalProperties\":{"
		"\"type\":\"object\",\"required\":[\"records\"],\"properties\":{\"records\":" REF("schemas/Count") "}}},"
		"\"records_in\":" REF("schemas/Count") ",\"messages_out\":" REF("schemas/Count") ","
		"\"bytes_out\":" REF("schemas/Count") ",\"bytes_uncompressed\":{\"type\":\"integer\",\"minimum\":0,"
		"\"description\":\"bytes_out as it would have been without permessage-deflate\"},"
		"\"compression_ratio\":{\"type\":\"number\",\"minimum\":1,\"description\":\"bytes_uncompressed / bytes_out, "
		"two decimals; 1 when nothing was compressed\"},\"deflate_clients\":{\"type\":\"integer\",\"minimum\":0,"
		"\"description\":\"WebSocket clients that negotiated permessage-deflate\"},"
		"\"sse_clients\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"SSE streams (GET /sse), "
		"counted in clients too\"},"
		"\"dropped\":" REF("schemas/Count") ","
		"\"slow_disconnects\":" REF("schemas/Count") ","
		"\"state\":{\"type\":\"object\",\"description\":\"the state dialect (`type=tui|web`): the clients "
		"speaking it, the groups they form, updates sent\",\"required\":[\"clients\",\"groups\",\"updates\"],"
		"\"properties\":{\"clients\":" REF("schemas/Count") ",\"groups\":" REF("schemas/Count") ","
		"\"updates\":" REF("schemas/Count") "}},"
		"\"published\":{\"type\":\"object\",\"description\":\"publishes into Kafka (WebSocket and POST /publish) by "
		"result, and those not yet acknowledged\",\"required\":[\"ok\",\"failed\",\"rate_limited\",\"inflight\"],"
		"\"properties\":{\"ok\":" REF("schemas/Count") ",\"failed\":" REF("schemas/Count") ","
		"\"rate_limited\":" REF("schemas/Count") ",\"inflight\":" REF("schemas/Count") "}},"
		"\"connections\":{\"type\":\"object\",\"description\":\"WebSocket upgrade attempts by result\","
		"\"required\":[\"accepted\",\"rejected_full\",\"rejected_origin\",\"rejected_bad\"],\"properties\":{"
		"\"accepted\":" REF("schemas/Count") ",\"rejected_full\":" REF("schemas/Count") ","
		"\"rejected_origin\":" REF("schemas/Count") ",\"rejected_bad\":" REF("schemas/Count") "}},"
		"\"lag\":{\"type\":\"object\",\"description\":\"records behind the high watermark per `topic:partition`; null "
		"while unknown\",\"additionalProperties\":{\"type\":[\"integer\",\"null\"],\"minimum\":0}},"
		"\"client_list\":{\"type\":\"array\",\"maxItems\":100,\"description\":\"up to 100 clients (WebSocket and SSE)\",\"items\":{"
		"\"type\":\"object\",\"required\":[\"id\",\"peer\",\"subscriptions\",\"queued_messages\",\"queued_bytes\",\"deflate\","
		"\"transport\"],"
		"\"properties\":{\"id\":" REF("schemas/Count") ",\"peer\":{\"type\":\"string\",\"description\":\"ip:port\"},"
		"\"subscriptions\":" REF("schemas/Count") ",\"queued_messages\":" REF("schemas/Count") ","
		"\"queued_bytes\":" REF("schemas/Count") ",\"identity\":{\"type\":[\"string\",\"null\"],"
		"\"description\":\"with authentication on: the `sub` of the client's token\"},"
		"\"deflate\":{\"type\":\"boolean\",\"description\":\"negotiated permessage-deflate\"},"
		"\"transport\":{\"type\":\"string\",\"enum\":[\"websocket\",\"sse\"]},"
		"\"worker\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"with --workers: the worker it is on\"}}}},"
		"\"workers\":{\"type\":\"array\",\"description\":\"with --workers only: each worker process\",\"items\":{"
		"\"type\":\"object\",\"required\":[\"index\",\"pid\",\"ready\",\"kafka\",\"clients\",\"restarts\"],"
		"\"properties\":{\"index\":" REF("schemas/Count") ",\"pid\":{\"type\":[\"integer\",\"null\"],"
		"\"description\":\"null while it is being replaced\"},\"ready\":{\"type\":\"boolean\"},"
		"\"kafka\":" REF("schemas/KafkaState") ",\"clients\":" REF("schemas/Count") ","
		"\"restarts\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"times it was started again after it ended\"}}}},"
		"\"client_list_truncated\":{\"type\":\"boolean\",\"description\":\"more clients than listed\"},"
		"\"client_list_hidden\":{\"type\":\"boolean\",\"description\":\"with authentication on, the list is "
		"given only on the admin listener or behind the admin token\"},"
		"\"version\":{\"type\":\"string\"},\"target\":{\"type\":\"string\",\"description\":\"architecture and C library the binary was built for, e.g. aarch64-linux-musl\"},\"librdkafka\":{\"type\":\"string\"}}}" },
	{ "Published", "{\"type\":\"object\",\"required\":[\"topic\",\"partition\",\"offset\"],\"properties\":{"
		"\"topic\":{\"type\":\"string\"},\"partition\":" REF("schemas/Count") ",\"offset\":" REF("schemas/Count") "},"
		"\"description\":\"where Kafka wrote the record: the same position the record has in a channel's stream\"}" },
	{ "Error", "{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":{\"type\":\"string\","
		"\"description\":\"what was wrong\"},\"reason\":{\"description\":\"a 401 to an upgrade: why the token was "
		"refused\",\"enum\":[\"malformed\",\"algorithm\",\"unknown_key\",\"signature\",\"expired\",\"not_yet_valid\","
		"\"missing_exp\",\"audience\",\"issuer\"]}}}" },
	{ "AsyncApiDocument", "{\"type\":\"object\",\"description\":\"an AsyncAPI 2.6.0 document\","
		"\"required\":[\"asyncapi\",\"info\",\"channels\"],\"properties\":{\"asyncapi\":{\"const\":\"2.6.0\"}}}" },
	{ "OpenApiDocument", "{\"type\":\"object\",\"description\":\"an OpenAPI 3.1.0 document: this one\","
		"\"required\":[\"openapi\",\"info\",\"paths\"],\"properties\":{\"openapi\":{\"const\":\"3.1.0\"}}}" },
};

#define HEADER_PARAM(name, req, desc, schema) { name, "{\"name\":\"" name "\",\"in\":\"header\",\"required\":" \
	req ",\"description\":\"" desc "\",\"schema\":" schema "}" }
#define QUERY_PARAM(name, extra, desc, schema) { name, "{\"name\":\"" name "\",\"in\":\"query\"," extra \
	"\"description\":\"" desc "\",\"schema\":" schema "}" }

static const struct openapi_named parameters[] = {
	HEADER_PARAM("Origin", "false", "sent by browsers from other pages' origins; see `--allow-origin`", STRING),
	HEADER_PARAM("Access-Control-Request-Method", "false",
		     "with `Origin`, makes an OPTIONS a CORS preflight: the method the page means to use", STRING),
	HEADER_PARAM("Access-Control-Request-Headers", "false",
		     "in a CORS preflight: the headers the page means to send; `" CORS_ALLOW_HEADERS "` are allowed", STRING),
	HEADER_PARAM("Upgrade", "true", "must list `websocket`", "{\"type\":\"string\",\"examples\":[\"websocket\"]}"),
	HEADER_PARAM("Connection", "true", "must list `upgrade`", "{\"type\":\"string\",\"examples\":[\"Upgrade\"]}"),
	HEADER_PARAM("Sec-WebSocket-Key", "true", "base64 of 16 random bytes",
		     "{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9+/]{21}[AQgw]==$\"}"),
	HEADER_PARAM("Sec-WebSocket-Version", "true", "the only version spoken", "{\"const\":\"13\"}"),
	HEADER_PARAM("Last-Event-ID", "false", "a position token: resume right after it (`EventSource` sends the "
		     "last `id:` it got when it reconnects); wins over `resume`", STRING),
	QUERY_PARAM("key", "", "SSE: only records with this key (`*`: any)", STRING),
	{ "publishKey", "{\"name\":\"key\",\"in\":\"query\",\"description\":\"POST /publish: the record's key "
		  "(percent-decoded); without it the record has none\",\"schema\":" STRING "}" },
	{ "keys", "{\"name\":\"keys\",\"in\":\"query\",\"style\":\"form\",\"explode\":false,\"description\":"
		  "\"SSE: only records with one of these keys\",\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}" },
	{ "sseSnapshot", "{\"name\":\"snapshot\",\"in\":\"query\",\"description\":\"`1`: an `event: snapshot` per "
		  "channel at the start (not when resuming)\",\"schema\":{\"type\":\"string\",\"enum\":[\"1\",\"true\",\"0\",\"false\"]}}" },
	{ "sseResume", "{\"name\":\"resume\",\"in\":\"query\",\"description\":\"a position token, or "
		  "`TOPIC:PARTITION:OFFSET,...`: start right after it\",\"schema\":{\"type\":\"string\"}}" },
	QUERY_PARAM("channel", "", "subscribe to this channel at once, without filters, as if the first message "
		    "were a subscribe (no ack is sent); an unknown channel fails the upgrade with 400",
		    REF("schemas/Channel")),
	QUERY_PARAM("channels", "\"style\":\"form\",\"explode\":false,", "more channels, comma-separated, "
		    "subscribed like `channel`; names beyond `--max-subscriptions` are ignored",
		    "{\"type\":\"array\",\"items\":" REF("schemas/Channel") "}"),
	QUERY_PARAM("format", "", "`json`: every server message as JSON in a text frame; `msgpack`: as "
		    "MessagePack in a binary frame", "{\"type\":\"string\",\"enum\":[\"json\",\"msgpack\"],\"default\":\"json\"}"),
	QUERY_PARAM("type", "", "the state dialect: the client holds a state and gets it whole, then what "
		    "changed at most every 100 ms (`tui`) or 250 ms (`web`)",
		    "{\"type\":\"string\",\"enum\":[\"tui\",\"web\"]}"),
	QUERY_PARAM("interval", "", "conflation for every subscription of the connection, in milliseconds (`0`: "
		    "none); with `type`, the state dialect's period instead (at least 10 ms)",
		    "{\"type\":\"integer\",\"minimum\":0,\"maximum\":3600000}"),
	QUERY_PARAM("snapshot", "", "`1` or `true`: a snapshot of each channel named on the upgrade, and one after "
		    "every later subscribe", "{\"type\":\"string\",\"enum\":[\"1\",\"true\",\"0\",\"false\"]}"),
	QUERY_PARAM("resume", "\"style\":\"form\",\"explode\":false,", "resume after these positions, the last "
		    "offset seen of each partition (`-1`: from its start); needs `channel` or `channels`; not with `type`",
		    "{\"type\":\"array\",\"maxItems\":16,\"items\":{\"type\":\"string\","
		    "\"pattern\":\"^[A-Za-z0-9._-]{1,249}:[0-9]+:(-1|[0-9]+)$\"}}"),
};

#define STR_(x) #x
#define XSTR(x) STR_(x)

static const struct openapi_named headers[] = {
	{ "Cache-Control", "{\"description\":\"on every answer\",\"schema\":{\"const\":\"no-store\"}}" },
	{ "Access-Control-Allow-Credentials", "{\"description\":\"`true` when `--allow-origin` lists origins and "
		"the request's `Origin` is one of them; never with `--allow-origin *`\",\"schema\":{\"const\":\"true\"}}" },
	{ "Vary", "{\"description\":\"`Origin` on every answer when `--allow-origin` lists origins (the answer "
		"depends on it); absent with `--allow-origin *`\",\"schema\":{\"const\":\"Origin\"}}" },
	{ "Allow", "{\"description\":\"the methods the path takes\",\"schema\":{\"type\":\"string\","
		"\"examples\":[\"GET, HEAD, OPTIONS\"]}}" },
	{ "Access-Control-Allow-Methods", "{\"description\":\"a preflight from an allowed origin: the methods the "
		"path takes\",\"schema\":{\"type\":\"string\",\"examples\":[\"GET, HEAD, OPTIONS\"]}}" },
	{ "Access-Control-Allow-Headers", "{\"description\":\"a preflight from an allowed origin: the request headers "
		"a page may send\",\"schema\":{\"const\":\"" CORS_ALLOW_HEADERS "\"}}" },
	{ "Access-Control-Max-Age", "{\"description\":\"a preflight from an allowed origin: seconds a browser may "
		"reuse the answer\",\"schema\":{\"const\":\"" XSTR(CORS_MAX_AGE) "\"}}" },
};

static const struct openapi_named responses[] = {
	{ "HttpError", "{\"description\":\"The request itself was refused and the connection is closed: 400 (a "
		"malformed request line or header line, HTTP/1.1 without `Host`), 408 (the head did not arrive within "
		"`--header-timeout`; a POST's body too), 431 (a head over 8 KiB or with more than 256 header lines)\","
		"\"content\":{\"application/json\":{\"schema\":" REF("schemas/Error") "}}}" },
	{ "Options", "{\"description\":\"the methods the path takes; other origins do not read this path, so a "
		"CORS preflight gets 403\",\"headers\":{\"Allow\":" REF("headers/Allow") ","
		"\"Cache-Control\":" REF("headers/Cache-Control") "}}" },
	{ "OptionsCors", "{\"description\":\"the methods the path takes. A CORS preflight (`Origin` and "
		"`Access-Control-Request-Method`) from an allowed origin also gets the methods, headers and max-age "
		"other origins may use; a plain OPTIONS the CORS headers of a GET\",\"headers\":{"
		"\"Allow\":" REF("headers/Allow") ",\"Cache-Control\":" REF("headers/Cache-Control") ","
		"\"Access-Control-Allow-Origin\":" REF("headers/Access-Control-Allow-Origin") ","
		"\"Access-Control-Allow-Credentials\":" REF("headers/Access-Control-Allow-Credentials") ","
		"\"Access-Control-Allow-Methods\":" REF("headers/Access-Control-Allow-Methods") ","
		"\"Access-Control-Allow-Headers\":" REF("headers/Access-Control-Allow-Headers") ","
		"\"Access-Control-Max-Age\":" REF("headers/Access-Control-Max-Age") ","
		"\"Vary\":" REF("headers/Vary") "}}" },
	{ "PreflightRefused", "{\"description\":\"a CORS preflight from an origin `--allow-origin` does not allow, "
		"or for a path other origins do not read (`/docs`, the console, `/ws`); the connection stays open\","
		"\"headers\":{\"Vary\":" REF("headers/Vary") ",\"Cache-Control\":" REF("headers/Cache-Control") "},"
		"\"content\":{\"application/json\":{\"schema\":" REF("schemas/Error") "}}}" },
};

/* How clients present tokens (docs/security.md); which endpoints need one
 * is said per instance on the operations. */
static const struct openapi_named security_schemes[] = {
	{ "bearerAuth", "{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\",\"description\":\"a JWT signed "
		"by a key of `--jwt-key` or with `--jwt-secret`, in `Authorization: Bearer` on the WebSocket upgrade, "
		"the SSE request or a POST /publish\"}" },
	{ "accessToken", "{\"type\":\"apiKey\",\"in\":\"query\",\"name\":\"access_token\",\"description\":\"the same "
		"JWT on the request's URL, for clients that cannot set headers; URLs end up in proxies' logs, so prefer the "
		"header or the auth message after the upgrade\"}" },
	{ "adminToken", "{\"type\":\"http\",\"scheme\":\"bearer\",\"description\":\"the content of the `--admin-token` "
		"file, for `/stats`, `/ws/stats` and `/metrics`\"}" },
};

/* The tables, with their lengths, for openapi.c. */
const struct openapi_table openapi_schemas = { schemas, sizeof(schemas) / sizeof(schemas[0]) };
const struct openapi_table openapi_parameters = { parameters, sizeof(parameters) / sizeof(parameters[0]) };
const struct openapi_table openapi_headers = { headers, sizeof(headers) / sizeof(headers[0]) };
const struct openapi_table openapi_responses = { responses, sizeof(responses) / sizeof(responses[0]) };
const struct openapi_table openapi_security_schemes = { security_schemes, sizeof(security_schemes) / sizeof(security_schemes[0]) };
