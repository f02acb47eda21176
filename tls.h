/* tls.h - TLS on the main listener (issue 14, docs/operations.md): the
 * server's SSL_CTX (TLS 1.2/1.3, ALPN http/1.1, no renegotiation, session
 * tickets, optional client certificates), its reload on SIGHUP and on file
 * change, the kernel-TLS probe, and non-blocking wrappers over one
 * connection's SSL object. A leaf: it knows sockets and OpenSSL, not
 * clients; the client and server layers keep the SSL pointer. */
#ifndef KB_TLS_H
#define KB_TLS_H
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct ssl_st;

#define TLS_POLL_MS  2000    /* how often the pair's files are checked for change */
#define TLS_STAGE    16384   /* one TLS record's plaintext: a flush's staging buffer */

/* Results of the non-blocking calls below (byte counts are >= 0). */
#define TLS_WANT_READ  (-2)  /* wait for EPOLLIN, then call again */
#define TLS_WANT_WRITE (-3)  /* wait for EPOLLOUT, then call again */
#define TLS_FAIL       (-1)  /* the connection is over (reason: tls_last_error) */

/* Loads the pair (and the client CA) when cfg names one, and probes once
 * for kernel TLS. 0, or -1 with one line in err (exit 2). Without
 * --tls-cert it does nothing and tls_enabled() is 0. */
int  tls_init(const struct config *cfg, char *err, size_t errlen);

/* --workers: the session ticket keys every context uses (its own and
 * those of reloads), the same in every worker, so a client resumes its
 * session on whichever worker takes its next connection. Before tls_init;
 * without it each context makes its own. */
#define TLS_TICKET_KEYS_LEN 80
void tls_ticket_keys(const unsigned char keys[TLS_TICKET_KEYS_LEN]);
int  tls_enabled(void);
/* SIGHUP: load the pair again; a pair that fails keeps the old one with
 * one error line. New handshakes use the new pair, existing connections
 * keep theirs. */
void tls_reload(void);
/* Every loop tick: reload when a file's mtime, size or inode changed
 * (checked every TLS_POLL_MS). */
void tls_tick(void);

/* A server-side SSL object on fd (accept state) from the current pair, or
 * NULL when out of memory. The caller owns it; tls_free drops it. */
struct ssl_st *tls_new(int fd);
/* Sends close_notify once, after a finished handshake (best effort:
 * whatever the socket does not take now is lost). */
void tls_shutdown(struct ssl_st *s);
/* Sends close_notify once (best effort, never waits), then frees s. */
void tls_free(struct ssl_st *s);
/* Advances the handshake: 0 when it is done, TLS_WANT_* or TLS_FAIL. */
int  tls_handshake(struct ssl_st *s);
/* Up to n decrypted bytes into buf: the count (> 0), 0 at the peer's
 * close_notify or EOF, TLS_WANT_* or TLS_FAIL. */
ssize_t tls_read(struct ssl_st *s, void *buf, size_t n);
/* Writes n bytes (the same bytes again after a TLS_WANT_*): the count
 * written (> 0), TLS_WANT_* or TLS_FAIL. */
ssize_t tls_write(struct ssl_st *s, const void *buf, size_t n);
/* Decrypted or undecrypted bytes wait inside s (read again before
 * waiting for the socket). */
int  tls_pending(struct ssl_st *s);
/* Whether s's completed handshake resumed a session. */
int  tls_resumed(struct ssl_st *s);
/* After the handshake: whether the kernel encrypts what is written to the
 * socket (kernel TLS send), so writev of shared frames may go on. */
int  tls_ktls_send(struct ssl_st *s);
/* The verified client certificate's subject CN into buf (NUL-terminated),
 * or NULL when there is none. */
const char *tls_peer_cn(struct ssl_st *s, char *buf, size_t len);
/* The reason of the last TLS_FAIL, in words (a static or thread buffer). */
const char *tls_last_error(void);
#endif
