/* openapi.c - GET /openapi.json (openapi.h): the OpenAPI 3.1.0 document of
 * kbridge's HTTP endpoints. What every kbridge serves (paths, parameters,
 * response schemas, the CORS headers) is fixed text, below and in
 * openapi_schemas.c, kept with docs/protocol.md and docs/operations.md;
 * what depends on the instance is written per request, as /asyncapi.json
 * is: the routes (the values of the channel parameter), the servers
 * (--listen, and the request's Host when kbridge listens on every address),
 * the origins CORS admits (--allow-origin), --max-clients, which endpoints
 * need a token (--jwt-key/--jwt-secret, --admin-token; docs/security.md)
 * and the channels POST /publish takes (--publish). The messages after the
 * WebSocket upgrade, the auth message among them, are /asyncapi.json's
 * subject; this document stops at the 101. */
#include "openapi.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "openapi_schemas.h"
#include "version.h"

/* A literal appended as it is, or inserted as one JSON value. */
#define LIT(b, s) json_append((b), (s), sizeof(s) - 1)
#define RAW(b, s) json_raw((b), (s), strlen(s))
#define REF(what) "{\"$ref\":\"#/components/" what "\"}"
#define JSON_MEDIA "application/json"
#define STRING "{\"type\":\"string\"}"

/* ---- the plain endpoints ------------------------------------------------------ */

struct api_response {
	const char *status, *description, *media, *schema;
};

static const struct api_path {
	const char *path, *id, *tag, *summary, *description;
	int cors;                       /* JSON or text: other origins may read it */
	struct api_response resp[2];    /* GET's answers besides the 4XX ones */
	int admin;                      /* moved by --admin-listen, guarded by --admin-token */
} api_paths[] = {
	{ "/health", "Health", "health", "Liveness",
	  "200 while kbridge's loop runs, whatever Kafka's state: for liveness probes. `clients` counts "
	  "WebSocket clients.", 1,
	  { { "200", "kbridge runs", JSON_MEDIA, REF("schemas/Health") } }, 0 },
	{ "/ready", "Ready", "health", "Readiness",
	  "200 once partitions were assigned (every start position resolved) and while a Kafka broker is "
	  "up; 503 otherwise. Without any route never 200.", 1,
	  { { "200", "ready", JSON_MEDIA, REF("schemas/Ready") },
	    { "503", "not ready", JSON_MEDIA, REF("schemas/Ready") } }, 0 },
	{ "/stats", "Stats", "monitoring", "Counters and live state",
	  "Clients, channels, topics, lag and counters, as docs/operations.md describes them.", 1,
	  { { "200", "the stats", JSON_MEDIA, REF("schemas/Stats") } }, 1 },
	{ "/ws/stats", "WsStats", "monitoring", "Counters and live state (the same as /stats)",
	  "The same answer as `GET /stats`; never a WebSocket upgrade.", 1,
	  { { "200", "the stats", JSON_MEDIA, REF("schemas/Stats") } }, 1 },
	{ "/metrics", "Metrics", "monitoring", "Prometheus metrics",
	  "Every counter and gauge in the Prometheus text format 0.0.4.", 1,
	  { { "200", "the metrics", "text/plain; version=0.0.4; charset=utf-8", STRING } }, 1 },
	{ "/asyncapi.json", "AsyncApi", "documents", "AsyncAPI document of the WebSocket protocol",
	  "AsyncAPI 2.6.0: this instance's channels and the messages exchanged on `/ws`.", 1,
	  { { "200", "the AsyncAPI document", JSON_MEDIA, REF("schemas/AsyncApiDocument") } }, 0 },
	{ "/openapi.json", "OpenApi", "documents", "This document",
	  "OpenAPI 3.1.0 of kbridge's HTTP endpoints, generated from the live configuration.", 1,
	  { { "200", "the OpenAPI document", JSON_MEDIA, REF("schemas/OpenApiDocument") } }, 0 },
	{ "/docs", "Docs", "documents", "The protocol page",
	  "HTML: the WebSocket protocol, with this instance's live routes.", 0,
	  { { "200", "the page", "text/html; charset=utf-8", STRING } }, 0 },
	{ "/", "Console", "documents", "The web console",
	  "HTML: connect, subscribe, watch messages and stats.", 0,
	  { { "200", "the console", "text/html; charset=utf-8", STRING } }, 0 },
	{ "/index.html", "ConsoleIndex", "documents", "The web console (the same as /)",
	  "The same page as `GET /`.", 0,
	  { { "200", "the console", "text/html; charset=utf-8", STRING } }, 0 },
};

