/* frame.c - reference-counted frames and the per-client output ring.
 * Ownership: whoever holds a pointer holds one reference; outq_push moves the
 * caller's reference into the queue; outq_write/outq_remove/outq_clear drop
 * the queue's reference once the bytes are gone. Single-threaded. */
#include "frame.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "json.h"
#include "msgpack.h"
#include "pmd.h"
#include "sse.h"

#define STATIC_REFS UINT32_MAX

#define OUTQ_MIN_CAP 4
#define OUTQ_IOV 64      /* frames per writev(); IOV_MAX is 1024 on Linux */

struct frame *frame_new(size_t len, enum frame_kind kind)
{
	if (len > UINT32_MAX) return NULL;
	struct frame *f = malloc(sizeof(*f) + len);
	if (!f) return NULL;
	f->refs = 1;
	f->kind = (uint8_t)kind;
	f->glued = 0;
	f->len = (uint32_t)len;
	f->saved = 0;
	f->key_hash = 0;
	return f;
}

struct frame *frame_ref(struct frame *f)
{
	if (f->refs != STATIC_REFS) f->refs++;
	return f;
}

void frame_unref(struct frame *f)
{
	if (!f || f->refs == STATIC_REFS) return;
	if (--f->refs == 0) free(f);
}

struct frame *frame_ws(enum ws_opcode op, const void *payload, size_t len, enum frame_kind kind)
{
	size_t hl = ws_header_len(len);
	struct frame *f = frame_new(hl + len, kind);
	if (!f) return NULL;
	ws_header_encode(f->data, op, len);
	if (len) memcpy(f->data + hl, payload, len);
	return f;
}

struct frame *frame_message(int msgpack, const char *json, size_t len, enum frame_kind kind)
{
	if (!msgpack) return frame_ws(WS_OP_TEXT, json, len, kind);
	/* Every server message is built as JSON once; MessagePack clients get
	 * the same object transcoded, so both formats carry the same fields. */
	struct jbuf mp;
	json_init(&mp);
	struct frame *f = mp_from_json(&mp, json, len) == 0 && !mp.failed ?
		frame_ws(WS_OP_BINARY, mp.buf, mp.len, kind) : NULL;
	json_free(&mp);
	return f;
}

struct frame *frame_sse(const char *id, size_t id_len, const char *json, size_t len, enum frame_kind kind)
{
	size_t n = sse_event(NULL, id, id_len, json, len);
	struct frame *f = n <= UINT32_MAX ? frame_new(n, kind) : NULL;
	if (f) sse_event(f->data, id, id_len, json, len);
	return f;
}

static size_t deflate_min = 256;

void frame_deflate_min(size_t min_size)
{
	deflate_min = min_size;
}

/* n bytes at p compressed for a client of window bits, with the smallest
 * window that reaches across them (pmd_window); -1 below the minimum size
 * or on failure. *z stays valid until pmd_trim or the next compression. */
static ssize_t compress(const void *p, size_t n, unsigned bits, const unsigned char **z)
{
	return n < deflate_min ? -1 : pmd_deflate(pmd_window(bits, n), p, n, z);
}

struct frame *frame_deflate(const struct frame *plain, unsigned bits)
{
	/* Read back the header frame_ws wrote: unmasked, 7-, 16- or 64-bit
	 * length (RFC 6455 §5.2). */
	if (plain->len < 2) return NULL;
	const unsigned char *d = plain->data;
	size_t hl = 2;
	uint64_t n = d[1] & 0x7f;
	if (n == 126) { hl = 4; n = (uint64_t)d[2] << 8 | d[3]; }
	else if (n == 127) { hl = 10; n = 0; for (int i = 0; i < 8; i++) n = n << 8 | d[2 + i]; }
	/* Never a control frame (RFC 7692 §6.1), nor one compressed already. */
	if (hl + n != plain->len || (d[0] & 0x78)) return NULL;
	const unsigned char *z;
	ssize_t zn = compress(d + hl, (size_t)n, bits, &z);
	size_t total = zn < 0 ? 0 : ws_header_len((uint64_t)zn) + (size_t)zn;
	struct frame *f = NULL;
	/* Incompressible: the plain frame is smaller. */
	if (zn >= 0 && total < plain->len && (f = frame_new(total, (enum frame_kind)plain->kind))) {
		size_t zhl = ws_header_encode(f->data, (enum ws_opcode)((d[0] & 0x0f) | WS_RSV1), (uint64_t)zn);
		memcpy(f->data + zhl, z, (size_t)zn);
		f->saved = plain->len - (uint32_t)total;
		f->key_hash = plain->key_hash;
		f->glued = plain->glued;
	}
	pmd_trim();
	return f;
}

struct frame *frame_deflate_body(const struct frame *body, unsigned bits)
{
	const unsigned char *z;
	ssize_t zn = compress(body->data, body->len, bits, &z);
	struct frame *f = NULL;
	if (zn >= 0 && (size_t)zn + PMD_STORED_OVERHEAD < body->len && (f = frame_new((size_t)zn, (enum frame_kind)body->kind))) {
		memcpy(f->data, z, (size_t)zn);
		f->saved = body->len - (uint32_t)zn - PMD_STORED_OVERHEAD;
		f->glued = body->glued;
	}
	pmd_trim();
	return f;
}

