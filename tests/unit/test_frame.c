/* test_frame.c - refcounted frames and the outq ring. Ordering of push, at,
 * remove and push_front, wrap-around and growth of the ring, byte accounting;
 * outq_write over a non-blocking socketpair with a small send buffer, checked
 * against a model: the bytes the peer reads must be exactly the queued frames
 * in order (partial writes resume at the exact byte), every reference the
 * queue held is dropped, and the ring is freed when the queue drains;
 * outq_gather (TLS) handing out the same bytes in buffers of any size.
 * permessage-deflate: a frame's compressed twin (RSV1, the same opcode,
 * kind and key_hash, a payload that zlib inflates back, `saved` exact),
 * none below the minimum size or when compression does not shrink it,
 * each window's output readable with that window; a shared body after a
 * stored-block head inflates to head + body; `saved` summed by a write. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "check.h"
#include "frame.h"
#include "pmd.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* A frame of len bytes whose content identifies it (id) and each byte's
 * position, so a misplaced or repeated byte shows in the received stream. */
static struct frame *mk(uint32_t id, size_t len)
{
	struct frame *f = frame_new(len, FRAME_DATA);
	if (!f) abort();
	for (size_t i = 0; i < len; i++) f->data[i] = (unsigned char)(id * 131 + i * 7 + (i >> 8));
	f->key_hash = id;
	return f;
}

static int nonblock_pair(int sv[2], int sndbuf)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) return -1;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Reads up to max bytes (everything available when max is 0) and appends. */
static size_t drain(int fd, unsigned char *buf, size_t *have, size_t cap, size_t max)
{
	size_t got = 0;
	for (;;) {
		size_t want = cap - *have;
		if (max && max - got < want) want = max - got;
		if (want == 0) break;
		ssize_t r = read(fd, buf + *have, want);
		if (r <= 0) break;
		*have += (size_t)r;
		got += (size_t)r;
	}
	return got;
}

static uint32_t ids(const struct outq *q, uint32_t *out)
{
	uint32_t i;
	for (i = 0; i < q->count; i++) out[i] = (uint32_t)outq_at(q, i)->key_hash;
	return i;
}

#define CHECK_IDS(q, ...) do { static const uint32_t w_[] = { __VA_ARGS__ }; uint32_t g_[64]; \
	uint32_t n_ = ids(q, g_); \
	CHECKF(n_ == sizeof(w_) / sizeof(w_[0]) && memcmp(g_, w_, sizeof(w_)) == 0, \
	       "queue holds %u frames, first %u", n_, n_ ? g_[0] : 0); } while (0)

static void test_refs(void)
{
	struct frame *f = frame_new(10, FRAME_REPLY);
	CHECK(f && f->refs == 1 && f->len == 10 && f->kind == FRAME_REPLY && f->key_hash == 0);
	CHECK(frame_ref(f) == f && f->refs == 2);
	frame_unref(f);
	CHECK(f->refs == 1);
	frame_unref(f);                  /* freed; ASan reports a leak otherwise */
	frame_unref(NULL);
	f = frame_new(0, FRAME_CONTROL);
	CHECK(f && f->len == 0);
	frame_unref(f);

	/* A static frame (refs UINT32_MAX) is never counted or freed. */
	f = frame_new(4, FRAME_CONTROL);
	if (!f) abort();
	f->refs = UINT32_MAX;
	CHECK(frame_ref(f) == f && f->refs == UINT32_MAX);
	frame_unref(f);
	frame_unref(f);
	CHECK(f->refs == UINT32_MAX);   /* still there: ASan would flag a free */
	f->refs = 1;
	frame_unref(f);
}

