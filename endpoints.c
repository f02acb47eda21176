/* endpoints.c - plain HTTP endpoints (DESIGN.md §3): health, readiness,
 * stats. Each writes a JSON body into the caller's buffer; none does I/O. */
#include "endpoints.h"

#include <string.h>

#include "kafka.h"
#include "server.h"

static int path_eq(const struct http_request *r, const char *p)
{
	size_t n = strlen(p);
	return r->path_len == n && memcmp(r->path, p, n) == 0;
}

static void health(struct http_out *o)
{
	struct jbuf *b = &o->body;
	o->status = 200;
	json_obj_begin(b);
	json_key(b, "status");   json_cstr(b, "ok");
	json_key(b, "kafka");    json_cstr(b, kafka_up() ? "up" : "down");
	json_key(b, "clients");  json_uint(b, server_ws_clients());
	json_key(b, "uptime_s"); json_int(b, server_uptime_s());
	json_obj_end(b);
}

static void ready(struct http_out *o)
{
	struct jbuf *b = &o->body;
	int ok = kafka_up() && kafka_ready();
	o->status = ok ? 200 : 503;
	json_obj_begin(b);
	json_key(b, "ready"); json_bool(b, ok);
	json_key(b, "kafka"); json_cstr(b, kafka_up() ? "up" : "down");
	json_obj_end(b);
}

static void stats(struct http_out *o)
{
	const struct server_stats *s = server_stats();
	struct jbuf *b = &o->body;
	o->status = 200;
	json_obj_begin(b);
	json_key(b, "clients");  json_uint(b, server_ws_clients());
	json_key(b, "uptime_s"); json_int(b, server_uptime_s());
	json_key(b, "kafka");    json_cstr(b, kafka_up() ? "up" : "down");
	json_key(b, "bytes_out"); json_uint(b, s->bytes_out);
	json_key(b, "dropped");  json_uint(b, s->dropped);
	json_key(b, "slow_disconnects"); json_uint(b, s->slow_disconnects);
	json_obj_end(b);
}

void endpoints_handle(const struct http_request *req, struct http_out *o)
{
	json_init(&o->body);
	if (path_eq(req, "/health")) health(o);
	else if (path_eq(req, "/ready")) ready(o);
	else if (path_eq(req, "/stats") || path_eq(req, "/ws/stats")) stats(o);
	else {
		o->status = 404;
		json_obj_begin(&o->body);
		json_key(&o->body, "error");
		json_cstr(&o->body, "not found");
		json_obj_end(&o->body);
	}
	json_append(&o->body, "\n", 1);
}
