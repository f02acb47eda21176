/* test_state.c - the state dialect (state.h) through the protocol layer,
 * with real socket pairs: snapshots of every subscribed channel, the three
 * shapes (--state-shape or the first record), updates once per period with
 * the changed paths only, changed keys whole at the first tick after a
 * snapshot, tombstones as null, a list's first-appearance order, filters,
 * seq per connection, the shared update body (one frame referenced by every
 * client of a group), MessagePack's Timestamp extension, a fresh snapshot
 * instead of an update for a client that cannot take it (no
 * SLOW_CONSUMER), and a channel whose name holds '.'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "peer.h"

#include "clock.h"
#include "hub.h"
#include "log.h"
#include "proto.h"
#include "state.h"

static const char *const routes[] = { "md=market_data", "pos=positions", "ord=orders", "acct=account", "dots=a.b" };
static const char *const shapes[] = { "orders=list" };

static int64_t now_ms;
static int64_t off;

static void ask(struct client *c, const char *text)
{
	struct json_tok tok[256];
	int n = json_parse(text, strlen(text), tok, 256, 16);
	struct msg_ctx m = { .c = c, .src = text, .tok = tok, .ntok = n };
	int t = json_obj_get(text, tok, 0, "id");
	if (t >= 0) {
		m.id = text + tok[t].start;
		m.id_len = tok[t].len;
	}
	proto_handle(&m);
}

static void route(const char *topic, const char *key, const char *val)
{
	struct record r = peer_record(topic, 0, off++, key, val, -1);
	hub_route(&r);
}

/* Runs the next tick of every period. */
static void tick(void)
{
	now_ms += 1000;
	state_service(now_ms);
}

static struct tc dial(const char *query)
{
	struct tc t = tc_new(0);
	struct upgrade_opts o;
	char err[128];
	CHECKF(proto_upgrade_parse(query, strlen(query), &o, err, sizeof(err)) == 0, "%s: %s", query, err);
	proto_upgrade_apply(t.c, &o);
	return t;
}

static void bye(struct tc *t)
{
	proto_client_gone(t->c);
	peer_forget(t->c);
	client_free(t->c);
	peer_close(t->fd);
}

/* The next messages as text: "type:seq:field" for snapshots (data) and
 * updates (changes), "type" for the rest, joined by '|'. */
static const char *next(struct tc *t)
{
	static char out[1 << 16];
	struct pframe f[32];
	int n = peer_recv_json(t->fd, f, 32);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out), vl = 0;
		const char *type = pframe_field(&f[i], "type", &vl);
		size_t dl = 0;
		const char *d = pframe_field(&f[i], "data", &dl);
		if (!d) d = pframe_field(&f[i], "changes", &dl);
		if (d)
			snprintf(out + l, sizeof(out) - l, "%s%.*s:%lld:%.*s", l ? "|" : "", (int)vl, type,
				 (long long)pframe_int(&f[i], "seq"), (int)dl, d);
		else
			snprintf(out + l, sizeof(out) - l, "%s%.*s", l ? "|" : "", type ? (int)vl : 1, type ? type : "?");
	}
	peer_frames_free(f, n);
	return out;
}

#define CHECK_NEXT(t, want) do { const char *g_ = next(t); \
	CHECKF(strcmp(g_, want) == 0, "\n got  %s\n want %s", g_, want); } while (0)

