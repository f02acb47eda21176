/* server.c - the server layer (server.h). Owns every connection from
 * accept to free: a dense registry for timers and /stats, an epoll set
 * (level-triggered, EPOLLOUT only while output waits) so a turn costs
 * O(ready clients), and the flush list of clients with output this turn.
 * What the bytes mean is the session layer's business; what may be queued
 * is the client layer's. A client is never freed in the middle of a turn:
 * it is marked dead and reaped at the end, after the flush. */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "clock.h"
#include "frame.h"
#include "iplimit.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "proto_sse.h"
#include "session.h"
#include "session_post.h"
#include "tls.h"
#include "ws.h"

#define ACCEPT_BATCH     256     /* accepts per turn, so clients are not starved */
#define READ_CHUNK       65536
#define HTTP_CONN_CAP    1024    /* plain HTTP / not-yet-upgraded connections */
#define ADMIN_CONN_CAP   64      /* connections to --admin-listen, besides those */
#define EPOLL_BATCH      1024    /* ready clients handled per turn */
#define TLS_READS        8       /* reads per ready TLS client per turn while OpenSSL holds bytes */

static struct {
	const struct config *cfg;
	int listen_fd;
	int admin_fd;                 /* --admin-listen, -1 when none */
	uint32_t nadmin;              /* connections accepted there, until freed */
	int epfd;                     /* every client socket, level-triggered */
	struct client **clients;      /* all connections, dense: for timers and stats */
	uint32_t nclients, cap;
	int64_t accept_paused_until;  /* out of fds: retry accept later */
	struct client *flush_head;    /* clients with output queued this turn */
	int64_t flush_due;            /* when the flush list must be written */
	int stopping;                 /* shutdown began */
	int64_t stop_deadline;
	struct frame *ping_frame;     /* one empty ping shared by every client, never freed */
} S;

/* Shared by every read: a client keeps only what a read leaves unconsumed. */
static unsigned char read_buf[READ_CHUNK];

/* ---- output ---------------------------------------------------------------- */

/* The client layer's callback: c has output, to be written by `due`. Data
 * may wait a few ms for more records to share one writev; replies go at
 * the end of this turn. */
static void want_flush(struct client *c, int64_t due)
{
	if (!S.flush_head || due < S.flush_due) S.flush_due = due;
	if (c->in_flush) return;
	c->in_flush = 1;
	c->flush_next = S.flush_head;
	S.flush_head = c;
}

/* What epoll watches for is derived from the output: input (unless the
 * peer shut its side after a publish, rd_eof), and output while bytes
 * wait for the kernel (queued frames, staged TLS bytes) or while OpenSSL
 * waits to write (a handshake step). Told only on a change. */
