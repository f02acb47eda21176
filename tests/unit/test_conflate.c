/* test_conflate.c - per-client conflation (conflate.h), seen from a real
 * client on a socketpair (peer.h): the first record of a (channel, key) goes
 * at once; within the interval only the newest is held (the ones it replaces
 * are released: frame refs counted) and goes when the interval is over
 * (conflate_service); conflate_timeout_ms says when; each key and channel is
 * independent; conflate_drop_channel forgets one channel's held records
 * only; conflate_client_gone frees everything and unlists the client
 * (ASan/LSan in the asan build see a leak or a use after free); past
 * CONF_MAX_KEYS (10000) keys a record passes unconflated until idle entries
 * can be pruned.
 *
 * Timing: conflate_offer reads the turn clock (clock_now), which only moves
 * on clock_advance(). Everything asserted as "held" is decided on a frozen
 * turn clock, so it is deterministic; the test only waits (usleep, then
 * clock_advance) for an interval to be over, and never asserts that
 * something did not happen because little time passed. */
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "peer.h"
#include "clock.h"
#include "conflate.h"
#include "log.h"

static const char CH1[] = "ch1", CH2[] = "ch2";   /* channels: opaque pointers */

static struct frame *mk(const char *name)
{
	struct frame *f = frame_ws(WS_OP_TEXT, name, strlen(name), FRAME_DATA);
	if (!f) abort();
	return f;
}

static const char TOPIC[] = "t";
static int64_t next_offset;   /* each offer is the next record of t:0 */

/* Offers the test's frame f (the test keeps its own reference). */
static void offer(struct client *c, const void *chan, const char *key, struct frame *f, uint32_t ms)
{
	conflate_offer(c, chan, key, key ? strlen(key) : 0, frame_ref(f), ms,
		       (struct conflate_at){ TOPIC, 0, next_offset++ });
}

/* The payloads the peer received since the last call, "A1,B1". */
static const char *received(int fd)
{
	static char out[4096];
	struct pframe f[64];
	int n = peer_recv(fd, f, 64);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof(out) - l, "%s%s", i ? "," : "", f[i].data);
	}
	peer_frames_free(f, n < 0 ? 0 : n);
	return n < 0 ? "malformed" : out;
}

#define CHECK_RX(fd, want) do { const char *g_ = received(fd); \
	CHECKF(strcmp(g_, want) == 0, "peer got \"%s\", want \"%s\"", g_, want); } while (0)

/* Waits until the turn clock is at least t (a slow machine waits longer). */
static void wait_until(int64_t t)
{
	while (clock_advance() < t) usleep(2000);
}

static void test_interval(void)
{
	enum { I = 40 };
	int fd;
	struct client *c = peer_client(&fd, 0, 0);
	struct frame *a1 = mk("A1"), *a2 = mk("A2"), *a3 = mk("A3"), *a4 = mk("A4"), *a5 = mk("A5"),
		     *a6 = mk("A6"), *b1 = mk("B1"), *c1 = mk("C1");

	int64_t t0 = clock_advance();
	CHECK(conflate_timeout_ms(t0) == -1);        /* nothing waits */
	offer(c, CH1, "k", a1, I);                   /* first of its key: at once */
	CHECK(c->cf != NULL);
	CHECK_RX(fd, "A1");
	offer(c, CH1, "k", a2, I);                   /* within the interval: held */
	CHECK(a2->refs == 2);
	int64_t off;
	CHECK(conflate_first_held(c, TOPIC, 0, &off) && off == next_offset - 1);   /* A2's place */
	offer(c, CH1, "k", a3, I);                   /* the newest replaces it */
	CHECK(a2->refs == 1 && a3->refs == 2);
	/* What a reader's position may not pass: the held A3, not the dropped A2. */
	CHECK(conflate_first_held(c, TOPIC, 0, &off) && off == next_offset - 1);
	CHECK(!conflate_first_held(c, TOPIC, 1, &off) && !conflate_first_held(c, "t2", 0, &off));
	CHECK(conflate_timeout_ms(clock_now()) == I);
	conflate_service(clock_now());               /* not due on this turn */
	CHECK_RX(fd, "");
	CHECK(a3->refs == 2);

	/* Other keys, and the same key on another channel, are their own. */
	offer(c, CH1, "j", b1, I);
	offer(c, CH2, "k", c1, I);
	CHECK_RX(fd, "B1,C1");

	wait_until(t0 + I);
	CHECK(conflate_timeout_ms(clock_now()) == 0);
	conflate_service(clock_now());
	CHECK_RX(fd, "A3");
	CHECK(a3->refs == 1);
	CHECK(!conflate_first_held(c, TOPIC, 0, &off));   /* nothing held */
	CHECK(conflate_timeout_ms(clock_now()) == -1);

	/* The interval counts from that delivery: the next one is held... */
	int64_t t1 = clock_now();
	offer(c, CH1, "k", a4, I);
	CHECK(a4->refs == 2 && conflate_timeout_ms(t1) == I);
	CHECK_RX(fd, "");
	/* ...and replaced by a newer one even after it fell due: only the
	 * newest goes. */
	wait_until(t1 + I);
	offer(c, CH1, "k", a5, I);
	CHECK(a4->refs == 1 && a5->refs == 2);
	CHECK(conflate_timeout_ms(clock_now()) == 0);
	conflate_service(clock_now());
	CHECK_RX(fd, "A5");

	/* A key idle for a whole interval goes at once again. */
	wait_until(clock_now() + I);
	offer(c, CH1, "k", a6, I);
	CHECK_RX(fd, "A6");
	CHECK(conflate_timeout_ms(clock_now()) == -1);

	/* A long wait is reported as at most a second (the loop's tick). */
	offer(c, CH2, "long", a1, 5000);
	offer(c, CH2, "long", a2, 5000);
	CHECK(conflate_timeout_ms(clock_now()) == 1000);
	CHECK_RX(fd, "A1");

	conflate_client_gone(c);
	CHECK(c->cf == NULL && a2->refs == 1);
	CHECK(conflate_timeout_ms(clock_now()) == -1);
	conflate_client_gone(c);                     /* nothing left: harmless */
	struct frame *all[] = { a1, a2, a3, a4, a5, a6, b1, c1 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		CHECKF(all[i]->refs == 1, "frame %zu refs %u", i, all[i]->refs);
		frame_unref(all[i]);
	}
	peer_forget(c);
	client_free(c);
	peer_close(fd);
}

