/* asyncapi.c - GET /asyncapi.json (asyncapi.h): the AsyncAPI 2.6.0 document
 * of the WebSocket protocol. One AsyncAPI channel per kbridge channel: its
 * subscribe operation is what kbridge sends, its publish operation what the
 * client sends. The messages every kbridge speaks are fixed text below,
 * kept with docs/protocol.md; what depends on the instance is written per
 * request: the routes, the --publish channels and --command types clients
 * write into Kafka with, and whether a token is needed. The HTTP endpoints
 * are /openapi.json's (openapi.c). */
#include "asyncapi.h"

#include <stdio.h>
#include <string.h>

#include "version.h"

#define LIT(b, s) json_append((b), (s), sizeof(s) - 1)
#define MSG(name) "{\"$ref\":\"#/components/messages/" name "\"}"

/* The messages of every instance. */
static const char fixed_messages[] =
	"\"data\":{\"name\":\"data\",\"summary\":\"One Kafka record\",\"payload\":{\"type\":\"object\","
	"\"required\":[\"type\",\"channel\",\"seq\",\"topic\",\"partition\",\"offset\",\"data\"],"
	"\"properties\":{\"type\":{\"type\":\"string\"},\"channel\":{\"type\":\"string\"},"
	"\"key\":{\"type\":\"string\"},\"key_encoding\":{\"const\":\"base64\"},\"seq\":{\"type\":\"integer\"},"
	"\"topic\":{\"type\":\"string\"},\"partition\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"},"
	"\"timestamp\":{\"type\":\"string\",\"format\":\"date-time\"},\"data\":{},\"encoding\":{\"const\":\"base64\"},"
	"\"headers\":{\"type\":\"array\"},\"headers_truncated\":{\"type\":\"integer\"}}}},"
	"\"state_snapshot\":{\"name\":\"state_snapshot\",\"summary\":\"type=tui|web: the whole state of every "
	"subscribed channel\",\"payload\":{\"type\":\"object\",\"required\":[\"type\",\"seq\",\"timestamp\",\"data\"],"
	"\"properties\":{\"type\":{\"const\":\"snapshot\"},\"seq\":{\"type\":\"integer\"},"
	"\"timestamp\":{\"type\":\"string\",\"format\":\"date-time\"},\"data\":{\"type\":\"object\"},\"id\":{}}}},"
	"\"state_update\":{\"name\":\"state_update\",\"summary\":\"type=tui|web: what changed, as paths joined by "
	"'.'\",\"payload\":{\"type\":\"object\",\"required\":[\"type\",\"seq\",\"timestamp\",\"changes\"],"
	"\"properties\":{\"type\":{\"const\":\"update\"},\"seq\":{\"type\":\"integer\"},"
	"\"timestamp\":{\"type\":\"string\",\"format\":\"date-time\"},\"changes\":{\"type\":\"object\"}}}},"
	"\"control\":{\"name\":\"control\",\"summary\":\"A client control message\",\"payload\":{\"type\":\"object\","
	"\"properties\":{\"type\":{\"enum\":[\"subscribe\",\"unsubscribe\",\"ping\",\"list\",\"refresh\"]},"
	"\"action\":{\"enum\":[\"subscribe\",\"unsubscribe\",\"ping\",\"list_subscriptions\"]},"
	"\"channel\":{\"type\":\"string\"},\"channels\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
	"\"key\":{\"type\":\"string\"},\"keys\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
	"\"filter\":{\"type\":\"object\"},\"id\":{}}}},"
	/* Authentication (docs/security.md): the token as the first message, or
	 * again later to refresh it, and its ack. */
	"\"auth\":{\"name\":\"auth\",\"summary\":\"Authenticate, or refresh the token (with --jwt-key or --jwt-secret)\","
	"\"payload\":{\"type\":\"object\",\"required\":[\"token\"],\"anyOf\":[{\"required\":[\"type\"]},{\"required\":[\"action\"]}],"
	"\"properties\":{\"type\":{\"const\":\"auth\"},\"action\":{\"const\":\"auth\"},"
	"\"token\":{\"type\":\"string\",\"maxLength\":16384,\"description\":\"a JSON Web Token (RFC 7519)\"},\"id\":{}}}},"
	"\"auth_ack\":{\"name\":\"auth_ack\",\"summary\":\"The token was accepted: the client's identity, and when the "
	"connection ends without a newer token\",\"payload\":{\"type\":\"object\",\"required\":[\"type\",\"action\",\"sub\",\"expires\"],"
	"\"properties\":{\"type\":{\"const\":\"ack\"},\"action\":{\"const\":\"auth\"},\"id\":{},"
	"\"sub\":{\"type\":\"string\",\"description\":\"the token's sub claim, empty without one\"},"
	"\"expires\":{\"type\":\"string\",\"format\":\"date-time\",\"description\":\"the token's exp\"}}}},"
	"\"error\":{\"name\":\"error\",\"payload\":{\"type\":\"object\",\"required\":[\"type\",\"code\"],\"properties\":{"
	"\"type\":{\"const\":\"error\"},\"id\":{\"description\":\"the id of the message it answers, when that had one\"},"
	"\"code\":{\"enum\":[\"INVALID_JSON\",\"UNKNOWN_TYPE\",\"UNKNOWN_CHANNEL\",\"BAD_REQUEST\",\"RATE_LIMITED\","
	"\"TOO_MANY_SUBSCRIPTIONS\",\"UNAUTHORIZED\",\"TOKEN_EXPIRED\",\"SLOW_CONSUMER\",\"RESUME_GAP\",\"PUBLISH_FAILED\"]},"
	"\"channel\":{\"type\":\"string\",\"description\":\"UNAUTHORIZED: the channel the token does not allow\"},"
	"\"message\":{\"type\":\"string\",\"description\":\"PUBLISH_FAILED: Kafka's reason, that no acknowledgement "
	"came within --publish-timeout, that kbridge's producer failed (and when a new one starts), or that the server "
	"is shutting down\"}}}}";