static void test_order(void)
{
	struct outq q = { 0 };
	struct frame *f[8];
	for (uint32_t i = 0; i < 8; i++) f[i] = mk(i, 10 + i);

	CHECK(q.ring == NULL && outq_at(&q, 0) == NULL);
	for (uint32_t i = 0; i < 3; i++) CHECK(outq_push(&q, frame_ref(f[i])) == 0);
	CHECK_IDS(&q, 0, 1, 2);
	CHECK(q.bytes == 10 + 11 + 12 && q.count == 3);
	CHECK(outq_at(&q, 3) == NULL);
	outq_remove(&q, 1);
	CHECK_IDS(&q, 0, 2);
	CHECK(q.bytes == 22 && f[1]->refs == 1);
	outq_remove(&q, 5);                          /* out of range: nothing */
	CHECK_IDS(&q, 0, 2);
	CHECK(outq_push_front(&q, frame_ref(f[3])) == 0);   /* nothing written: front */
	CHECK_IDS(&q, 3, 0, 2);
	for (uint32_t i = 4; i < 8; i++) CHECK(outq_push(&q, frame_ref(f[i])) == 0);  /* grows */
	CHECK_IDS(&q, 3, 0, 2, 4, 5, 6, 7);
	CHECK(q.bytes == 13 + 10 + 12 + 14 + 15 + 16 + 17);
	outq_remove(&q, 6);
	outq_remove(&q, 0);
	CHECK_IDS(&q, 0, 2, 4, 5, 6);
	while (q.count) outq_remove(&q, 0);
	CHECK(q.ring == NULL && q.bytes == 0 && q.cap == 0);   /* freed when emptied */
	for (uint32_t i = 0; i < 8; i++) {
		CHECKF(f[i]->refs == 1, "frame %u refs %u", i, f[i]->refs);
		frame_unref(f[i]);
	}

	/* outq_clear drops every reference. */
	struct frame *g = mk(1, 5);
	for (int i = 0; i < 20; i++) outq_push(&q, frame_ref(g));
	CHECK(g->refs == 21 && q.bytes == 100);
	outq_clear(&q);
	CHECK(g->refs == 1 && q.ring == NULL && q.count == 0 && q.bytes == 0);
	frame_unref(g);
}

/* Wrap-around: write part of the queue so head moves, then push past the
 * end of the ring, then grow it, with a partly written head throughout. */
static void test_wrap(void)
{
	int sv[2];
	struct outq q = { 0 };
	if (nonblock_pair(sv, 4096) < 0) { CHECK(0); return; }
	size_t cap = 1 << 22, have = 0;
	unsigned char *rx = malloc(cap), *want = malloc(cap);
	size_t wn = 0;
	if (!rx || !want) abort();

	struct frame *a = mk(0, 1), *b = mk(1, 2), *c = mk(2, 3), *big = mk(3, 1 << 20);
	outq_push(&q, a); outq_push(&q, b); outq_push(&q, c); outq_push(&q, big);
	CHECK(q.cap == 4);
	ssize_t w = outq_write(&q, sv[0], NULL);
	CHECKF(w > 6 && w < (1 << 20) + 6, "wrote %zd", w);
	CHECK(q.count == 1 && q.head == 3 && q.off == (uint32_t)w - 6);
	CHECK(q.bytes == (1u << 20) + 6 - (size_t)w);
	/* The partly written head is never removed... */
	outq_remove(&q, 0);
	CHECK(q.count == 1 && outq_at(&q, 0) == big);
	/* ...and what must go first lands right after it. */
	CHECK(outq_push_front(&q, mk(4, 5)) == 0);
	CHECK_IDS(&q, 3, 4);
	outq_push(&q, mk(5, 6));
	CHECK(outq_push_front(&q, mk(6, 7)) == 0);
	CHECK_IDS(&q, 3, 6, 4, 5);                   /* ring indexes 3, 0, 1, 2: wrapped */
	CHECK(q.cap == 4 && q.head == 3);
	outq_remove(&q, 2);                           /* remove across the wrap */
	CHECK_IDS(&q, 3, 6, 5);
	outq_push(&q, mk(7, 8));
	outq_push(&q, mk(8, 9));                      /* grows from a wrapped ring */
	CHECK(q.cap == 8);
	CHECK_IDS(&q, 3, 6, 5, 7, 8);
	CHECK(outq_push_front(&q, mk(9, 10)) == 0);
	CHECK_IDS(&q, 3, 9, 6, 5, 7, 8);
	CHECK(q.bytes == (1u << 20) + 6 - (size_t)w + 10 + 7 + 6 + 8 + 9);

	/* Expected stream: a b c big 9 6 5 7 8. */
	static const uint32_t order[] = { 0, 1, 2, 3, 9, 6, 5, 7, 8 };
	static const size_t lens[] = { 1, 2, 3, 1 << 20, 10, 7, 6, 8, 9 };
	for (size_t i = 0; i < 9; i++) {
		struct frame *t = mk(order[i], lens[i]);
		memcpy(want + wn, t->data, t->len);
		wn += t->len;
		frame_unref(t);
	}
	int spins = 0;
	while (q.count && spins++ < 100000) {
		drain(sv[1], rx, &have, cap, 1 + rnd() % 3000);
		if (outq_write(&q, sv[0], NULL) < 0) { CHECK(0); break; }
	}
	drain(sv[1], rx, &have, cap, 0);
	CHECK(q.count == 0 && q.ring == NULL && q.bytes == 0 && q.off == 0);
	CHECKF(have == wn && memcmp(rx, want, wn) == 0, "received %zu of %zu bytes, or wrong bytes", have, wn);
	close(sv[0]);
	close(sv[1]);
	free(rx);
	free(want);
}