/* Keys are compared whole, however long; records without a key conflate
 * together per channel. */
static void test_keys(void)
{
	enum { I = 30 };
	int fd;
	struct client *c = peer_client(&fd, 0, 0);
	char k1[700], k2[700];
	memset(k1, 'x', sizeof(k1) - 1);
	k1[sizeof(k1) - 1] = '\0';
	memcpy(k2, k1, sizeof(k1));
	k2[sizeof(k2) - 2] = 'y';                    /* differs in the last byte only */
	struct frame *f1 = mk("L1"), *f2 = mk("L2"), *f3 = mk("L3"), *n1 = mk("N1"), *n2 = mk("N2"), *n3 = mk("N3");

	int64_t t0 = clock_advance();
	offer(c, CH1, k1, f1, I);
	offer(c, CH1, k2, f2, I);                    /* another key: at once */
	offer(c, CH1, k1, f3, I);                    /* the same long key: held */
	CHECK_RX(fd, "L1,L2");
	CHECK(f3->refs == 2);

	offer(c, CH2, NULL, n1, I);
	offer(c, CH2, NULL, n2, I);
	offer(c, CH2, NULL, n3, I);
	CHECK_RX(fd, "N1");
	CHECK(n2->refs == 1 && n3->refs == 2);

	wait_until(t0 + I);
	conflate_service(clock_now());
	const char *got = received(fd);
	CHECKF(strcmp(got, "L3,N3") == 0 || strcmp(got, "N3,L3") == 0, "peer got \"%s\"", got);

	conflate_client_gone(c);
	struct frame *all[] = { f1, f2, f3, n1, n2, n3 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		CHECKF(all[i]->refs == 1, "frame %zu refs %u", i, all[i]->refs);
		frame_unref(all[i]);
	}
	peer_forget(c);
	client_free(c);
	peer_close(fd);
}

static void test_drop_channel(void)
{
	enum { I = 30 };
	int fd;
	struct client *c = peer_client(&fd, 0, 0);
	struct frame *x1 = mk("X1"), *x2 = mk("X2"), *y1 = mk("Y1"), *y2 = mk("Y2"), *z1 = mk("Z1"), *z2 = mk("Z2");

	conflate_drop_channel(c, CH1);               /* no conflation state yet */
	CHECK(c->cf == NULL);
	int64_t t0 = clock_advance();
	offer(c, CH1, "k", x1, I);
	offer(c, CH1, "k", x2, I);
	offer(c, CH2, "k", y1, I);
	offer(c, CH2, "k", y2, I);
	offer(c, CH1, "j", z1, I);
	offer(c, CH1, "j", z2, I);
	CHECK_RX(fd, "X1,Y1,Z1");
	CHECK(x2->refs == 2 && y2->refs == 2 && z2->refs == 2);

	conflate_drop_channel(c, CH1);
	CHECK(x2->refs == 1 && z2->refs == 1 && y2->refs == 2);
	wait_until(t0 + I);
	conflate_service(clock_now());
	CHECK_RX(fd, "Y2");
	CHECK(conflate_timeout_ms(clock_now()) == -1);

	conflate_client_gone(c);
	struct frame *all[] = { x1, x2, y1, y2, z1, z2 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		CHECKF(all[i]->refs == 1, "frame %zu refs %u", i, all[i]->refs);
		frame_unref(all[i]);
	}
	peer_forget(c);
	client_free(c);
	peer_close(fd);
}

