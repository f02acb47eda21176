/* client.h - one connection: its state machine, buffers and timers, and its
 * output queue under the slow-client policy (docs/protocol.md#slow_consumer).
 * This layer queues frames, builds replies and notices, changes a
 * connection's state and writes its queue to the socket; it does not read
 * sockets, parse protocols or route records (the session, protocol and
 * routing layers above do). It tells the server layer that a client has
 * output through the callback given to client_init.
 * Kept small: an idle WebSocket client owns no buffers at all. */
#ifndef KB_CLIENT_H
#define KB_CLIENT_H
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "frame.h"
#include "json.h"

enum client_state {
	CS_HTTP,      /* reading a request head (plain HTTP or upgrade) */
	CS_WS,        /* WebSocket open, or an SSE stream (c->sse) */
	CS_CLOSING,   /* we sent a close frame and wait for the peer's */
	CS_LINGER,    /* flush output, shut down our side, discard input until EOF */
	CS_DEAD,      /* to be freed at the end of the turn */
};

#define CLIENT_LINGER_MS     2000  /* after our last bytes: wait for the peer's FIN */
#define CLIENT_CLOSE_WAIT_MS 5000  /* after our close frame: wait for the peer's */
#define CLIENT_CORK_MS       3     /* data of a streaming client waits this long for company in one writev */
#define CLIENT_STREAM_MS     50    /* a client that had data this recently is streaming */

/* State that modules above keep per client; declared by them, reached only
 * through their own functions. */
struct sub;        /* hub.c: one subscription */
struct conflation; /* conflate.c */
struct resume;     /* history.c: per-partition resume gates */
struct state_client; /* state.c: a client of the state dialect */
struct auth_client;  /* auth.c: identity and permissions */
struct ssl_st;       /* OpenSSL's SSL, made and driven through tls.h */

struct client {
	int fd;
	uint32_t id;
	uint32_t slot;               /* index in the server's registry */
	uint8_t state;               /* enum client_state */
	uint8_t msg_op;              /* opcode of the fragmented message in progress, 0 if none */
	uint16_t publishing;         /* publishes Kafka has not answered yet (proto_publish.c, session_post.c) */
	unsigned in_flush : 1,       /* on the server's flush list this turn */
		 close_sent : 1,     /* a close frame is queued or sent */
		 wr_shut : 1,        /* shutdown(SHUT_WR) done (linger) */
		 got_bytes : 1,      /* any request byte arrived (for 408 vs silent close) */
		 msgpack : 1,        /* format=msgpack connection */
		 ws : 1,             /* upgraded: counts toward --max-clients */
		 ev_out : 1,         /* EPOLLOUT is registered */
		 snapshots : 1,      /* snapshot=1: a snapshot after every subscribe */
		 dialect : 1,        /* type=tui|web: the state dialect (state.h) */
		 admin : 1,          /* accepted on --admin-listen: plain HTTP, no upgrades */
		 ip_counted : 1,     /* counted toward --max-clients-per-ip (iplimit.h) */
		 tls_done : 1,       /* TLS: the handshake finished */
		 tls_want_out : 1,   /* TLS: a read or the handshake waits for writability */
		 ktls : 1,           /* TLS: the kernel encrypts (writev goes on unchanged) */
		 zbits : 4,          /* permessage-deflate: the window we compress with; 0: not negotiated */
		 msg_z : 1,          /* the message being assembled is compressed (RFC 7692 §6) */
		 sse : 1,            /* a Server-Sent Events stream (GET /sse): CS_WS, no frames either way */
		 sse_moved : 1,      /* SSE with interval=: events went without id since its last id line */
		 rd_eof : 1;         /* the peer shut its side after a publish it waits for (session_post.c) */
	uint32_t utf8;               /* UTF-8 validator state of the text message in progress */

	unsigned char *rbuf;         /* unconsumed input; NULL when empty */
	uint32_t rlen, rcap;
	unsigned char *msg;          /* fragmented message being assembled; NULL if none */
	uint32_t msg_len, msg_cap;

	struct outq q;
	struct ssl_st *ssl;          /* tls.h: NULL on a plain connection */
	unsigned char *tls_out;      /* TLS: gathered bytes not yet taken by SSL_write; NULL when none */
	uint16_t tls_off, tls_len;   /* of tls_out: written so far, staged in all */
	uint32_t dropped;            /* records dropped since the last SLOW_CONSUMER notice */
	uint32_t last_data;          /* turn-clock ms (low 32 bits) of the last data frame queued */

	int64_t deadline;            /* ms: header timeout, close/linger timeout */
	int64_t last_rx;             /* ms: last frame received */
	int64_t next_ping;           /* ms */
	int64_t rl_last;             /* ms: last rate-limit refill */
	int64_t rl_since;            /* ms: start of an unbroken run of RATE_LIMITED, 0 if none */
	float rl_tokens;
	uint32_t rl_latest;          /* ms after rl_since of the run's latest RATE_LIMITED */

	const char *why;             /* first reason the connection is ending (static text) */
	uint64_t stamp;              /* hub.c: last record delivered, against duplicates */
	uint32_t interval_ms;        /* conflation asked on the upgrade, 0 = none; the state dialect's period */
	struct conflation *cf;       /* conflate.c state, NULL until needed */
	struct resume *rs;           /* history.c resume state, NULL unless resumed */
	struct state_client *sc;     /* state.c, NULL unless the state dialect */
	struct auth_client *au;      /* auth.c, NULL unless authenticated */
	int64_t auth_deadline;       /* ms: token expiry or auth timeout (auth.c), 0 = none */
	struct sub *subs;            /* this client's subscriptions (hub.c) */
	uint32_t nsubs;
	struct client *flush_next;   /* the server's flush list */
	union { struct sockaddr sa; struct sockaddr_in v4; struct sockaddr_in6 v6; } peer;
};