/* Random operations against a model of the queue. */
struct model {
	struct frame *fr[4096];
	uint32_t n, off;
};

static void model_check(const struct outq *q, const struct model *m, int step, int *bad)
{
	size_t bytes = 0;
	for (uint32_t i = 0; i < m->n; i++) bytes += m->fr[i]->len;
	bytes -= m->off;
	int ok = q->count == m->n && q->off == m->off && q->bytes == bytes && (m->n || q->ring == NULL);
	for (uint32_t i = 0; ok && i < m->n; i++) ok = outq_at(q, i) == m->fr[i];
	if (!ok && (*bad)++ == 0)
		fprintf(stderr, "step %d: queue count %u off %u bytes %zu, model %u %u %zu\n",
			step, q->count, q->off, q->bytes, m->n, m->off, bytes);
}

static void test_model(void)
{
	enum { POOL = 40, STEPS = 20000 };
	static struct model m;
	struct frame *pool[POOL];
	unsigned inq[POOL] = { 0 };
	struct outq q = { 0 };
	int sv[2], bad = 0, refbad = 0;
	size_t cap = 64 << 20, have = 0, wn = 0, rdone = 0;
	unsigned char *rx = malloc(cap), *want = malloc(cap);
	if (!rx || !want || nonblock_pair(sv, 2048) < 0) { CHECK(0); return; }

	for (uint32_t i = 0; i < POOL; i++) {
		size_t len = i % 5 == 0 ? 1 + rnd() % 40000 : 1 + rnd() % 300;
		pool[i] = mk(i, len);
	}
	for (int step = 0; step < STEPS; step++) {
		uint32_t r = rnd() % 100, p = rnd() % POOL;
		if (r < 40 && m.n < 4000) {                     /* push */
			if (outq_push(&q, frame_ref(pool[p])) != 0) bad++;
			m.fr[m.n++] = pool[p];
			inq[p]++;
		} else if (r < 50 && m.n < 4000) {              /* push_front */
			if (outq_push_front(&q, frame_ref(pool[p])) != 0) bad++;
			uint32_t pos = m.off ? 1 : 0;
			memmove(m.fr + pos + 1, m.fr + pos, (m.n - pos) * sizeof(m.fr[0]));
			m.fr[pos] = pool[p];
			m.n++;
			inq[p]++;
		} else if (r < 62) {                            /* remove (maybe the head) */
			uint32_t i = m.n && r < 55 ? 0 : rnd() % (m.n + 2);
			outq_remove(&q, i);
			if (i < m.n && !(i == 0 && m.off)) {
				inq[m.fr[i]->key_hash]--;
				memmove(m.fr + i, m.fr + i + 1, (m.n - i - 1) * sizeof(m.fr[0]));
				m.n--;
			}
		} else if (r < 85) {                            /* write */
			ssize_t w = outq_write(&q, sv[0], NULL);
			if (w < 0) { CHECKF(0, "outq_write: %s", strerror(errno)); break; }
			size_t left = (size_t)w;
			while (left) {                          /* advance the model */
				if (m.n == 0) { bad++; break; }
				struct frame *f = m.fr[0];
				size_t take = f->len - m.off < left ? f->len - m.off : left;
				if (wn + take > cap) abort();
				memcpy(want + wn, f->data + m.off, take);
				wn += take;
				left -= take;
				m.off += (uint32_t)take;
				if (m.off == f->len) {
					inq[f->key_hash]--;
					memmove(m.fr, m.fr + 1, (m.n - 1) * sizeof(m.fr[0]));
					m.n--;
					m.off = 0;
				}
			}
		} else {                                        /* the peer reads some */
			rdone += drain(sv[1], rx, &have, cap, r < 95 ? 1 + rnd() % 5000 : 0);
		}
		model_check(&q, &m, step, &bad);
		for (uint32_t i = 0; i < POOL; i++)
			if (pool[i]->refs != 1 + inq[i] && refbad++ == 0)
				fprintf(stderr, "step %d: frame %u refs %u, want %u\n", step, i, pool[i]->refs, 1 + inq[i]);
	}
	/* Drain everything. */
	for (int spins = 0; q.count && spins < 1000000; spins++) {
		ssize_t w = outq_write(&q, sv[0], NULL);
		if (w < 0) break;
		size_t left = (size_t)w;
		while (left && m.n) {
			struct frame *f = m.fr[0];
			size_t take = f->len - m.off < left ? f->len - m.off : left;
			memcpy(want + wn, f->data + m.off, take);
			wn += take;
			left -= take;
			m.off += (uint32_t)take;
			if (m.off == f->len) {
				inq[f->key_hash]--;
				memmove(m.fr, m.fr + 1, (m.n - 1) * sizeof(m.fr[0]));
				m.n--;
				m.off = 0;
			}
		}
		drain(sv[1], rx, &have, cap, 0);
	}
	drain(sv[1], rx, &have, cap, 0);
	model_check(&q, &m, STEPS, &bad);
	CHECKF(bad == 0, "%d steps where the queue and the model disagree", bad);
	CHECKF(refbad == 0, "%d reference count mismatches", refbad);
	CHECK(q.count == 0 && q.ring == NULL && q.bytes == 0);
	CHECKF(have == wn && memcmp(rx, want, wn) == 0, "peer got %zu bytes, queue wrote %zu; or content differs",
	       have, wn);
	CHECKF(wn > 1000000 && rdone > 0, "only %zu bytes went through: test too weak", wn);
	for (uint32_t i = 0; i < POOL; i++) {
		CHECKF(pool[i]->refs == 1, "frame %u refs %u after drain", i, pool[i]->refs);
		frame_unref(pool[i]);
	}
	close(sv[0]);
	close(sv[1]);
	free(rx);
	free(want);
}

