/* test_proto.c - the protocol layer (proto.c) over the real routing layer
 * below it: client control messages are parsed as session.c parses them
 * (json_parse, "id" as raw text) and handed to proto_handle; every reply,
 * snapshot and record is read back from the client's socket (peer.h) as the
 * browser would see it, MessagePack ones decoded to JSON, and checked field
 * by field. Covered: subscribe in the native dialect (channel, channels,
 * key, keys, "*", filter; the ack and its echo; ids echoed verbatim),
 * errors and their codes (BAD_REQUEST, UNKNOWN_CHANNEL, UNKNOWN_TYPE,
 * TOO_MANY_SUBSCRIPTIONS) leaving nothing behind, unsubscribe and list,
 * ping, refresh, "snapshot":true, the action dialect, "resume" served from
 * the history, and the upgrade's query (parsing and applying: channels,
 * format=msgpack, type=tui|web, interval, snapshot, resume=).
 * INVALID_JSON and the rate limit are the session layer's (not here);
 * resume from Kafka needs a consumer (test_hub.c drives its gates). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "peer.h"

#include "clock.h"
#include "conflate.h"
#include "hub.h"
#include "json_parse.h"
#include "log.h"
#include "msgpack.h"
#include "proto.h"
#include "state.h"

static const char *const routes[] = {
	"trades=market:trade_data",
	"candles=market:candle",
	"misc",
	"ticks",
	"rp=rpc",
	"^rx-.*",
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
#define MAX_SUBS 4    /* --max-subscriptions for this program */

/* ---- clients ------------------------------------------------------------------ */

static void tc_free(struct tc *t)
{
	proto_client_gone(t->c);
	peer_forget(t->c);
	client_free(t->c);
	peer_close(t->fd);
}

/* One client message, as session.c hands it over: parsed, an object, its
 * "id" the raw text of the member (quotes included for strings). */
static void ask(struct client *c, const char *text)
{
	struct json_tok tok[512];
	size_t len = strlen(text);
	int n = json_parse(text, len, tok, 512, 16);
	if (n <= 0 || tok[0].type != JSON_OBJECT) {
		CHECKF(0, "test message is not a JSON object: %s", text);
		return;
	}
	struct msg_ctx m = { .c = c, .src = text, .tok = tok, .ntok = n };
	int t = json_obj_get(text, tok, 0, "id");
	if (t >= 0) {
		int q = tok[t].type == JSON_STRING;
		m.id = text + tok[t].start - q;
		m.id_len = tok[t].len + 2 * (size_t)q;
	}
	proto_handle(&m);
}

/* ---- what the peer receives ---------------------------------------------------- */

/* Asks and expects exactly one reply, returned in *out (free out->data). */
static int ask1(struct tc *t, const char *text, struct pframe *out)
{
	struct pframe f[16];
	ask(t->c, text);
	int n = peer_recv_json(t->fd, f, 16);
	if (n != 1) {
		CHECKF(n == 1, "%s: %d replies%s%s", text, n, n > 0 ? ", first " : "", n > 0 ? f[0].data : "");
		peer_frames_free(f, n);
		out->data = NULL;
		out->len = 0;
		return 0;
	}
	*out = f[0];
	return 1;
}

/* Asks and expects exactly one reply whose text is want. */
static void ask_exact(struct tc *t, const char *text, const char *want)
{
	struct pframe r;
	if (!ask1(t, text, &r)) return;
	CHECKF(strcmp(r.data, want) == 0, "%s: got %s, want %s", text, r.data, want);
	free(r.data);
}

/* Asks and expects one error of code with the request's id (raw, or NULL:
 * none) and a message containing `about` (NULL: any non-empty one). */
static void ask_error(struct tc *t, const char *text, const char *code, const char *id, const char *about)
{
	struct pframe r;
	if (!ask1(t, text, &r)) return;
	char want_code[64];
	snprintf(want_code, sizeof(want_code), "\"%s\"", code);
	size_t ml;
	const char *msg = pframe_field(&r, "message", &ml);
	CHECKF(pframe_is(&r, "type", "\"error\"") && pframe_is(&r, "code", want_code) && msg && ml > 2 && msg[0] == '"',
	       "%s: got %s, want %s", text, r.data, code);
	CHECKF(id ? pframe_is(&r, "id", id) : !pframe_has_field(&r, "id"), "%s: got %s, want id %s", text, r.data, id ? id : "none");
	if (about) CHECKF(strstr(r.data, about) != NULL, "%s: got %s, want it to mention %s", text, r.data, about);
	free(r.data);
}

/* The ack of a subscribe: id, channels and subscription as raw JSON. */
static void check_ack(const struct pframe *r, const char *what, const char *id, const char *channels, const char *subscription)
{
	CHECKF(pframe_is(r, "type", "\"ack\"") && pframe_is(r, "action", "\"subscribe\""), "%s: %s", what, r->data);
	CHECKF(id ? pframe_is(r, "id", id) : !pframe_has_field(r, "id"), "%s: id in %s", what, r->data);
	CHECKF(pframe_is(r, "channels", channels), "%s: channels in %s, want %s", what, r->data, channels);
	CHECKF(pframe_is(r, "subscription", subscription), "%s: subscription in %s, want %s", what, r->data, subscription);
	CHECKF(pframe_is(r, "positions", "{}") && !pframe_has_field(r, "removed"), "%s: positions in %s", what, r->data);
}

static void ask_ack(struct tc *t, const char *text, const char *id, const char *channels, const char *subscription)
{
	struct pframe r;
	if (!ask1(t, text, &r)) return;
	check_ack(&r, text, id, channels, subscription);
	free(r.data);
}