/* Several conflating clients: one that goes away is unlisted wherever it
 * sits on the waiting list, and its held records are released; the others
 * still get theirs. */
static void test_clients_gone(void)
{
	enum { I = 30, N = 4 };
	int fd[N];
	struct client *c[N];
	struct frame *first = mk("F"), *held[N];
	char name[8];
	int64_t t0 = clock_advance();
	for (int i = 0; i < N; i++) {
		c[i] = peer_client(&fd[i], 0, 0);
		snprintf(name, sizeof(name), "H%d", i);
		held[i] = mk(name);
		offer(c[i], CH1, "k", first, I);
		offer(c[i], CH1, "k", held[i], I);
		CHECK(held[i]->refs == 2);
	}
	/* The list is c3 c2 c1 c0 (or any order): remove a middle, the last
	 * and the first. */
	conflate_client_gone(c[1]);
	conflate_client_gone(c[0]);
	conflate_client_gone(c[3]);
	CHECK(held[0]->refs == 1 && held[1]->refs == 1 && held[3]->refs == 1 && held[2]->refs == 2);
	CHECK(conflate_timeout_ms(clock_now()) > 0);
	wait_until(t0 + I);
	conflate_service(clock_now());
	CHECK_RX(fd[2], "F,H2");
	CHECK_RX(fd[0], "F");
	CHECK_RX(fd[1], "F");
	CHECK_RX(fd[3], "F");
	CHECK(conflate_timeout_ms(clock_now()) == -1);
	for (int i = 0; i < N; i++) {
		conflate_client_gone(c[i]);
		peer_forget(c[i]);
		client_free(c[i]);
		peer_close(fd[i]);
		CHECK(held[i]->refs == 1);
		frame_unref(held[i]);
	}
	CHECK(first->refs == 1);
	frame_unref(first);

	/* Gone while holding, with nobody else waiting: nothing left listed
	 * (a service afterwards touches no freed memory). */
	int f;
	struct client *d = peer_client(&f, 0, 0);
	struct frame *g = mk("G");
	offer(d, CH2, "k", g, I);
	offer(d, CH2, "k", g, I);
	CHECK(g->refs == 3);
	conflate_client_gone(d);
	CHECK(g->refs == 2 && conflate_timeout_ms(clock_now()) == -1);   /* one still queued */
	conflate_service(clock_now() + 10 * I);
	CHECK_RX(f, "G");
	CHECK(g->refs == 1);
	frame_unref(g);
	peer_forget(d);
	client_free(d);
	peer_close(f);
}

/* More than CONF_MAX_KEYS (10000) keys: a new key passes unconflated while
 * every entry is fresh; once entries have been idle a whole interval they
 * are pruned and conflation resumes. Known keys keep conflating. */
static void test_max_keys(void)
{
	enum { I = 30, MAXK = 10000 };
	int fd;
	struct client *c = peer_client(&fd, 0, 0);
	struct frame *f = mk("k"), *h = mk("held");
	char key[32];
	int64_t t0 = clock_advance();
	for (int i = 0; i < MAXK; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		offer(c, CH1, key, f, I);
	}
	CHECK(c->q.count == MAXK);                     /* each first of its key */
	offer(c, CH1, "key-0", h, I);                   /* known: held */
	CHECK(c->q.count == MAXK && h->refs == 2);
	offer(c, CH1, "extra", f, I);                   /* no room: passes */
	offer(c, CH1, "extra", f, I);                   /* and again */
	CHECK(c->q.count == MAXK + 2);

	wait_until(t0 + I);
	offer(c, CH1, "extra", f, I);                   /* idle entries pruned: a new entry, first: at once */
	uint32_t n = c->q.count;
	CHECK(n == MAXK + 3);
	offer(c, CH1, "extra", f, I);                   /* now conflated */
	CHECK(c->q.count == n);
	CHECK(h->refs == 2);                            /* a held record is never pruned */

	conflate_client_gone(c);
	CHECK(h->refs == 1 && f->refs == 1 + n);
	peer_forget(c);
	client_free(c);
	peer_close(fd);
	CHECK(f->refs == 1);
	frame_unref(f);
	frame_unref(h);
}

int main(void)
{
	log_setup(LOG_ERROR, 0);
	peer_cfg.client_queue = 20000;                  /* test_max_keys queues 10003 frames */
	peer_init();
	test_interval();
	test_keys();
	test_drop_channel();
	test_clients_gone();
	test_max_keys();
	return check_summary("conflate");
}