/* More frames than one writev() takes (OUTQ_IOV is 64), a roomy socket. */
static void test_many_small(void)
{
	int sv[2];
	struct outq q = { 0 };
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) { CHECK(0); return; }
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	struct frame *f = mk(7, 3);
	f->data[0] = 'a'; f->data[1] = 'b'; f->data[2] = 'c';
	for (int i = 0; i < 300; i++) outq_push(&q, frame_ref(f));
	CHECK(f->refs == 301);
	ssize_t w = outq_write(&q, sv[0], NULL);
	CHECKF(w == 900, "wrote %zd of 900", w);
	CHECK(q.count == 0 && q.ring == NULL && f->refs == 1);
	char buf[1000];
	ssize_t r = read(sv[1], buf, sizeof(buf));
	int ok = r == 900;
	for (int i = 0; ok && i < 900; i++) ok = buf[i] == "abc"[i % 3];
	CHECK(ok);
	/* Empty queue: writes nothing, stays freed. */
	CHECK(outq_write(&q, sv[0], NULL) == 0 && q.ring == NULL);
	frame_unref(f);
	close(sv[0]);
	close(sv[1]);
}

/* EAGAIN is 0, a dead peer is -1 with errno; nothing is lost or leaked. */
static void test_errors(void)
{
	int sv[2];
	struct outq q = { 0 };
	if (nonblock_pair(sv, 4096) < 0) { CHECK(0); return; }
	struct frame *f = mk(1, 1 << 20);
	outq_push(&q, frame_ref(f));
	ssize_t w = outq_write(&q, sv[0], NULL);
	CHECK(w > 0 && q.count == 1 && q.off == (uint32_t)w);
	CHECK(outq_write(&q, sv[0], NULL) == 0 && q.off == (uint32_t)w);   /* still full */
	CHECK(q.bytes == (1u << 20) - (size_t)w);
	close(sv[1]);
	signal(SIGPIPE, SIG_IGN);
	errno = 0;
	CHECK(outq_write(&q, sv[0], NULL) == -1 && errno == EPIPE);
	CHECK(q.count == 1 && f->refs == 2);
	outq_clear(&q);
	CHECK(f->refs == 1 && q.ring == NULL);
	frame_unref(f);
	close(sv[0]);
}