static int route(const char *topic, int32_t p, int64_t off, const char *key, const char *val)
{
	struct record r = peer_record(topic, p, off, key, val, -1);
	return hub_route(&r);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_ping(void)
{
	struct tc a = tc_new(0);
	ask_exact(&a, "{\"type\":\"ping\"}", "{\"type\":\"pong\"}");
	/* The id comes back verbatim, whatever JSON value it is. */
	static const char *const ids[] = {
		"\"abc\"", "\"\"", "\"\\u00e9\\\"x\"", "0", "-7", "12345678901", "1.5e3", "true", "null",
		"{\"a\":[1,2]}", "[1,\"x\"]", "{ \"sp\" : [ ] }",
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char msg[128], want[128];
		snprintf(msg, sizeof(msg), "{\"id\":%s,\"type\":\"ping\"}", ids[i]);
		snprintf(want, sizeof(want), "{\"type\":\"pong\",\"id\":%s}", ids[i]);
		ask_exact(&a, msg, want);
	}
	ask_exact(&a, "{\"action\":\"ping\",\"id\":\"p1\"}", "{\"type\":\"pong\",\"id\":\"p1\"}");
	tc_free(&a);
}

static void test_subscribe_native(void)
{
	struct tc a = tc_new(0), b = tc_new(0), c = tc_new(0), d = tc_new(0);
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"id\":1}", "1", "[\"market\"]", "{}");
	CHECK(a.c->nsubs == 1);
	/* Asked again: acked, not added twice. */
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\"}", NULL, "[\"market\"]", "{}");
	CHECK(a.c->nsubs == 1);
	/* channels, a channel named twice, and a key; the id as a string. */
	ask_ack(&b, "{\"type\":\"subscribe\",\"channels\":[\"misc\",\"market\",\"misc\"],\"key\":\"BTC\",\"id\":\"s2\"}",
		"\"s2\"", "[\"misc\",\"market\"]", "{\"key\":\"BTC\"}");
	CHECK(b.c->nsubs == 2);
	/* channel and channels together. */
	ask_ack(&b, "{\"type\":\"subscribe\",\"channel\":\"ticks\",\"channels\":[\"misc\"]}", NULL,
		"[\"ticks\",\"misc\"]", "{}");
	CHECK(b.c->nsubs == 4);
	/* keys and a filter of every scalar kind, echoed; the id an object. */
	ask_ack(&c, "{\"type\":\"subscribe\",\"channel\":\"market\",\"keys\":[\"a\",\"b\\u0063\"],"
		"\"filter\":{\"qty\":5,\"side\":\"buy\",\"sym\":\"A\\\"B\",\"x\":null,\"t\":true,\"f\":1.50},\"id\":{\"n\":7}}",
		"{\"n\":7}", "[\"market\"]",
		"{\"keys\":[\"a\",\"bc\"],\"filter\":{\"qty\":5,\"side\":\"buy\",\"sym\":\"A\\\"B\",\"x\":null,\"t\":true,\"f\":1.50}}");
	/* "*" as a key: every record, null keys included. */
	ask_ack(&d, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"key\":\"*\"}", NULL, "[\"misc\"]", "{\"key\":\"*\"}");
	ask_ack(&d, "{\"type\":\"subscribe\",\"channel\":\"ticks\",\"keys\":[\"x\",\"*\"]}", NULL, "[\"ticks\"]",
		"{\"keys\":[\"x\",\"*\"]}");
	/* Intervals at both ends of the range are accepted. */
	ask_ack(&d, "{\"type\":\"subscribe\",\"channel\":\"rx-iv\",\"interval\":0}", NULL, "[\"rx-iv\"]", "{}");
	ask_ack(&d, "{\"type\":\"subscribe\",\"channel\":\"rx-iv\",\"interval\":3600000}", NULL, "[\"rx-iv\"]", "{}");
	CHECK(d.c->nsubs == 3);   /* the same subscription: its interval updated */

	/* What each one gets. */
	route("trades", 0, 0, "BTC", "{\"qty\":5,\"side\":\"buy\",\"sym\":\"A\\\"B\",\"x\":null,\"t\":true,\"f\":1.5}");
	route("candles", 0, 1, "a", "{\"qty\":5.0,\"side\":\"buy\",\"sym\":\"A\\u0022B\",\"x\":null,\"t\":true,\"f\":15e-1}");
	route("candles", 0, 2, "bc", "{\"qty\":\"5\",\"side\":\"buy\",\"sym\":\"A\\\"B\",\"x\":null,\"t\":true,\"f\":1.5}");
	route("misc", 0, 3, NULL, "{}");
	route("misc", 0, 4, "BTC", "{}");
	route("ticks", 0, 5, NULL, "{}");
	CHECK_OFFS(a.fd, 0, 1, 2);
	CHECK_OFFS(b.fd, 0, 3, 4, 5);
	CHECK_OFFS(c.fd, 1);
	CHECK_OFFS(d.fd, 3, 4, 5);
	tc_free(&a); tc_free(&b); tc_free(&c); tc_free(&d);
}

