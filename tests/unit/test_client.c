/* test_client.c - the client layer's output policy (client.h), seen from the
 * far end of a real client (peer.h): what the peer receives, in order, is
 * compared whole as a short description ("D1,N2,ping:P1,close:1008:...").
 *
 * To make a client slow on demand, stall() fills its socket with small
 * complete filler frames written straight to the fd (the peer skips them),
 * so client_send's own write finds no room and the limits apply exactly;
 * a partly written head frame comes from a tiny socket buffer and a frame
 * larger than it. rx() then plays the server: it writes the client and reads
 * the peer until everything queued has arrived.
 *
 * Covered: client_send queues and asks for a flush (data due after
 * CLIENT_CORK_MS, everything else now) and writes what the socket takes
 * before judging a client slow; frames to a client not in CS_WS or after its
 * close frame are dropped (their reference released); --client-queue and
 * --client-buffer; drop-oldest (oldest data/reply first, controls and
 * notices kept, a partly written head never dropped, the newcomer dropped
 * when nothing else can go); conflate (an older queued record of the same
 * key_hash replaced, else drop-oldest; keyless records never replaced);
 * disconnect (close 1008 "slow consumer", CS_CLOSING, M_SLOW_DISCONNECTS);
 * the SLOW_CONSUMER notice in front of what is still queued with the count
 * of dropped data messages, one pending notice absorbing later drops;
 * client_send_always past the limits; replies with ids echoed verbatim, in
 * JSON and MessagePack; client_ws_close/client_ws_fail/client_linger states,
 * deadlines and the FIN after a linger drains; connection counts, dead
 * clients, peer names; a socket error; M_DROPPED, M_BYTES_OUT and
 * M_MESSAGES_OUT. Frame references are checked wherever frames are dropped,
 * and the asan build's LeakSanitizer checks the rest. */
#include <signal.h>
#include <stdlib.h>

#include "check.h"
#include "peer.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "msgpack.h"

/* ---- helpers ------------------------------------------------------------------ */

static void setup(long queue, size_t buffer, enum slow_policy slow)
{
	peer_cfg.client_queue = queue;
	peer_cfg.client_buffer = buffer;
	peer_cfg.slow = slow;
	peer_init();
	peer_nwant = 0;
}

/* A text frame "name" padded with '#' to len payload bytes (0: no padding). */
static struct frame *mkp(const char *name, size_t len, enum frame_kind kind, uint64_t key_hash)
{
	size_t n = strlen(name);
	if (len < n) len = n;
	char *p = malloc(len);
	if (!p) abort();
	memcpy(p, name, n);
	memset(p + n, '#', len - n);
	struct frame *f = frame_ws(WS_OP_TEXT, p, len, kind);
	free(p);
	if (!f) abort();
	f->key_hash = key_hash;
	return f;
}
static struct frame *data(const char *name) { return mkp(name, 0, FRAME_DATA, 0); }
static struct frame *keyed(const char *name, uint64_t kh) { return mkp(name, 0, FRAME_DATA, kh); }
static struct frame *reply(const char *name) { return mkp(name, 0, FRAME_REPLY, 0); }

/* A ping frame (a control: never dropped). */
static struct frame *ping(const char *name)
{
	struct frame *f = frame_ws(WS_OP_PING, name, strlen(name), FRAME_CONTROL);
	if (!f) abort();
	return f;
}

/* A data frame "BIG" + a position-dependent pattern, len payload bytes. */
static struct frame *big(size_t len, uint64_t kh)
{
	char *p = malloc(len);
	if (!p) abort();
	memcpy(p, "BIG", 3);
	for (size_t i = 3; i < len; i++) p[i] = (char)('a' + (i * 7 + i / 251) % 26);
	struct frame *f = frame_ws(WS_OP_TEXT, p, len, FRAME_DATA);
	free(p);
	if (!f) abort();
	f->key_hash = kh;
	return f;
}

static int big_ok(const struct pframe *f)
{
	for (size_t i = 3; i < f->len; i++)
		if (f->data[i] != (char)('a' + (i * 7 + i / 251) % 26)) return 0;
	return 1;
}

/* Fills the client's socket with complete filler frames (payload "~~~...")
 * until it takes no more. Only when nothing is partly written. */
static void stall(struct client *c)
{
	unsigned char fill[100];
	fill[0] = 0x81;
	fill[1] = 98;
	memset(fill + 2, '~', 98);
	CHECK(c->q.off == 0);
	int n = 0;
	while (write(c->fd, fill, sizeof(fill)) == (ssize_t)sizeof(fill)) n++;
	CHECKF(n > 0 && errno == EAGAIN, "stall: %d fillers, %s", n, strerror(errno));
}

/* One received frame as text: data by name (up to its '#' padding), N<dropped>
 * for a SLOW_CONSUMER notice, BIG<len> for a big frame intact, ping:NAME,
 * close:CODE:REASON, mp:JSON for a binary frame; fillers are skipped. */