static void set_events(struct client *c, unsigned want_out)
{
	struct epoll_event ev = { .events = (c->rd_eof ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(S.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->ev_out = want_out;
}

static void sync_events(struct client *c)
{
	unsigned want_out = c->q.count > 0 || c->tls_len > 0 || c->tls_want_out;
	if (want_out == c->ev_out || c->state == CS_DEAD) return;
	set_events(c, want_out);
}

/* Writes queued output of every client on the flush list. */
static void flush_all(void)
{
	struct client *c = S.flush_head;
	S.flush_head = NULL;
	while (c) {
		struct client *next = c->flush_next;
		c->in_flush = 0;
		c->flush_next = NULL;
		if (c->state != CS_DEAD && client_write(c) == 0) sync_events(c);
		c = next;
	}
}

void server_flush(void)
{
	if (S.flush_head && clock_now() >= S.flush_due) flush_all();
}

/* ---- registry -------------------------------------------------------------- */

/* A new connection: a client in CS_HTTP (the client layer counts it
 * toward the plain-HTTP cap), in the epoll set for input, in the
 * registry. NULL when any step fails; the caller then closes fd. */
static struct client *add_client(int fd, const struct sockaddr *sa, socklen_t salen, int admin)
{
	if (S.nclients == S.cap) {
		uint32_t ncap = S.cap ? S.cap * 2 : 64;
		struct client **nc = realloc(S.clients, ncap * sizeof(*nc));
		if (!nc) return NULL;
		S.clients = nc;
		S.cap = ncap;
	}
	struct client *c = client_new(fd, sa, salen);
	if (!c) return NULL;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		c->fd = -1;               /* the caller closes fd */
		client_free(c);
		return NULL;
	}
	c->slot = S.nclients;
	S.clients[S.nclients++] = c;
	c->admin = (unsigned)admin;
	S.nadmin += c->admin;
	return c;
}

/* The layers above forget c, then it is freed; the last client moves into
 * its slot so the registry stays dense. */
static void remove_client(struct client *c)
{
	uint32_t slot = c->slot;
	session_post_gone(c);
	proto_client_gone(c);
	if (c->ip_counted) iplimit_close(&c->peer.sa);
	/* Refused, cut off, timed out or abandoned: no handshake completed. */
	if (c->ssl && !c->tls_done) metrics_add(M_TLS_FAILED, 1);
	S.nadmin -= c->admin;
	client_free(c);
	S.nclients--;
	if (slot != S.nclients) {
		S.clients[slot] = S.clients[S.nclients];
		S.clients[slot]->slot = slot;
	}
}

void server_reap(void)
{
	if (!client_take_dead()) return;
	/* A corked flush list may still hold a client about to be freed:
	 * write it out first (the list is emptied either way). */
	for (uint32_t i = 0; i < S.nclients; i++)
		if (S.clients[i]->state == CS_DEAD && S.clients[i]->in_flush) {
			flush_all();
			break;
		}
	for (uint32_t i = 0; i < S.nclients;) {
		struct client *c = S.clients[i];
		if (c->state == CS_DEAD) {
			remove_client(c);
			continue;   /* slot i now holds the former last client */
		}
		i++;
	}
}

uint32_t server_connections(void)
{
	return S.nclients;
}

int server_client_next(size_t *i, struct endpoints_client *out)
{
	while (*i < S.nclients) {
		const struct client *c = S.clients[(*i)++];
		if (!c->ws) continue;
		*out = (struct endpoints_client){ c->id, client_peer(c), auth_identity(c), c->nsubs, c->q.count, c->q.bytes, -1,
						  c->zbits != 0, c->sse };
		return 1;
	}
	return 0;
}

/* ---- accepting and reading ------------------------------------------------------ */

/* At the cap of heads in progress, a new TLS connection takes the place of
 * the oldest one still in its handshake: a flood of half-open handshakes
 * then cannot lock a real client out for a whole --header-timeout (the
 * flood must outpace HTTP_CONN_CAP connections to push one out). 1 when
 * one was closed. Scans only at the cap. */
static int evict_handshake(void)
{
	struct client *old = NULL;
	for (uint32_t i = 0; i < S.nclients; i++) {
		struct client *c = S.clients[i];
		if (c->state == CS_HTTP && c->ssl && !c->tls_done && (!old || c->deadline < old->deadline)) old = c;
	}
	if (!old) return 0;
	client_kill(old, "tls handshake evicted");
	return 1;
}

/* Connections reading a request head: those in CS_HTTP less those
 * waiting for Kafka's answer to a publish (a killed one is out of the
 * first count before the end of the turn, and of the second only at its
 * reaping). */
static uint32_t heads_in_progress(void)
{
	uint32_t http = client_http_count(), waiting = session_post_waiting();
	return http > waiting ? http - waiting : 0;
}

/* New connections on lfd; admin: it is --admin-listen, whose connections
 * have their own cap and never take one of the main port's places. */
static void accept_from(int lfd, int admin)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment rather than spin. */
				log_msg(LOG_WARN, "accept paused", "error", strerror(errno), NULL);
				S.accept_paused_until = clock_now() + 100;
			}
			return;
		}
		/* Admin connections are counted by the client layer too (they
		 * read heads): the main port's cap is over the others. */
		int tls = !admin && tls_enabled();   /* the admin listener stays plain */
		if (admin ? S.nadmin >= ADMIN_CONN_CAP :
			    heads_in_progress() >= HTTP_CONN_CAP + S.nadmin && !(tls && evict_handshake())) {
			/* Too many heads in progress: one cheap answer, no state
			 * (none on TLS: a plain answer would be garbage there). */
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
			ssize_t w = tls ? 0 : write(fd, busy, sizeof(busy) - 1);
			(void)w;
			close(fd);
			metrics_add(M_REJECTED_FULL, 1);
			if (tls) metrics_add(M_TLS_FAILED, 1);   /* turned away before any handshake */
			continue;
		}
		/* Small messages must not wait for Nagle: corking is ours. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct client *c = add_client(fd, (struct sockaddr *)&ss, sl, admin);
		if (!c) {
			close(fd);
			if (tls) metrics_add(M_TLS_FAILED, 1);
			return;
		}
		/* The handshake starts when the ClientHello arrives (client_read),
		 * under the header deadline client_new set. */
		if (tls && !(c->ssl = tls_new(fd))) {
			metrics_add(M_TLS_FAILED, 1);
			client_kill(c, "out of memory");
		}
	}
}