static void test_errors(void)
{
	struct tc a = tc_new(0);
	static const char *const bad[] = {
		"{\"type\":\"subscribe\",\"id\":1}",
		"{\"type\":\"subscribe\",\"key\":\"BTC\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":5,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":null,\"id\":1}",
		"{\"type\":\"subscribe\",\"channels\":\"misc\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channels\":[1,2],\"id\":1}",
		"{\"type\":\"subscribe\",\"channels\":[\"misc\",[\"market\"]],\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"key\":5,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"keys\":\"BTC\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"keys\":[],\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"keys\":[\"a\",1],\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"filter\":\"side\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"filter\":[\"side\"],\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"filter\":{\"side\":{\"a\":1}},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"filter\":{\"qty\":5,\"side\":[\"buy\"]},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"interval\":-1,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"interval\":3600001,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"interval\":\"100\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"interval\":1.5,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"snapshot\":1,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"snapshot\":\"yes\",\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"market\",\"snapshot\":null,\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":[1],\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp\":1},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:x\":1},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:-1\":1},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:0\":-2},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:0\":\"5\"},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:0\":1.5},\"id\":1}",
		"{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:0\":1,\"rp:1\":null},\"id\":1}",
		"{\"type\":\"unsubscribe\",\"id\":1}",
		"{\"type\":\"unsubscribe\",\"channel\":\"market\",\"key\":7,\"id\":1}",
		"{\"type\":\"refresh\",\"channel\":5,\"id\":1}",
		"{\"type\":5,\"id\":1}",
		"{\"type\":null,\"id\":1}",
		"{\"type\":[\"ping\"],\"id\":1}",
		"{\"action\":7,\"id\":1}",
		"{\"id\":1}",
		"{\"action\":\"subscribe\",\"symbol\":{\"a\":1},\"id\":1}",
		"{\"action\":\"subscribe\",\"symbol\":[\"BTC\"],\"id\":1}",
		"{\"action\":\"subscribe\",\"channel\":5,\"id\":1}",
		"{\"action\":\"subscribe\",\"type\":5,\"id\":1}",
		"{\"action\":\"subscribe\",\"type\":null,\"id\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) ask_error(&a, bad[i], "BAD_REQUEST", "1", NULL);
	/* Specific reasons. */
	ask_error(&a, "{\"type\":\"subscribe\"}", "BAD_REQUEST", NULL, "channel");
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"interval\":-1}", "BAD_REQUEST", NULL, "interval");
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"snapshot\":1}", "BAD_REQUEST", NULL, "snapshot");
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp\":1}}", "BAD_REQUEST", NULL, "resume");
	/* More than 64 channels in one request. */
	char many[2048] = "{\"type\":\"subscribe\",\"id\":\"m\",\"channels\":[";
	for (int i = 0; i < 65; i++) strcat(many, i ? ",\"misc\"" : "\"misc\"");
	strcat(many, "]}");
	ask_error(&a, many, "BAD_REQUEST", "\"m\"", "64");

	/* Channels no route produces, named in the message. */
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"nope\",\"id\":\"u\"}", "UNKNOWN_CHANNEL", "\"u\"", "nope");
	ask_error(&a, "{\"type\":\"subscribe\",\"channels\":[\"market\",\"no-such\"],\"id\":2}", "UNKNOWN_CHANNEL", "2", "no-such");
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"trades\"}", "UNKNOWN_CHANNEL", NULL, "trades");
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"\"}", "UNKNOWN_CHANNEL", NULL, NULL);
	ask_error(&a, "{\"type\":\"unsubscribe\",\"channel\":\"nope\",\"id\":3}", "UNKNOWN_CHANNEL", "3", "nope");
	ask_error(&a, "{\"type\":\"refresh\",\"channel\":\"nope\",\"id\":9}", "UNKNOWN_CHANNEL", "9", "nope");
	ask_error(&a, "{\"action\":\"subscribe\",\"channel\":\"nope\"}", "UNKNOWN_CHANNEL", NULL, "nope");

	/* Types and actions nobody knows; those of the other dialect. */
	ask_error(&a, "{\"type\":\"frobnicate\",\"id\":9}", "UNKNOWN_TYPE", "9", NULL);
	ask_error(&a, "{\"type\":\"PING\",\"id\":9}", "UNKNOWN_TYPE", "9", NULL);
	ask_error(&a, "{\"type\":\"\"}", "UNKNOWN_TYPE", NULL, NULL);
	ask_error(&a, "{\"action\":\"bogus\",\"id\":\"x\"}", "UNKNOWN_TYPE", "\"x\"", NULL);
	ask_error(&a, "{\"action\":\"refresh\"}", "UNKNOWN_TYPE", NULL, NULL);
	ask_error(&a, "{\"action\":\"list\"}", "UNKNOWN_TYPE", NULL, NULL);

	/* None of it subscribed anything, and the connection still works. */
	CHECK(a.c->nsubs == 0 && a.c->subs == NULL);
	ask_exact(&a, "{\"type\":\"list\"}", "{\"type\":\"subscriptions\",\"subscriptions\":[]}");
	route("trades", 0, 10, "BTC", "{}");
	route("misc", 0, 10, "BTC", "{}");
	CHECK_NONE(a.fd);
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\"}", NULL, "[\"misc\"]", "{}");
	route("misc", 0, 11, "BTC", "{}");
	CHECK_OFFS(a.fd, 11);
	tc_free(&a);
	proto_tick();   /* "nope"-like names left nothing; regex-named ones are collected */
}

static void test_too_many_subscriptions(void)
{
	struct tc a = tc_new(0);
	ask_ack(&a, "{\"type\":\"subscribe\",\"channels\":[\"market\",\"misc\",\"ticks\"]}", NULL,
		"[\"market\",\"misc\",\"ticks\"]", "{}");
	/* Two more would pass the limit: neither is added. */
	ask_error(&a, "{\"type\":\"subscribe\",\"channels\":[\"rx-a\",\"rx-b\"],\"id\":\"x\"}", "TOO_MANY_SUBSCRIPTIONS", "\"x\"", "4");
	CHECK(a.c->nsubs == 3);
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"rx-a\"}", NULL, "[\"rx-a\"]", "{}");
	CHECK(a.c->nsubs == MAX_SUBS);
	ask_error(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"key\":\"ETH\",\"id\":\"x\"}", "TOO_MANY_SUBSCRIPTIONS", "\"x\"", NULL);
	ask_error(&a, "{\"action\":\"subscribe\",\"symbol\":\"*\",\"id\":\"y\"}", "TOO_MANY_SUBSCRIPTIONS", "\"y\"", NULL);
	CHECK(a.c->nsubs == MAX_SUBS);
	/* Room again after an unsubscribe. */
	struct pframe r;
	if (ask1(&a, "{\"type\":\"unsubscribe\",\"channel\":\"ticks\"}", &r)) {
		CHECK(pframe_is(&r, "type", "\"ack\"") && pframe_is(&r, "removed", "1"));
		free(r.data);
	}
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"key\":\"ETH\"}", NULL, "[\"market\"]", "{\"key\":\"ETH\"}");
	CHECK(a.c->nsubs == MAX_SUBS);
	tc_free(&a);
}