/* Response headers of every answer, and of the endpoints other origins read. */
static const char plain_headers[] = "{\"Cache-Control\":" REF("headers/Cache-Control") "}";
static const char cors_response_headers[] = "{\"Cache-Control\":" REF("headers/Cache-Control") ","
	"\"Access-Control-Allow-Origin\":" REF("headers/Access-Control-Allow-Origin") ","
	"\"Access-Control-Allow-Credentials\":" REF("headers/Access-Control-Allow-Credentials") ","
	"\"Vary\":" REF("headers/Vary") "}";
static const char http_errors[] = REF("responses/HttpError");

static void operation_head(struct jbuf *b, const char *verb, const char *id, const char *tag, const char *summary)
{
	char opid[64];
	snprintf(opid, sizeof(opid), "%s%s", verb, id);
	json_key(b, "operationId"); json_cstr(b, opid);
	json_key(b, "tags");
	json_arr_begin(b);
	json_cstr(b, tag);
	json_arr_end(b);
	json_key(b, "summary"); json_cstr(b, summary);
}

/* OPTIONS of any path: 204 with Allow; a preflight gets the CORS answer
 * (cors) or 403. */
static void options_operation(struct jbuf *b, const char *id, const char *tag, int cors)
{
	json_key(b, "options");
	json_obj_begin(b);
	operation_head(b, "options", id, tag, cors ? "Allowed methods, or a CORS preflight" : "Allowed methods");
	json_key(b, "parameters");
	RAW(b, "[" REF("parameters/Origin") "," REF("parameters/Access-Control-Request-Method") ","
	       REF("parameters/Access-Control-Request-Headers") "]");
	json_key(b, "responses");
	RAW(b, cors ? "{\"204\":" REF("responses/OptionsCors") ",\"403\":" REF("responses/PreflightRefused") "}"
		    : "{\"204\":" REF("responses/Options") ",\"403\":" REF("responses/PreflightRefused") "}");
	json_obj_end(b);
}

/* The admin endpoints' 401, with and without --admin-token here. */
#define ADMIN_401(here) "{\"description\":\"`--admin-token` is set and the request has no `Authorization: " \
	"Bearer` with its content (see docs/security.md). " here "\",\"content\":{\"application/json\":{\"schema\":" \
	REF("schemas/Error") "}}}"
static const char admin_401_on[] = ADMIN_401("`--admin-token` is set here.");
static const char admin_401_off[] = ADMIN_401("Never here: no `--admin-token`.");

/* GET, HEAD and OPTIONS of one plain endpoint. */
static void api_path(struct jbuf *b, const struct api_path *p, const struct config *cfg)
{
	const char *headers = p->cors ? cors_response_headers : plain_headers;
	json_key(b, p->path);
	json_obj_begin(b);
	for (int head = 0; head <= 1; head++) {
		char summary[160];
		snprintf(summary, sizeof(summary), head ? "The head of GET %s" : "%s", head ? p->path : p->summary);
		json_key(b, head ? "head" : "get");
		json_obj_begin(b);
		operation_head(b, head ? "head" : "get", p->id, p->tag, summary);
		json_key(b, "description");
		if (!head && p->admin && cfg->admin_listen_len) {
			struct jbuf d;
			json_init(&d);
			json_append(&d, p->description, strlen(p->description));
			LIT(&d, " Served on the admin listener only, `--admin-listen ");
			if (cfg->admin_listen_str) json_append(&d, cfg->admin_listen_str, strlen(cfg->admin_listen_str));
			LIT(&d, "`; `404` on the main port.");
			json_str(b, d.buf ? d.buf : "", d.len);
			json_free(&d);
		} else {
			json_cstr(b, head ? "The same status and headers as GET, without the body." : p->description);
		}
		if (p->cors) {
			json_key(b, "parameters");
			RAW(b, "[" REF("parameters/Origin") "]");
		}
		if (p->admin && cfg->admin_token) {
			json_key(b, "security");
			RAW(b, "[{\"adminToken\":[]}]");
		}
		json_key(b, "responses");
		json_obj_begin(b);
		for (size_t i = 0; i < sizeof(p->resp) / sizeof(p->resp[0]) && p->resp[i].status; i++) {
			const struct api_response *r = &p->resp[i];
			json_key(b, r->status);
			json_obj_begin(b);
			json_key(b, "description"); json_cstr(b, r->description);
			json_key(b, "headers");     RAW(b, headers);
			if (!head) {
				json_key(b, "content");
				json_obj_begin(b);
				json_key(b, r->media);
				json_obj_begin(b);
				json_key(b, "schema"); RAW(b, r->schema);
				json_obj_end(b);
				json_obj_end(b);
			}
			json_obj_end(b);
		}
		if (p->admin) { json_key(b, "401"); RAW(b, cfg->admin_token ? admin_401_on : admin_401_off); }
		json_key(b, "4XX"); RAW(b, http_errors);
		json_obj_end(b);
		json_obj_end(b);
	}
	options_operation(b, p->id, p->tag, p->cors);
	json_obj_end(b);
}

