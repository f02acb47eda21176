/* frame.h - reference-counted output buffers and the per-client queue of
 * references to them (docs/architecture.md#ownership-and-freeing). A
 * broadcast record is encoded once into a frame; every subscriber's queue
 * holds a pointer to it; writev() sends many queued frames per syscall and
 * resumes a partial write at the exact byte. Also builds WebSocket frames around a payload.
 * Knows nothing of clients or policies: the client layer decides what to
 * queue and what to drop. */
#ifndef KB_FRAME_H
#define KB_FRAME_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ws.h"

/* Frame kinds, so queue policies know what they may drop or replace. */
enum frame_kind {
	FRAME_DATA,      /* a Kafka record: droppable by the slow-client policy */
	FRAME_REPLY,     /* a reply to one client (ack, pong, error, HTTP response) */
	FRAME_CONTROL,   /* ping/close: never dropped */
	FRAME_NOTICE,    /* a SLOW_CONSUMER notice: replaced, never counted */
};

struct frame {
	uint32_t refs;         /* UINT32_MAX: static, never freed */
	uint8_t kind;
	uint8_t glued;         /* continues the previous frame's WebSocket frame: goes or stays with it */
	uint32_t len;          /* bytes in data[] */
	uint64_t key_hash;     /* record key hash for conflation (0: none) */
	unsigned char data[];
};

/* New frame with room for len bytes, refs = 1. NULL when out of memory. */
struct frame *frame_new(size_t len, enum frame_kind kind);
struct frame *frame_ref(struct frame *f);
void frame_unref(struct frame *f);

/* A WebSocket frame (unmasked server header + payload) in a new frame. */
struct frame *frame_ws(enum ws_opcode op, const void *payload, size_t len, enum frame_kind kind);
/* A server message given as JSON text: a text frame, or with msgpack set the
 * same object as MessagePack in a binary frame. NULL when out of memory (or
 * the JSON cannot be transcoded). */
struct frame *frame_message(int msgpack, const char *json, size_t len, enum frame_kind kind);

/* A bounded ring of frame references. The ring array is allocated on the
 * first push and freed when the queue drains, so an idle client holds none. */
struct outq {
	struct frame **ring;
	uint32_t cap, head, count;
	uint32_t off;          /* bytes of ring[head] already written */
	size_t bytes;          /* bytes held and not yet written (what --client-buffer bounds) */
};

/* Appends a reference the queue now owns (the caller's reference moves in).
 * Returns 0, or -1 when out of memory (the reference is then dropped). */
int outq_push(struct outq *q, struct frame *f);
/* Inserts at outq_first_free: used for notices that must precede what
 * follows. */
int outq_push_front(struct outq *q, struct frame *f);
/* The first position behind the frame being written: 0 when nothing is
 * partly written, else past the head and the frames glued to it (a glued
 * head counts as partly written: what it continues went out already). */
uint32_t outq_first_free(const struct outq *q);
/* Frame at position i (0 = head), or NULL. */
struct frame *outq_at(const struct outq *q, uint32_t i);
/* Removes the frame at position i (never the partly written head) and
 * drops its reference. */
void outq_remove(struct outq *q, uint32_t i);
/* Writes as much as the socket takes with writev(). Returns bytes written
 * (>= 0, 0 also on EAGAIN) or -1 with errno set on a real error. When
 * data_done is not NULL, adds to it the FRAME_DATA frames written in full. */
ssize_t outq_write(struct outq *q, int fd, uint64_t *data_done);
/* Copies up to cap bytes from the head of the queue into buf and retires
 * them as if written (a partial frame is resumed at the exact byte next
 * time): for a TLS connection, whose bytes go through one record buffer.
 * Returns the bytes copied; data_done as for outq_write. */
size_t outq_gather(struct outq *q, unsigned char *buf, size_t cap, uint64_t *data_done);
/* Drops every reference and the ring. */
void outq_clear(struct outq *q);
#endif