static void test_unsubscribe_and_list(void)
{
	struct tc a = tc_new(0);
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\"}", NULL, "[\"market\"]", "{}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\",\"key\":\"BTC\"}", NULL, "[\"market\"]", "{\"key\":\"BTC\"}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"filter\":{\"a\":1}}", NULL, "[\"misc\"]", "{\"filter\":{\"a\":1}}");
	ask_exact(&a, "{\"type\":\"list\",\"id\":3}",
		  "{\"type\":\"subscriptions\",\"id\":3,\"subscriptions\":["
		  "{\"channel\":\"market\",\"subscription\":{}},"
		  "{\"channel\":\"market\",\"subscription\":{\"key\":\"BTC\"}},"
		  "{\"channel\":\"misc\",\"subscription\":{\"filter\":{\"a\":1}}}]}");
	/* One subscription, named by its filter. */
	ask_exact(&a, "{\"type\":\"unsubscribe\",\"channel\":\"market\",\"key\":\"BTC\",\"id\":5}",
		  "{\"type\":\"ack\",\"id\":5,\"action\":\"unsubscribe\",\"channels\":[\"market\"],"
		  "\"subscription\":{\"key\":\"BTC\"},\"removed\":1}");
	ask_exact(&a, "{\"type\":\"unsubscribe\",\"channel\":\"market\",\"key\":\"BTC\"}",
		  "{\"type\":\"ack\",\"action\":\"unsubscribe\",\"channels\":[\"market\"],"
		  "\"subscription\":{\"key\":\"BTC\"},\"removed\":0}");
	/* A filter that differs removes nothing. */
	ask_exact(&a, "{\"type\":\"unsubscribe\",\"channel\":\"misc\",\"filter\":{\"a\":2}}",
		  "{\"type\":\"ack\",\"action\":\"unsubscribe\",\"channels\":[\"misc\"],"
		  "\"subscription\":{\"filter\":{\"a\":2}},\"removed\":0}");
	route("trades", 1, 0, "BTC", "{}");
	CHECK_OFFS(a.fd, 0);
	/* Without a filter: every subscription on the channels named. */
	ask_exact(&a, "{\"type\":\"unsubscribe\",\"channels\":[\"market\",\"misc\"]}",
		  "{\"type\":\"ack\",\"action\":\"unsubscribe\",\"channels\":[\"market\",\"misc\"],"
		  "\"subscription\":{},\"removed\":2}");
	ask_exact(&a, "{\"type\":\"list_subscriptions\"}", "{\"type\":\"subscriptions\",\"subscriptions\":[]}");
	route("trades", 1, 1, "BTC", "{\"a\":1}");
	route("misc", 1, 1, "BTC", "{\"a\":1}");
	CHECK_NONE(a.fd);

	/* The action dialect: list_subscriptions; unsubscribe by its filter, or
	 * of everything when it names no channel and no filter. */
	ask_ack(&a, "{\"action\":\"subscribe\",\"type\":\"candle\",\"symbol\":\"*\",\"id\":\"two\"}", "\"two\"", "[\"*\"]",
		"{\"type\":\"candle\",\"symbol\":\"*\"}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\"}", NULL, "[\"misc\"]", "{}");
	ask_exact(&a, "{\"action\":\"list_subscriptions\",\"id\":4}",
		  "{\"type\":\"subscriptions\",\"id\":4,\"subscriptions\":["
		  "{\"channel\":\"*\",\"subscription\":{\"type\":\"candle\",\"symbol\":\"*\"}},"
		  "{\"channel\":\"misc\",\"subscription\":{}}]}");
	ask_exact(&a, "{\"action\":\"unsubscribe\",\"type\":\"candle\",\"symbol\":\"*\",\"id\":6}",
		  "{\"type\":\"ack\",\"id\":6,\"action\":\"unsubscribe\",\"channels\":[\"*\"],"
		  "\"subscription\":{\"type\":\"candle\",\"symbol\":\"*\"},\"removed\":1}");
	CHECK(a.c->nsubs == 1);
	ask_ack(&a, "{\"action\":\"subscribe\",\"symbol\":\"BTC\"}", NULL, "[\"*\"]", "{\"symbol\":\"BTC\"}");
	ask_exact(&a, "{\"action\":\"unsubscribe\"}",
		  "{\"type\":\"ack\",\"action\":\"unsubscribe\",\"channels\":[\"*\"],\"subscription\":{},\"removed\":2}");
	CHECK(a.c->nsubs == 0);
	tc_free(&a);
}

/* The snapshot frames among f[0..n): checks each is the snapshot of the
 * next expected channel with id, and returns how many there were. */
static int check_snapshots(const struct pframe *f, int n, const char *id, const char *const *channels, const char *what)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (!pframe_is(&f[i], "type", "\"snapshot\"")) continue;
		char want[64];
		snprintf(want, sizeof(want), "\"%s\"", channels[k] ? channels[k] : "");
		CHECKF(channels[k] && pframe_is(&f[i], "channel", want), "%s: snapshot %d: %s", what, k, f[i].data);
		CHECKF(id ? pframe_is(&f[i], "id", id) : !pframe_has_field(&f[i], "id"), "%s: snapshot id: %s", what, f[i].data);
		CHECKF(pframe_has_field(&f[i], "seq") && pframe_has_field(&f[i], "data"), "%s: %s", what, f[i].data);
		if (channels[k]) k++;
	}
	return k;
}