/* Called when c has output to write, no later than `due` (turn-clock ms):
 * the server puts it on its flush list. */
typedef void client_flush_fn(struct client *c, int64_t due);

/* The slow-client policy and the header timeout come from cfg; on_output
 * is the server's flush list. Call once before any other function. */
void client_init(const struct config *cfg, client_flush_fn *on_output);

/* ---- lifecycle ---------------------------------------------------------- */

/* A connection in CS_HTTP with its header deadline set. NULL: out of memory.
 * The caller registers it (slot) and later frees it with client_free after
 * the layers above have forgotten it. */
struct client *client_new(int fd, const struct sockaddr *sa, socklen_t salen);
/* Closes the socket (after one best-effort close_notify on TLS) and frees the client's own buffers and queue. */
void client_free(struct client *c);
/* The handshake is done: c is a WebSocket or an SSE stream and counts
 * toward --max-clients (set c->zbits first when it negotiated
 * permessage-deflate, c->sse for an SSE stream). */
void client_upgrade(struct client *c);
/* An SSE stream refused after client_upgrade (its subscription failed):
 * c no longer counts as a client; answer it, then let it linger. */
void client_unupgrade(struct client *c);
/* Connections now reading a request head, open streaming clients
 * (WebSocket and SSE), those that negotiated permessage-deflate, and the
 * SSE streams among them. */
uint32_t client_http_count(void);
uint32_t client_ws_count(void);
uint32_t client_deflate_count(void);
uint32_t client_sse_count(void);
/* Clients killed since the last call: the server reaps only when non-zero. */
uint32_t client_take_dead(void);
/* "ip:port" of the peer, in a static buffer valid until the next call. */
const char *client_peer(const struct client *c);

/* ---- state changes -------------------------------------------------------- */

/* Marks c to be freed at the end of the turn; why (static text) is kept
 * when it is the first reason given. */
void client_kill(struct client *c, const char *why);
/* Stop talking: send what is queued, then FIN, then read until the peer's
 * FIN (or CLIENT_LINGER_MS), so our last bytes are not lost to an RST. */
void client_linger(struct client *c);
/* Starts a clean WebSocket close (RFC 6455 §7.1.2) and waits up to wait_ms
 * for the peer's close frame. Only from CS_WS. An SSE stream has no close
 * frame: its response ends (what is queued goes first, then FIN). */
void client_ws_close(struct client *c, unsigned code, const char *reason, int64_t wait_ms);
/* Fails the WebSocket connection (RFC 6455 §7.1.7): drops queued output,
 * sends a close frame unless one went, then lingers. */
void client_ws_fail(struct client *c, unsigned code, const char *reason);
/* Queues a close frame with code (0: none) and reason, past every limit. */
void client_close_frame(struct client *c, unsigned code, const char *reason);
/* Drops everything queued except a partly written frame. */
void client_drop_queued(struct client *c);

/* ---- output ---------------------------------------------------------------- */

/* Queues a frame to a WebSocket client under the slow-client policy; the
 * caller's reference moves in (it is dropped when the client cannot take
 * it, and f may be NULL). Data frames of a streaming client (data within
 * the last CLIENT_STREAM_MS) wait CLIENT_CORK_MS for company; a client's
 * first frame after a pause goes at the end of the turn (waiting would
 * only delay it). */
void client_send(struct client *c, struct frame *f);
/* Whether c's queue is under half of --client-queue and --client-buffer
 * (bytes counted as the limits count them, behind the head):
 * a replay (resume) feeds c only then, so that it goes at the pace c
 * reads instead of past its limits. */
int  client_has_room(const struct client *c);
/* Whether a message of len bytes would pass c's queue limits now (the
 * state dialect sends a snapshot later instead of an update then). */
int  client_would_wait(const struct client *c, size_t len);
/* Queues past the slow-client limits (a snapshot: dropping one would break
 * the stream's consistency; what follows it stays under the policy). Only
 * to an open WebSocket. */
void client_send_always(struct client *c, struct frame *f);
/* Queues regardless of state and limits (HTTP responses, the 101). */
void client_queue(struct client *c, struct frame *f);
/* Writes what c has queued (a pending SLOW_CONSUMER notice first). Returns
 * 0, or -1 after killing c on a socket error. After a linger's last byte
 * it shuts down the write side. */
int  client_write(struct client *c);

/* A server message for c from its JSON text, in c's format, compressed
 * when c negotiated permessage-deflate and it is worth it; an SSE event
 * (without id) for an SSE stream. */
struct frame *client_message(const struct client *c, const char *json, size_t len, enum frame_kind kind);

/* Replies: begin writes {"type":TYPE[,"id":ID]; the caller adds fields;
 * send closes the object, queues it to c and frees the buffer. */
void reply_begin(struct jbuf *b, const char *type, const char *id, size_t id_len);
void reply_send(struct client *c, struct jbuf *b);
void reply_error(struct client *c, const char *id, size_t id_len, const char *code, const char *msg);
/* The same past the slow-client policy: answers a client is owed (a
 * publish's ack or PUBLISH_FAILED), which no policy may drop; the caller
 * bounds how many can be owed. */
void reply_send_always(struct client *c, struct jbuf *b);
void reply_error_always(struct client *c, const char *id, size_t id_len, const char *code, const char *msg);

/* While a capture is set, replies to its client are not sent: the first
 * error is kept (its JSON, cut to fit) and the others are dropped. An SSE
 * request's subscription is made before its response goes out, so a
 * refusal can still be an HTTP status. NULL ends the capture. */
struct client_capture {
	const struct client *c;
	int got;
	size_t len;
	char json[512];
};
void client_capture(struct client_capture *cap);
#endif
