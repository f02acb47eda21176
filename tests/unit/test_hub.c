/* test_hub.c - the routing layer (hub.c with envelope.c, lvc.c, history.c,
 * route.c under it), driven the way the Kafka and protocol layers drive it:
 * records handed to hub_route, subscriptions made with hub_subscribe on
 * real clients (peer.h), every delivery read back from the client's socket
 * as the browser would see it, decoded, and checked field by field.
 * Covered: which channel a route feeds and how channels are named (literal,
 * =channel, :type, regex topics as their own channels, names nobody can
 * produce); subscribe dedup and unsubscribe counts; per-channel seq; the
 * key index; field filters with JSON equality; type filters and
 * every-channel subscriptions; one delivery per client; one shared encoding
 * per format; conflation; the last-value cache behind snapshots; resume from
 * the history and through the gates a replay from Kafka passes; forgetting
 * clients; collecting unused channels; the record counters.
 * The routing layer is process-wide state, so each test uses channels of
 * its own (topics "rx-<test>" are their own channels through "^rx-.*"). */
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
#include "metrics.h"
#include "msgpack.h"

static const char *const routes[] = {
	"trades=market:trade_data",
	"candles=market:candle",
	"misc",
	"^rx-.*",
	"^md\\..*=mdchan",
	"ticks",
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* ---- clients ------------------------------------------------------------------ */

/* What the server does when a connection ends: every layer forgets it. */
static void tc_free(struct tc *t)
{
	hub_client_gone(t->c);
	conflate_client_gone(t->c);
	peer_forget(t->c);
	client_free(t->c);
	peer_close(t->fd);
}

/* ---- subscriptions ------------------------------------------------------------ */

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) abort();
	return d;
}

/* A filter as proto.c builds one: keys (NULL-terminated, NULL: any key),
 * fields as name, raw JSON value pairs (NULL-terminated; "\"*\"" = any),
 * a message type (NULL: any). */
static struct filter mkfilter(const char *const *keys, const char *const *fields, const char *type)
{
	struct filter f = { 0 };
	for (uint32_t n = 0; keys && keys[n]; n++) {
		if (!(f.keys = realloc(f.keys, (n + 1) * sizeof(*f.keys)))) abort();
		f.keys[n] = xstrdup(keys[n]);
		f.nkeys = n + 1;
	}
	for (uint32_t n = 0; fields && fields[2 * n]; n++) {
		if (!(f.fields = realloc(f.fields, (n + 1) * sizeof(*f.fields)))) abort();
		struct field_filter *ff = &f.fields[n];
		ff->name = xstrdup(fields[2 * n]);
		ff->value = xstrdup(fields[2 * n + 1]);
		ff->value_len = strlen(ff->value);
		ff->any = strcmp(ff->value, "\"*\"") == 0;
		f.nfields = n + 1;
	}
	if (type) f.type = xstrdup(type);
	return f;
}

/* Subscribes c; spec NULL gives a spec of its own (no dedup). */
static int sub(struct client *c, struct channel *ch, const char *const *keys, const char *const *fields,
	       const char *type, uint32_t interval_ms, const char *spec)
{
	static unsigned n;
	char buf[32];
	if (!spec) {
		snprintf(buf, sizeof(buf), "{\"n\":%u}", ++n);
		spec = buf;
	}
	struct filter f = mkfilter(keys, fields, type);
	return hub_subscribe(c, ch, &f, xstrdup(spec), strlen(spec), interval_ms);
}

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define FIELDS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static struct channel *chan(const char *name)
{
	return hub_channel(name, strlen(name));
}

/* ---- records -------------------------------------------------------------------- */

static int route_ts(const char *topic, int32_t p, int64_t off, const char *key, const char *val, int64_t ts)
{
	struct record r = peer_record(topic, p, off, key, val, ts);
	return hub_route(&r);
}

static int route(const char *topic, int32_t p, int64_t off, const char *key, const char *val)
{
	return route_ts(topic, p, off, key, val, -1);
}

/* A record fetched back from Kafka for c (no seq). */
static void replay(struct client *c, const char *topic, int32_t p, int64_t off, const char *key, const char *val)
{
	struct record r = peer_record(topic, p, off, key, val, -1);
	hub_replay_record(c, &r);
}

/* ---- what the peer receives ---------------------------------------------------- */