/* ---- what depends on the instance ------------------------------------------------- */

/* The channel a route names, or NULL for a regex route whose matched
 * topics are their own channels. */
static const char *route_channel(const struct route *r)
{
	return r->channel ? r->channel : r->is_regex ? NULL : r->topic;
}

static void code(struct jbuf *d, const char *s)
{
	LIT(d, "`");
	json_append(d, s, strlen(s));
	LIT(d, "`");
}

/* One line per route: "topic `t` -> channel `c`, type `y`". */
static void routes_text(struct jbuf *d, const struct openapi_input *in, const char *bullet)
{
	for (size_t i = 0; i < in->nroutes; i++) {
		const struct route *r = &in->routes[i];
		json_append(d, bullet, strlen(bullet));
		if (r->is_regex) LIT(d, "topics matching ");
		else LIT(d, "topic ");
		code(d, r->topic);
		LIT(d, " -> channel ");
		if (route_channel(r)) code(d, route_channel(r));
		else LIT(d, "named after each topic");
		LIT(d, ", type ");
		if (r->type) code(d, r->type);
		else LIT(d, "the topic's name");
	}
	if (in->nroutes == 0) {
		json_append(d, bullet, strlen(bullet));
		LIT(d, "none: every channel is unknown");
	}
}

/* A channel name: the routes' closed set as an enum; with a regex route
 * whose topics are their own channels the set is open (those names are
 * POSIX regular expressions, which JSON Schema's pattern does not speak),
 * so the names go to examples and the description says the rest. */
static void channel_schema(struct jbuf *b, const struct openapi_input *in)
{
	int open = 0;
	size_t named = 0;
	for (size_t i = 0; i < in->nroutes; i++) {
		if (route_channel(&in->routes[i])) named++;
		else open = 1;
	}
	json_obj_begin(b);
	json_key(b, "type"); json_cstr(b, "string");
	struct jbuf d;
	json_init(&d);
	LIT(&d, "A channel of this instance. Routes:");
	routes_text(&d, in, "\n- ");
	if (open) LIT(&d, "\n\nA topic name a regular expression above matches is a channel too, also before such a topic exists.");
	json_key(b, "description");
	json_str(b, d.buf ? d.buf : "", d.len);
	json_free(&d);
	if (named) {
		json_key(b, open ? "examples" : "enum");
		json_arr_begin(b);
		for (size_t i = 0; i < in->nroutes; i++) {
			const char *ch = route_channel(&in->routes[i]);
			size_t k = 0;
			if (!ch) continue;
			while (k < i && !(route_channel(&in->routes[k]) && strcmp(route_channel(&in->routes[k]), ch) == 0)) k++;
			if (k == i) json_cstr(b, ch);      /* first route naming it */
		}
		json_arr_end(b);
	}
	json_obj_end(b);
}

static void origins_text(struct jbuf *d, const struct config *c)
{
	if (c->norigins == 0) {
		LIT(d, "any origin (`--allow-origin *`)");
		return;
	}
	for (size_t i = 0; i < c->norigins; i++) {
		if (i) LIT(d, ", ");
		code(d, c->origins[i]);
	}
}

/* servers: the document's own location first (right behind any proxy),
 * then the listen address. On a wildcard address the host is the one the
 * request named; on port 0 the port too. */