/* A zero-length frame left at the head (after a write that ended exactly at
 * a frame boundary, or alone) must be retired, not offered to writev() again
 * and again: writev() returns 0 for 0 bytes offered, which once made
 * outq_write loop forever. Run in a child with an alarm so a regression
 * fails instead of hanging. */
static void test_zero_length(void)
{
	pid_t pid = fork();
	if (pid < 0) { CHECK(0); return; }
	if (pid == 0) {
		int sv[2];
		struct outq q = { 0 };
		alarm(3);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) _exit(3);
		outq_push(&q, mk(1, 4));
		outq_push(&q, frame_new(0, FRAME_REPLY));
		ssize_t w = outq_write(&q, sv[0], NULL);
		if (w != 4 || q.count != 0 || q.ring != NULL) _exit(2);
		outq_push(&q, frame_new(0, FRAME_REPLY));          /* alone */
		w = outq_write(&q, sv[0], NULL);
		if (w != 0 || q.count != 0 || q.ring != NULL) _exit(2);
		outq_push(&q, frame_new(0, FRAME_REPLY));          /* between two */
		outq_push(&q, mk(2, 3));
		outq_push(&q, frame_new(0, FRAME_REPLY));
		w = outq_write(&q, sv[0], NULL);
		_exit(w == 3 && q.count == 0 && q.ring == NULL ? 0 : 2);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "outq_write with a zero-length frame: %s",
	       WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? "never returns (infinite loop)" : "wrong result");
}

/* A glued frame continues the WebSocket frame before it: once that one is
 * written, the glued one at the head is in flight, never removed or
 * passed by a notice, though nothing of it was written yet. */
static void test_glued(void)
{
	struct outq q = { 0 };
	struct frame *head = frame_new(10, FRAME_CONTROL), *body = frame_new(3000, FRAME_CONTROL);
	struct frame *next = frame_new(5, FRAME_DATA);
	body->glued = 1;
	outq_push(&q, head);
	outq_push(&q, body);
	outq_push(&q, next);
	CHECK(outq_first_free(&q) == 0);                 /* nothing written: all of it may go */
	outq_clear(&q);
	/* As after a writev that took exactly the head: the body leads, with
	 * nothing of it written. */
	body = frame_new(3000, FRAME_CONTROL);
	body->glued = 1;
	next = frame_new(5, FRAME_DATA);
	outq_push(&q, body);
	outq_push(&q, next);
	CHECK(q.off == 0 && outq_first_free(&q) == 1);
	outq_remove(&q, 0);                              /* refused */
	CHECK(q.count == 2 && outq_at(&q, 0) == body);
	struct frame *n = frame_new(3, FRAME_NOTICE);
	CHECK(outq_push_front(&q, n) == 0 && outq_at(&q, 1) == n && outq_at(&q, 2) == next);
	outq_clear(&q);
}