static void test_shapes(void)
{
	struct tc a = dial("type=web");
	ask(a.c, "{\"type\":\"subscribe\",\"channels\":[\"market_data\",\"orders\",\"positions\",\"account\"]}");
	/* Before any record: a list [], a channel of unknown shape null (any
	 * shape may follow; a client creates objects as it applies changes) */
	CHECK_NEXT(&a, "\"ack\"|\"snapshot\":1:{\"market_data\":null,\"orders\":[],\"positions\":null,\"account\":null}");
	route("md", "BTC", "{\"p\":1,\"q\":{\"b\":1,\"a\":2}}");
	route("md", "ETH", "{\"p\":2}");
	route("acct", NULL, "{\"total\":5}");   /* no key: the account is one value */
	route("ord", "o1", "{\"id\":\"o1\",\"s\":\"new\"}");
	route("ord", "o2", "{\"id\":\"o2\",\"s\":\"new\"}");
	route("pos", "BTC", NULL);              /* a tombstone of nothing */
	tick();
	/* Shapes became known: those channels whole. */
	CHECK_NEXT(&a, "\"update\":2:{\"market_data\":{\"BTC\":{\"p\":1,\"q\":{\"b\":1,\"a\":2}},\"ETH\":{\"p\":2}},"
		       "\"orders\":[{\"id\":\"o1\",\"s\":\"new\"},{\"id\":\"o2\",\"s\":\"new\"}],\"positions\":{},"
		       "\"account\":{\"total\":5}}");
	tick();
	CHECK_NEXT(&a, "");                      /* nothing changed: nothing sent */
	route("md", "BTC", "{\"p\":3,\"q\":{\"b\":1,\"a\":2}}");
	route("acct", "anything", "{\"total\":6}");
	route("ord", "o1", "{\"id\":\"o1\",\"s\":\"filled\"}");   /* o1 stays first */
	tick();
	CHECK_NEXT(&a, "\"update\":3:{\"market_data.BTC.p\":3,"
		       "\"orders\":[{\"id\":\"o1\",\"s\":\"filled\"},{\"id\":\"o2\",\"s\":\"new\"}],\"account.total\":6}");
	route("md", "BTC", "{\"p\":3}");        /* a field gone: the object whole */
	route("md", "ETH", NULL);               /* a tombstone: null at the key */
	route("ord", "o1", NULL);
	route("ord", "o1", "{\"id\":\"o1\",\"s\":\"again\"}");    /* deleted and back: last */
	route("acct", NULL, NULL);              /* value: null */
	tick();
	CHECK_NEXT(&a, "\"update\":4:{\"market_data.BTC\":{\"p\":3},\"market_data.ETH\":null,"
		       "\"orders\":[{\"id\":\"o2\",\"s\":\"new\"},{\"id\":\"o1\",\"s\":\"again\"}],\"account\":null}");
	route("ord", "o2", "{ \"s\":\"new\", \"id\":\"o2\" }");   /* the same value, written otherwise */
	route("md", "BTC", "{\"p\" : 3}");
	tick();
	CHECK_NEXT(&a, "");
	route("md", "BTC", "7");                /* object -> scalar */
	route("md", "SOL", "\"x\"");
	route("md", "a.b", "{\"k\":1}");        /* a key no path can name: the channel whole */
	tick();
	CHECK_NEXT(&a, "\"update\":5:{\"market_data\":{\"BTC\":7,\"SOL\":\"x\",\"a.b\":{\"k\":1}}}");
	/* refresh: the whole state, the request's id */
	ask(a.c, "{\"type\":\"refresh\",\"id\":9}");
	CHECK_NEXT(&a, "\"snapshot\":6:{\"market_data\":{\"BTC\":7,\"SOL\":\"x\",\"a.b\":{\"k\":1}},"
		       "\"orders\":[{ \"s\":\"new\", \"id\":\"o2\" },{\"id\":\"o1\",\"s\":\"again\"}],\"positions\":{},\"account\":null}");
	/* the same subscription again: an ack, no snapshot; unsubscribe: one */
	ask(a.c, "{\"type\":\"subscribe\",\"channel\":\"orders\"}");
	CHECK_NEXT(&a, "\"ack\"");
	ask(a.c, "{\"type\":\"unsubscribe\",\"channels\":[\"orders\",\"positions\"]}");
	CHECK_NEXT(&a, "\"ack\"|\"snapshot\":7:{\"market_data\":{\"BTC\":7,\"SOL\":\"x\",\"a.b\":{\"k\":1}},\"account\":null}");
	route("ord", "o3", "{}");                /* not subscribed any more */
	tick();
	CHECK_NEXT(&a, "");
	/* not in this dialect */
	ask(a.c, "{\"action\":\"subscribe\"}");
	CHECK_NEXT(&a, "\"error\"");
	ask(a.c, "{\"type\":\"subscribe\",\"channel\":\"orders\",\"interval\":5}");
	CHECK_NEXT(&a, "\"error\"");
	bye(&a);
}

/* Clients with the same period, format and subscriptions share one body
 * frame per update; other formats, filters or periods get their own. */