static void test_refresh(void)
{
	route("misc", 2, 0, "a", "{\"v\":1}");
	route("misc", 2, 1, "b", "{\"v\":2}");
	route("misc", 2, 2, "a", "{\"v\":3}");
	uint64_t misc_seq = 0;
	{
		const char *n;
		uint32_t s;
		uint64_t q;
		for (size_t i = 0; hub_channel_next(&i, &n, &s, &q);)
			if (strcmp(n, "misc") == 0) misc_seq = q;
	}
	struct tc a = tc_new(0);
	/* A named channel, subscribed or not. */
	struct pframe r;
	if (ask1(&a, "{\"type\":\"refresh\",\"channel\":\"misc\",\"id\":5}", &r)) {
		CHECK(pframe_is(&r, "type", "\"snapshot\"") && pframe_is(&r, "id", "5") && pframe_is(&r, "channel", "\"misc\""));
		CHECK(pframe_int(&r, "seq") == (int64_t)misc_seq && misc_seq >= 3);
		size_t dl;
		const char *d = pframe_field(&r, "data", &dl), *v;
		size_t vl;
		CHECK(d && json_top_field(d, dl, "a", 1, &v, &vl) && json_value_eq(v, vl, "{\"v\":3}", 7));
		CHECK(d && json_top_field(d, dl, "b", 1, &v, &vl) && json_value_eq(v, vl, "{\"v\":2}", 7));
		free(r.data);
	}
	/* Without a channel and without a subscription: nothing to refresh. */
	ask_error(&a, "{\"type\":\"refresh\",\"id\":6}", "BAD_REQUEST", "6", NULL);
	/* A channel-less subscription does not name one either. */
	ask_ack(&a, "{\"action\":\"subscribe\"}", NULL, "[\"*\"]", "{}");
	ask_error(&a, "{\"type\":\"refresh\"}", "BAD_REQUEST", NULL, NULL);
	/* Without a channel: each subscribed channel once, in order. */
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\"}", NULL, "[\"misc\"]", "{}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"rx-ref\"}", NULL, "[\"rx-ref\"]", "{}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"key\":\"a\"}", NULL, "[\"misc\"]", "{\"key\":\"a\"}");
	ask(a.c, "{\"type\":\"refresh\",\"id\":77}");
	struct pframe f[8];
	int n = peer_recv_json(a.fd, f, 8);
	CHECKF(n == 2 && check_snapshots(f, n, "77", (const char *const[]){ "misc", "rx-ref", NULL }, "refresh") == 2,
	       "%d frames", n);
	if (n == 2) CHECK(pframe_int(&f[1], "seq") == 0 && pframe_is(&f[1], "data", "{}"));
	peer_frames_free(f, n);
	/* Named channels, in the order named. */
	ask(a.c, "{\"type\":\"refresh\",\"channels\":[\"rx-ref\",\"market\"]}");
	n = peer_recv_json(a.fd, f, 8);
	CHECKF(n == 2 && check_snapshots(f, n, NULL, (const char *const[]){ "rx-ref", "market", NULL }, "refresh") == 2,
	       "%d frames", n);
	peer_frames_free(f, n);
	tc_free(&a);

	/* A snapshot covers what conflation held back: it is not sent after. */
	struct tc b = tc_new(0);
	ask_ack(&b, "{\"type\":\"subscribe\",\"channel\":\"rx-rc\",\"interval\":1000}", NULL, "[\"rx-rc\"]", "{}");
	int64_t now = clock_now();
	route("rx-rc", 0, 0, "k", "{\"v\":0}");
	route("rx-rc", 0, 1, "k", "{\"v\":1}");    /* held */
	CHECK_OFFS(b.fd, 0);
	if (ask1(&b, "{\"type\":\"refresh\",\"channel\":\"rx-rc\"}", &r)) {
		CHECK(pframe_is(&r, "type", "\"snapshot\"") && pframe_int(&r, "seq") == 2 && pframe_is(&r, "data", "{\"k\":{\"v\":1}}"));
		free(r.data);
	}
	conflate_service(now + 1000);
	CHECK_NONE(b.fd);
	tc_free(&b);
}

static void test_subscribe_snapshot(void)
{
	route("rx-ss", 0, 0, "k", "{\"v\":1}");
	struct tc a = tc_new(0);
	ask(a.c, "{\"type\":\"subscribe\",\"channels\":[\"rx-ss\",\"ticks\"],\"snapshot\":true,\"id\":\"s\"}");
	struct pframe f[8];
	int n = peer_recv_json(a.fd, f, 8);
	CHECKF(n == 3, "%d frames", n);
	if (n == 3) {
		check_ack(&f[0], "snapshot:true", "\"s\"", "[\"rx-ss\",\"ticks\"]", "{}");
		CHECK(check_snapshots(f, n, "\"s\"", (const char *const[]){ "rx-ss", "ticks", NULL }, "snapshot:true") == 2);
		CHECK(pframe_int(&f[1], "seq") == 1 && pframe_is(&f[1], "data", "{\"k\":{\"v\":1}}"));
	}
	peer_frames_free(f, n);
	/* "snapshot": false, or not asked: the ack only. */
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"snapshot\":false}", NULL, "[\"misc\"]", "{}");
	ask_ack(&a, "{\"type\":\"subscribe\",\"channel\":\"market\"}", NULL, "[\"market\"]", "{}");
	tc_free(&a);

	/* A connection that asked for snapshots on the upgrade gets one after
	 * every subscribe, unless the subscribe says "snapshot": false. */
	struct tc b = tc_new(0);
	b.c->snapshots = 1;
	ask(b.c, "{\"type\":\"subscribe\",\"channel\":\"rx-ss\",\"id\":\"d\"}");
	n = peer_recv_json(b.fd, f, 8);
	CHECKF(n == 2 && pframe_is(&f[0], "type", "\"ack\"") &&
	       check_snapshots(f, n, "\"d\"", (const char *const[]){ "rx-ss", NULL }, "snapshots=1") == 1, "%d frames", n);
	peer_frames_free(f, n);
	ask_ack(&b, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"snapshot\":false}", NULL, "[\"misc\"]", "{}");
	/* The action dialect has no "snapshot" member (it would be a field
	 * filter) but the connection's setting applies to named channels. */
	ask(b.c, "{\"action\":\"subscribe\",\"channel\":\"ticks\"}");
	n = peer_recv_json(b.fd, f, 8);
	CHECKF(n == 2 && pframe_is(&f[0], "type", "\"ack\"") &&
	       check_snapshots(f, n, NULL, (const char *const[]){ "ticks", NULL }, "action") == 1, "%d frames", n);
	peer_frames_free(f, n);
	tc_free(&b);
}