static void servers(struct jbuf *b, const struct openapi_input *in)
{
	char host[INET6_ADDRSTRLEN + 2] = "";
	unsigned port = 0;
	const struct sockaddr_storage *ss = &in->cfg->listen;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)ss;
		port = ntohs(v4->sin_port);
		if (v4->sin_addr.s_addr != htonl(INADDR_ANY)) inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)ss;
		port = ntohs(v6->sin6_port);
		if (!IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) && inet_ntop(AF_INET6, &v6->sin6_addr, host + 1, sizeof(host) - 2)) {
			host[0] = '[';
			strcat(host, "]");
		}
	}
	/* The request's Host: "name", "name:port" or "[v6]:port". */
	const char *h = in->host ? in->host : "";
	size_t hl = in->host ? in->host_len : 0, name_len = hl;
	const char *rb = hl && h[0] == '[' ? memchr(h, ']', hl) : NULL;
	const char *colon = memchr(rb ? rb : h, ':', hl - (size_t)((rb ? rb : h) - h));
	if (colon) name_len = (size_t)(colon - h);
	char portbuf[16];
	if (port) snprintf(portbuf, sizeof(portbuf), "%u", port);
	else if (colon) snprintf(portbuf, sizeof(portbuf), "%.*s", (int)(hl - name_len - 1), colon + 1);
	else snprintf(portbuf, sizeof(portbuf), "80");

	json_key(b, "servers");
	json_arr_begin(b);
	json_obj_begin(b);
	json_key(b, "url");         json_cstr(b, "/");
	json_key(b, "description"); json_cstr(b, "this kbridge, where this document was loaded from");
	json_obj_end(b);
	json_obj_begin(b);
	json_key(b, "url");         json_cstr(b, "http://{host}:{port}");
	struct jbuf d;
	json_init(&d);
	LIT(&d, "the listen address, `--listen ");
	json_append(&d, in->cfg->listen_str, strlen(in->cfg->listen_str));
	LIT(&d, "`");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_free(&d);
	json_key(b, "variables");
	json_obj_begin(b);
	json_key(b, "host");
	json_obj_begin(b);
	json_key(b, "default");
	if (host[0]) json_cstr(b, host);
	else if (name_len) json_str(b, h, name_len);
	else json_cstr(b, "localhost");
	json_key(b, "description"); json_cstr(b, host[0] ? "the listen address" : "kbridge listens on every address: the name it was reached at");
	json_obj_end(b);
	json_key(b, "port");
	json_obj_begin(b);
	json_key(b, "default"); json_cstr(b, portbuf);
	json_obj_end(b);
	json_obj_end(b);
	json_obj_end(b);
	json_arr_end(b);
}

/* ---- /ws ------------------------------------------------------------------------- */

static const char ws_parameters[] = "["
	REF("parameters/Upgrade") "," REF("parameters/Connection") ","
	REF("parameters/Sec-WebSocket-Key") "," REF("parameters/Sec-WebSocket-Version") ","
	REF("parameters/Origin") ","
	REF("parameters/channel") "," REF("parameters/channels") "," REF("parameters/format") ","
	REF("parameters/type") "," REF("parameters/interval") "," REF("parameters/snapshot") ","
	REF("parameters/resume") "]";

static const char ws_101[] = "{\"description\":\"Switching Protocols: from here on the connection carries "
	"WebSocket frames, the messages `/asyncapi.json` describes. No subprotocol and no extension is negotiated.\","
	"\"headers\":{\"Upgrade\":{\"schema\":{\"const\":\"websocket\"}},\"Connection\":{\"schema\":{\"const\":\"Upgrade\"}},"
	"\"Sec-WebSocket-Accept\":{\"description\":\"base64 of the SHA-1 of the key and the RFC 6455 GUID\",\"schema\":{\"type\":\"string\"}}}}";

static const char ws_400[] = "{\"description\":\"Not an HTTP/1.1 GET, a missing or invalid `Sec-WebSocket-Key`, "
	"two `Host`, `Upgrade`, `Sec-WebSocket-Key` or `Sec-WebSocket-Version` lines, "
	"a bad query parameter (the error names it) or an unknown channel. The connection is closed.\","
	"\"content\":{\"application/json\":{\"schema\":" REF("schemas/Error") "}}}";

