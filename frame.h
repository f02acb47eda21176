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
	uint32_t saved;        /* bytes fewer than uncompressed (permessage-deflate), 0 if plain */
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

/* The same message as a Server-Sent Event (sse.h): `id: ID` first when id
 * is not NULL, `event:` its type, one `data:` line. NULL when out of
 * memory. */
struct frame *frame_sse(const char *id, size_t id_len, const char *json, size_t len, enum frame_kind kind);

/* permessage-deflate (pmd.h): a message's payload is compressed when it
 * has at least min_size bytes (--deflate-min-size). */
void frame_deflate_min(size_t min_size);
/* The compressed twin of a plain, whole WebSocket frame (as frame_ws and
 * frame_message make them) for a client that negotiated permessage-deflate
 * with a window of `bits` (RFC 7692 §7.2.1): RSV1 set, the payload
 * compressed on its own, kind and key_hash kept, `saved` filled. NULL when
 * the payload is below the minimum size, when compression would not make
 * the frame smaller, or out of memory: the plain frame is sent then. */
struct frame *frame_deflate(const struct frame *plain, unsigned bits);
/* The shared body of a message whose own head goes ahead of it in a
 * DEFLATE stored block (pmd_stored_block): body's bytes (no WebSocket
 * header) compressed with window bits, glued like body; `saved` counts the
 * stored block's cost. NULL as for frame_deflate. */
struct frame *frame_deflate_body(const struct frame *body, unsigned bits);
/* For a client with window bits (0: no deflate): plain, or in its place
 * (the reference moves) its compressed twin when there is one. */
struct frame *frame_for(struct frame *plain, unsigned bits);

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
/* What a write finished: FRAME_DATA frames written in full, and the bytes
 * compression spared in the frames written in full. */
struct outq_done {
	uint64_t data;
	uint64_t saved;
};
/* Writes as much as the socket takes with writev(). Returns bytes written
 * (>= 0, 0 also on EAGAIN) or -1 with errno set on a real error. When done
 * is not NULL, adds to it what the write finished. */
ssize_t outq_write(struct outq *q, int fd, struct outq_done *done);
/* Copies up to cap bytes from the head of the queue into buf and retires
 * them as if written (a partial frame is resumed at the exact byte next
 * time): for a TLS connection, whose bytes go through one record buffer.
 * Returns the bytes copied; done as for outq_write. */
size_t outq_gather(struct outq *q, unsigned char *buf, size_t cap, struct outq_done *done);
/* Drops every reference and the ring. */
void outq_clear(struct outq *q);
#endif