static void test_action_dialect(void)
{
	struct tc all = tc_new(0), typed = tc_new(0), narrow = tc_new(0), anytype = tc_new(0);
	ask_ack(&all, "{\"action\":\"subscribe\",\"id\":\"a\"}", "\"a\"", "[\"*\"]", "{}");
	CHECK(all.c->nsubs == 1 && all.c->subs->ch == NULL);
	ask_ack(&typed, "{\"action\":\"subscribe\",\"type\":\"candle\",\"symbol\":\"BTC\",\"id\":1}", "1", "[\"*\"]",
		"{\"type\":\"candle\",\"symbol\":\"BTC\"}");
	ask_ack(&narrow, "{\"action\":\"subscribe\",\"channel\":\"misc\",\"symbol\":\"*\"}", NULL, "[\"misc\"]",
		"{\"symbol\":\"*\"}");
	ask_ack(&anytype, "{\"action\":\"subscribe\",\"type\":\"*\",\"qty\":5}", NULL, "[\"*\"]", "{\"type\":\"*\",\"qty\":5}");
	route("trades", 3, 0, "BTC", "{\"symbol\":\"BTC\",\"qty\":5}");
	route("candles", 3, 1, "BTC", "{\"symbol\":\"BTC\",\"qty\":5.0}");
	route("candles", 3, 2, "ETH", "{\"symbol\":\"ETH\",\"qty\":\"5\"}");
	route("misc", 3, 3, NULL, "{\"symbol\":\"BTC\"}");
	route("misc", 3, 4, NULL, "{\"other\":1}");
	route("ticks", 3, 5, NULL, "[]");
	CHECK_OFFS(all.fd, 0, 1, 2, 3, 4, 5);
	CHECK_OFFS(typed.fd, 1);
	CHECK_OFFS(narrow.fd, 3);
	CHECK_OFFS(anytype.fd, 0, 1);
	/* Messages name the route's type and channel. */
	route("candles", 3, 6, "BTC", "{\"symbol\":\"BTC\"}");
	struct pframe r[2];
	int n = peer_recv_json(typed.fd, r, 2);
	CHECK(n == 1 && pframe_is(&r[0], "type", "\"candle\"") && pframe_is(&r[0], "channel", "\"market\"") && pframe_int(&r[0], "offset") == 6);
	peer_frames_free(r, n);
	CHECK_OFFS(all.fd, 6);
	tc_free(&all); tc_free(&typed); tc_free(&narrow); tc_free(&anytype);
}

static void test_resume(void)
{
	for (int64_t o = 0; o < 6; o++) route("rp", 0, o, o % 2 ? "k2" : "k1", "{}");   /* seq 1..6 */
	for (int64_t o = 0; o < 3; o++) route("rp", 1, o, "k1", "{}");                   /* seq 7..9 */
	struct tc a = tc_new(0);
	ask(a.c, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:0\":2,\"rp:1\":-1},\"id\":\"r\"}");
	struct pframe f[16];
	int n = peer_recv_json(a.fd, f, 16);
	static const int64_t want_off[] = { 3, 4, 5, 0, 1, 2 }, want_seq[] = { 4, 5, 6, 7, 8, 9 };
	CHECKF(n == 7, "%d frames", n);
	if (n == 7) {
		/* The ack first, then what was missed, with its seq. */
		check_ack(&f[0], "resume", "\"r\"", "[\"rpc\"]", "{}");
		for (int i = 0; i < 6; i++)
			CHECKF(pframe_int(&f[i + 1], "offset") == want_off[i] && pframe_int(&f[i + 1], "seq") == want_seq[i] &&
			       pframe_int(&f[i + 1], "partition") == (i < 3 ? 0 : 1), "frame %d: %s", i + 1, f[i + 1].data);
	}
	peer_frames_free(f, n);
	/* Then live. */
	route("rp", 0, 6, "k1", "{}");
	CHECK_OFFS(a.fd, 6);

	/* Only what the subscription wants is replayed. */
	struct tc b = tc_new(0);
	ask(b.c, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"key\":\"k2\",\"resume\":{\"rp:0\":-1}}");
	n = peer_recv_json(b.fd, f, 16);
	CHECKF(n == 4 && pframe_is(&f[0], "type", "\"ack\"") && pframe_int(&f[1], "offset") == 1 && pframe_int(&f[2], "offset") == 3 &&
	       pframe_int(&f[3], "offset") == 5, "%d frames", n);
	peer_frames_free(f, n);

	/* A resume of a topic no route consumes: the subscription stands, the
	 * resume is refused after the ack. */
	struct tc c = tc_new(0);
	ask(c.c, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"nope:0\":1},\"id\":9}");
	n = peer_recv_json(c.fd, f, 16);
	CHECKF(n == 2 && pframe_is(&f[0], "type", "\"ack\"") && pframe_is(&f[1], "type", "\"error\"") &&
	       pframe_is(&f[1], "code", "\"BAD_REQUEST\"") && pframe_is(&f[1], "id", "9") && strstr(f[1].data, "nope:0"),
	       "%d frames: %s", n, n > 1 ? f[1].data : "");
	peer_frames_free(f, n);
	CHECK(c.c->nsubs == 1);

	/* A snapshot is not sent before a resume unless asked for. */
	struct tc d = tc_new(0);
	d.c->snapshots = 1;
	ask(d.c, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"resume\":{\"rp:1\":1}}");
	n = peer_recv_json(d.fd, f, 16);
	CHECKF(n == 2 && pframe_is(&f[0], "type", "\"ack\"") && pframe_int(&f[1], "offset") == 2, "%d frames", n);
	peer_frames_free(f, n);
	ask(d.c, "{\"type\":\"subscribe\",\"channel\":\"rpc\",\"key\":\"k1\",\"snapshot\":true,\"resume\":{\"rp:1\":1}}");
	n = peer_recv_json(d.fd, f, 16);
	CHECKF(n == 3 && pframe_is(&f[0], "type", "\"ack\"") && pframe_is(&f[1], "type", "\"snapshot\"") && pframe_int(&f[2], "offset") == 2,
	       "%d frames", n);
	peer_frames_free(f, n);
	tc_free(&a); tc_free(&b); tc_free(&c); tc_free(&d);
}

/* proto_upgrade_parse must refuse q with a reason mentioning about. */
static void parse_bad(const char *q, const char *about)
{
	struct upgrade_opts o;
	char err[256] = "";
	int rc = proto_upgrade_parse(q, strlen(q), &o, err, sizeof(err));
	CHECKF(rc == -1 && err[0] && (!about || strstr(err, about)), "%s: rc %d, err \"%s\", want it to mention %s",
	       q, rc, err, about ? about : "anything");
}

static int parse_ok(const char *q, struct upgrade_opts *o)
{
	char err[256] = "";
	int rc = proto_upgrade_parse(q, strlen(q), o, err, sizeof(err));
	CHECKF(rc == 0, "%s: %s", q, err);
	return rc == 0;
}