static void test_sharing(void)
{
	struct tc a = dial("type=web&channel=positions"), b = dial("type=web"), m = dial("type=web&format=msgpack");
	struct tc k = dial("type=web"), t = dial("type=tui&channel=positions");
	ask(b.c, "{\"type\":\"subscribe\",\"channel\":\"positions\"}");
	ask(m.c, "{\"type\":\"subscribe\",\"channel\":\"positions\"}");
	ask(k.c, "{\"type\":\"subscribe\",\"channel\":\"positions\",\"key\":\"ETH\"}");
	next(&a); next(&b); next(&m); next(&k); next(&t);
	route("pos", "BTC", "{\"pnl\":1}");
	route("pos", "ETH", "{\"pnl\":2}");
	tick();
	struct frame *fa = outq_at(&a.c->q, 1), *fb = outq_at(&b.c->q, 1), *fm = outq_at(&m.c->q, 1),
		     *fk = outq_at(&k.c->q, 1), *ft = outq_at(&t.c->q, 1);
	CHECK(a.c->q.count == 2 && fa && fa == fb && fa->glued && outq_at(&a.c->q, 0) != outq_at(&b.c->q, 0));
	CHECK(fm && fm != fa && fk && fk != fa && ft && ft != fa);
	uint32_t clients, groups;
	uint64_t updates;
	state_counts(&clients, &groups, &updates);
	CHECK(clients == 5 && groups == 4);
	CHECK_NEXT(&a, "\"update\":2:{\"positions.BTC\":{\"pnl\":1},\"positions.ETH\":{\"pnl\":2}}");
	CHECK_NEXT(&b, "\"update\":2:{\"positions.BTC\":{\"pnl\":1},\"positions.ETH\":{\"pnl\":2}}");
	CHECK_NEXT(&k, "\"update\":2:{\"positions.ETH\":{\"pnl\":2}}");   /* its key filter */
	CHECK_NEXT(&t, "\"update\":2:{\"positions.BTC\":{\"pnl\":1},\"positions.ETH\":{\"pnl\":2}}");
	/* MessagePack: the same object; timestamp is the Timestamp extension */
	struct pframe f[4];
	int n = peer_recv(m.fd, f, 4);
	static const unsigned char ts[] = { 0xa9, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0xd7, 0xff };
	CHECKF(n == 1 && f[0].op == WS_OP_BINARY && memmem(f[0].data, f[0].len, ts, sizeof(ts)) != NULL, "%d frames", n);
	peer_frames_free(f, n);
	bye(&a); bye(&b); bye(&m); bye(&k); bye(&t);
	state_counts(&clients, &groups, &updates);
	CHECK(clients == 0 && groups == 0);
}

/* A field filter decides which values a client sees: a value that stops
 * matching leaves its state as a deleted key would. */
static void test_filters(void)
{
	struct tc a = dial("type=tui");
	ask(a.c, "{\"type\":\"subscribe\",\"channel\":\"positions\",\"filter\":{\"side\":\"long\"}}");
	next(&a);
	route("pos", "X", "{\"side\":\"long\",\"v\":1}");
	route("pos", "Y", "{\"side\":\"short\",\"v\":1}");
	tick();
	/* (the first tick after its snapshot: Y may have matched in between) */
	CHECK_NEXT(&a, "\"update\":2:{\"positions.X\":{\"side\":\"long\",\"v\":1},\"positions.Y\":null}");
	route("pos", "X", "{\"side\":\"short\",\"v\":2}");
	route("pos", "Y", "{\"side\":\"long\",\"v\":2}");
	tick();
	CHECK_NEXT(&a, "\"update\":3:{\"positions.X\":null,\"positions.Y\":{\"side\":\"long\",\"v\":2}}");
	bye(&a);
}

/* A client that cannot take an update gets none, and once its queue is
 * empty a fresh snapshot; never a SLOW_CONSUMER. */
