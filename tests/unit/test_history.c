/* test_history.c - the record history and the resume gates (history.h).
 *
 * The history: each replayed record is rendered as one line (offset, seq,
 * key, value, timestamp, headers; NULL and empty told apart, bytes escaped)
 * and the list compared whole, so order, content and what is left out all
 * count. A record's cost in bytes is history.c's own business, so the test
 * measures the fixed part once (the smallest --history that keeps an empty
 * record) and sizes every bound from it: then it knows exactly which records
 * eviction must take (the oldest of the FIFO, whatever its partition) and
 * where coverage starts (history_covers) after each step, including a record
 * larger than the whole history, which breaks coverage.
 *
 * The gates: a real client on a socketpair (peer.h) receives what the gate
 * lets through; the test plays both the live stream (history_gate, then
 * client_send when it says 1) and the replay (history_gate_take, send,
 * history_gate_settle), as hub.c does, and checks the client gets every
 * offset once, in order: duplicates skipped, live records held while a
 * replay runs and released after it reaches them, hold_max dropping the
 * oldest held (counted in c->dropped, so a SLOW_CONSUMER notice precedes
 * the rest), frame references returned (held, dropped, freed). */
#include <stdlib.h>

#include "check.h"
#include "peer.h"
#include "history.h"
#include "log.h"

/* ---- the history -------------------------------------------------------------- */

/* printable ASCII as is, other bytes \xHH, NULL as NULL, empty as '' */
static void esc(char *out, size_t cap, const void *p, size_t n)
{
	if (!p) { snprintf(out, cap, "NULL"); return; }
	if (!n) { snprintf(out, cap, "''"); return; }
	size_t k = 0;
	for (size_t i = 0; i < n && k + 5 < cap; i++) {
		unsigned char ch = ((const unsigned char *)p)[i];
		if (ch >= 0x21 && ch < 0x7f && ch != '\\') out[k++] = (char)ch;
		else k += (size_t)snprintf(out + k, cap - k, "\\x%02x", ch);
	}
	out[k] = '\0';
}

struct seen {
	int n;
	int stop;                /* collect asks to stop after this many (0: never) */
	char line[64][512];
};

static int collect(void *arg, const struct record *r, uint64_t seq)
{
	struct seen *s = arg;
	if (s->n == 64) return 0;
	char k[128], v[128], h[256] = "", one[96];
	esc(k, sizeof(k), r->key, r->key_len);
	esc(v, sizeof(v), r->value, r->value_len);
	for (size_t i = 0; i < r->nheaders; i++) {
		esc(one, sizeof(one), r->headers[i].value, r->headers[i].value_len);
		size_t hl = strlen(h);
		snprintf(h + hl, sizeof(h) - hl, "%s%s=%s", i ? "," : "", r->headers[i].name, one);
	}
	snprintf(s->line[s->n++], sizeof(s->line[0]), "%s:%d@%lld seq=%llu k=%s v=%s ts=%lld%s%s", r->topic,
		 (int)r->partition, (long long)r->offset, (unsigned long long)seq, k, v, (long long)r->timestamp_ms,
		 r->nheaders ? " h=" : "", h);
	return s->stop && s->n >= s->stop;
}

/* The lines of history_replay(topic, partition, last), joined by '|'. */
static const char *replayed(const char *topic, int32_t partition, int64_t last)
{
	static struct seen s;
	static char out[8192];
	s.n = 0;
	history_replay(topic, partition, last, collect, &s);
	out[0] = '\0';
	for (int i = 0; i < s.n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof(out) - l, "%s%s", i ? "|" : "", s.line[i]);
	}
	return out;
}

/* The offsets replayed, "10,11,12". */
static const char *offsets(const char *topic, int32_t partition, int64_t last)
{
	static struct seen s;
	static char out[1024];
	s.n = 0;
	history_replay(topic, partition, last, collect, &s);
	out[0] = '\0';
	for (int i = 0; i < s.n; i++) {
		const char *at = strchr(s.line[i], '@');
		size_t l = strlen(out);
		snprintf(out + l, sizeof(out) - l, "%s%lld", i ? "," : "", at ? atoll(at + 1) : -1LL);
	}
	return out;
}

#define CHECK_STR(got, want) do { const char *g_ = (got); \
	CHECKF(strcmp(g_, want) == 0, "\n got  %s\n want %s", g_, want); } while (0)