/* Channel name's entry in hub_channel_next; 0 when not listed. */
static int chan_info(const char *name, uint32_t *subs, uint64_t *seq)
{
	const char *n;
	uint32_t s;
	uint64_t q;
	for (size_t i = 0; hub_channel_next(&i, &n, &s, &q);)
		if (strcmp(n, name) == 0) {
			if (subs) *subs = s;
			if (seq) *seq = q;
			return 1;
		}
	return 0;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_routes_and_channels(void)
{
	const struct route *rv;
	CHECK(hub_routes(&rv) == NROUTES);
	CHECK(strcmp(rv[0].topic, "trades") == 0 && strcmp(rv[0].channel, "market") == 0 &&
	      strcmp(rv[0].type, "trade_data") == 0);
	CHECK(rv[2].channel == NULL && rv[2].type == NULL && !rv[2].is_regex);
	CHECK(rv[3].is_regex && rv[3].channel == NULL);

	/* Channels a route names exist from the start. */
	struct channel *market = chan("market"), *misc = chan("misc"), *md = chan("mdchan");
	CHECK(market && misc && md && chan("ticks"));
	CHECK(strcmp(hub_channel_name(market), "market") == 0);
	CHECK(strcmp(hub_channel_name(NULL), "*") == 0);
	CHECK(chan_info("market", NULL, NULL) && chan_info("mdchan", NULL, NULL));
	CHECK(hub_channel("marketplace", 6) == market);            /* by length, not NUL */

	/* Names no route produces. */
	CHECK(chan("trades") == NULL);            /* the topic of a =channel route is not a channel */
	CHECK(chan("candles") == NULL);
	CHECK(chan("nope") == NULL);
	CHECK(chan("md.x") == NULL);              /* a regex with =channel names only that channel */
	CHECK(chan("Market") == NULL);
	CHECK(hub_channel("", 0) == NULL);
	CHECK(chan("rx-has space") == NULL);      /* not a Kafka topic name: no topic can be it */
	CHECK(chan("xrx-a") == NULL);             /* the regex is anchored */

	/* A name the regex route could produce is a channel before any such
	 * topic exists, and the same one for its topic later. */
	struct channel *rx = chan("rx-rt");
	CHECK(rx != NULL && strcmp(hub_channel_name(rx), "rx-rt") == 0);
	CHECK(chan("rx-rt") == rx);
	CHECK(hub_topic_channel("rx-rt") == rx);
	CHECK(chan("rx-") != NULL);               /* ".*" matches nothing after the prefix too */

	/* Which channel each topic feeds. */
	CHECK(hub_topic_channel("trades") == market);
	CHECK(hub_topic_channel("candles") == market);
	CHECK(hub_topic_channel("misc") == misc);
	CHECK(hub_topic_channel("md.a") == md && hub_topic_channel("md.b") == md);
	CHECK(hub_topic_channel("nope") == NULL);
	CHECK(hub_topic_channel("market") == NULL);   /* a channel name is not a topic */
	const struct channel *own = hub_topic_channel("rx-own");
	CHECK(own != NULL && strcmp(hub_channel_name(own), "rx-own") == 0 && chan("rx-own") == own);

	/* A record's type and channel as the route names them. */
	struct tc a = tc_new(0);
	CHECK(sub(a.c, market, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, md, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, misc, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(route("trades", 0, 10, "k", "{\"a\":1}") == 1);
	CHECK(route("candles", 0, 20, "k", "{\"a\":2}") == 1);
	CHECK(route("md.quotes", 3, 30, NULL, "{\"a\":3}") == 1);
	CHECK(route("misc", 0, 40, NULL, "{\"a\":4}") == 1);
	CHECK(route("nope", 0, 50, NULL, "{}") == 0);
	struct pframe f[8];
	int n = peer_recv_json(a.fd, f, 8);
	CHECKF(n == 4, "%d frames", n);
	if (n == 4) {
		CHECK(pframe_is(&f[0], "type", "\"trade_data\"") && pframe_is(&f[0], "channel", "\"market\"") &&
		      pframe_is(&f[0], "topic", "\"trades\"") && pframe_is(&f[0], "data", "{\"a\":1}"));
		CHECK(pframe_is(&f[1], "type", "\"candle\"") && pframe_is(&f[1], "channel", "\"market\"") &&
		      pframe_is(&f[1], "topic", "\"candles\""));
		CHECK(pframe_is(&f[2], "type", "\"md.quotes\"") && pframe_is(&f[2], "channel", "\"mdchan\"") &&
		      pframe_is(&f[2], "partition", "3") && pframe_int(&f[2], "offset") == 30);
		CHECK(pframe_is(&f[3], "type", "\"misc\"") && pframe_is(&f[3], "channel", "\"misc\""));
		/* two topics, one channel: one seq sequence */
		CHECK(pframe_int(&f[1], "seq") == pframe_int(&f[0], "seq") + 1);
	}
	peer_frames_free(f, n);
	tc_free(&a);
}

static void test_subscribe_unsubscribe(void)
{
	struct tc a = tc_new(0), b = tc_new(0);
	struct channel *ch = chan("rx-subs"), *misc = chan("misc");
	uint32_t subs0 = 0, subs;
	CHECK(chan_info("misc", &subs0, NULL));

	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(a.c->nsubs == 1 && a.c->subs && a.c->subs->ch == ch && a.c->subs->interval_ms == 0);
	/* The same channel and spec again: not added, its interval updated,
	 * its filter replaced by the one given (a refreshed token may narrow
	 * or widen it) and the spec given freed (ASan would see it leak). */
	struct filter f = mkfilter(KEYS("x"), NULL, NULL);
	CHECK(hub_subscribe(a.c, ch, &f, xstrdup("{}"), 2, 250) == 0);
	CHECK(f.keys == NULL && f.nkeys == 0);
	CHECK(a.c->nsubs == 1 && a.c->subs->interval_ms == 250 && a.c->subs->f.nkeys == 1);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, "{}") == 0 && a.c->subs->interval_ms == 0 && a.c->subs->f.keys == NULL);
	/* Another spec, or the same spec elsewhere, is another subscription. */
	CHECK(sub(a.c, ch, KEYS("a"), NULL, NULL, 0, "{\"key\":\"a\"}") == 1);
	CHECK(sub(a.c, misc, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, "{}") == 1);    /* every channel */
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, "{}") == 0);
	CHECK(a.c->nsubs == 4);
	/* The same spec from another client is that client's own. */
	CHECK(sub(b.c, ch, NULL, NULL, NULL, 0, "{}") == 1 && b.c->nsubs == 1);

	/* Counts per channel: channel-less subscriptions count on every channel. */
	CHECK(chan_info("rx-subs", &subs, NULL) && subs == 2 + 1 + 1);
	CHECK(chan_info("misc", &subs, NULL) && subs == subs0 + 1 + 1);
	CHECK(chan_info("mdchan", &subs, NULL) && subs == 1);

	/* Both of a's subscriptions on rx-subs match: one delivery. */
	route("rx-subs", 0, 0, "a", "1");
	CHECK_OFFS(a.fd, 0);
	CHECK_OFFS(b.fd, 0);

	CHECK(hub_unsubscribe(a.c, ch, 0, "{\"key\":\"a\"}", 11) == 1);
	CHECK(hub_unsubscribe(a.c, ch, 0, "{\"key\":\"a\"}", 11) == 0);
	CHECK(hub_unsubscribe(a.c, ch, 0, "{\"key\":\"b\"}", 11) == 0);
	CHECK(a.c->nsubs == 3);
	CHECK(hub_unsubscribe(a.c, misc, 0, NULL, 0) == 1);       /* every spec on misc */
	CHECK(chan_info("misc", &subs, NULL) && subs == subs0 + 1);
	CHECK(hub_unsubscribe(a.c, NULL, 1, NULL, 0) == 2);       /* rx-subs {} and the channel-less one */
	CHECK(a.c->nsubs == 0 && a.c->subs == NULL);
	CHECK(chan_info("rx-subs", &subs, NULL) && subs == 1);    /* b's */
	CHECK(hub_unsubscribe(a.c, NULL, 1, NULL, 0) == 0);

	/* all_channels with a spec: that spec on any channel, nothing else. */
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(sub(a.c, misc, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(sub(a.c, misc, NULL, FIELDS("x", "1"), NULL, 0, "{\"filter\":{\"x\":1}}") == 1);
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(hub_unsubscribe(a.c, NULL, 1, "{}", 2) == 3);
	CHECK(a.c->nsubs == 1 && a.c->subs && a.c->subs->ch == misc);
	/* ch NULL without all_channels: only channel-less subscriptions. */
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, "{}") == 1);
	CHECK(hub_unsubscribe(a.c, NULL, 0, NULL, 0) == 1);
	CHECK(a.c->nsubs == 1 && a.c->subs->ch == misc);

	/* Unsubscribed: nothing more arrives. */
	route("rx-subs", 0, 1, "a", "2");
	CHECK_NONE(a.fd);
	CHECK_OFFS(b.fd, 1);
	tc_free(&a);
	tc_free(&b);
}

