/* client.h - one connection: its state machine, buffers and timers, shared by
 * the loop (kbridge.c) and the routing code that queues frames to clients.
 * Kept small: an idle WebSocket client owns no buffers at all (§5). */
#ifndef KB_CLIENT_H
#define KB_CLIENT_H
#include <netinet/in.h>
#include <stdint.h>

#include "frame.h"

enum client_state {
	CS_HTTP,      /* reading a request head (plain HTTP or upgrade) */
	CS_WS,        /* WebSocket open */
	CS_CLOSING,   /* we sent a close frame and wait for the peer's */
	CS_LINGER,    /* flush output, shut down our side, discard input until EOF */
	CS_DEAD,      /* to be freed at the end of the turn */
};

struct sub;        /* hub.c: one subscription */
struct conflation; /* conflate.c */
struct resume;     /* hub.c */

struct client {
	int fd;
	uint32_t id;
	uint32_t slot;               /* index in the loop's pollfd array */
	uint8_t state;               /* enum client_state */
	uint8_t msg_op;              /* opcode of the fragmented message in progress, 0 if none */
	unsigned in_flush : 1,       /* on the loop's flush list this turn */
		 close_sent : 1,     /* a close frame is queued or sent */
		 wr_shut : 1,        /* shutdown(SHUT_WR) done (linger) */
		 got_bytes : 1,      /* any request byte arrived (for 408 vs silent close) */
		 msgpack : 1,        /* format=msgpack connection */
		 ws : 1,             /* upgraded: counts toward --max-clients */
		 ev_out : 1,         /* EPOLLOUT is registered */
		 snapshots : 1;      /* snapshot=1 or type=tui|web: a snapshot after every subscribe */
	uint32_t utf8;               /* UTF-8 validator state of the text message in progress */

	unsigned char *rbuf;         /* unconsumed input; NULL when empty */
	uint32_t rlen, rcap;
	unsigned char *msg;          /* fragmented message being assembled; NULL if none */
	uint32_t msg_len, msg_cap;

	struct outq q;
	uint32_t dropped;            /* records dropped since the last SLOW_CONSUMER notice */

	int64_t deadline;            /* ms: header timeout, close/linger timeout */
	int64_t last_rx;             /* ms: last frame received */
	int64_t next_ping;           /* ms */
	int64_t rl_last;             /* ms: last rate-limit refill */
	int64_t rl_since;            /* ms: start of an unbroken run of RATE_LIMITED, 0 if none */
	float rl_tokens;
	uint32_t rl_latest;          /* ms after rl_since of the run's latest RATE_LIMITED */

	const char *why;             /* first reason the connection is ending (static text) */
	uint64_t stamp;              /* hub.c: last record delivered, against duplicates */
	uint32_t interval_ms;        /* conflation asked on the upgrade, 0 = none */
	struct conflation *cf;       /* conflate.c state, NULL until needed */
	struct resume *rs;           /* hub.c resume state, NULL unless resumed */
	struct sub *subs;            /* this client's subscriptions (hub.c) */
	uint32_t nsubs;
	struct client *flush_next;
	union { struct sockaddr sa; struct sockaddr_in v4; struct sockaddr_in6 v6; } peer;
};

/* Queues a frame to a WebSocket client under the slow-client policy; the
 * caller's reference moves in (it is dropped when the client cannot take it). */
void client_send(struct client *c, struct frame *f);
#endif