static const char ws_426[] = "{\"description\":\"No `Upgrade: websocket` and `Connection: upgrade`, or a "
	"`Sec-WebSocket-Version` other than 13. The connection is closed.\","
	"\"headers\":{\"Upgrade\":{\"description\":\"only when the upgrade headers were missing\",\"schema\":{\"const\":\"websocket\"}},"
	"\"Sec-WebSocket-Version\":{\"schema\":{\"const\":\"13\"}}},"
	"\"content\":{\"application/json\":{\"schema\":" REF("schemas/Error") "}}}";

static const char ws_401_headers[] = "{\"WWW-Authenticate\":{\"schema\":{\"const\":\"Bearer error=\\\"invalid_token\\\"\"}}}";
static const char ws_429_headers[] = "{\"Retry-After\":{\"description\":\"seconds to wait; only for `--upgrade-rate`\","
	"\"schema\":{\"type\":\"string\"}}}";

static void error_response(struct jbuf *b, const char *status, const struct jbuf *d, const char *headers)
{
	json_key(b, status);
	json_obj_begin(b);
	json_key(b, "description"); json_str(b, d->buf ? d->buf : "", d->len);
	if (headers) { json_key(b, "headers"); RAW(b, headers); }
	json_key(b, "content");
	RAW(b, "{\"application/json\":{\"schema\":" REF("schemas/Error") "}}");
	json_obj_end(b);
}

/* A table of {status, description} error answers. */
static void error_responses(struct jbuf *b, const char *const (*codes)[2], size_t n, const char *headers)
{
	for (size_t i = 0; i < n; i++) {
		struct jbuf d;
		json_init(&d);
		json_append(&d, codes[i][1], strlen(codes[i][1]));
		error_response(b, codes[i][0], &d, headers);
		json_free(&d);
	}
}

static void ws_path(struct jbuf *b, const struct openapi_input *in)
{
	struct jbuf d;
	json_init(&d);
	json_key(b, "/ws");
	json_obj_begin(b);
	json_key(b, "get");
	json_obj_begin(b);
	operation_head(b, "get", "Ws", "websocket", "Open a WebSocket");
	LIT(&d, "A WebSocket upgrade (RFC 6455, version 13). `/ws/<anything>` other than `/ws/stats` is the same "
		"endpoint. After the 101 the client subscribes with messages (see `/asyncapi.json` and `/docs`), or "
		"at once with `channel=`/`channels=`. Query parameters apply to the whole connection; values are "
		"percent-decoded, at most 2,047 bytes each. Routes of this instance:");
	routes_text(&d, in, "\n- ");
	int auth_on = in->cfg->jwt_key || in->cfg->jwt_secret;
	if (auth_on)
		LIT(&d, "\n\nAuthentication is on: a client reads what its token (a JWT) allows. It brings the token "
			"in `Authorization: Bearer`, in `access_token=`, or after the 101 in an auth message within "
			"`--auth-timeout`; see docs/security.md.");
	else
		LIT(&d, "\n\nAuthentication is off on this instance: every client reads every channel.");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_key(b, "parameters");  RAW(b, ws_parameters);
	if (auth_on) {          /* a token on the upgrade, or none and the auth message */
		json_key(b, "security");
		RAW(b, "[{\"bearerAuth\":[]},{\"accessToken\":[]},{}]");
	}
	json_key(b, "responses");
	json_obj_begin(b);
	json_key(b, "101"); RAW(b, ws_101);
	json_key(b, "400"); RAW(b, ws_400);
	json_reset(&d);
	LIT(&d, "The request carried a token (`Authorization: Bearer`, or `access_token=` when there is no such "
		"header) and it was refused: `reason` says why (docs/security.md). A request without a token is upgraded "
		"and authenticates by message. The connection is closed. ");
	if (auth_on) LIT(&d, "Authentication is on here.");
	else LIT(&d, "Never here: authentication is off (no `--jwt-key` or `--jwt-secret`).");
	error_response(b, "401", &d, ws_401_headers);
	json_reset(&d);
	LIT(&d, "The `Origin` is not one `--allow-origin` allows (requests without `Origin` are allowed). Allowed here: ");
	origins_text(&d, in->cfg);
	LIT(&d, ". The connection is closed.");
	error_response(b, "403", &d, NULL);
	json_key(b, "426"); RAW(b, ws_426);
	json_reset(&d);
	char n[64];
	snprintf(n, sizeof(n), "%ld and `--upgrade-rate` %ld", in->cfg->max_clients_per_ip, in->cfg->upgrade_rate);
	LIT(&d, "Over a per-address limit: `--max-clients-per-ip` WebSocket clients from this address, or "
		"`--upgrade-rate` upgrades per second from it (then with `Retry-After`). The connection is closed. "
		"Here `--max-clients-per-ip` is ");
	json_append(&d, n, strlen(n));
	LIT(&d, " (0: off).");
	error_response(b, "429", &d, ws_429_headers);
	json_reset(&d);
	snprintf(n, sizeof(n), "%ld", in->cfg->max_clients);
	LIT(&d, "`--max-clients` (here ");
	json_append(&d, n, strlen(n));
	LIT(&d, ") WebSocket clients are connected, or the server is shutting down. Retry later or elsewhere. "
		"The connection is closed.");
	error_response(b, "503", &d, "{\"Retry-After\":{\"schema\":{\"const\":\"1\"}}}");
	json_key(b, "4XX"); RAW(b, http_errors);
	json_obj_end(b);
	json_obj_end(b);
	options_operation(b, "Ws", "websocket", 0);
	json_obj_end(b);
	json_free(&d);
}