static void test_seq(void)
{
	struct tc a = tc_new(0);
	struct channel *ch = chan("rx-seq");
	/* Records nobody subscribes to still take their seq. */
	for (int64_t o = 0; o < 3; o++) CHECK(route("rx-seq", 0, o, "k", "{}") == 1);
	uint64_t seq = 0;
	uint32_t subs = 9;
	CHECK(chan_info("rx-seq", &subs, &seq) && seq == 3 && subs == 0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	route("rx-seq", 1, 7, "k", "{\"v\":1}");
	route("rx-seq", 0, 3, NULL, NULL);
	route("rx-seq2", 0, 0, "k", "{}");    /* another channel counts on its own */
	struct pframe f[4];
	int n = peer_recv_json(a.fd, f, 4);
	CHECKF(n == 2, "%d frames", n);
	if (n == 2) {
		CHECK(pframe_int(&f[0], "seq") == 4 && pframe_int(&f[0], "offset") == 7 && pframe_int(&f[0], "partition") == 1);
		CHECK(pframe_is(&f[0], "key", "\"k\"") && pframe_is(&f[0], "data", "{\"v\":1}") && pframe_is(&f[0], "channel", "\"rx-seq\""));
		CHECK(pframe_field(&f[0], "timestamp", &(size_t){ 0 }) == NULL);   /* the record had none */
		/* a tombstone without key: data null, no key */
		CHECK(pframe_int(&f[1], "seq") == 5 && pframe_is(&f[1], "data", "null") && pframe_field(&f[1], "key", &(size_t){ 0 }) == NULL);
	}
	peer_frames_free(f, n);
	CHECK(chan_info("rx-seq", NULL, &seq) && seq == 5);
	CHECK(chan_info("rx-seq2", NULL, &seq) && seq == 1);
	tc_free(&a);
}

static void test_keys(void)
{
	struct channel *ch = chan("rx-keys");
	struct tc a = tc_new(0), b = tc_new(0), c = tc_new(0), d = tc_new(0), e = tc_new(1), g = tc_new(0);
	CHECK(sub(a.c, ch, KEYS("k1"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(b.c, ch, KEYS("k2"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(c.c, ch, KEYS("k1", "k3"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(d.c, ch, NULL, NULL, NULL, 0, NULL) == 1);     /* no key list: "*" too */
	CHECK(sub(e.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(g.c, ch, KEYS(""), NULL, NULL, 0, NULL) == 1); /* the empty key is a key */
	route("rx-keys", 0, 0, "k1", "{}");
	route("rx-keys", 0, 1, "k2", "{}");
	route("rx-keys", 0, 2, "k3", "{}");
	route("rx-keys", 0, 3, NULL, "{}");
	route("rx-keys", 0, 4, "k4", "{}");
	route("rx-keys", 0, 5, "", "{}");
	route("rx-keys", 0, 6, "k1x", "{}");    /* a key is compared whole */
	route("rx-keys", 0, 7, "k", "{}");
	CHECK_OFFS(a.fd, 0);
	CHECK_OFFS(b.fd, 1);
	CHECK_OFFS(c.fd, 0, 2);
	CHECK_OFFS(d.fd, 0, 1, 2, 3, 4, 5, 6, 7);
	CHECK_OFFS(e.fd, 0, 1, 2, 3, 4, 5, 6, 7);
	CHECK_OFFS(g.fd, 5);

	/* After the last subscriber of a key leaves, its index entry goes and
	 * the others stay. */
	CHECK(hub_unsubscribe(a.c, ch, 0, NULL, 0) == 1);
	route("rx-keys", 0, 8, "k1", "{}");
	CHECK_NONE(a.fd);
	CHECK_OFFS(c.fd, 8);
	CHECK(hub_unsubscribe(c.c, ch, 0, NULL, 0) == 1);
	route("rx-keys", 0, 9, "k1", "{}");
	route("rx-keys", 0, 10, "k3", "{}");
	CHECK_NONE(c.fd);
	CHECK_OFFS(d.fd, 8, 9, 10);
	CHECK_OFFS(e.fd, 8, 9, 10);
	CHECK_NONE(b.fd);
	CHECK_NONE(g.fd);
	tc_free(&a); tc_free(&b); tc_free(&c); tc_free(&d); tc_free(&e); tc_free(&g);
}

static void test_field_filters(void)
{
	struct channel *ch = chan("rx-fields");
	static const char *const vals[] = {
		"{\"qty\":5,\"side\":\"buy\"}",          /* 0 */
		"{\"qty\":\"5\",\"side\":null}",         /* 1 */
		"{\"qty\":1.0}",                         /* 2 */
		" { \"side\" : \"sell\" , \"qty\" : 5e0 } ", /* 3 */
		"[{\"qty\":5}]",                         /* 4: not an object */
		"\"qty\"",                               /* 5 */
		"qty=5",                                 /* 6: not JSON */
		NULL,                                    /* 7: tombstone */
		"{\"nested\":{\"qty\":5}}",              /* 8: top level only */
		"{\"side\":\"buy\",\"qty\":true}",       /* 9 */
		"{\"qty\":5,\"qty\":6}",                 /* 10: the last one wins */
		"{\"sym\":\"A\\\"B\",\"side\":\"\\u0062uy\"}", /* 11: escapes */
		"{\"qty\":5,",                           /* 12: truncated */
	};
	struct { const char *const *fields; const char *want; } cases[] = {
		{ FIELDS("qty", "5"), "0,3" },
		{ FIELDS("qty", "\"5\""), "1" },
		{ FIELDS("qty", "1"), "2" },
		{ FIELDS("qty", "6"), "10" },
		{ FIELDS("side", "\"*\""), "0,1,3,9,11" },
		{ FIELDS("qty", "\"*\""), "0,1,2,3,9,10" },
		{ FIELDS("side", "\"buy\"", "qty", "5"), "0" },
		{ FIELDS("qty", "true"), "9" },
		{ FIELDS("side", "null"), "1" },
		{ FIELDS("side", "\"buy\""), "0,9,11" },
		{ FIELDS("sym", "\"A\\\"B\""), "11" },
		{ FIELDS("nested", "\"*\""), "8" },
	};
	enum { NC = sizeof(cases) / sizeof(cases[0]) };
	struct tc t[NC];
	for (int i = 0; i < NC; i++) {
		t[i] = tc_new(0);
		CHECK(sub(t[i].c, ch, NULL, cases[i].fields, NULL, 0, NULL) == 1);
	}
	for (int64_t o = 0; o < (int64_t)(sizeof(vals) / sizeof(vals[0])); o++) route("rx-fields", 0, o, "k", vals[o]);
	for (int i = 0; i < NC; i++) {
		int64_t g[64];
		int n = peer_recv_offsets(t[i].fd, g, 64);
		const char *got = n >= 0 ? peer_fmt_offsets(g, n) : "(other frames)";
		CHECKF(strcmp(got, cases[i].want) == 0, "filter %s=%s: got [%s], want [%s]",
		       cases[i].fields[0], cases[i].fields[1], got, cases[i].want);
		tc_free(&t[i]);
	}

	/* Keys and fields together: both must match. */
	struct tc a = tc_new(0);
	CHECK(sub(a.c, ch, KEYS("k2"), FIELDS("side", "\"buy\""), NULL, 0, NULL) == 1);
	route("rx-fields", 0, 20, "k2", vals[0]);
	route("rx-fields", 0, 21, "k1", vals[0]);
	route("rx-fields", 0, 22, "k2", vals[3]);
	CHECK_OFFS(a.fd, 20);
	tc_free(&a);
}

static void test_type_filter_every_channel(void)
{
	struct channel *market = chan("market");
	struct tc a = tc_new(0), b = tc_new(0), c = tc_new(0), d = tc_new(0), e = tc_new(0);
	CHECK(sub(a.c, NULL, NULL, NULL, "candle", 0, NULL) == 1);
	CHECK(sub(b.c, NULL, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(c.c, market, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(c.c, NULL, NULL, NULL, "trade_data", 0, NULL) == 1);
	CHECK(sub(d.c, NULL, KEYS("BTC"), NULL, "candle", 0, NULL) == 1);
	CHECK(sub(e.c, NULL, NULL, FIELDS("sym", "\"BTC\""), NULL, 0, NULL) == 1);
	/* A channel nobody subscribes to still reaches every-channel ones. */
	uint32_t subs;
	CHECK(chan_info("ticks", &subs, NULL) && subs == 5);
	route("trades", 0, 100, "BTC", "{\"sym\":\"BTC\"}");
	route("candles", 0, 200, "BTC", "{\"sym\":\"BTC\"}");
	route("candles", 0, 201, "ETH", "{\"sym\":\"ETH\"}");
	route("candles", 0, 202, NULL, "{\"sym\":\"BTC\"}");
	route("misc", 0, 300, "BTC", "{\"sym\":\"BTC\"}");
	route("ticks", 0, 400, "BTC", "{}");
	CHECK_OFFS(a.fd, 200, 201, 202);
	CHECK_OFFS(b.fd, 100, 200, 201, 202, 300, 400);
	CHECK_OFFS(c.fd, 100, 200, 201, 202);     /* 100 matched twice: once */
	CHECK_OFFS(d.fd, 200);
	CHECK_OFFS(e.fd, 100, 200, 202, 300);
	tc_free(&a); tc_free(&b); tc_free(&c); tc_free(&d); tc_free(&e);
	CHECK(chan_info("ticks", &subs, NULL) && subs == 0);
}

static void test_one_delivery_per_client(void)
{
	struct channel *ch = chan("rx-dup");
	struct tc a = tc_new(0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, ch, KEYS("k"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, ch, KEYS("j", "k"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, ch, NULL, FIELDS("v", "\"*\""), NULL, 0, NULL) == 1);
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, NULL, KEYS("k"), NULL, "rx-dup", 0, NULL) == 1);
	for (int64_t o = 0; o < 3; o++) route("rx-dup", 0, o, "k", "{\"v\":1}");
	route("rx-dup", 0, 3, "j", "{}");
	CHECK_OFFS(a.fd, 0, 1, 2, 3);
	tc_free(&a);
}

static void test_shared_encoding(void)
{
	struct channel *ch = chan("rx-enc");
	struct tc j1 = tc_new(0), j2 = tc_new(0), m1 = tc_new(1), m2 = tc_new(1);
	struct tc *all[] = { &j1, &j2, &m1, &m2 };
	for (int i = 0; i < 4; i++) CHECK(sub(all[i]->c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	route_ts("rx-enc", 2, 42, "BTC/USDT", "{\"px\":1.5,\"q\":[1,\"x\"],\"t\":true}", 1700000000123);
	/* One frame per format, the same frame in every queue of that format. */
	for (int i = 0; i < 4; i++) CHECK(all[i]->c->q.count == 1);
	struct frame *fj = outq_at(&j1.c->q, 0), *fm = outq_at(&m1.c->q, 0);
	CHECK(fj && fm && fj != fm);
	CHECK(outq_at(&j2.c->q, 0) == fj && outq_at(&m2.c->q, 0) == fm);
	CHECK(fj && fj->refs == 2 && fj->kind == FRAME_DATA && fj->key_hash != 0);
	CHECK(fm && fm->refs == 2 && fm->kind == FRAME_DATA && fm->key_hash == fj->key_hash);
	CHECK(fj && (fj->data[0] & 0x0f) == WS_OP_TEXT && fm && (fm->data[0] & 0x0f) == WS_OP_BINARY);

	struct pframe f[4][2];
	int n[4];
	for (int i = 0; i < 4; i++) n[i] = peer_recv(all[i]->fd, f[i], 2);
	CHECK(n[0] == 1 && n[1] == 1 && n[2] == 1 && n[3] == 1);
	if (n[0] == 1 && n[1] == 1 && n[2] == 1 && n[3] == 1) {
		CHECK(f[0][0].op == WS_OP_TEXT && f[2][0].op == WS_OP_BINARY);
		CHECK_MEM(f[1][0].data, f[1][0].len, f[0][0].data, f[0][0].len);
		CHECK_MEM(f[3][0].data, f[3][0].len, f[2][0].data, f[2][0].len);
		/* The MessagePack message is the JSON one transcoded: same object. */
		struct jbuf b;
		json_init(&b);
		CHECK(mp_to_json(&b, (const unsigned char *)f[2][0].data, f[2][0].len, 64) == 0);
		CHECK_MEM(b.buf, b.len, f[0][0].data, f[0][0].len);
		json_free(&b);
		static const char want[] = "{\"type\":\"rx-enc\",\"channel\":\"rx-enc\",\"key\":\"BTC/USDT\",\"seq\":1,"
			"\"topic\":\"rx-enc\",\"partition\":2,\"offset\":42,\"timestamp\":\"2023-11-14T22:13:20.123Z\","
			"\"data\":{\"px\":1.5,\"q\":[1,\"x\"],\"t\":true}}";
		CHECK_MEM(f[0][0].data, f[0][0].len, want, sizeof(want) - 1);
	}
	for (int i = 0; i < 4; i++) {
		peer_frames_free(f[i], n[i]);
		tc_free(all[i]);
	}
}

static void test_value_encodings(void)
{
	struct channel *ch = chan("rx-val");
	struct tc a = tc_new(0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	struct record r = { .topic = "rx-val", .offset = 0, .timestamp_ms = -1,
			    .key = "\xff\x01", .key_len = 2, .value = "\xff\xfe", .value_len = 2 };
	hub_route(&r);
	route("rx-val", 0, 1, "k", "plain \"text\"");
	route("rx-val", 0, 2, "k", "");
	struct pframe f[4];
	int n = peer_recv_json(a.fd, f, 4);
	CHECKF(n == 3, "%d frames", n);
	if (n == 3) {
		CHECK(pframe_is(&f[0], "key", "\"/wE=\"") && pframe_is(&f[0], "key_encoding", "\"base64\""));
		CHECK(pframe_is(&f[0], "data", "\"//4=\"") && pframe_is(&f[0], "encoding", "\"base64\""));
		CHECK(pframe_is(&f[1], "data", "\"plain \\\"text\\\"\"") && !pframe_field(&f[1], "encoding", &(size_t){ 0 }));
		CHECK(pframe_is(&f[2], "data", "\"\""));    /* empty, not a tombstone */
	}
	peer_frames_free(f, n);
	tc_free(&a);
}

static void test_conflation(void)
{
	struct channel *ch = chan("rx-conf");
	struct tc a = tc_new(0), b = tc_new(0), d = tc_new(0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 1000, NULL) == 1);   /* interval on the subscription */
	b.c->interval_ms = 1000;                                  /* interval of the connection */
	CHECK(sub(b.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(d.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	int64_t now = clock_now();
	route("rx-conf", 0, 0, "k1", "{\"v\":0}");
	route("rx-conf", 0, 1, "k1", "{\"v\":1}");   /* inside k1's interval: held */
	route("rx-conf", 0, 2, "k2", "{\"v\":2}");   /* another key: goes */
	route("rx-conf", 0, 3, "k1", "{\"v\":3}");   /* replaces the held one */
	route("rx-conf", 0, 4, NULL, "{\"v\":4}");
	route("rx-conf", 0, 5, NULL, "{\"v\":5}");   /* null keys conflate as one key */
	CHECK_OFFS(a.fd, 0, 2, 4);
	CHECK_OFFS(b.fd, 0, 2, 4);
	CHECK_OFFS(d.fd, 0, 1, 2, 3, 4, 5);
	int ms = conflate_timeout_ms(now);
	CHECKF(ms > 0 && ms <= 1000, "timeout %d", ms);
	conflate_service(now + 999);
	CHECK_NONE(a.fd);
	conflate_service(now + 1000);
	/* The newest of each key, with its own seq. */
	struct pframe f[8];
	int n = peer_recv_json(a.fd, f, 8);
	CHECKF(n == 2, "%d frames", n);
	if (n == 2) {
		int k1 = pframe_int(&f[0], "offset") == 3 ? 0 : 1;
		CHECK(pframe_int(&f[k1], "offset") == 3 && pframe_int(&f[k1], "seq") == 4 && pframe_is(&f[k1], "data", "{\"v\":3}"));
		CHECK(pframe_int(&f[1 - k1], "offset") == 5 && pframe_int(&f[1 - k1], "seq") == 6);
	}
	peer_frames_free(f, n);
	n = peer_recv_json(b.fd, f, 8);
	CHECK(n == 2);
	peer_frames_free(f, n);
	CHECK(conflate_timeout_ms(now + 1000) == -1);
	tc_free(&a); tc_free(&b); tc_free(&d);
}

static void snapshot(const char *channel, const char *id, struct pframe *out)
{
	struct jbuf b;
	json_init(&b);
	hub_snapshot_json(&b, chan(channel), id, id ? strlen(id) : 0, NULL);
	json_append(&b, "", 1);
	out->op = WS_OP_TEXT;
	out->data = b.buf;
	out->len = b.len - 1;
}

static void test_last_value_cache(void)
{
	struct pframe s;
	/* A channel with nothing routed yet. */
	CHECK(chan("rx-lvc") != NULL);
	static const char empty[] = "{\"type\":\"snapshot\",\"channel\":\"rx-lvc\",\"seq\":0,\"data\":{}}";
	snapshot("rx-lvc", NULL, &s);
	CHECK_MEM(s.data, s.len, empty, sizeof(empty) - 1);
	free(s.data);

	route("rx-lvc", 0, 0, "a", "{\"v\":1}");
	route("rx-lvc", 1, 0, "b", "{\"v\":1}");
	route("rx-lvc", 0, 1, "a", " {\"v\" : 2} ");   /* newest value of a, verbatim */
	route("rx-lvc", 0, 2, NULL, "{\"x\":1}");      /* no key: not cached */
	route("rx-lvc", 0, 3, "c", "text");            /* not JSON: a string */
	route("rx-lvc", 1, 1, "b", NULL);              /* tombstone: b goes */
	snapshot("rx-lvc", "7", &s);
	CHECK(pframe_is(&s, "type", "\"snapshot\"") && pframe_is(&s, "id", "7") && pframe_is(&s, "channel", "\"rx-lvc\""));
	CHECK(pframe_int(&s, "seq") == 6);
	size_t dl;
	const char *d = pframe_field(&s, "data", &dl);
	static const char want[] = "{\"a\": {\"v\" : 2} ,\"c\":\"text\"}";
	CHECKF(d && dl == sizeof(want) - 1 && memcmp(d, want, dl) == 0, "data %.*s", d ? (int)dl : 0, d ? d : "");
	CHECK(!pframe_field(&s, "base64_keys", &dl) && !pframe_field(&s, "base64_values", &dl));
	free(s.data);

	/* A tombstone for a key never cached, and binary values. */
	route("rx-lvc", 0, 4, "zz", NULL);
	struct record r = { .topic = "rx-lvc", .offset = 5, .timestamp_ms = -1,
			    .key = "bin", .key_len = 3, .value = "\xff\xfe", .value_len = 2 };
	hub_route(&r);
	snapshot("rx-lvc", "\"s\"", &s);
	CHECK(pframe_is(&s, "id", "\"s\"") && pframe_int(&s, "seq") == 8);
	CHECK(pframe_is(&s, "base64_values", "[\"bin\"]"));
	d = pframe_field(&s, "data", &dl);
	CHECK(d && json_top_field(d, dl, "bin", 3, &d, &dl) && json_value_eq(d, dl, "\"//4=\"", 6));
	free(s.data);

	/* --snapshot-keys 3 (set for this program): past 3 keys the least
	 * recently updated goes. */
	route("rx-lvc2", 0, 0, "k1", "1");
	route("rx-lvc2", 0, 1, "k2", "2");
	route("rx-lvc2", 0, 2, "k3", "3");
	route("rx-lvc2", 0, 3, "k4", "4");
	snapshot("rx-lvc2", NULL, &s);
	CHECK(pframe_is(&s, "data", "{\"k2\":2,\"k3\":3,\"k4\":4}"));
	free(s.data);
	route("rx-lvc2", 0, 4, "k2", "22");    /* k2 is now the newest: k3 goes next */
	route("rx-lvc2", 0, 5, "k5", "5");
	snapshot("rx-lvc2", NULL, &s);
	CHECK(pframe_is(&s, "data", "{\"k4\":4,\"k2\":22,\"k5\":5}") && pframe_int(&s, "seq") == 6);
	free(s.data);
}

static void test_resume_from_history(void)
{
	int64_t from;
	struct channel *ch = chan("rx-res");
	for (int64_t o = 0; o < 10; o++) route("rx-res", 0, o, o % 2 ? "b" : "a", "{}");   /* seq o + 1 */
	struct tc a = tc_new(0), b = tc_new(0), m = tc_new(1);
	CHECK(sub(a.c, ch, KEYS("a"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(b.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(m.c, NULL, NULL, NULL, "rx-res", 0, NULL) == 1);
	/* a saw offset 3: the history replays what it missed and wants (its
	 * key), with the seq each record had, in this call. */
	CHECK(hub_resume(a.c, "rx-res", 0, 3, &from) == 0);
	CHECK(hub_resume(b.c, "rx-res", 0, -1, &from) == 0);    /* from the start */
	CHECK(hub_resume(m.c, "rx-res", 0, 9, &from) == 0);     /* saw everything */
	struct pframe f[16];
	int n = peer_recv_json(a.fd, f, 16);
	CHECKF(n == 3, "%d frames", n);
	for (int i = 0; i < n && n == 3; i++)
		CHECK(pframe_int(&f[i], "offset") == 4 + 2 * i && pframe_int(&f[i], "seq") == 5 + 2 * i && pframe_is(&f[i], "key", "\"a\""));
	peer_frames_free(f, n);
	CHECK_OFFS(b.fd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
	CHECK_NONE(m.fd);
	/* Live records follow; one the resume already gave is not given twice. */
	route("rx-res", 0, 10, "a", "{}");
	route("rx-res", 0, 8, "a", "{}");     /* an older offset again (a rebalance) */
	route("rx-res", 0, 11, "a", "{}");
	CHECK_OFFS(a.fd, 10, 11);
	CHECK_OFFS(b.fd, 10, 11);
	CHECK_OFFS(m.fd, 10, 11);
	/* Other partitions of the topic are not gated. */
	route("rx-res", 1, 0, "a", "{}");
	CHECK_OFFS(a.fd, 0);

	/* No route for the topic. */
	CHECK(hub_resume(a.c, "nope", 0, 3, &from) == -1);
	tc_free(&a); tc_free(&b); tc_free(&m);

	/* More than the client's queue takes (half of --client-queue 1024):
	 * the history gives what fits and Kafka is asked for the rest, from
	 * the last record given; live records wait meanwhile. */
	struct channel *big = chan("rx-big");
	for (int64_t o = 0; o < 600; o++) route("rx-big", 0, o, "k", "{}");
	struct tc g = tc_new(0);
	CHECK(sub(g.c, big, NULL, NULL, NULL, 0, NULL) == 1);
	/* Its socket is full: the kernel takes nothing more. */
	static const unsigned char filler[64] = { 0x81, 62 };
	while (write(g.c->fd, filler, sizeof(filler)) == (ssize_t)sizeof(filler)) {}
	CHECK(hub_resume(g.c, "rx-big", 0, -1, &from) == 1);
	CHECKF(from == 511 && g.c->q.count == 512, "from %lld, %u queued", (long long)from, g.c->q.count);
	route("rx-big", 0, 600, "k", "{}");
	CHECK(g.c->q.count == 512);
	tc_free(&g);
}

static void test_resume_from_kafka(void)
{
	int64_t from;
	struct channel *ch = chan("rx-rk");
	/* The history starts at offset 100 of partition 0. */
	for (int64_t o = 100; o < 105; o++) route("rx-rk", 0, o, "k", "{}");   /* seq 1..5 */
	struct tc a = tc_new(0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	/* Resuming after 50: the history does not cover 51..99, Kafka must. */
	CHECK(hub_resume(a.c, "rx-rk", 0, 50, &from) == 1);
	/* Live records wait for the replay. */
	route("rx-rk", 0, 105, "k", "{}");   /* seq 6 */
	route("rx-rk", 0, 106, "k", "{}");   /* seq 7 */
	CHECK(a.c->q.count == 0);
	CHECK_NONE(a.fd);
	/* The replay: records without seq, up to where the live ones begin. */
	replay(a.c, "rx-rk", 0, 98, "k", "{\"r\":1}");
	replay(a.c, "rx-rk", 0, 99, "k", "{\"r\":1}");
	replay(a.c, "rx-rk", 0, 99, "k", "{\"r\":1}");   /* the same again: skipped */
	for (int64_t o = 100; o < 105; o++) replay(a.c, "rx-rk", 0, o, "k", "{\"r\":1}");
	/* Reached the first held live record: the held ones go out now. */
	replay(a.c, "rx-rk", 0, 105, "k", "{\"r\":1}");   /* had it: no duplicate */
	replay(a.c, "rx-rk", 0, 106, "k", "{\"r\":1}");
	hub_replay_done(a.c, "rx-rk", 0);
	route("rx-rk", 0, 107, "k", "{}");   /* seq 8: live again */
	struct pframe f[32];
	int n = peer_recv_json(a.fd, f, 32);
	static const int64_t want_off[] = { 98, 99, 100, 101, 102, 103, 104, 105, 106, 107 };
	CHECKF(n == 10, "%d frames", n);
	for (int i = 0; i < n && n == 10; i++) {
		CHECKF(pframe_int(&f[i], "offset") == want_off[i], "frame %d: %s", i, f[i].data);
		if (want_off[i] < 105)   /* fetched from Kafka: no seq */
			CHECKF(pframe_int(&f[i], "seq") == INT64_MIN && pframe_is(&f[i], "data", "{\"r\":1}"), "frame %d: %s", i, f[i].data);
		else                     /* the live records, with their seq */
			CHECKF(pframe_int(&f[i], "seq") == want_off[i] - 99 && pframe_is(&f[i], "data", "{}"), "frame %d: %s", i, f[i].data);
	}
	peer_frames_free(f, n);

	/* A replay that ends before it reaches the held records (a gap, or a
	 * failure): the held ones go out in order when it is done. */
	CHECK(hub_resume(a.c, "rx-rk", 0, 10, &from) == 1);
	route("rx-rk", 0, 108, "k", "{}");
	route("rx-rk", 0, 109, "k", "{}");
	CHECK_NONE(a.fd);
	replay(a.c, "rx-rk", 0, 11, "k", "{}");
	hub_replay_done(a.c, "rx-rk", 0);
	CHECK_OFFS(a.fd, 11, 108, 109);
	hub_replay_done(a.c, "rx-rk", 0);     /* twice: nothing */
	CHECK_NONE(a.fd);

	/* A partition the history never saw. */
	CHECK(hub_resume(a.c, "rx-rk", 3, 5, &from) == 1);
	route("rx-rk", 3, 6, "k", "{}");
	CHECK_NONE(a.fd);
	/* The replay is filtered by the subscriptions like live records. */
	struct tc k = tc_new(0);
	CHECK(sub(k.c, ch, KEYS("mine"), NULL, NULL, 0, NULL) == 1);
	CHECK(hub_resume(k.c, "rx-rk", 3, 0, &from) == 1);
	replay(k.c, "rx-rk", 3, 1, "other", "{}");
	replay(k.c, "rx-rk", 3, 2, "mine", "{}");
	replay(k.c, "rx-rk", 3, 3, NULL, "{}");
	hub_replay_done(k.c, "rx-rk", 3);
	CHECK_OFFS(k.fd, 2);
	/* A client that leaves while live records are held: they are freed
	 * (LeakSanitizer checks), and nothing reaches it. */
	route("rx-rk", 3, 7, "k", "{}");
	tc_free(&a);
	tc_free(&k);
}

static void test_client_gone(void)
{
	int64_t from;
	struct channel *ch = chan("rx-gone");
	struct tc a = tc_new(0), b = tc_new(0);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, ch, KEYS("k"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, NULL, NULL, NULL, NULL, 0, NULL) == 1);
	CHECK(sub(b.c, ch, KEYS("k"), NULL, NULL, 0, NULL) == 1);
	route("rx-gone", 0, 0, "k", "{}");
	CHECK(hub_resume(a.c, "rx-gone", 0, -1, &from) == 0);
	CHECK(a.c->rs != NULL);
	uint32_t subs;
	CHECK(chan_info("rx-gone", &subs, NULL) && subs == 4);
	hub_client_gone(a.c);
	CHECK(a.c->subs == NULL && a.c->nsubs == 0 && a.c->rs == NULL);
	CHECK(chan_info("rx-gone", &subs, NULL) && subs == 1);
	hub_client_gone(a.c);      /* twice: nothing */
	/* What was queued before stays queued: offset 0 live, then again from
	 * the history (a said it had seen nothing). */
	CHECK_OFFS(a.fd, 0, 0);
	route("rx-gone", 0, 1, "k", "{}");
	CHECK(a.c->q.count == 0);
	CHECK_NONE(a.fd);
	CHECK_OFFS(b.fd, 0, 1);
	tc_free(&a);
	tc_free(&b);
}

static void test_gc(void)
{
	/* Named by the regex route, nobody subscribes: collected. */
	CHECK(chan("rx-gc1") != NULL && chan_info("rx-gc1", NULL, NULL));
	hub_gc();
	CHECK(!chan_info("rx-gc1", NULL, NULL));
	CHECK(chan("rx-gc1") != NULL && chan_info("rx-gc1", NULL, NULL));   /* made again */
	hub_gc();
	CHECK(!chan_info("rx-gc1", NULL, NULL));

	/* Kept while subscribed, collected after the last subscription goes. */
	struct tc a = tc_new(0);
	struct channel *ch = chan("rx-gc2");
	CHECK(sub(a.c, ch, KEYS("k"), NULL, NULL, 0, NULL) == 1);
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	hub_gc();
	CHECK(chan_info("rx-gc2", NULL, NULL));
	CHECK(hub_unsubscribe(a.c, ch, 0, NULL, 0) == 2);
	hub_gc();
	CHECK(!chan_info("rx-gc2", NULL, NULL));
	/* Subscribing again works on the new channel, and its records arrive. */
	ch = chan("rx-gc2");
	CHECK(sub(a.c, ch, NULL, NULL, NULL, 0, NULL) == 1);
	route("rx-gc2", 0, 0, NULL, "{}");
	CHECK_OFFS(a.fd, 0);
	hub_gc();
	/* Fed by a topic: kept for good, subscribed or not. */
	CHECK(hub_unsubscribe(a.c, NULL, 1, NULL, 0) == 1);
	hub_gc();
	CHECK(chan_info("rx-gc2", NULL, NULL));
	/* A client leaving also lets its channels go. */
	CHECK(sub(a.c, chan("rx-gc3"), NULL, NULL, NULL, 0, NULL) == 1);
	hub_gc();
	CHECK(chan_info("rx-gc3", NULL, NULL));
	tc_free(&a);
	hub_gc();
	CHECK(!chan_info("rx-gc3", NULL, NULL));
	/* Named by a route: never collected. */
	CHECK(chan_info("misc", NULL, NULL) && chan_info("mdchan", NULL, NULL) && chan_info("ticks", NULL, NULL));
	/* A name that fails stays unknown and leaves nothing behind. */
	CHECK(chan("nope") == NULL && !chan_info("nope", NULL, NULL));
}

static uint64_t topic_records(const char *topic)
{
	const char *n;
	const struct metrics_topic_counts *tc;
	for (size_t i = 0; metrics_topic_next(&i, &n, &tc);)
		if (strcmp(n, topic) == 0) return tc->records;
	return UINT64_MAX;
}

static void test_metrics(void)
{
	uint64_t in = metrics_get(M_RECORDS_IN);
	CHECK(topic_records("rx-met") == UINT64_MAX);
	CHECK(route("rx-met", 0, 0, "k", "{}") == 1);
	CHECK(route("rx-met", 1, 0, NULL, NULL) == 1);
	CHECK(route("unrouted.met", 0, 0, "k", "{}") == 0);   /* consumed, routed nowhere: counted */
	CHECK(metrics_get(M_RECORDS_IN) == in + 3);
	CHECK(topic_records("rx-met") == 2);
	CHECK(topic_records("unrouted.met") == 1);
	uint64_t seq;
	CHECK(chan_info("rx-met", NULL, &seq) && seq == 2);
	CHECK(!chan_info("unrouted.met", NULL, NULL));
}

int main(void)
{
	char err[256];
	log_setup(LOG_WARN, 0);   /* no line per closed test client */
	peer_cfg.topics = (const char **)routes;
	peer_cfg.ntopics = NROUTES;
	peer_cfg.snapshot_keys = 3;
	peer_init();
	if (hub_init(&peer_cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "hub_init: %s\n", err);
		return 1;
	}
	clock_advance();   /* one turn: every "now" below is the same */
	test_routes_and_channels();
	test_subscribe_unsubscribe();
	test_seq();
	test_keys();
	test_field_filters();
	test_type_filter_every_channel();
	test_one_delivery_per_client();
	test_shared_encoding();
	test_value_encodings();
	test_conflation();
	test_last_value_cache();
	test_resume_from_history();
	test_resume_from_kafka();
	test_client_gone();
	test_gc();
	test_metrics();
	return check_summary("hub");
}