static void test_upgrade_parse(void)
{
	struct upgrade_opts o;
	if (parse_ok("", &o))
		CHECK(o.channels[0] == 0 && !o.msgpack && o.interval_ms == 0 && !o.snapshot && o.nresume == 0);
	if (parse_ok("channel=market", &o)) CHECK(strcmp(o.channels, "market") == 0);
	if (parse_ok("channels=market,misc&channel=ticks", &o)) CHECK(strcmp(o.channels, "ticks,market,misc") == 0);
	if (parse_ok("channels=market%2Cmisc", &o)) CHECK(strcmp(o.channels, "market,misc") == 0);
	if (parse_ok("channel=rx-new&foo=bar", &o)) CHECK(strcmp(o.channels, "rx-new") == 0);
	parse_bad("channel=nope", "nope");
	parse_bad("channels=market,no-such", "no-such");
	parse_bad("channel=trades", "trades");
	parse_bad("channel=%zz", "channel");

	if (parse_ok("format=msgpack", &o)) CHECK(o.msgpack == 1);
	if (parse_ok("format=json", &o)) CHECK(o.msgpack == 0);
	parse_bad("format=xml", "format");
	parse_bad("format=", "format");

	/* type=tui|web: the state dialect, with its period; interval= alone
	 * is conflation of records. */
	if (parse_ok("type=tui", &o)) CHECK(o.state == 1 && o.interval_ms == 100);
	if (parse_ok("type=web", &o)) CHECK(o.state == 1 && o.interval_ms == 250);
	if (parse_ok("type=tui&interval=5", &o)) CHECK(o.state == 1 && o.interval_ms == 5);
	if (parse_ok("interval=7&type=web&snapshot=0", &o)) CHECK(o.state == 1 && o.interval_ms == 7 && o.snapshot == 0);
	if (parse_ok("interval=7", &o)) CHECK(o.state == 0 && o.interval_ms == 7);
	parse_bad("type=cli", "type");
	parse_bad("type=web&channel=rx-up&resume=rx-up:0:5", "resume");

	if (parse_ok("interval=0", &o)) CHECK(o.interval_ms == 0);
	if (parse_ok("interval=3600000", &o)) CHECK(o.interval_ms == 3600000);
	static const char *const bad_iv[] = { "interval=3600001", "interval=-1", "interval=abc", "interval=",
					      "interval=10ms", "interval=1.5" };
	for (size_t i = 0; i < sizeof(bad_iv) / sizeof(bad_iv[0]); i++) parse_bad(bad_iv[i], "interval");

	if (parse_ok("snapshot=1", &o)) CHECK(o.snapshot == 1);
	if (parse_ok("snapshot=true", &o)) CHECK(o.snapshot == 1);
	if (parse_ok("snapshot=false", &o)) CHECK(o.snapshot == 0);
	if (parse_ok("type=tui&snapshot=0", &o)) CHECK(o.snapshot == 0 && o.interval_ms == 100);
	parse_bad("snapshot=yes", "snapshot");

	if (parse_ok("channel=rpc&resume=rp:0:5,rp:1:-1,md.x-y:12:0", &o)) {
		CHECK(o.nresume == 3);
		CHECK(strcmp(o.rtopics[0], "rp") == 0 && o.rparts[0] == 0 && o.rlast[0] == 5);
		CHECK(strcmp(o.rtopics[1], "rp") == 0 && o.rparts[1] == 1 && o.rlast[1] == -1);
		CHECK(strcmp(o.rtopics[2], "md.x-y") == 0 && o.rparts[2] == 12 && o.rlast[2] == 0);
	}
	parse_bad("resume=rp:0:5", "channel");
	static const char *const bad_res[] = {
		"channel=rpc&resume=rp:0", "channel=rpc&resume=rp:x:5", "channel=rpc&resume=rp:0:-2",
		"channel=rpc&resume=rp:0:", "channel=rpc&resume=rp:0:5x", "channel=rpc&resume=rp",
		"channel=rpc&resume=rp:0:5,rp", "channel=rpc&resume=:0:5",
	};
	for (size_t i = 0; i < sizeof(bad_res) / sizeof(bad_res[0]); i++) parse_bad(bad_res[i], "resume");
	/* At most PROTO_RESUME_MAX partitions. */
	char q[1024] = "channel=rpc&resume=";
	for (int i = 0; i < PROTO_RESUME_MAX; i++) snprintf(q + strlen(q), sizeof(q) - strlen(q), "%srp:%d:1", i ? "," : "", i);
	if (parse_ok(q, &o)) CHECK(o.nresume == PROTO_RESUME_MAX);
	strcat(q, ",rp:99:1");
	parse_bad(q, "resume");
	proto_tick();   /* rx-new, made while checking the query, is collected */
}