/* outq_gather (the TLS path): random frame sizes and random buffer
 * capacities; the concatenation of what it hands out must be the queued
 * frames byte for byte, a frame cut by the capacity resumes at the exact
 * byte, FRAME_DATA frames count once when finished, the byte count falls
 * with each gather, every reference is dropped and the ring freed. */
static void test_gather(void)
{
	enum { N = 300 };
	struct outq q = { 0 };
	static unsigned char want[N * 700], got[N * 700];
	size_t wl = 0, gl = 0;
	struct frame *f[N];
	for (uint32_t i = 0; i < N; i++) {
		f[i] = mk(i, rnd() % 700);
		if (i % 7 == 0) f[i]->kind = FRAME_REPLY;    /* not counted as data */
		memcpy(want + wl, f[i]->data, f[i]->len);
		wl += f[i]->len;
		CHECK(outq_push(&q, frame_ref(f[i])) == 0);
	}
	struct outq_done done = { 0, 0 };
	int ok = 1;
	while (q.count) {
		size_t cap = 1 + rnd() % 2000, before = q.bytes;
		size_t n = outq_gather(&q, got + gl, cap, &done);
		if (n > cap || before - q.bytes != n || (n < cap && q.count)) ok = 0;
		gl += n;
	}
	CHECK(ok);
	CHECK_MEM(got, gl, want, wl);
	CHECKF(done.data == N - (N + 6) / 7, "data frames done %llu", (unsigned long long)done.data);
	CHECK(q.ring == NULL && q.bytes == 0 && q.off == 0);
	CHECK(outq_gather(&q, got, sizeof(got), NULL) == 0);
	for (uint32_t i = 0; i < N; i++) {
		CHECKF(f[i]->refs == 1, "frame %u refs %u", i, f[i]->refs);
		frame_unref(f[i]);
	}
}

/* A server frame's payload bounds: header length and payload length. */
static size_t frame_payload(const struct frame *f, size_t *n)
{
	size_t hl = 2, len = f->data[1] & 0x7f;
	if (len == 126) { hl = 4; len = (size_t)f->data[2] << 8 | f->data[3]; }
	else if (len == 127) { hl = 10; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | f->data[2 + i]; }
	*n = len;
	return hl;
}

/* Inflates a permessage-deflate payload with zlib itself (raw, window
 * bits, the tail of RFC 7692 §7.2.2 appended) into out; its length, or -1. */
static long zinflate(const unsigned char *p, size_t n, int bits, unsigned char *out, size_t cap)
{
	static const unsigned char tail[4] = { 0, 0, 0xff, 0xff };
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -bits) != Z_OK) return -1;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	int rc = inflate(&z, Z_SYNC_FLUSH);
	if (rc == Z_OK || rc == Z_BUF_ERROR) {
		z.next_in = (Bytef *)(uintptr_t)tail;
		z.avail_in = 4;
		rc = inflate(&z, Z_SYNC_FLUSH);
	}
	long got = (long)(cap - z.avail_out);
	inflateEnd(&z);
	return rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END ? got : -1;
}