static size_t overhead;      /* history bytes of a record with no key, value or headers */
static int64_t scratch_off;

static void append(const char *topic, int32_t p, int64_t off, size_t vlen)
{
	static char val[1 << 16];
	memset(val, 'v', sizeof(val));
	struct record r = { .topic = topic, .partition = p, .offset = off, .timestamp_ms = 1000 + off,
			    .value = val, .value_len = vlen };
	history_append(&r, (uint64_t)off * 10);
}

/* The smallest --history that keeps an empty record (a kept record covers
 * from its own offset; one that cannot be kept breaks coverage past it).
 * Run first, on an empty history. */
static size_t measure_overhead(void)
{
	size_t lo = 1, hi = 4096;
	int32_t p = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		history_configure(mid, 0, 16);
		struct record r = { .topic = "probe", .partition = p, .offset = 100, .timestamp_ms = -1 };
		history_append(&r, 1);
		if (history_covers("probe", p, 99)) hi = mid; else lo = mid + 1;
		p++;
	}
	return lo;
}

/* Evicts everything but one empty record, then sets max_bytes: the FIFO is
 * then [scratch] holding `overhead` bytes. */
static void reset(size_t max_bytes, int headers, uint32_t hold_max)
{
	history_configure(overhead, headers, hold_max);
	struct record r = { .topic = "scratch", .partition = 0, .offset = ++scratch_off, .timestamp_ms = -1 };
	history_append(&r, 0);
	history_configure(max_bytes, headers, hold_max);
}

static void test_basic(void)
{
	reset(1 << 20, 0, 16);
	CHECK(!history_covers("basic", 0, 0));          /* nothing routed yet */
	append("basic", 0, 10, 1);
	append("basic", 1, 5, 2);
	append("basic", 0, 11, 3);
	append("basic", 1, 6, 0);
	append("basic", 0, 12, 1);

	/* Coverage starts at the first record routed. */
	CHECK(history_covers("basic", 0, 9) && !history_covers("basic", 0, 8));
	CHECK(history_covers("basic", 0, 12) && history_covers("basic", 0, 1000));
	CHECK(history_covers("basic", 1, 4) && !history_covers("basic", 1, 3));
	CHECK(!history_covers("basic", 2, 100) && !history_covers("basi", 0, 100) && !history_covers("basic0", 0, 100));

	/* Each partition on its own, in offset order, after last. */
	CHECK_STR(replayed("basic", 0, 9),
		  "basic:0@10 seq=100 k=NULL v=v ts=1010|basic:0@11 seq=110 k=NULL v=vvv ts=1011|"
		  "basic:0@12 seq=120 k=NULL v=v ts=1012");
	CHECK_STR(offsets("basic", 0, 10), "11,12");
	CHECK_STR(offsets("basic", 0, 12), "");
	CHECK_STR(replayed("basic", 1, 4), "basic:1@5 seq=50 k=NULL v=vv ts=1005|basic:1@6 seq=60 k=NULL v='' ts=1006");
	CHECK_STR(offsets("basic", 1, 5), "6");
	CHECK_STR(offsets("basic", 7, -1), "");
	/* fn stops it (a client whose queue is full): 1, and nothing after. */
	static struct seen st = { .stop = 2 };
	CHECK(history_replay("basic", 0, 9, collect, &st) == 1 && st.n == 2);
	st = (struct seen){ .stop = 4 };
	CHECK(history_replay("basic", 0, 9, collect, &st) == 0 && st.n == 3);

	/* A gap in offsets (compaction, transaction markers) is not a restart. */
	append("basic", 0, 20, 1);
	CHECK(history_covers("basic", 0, 9));
	CHECK_STR(offsets("basic", 0, 11), "12,20");
}

/* Keys and values round-trip exactly: null vs empty, bytes with NULs;
 * timestamps, -1 included; headers kept only when configured. */