static const char security_schemes[] = "{"
	"\"bearer\":{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\","
	"\"description\":\"Authorization: Bearer on the upgrade; or, without it, the auth message within --auth-timeout\"},"
	"\"access_token\":{\"type\":\"httpApiKey\",\"name\":\"access_token\",\"in\":\"query\","
	"\"description\":\"the token on the upgrade URL (it ends up in proxies' logs: prefer the header or the auth message)\"}}";

/* "NAME=TOPIC" of --publish and --command: the name's length, the topic. */
static size_t spec_name(const char *spec, const char **topic)
{
	const char *eq = strchr(spec, '=');
	*topic = eq ? eq + 1 : "";
	return eq ? (size_t)(eq - spec) : strlen(spec);
}

static const char *route_channel(const struct route *r)
{
	return r->channel ? r->channel : r->is_regex ? "{topic}" : r->topic;
}

/* The topic --publish sends channel ch's records to, or NULL. */
static const char *publish_topic(const struct config *c, const char *ch)
{
	for (size_t i = 0; i < c->npublishes; i++) {
		const char *topic;
		size_t n = spec_name(c->publishes[i], &topic);
		if (strlen(ch) == n && memcmp(ch, c->publishes[i], n) == 0) return topic;
	}
	return NULL;
}

/* ---- the messages that depend on the instance ------------------------------------- */

/* The messages object is written as text (LIT), not through json.c's
 * separators; quoted() appends one escaped string the same way. */
static void quoted(struct jbuf *b, const char *s, size_t n)
{
	struct jbuf t;
	json_init(&t);
	json_str(&t, s, n);
	json_append(b, t.buf ? t.buf : "", t.len);
	json_free(&t);
}

/* {"type":X} or {"action":X}: the two dialects name a message either way. */
static void dialects(struct jbuf *b, const char *name, size_t len)
{
	LIT(b, "\"anyOf\":[{\"required\":[\"type\"]},{\"required\":[\"action\"]}],\"properties\":{\"type\":{\"const\":");
	quoted(b, name, len);
	LIT(b, "},\"action\":{\"const\":");
	quoted(b, name, len);
	LIT(b, "},");
}

static const char record_fields[] = "\"data_base64\":{\"type\":\"string\",\"contentEncoding\":\"base64\","
	"\"description\":\"instead: the record's value as bytes, in padded base64\"},"
	"\"key\":{\"type\":[\"string\",\"null\"],\"description\":\"the record's key; null or absent: none\"},"
	"\"headers\":{\"type\":[\"object\",\"null\"],\"maxProperties\":64,\"additionalProperties\":{\"type\":\"string\"},"
	"\"description\":\"the record's headers, name to value\"},"
	"\"id\":{\"description\":\"any JSON value, echoed in the ack or error\"}";