struct frame *frame_for(struct frame *plain, unsigned bits)
{
	if (!plain || !bits) return plain;
	struct frame *z = frame_deflate(plain, bits);
	if (!z) return plain;
	frame_unref(plain);
	return z;
}

static int outq_grow(struct outq *q)
{
	uint32_t ncap = q->cap ? q->cap * 2 : OUTQ_MIN_CAP;
	struct frame **r = malloc(ncap * sizeof(*r));
	if (!r) return -1;
	/* Unwrap the ring into the new array, head first. */
	for (uint32_t i = 0; i < q->count; i++) r[i] = q->ring[(q->head + i) % q->cap];
	free(q->ring);
	q->ring = r;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

int outq_push(struct outq *q, struct frame *f)
{
	if (q->count == q->cap && outq_grow(q) < 0) {
		frame_unref(f);
		return -1;
	}
	q->ring[(q->head + q->count) % q->cap] = f;
	q->count++;
	q->bytes += f->len;
	return 0;
}

struct frame *outq_at(const struct outq *q, uint32_t i)
{
	return i < q->count ? q->ring[(q->head + i) % q->cap] : NULL;
}

uint32_t outq_first_free(const struct outq *q)
{
	/* A glued frame at the head is in flight too: the frame it continues
	 * is already written. */
	uint32_t i = q->count && (q->off || q->ring[q->head]->glued) ? 1 : 0;
	while (i && i < q->count && q->ring[(q->head + i) % q->cap]->glued) i++;
	return i;
}

int outq_push_front(struct outq *q, struct frame *f)
{
	uint32_t pos = outq_first_free(q);
	if (outq_push(q, f) < 0) return -1;
	/* Rotate the new tail to position pos by shifting the frames between. */
	for (uint32_t i = q->count - 1; i > pos; i--)
		q->ring[(q->head + i) % q->cap] = q->ring[(q->head + i - 1) % q->cap];
	q->ring[(q->head + pos) % q->cap] = f;
	return 0;
}

void outq_remove(struct outq *q, uint32_t i)
{
	if (i >= q->count || (i == 0 && (q->off || q->ring[q->head]->glued))) return;
	struct frame *f = q->ring[(q->head + i) % q->cap];
	q->bytes -= f->len;
	for (uint32_t k = i; k + 1 < q->count; k++)
		q->ring[(q->head + k) % q->cap] = q->ring[(q->head + k + 1) % q->cap];
	q->count--;
	frame_unref(f);
	if (q->count == 0) outq_clear(q);
}

void outq_clear(struct outq *q)
{
	for (uint32_t i = 0; i < q->count; i++) frame_unref(q->ring[(q->head + i) % q->cap]);
	free(q->ring);
	memset(q, 0, sizeof(*q));
}

/* Retires n bytes from the head: whole frames are unreferenced, a partial
 * one keeps its offset. */
static void advance(struct outq *q, size_t left, struct outq_done *done)
{
	q->bytes -= left;
	while (q->count) {
		struct frame *f = q->ring[q->head];
		size_t rest = f->len - q->off;
		if (left < rest) { q->off += (uint32_t)left; break; }
		left -= rest;
		if (done) {
			done->data += f->kind == FRAME_DATA;
			done->saved += f->saved;
		}
		q->off = 0;
		q->head = (q->head + 1) % q->cap;
		q->count--;
		frame_unref(f);
	}
}

size_t outq_gather(struct outq *q, unsigned char *buf, size_t cap, struct outq_done *done)
{
	size_t n = 0;
	for (uint32_t i = 0; i < q->count && n < cap; i++) {
		struct frame *f = q->ring[(q->head + i) % q->cap];
		size_t skip = i == 0 ? q->off : 0;
		size_t take = f->len - skip < cap - n ? f->len - skip : cap - n;
		memcpy(buf + n, f->data + skip, take);
		n += take;
	}
	advance(q, n, done);
	if (q->count == 0) outq_clear(q);
	return n;
}

ssize_t outq_write(struct outq *q, int fd, struct outq_done *done)
{
	ssize_t total = 0;
	while (q->count) {
		struct iovec iov[OUTQ_IOV];
		int n = 0;
		size_t offered = 0;
		for (uint32_t i = 0; i < q->count && n < OUTQ_IOV; i++, n++) {
			struct frame *f = q->ring[(q->head + i) % q->cap];
			size_t skip = i == 0 ? q->off : 0;
			iov[n].iov_base = f->data + skip;
			iov[n].iov_len = f->len - skip;
			offered += f->len - skip;
		}
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) break;
			return -1;
		}
		total += w;
		/* Retire every frame the write finished; remember where it stopped. */
		advance(q, (size_t)w, done);
		if ((size_t)w < offered) break;   /* the kernel is full: wait for POLLOUT */
	}
	if (q->count == 0) outq_clear(q);
	return total;
}