static void test_content(void)
{
	static const struct record_header hv[] = {
		{ "trace", "abc", 3 }, { "none", NULL, 0 }, { "empty", "", 0 }, { "bin", "\x00\xff", 2 },
	};
	reset(1 << 20, 1, 16);
	struct record r = { .topic = "content", .partition = 3, .offset = 1, .timestamp_ms = -1,
			    .key = "k\0y", .key_len = 3, .value = "a\0b", .value_len = 3, .headers = hv, .nheaders = 4 };
	history_append(&r, 7);
	r = (struct record){ .topic = "content", .partition = 3, .offset = 2, .timestamp_ms = 1700000000123,
			     .key = "", .key_len = 0, .value = "", .value_len = 0 };
	history_append(&r, 8);
	r = (struct record){ .topic = "content", .partition = 3, .offset = 3, .timestamp_ms = 5,
			     .key = NULL, .value = NULL };           /* a tombstone without key */
	history_append(&r, 9);
	r = (struct record){ .topic = "content", .partition = 3, .offset = 4, .timestamp_ms = 6,
			     .key = "k", .key_len = 1, .value = NULL, .value_len = 0 };
	history_append(&r, 10);
	CHECK_STR(replayed("content", 3, 0),
		  "content:3@1 seq=7 k=k\\x00y v=a\\x00b ts=-1 h=trace=abc,none=NULL,empty='',bin=\\x00\\xff|"
		  "content:3@2 seq=8 k='' v='' ts=1700000000123|"
		  "content:3@3 seq=9 k=NULL v=NULL ts=5|"
		  "content:3@4 seq=10 k=k v=NULL ts=6");

	/* --headers off: records appended from now on keep none. */
	history_configure(1 << 20, 0, 16);
	r = (struct record){ .topic = "content", .partition = 3, .offset = 5, .timestamp_ms = 7,
			     .key = "k", .key_len = 1, .value = "x", .value_len = 1, .headers = hv, .nheaders = 4 };
	history_append(&r, 11);
	CHECK_STR(replayed("content", 3, 4), "content:3@5 seq=11 k=k v=x ts=7");

	/* --history 0: nothing is kept, nothing covered. */
	history_configure(0, 0, 16);
	append("none", 0, 1, 1);
	CHECK(!history_covers("none", 0, 0) && !history_covers("none", 0, 1));
	CHECK_STR(offsets("none", 0, -1), "");
}

/* Checks one replayed record's headers: n of them named h0.. with values
 * v0.., and the count left out upstream. */
struct many { size_t n, truncated; int ok; };

static int many_check(void *arg, const struct record *r, uint64_t seq)
{
	(void)seq;
	struct many *m = arg;
	m->n = r->nheaders;
	m->truncated = r->headers_truncated;
	m->ok = 1;
	for (size_t i = 0; i < r->nheaders; i++) {
		char name[24], val[24];
		snprintf(name, sizeof(name), "h%zu", i);
		snprintf(val, sizeof(val), "v%zu", i);
		m->ok &= strcmp(r->headers[i].name, name) == 0 && r->headers[i].value_len == strlen(val) &&
			 memcmp(r->headers[i].value, val, strlen(val)) == 0;
	}
	return 0;
}

/* Every header is kept, thousands of them, with the count of those the
 * Kafka layer could not forward; they count toward --history bytes. */
static void test_many_headers(void)
{
	enum { N = 3000 };
	static struct record_header hv[N];
	static char names[N][24], vals[N][24];
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "h%zu", i);
		snprintf(vals[i], sizeof(vals[i]), "v%zu", i);
		hv[i] = (struct record_header){ names[i], vals[i], strlen(vals[i]) };
	}
	reset(1 << 20, 1, 16);
	struct record r = { .topic = "many", .partition = 0, .offset = 1, .timestamp_ms = 1,
			    .key = "k", .key_len = 1, .value = "x", .value_len = 1,
			    .headers = hv, .nheaders = N, .headers_truncated = 7 };
	history_append(&r, 1);
	struct many m = { 0, 0, 0 };
	history_replay("many", 0, 0, many_check, &m);
	CHECKF(m.n == N && m.truncated == 7 && m.ok, "n %zu truncated %zu ok %d", m.n, m.truncated, m.ok);

	/* The headers are what makes this record big: a history too small
	 * for them keeps it not, and a resume from before it goes to Kafka. */
	reset(20000, 1, 16);
	history_append(&r, 1);
	CHECK(!history_covers("many", 0, 0));
	reset(20000, 0, 16);                      /* --headers off: it fits */
	r.partition = 1;
	history_append(&r, 1);
	CHECK(history_covers("many", 1, 0));
}