/* ---- /sse ------------------------------------------------------------------------ */

static const char sse_parameters[] = "["
	REF("parameters/Origin") "," REF("parameters/Last-Event-ID") ","
	REF("parameters/channel") "," REF("parameters/channels") "," REF("parameters/key") ","
	REF("parameters/keys") "," REF("parameters/interval") "," REF("parameters/sseSnapshot") ","
	REF("parameters/sseResume") "]";

static const char sse_200[] = "{\"description\":\"The event stream until either side closes (no Content-Length): "
	"`retry: 1000` and the start position (`id:` alone), then per data message `id:` (its position token), "
	"`event:` (its type) and `data:` (the JSON of the data message, one line); `event: snapshot`, `event: error` "
	"(SLOW_CONSUMER, RESUME_GAP, TOKEN_EXPIRED) and a `: keep-alive` comment every 15 s.\","
	"\"content\":{\"text/event-stream\":{\"schema\":{\"type\":\"string\"}}}}";

static void sse_path(struct jbuf *b, const struct openapi_input *in)
{
	json_key(b, "/sse");
	json_obj_begin(b);
	json_key(b, "get");
	json_obj_begin(b);
	operation_head(b, "get", "Sse", "sse", "Stream channels as Server-Sent Events");
	json_key(b, "description");
	json_cstr(b, "The channels named, as `text/event-stream` (docs/protocol.md#sse). Besides the parameters "
		  "below, `filter.FIELD=VALUE` keeps records whose payload has that top-level field (VALUE as JSON "
		  "when it parses, else a string), and `access_token=` carries a token. A reconnect with "
		  "`Last-Event-ID` (EventSource sends it) resumes with no gap and no duplicate.");
	json_key(b, "parameters");  RAW(b, sse_parameters);
	if (in->cfg->jwt_key || in->cfg->jwt_secret) {
		json_key(b, "security");
		RAW(b, "[{\"bearerAuth\":[]},{\"accessToken\":[]},{}]");
	}
	json_key(b, "responses");
	json_obj_begin(b);
	json_key(b, "200"); RAW(b, sse_200);
	static const char *const codes[][2] = {
		{ "400", "A bad query parameter, no channel, a malformed position token or one naming a topic none "
			 "of the channels reads; `code` says which. The connection is closed." },
		{ "401", "A token is needed (a channel is not public) or was refused. The connection is closed." },
		{ "403", "The token does not allow a channel, or the `Origin` is not allowed. The connection is closed." },
		{ "404", "No route produces a channel named (`UNKNOWN_CHANNEL`). The connection is closed." },
		{ "429", "Over `--max-clients-per-ip` or `--upgrade-rate`. The connection is closed." },
		{ "503", "`--max-clients` clients (WebSocket and SSE) are connected, or the server is shutting down." },
	};
	error_responses(b, codes, sizeof(codes) / sizeof(codes[0]), NULL);
	json_obj_end(b);
	json_obj_end(b);
	options_operation(b, "Sse", "sse", 1);
	json_obj_end(b);
}

/* ---- /publish/{channel} -------------------------------------------------------------- */

