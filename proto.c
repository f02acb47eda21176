/* proto.c - the client side of kbridge's WebSocket protocol (DESIGN.md §4):
 * dispatches control messages of both dialects ("type" and the CryptoViz
 * "action" form), validates upgrade query parameters, and answers with acks,
 * pongs and errors. Routing records to subscribers is hub.c's job. */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "server.h"

int proto_init(const struct config *cfg, char *err, size_t errlen)
{
	(void)cfg; (void)err; (void)errlen;
	return 0;
}

static void pong(const struct msg_ctx *m)
{
	struct jbuf b;
	reply_begin(&b, "pong", m->id, m->id_len);
	reply_send(m->c, &b);
}

void proto_handle(const struct msg_ctx *m)
{
	const char *src = m->src;
	const struct json_tok *tok = m->tok;
	int action = json_obj_get(src, tok, 0, "action");
	int t = action >= 0 ? action : json_obj_get(src, tok, 0, "type");

	if (t < 0) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", "message needs a \"type\" (or \"action\") string");
		return;
	}
	if (tok[t].type != JSON_STRING) {
		reply_error(m->c, m->id, m->id_len, "BAD_REQUEST", action >= 0 ? "\"action\" must be a string" : "\"type\" must be a string");
		return;
	}
	if (json_str_eq(src, tok, t, "ping", 4)) {
		pong(m);
		return;
	}
	reply_error(m->c, m->id, m->id_len, "UNKNOWN_TYPE", action >= 0 ? "unknown action" : "unknown message type");
}

int proto_upgrade_parse(const char *q, size_t qlen, struct upgrade_opts *o, char *err, size_t errlen)
{
	char v[PROTO_QUERY_MAX];
	ssize_t n;
	memset(o, 0, sizeof(*o));

	/* channel= and channels= both name channels to subscribe to at once. */
	static const char *const chan_params[] = { "channel", "channels" };
	for (int i = 0; i < 2; i++) {
		n = http_query_param(q, qlen, chan_params[i], v, sizeof(v));
		if (n == -2) { snprintf(err, errlen, "query parameter %s is badly encoded or too long", chan_params[i]); return -1; }
		if (n > 0) {
			size_t used = strlen(o->channels);
			if (used + (size_t)n + 2 > sizeof(o->channels)) { snprintf(err, errlen, "too many channels in the query"); return -1; }
			if (used) o->channels[used++] = ',';
			memcpy(o->channels + used, v, (size_t)n + 1);
		}
	}
	n = http_query_param(q, qlen, "format", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "json") == 0) o->msgpack = 0;
		else if (strcmp(v, "msgpack") == 0) { snprintf(err, errlen, "format=msgpack is not supported by this version"); return -1; }
		else { snprintf(err, errlen, "format must be json or msgpack"); return -1; }
	} else if (n == -2) { snprintf(err, errlen, "query parameter format is badly encoded"); return -1; }

	n = http_query_param(q, qlen, "type", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "tui") == 0) { o->interval_ms = 100; o->snapshot = 1; }
		else if (strcmp(v, "web") == 0) { o->interval_ms = 250; o->snapshot = 1; }
		else { snprintf(err, errlen, "type must be tui or web"); return -1; }
	}
	n = http_query_param(q, qlen, "interval", v, sizeof(v));
	if (n >= 0) {
		char *end;
		long ms = strtol(v, &end, 10);
		if (!*v || *end || ms < 0 || ms > 3600000) { snprintf(err, errlen, "interval must be milliseconds 0-3600000"); return -1; }
		o->interval_ms = (int)ms;
	}
	n = http_query_param(q, qlen, "snapshot", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) o->snapshot = 1;
		else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) o->snapshot = 0;
		else { snprintf(err, errlen, "snapshot must be 1 or 0"); return -1; }
	}
	n = http_query_param(q, qlen, "resume", v, sizeof(v));
	if (n == -2) { snprintf(err, errlen, "query parameter resume is badly encoded or too long"); return -1; }
	if (n >= 0) memcpy(o->resume, v, (size_t)n + 1);
	return 0;
}

void proto_upgrade_apply(struct client *c, const struct upgrade_opts *o)
{
	(void)c; (void)o;
}

void proto_client_gone(struct client *c)
{
	(void)c;
}

void proto_tick(void)
{
}