/* One FIFO across partitions: past max_bytes the oldest record goes,
 * whatever its partition, and its partition's coverage moves past it. */
static void test_eviction(void)
{
	const size_t V = 1000, C = overhead + V;
	reset(overhead + 3 * C, 0, 16);             /* [scratch] + three records */
	append("evA", 0, 1, V);
	append("evB", 0, 1, V);
	append("evA", 0, 2, V);
	CHECK(history_covers("evA", 0, 0) && history_covers("evB", 0, 0));
	CHECK_STR(offsets("evA", 0, 0), "1,2");

	append("evB", 0, 2, V);                     /* evicts scratch, then evA@1 */
	CHECK(!history_covers("evA", 0, 0) && history_covers("evA", 0, 1));
	CHECK_STR(offsets("evA", 0, 0), "2");
	CHECK_STR(offsets("evB", 0, 0), "1,2");
	CHECK(history_covers("evB", 0, 0));

	append("evA", 0, 3, V);                     /* evicts evB@1 */
	CHECK(!history_covers("evB", 0, 0) && history_covers("evB", 0, 1));
	CHECK_STR(offsets("evB", 0, 0), "2");
	CHECK_STR(offsets("evA", 0, 1), "2,3");

	/* Another partition's records push both out entirely. */
	append("evC", 5, 100, V);
	append("evC", 5, 101, V);
	append("evC", 5, 102, V);
	CHECK_STR(offsets("evA", 0, -1), "");
	CHECK_STR(offsets("evB", 0, -1), "");
	CHECK_STR(offsets("evC", 5, -1), "100,101,102");
	CHECK(history_covers("evA", 0, 3) && !history_covers("evA", 0, 2));   /* nothing after 3 is missing */
	CHECK(history_covers("evB", 0, 2) && !history_covers("evB", 0, 1));
	CHECK(history_covers("evC", 5, 99) && !history_covers("evC", 5, 98));

	/* Eviction takes exactly as many as it must: a record of half a C
	 * takes one, a record of two C takes two. */
	append("evD", 0, 1, V / 2 - overhead);
	CHECK_STR(offsets("evC", 5, -1), "101,102");
	append("evD", 0, 2, overhead + 2 * V);
	CHECK_STR(offsets("evC", 5, -1), "");
	CHECK_STR(offsets("evD", 0, 0), "1,2");
	CHECK(history_covers("evC", 5, 102) && !history_covers("evC", 5, 101));
}

/* A record larger than the whole history cannot be kept: coverage then
 * starts after it, so a resume from before it must ask Kafka. */
static void test_oversize(void)
{
	const size_t V = 1000, C = overhead + V;
	reset(overhead + 2 * C, 0, 16);
	append("big", 0, 1, V);
	append("big", 0, 2, 3 * C);
	CHECK(!history_covers("big", 0, 0) && !history_covers("big", 0, 1));
	CHECK(history_covers("big", 0, 2));
	CHECK_STR(offsets("big", 0, 2), "");
	append("big", 0, 3, V);
	CHECK(history_covers("big", 0, 2) && !history_covers("big", 0, 1));
	CHECK_STR(offsets("big", 0, 2), "3");
	CHECK_STR(offsets("big", 0, 1), "3");       /* 2 was never held */

	/* The very first record of a partition too large: covered after it. */
	append("big", 1, 50, 3 * C);
	CHECK(!history_covers("big", 1, 49) && history_covers("big", 1, 50));
	CHECK_STR(offsets("big", 1, 0), "");
}

/* ---- resume gates ------------------------------------------------------------- */

static struct frame *fr[1000];   /* fr[o]: the frame of offset o, the test's own reference */

static struct frame *mkf(int64_t o)
{
	char json[48];
	int n = snprintf(json, sizeof(json), "{\"o\":%lld}", (long long)o);
	struct frame *f = frame_ws(WS_OP_TEXT, json, (size_t)n, FRAME_DATA);
	if (!f) abort();
	return f;
}

/* Checks that only the test holds each frame, then makes new ones. */
static void frames_reset(void)
{
	int bad = 0;
	for (int i = 0; i < 1000; i++) {
		if (fr[i] && fr[i]->refs != 1 && bad++ == 0)
			fprintf(stderr, "frame %d: refs %u at the end\n", i, fr[i]->refs);
		frame_unref(fr[i]);
		fr[i] = mkf(i);
	}
	CHECKF(bad == 0, "%d frames still referenced by a gate or a queue", bad);
}