static void test_upgrade_apply(void)
{
	struct upgrade_opts o;
	struct pframe f[16];
	int n;
	route("rx-up", 0, 0, "k", "{\"v\":1}");

	/* format=msgpack with snapshots: every message comes as MessagePack. */
	struct tc a = tc_new(0);
	if (parse_ok("channels=rx-up,misc&format=msgpack&snapshot=1", &o)) {
		proto_upgrade_apply(a.c, &o);
		CHECK(a.c->msgpack == 1 && a.c->snapshots == 1 && a.c->interval_ms == 0 && a.c->nsubs == 2);
		n = peer_recv_json(a.fd, f, 16);
		CHECKF(n == 2 && f[0].op == WS_OP_BINARY && f[1].op == WS_OP_BINARY &&
		       check_snapshots(f, n, NULL, (const char *const[]){ "rx-up", "misc", NULL }, "apply") == 2, "%d frames", n);
		if (n == 2) CHECK(pframe_int(&f[0], "seq") == 1 && pframe_is(&f[0], "data", "{\"k\":{\"v\":1}}"));
		peer_frames_free(f, n);
		ask(a.c, "{\"type\":\"ping\",\"id\":1}");
		n = peer_recv_json(a.fd, f, 16);
		CHECKF(n == 1 && f[0].op == WS_OP_BINARY && strcmp(f[0].data, "{\"type\":\"pong\",\"id\":1}") == 0,
		       "%d frames: %s", n, n ? f[0].data : "");
		peer_frames_free(f, n);
		ask(a.c, "{\"type\":\"list\"}");
		n = peer_recv_json(a.fd, f, 16);
		CHECKF(n == 1 && f[0].op == WS_OP_BINARY &&
		       pframe_is(&f[0], "subscriptions", "[{\"channel\":\"rx-up\",\"subscription\":{}},{\"channel\":\"misc\",\"subscription\":{}}]"),
		       "%d frames: %s", n, n ? f[0].data : "");
		peer_frames_free(f, n);
		route("rx-up", 0, 1, "k", "{\"v\":2}");
		n = peer_recv_json(a.fd, f, 16);
		CHECK(n == 1 && f[0].op == WS_OP_BINARY && pframe_int(&f[0], "offset") == 1 && pframe_is(&f[0], "data", "{\"v\":2}"));
		peer_frames_free(f, n);
		ask_error(&a, "{\"type\":\"bogus\"}", "UNKNOWN_TYPE", NULL, NULL);
	}
	tc_free(&a);

	/* type=tui: the state dialect. A snapshot of every subscribed channel,
	 * no records, updates at the period's tick, a new snapshot when the
	 * set changes. */
	struct tc b = tc_new(0);
	if (parse_ok("channel=rx-up&type=tui", &o)) {
		proto_upgrade_apply(b.c, &o);
		CHECK(b.c->msgpack == 0 && b.c->interval_ms == 100 && b.c->dialect == 1);
		n = peer_recv_json(b.fd, f, 16);
		CHECKF(n == 1 && pframe_is(&f[0], "type", "\"snapshot\"") && pframe_int(&f[0], "seq") == 1 &&
		       pframe_is(&f[0], "data", "{\"rx-up\":{\"k\":{\"v\":2}}}"), "%d frames", n);
		peer_frames_free(f, n);
		route("rx-up", 0, 2, "k", "{\"v\":3}");
		route("rx-up", 0, 3, "k", "{\"v\":4}");
		CHECK_NONE(b.fd);                          /* records are not sent as such */
		state_service(clock_now() + 100);
		n = peer_recv_json(b.fd, f, 16);
		/* The first tick after a snapshot sends changed keys whole. */
		CHECKF(n == 1 && pframe_is(&f[0], "type", "\"update\"") && pframe_int(&f[0], "seq") == 2 &&
		       pframe_is(&f[0], "changes", "{\"rx-up.k\":{\"v\":4}}"), "%d frames: %s", n, n ? f[0].data : "");
		peer_frames_free(f, n);
		route("rx-up", 0, 4, "k", "{\"v\":5}");
		state_service(clock_now() + 200);
		n = peer_recv_json(b.fd, f, 16);
		CHECKF(n == 1 && pframe_int(&f[0], "seq") == 3 && pframe_is(&f[0], "changes", "{\"rx-up.k.v\":5}"),
		       "%d frames: %s", n, n ? f[0].data : "");
		peer_frames_free(f, n);
		state_service(clock_now() + 300);         /* nothing changed: nothing sent */
		CHECK_NONE(b.fd);
		ask(b.c, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"id\":2}");
		n = peer_recv_json(b.fd, f, 16);
		CHECKF(n == 2 && pframe_is(&f[0], "type", "\"ack\"") && pframe_is(&f[1], "type", "\"snapshot\"") &&
		       pframe_int(&f[1], "seq") == 4 && pframe_is(&f[1], "id", "2") &&
		       pframe_is(&f[1], "data", "{\"rx-up\":{\"k\":{\"v\":5}},\"misc\":{\"other\":1}}"), "%d frames", n);
		peer_frames_free(f, n);
		ask_error(&b, "{\"type\":\"subscribe\",\"channel\":\"misc\",\"resume\":{\"misc:0\":1}}", "BAD_REQUEST", NULL, NULL);
	}
	tc_free(&b);

	/* Plain channel=: subscribed, nothing sent. */
	struct tc c = tc_new(0);
	if (parse_ok("channels=market,misc,ticks,rx-up,rx-u2", &o)) {
		proto_upgrade_apply(c.c, &o);
		CHECK(c.c->nsubs == MAX_SUBS);    /* the rest would pass --max-subscriptions */
		CHECK_NONE(c.fd);
	}
	tc_free(&c);

	/* resume=: the history replays what was missed, filtered by the
	 * channels asked, without an ack. */
	for (int64_t o2 = 0; o2 < 4; o2++) route("rp", 2, o2, "k", "{}");
	struct tc d = tc_new(0);
	if (parse_ok("channel=rpc&resume=rp:2:1", &o)) {
		proto_upgrade_apply(d.c, &o);
		CHECK_OFFS(d.fd, 2, 3);
		route("rp", 2, 4, "k", "{}");
		CHECK_OFFS(d.fd, 4);
	}
	tc_free(&d);
	struct tc e = tc_new(0);
	if (parse_ok("channel=misc&resume=rp:2:1", &o)) {
		proto_upgrade_apply(e.c, &o);
		CHECK_NONE(e.fd);                 /* rp feeds rpc, not misc */
	}
	tc_free(&e);
	/* A resume of a topic no route consumes: refused on the connection. */
	struct tc g = tc_new(0);
	if (parse_ok("channel=misc&resume=nope:0:1", &o)) {
		proto_upgrade_apply(g.c, &o);
		n = peer_recv_json(g.fd, f, 16);
		CHECKF(n == 1 && pframe_is(&f[0], "code", "\"BAD_REQUEST\"") && !pframe_has_field(&f[0], "id") && strstr(f[0].data, "nope:0"),
		       "%d frames: %s", n, n ? f[0].data : "");
		peer_frames_free(f, n);
		CHECK(g.c->nsubs == 1);
	}
	tc_free(&g);
}

int main(void)
{
	char err[256];
	log_setup(LOG_WARN, 0);   /* no line per closed test client */
	peer_cfg.topics = (const char **)routes;
	peer_cfg.ntopics = NROUTES;
	peer_cfg.max_subscriptions = MAX_SUBS;
	peer_init();
	if (proto_init(&peer_cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "proto_init: %s\n", err);
		return 1;
	}
	clock_advance();   /* one turn: every "now" below is the same */
	test_ping();
	test_subscribe_native();
	test_errors();
	test_too_many_subscriptions();
	test_unsubscribe_and_list();
	test_refresh();
	test_subscribe_snapshot();
	test_action_dialect();
	test_resume();
	test_upgrade_parse();
	test_upgrade_apply();
	proto_tick();
	return check_summary("proto");
}