/* The client's publish message: its channel one of --publish's. */
static void publish_message(struct jbuf *b, const struct config *c)
{
	LIT(b, ",\"publish\":{\"name\":\"publish\",\"summary\":\"Write one record into Kafka\",\"description\":\"The "
	       "record goes to the topic --publish names for the channel; its value is data's exact JSON text, or the bytes "
	       "data_base64 carries. Answered by an ack once Kafka acknowledged it, or an error (docs/protocol.md#publishing).\","
	       "\"payload\":{\"type\":\"object\",\"required\":[\"channel\"],"
	       "\"oneOf\":[{\"required\":[\"data\"]},{\"required\":[\"data_base64\"]}],");
	dialects(b, "publish", 7);
	LIT(b, "\"channel\":{\"type\":\"string\",\"enum\":[");
	for (size_t i = 0; i < c->npublishes; i++) {
		const char *topic;
		if (i) LIT(b, ",");
		quoted(b, c->publishes[i], spec_name(c->publishes[i], &topic));
	}
	LIT(b, "]},\"data\":{\"description\":\"any JSON value: the record's value is its JSON text\"},");
	LIT(b, record_fields);
	LIT(b, "}}}");
}

/* One message per --command TYPE: its payload becomes a record of TOPIC. */
static void command_messages(struct jbuf *b, const struct config *c)
{
	for (size_t i = 0; i < c->ncommands; i++) {
		const char *topic;
		size_t n = spec_name(c->commands[i], &topic);
		struct jbuf key;
		json_init(&key);
		LIT(&key, "command_");
		json_append(&key, c->commands[i], n);
		LIT(b, ",");
		quoted(b, key.buf ? key.buf : "", key.len);
		json_free(&key);
		LIT(b, ":{\"name\":");
		quoted(b, c->commands[i], n);
		struct jbuf d;
		json_init(&d);
		LIT(&d, "A command (--command): payload's exact JSON text becomes the value of a record of topic ");
		json_append(&d, topic, strlen(topic));
		LIT(&d, ". Answered by an ack once Kafka acknowledged it, or an error.");
		LIT(b, ",\"summary\":\"Write one record into Kafka\",\"description\":");
		quoted(b, d.buf ? d.buf : "", d.len);
		json_free(&d);
		LIT(b, ",\"payload\":{\"type\":\"object\",\"oneOf\":[{\"required\":[\"payload\"]},{\"required\":[\"data_base64\"]}],");
		dialects(b, c->commands[i], n);
		LIT(b, "\"payload\":{\"description\":\"any JSON value: the record's value is its JSON text\"},");
		LIT(b, record_fields);
		LIT(b, "}}}");
	}
}

/* The ack of a publish or a command, after Kafka acknowledged the record. */
static void publish_ack(struct jbuf *b, const struct config *c)
{
	LIT(b, ",\"publish_ack\":{\"name\":\"publish_ack\",\"summary\":\"Kafka acknowledged the record: where it is, "
	       "the same topic, partition and offset it has in a channel's stream\",\"payload\":{\"type\":\"object\","
	       "\"required\":[\"type\",\"action\",\"topic\",\"partition\",\"offset\"],\"properties\":{"
	       "\"type\":{\"const\":\"ack\"},\"action\":{\"enum\":[\"publish\"");
	for (size_t i = 0; i < c->ncommands; i++) {
		const char *topic;
		LIT(b, ",");
		quoted(b, c->commands[i], spec_name(c->commands[i], &topic));
	}
	LIT(b, "],\"description\":\"publish, or the command's type\"},\"id\":{\"description\":\"the request's id, "
	       "when it had one\"},\"channel\":{\"type\":\"string\",\"description\":\"publish only: the channel\"},"
	       "\"topic\":{\"type\":\"string\"},\"partition\":{\"type\":\"integer\",\"minimum\":0},"
	       "\"offset\":{\"type\":\"integer\",\"minimum\":0}}}}");
}

/* ---- channels ------------------------------------------------------------------------ */

/* {"$ref":"#/components/messages/command_TYPE"} for --command spec,
 * TYPE escaped as a JSON pointer token (RFC 6901) and then as JSON: any
 * name a command may have. */
static void command_ref(struct jbuf *b, const char *spec)
{
	const char *topic;
	size_t n = spec_name(spec, &topic);
	struct jbuf p, r;
	json_init(&p);
	json_init(&r);
	LIT(&p, "#/components/messages/command_");
	for (size_t i = 0; i < n; i++) {
		if (spec[i] == '~') LIT(&p, "~0");
		else if (spec[i] == '/') LIT(&p, "~1");
		else json_append(&p, spec + i, 1);
	}
	LIT(&r, "{\"$ref\":");
	quoted(&r, p.buf ? p.buf : "", p.len);
	LIT(&r, "}");
	if (!p.failed && !r.failed) json_raw(b, r.buf, r.len);
	json_free(&p);
	json_free(&r);
}