static void describe(char *out, size_t cap, const struct pframe *f)
{
	size_t l = strlen(out);
	const char *sep = l ? "," : "";
	if (f->op == 1 && f->data[0] == '~') return;
	if (f->op == 1 && pframe_has(f, "\"SLOW_CONSUMER\"")) {
		const char *d = strstr(f->data, "\"dropped\":");
		snprintf(out + l, cap - l, "%sN%d", sep, d ? atoi(d + 10) : -1);
	} else if (f->op == 1 && strncmp(f->data, "BIG", 3) == 0) {
		snprintf(out + l, cap - l, "%sBIG%zu%s", sep, f->len, big_ok(f) ? "" : "-corrupt");
	} else if (f->op == 1) {
		snprintf(out + l, cap - l, "%s%.*s", sep, (int)strcspn(f->data, "#"), f->data);
	} else if (f->op == 9) {
		snprintf(out + l, cap - l, "%sping:%s", sep, f->data);
	} else if (f->op == 8) {
		unsigned code = f->len >= 2 ? (unsigned)((unsigned char)f->data[0] << 8 | (unsigned char)f->data[1]) : 0;
		snprintf(out + l, cap - l, "%sclose:%u:%s", sep, code, f->len > 2 ? f->data + 2 : "");
	} else if (f->op == 2) {
		struct jbuf b;
		json_init(&b);
		int rc = mp_to_json(&b, (const unsigned char *)f->data, f->len, MP_MAX_DEPTH);
		snprintf(out + l, cap - l, "%smp:%.*s", sep, rc == 0 ? (int)b.len : 3, rc == 0 ? b.buf : "BAD");
		json_free(&b);
	} else {
		snprintf(out + l, cap - l, "%sop%d", sep, f->op);
	}
}

/* Plays the server's flush until the client's queue is empty (or it died),
 * reading the peer end as it goes; returns what arrived. */
static const char *rx(struct client *c, int fd)
{
	static struct pframe f[4096];
	static char out[1 << 16];
	int n = 0;
	for (int spins = 0; spins < 100000; spins++) {
		if (c->state != CS_DEAD) client_write(c);
		int r = peer_read(fd, f + n, 4096 - n);
		if (r < 0) return "malformed";
		n += r;
		if (c->state == CS_DEAD || (c->q.count == 0 && !c->dropped)) break;
	}
	n += peer_read(fd, f + n, 4096 - n);
	out[0] = '\0';
	for (int i = 0; i < n; i++) describe(out, sizeof(out), &f[i]);
	peer_frames_free(f, n);
	peer_nwant = 0;
	return out;
}

#define CHECK_RX(c, fd, want) do { const char *g_ = rx(c, fd); \
	CHECKF(strcmp(g_, want) == 0, "\n got  %s\n want %s", g_, want); } while (0)

/* 1 when the peer has read everything and the client's side is shut. */
static int peer_eof(int fd)
{
	char b;
	return read(fd, &b, 1) == 0;
}

static void bye(struct client *c, int fd)
{
	peer_forget(c);
	client_free(c);
	peer_close(fd);
}