static void test_slow(void)
{
	peer_cfg.client_buffer = 4096;
	peer_init();
	struct tc a;
	a.c = peer_client(&a.fd, 0, 4096);
	struct upgrade_opts o;
	char err[64];
	proto_upgrade_parse("type=tui&channel=positions", 26, &o, err, sizeof(err));
	proto_upgrade_apply(a.c, &o);
	next(&a);
	char big[3000];
	memset(big, 'x', sizeof(big));
	big[0] = '"';
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 40; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		route("pos", key, big);
		tick();
		peer_flush();                          /* the socket takes what it can; nobody reads */
	}
	/* Now it reads: whatever updates went, then one snapshot with all 40
	 * keys, then updates again. */
	struct pframe f[64];
	int n = 0, snaps = 0, slow = 0;
	int64_t last_seq = 1, bad_seq = 0;
	CHECK(a.c->q.count <= 2);                  /* what waited for the socket: one update at most */
	for (int round = 0; round < 200; round++) {
		client_write(a.c);                     /* as the server does on EPOLLOUT */
		int got = peer_recv_json(a.fd, f, 64);
		for (int i = 0; i < got; i++) {
			if (pframe_has(&f[i], "SLOW_CONSUMER")) slow++;
			if (pframe_is(&f[i], "type", "\"snapshot\"")) {
				snaps++;
				CHECK(pframe_has(&f[i], "\"k0\"") && pframe_has(&f[i], "\"k39\""));
			}
			int64_t s = pframe_int(&f[i], "seq");
			bad_seq += s != last_seq + 1;
			last_seq = s;
		}
		peer_frames_free(f, got);
		n += got;
		tick();
	}
	CHECKF(snaps == 1 && slow == 0 && bad_seq == 0, "%d messages, %d snapshots, %d slow, %lld seq jumps", n, snaps, slow,
	       (long long)bad_seq);
	/* and it is back to updates */
	route("pos", "k0", "1");
	tick();
	n = peer_recv_json(a.fd, f, 4);
	CHECKF(n == 1 && pframe_is(&f[0], "type", "\"update\"") && pframe_int(&f[0], "seq") == last_seq + 1 &&
	       pframe_is(&f[0], "changes", "{\"positions.k0\":1}"), "%d: %s", n, n ? f[0].data : "");
	peer_frames_free(f, n);
	bye(&a);
	peer_cfg.client_buffer = 1 << 20;
	peer_init();
}

/* A client whose snapshot came between two ticks holds keys created since
 * the last tick: when they go before the next one, it is told (a map
 * names them null, a list goes whole), though nothing changed for the
 * clients that never saw them. */
static void test_late_snapshot(void)
{
	struct tc a = dial("type=web&channels=market_data,orders");
	next(&a);
	route("md", "early", "1");
	tick();
	next(&a);
	route("md", "gone", "{\"g\":1}");
	route("ord", "o9", "{\"id\":\"o9\"}");
	struct tc b = dial("type=web&channels=market_data,orders");
	const char *snap = next(&b);
	CHECKF(strstr(snap, "\"gone\":{\"g\":1}") && strstr(snap, "{\"id\":\"o9\"}"), "%s", snap);
	route("md", "gone", NULL);
	route("ord", "o9", NULL);
	tick();
	CHECK_NEXT(&a, "");                       /* never saw them: nothing */
	const char *u = next(&b);
	CHECKF(strstr(u, "\"market_data.gone\":null") && strstr(u, "\"orders\":[") && !strstr(u, "o9"), "%s", u);
	/* The same through a filter: a value that matched only between the
	 * ticks, when the late client took its snapshot. */
	route("md", "fk", "{\"p\":0}");
	tick();
	next(&a);
	next(&b);
	route("md", "fk", "{\"p\":1}");
	struct tc c = dial("type=web");
	ask(c.c, "{\"type\":\"subscribe\",\"channel\":\"market_data\",\"filter\":{\"p\":1}}");
	CHECK_NEXT(&c, "\"ack\"|\"snapshot\":1:{\"market_data\":{\"fk\":{\"p\":1}}}");
	route("md", "fk", "{\"p\":0}");
	tick();
	CHECK_NEXT(&c, "\"update\":2:{\"market_data.fk\":null}");
	bye(&a);
	bye(&b);
	bye(&c);
}

/* A channel named with a '.' cannot be a path: its changes come as
 * snapshots. */
static void test_dotted_channel(void)
{
	struct tc a = dial("type=web&channel=a.b");
	CHECK_NEXT(&a, "\"snapshot\":1:{\"a.b\":null}");
	route("dots", "k", "1");
	tick();
	CHECK_NEXT(&a, "\"snapshot\":2:{\"a.b\":{\"k\":1}}");
	bye(&a);
}

int main(void)
{
	char err[256];
	log_setup(LOG_WARN, 0);
	peer_cfg.topics = (const char **)routes;
	peer_cfg.ntopics = sizeof(routes) / sizeof(routes[0]);
	peer_cfg.state_shapes = (const char **)shapes;
	peer_cfg.nstate_shapes = 1;
	peer_init();
	if (proto_init(&peer_cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "proto_init: %s\n", err);
		return 1;
	}
	clock_advance();
	now_ms = clock_now();
	test_shapes();
	test_sharing();
	test_filters();
	test_slow();
	test_late_snapshot();
	test_dotted_channel();
	return check_summary("state");
}