/* One record into Kafka: the body is its value, byte for byte. */
static void publish_path(struct jbuf *b, const struct openapi_input *in)
{
	const struct config *c = in->cfg;
	struct jbuf d;
	json_init(&d);
	json_key(b, "/publish/{channel}");
	json_obj_begin(b);
	json_key(b, "post");
	json_obj_begin(b);
	operation_head(b, "post", "Publish", "publish", "Publish one record into Kafka");
	LIT(&d, "Writes the body, byte for byte, as the value of one record to the topic `--publish` names for the "
		"channel, and answers once Kafka acknowledged it (docs/protocol.md#publishing). The connection is kept "
		"open for the next request. Publish channels of this instance:");
	for (size_t i = 0; i < c->npublishes; i++) {
		const char *eq = strchr(c->publishes[i], '=');
		if (!eq) continue;
		LIT(&d, "\n- channel `");
		json_append(&d, c->publishes[i], (size_t)(eq - c->publishes[i]));
		LIT(&d, "` -> topic ");
		code(&d, eq + 1);
	}
	if (c->npublishes == 0) LIT(&d, "\n- none: every channel answers 404");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_key(b, "parameters");
	json_arr_begin(b);
	json_obj_begin(b);
	json_key(b, "name"); json_cstr(b, "channel");
	json_key(b, "in"); json_cstr(b, "path");
	json_key(b, "required"); RAW(b, "true");
	json_key(b, "description"); json_cstr(b, "a channel named by `--publish`");
	json_key(b, "schema");
	json_obj_begin(b);
	json_key(b, "type"); json_cstr(b, "string");
	json_key(b, "enum");
	json_arr_begin(b);
	for (size_t i = 0; i < c->npublishes; i++) {
		const char *eq = strchr(c->publishes[i], '=');
		if (eq) json_str(b, c->publishes[i], (size_t)(eq - c->publishes[i]));
	}
	json_arr_end(b);
	json_obj_end(b);
	json_obj_end(b);
	RAW(b, REF("parameters/publishKey"));
	RAW(b, REF("parameters/Origin"));
	json_arr_end(b);
	json_reset(&d);
	char n[32];
	snprintf(n, sizeof(n), "%zu", c->max_message);
	LIT(&d, "Any JSON value, the record's value exactly as sent. `Content-Length` is required; here at most ");
	json_append(&d, n, strlen(n));
	LIT(&d, " bytes (`--max-message`).");
	json_key(b, "requestBody");
	json_obj_begin(b);
	json_key(b, "required"); RAW(b, "true");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_key(b, "content"); RAW(b, "{\"application/json\":{\"schema\":{}}}");
	json_obj_end(b);
	if (c->jwt_key || c->jwt_secret) {      /* the publish claim must allow the channel */
		json_key(b, "security");
		RAW(b, "[{\"bearerAuth\":[]},{\"accessToken\":[]}]");
	}
	json_key(b, "responses");
	json_obj_begin(b);
	json_key(b, "200");
	RAW(b, "{\"description\":\"Kafka acknowledged the record: where it is\",\"headers\":{\"Cache-Control\":"
	       REF("headers/Cache-Control") ",\"Access-Control-Allow-Origin\":" REF("headers/Access-Control-Allow-Origin")
	       "},\"content\":{\"application/json\":{\"schema\":" REF("schemas/Published") "}}}");
	static const char *const codes[][2] = {
		{ "400", "The body is empty or not one JSON value, or `key` is too long or badly percent-encoded." },
		{ "401", "Authentication is on and the request has no token (`Authorization: Bearer` or `access_token=`), "
			 "or the token was refused. The connection is closed." },
		{ "403", "The `Origin` is not one `--allow-origin` allows (the connection is closed), or the token's "
			 "`publish` claim does not allow the channel." },
		{ "404", "The channel is not one `--publish` names." },
		{ "411", "No `Content-Length` (a chunked body included). The connection is closed." },
		{ "413", "`Content-Length` over `--max-message` (the connection is closed; the body is not read), or a "
			 "record larger than Kafka takes (`message.max.bytes`)." },
		{ "429", "The producer's queue is full; nothing was written. `Retry-After: 1`." },
		{ "503", "Kafka refused the record, did not acknowledge it within `--publish-timeout`, kbridge's producer "
			 "failed and a new one has not started yet, or the server is shutting down; `error` says which." },
	};
	error_responses(b, codes, sizeof(codes) / sizeof(codes[0]), "{\"Access-Control-Allow-Origin\":"
			REF("headers/Access-Control-Allow-Origin") "}");
	json_key(b, "4XX"); RAW(b, http_errors);
	json_obj_end(b);
	json_obj_end(b);
	options_operation(b, "Publish", "publish", 1);
	json_obj_end(b);
	json_free(&d);
}