/* The due time the client asked to be flushed by, -1 if it did not ask. */
static int64_t due_of(const struct client *c)
{
	for (int i = 0; i < peer_nwant; i++)
		if (peer_want[i] == c) return peer_want_due[i];
	return -1;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_send_flush(void)
{
	int fd, fd2;
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	int64_t now = clock_advance();

	CHECK(peer_nwant == 0);
	/* A client streaming data (data within the last CLIENT_STREAM_MS): its
	 * data waits for company. */
	c->last_data = (uint32_t)(now - (CLIENT_STREAM_MS - 1));
	client_send(c, data("D1"));
	CHECK(c->q.count == 1 && peer_nwant == 1 && due_of(c) == now + CLIENT_CORK_MS);
	client_send(c, data("D2"));                   /* the same request, once */
	CHECK(c->q.count == 2 && peer_nwant == 1 && due_of(c) == now + CLIENT_CORK_MS);
	client_send(c, reply("R1"));                  /* a reply does not wait */
	CHECK(c->q.count == 3 && peer_nwant == 1 && due_of(c) == now);
	client_send(c, NULL);
	CHECK(c->q.count == 3);
	CHECK_RX(c, fd, "D1,D2,R1");

	/* After a pause (or on a new client) one frame gains nothing from
	 * waiting: due at the end of this turn; the next, within the cork
	 * window of it, is corked again. */
	c->last_data = (uint32_t)(now - CLIENT_STREAM_MS);
	client_send(c, data("D3"));
	CHECK(due_of(c) == now && c->last_data == (uint32_t)now);
	CHECK_RX(c, fd, "D3");
	client_send(c, data("D4"));
	CHECK(due_of(c) == now + CLIENT_CORK_MS);
	CHECK_RX(c, fd, "D4");
	struct client *fresh = peer_client(&fd2, 0, 0);
	client_send(fresh, data("F1"));
	CHECK(due_of(fresh) == now);
	CHECK_RX(fresh, fd2, "F1");
	bye(fresh, fd2);

	client_send(c, ping("P1"));
	CHECK(due_of(c) == now);
	peer_nwant = 0;
	client_send_always(c, data("S1"));
	CHECK(due_of(c) == now);
	peer_nwant = 0;
	client_queue(c, data("Q1"));
	CHECK(due_of(c) == now);
	client_queue(c, NULL);
	CHECK(c->q.count == 3);
	CHECK_RX(c, fd, "ping:P1,S1,Q1");

	/* The queue is "full" only for what the socket does not take: at the
	 * limit client_send writes first, and a reader keeping up loses nothing. */
	setup(2, 1 << 20, SLOW_DROP_OLDEST);
	uint64_t dropped = metrics_get(M_DROPPED);
	for (int i = 0; i < 10; i++) {
		char name[8];
		snprintf(name, sizeof(name), "E%d", i);
		client_send(c, data(name));
	}
	CHECK(c->dropped == 0 && metrics_get(M_DROPPED) == dropped && c->q.count <= 2);
	CHECK_RX(c, fd, "E0,E1,E2,E3,E4,E5,E6,E7,E8,E9");
	bye(c, fd);
}

/* Frames for a client that is not an open WebSocket, or that sent its close
 * frame, are dropped: reference released, no flush asked. client_queue
 * queues whatever the state (HTTP responses). */
static void test_states(void)
{
	int sv[2];
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct client *h = client_new(sv[0], (struct sockaddr *)&sa, sizeof(sa));
	struct frame *f = data("X");
	CHECK(h && h->state == CS_HTTP);
	client_send(h, frame_ref(f));
	client_send_always(h, frame_ref(f));
	CHECK(f->refs == 1 && h->q.count == 0 && peer_nwant == 0);
	client_queue(h, frame_ref(f));
	CHECK(f->refs == 2 && h->q.count == 1 && peer_nwant == 1);
	peer_forget(h);
	client_free(h);
	close(sv[1]);
	CHECK(f->refs == 1);

	int fd;
	struct client *c = peer_client(&fd, 0, 0);
	client_close_frame(c, WS_CLOSE_NORMAL, "bye");
	CHECK(c->close_sent && c->state == CS_WS);
	peer_nwant = 0;
	client_send(c, frame_ref(f));
	client_send_always(c, frame_ref(f));
	reply_error(c, "1", 1, "X", "y");
	CHECK(f->refs == 1 && c->q.count == 1 && peer_nwant == 0);
	CHECK_RX(c, fd, "close:1000:bye");
	bye(c, fd);

	c = peer_client(&fd, 0, 0);
	client_ws_close(c, WS_CLOSE_NORMAL, "done", 1000);
	client_send(c, frame_ref(f));
	client_send_always(c, frame_ref(f));
	CHECK(c->state == CS_CLOSING && f->refs == 1 && c->q.count == 1);
	client_linger(c);
	client_send(c, frame_ref(f));
	CHECK(c->state == CS_LINGER && f->refs == 1 && c->q.count == 1);
	CHECK_RX(c, fd, "close:1000:done");
	bye(c, fd);
	frame_unref(f);
}

/* --client-queue: drop-oldest keeps the newest N; the notice counts the
 * dropped data messages and goes first. */
static void test_queue_limit(void)
{
	int fd;
	setup(4, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	uint64_t dropped = metrics_get(M_DROPPED);
	struct frame *d1 = data("D1"), *d2 = data("D2");
	client_send(c, frame_ref(d1));
	client_send(c, frame_ref(d2));
	client_send(c, data("D3"));
	client_send(c, data("D4"));
	CHECK(c->q.count == 4 && c->dropped == 0 && d1->refs == 2);
	client_send(c, data("D5"));
	client_send(c, data("D6"));
	CHECK(c->q.count == 4 && c->dropped == 2 && metrics_get(M_DROPPED) == dropped + 2);
	CHECK(d1->refs == 1 && d2->refs == 1);
	CHECK_RX(c, fd, "N2,D3,D4,D5,D6");
	CHECK(c->dropped == 0 && metrics_get(M_DROPPED) == dropped + 2);   /* the notice is not a drop */

	/* Each gap gets its own notice, in its place. */
	stall(c);
	for (int i = 0; i < 6; i++) client_send(c, data(i < 3 ? "A" : "B"));   /* 2 dropped */
	CHECK(c->dropped == 2);
	CHECK_RX(c, fd, "N2,A,B,B,B");
	bye(c, fd);
	frame_unref(d1);
	frame_unref(d2);
}

/* Bytes waiting behind the head of c's queue (the message being written). */
static size_t behind(const struct client *c)
{
	return c->q.count ? c->q.bytes - (outq_at(&c->q, 0)->len - c->q.off) : 0;
}

/* --client-buffer bounds what waits behind the message being written: the
 * head of the queue is not counted, and one waiting message of any size is
 * taken, so a message larger than the whole buffer still reaches a client
 * that reads; what a stalled client holds stays bounded all the same. */
static void test_buffer_limit(void)
{
	int fd;
	setup(1000, 350, SLOW_DROP_OLDEST);           /* three frames of 102 bytes wait behind the head */
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	int over = 0;
	for (int i = 1; i <= 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "B%d", i);
		client_send(c, mkp(name, 100, FRAME_DATA, 0));
		over += behind(c) > 350;
	}
	/* B1 was the head but not yet started: the oldest, it went first. */
	CHECK(over == 0 && c->q.count == 4 && c->q.bytes == 408 && c->dropped == 1);
	CHECK_RX(c, fd, "N1,B2,B3,B4,B5");

	/* An empty queue takes a frame of four buffers, whole. */
	client_send(c, big(1400, 0));
	CHECK(c->q.count == 1 && c->dropped == 0);
	CHECK_RX(c, fd, "BIG1400");

	/* Behind a head, one lone big frame may wait. One more frame is too
	 * much: drop-oldest takes the head, not yet started, and the big one
	 * becomes the head. */
	stall(c);
	client_send(c, data("H"));
	client_send(c, big(1400, 0));
	CHECK(c->q.count == 2 && c->dropped == 0);
	client_send(c, data("S"));                    /* behind: 1402 + 3 > 350 */
	CHECK(c->q.count == 2 && c->dropped == 1);
	CHECK_RX(c, fd, "N1,BIG1400,S");

	bye(c, fd);

	/* A partly written big head stays; a second big one waits alone and
	 * a third takes its place. */
	c = peer_client(&fd, 0, 4096);
	client_send(c, big(200000, 0));
	CHECK(client_write(c) == 0 && c->q.off > 0);
	client_send(c, big(200001, 0));
	CHECK(c->q.count == 2 && c->dropped == 0);
	client_send(c, big(200002, 0));
	CHECK(c->q.count == 2 && c->dropped == 1 && behind(c) == 200002 + 10);
	/* The notice now waits behind the head too: it is not a message the
	 * policy can drop, so the newest big frame still takes the waiting
	 * place (the newest record reaches a stalled client). */
	CHECK(client_write(c) == 0 && c->q.count == 3 && outq_at(&c->q, 1)->kind == FRAME_NOTICE);
	client_send(c, big(200003, 0));
	CHECK(c->q.count == 3 && c->dropped == 1);
	CHECK_RX(c, fd, "BIG200000,N2,BIG200003");
	bye(c, fd);
}

/* What drop-oldest may drop: data (counted in the notice) and replies
 * (not counted); never controls or a pending notice. With nothing left to
 * drop the newcomer goes. A notice not yet sent absorbs later drops. */
static void test_drop_kinds(void)
{
	int fd;
	setup(3, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	uint64_t dropped = metrics_get(M_DROPPED);
	client_send(c, ping("P1"));
	client_send(c, reply("R1"));
	client_send(c, data("D1"));
	client_send(c, data("D2"));                   /* R1 goes: a reply, not counted */
	CHECK(c->q.count == 3 && c->dropped == 0 && metrics_get(M_DROPPED) == dropped + 1);
	client_send(c, data("D3"));                   /* D1 goes */
	CHECK(c->q.count == 3 && c->dropped == 1);

	/* A write that finds no room still puts the notice in front. */
	CHECK(client_write(c) == 0);
	CHECK(c->q.count == 4 && c->dropped == 0 && outq_at(&c->q, 0)->kind == FRAME_NOTICE);
	client_send(c, data("D4"));                   /* D2 and D3 go: the notice and P1 stay */
	CHECK(c->q.count == 3 && c->dropped == 2);
	CHECK(outq_at(&c->q, 0)->kind == FRAME_NOTICE && outq_at(&c->q, 1)->kind == FRAME_CONTROL);
	client_send(c, reply("R2"));                  /* D4 goes */
	client_send(c, data("D5"));                   /* R2 goes, uncounted */
	client_send(c, ping("P2"));                   /* D5 goes */
	CHECK(c->q.count == 3 && c->dropped == 4);
	/* Only the notice and controls are left: newcomers go. */
	peer_nwant = 0;
	client_send(c, data("D6"));
	CHECK(c->q.count == 3 && c->dropped == 5 && due_of(c) == clock_now());   /* the notice is due now */
	client_send(c, reply("R3"));
	CHECK(c->q.count == 3 && c->dropped == 5);
	CHECK(metrics_get(M_DROPPED) == dropped + 9);
	/* One notice: 1 already in it + 5 since. */
	CHECK_RX(c, fd, "N6,ping:P1,ping:P2");
	bye(c, fd);
}

/* A partly written frame is never dropped (the peer's framing would break):
 * drops start behind it, the notice goes right after it, and it arrives
 * whole. */
static void test_partial_head(void)
{
	int fd;
	setup(2, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 4096);
	struct frame *b = big(200000, 0);
	client_send(c, frame_ref(b));
	CHECK(client_write(c) == 0);
	CHECKF(c->q.off > 0 && c->q.count == 1, "off %u count %u: the socket took it all", c->q.off, c->q.count);
	client_send(c, data("D1"));
	client_send(c, data("D2"));                   /* D1 goes, not the head */
	CHECK(c->q.count == 2 && outq_at(&c->q, 0) == b && c->dropped == 1);

	setup(1, 1 << 20, SLOW_DROP_OLDEST);
	client_send(c, data("D3"));                   /* D2 goes, then D3 itself: the head stays */
	CHECK(c->q.count == 1 && outq_at(&c->q, 0) == b && c->dropped == 3);
	CHECK(client_write(c) == 0);                  /* the notice goes right after the head */
	CHECK(c->q.count == 2 && outq_at(&c->q, 0) == b && outq_at(&c->q, 1)->kind == FRAME_NOTICE);

	/* drop_queued keeps the head too. */
	setup(8, 1 << 20, SLOW_DROP_OLDEST);
	client_send(c, data("D4"));
	client_drop_queued(c);
	CHECK(c->q.count == 1 && outq_at(&c->q, 0) == b);
	client_send(c, data("D5"));
	CHECK_RX(c, fd, "BIG200000,D5");
	CHECK(b->refs == 1);

	/* A notice absorbed behind a partly written head: one notice. */
	setup(2, 1 << 20, SLOW_DROP_OLDEST);
	client_send(c, frame_ref(b));
	CHECK(client_write(c) == 0 && c->q.off > 0);
	client_send(c, data("F1"));
	client_send(c, data("F2"));                   /* F1 goes */
	CHECK(client_write(c) == 0);                  /* [big, N1, F2] */
	setup(3, 1 << 20, SLOW_DROP_OLDEST);
	client_send(c, data("F3"));                   /* F2 goes */
	CHECK(c->dropped == 1 && c->q.count == 3);
	CHECK_RX(c, fd, "BIG200000,N2,F3");
	bye(c, fd);
	frame_unref(b);
}

/* --slow-client conflate: the newest record of a key replaces the oldest
 * one still queued; without one, a record whose key has a newer copy
 * queued goes; without that either (or without a key), drop-oldest. */
static void test_conflate_policy(void)
{
	int fd;
	setup(3, 1 << 20, SLOW_CONFLATE);
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	uint64_t dropped = metrics_get(M_DROPPED);
	struct frame *a1 = keyed("A1", 0xa);
	client_send(c, frame_ref(a1));
	client_send(c, keyed("B1", 0xb));
	client_send(c, keyed("C1", 0xc));
	client_send(c, keyed("A2", 0xa));             /* replaces A1 */
	CHECK(c->q.count == 3 && c->dropped == 1 && a1->refs == 1);
	client_send(c, keyed("D1", 0xd));             /* no D queued: B1, the oldest, goes */
	client_send(c, keyed("U1", 0));               /* no key: C1 goes */
	client_send(c, keyed("U2", 0));               /* keyless never replace: A2 goes */
	client_send(c, keyed("D2", 0xd));             /* replaces D1 */
	CHECK(c->q.count == 3 && c->dropped == 5 && metrics_get(M_DROPPED) == dropped + 5);
	CHECK_RX(c, fd, "N5,U1,U2,D2");
	frame_unref(a1);

	/* Only data is replaced: a reply with the same hash is not. */
	stall(c);
	client_send(c, mkp("R1", 0, FRAME_REPLY, 0xe));
	client_send(c, keyed("E1", 0xf));
	client_send(c, keyed("G1", 0x1));
	client_send(c, keyed("E2", 0xe));             /* no data of 0xe: drop-oldest takes R1 */
	CHECK(c->dropped == 0);
	CHECK_RX(c, fd, "E1,G1,E2");

	/* Two older records of the key queued (queued before the limit was
	 * reached): one gives way, not both. */
	setup(4, 1 << 20, SLOW_CONFLATE);
	stall(c);
	client_send(c, keyed("A1", 0xa));
	client_send(c, keyed("A2", 0xa));
	client_send(c, keyed("B1", 0xb));
	client_send(c, keyed("C1", 0xc));
	client_send(c, keyed("A3", 0xa));
	CHECK(c->q.count == 4 && c->dropped == 1);
	CHECK_RX(c, fd, "N1,A2,B1,C1,A3");            /* the oldest of the key gives way */
	bye(c, fd);

	/* A new key while full: a record whose key has a newer copy queued
	 * goes, not the oldest (B1, the only value of its key). */
	setup(4, 1 << 20, SLOW_CONFLATE);
	c = peer_client(&fd, 0, 0);
	stall(c);
	client_send(c, keyed("B1", 0xb));
	client_send(c, keyed("A1", 0xa));
	client_send(c, keyed("A2", 0xa));
	client_send(c, keyed("C1", 0xc));
	client_send(c, keyed("D1", 0xd));
	CHECK(c->q.count == 4 && c->dropped == 1);
	CHECK_RX(c, fd, "N1,B1,A2,C1,D1");
	/* No stale record left: drop-oldest, as before. */
	stall(c);
	client_send(c, keyed("B2", 0xb));
	client_send(c, keyed("A3", 0xa));
	client_send(c, keyed("C2", 0xc));
	client_send(c, keyed("D2", 0xd));
	client_send(c, keyed("E1", 0xe));
	CHECK_RX(c, fd, "N1,A3,C2,D2,E1");
	bye(c, fd);

	/* A partly written head of the same key is not replaced. */
	setup(2, 1 << 20, SLOW_CONFLATE);
	c = peer_client(&fd, 0, 4096);
	client_send(c, big(100000, 0xa));
	CHECK(client_write(c) == 0 && c->q.off > 0);
	client_send(c, keyed("B1", 0xb));
	client_send(c, keyed("A2", 0xa));             /* B1 goes instead */
	CHECK(c->q.count == 2 && c->dropped == 1);
	CHECK_RX(c, fd, "BIG100000,N1,A2");
	bye(c, fd);
}

/* --slow-client disconnect: queued output dropped, close 1008 "slow
 * consumer", CS_CLOSING with the close deadline; no notice. */
static void test_disconnect(void)
{
	int fd;
	setup(2, 1 << 20, SLOW_DISCONNECT);
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	uint64_t slow = metrics_get(M_SLOW_DISCONNECTS);
	struct frame *d1 = data("D1"), *d3 = data("D3");
	client_send(c, frame_ref(d1));
	client_send(c, data("D2"));
	CHECK(c->state == CS_WS && slow == metrics_get(M_SLOW_DISCONNECTS));
	int64_t now = clock_advance();
	client_send(c, frame_ref(d3));
	CHECK(c->state == CS_CLOSING && c->close_sent && c->deadline == now + CLIENT_LINGER_MS);
	CHECK(c->why && strcmp(c->why, "slow consumer") == 0);
	CHECK(metrics_get(M_SLOW_DISCONNECTS) == slow + 1);
	CHECK(c->q.count == 1 && d1->refs == 1 && d3->refs == 1 && c->dropped == 0);
	client_send(c, data("D4"));                   /* closing: dropped quietly */
	CHECK(c->q.count == 1 && metrics_get(M_SLOW_DISCONNECTS) == slow + 1);
	CHECK_RX(c, fd, "close:1008:slow consumer");
	CHECK(!peer_eof(fd));                         /* waits for the peer's close */
	bye(c, fd);
	frame_unref(d1);
	frame_unref(d3);

	/* A partly written frame still goes out whole before the close. */
	c = peer_client(&fd, 0, 4096);
	client_send(c, big(100000, 0));
	CHECK(client_write(c) == 0 && c->q.off > 0);
	client_send(c, data("E1"));
	client_send(c, data("E2"));
	CHECK(c->state == CS_CLOSING);
	CHECK_RX(c, fd, "BIG100000,close:1008:slow consumer");
	bye(c, fd);
}

/* client_send_always: past every limit, nothing dropped for it; what
 * follows is under the policy again. */
static void test_send_always(void)
{
	int fd;
	setup(3, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	stall(c);
	uint64_t dropped = metrics_get(M_DROPPED);
	client_send(c, data("D1"));
	client_send(c, data("D2"));
	client_send_always(c, mkp("S1", 0, FRAME_CONTROL, 0));
	client_send_always(c, mkp("S2", 2000, FRAME_CONTROL, 0));
	CHECK(c->q.count == 4 && c->dropped == 0 && metrics_get(M_DROPPED) == dropped);
	client_send(c, data("D3"));                   /* D1 and D2 go */
	CHECK(c->q.count == 3 && c->dropped == 2);
	client_send(c, data("D4"));                   /* only D3 may go */
	CHECK(c->q.count == 3 && c->dropped == 3);
	client_send_always(c, data("D5"));            /* always: even data */
	CHECK(c->q.count == 4 && c->dropped == 3);
	CHECK_RX(c, fd, "N3,S1,S2,D4,D5");

	/* Owed answers (a publish's ack or PUBLISH_FAILED) go past the
	 * policy too; an ordinary reply does not. */
	stall(c);
	client_send(c, data("D6"));
	client_send(c, data("D7"));
	client_send(c, data("D8"));
	struct jbuf b;
	reply_begin(&b, "ack", "1", 1);
	reply_send_always(c, &b);
	reply_error_always(c, "2", 1, "PUBLISH_FAILED", "x");
	CHECK(c->q.count == 5 && c->dropped == 0);
	reply_begin(&b, "pong", NULL, 0);
	reply_send(c, &b);                             /* the data go for it; the answers stay */
	CHECKF(c->q.count == 3 && c->dropped == 3, "count %u dropped %u", (unsigned)c->q.count, (unsigned)c->dropped);
	CHECK(outq_at(&c->q, 0)->kind == FRAME_REPLY && outq_at(&c->q, 1)->kind == FRAME_REPLY);
	bye(c, fd);
}

/* Replies: {"type":T[,"id":ID],...} with the id verbatim; JSON or
 * MessagePack by the client's format. */
static void test_replies(void)
{
	int fd, mfd;
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0), *m = peer_client(&mfd, 1, 0);
	static const char *const ids[] = { "7", "-1.5e3", "\"r-1\"", "{\"a\":[1,{\"b\":null}]}", "[\"x\",2]", "null" };
	char want[1024] = "";
	for (int k = 0; k < 2; k++) {
		struct client *x = k ? m : c;
		for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			struct jbuf b;
			reply_begin(&b, "ack", ids[i], strlen(ids[i]));
			json_key(&b, "channel");
			json_cstr(&b, "x");
			reply_send(x, &b);
		}
		struct jbuf b;
		reply_begin(&b, "pong", NULL, 0);
		reply_send(x, &b);
		reply_error(x, "42", 2, "BAD_REQUEST", "bad \"thing\"");
		CHECK(x->q.count == 8 && outq_at(&x->q, 0)->kind == FRAME_REPLY);
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		size_t l = strlen(want);
		snprintf(want + l, sizeof(want) - l, "{\"type\":\"ack\",\"id\":%s,\"channel\":\"x\"},", ids[i]);
	}
	strcat(want, "{\"type\":\"pong\"},{\"type\":\"error\",\"id\":42,\"code\":\"BAD_REQUEST\",\"message\":\"bad \\\"thing\\\"\"}");
	CHECK_RX(c, fd, want);

	/* MessagePack: the same objects (numbers as MessagePack writes them). */
	char mwant[1200] = "";
	const char *p = want;
	while (*p) {
		const char *e = strstr(p, "},{");
		size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
		size_t l = strlen(mwant);
		snprintf(mwant + l, sizeof(mwant) - l, "%smp:%.*s", l ? "," : "", (int)n, p);
		p += n + (e ? 1 : 0);
	}
	/* -1.5e3 is a float64 in MessagePack: it comes back as -1500. */
	char *fix = strstr(mwant, "-1.5e3");
	if (fix) memmove(fix + 5, fix + 6, strlen(fix + 6) + 1), memcpy(fix, "-1500", 5);
	CHECK_RX(m, mfd, mwant);

	/* A MessagePack client's SLOW_CONSUMER notice is MessagePack too. */
	setup(1, 1 << 20, SLOW_DROP_OLDEST);
	stall(m);
	client_send(m, data("D1"));
	client_send(m, data("D2"));
	CHECK_RX(m, mfd, "mp:{\"type\":\"error\",\"code\":\"SLOW_CONSUMER\",\"message\":\"messages were dropped because "
		 "this client reads too slowly\",\"dropped\":1},D2");
	bye(c, fd);
	bye(m, mfd);
}

/* client_ws_close, client_ws_fail, client_linger, close frames. */
static void test_closing(void)
{
	int fd;
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);

	/* ws_close: a close frame, CS_CLOSING, the caller's deadline. */
	struct client *c = peer_client(&fd, 0, 0);
	int64_t now = clock_advance();
	client_ws_close(c, WS_CLOSE_GOING_AWAY, "going away", 1234);
	CHECK(c->state == CS_CLOSING && c->close_sent && c->deadline == now + 1234 && c->q.count == 1);
	CHECK(c->why && strcmp(c->why, "going away") == 0 && due_of(c) == now);
	client_ws_close(c, WS_CLOSE_NORMAL, "again", 1);   /* only from CS_WS */
	CHECK(c->q.count == 1 && c->deadline == now + 1234 && strcmp(c->why, "going away") == 0);
	CHECK_RX(c, fd, "close:1001:going away");
	CHECK(!peer_eof(fd) && !c->wr_shut);
	/* ws_fail after the close went: no second close frame; linger. */
	client_ws_fail(c, WS_CLOSE_PROTOCOL, "protocol error");
	CHECK(c->state == CS_LINGER && c->deadline == now + CLIENT_LINGER_MS && strcmp(c->why, "going away") == 0);
	CHECK_RX(c, fd, "");
	CHECK(c->wr_shut && peer_eof(fd));
	bye(c, fd);

	/* ws_fail: queued output dropped, a close frame, linger, then FIN. */
	c = peer_client(&fd, 0, 0);
	struct frame *d = data("D1");
	client_send(c, frame_ref(d));
	client_send(c, reply("R1"));
	peer_nwant = 0;
	client_ws_fail(c, WS_CLOSE_BAD_DATA, "text is not valid UTF-8");
	CHECK(c->state == CS_LINGER && c->close_sent && c->q.count == 1 && d->refs == 1);
	CHECK(c->deadline == now + CLIENT_LINGER_MS && due_of(c) == now);
	CHECK(c->why && strcmp(c->why, "text is not valid UTF-8") == 0);
	CHECK_RX(c, fd, "close:1007:text is not valid UTF-8");
	CHECK(c->wr_shut && peer_eof(fd));
	bye(c, fd);
	frame_unref(d);

	/* ws_fail with a partly written frame: it goes out whole first. */
	c = peer_client(&fd, 0, 4096);
	client_send(c, big(150000, 0));
	CHECK(client_write(c) == 0 && c->q.off > 0);
	client_send(c, data("D1"));
	client_ws_fail(c, WS_CLOSE_TOO_BIG, "message too big");
	CHECK(c->q.count == 2);
	CHECK_RX(c, fd, "BIG150000,close:1009:message too big");
	CHECK(c->wr_shut && peer_eof(fd));
	bye(c, fd);

	/* linger: FIN only after the last queued byte. */
	c = peer_client(&fd, 0, 4096);
	client_send(c, big(150000, 0));
	client_linger(c);
	CHECK(c->state == CS_LINGER && c->deadline == now + CLIENT_LINGER_MS);
	CHECK(client_write(c) == 0 && c->q.count == 1 && !c->wr_shut);
	CHECK_RX(c, fd, "BIG150000");
	CHECK(c->wr_shut && peer_eof(fd));
	CHECK(client_write(c) == 0);                  /* again: harmless */
	bye(c, fd);

	/* Close frames: no code means no payload; a long reason is cut to
	 * the 125 bytes of a control frame. */
	c = peer_client(&fd, 0, 0);
	client_close_frame(c, 0, "ignored");
	char reason[300];
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	client_close_frame(c, WS_CLOSE_NORMAL, reason);
	client_close_frame(c, WS_CLOSE_INTERNAL, NULL);
	struct pframe f[8];
	CHECK(client_write(c) == 0);
	int n = peer_read(fd, f, 8);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(f[0].op == 8 && f[0].len == 0);
		CHECK(f[1].op == 8 && f[1].len == 125 && f[1].data[0] == 0x03 && f[1].data[1] == (char)0xe8 &&
		      strspn(f[1].data + 2, "r") == 123);
		CHECK(f[2].op == 8 && f[2].len == 2 && f[2].data[0] == 0x03 && f[2].data[1] == (char)0xf3);
	}
	peer_frames_free(f, n < 0 ? 0 : n);
	bye(c, fd);
}