static void one_of(struct jbuf *b, const char *op_key, const char *op_id)
{
	json_key(b, op_key);
	json_obj_begin(b);
	json_key(b, "operationId"); json_cstr(b, op_id);
	json_key(b, "message");
	json_obj_begin(b);
	json_key(b, "oneOf");
	json_arr_begin(b);
}

static void one_of_end(struct jbuf *b)
{
	json_arr_end(b);
	json_obj_end(b);
	json_obj_end(b);
}

/* What the client may send on any channel: control, auth, the commands,
 * and the publish message on a --publish channel. */
static void client_messages(struct jbuf *b, const struct config *c, int routed, int publish, size_t i)
{
	char op[64];
	snprintf(op, sizeof(op), "control_%zu", i);
	one_of(b, "publish", op);
	if (routed) json_raw(b, MSG("control"), sizeof(MSG("control")) - 1);
	json_raw(b, MSG("auth"), sizeof(MSG("auth")) - 1);
	if (publish) json_raw(b, MSG("publish"), sizeof(MSG("publish")) - 1);
	for (size_t k = 0; k < c->ncommands; k++) command_ref(b, c->commands[k]);
	one_of_end(b);
}

/* Opens channel ch's object in b and begins its description in d
 * ("Channel 'ch' on /ws"). */
static void channel_begin(struct jbuf *b, struct jbuf *d, const char *ch)
{
	json_key(b, ch);
	json_obj_begin(b);
	json_init(d);
	LIT(d, "Channel '");
	json_append(d, ch, strlen(ch));
	LIT(d, "' on /ws");
}

/* A --publish channel's part of the description. */
static void publish_text(struct jbuf *d, const char *ch, const char *topic)
{
	LIT(d, " Publish on it with {\"type\":\"publish\",\"channel\":\"");
	json_append(d, ch, strlen(ch));
	LIT(d, "\",\"data\":...}: records go to topic ");
	json_append(d, topic, strlen(topic));
	LIT(d, ".");
}

static void route_channels(struct jbuf *b, const struct asyncapi_input *in, int writes)
{
	const struct route *ri = in->routes;
	size_t n = in->nroutes;
	for (size_t i = 0; i < n; i++) {
		const char *ch = route_channel(&ri[i]);
		size_t k;
		for (k = 0; k < i && strcmp(route_channel(&ri[k]), ch) != 0; k++) ;
		if (k < i) continue;          /* already described */
		struct jbuf d;
		channel_begin(b, &d, ch);
		LIT(&d, ": subscribe with {\"type\":\"subscribe\",\"channel\":\"");
		json_append(&d, ch, strlen(ch));
		LIT(&d, "\"}. Fed by:");
		for (k = i; k < n; k++) {
			char line[600];
			if (strcmp(route_channel(&ri[k]), ch) != 0) continue;
			snprintf(line, sizeof(line), " %s %s as type '%s';", ri[k].is_regex ? "topics matching" : "topic",
				 ri[k].topic, ri[k].type ? ri[k].type : "(topic name)");
			json_append(&d, line, strlen(line));
		}
		if (d.len && d.buf[d.len - 1] == ';') d.buf[d.len - 1] = '.';
		const char *topic = ri[i].is_regex && !ri[i].channel ? NULL : publish_topic(in->cfg, ch);
		if (topic) publish_text(&d, ch, topic);
		json_key(b, "description");
		json_str(b, d.buf ? d.buf : "", d.len);
		json_free(&d);
		if (ri[i].is_regex && !ri[i].channel) {
			static const char topic_param[] = "{\"topic\":{\"description\":\"a topic name matching the route's "
				"regular expression\"}}";
			json_key(b, "parameters");
			json_raw(b, topic_param, sizeof(topic_param) - 1);
		}
		char op[64];
		snprintf(op, sizeof(op), "receive_%zu", i);
		/* records, or with type=tui|web the state dialect's messages */
		one_of(b, "subscribe", op);
		static const char receives[] = MSG("data") "," MSG("state_snapshot") "," MSG("state_update") ","
			MSG("auth_ack") "," MSG("error");
		json_raw(b, receives, sizeof(receives) - 1);
		if (writes) json_raw(b, MSG("publish_ack"), sizeof(MSG("publish_ack")) - 1);
		one_of_end(b);
		client_messages(b, in->cfg, 1, topic != NULL, i);
		json_obj_end(b);
	}
}