void server_accept(void)
{
	accept_from(S.listen_fd, 0);
}

void server_accept_admin(void)
{
	accept_from(S.admin_fd, 1);
}

/* Keeps unconsumed bytes in the client's own buffer, sized to fit: idle
 * clients hold no input buffer, and one that grew for a big frame shrinks. */
static int keep_rest(struct client *c, const unsigned char *p, size_t n)
{
	if (n == 0) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rcap = 0;
		return 0;
	}
	size_t want = n < 1024 ? 1024 : n;
	if (!c->rbuf || n > c->rcap || c->rcap > 4 * want) {
		unsigned char *nb = malloc(want);
		if (!nb) return -1;
		memcpy(nb, p, n);        /* p may point into the old buffer */
		free(c->rbuf);
		c->rbuf = nb;
		c->rcap = (uint32_t)want;
	} else {
		memmove(c->rbuf, p, n);
	}
	c->rlen = (uint32_t)n;
	return 0;
}

/* Reads up to n bytes from c's socket, decrypted when c speaks TLS: the
 * count, 0 at EOF (a close_notify too), -1 with errno set on an error, or
 * -1 with errno EAGAIN when nothing is there now. */
static ssize_t sock_read(struct client *c, unsigned char *buf, size_t n)
{
	if (!c->ssl) return read(c->fd, buf, n);
	/* Records come one at a time: read until the buffer is full or the
	 * socket is empty, so nothing decrypted waits unseen inside OpenSSL
	 * while epoll (level-triggered on the socket) stays quiet. */
	size_t got = 0;
	while (got < n) {
		ssize_t r = tls_read(c->ssl, buf + got, n - got);
		if (r > 0) { got += (size_t)r; continue; }
		if (got) break;               /* EOF or an error show again next time */
		c->tls_want_out = r == TLS_WANT_WRITE;
		if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) { errno = EAGAIN; return -1; }
		if (r == 0) return 0;
		errno = EPROTO;
		return -1;
	}
	c->tls_want_out = 0;
	return (ssize_t)got;
}

/* Advances c's TLS handshake: 1 once it is done (application data may
 * follow), 0 while it waits for the socket or after it failed (c killed:
 * garbage, plain HTTP to the TLS port, a refused client certificate; one
 * debug line). */
static int handshake(struct client *c)
{
	int r = tls_handshake(c->ssl);
	if (r == TLS_FAIL) {
		if (log_enabled(LOG_DEBUG))
			log_msg(LOG_DEBUG, "tls handshake failed", "client", log_num(c->id), "peer", client_peer(c),
				"error", tls_last_error(), NULL);
		client_kill(c, "tls handshake failed");
		return 0;
	}
	c->tls_want_out = r == TLS_WANT_WRITE;
	sync_events(c);
	if (r != 0) return 0;
	c->tls_done = 1;
	metrics_add(tls_resumed(c->ssl) ? M_TLS_RESUMED : M_TLS_FULL, 1);
	c->ktls = (unsigned)tls_ktls_send(c->ssl);
	/* Mutual TLS: the verified certificate's CN names the client. */
	char cn[256];
	if (tls_peer_cn(c->ssl, cn, sizeof(cn))) auth_set_certificate(c, cn);
	return 1;
}

/* Reads what c sent and hands it to the session layer. Returns 1 when it
 * read bytes and OpenSSL still holds some (read again), else 0. */