/* Connection counts, dead clients, ids, deadlines and peer names. */
static void test_counts(void)
{
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	int sv[3][2];
	for (int i = 0; i < 3; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) < 0) abort();
	client_take_dead();
	uint32_t h0 = client_http_count(), w0 = client_ws_count();
	int64_t now = clock_advance();
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
	a6.sin6_addr.s6_addr[15] = 1;
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(65535) };
	a4.sin_addr.s_addr = htonl(0x0a000102);
	struct sockaddr un = { .sa_family = AF_UNIX };

	struct client *a = client_new(sv[0][0], (struct sockaddr *)&a4, sizeof(a4));
	struct client *b = client_new(sv[1][0], (struct sockaddr *)&a6, sizeof(a6));
	struct client *u = client_new(sv[2][0], &un, sizeof(un));
	CHECK(a && b && u && b->id == a->id + 1 && u->id == b->id + 1);
	CHECK(a->state == CS_HTTP && a->deadline == now + 10 * 1000 && a->fd == sv[0][0]);
	CHECK(client_http_count() == h0 + 3 && client_ws_count() == w0);
	CHECK(strcmp(client_peer(a), "10.0.1.2:65535") == 0);
	CHECK(strcmp(client_peer(b), "::1:8080") == 0);
	CHECK(strcmp(client_peer(u), "?:0") == 0);

	client_upgrade(b);
	CHECK(b->state == CS_WS && b->ws && client_http_count() == h0 + 2 && client_ws_count() == w0 + 1);
	CHECK(client_take_dead() == 0);
	client_kill(a, "first");
	client_kill(a, "second");
	CHECK(a->state == CS_DEAD && strcmp(a->why, "first") == 0);
	CHECK(client_http_count() == h0 + 1 && client_take_dead() == 1 && client_take_dead() == 0);
	client_kill(b, "gone");
	CHECK(client_ws_count() == w0 + 1 && client_take_dead() == 1);   /* a WebSocket counts until freed */
	client_free(a);
	client_free(b);
	CHECK(client_http_count() == h0 + 1 && client_ws_count() == w0);
	client_free(u);                               /* freed straight from CS_HTTP */
	CHECK(client_http_count() == h0 && client_ws_count() == w0 && client_take_dead() == 0);
	for (int i = 0; i < 3; i++) close(sv[i][1]);
}