/* ---- components ---------------------------------------------------------------- */


static void named_members(struct jbuf *b, const struct openapi_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		json_key(b, t->v[i].name);
		RAW(b, t->v[i].json);
	}
}

#define NAMED(b, v) named_members((b), &openapi_##v)

static void components(struct jbuf *b, const struct openapi_input *in)
{
	json_key(b, "components");
	json_obj_begin(b);
	json_key(b, "schemas");
	json_obj_begin(b);
	NAMED(b, schemas);
	json_key(b, "Channel");
	channel_schema(b, in);
	json_obj_end(b);
	json_key(b, "parameters");
	json_obj_begin(b);
	NAMED(b, parameters);
	json_obj_end(b);
	json_key(b, "headers");
	json_obj_begin(b);
	NAMED(b, headers);
	/* Which origins get it depends on --allow-origin. */
	struct jbuf d;
	json_init(&d);
	LIT(&d, "`*` with `--allow-origin *`; with a list, the request's `Origin` when it is one of them, else "
		"absent (the browser then keeps the answer from the page). Here: ");
	origins_text(&d, in->cfg);
	json_key(b, "Access-Control-Allow-Origin");
	json_obj_begin(b);
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_key(b, "schema");      RAW(b, STRING);
	json_obj_end(b);
	json_free(&d);
	json_obj_end(b);
	json_key(b, "responses");
	json_obj_begin(b);
	NAMED(b, responses);
	json_obj_end(b);
	json_key(b, "securitySchemes");
	json_obj_begin(b);
	NAMED(b, security_schemes);
	json_obj_end(b);
	json_obj_end(b);
}

/* ---- the document ------------------------------------------------------------------ */

static const char tags[] = "["
	"{\"name\":\"health\",\"description\":\"liveness and readiness probes\"},"
	"{\"name\":\"monitoring\",\"description\":\"stats and Prometheus metrics\"},"
	"{\"name\":\"documents\",\"description\":\"descriptions of this kbridge, and its pages\"},"
	"{\"name\":\"websocket\",\"description\":\"the WebSocket endpoint\"},"
	"{\"name\":\"sse\",\"description\":\"the same streams as Server-Sent Events\"},"
	"{\"name\":\"publish\",\"description\":\"records into Kafka\"}]";

void openapi_write(struct jbuf *b, const struct openapi_input *in)
{
	struct jbuf d;
	json_init(&d);
	json_obj_begin(b);
	json_key(b, "openapi"); json_cstr(b, "3.1.0");
	json_key(b, "info");
	json_obj_begin(b);
	json_key(b, "title");   json_cstr(b, "kbridge");
	json_key(b, "version"); json_cstr(b, KBRIDGE_VERSION);
	json_key(b, "summary"); json_cstr(b, "Kafka topics as WebSocket streams: the HTTP endpoints");
	LIT(&d, "The HTTP endpoints of this kbridge. Clients connect to `/ws` and speak the protocol that "
		"`/asyncapi.json` and `/docs` describe. The JSON and text endpoints answer pages of other origins "
		"(CORS) allowed by `--allow-origin`; here: ");
	origins_text(&d, in->cfg);
	LIT(&d, ".\n\nRoutes of this instance:\n");
	routes_text(&d, in, "\n- ");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_free(&d);
	json_key(b, "license");
	RAW(b, "{\"name\":\"Apache-2.0\",\"identifier\":\"Apache-2.0\"}");
	json_obj_end(b);
	servers(b, in);
	json_key(b, "tags"); RAW(b, tags);
	json_key(b, "paths");
	json_obj_begin(b);
	for (size_t i = 0; i < sizeof(api_paths) / sizeof(api_paths[0]); i++) api_path(b, &api_paths[i], in->cfg);
	ws_path(b, in);
	sse_path(b, in);
	publish_path(b, in);
	json_obj_end(b);
	components(b, in);
	json_obj_end(b);
}