static int client_read(struct client *c)
{
	ssize_t n;
	unsigned char *base;
	size_t have;

	if (c->ssl && !c->tls_done && !handshake(c)) return 0;
	if (c->rlen == 0) {
		/* Nothing left over: read into the shared buffer, no allocation. */
		n = sock_read(c, read_buf, sizeof(read_buf));
		base = read_buf;
		have = 0;
	} else {
		/* Grow so a whole frame up to --max-message (or a full head) fits. */
		size_t need = c->rlen + READ_CHUNK;
		if (c->rcap < need) {
			unsigned char *nb = realloc(c->rbuf, need);
			if (!nb) { client_kill(c, "out of memory"); return 0; }
			c->rbuf = nb;
			c->rcap = (uint32_t)need;
		}
		n = sock_read(c, c->rbuf + c->rlen, c->rcap - c->rlen);
		base = c->rbuf;
		have = c->rlen;
	}
	if (c->ssl) sync_events(c);      /* a read may leave OpenSSL wanting to write */
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
		if (c->ssl && errno == EPROTO) {
			if (log_enabled(LOG_DEBUG))
				log_msg(LOG_DEBUG, "tls read failed", "client", log_num(c->id), "error", tls_last_error(), NULL);
			client_kill(c, "tls read failed");   /* static text: why outlives the call */
			return 0;
		}
		client_kill(c, strerror(errno));
		return 0;
	}
	if (n == 0) {
		if (c->state == CS_HTTP && c->publishing && !c->rd_eof) {
			/* A whole publish came and the peer shut its side (over TLS:
			 * a FIN, or close_notify, which ends only its direction): it
			 * may still read the answer. Nothing more to read (no EPOLLIN). */
			c->rd_eof = 1;
			set_events(c, c->ev_out);
			return 0;
		}
		client_kill(c, c->state == CS_LINGER ? "closed" : "peer closed the connection");
		return 0;
	}
	size_t len = have + (size_t)n;
	if (c->state == CS_LINGER) {   /* discard: we are only waiting for the FIN */
		keep_rest(c, NULL, 0);
		return c->ssl && tls_pending(c->ssl);
	}
	size_t used = session_input(c, base, len);
	if (c->state == CS_DEAD) return 0;
	if (keep_rest(c, base + used, len - used) < 0) {
		client_kill(c, "out of memory");
		return 0;
	}
	return c->ssl && tls_pending(c->ssl);
}

void server_ready(void)
{
	static struct epoll_event evs[EPOLL_BATCH];
	int ne = epoll_wait(S.epfd, evs, EPOLL_BATCH, 0);
	/* Events refer to clients that exist now: nobody is freed before the
	 * end of the turn. */
	for (int i = 0; i < ne; i++) {
		struct client *c = evs[i].data.ptr;
		if (c->state == CS_DEAD) continue;
		/* TLS: a handshake step or a read may wait for writability. */
		if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || ((evs[i].events & EPOLLOUT) && c->tls_want_out))
			for (int k = 0; k < TLS_READS && client_read(c); k++) {}
		if ((evs[i].events & EPOLLOUT) && c->state != CS_DEAD) want_flush(c, clock_now());
	}
}

/* ---- timers ------------------------------------------------------------------- */

/* Every TICK (not every turn): deadlines are seconds, so a scan of all
 * connections four times a second is cheap enough and keeps no timer
 * structure per client. */
void server_tick(void)
{
	int64_t now = clock_now();
	int64_t ping_ms = (int64_t)(S.cfg->ping_interval * 1000);
	for (uint32_t i = 0; i < S.nclients; i++) {
		struct client *c = S.clients[i];
		switch (c->state) {
		case CS_HTTP:
			/* The handshake shares the request head's deadline: a slow or
			 * silent ClientHello is cut off like a slow head. */
			if (now < c->deadline) break;
			if (c->ssl && !c->tls_done) client_kill(c, "tls handshake timeout");
			else session_head_timeout(c);
			break;
		case CS_WS:
			if (c->auth_deadline && now >= c->auth_deadline) {
				auth_deadline(c);
				if (c->state != CS_WS) break;
			}
			if (c->sse) {          /* nothing comes from an SSE reader: a heartbeat goes to it */
				if (now >= c->next_ping) {
					proto_sse_heartbeat(c);
					c->next_ping = now + SSE_HEARTBEAT_MS;
				}
				proto_sse_tick(c);
				break;
			}
			if (ping_ms <= 0) break;
			/* No frame at all for twice the interval: drop, no close frame. */
			if (now - c->last_rx >= 2 * ping_ms) {
				log_msg(LOG_INFO, "client dropped: silent", "client", log_num(c->id), "peer", client_peer(c), NULL);
				client_kill(c, "silent");
			} else if (now >= c->next_ping) {
				/* The shared static ping: a reference, no allocation. */
				client_send(c, frame_ref(S.ping_frame));
				c->next_ping = now + ping_ms;
			}
			break;
		case CS_CLOSING:   /* the peer's close frame did not come */
		case CS_LINGER:    /* the peer's FIN did not come */
			if (now >= c->deadline) client_kill(c, "close timeout");
			break;
		}
	}
	iplimit_sweep(now);
}