/* A socket error kills the client with the error as its reason; nothing
 * is counted as written. */
static void test_write_error(void)
{
	int fd;
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	peer_close(fd);
	client_take_dead();
	uint64_t bytes = metrics_get(M_BYTES_OUT), msgs = metrics_get(M_MESSAGES_OUT);
	client_send(c, data("D1"));
	CHECK(client_write(c) == -1 && c->state == CS_DEAD && c->why && strcmp(c->why, strerror(EPIPE)) == 0);
	CHECK(client_take_dead() == 1);
	CHECK(metrics_get(M_BYTES_OUT) == bytes && metrics_get(M_MESSAGES_OUT) == msgs);
	peer_forget(c);
	client_free(c);
}

/* M_BYTES_OUT counts every byte written; M_MESSAGES_OUT data frames
 * written in full, when their last byte goes. */
static void test_metrics(void)
{
	int fd;
	setup(1024, 1 << 20, SLOW_DROP_OLDEST);
	struct client *c = peer_client(&fd, 0, 0);
	uint64_t bytes = metrics_get(M_BYTES_OUT), msgs = metrics_get(M_MESSAGES_OUT);
	struct frame *d = data("D1"), *r = reply("R1"), *p = ping("P1");
	size_t total = d->len + r->len + p->len;
	client_send(c, d);
	client_send(c, r);
	client_send(c, p);
	CHECK_RX(c, fd, "D1,R1,ping:P1");
	CHECK(metrics_get(M_BYTES_OUT) == bytes + total && metrics_get(M_MESSAGES_OUT) == msgs + 1);
	bye(c, fd);

	c = peer_client(&fd, 0, 4096);
	bytes = metrics_get(M_BYTES_OUT);
	msgs = metrics_get(M_MESSAGES_OUT);
	struct frame *b = big(200000, 0);
	size_t blen = b->len;
	client_send(c, b);
	CHECK(client_write(c) == 0 && c->q.off > 0);
	CHECK(metrics_get(M_BYTES_OUT) == bytes + c->q.off && metrics_get(M_MESSAGES_OUT) == msgs);
	CHECK_RX(c, fd, "BIG200000");
	CHECK(metrics_get(M_BYTES_OUT) == bytes + blen && metrics_get(M_MESSAGES_OUT) == msgs + 1);
	bye(c, fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_setup(LOG_ERROR, 0);
	test_send_flush();
	test_states();
	test_queue_limit();
	test_buffer_limit();
	test_drop_kinds();
	test_partial_head();
	test_conflate_policy();
	test_disconnect();
	test_send_always();
	test_replies();
	test_closing();
	test_counts();
	test_write_error();
	test_metrics();
	return check_summary("client");
}