/* A --publish channel no route produces: clients write to it, nothing reads it. */
static void publish_channels(struct jbuf *b, const struct asyncapi_input *in)
{
	const struct config *c = in->cfg;
	for (size_t i = 0; i < c->npublishes; i++) {
		const char *topic;
		char ch[256];
		snprintf(ch, sizeof(ch), "%.*s", (int)spec_name(c->publishes[i], &topic), c->publishes[i]);
		size_t k;
		for (k = 0; k < in->nroutes && strcmp(route_channel(&in->routes[k]), ch) != 0; k++) ;
		if (k < in->nroutes) continue;          /* described with its routes */
		struct jbuf d;
		channel_begin(b, &d, ch);
		LIT(&d, ", for publishing only (no route reads it).");
		publish_text(&d, ch, topic);
		json_key(b, "description");
		json_str(b, d.buf ? d.buf : "", d.len);
		json_free(&d);
		char op[64];
		snprintf(op, sizeof(op), "publish_ack_%zu", i);
		one_of(b, "subscribe", op);
		static const char replies[] = MSG("publish_ack") "," MSG("auth_ack") "," MSG("error");
		json_raw(b, replies, sizeof(replies) - 1);
		one_of_end(b);
		client_messages(b, c, 0, 1, in->nroutes + i);
		json_obj_end(b);
	}
}

/* ---- the document ---------------------------------------------------------------------- */

void asyncapi_write(struct jbuf *b, const struct asyncapi_input *in)
{
	const struct config *c = in->cfg;
	int auth_on = c->jwt_key || c->jwt_secret;
	int writes = c->npublishes || c->ncommands;
	char host[256];
	snprintf(host, sizeof(host), "%.*s", in->host ? (int)in->host_len : 9, in->host ? in->host : "localhost");

	json_obj_begin(b);
	json_key(b, "asyncapi"); json_cstr(b, "2.6.0");
	json_key(b, "info");
	json_obj_begin(b);
	json_key(b, "title");   json_cstr(b, "kbridge");
	json_key(b, "version"); json_cstr(b, KBRIDGE_VERSION);
	struct jbuf d;
	json_init(&d);
	if (auth_on)
		LIT(&d, "Kafka records as WebSocket messages. Connect to /ws, authenticate (Authorization: Bearer on the "
			"upgrade, or an auth message first), send a subscribe message, receive the data messages the token allows.");
	else
		LIT(&d, "Kafka records as WebSocket messages. Connect to /ws, send a subscribe message, receive data messages.");
	if (writes)
		LIT(&d, " Clients also write records into Kafka: a publish message on a publish channel, or a command "
			"message; each is answered by an ack once Kafka acknowledged the record.");
	json_key(b, "description"); json_str(b, d.buf ? d.buf : "", d.len);
	json_free(&d);
	json_obj_end(b);
	json_key(b, "servers");
	json_obj_begin(b);
	json_key(b, "kbridge");
	json_obj_begin(b);
	json_key(b, "url");      json_cstr(b, host);
	json_key(b, "protocol"); json_cstr(b, "ws");
	if (auth_on) {          /* either scheme; the auth message is in the description */
		static const char either[] = "[{\"bearer\":[]},{\"access_token\":[]}]";
		json_key(b, "security");
		json_raw(b, either, sizeof(either) - 1);
	}
	json_obj_end(b);
	json_obj_end(b);
	json_key(b, "defaultContentType"); json_cstr(b, "application/json");
	json_key(b, "channels");
	json_obj_begin(b);
	route_channels(b, in, writes);
	publish_channels(b, in);
	json_obj_end(b);
	json_key(b, "components");
	json_obj_begin(b);
	struct jbuf m;
	json_init(&m);
	LIT(&m, "{");
	LIT(&m, fixed_messages);
	if (c->npublishes) publish_message(&m, c);
	command_messages(&m, c);
	if (writes) publish_ack(&m, c);
	LIT(&m, "}");
	json_key(b, "messages");
	json_raw(b, m.buf ? m.buf : "{}", m.buf ? m.len : 2);
	json_free(&m);
	json_key(b, "securitySchemes");
	json_raw(b, security_schemes, sizeof(security_schemes) - 1);
	json_obj_end(b);
	json_obj_end(b);
}