int64_t server_next_wake(void)
{
	int64_t wake = INT64_MAX;
	if (S.stopping && S.stop_deadline < wake) wake = S.stop_deadline;
	if (S.accept_paused_until && S.accept_paused_until < wake) wake = S.accept_paused_until;
	if (S.flush_head && S.flush_due < wake) wake = S.flush_due;
	return wake;
}

/* ---- start and shutdown ------------------------------------------------------- */

int server_bind(const struct sockaddr_storage *addr, socklen_t len, const char *name, int reuseport,
		char *err, size_t errlen)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) { snprintf(err, errlen, "socket: %s", strerror(errno)); return -1; }
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)addr, len) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int server_open(const struct config *cfg, int listen_fd, int admin, char *err, size_t errlen)
{
	S.cfg = cfg;
	client_init(cfg, want_flush);
	session_init(cfg);
	if (!(S.ping_frame = frame_ws(WS_OP_PING, NULL, 0, FRAME_CONTROL))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	S.ping_frame->refs = UINT32_MAX;   /* static: references cost nothing */
	S.admin_fd = -1;
	S.listen_fd = listen_fd == SERVER_LISTEN_NONE ? -1 : listen_fd;
	if (listen_fd == SERVER_LISTEN_OPEN &&
	    (S.listen_fd = server_bind(&cfg->listen, cfg->listen_len, cfg->listen_str, 0, err, errlen)) < 0)
		return -1;
	if (admin && cfg->admin_listen_len &&
	    (S.admin_fd = server_bind(&cfg->admin_listen, cfg->admin_listen_len, cfg->admin_listen_str, 0, err, errlen)) < 0)
		return -1;
	if ((S.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Accepting is paused for a moment when descriptors ran out. */
static int accepting(void)
{
	if (S.accept_paused_until && clock_now() >= S.accept_paused_until) S.accept_paused_until = 0;
	return !S.accept_paused_until;
}

int server_listen_fd(void)
{
	return accepting() ? S.listen_fd : -1;
}

int server_admin_fd(void)
{
	return accepting() ? S.admin_fd : -1;
}

int server_epoll_fd(void)
{
	return S.epfd;
}

void server_shutdown(double drain_s)
{
	S.stopping = 1;
	S.stop_deadline = clock_now() + (int64_t)(drain_s * 1000);
	log_msg(LOG_INFO, "shutting down", "clients", log_num(client_ws_count()),
		"drain_timeout_s", log_num((int64_t)drain_s), NULL);
	/* Refuse new connections at once: the port is closed, not just ignored. */
	if (S.listen_fd >= 0) close(S.listen_fd);
	S.listen_fd = -1;
	if (S.admin_fd >= 0) close(S.admin_fd);
	S.admin_fd = -1;
	session_drain(S.stop_deadline);
	/* WebSockets get a close 1001 and the drain time to answer it (those
	 * waiting for publish answers after the last one); plain requests
	 * still being answered finish; idle ones go now. */
	for (uint32_t i = 0; i < S.nclients; i++) {
		struct client *c = S.clients[i];
		if (c->publishing) continue;
		if (c->state == CS_WS) client_ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down", S.stop_deadline - clock_now());
		else if (c->state == CS_HTTP && c->q.count == 0) client_kill(c, "shutdown");
	}
}

int server_done(void)
{
	return S.stopping && (S.nclients == 0 || clock_now() >= S.stop_deadline);
}