static void test_deflate(void)
{
	static char json[4000];
	size_t jl = 0;
	for (int i = 0; jl + 80 < sizeof(json); i++)
		jl += (size_t)snprintf(json + jl, sizeof(json) - jl, "{\"symbol\":\"BTC/USDT\",\"price\":%d.25,\"side\":\"buy\"},", 43000 + i);
	static unsigned char out[8192];
	frame_deflate_min(256);
	for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++) {
		struct frame *plain = frame_ws(WS_OP_TEXT, json, jl, FRAME_DATA);
		plain->key_hash = 77;
		struct frame *z = frame_deflate(plain, bits);
		CHECKF(z != NULL, "bits %u", bits);
		if (!z) { frame_unref(plain); continue; }
		size_t n, hl = frame_payload(z, &n);
		CHECK(z->data[0] == (0x80 | 0x40 | WS_OP_TEXT) && hl + n == z->len);
		CHECK(z->kind == FRAME_DATA && z->key_hash == 77 && z->refs == 1 && !z->glued);
		CHECKF(z->saved == plain->len - z->len && z->len * 2 < plain->len, "%u of %u bytes", z->len, plain->len);
		long got = zinflate(z->data + hl, n, (int)bits, out, sizeof(out));
		CHECK_MEM(out, got < 0 ? 0 : (size_t)got, json, jl);
		CHECK(frame_deflate(z, bits) == NULL);   /* already compressed */
		/* frame_for hands the twin in place of the plain reference. */
		struct frame *f = frame_for(frame_ref(plain), bits);
		CHECK(f != plain && (f->data[0] & 0x40) && plain->refs == 1);
		frame_unref(f);
		CHECK(frame_for(frame_ref(plain), 0) == plain && plain->refs == 2);
		frame_unref(plain);
		frame_unref(z);
		frame_unref(plain);
	}
	/* Below the minimum, and incompressible bytes: the plain frame goes. */
	struct frame *small = frame_ws(WS_OP_TEXT, json, 255, FRAME_REPLY);
	CHECK(frame_deflate(small, 15) == NULL && frame_for(frame_ref(small), 15) == small);
	frame_unref(small);
	frame_unref(small);
	frame_deflate_min(0);
	unsigned char noise[600];
	for (size_t i = 0; i < sizeof(noise); i++) noise[i] = (unsigned char)(rnd() >> 24);
	struct frame *nf = frame_ws(WS_OP_BINARY, noise, sizeof(noise), FRAME_DATA);
	CHECK(frame_deflate(nf, 15) == NULL);
	frame_unref(nf);
	struct frame *tiny = frame_ws(WS_OP_TEXT, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 40, FRAME_REPLY);
	struct frame *tz = frame_deflate(tiny, 15);
	CHECK(tz && (tz->data[0] & 0x40) && tz->kind == FRAME_REPLY);   /* 0: whatever shrinks */
	frame_unref(tz);
	frame_unref(tiny);
	frame_deflate_min(256);

	/* A shared body after each client's stored-block head. */
	struct frame *body = frame_new(jl, FRAME_CONTROL);
	memcpy(body->data, json, jl);
	body->glued = 1;
	struct frame *zb = frame_deflate_body(body, 15);
	CHECK(zb && zb->glued && zb->kind == FRAME_CONTROL && zb->saved == body->len - zb->len - PMD_STORED_OVERHEAD);
	if (zb) {
		static unsigned char msg[8192];
		const char head[] = "{\"type\":\"update\",\"seq\":7,";
		size_t m = pmd_stored_block(msg, head, sizeof(head) - 1);
		memcpy(msg + m, zb->data, zb->len);
		long got = zinflate(msg, m + zb->len, 15, out, sizeof(out));
		CHECK(got == (long)(sizeof(head) - 1 + jl) && memcmp(out, head, sizeof(head) - 1) == 0 &&
		      memcmp(out + sizeof(head) - 1, json, jl) == 0);
	}
	frame_unref(zb);
	frame_unref(body);

	/* A write sums what the frames it finished saved. */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct outq q = { 0 };
	struct frame *pf = frame_ws(WS_OP_TEXT, json, jl, FRAME_DATA), *zf = frame_deflate(pf, 15);
	uint32_t saved = zf ? zf->saved : 0;
	CHECK(zf && outq_push(&q, zf) == 0 && outq_push(&q, frame_ref(pf)) == 0);
	struct outq_done done = { 0, 0 };
	CHECK(outq_write(&q, sv[0], &done) > 0 && q.count == 0);
	CHECK(done.data == 2 && done.saved == saved && saved > 0);
	frame_unref(pf);
	close(sv[0]);
	close(sv[1]);
	pmd_free();
}

int main(void)
{
	test_refs();
	test_order();
	test_wrap();
	test_model();
	test_many_small();
	test_errors();
	test_zero_length();
	test_glued();
	test_gather();
	test_deflate();
	return check_summary("frame");
}
