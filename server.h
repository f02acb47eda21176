/* server.h - the server layer: the listener, the connection registry, the
 * epoll set of client sockets, reading (bytes go to the session layer),
 * the flush list (writes go through the client layer), per-client timers,
 * reaping the dead at the end of a turn, and the drain on shutdown. The
 * program's loop (kbridge.c) polls the fds this layer names and calls it
 * in a fixed order each turn. */
#ifndef KB_SERVER_H
#define KB_SERVER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "endpoints.h"

/* Opens the listeners and the epoll set, and initialises the client and
 * session layers. listen_fd: SERVER_LISTEN_OPEN binds --listen here; an
 * fd is a listener inherited from the master of --workers; with
 * SERVER_LISTEN_NONE (the master) there is no main listener. admin: open
 * --admin-listen when configured. 0, or -1 with one line in err (exit 1). */
#define SERVER_LISTEN_OPEN (-1)
#define SERVER_LISTEN_NONE (-2)
int  server_open(const struct config *cfg, int listen_fd, int admin, char *err, size_t errlen);

/* A listening TCP socket on addr (name: how errors call it), non-blocking
 * and close-on-exec; reuseport: one of several sharing the port
 * (SO_REUSEPORT, the workers). The fd, or -1 with one line in err. */
int  server_bind(const struct sockaddr_storage *addr, socklen_t len, const char *name, int reuseport,
		 char *err, size_t errlen);

/* The fds to poll: the listener and the --admin-listen one (-1 while
 * accepting is paused, after shutdown began, or without an admin
 * listener), and the epoll set (readable when a client is ready). */
int  server_listen_fd(void);
int  server_admin_fd(void);
int  server_epoll_fd(void);

/* One turn's work, in the loop's order: */
void server_accept(void);       /* new connections (bounded per turn) */
void server_accept_admin(void); /* the same on --admin-listen: plain HTTP, admin endpoints */
void server_ready(void);        /* ready clients: read and handle input */
void server_tick(void);         /* timers: header timeouts, pings, close deadlines */
void server_flush(void);        /* write queued output that is due */
void server_reap(void);         /* free clients that died this turn */

/* Turn-clock ms of the server's next timed work (a corked flush, resuming
 * accept, the drain deadline), INT64_MAX when none. */
int64_t server_next_wake(void);

/* SIGTERM: refuse new connections, close every WebSocket with 1001 and
 * give them drain_s seconds. server_done() is then true once every client
 * is gone or the time is up. */
void server_shutdown(double drain_s);
int  server_done(void);
uint32_t server_connections(void);

/* /stats' client list (an endpoints source): open WebSocket clients. */
int  server_client_next(size_t *i, struct endpoints_client *out);
#endif