/* The live stream, as hub.c's deliver(): through the gate, sent when it says so. */
static int live(struct client *c, const void *t, int32_t p, int64_t o)
{
	if (!history_gate(c, t, p, o, fr[o])) return 0;
	client_send(c, frame_ref(fr[o]));
	return 1;
}

/* The replay, as hub.c's replay_one(). */
static int replay(struct client *c, const void *t, int32_t p, int64_t o)
{
	if (!history_gate_take(c, t, p, o)) return 0;
	client_send(c, frame_ref(fr[o]));
	history_gate_settle(c, t, p);
	return 1;
}

/* What the peer received: "10,11,N2" (N2: a SLOW_CONSUMER notice of 2). */
static const char *received(int fd)
{
	static char out[2048];
	struct pframe f[256];
	int n = peer_recv(fd, f, 256);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out);
		const char *o = strstr(f[i].data, "\"o\":"), *d = strstr(f[i].data, "\"dropped\":");
		if (pframe_has(&f[i], "SLOW_CONSUMER") && d)
			snprintf(out + l, sizeof(out) - l, "%sN%d", i ? "," : "", atoi(d + 10));
		else
			snprintf(out + l, sizeof(out) - l, "%s%d", i ? "," : "", o ? atoi(o + 4) : -1);
	}
	peer_frames_free(f, n < 0 ? 0 : n);
	return n < 0 ? "malformed" : out;
}

static const char T[] = "gated", U[] = "other";
static char T_copy[] = "gated";   /* same text, another topic: gates key on the pointer */

static void test_gate_settle(void)
{
	int fd;
	history_configure(1 << 20, 0, 64);
	frames_reset();
	struct client *c = peer_client(&fd, 0, 0);

	CHECK(history_gate_open(c, T, 0, 9) == 0 && c->rs != NULL);
	/* Not replaying: duplicates dropped, the rest passes and moves on. */
	CHECK(live(c, T, 0, 9) == 0);
	CHECK(live(c, T, 0, 10) == 1);
	CHECK(live(c, T, 0, 10) == 0);
	CHECK(live(c, T, 0, 12) == 1);               /* a gap is fine: Kafka offsets skip */
	CHECK(live(c, T, 0, 11) == 0);
	/* Other partitions and other topics have no gate. */
	CHECK(live(c, T, 1, 3) == 1 && live(c, U, 0, 3) == 1 && live(c, T_copy, 0, 3) == 1);
	CHECK_STR(received(fd), "10,12,3,3,3");

	/* Reopening moves the gate. */
	CHECK(history_gate_open(c, T, 0, 49) == 0);
	CHECK(live(c, T, 0, 49) == 0 && live(c, T, 0, 50) == 1);
	CHECK_STR(received(fd), "50");

	/* A replay from 59 runs: live records are held (the gate's own
	 * reference), older ones dropped. */
	CHECK(history_gate_open(c, T, 0, 59) == 0);
	history_gate_hold(c, T, 0);
	CHECK(live(c, T, 0, 62) == 0 && fr[62]->refs == 2);
	CHECK(live(c, T, 0, 63) == 0 && fr[63]->refs == 2);
	CHECK(live(c, T, 0, 55) == 0 && fr[55]->refs == 1);
	CHECK(live(c, T, 0, 63) == 0);               /* a live duplicate: held too, released once */
	CHECK_STR(received(fd), "");                 /* nothing yet */

	CHECK(replay(c, T, 0, 59) == 0);             /* the client had it */
	CHECK(replay(c, T, 0, 60) == 1);
	CHECK(replay(c, T, 0, 60) == 0);
	CHECK_STR(received(fd), "60");               /* held ones wait: the replay is not there yet */
	CHECK(replay(c, T, 0, 61) == 1);             /* reaches 62: the held ones go */
	CHECK(replay(c, T, 0, 62) == 0 && replay(c, T, 0, 63) == 0);
	CHECK(live(c, T, 0, 63) == 0 && live(c, T, 0, 64) == 1);
	CHECK_STR(received(fd), "61,62,63,64");

	/* Every reference the gate took went into the queue and out. */
	history_gate_free(c);
	CHECK(c->rs == NULL);
	history_gate_free(c);
	peer_forget(c);
	client_free(c);
	peer_close(fd);
	frames_reset();
}

/* A replay that ends (caught up, gap, or failure) releases what is held,
 * skipping what the replay already delivered. */
static void test_gate_release(void)
{
	int fd;
	history_configure(1 << 20, 0, 64);
	frames_reset();
	struct client *c = peer_client(&fd, 0, 0);

	CHECK(history_gate_open(c, T, 2, 99) == 0);
	history_gate_release(c, T, 2);              /* not replaying: nothing to do */
	history_gate_hold(c, T, 2);
	CHECK(live(c, T, 2, 105) == 0 && live(c, T, 2, 106) == 0);
	history_gate_settle(c, T, 2);               /* the replay is not at 105 */
	CHECK_STR(received(fd), "");
	history_gate_release(c, T, 2);              /* 100..104 were not there */
	CHECK_STR(received(fd), "105,106");
	CHECK(live(c, T, 2, 106) == 0 && live(c, T, 2, 107) == 1);

	/* The replay got past some held records without settling: those are
	 * not sent twice. */
	CHECK(history_gate_open(c, T, 3, 199) == 0);
	history_gate_hold(c, T, 3);
	CHECK(live(c, T, 3, 201) == 0 && live(c, T, 3, 202) == 0 && live(c, T, 3, 203) == 0);
	for (int64_t o = 200; o <= 202; o++)
		if (history_gate_take(c, T, 3, o)) client_send(c, frame_ref(fr[o]));
	history_gate_release(c, T, 3);
	CHECK_STR(received(fd), "107,200,201,202,203");
	CHECK(fr[201]->refs == 1 && fr[203]->refs == 1);

	/* Two partitions replaying at once, released independently. */
	CHECK(history_gate_open(c, T, 4, 299) == 0 && history_gate_open(c, U, 4, 399) == 0);
	history_gate_hold(c, T, 4);
	history_gate_hold(c, U, 4);
	CHECK(live(c, T, 4, 301) == 0 && live(c, U, 4, 401) == 0);
	history_gate_release(c, U, 4);
	CHECK_STR(received(fd), "401");
	CHECK(replay(c, T, 4, 300) == 1);
	CHECK_STR(received(fd), "300,301");

	history_gate_free(c);
	peer_forget(c);
	client_free(c);
	peer_close(fd);
	frames_reset();
}

/* hold_max: the oldest held record gives way, counted as dropped, so the
 * client is told (SLOW_CONSUMER) before what is left. history_gate_free
 * returns every held reference. */
static void test_gate_hold_max(void)
{
	int fd;
	history_configure(1 << 20, 0, 3);
	frames_reset();
	struct client *c = peer_client(&fd, 0, 0);

	CHECK(history_gate_open(c, T, 5, 0) == 0);
	history_gate_hold(c, T, 5);
	for (int64_t o = 1; o <= 5; o++) CHECK(live(c, T, 5, o) == 0);
	CHECK(c->dropped == 2 && fr[1]->refs == 1 && fr[2]->refs == 1);
	CHECK(fr[3]->refs == 2 && fr[5]->refs == 2);
	history_gate_release(c, T, 5);
	CHECK_STR(received(fd), "N2,3,4,5");
	CHECK(c->dropped == 0);

	/* Freed while holding: the references come back. */
	CHECK(history_gate_open(c, T, 6, 10) == 0);
	history_gate_hold(c, T, 6);
	CHECK(live(c, T, 6, 11) == 0 && live(c, T, 6, 12) == 0);
	CHECK(fr[11]->refs == 2);
	history_gate_free(c);
	CHECK(c->rs == NULL && fr[11]->refs == 1 && fr[12]->refs == 1);
	CHECK_STR(received(fd), "");

	peer_forget(c);
	client_free(c);
	peer_close(fd);
	frames_reset();
	for (int i = 0; i < 1000; i++) frame_unref(fr[i]);
}

int main(void)
{
	log_setup(LOG_ERROR, 0);
	peer_init();
	overhead = measure_overhead();
	CHECKF(overhead >= sizeof(void *) && overhead < 1024, "overhead %zu", overhead);
	test_basic();
	test_content();
	test_many_headers();
	test_eviction();
	test_oversize();
	test_gate_settle();
	test_gate_release();
	test_gate_hold_max();
	return check_summary("history");
}
