/* tls.c - the server side of TLS with OpenSSL 3 (tls.h, issue 14). One
 * SSL_CTX is current; a reload builds a new one and swaps it in, and
 * connections made with the old one keep it (SSL_CTX is reference-counted:
 * SSL_new takes a reference, SSL_free drops it). Every call here is
 * non-blocking: OpenSSL's want-read/want-write come back as TLS_WANT_* for
 * the server layer to map onto its epoll events. No client state. */
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static struct {
	const struct config *cfg;
	SSL_CTX *ctx;                 /* new handshakes; NULL: TLS off */
	struct file_watch files;      /* --tls-cert, --tls-key, --tls-client-ca */
	int ktls;                     /* the kernel has the TLS ULP */
	char err[256];                /* tls_last_error */
	unsigned char ticket_keys[TLS_TICKET_KEYS_LEN];
	int shared_keys;              /* --workers: ticket_keys, not the context's own */
} T;

void tls_ticket_keys(const unsigned char keys[TLS_TICKET_KEYS_LEN])
{
	memcpy(T.ticket_keys, keys, TLS_TICKET_KEYS_LEN);
	T.shared_keys = 1;
}


/* OpenSSL's first queued error in words, the queue emptied. */
static void take_error(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();
	if (e) ERR_error_string_n(e, buf, len);
	else snprintf(buf, len, "%s", fallback);
	ERR_clear_error();
}

/* ALPN (RFC 7301): we speak http/1.1 only. A client that offers ALPN
 * without it gets no ALPN answer rather than a fatal
 * no_application_protocol alert: it may still speak HTTP/1.1 (curl, tools
 * offering h2 first), and one that cannot fails at the request instead. */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)s; (void)arg;
	static const unsigned char proto[] = "\x08http/1.1";
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, proto, sizeof(proto) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* A new SSL_CTX from the configured files, or NULL with the reason in err. */
static SSL_CTX *build_ctx(char *err, size_t errlen)
{
	const struct config *cfg = T.cfg;
	/* OpenSSL opens the files itself, blocking: a FIFO (or a device) in
	 * their place would hold the loop at a reload. */
	const char *const files[][2] = { { "--tls-cert", cfg->tls_cert }, { "--tls-key", cfg->tls_key },
					 { "--tls-client-ca", cfg->tls_client_ca } };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct stat st;
		if (files[i][1] && stat(files[i][1], &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "%s %s: not a regular file", files[i][0], files[i][1]);
			return NULL;
		}
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) { take_error(err, errlen, "out of memory"); return NULL; }
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	/* No renegotiation (a CPU lever for a peer); tickets for resumption;
	 * the server's cipher order; default cipher suites otherwise. A peer
	 * that closes without close_notify has simply gone (EOF), as on a
	 * plain connection: nothing we serve depends on detecting truncation. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
				 (T.ktls ? SSL_OP_ENABLE_KTLS : 0));
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	if (T.shared_keys && SSL_CTX_set_tlsext_ticket_keys(ctx, T.ticket_keys, sizeof(T.ticket_keys)) != 1) {
		take_error(err, errlen, "cannot set the workers' session ticket keys");
		goto fail;
	}
	/* Idle connections give their buffers back; a write may be partial
	 * and retried from a moved buffer (the client layer's staging). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Resumption by stateless tickets only: a server-side session cache
	 * would keep every session (KiBs each) for its lifetime. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	static const unsigned char sid_ctx[] = "kbridge";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		char why[200];
		take_error(why, sizeof(why), "cannot read it");
		snprintf(err, errlen, "--tls-cert %s: %s", cfg->tls_cert, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
		char why[200];
		take_error(why, sizeof(why), "cannot read it");
		snprintf(err, errlen, "--tls-key %s: %s", cfg->tls_key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "--tls-key %s does not match the certificate in %s", cfg->tls_key, cfg->tls_cert);
		goto fail;
	}
	if (cfg->tls_client_ca) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca);
		if (!names || SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
			char why[200];
			take_error(why, sizeof(why), "no certificate in it");
			snprintf(err, errlen, "--tls-client-ca %s: %s", cfg->tls_client_ca, why);
			if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);   /* names move into ctx */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Whether the kernel has the TLS ULP: set it on a connected loopback
 * socket (the ULP needs an established TCP connection). */
static int probe_ktls(void)
{
#ifdef OPENSSL_NO_KTLS
	return 0;                     /* the kernel may have it, our OpenSSL cannot use it */
#endif
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, a = -1, ok = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
		goto out;
	if ((c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (a = accept(l, NULL, NULL)) < 0)
		goto out;
	ok = setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
out:
	if (a >= 0) close(a);
	if (c >= 0) close(c);
	if (l >= 0) close(l);
	return ok;
}

int tls_init(const struct config *cfg, char *err, size_t errlen)
{
	T.cfg = cfg;
	if (!cfg->tls_cert) return 0;
	T.ktls = probe_ktls();
	T.files.path[0] = cfg->tls_cert;
	T.files.path[1] = cfg->tls_key;
	T.files.path[2] = cfg->tls_client_ca;
	file_watch_mark(&T.files, clock_now(), TLS_POLL_MS);
	if (!(T.ctx = build_ctx(err, errlen))) return -1;
	/* Logged once either way (after the pair loaded: a bad pair is one
	 * line): which write path TLS clients take. */
	log_msg(LOG_INFO, T.ktls ? "kernel TLS available: shared frames go out with writev"
				 : "kernel TLS not available: frames are gathered into TLS records",
		NULL);
	log_msg(LOG_INFO, "tls certificate loaded", "why", "start", "client_ca", cfg->tls_client_ca ? "on" : "off", NULL);
	return 0;
}

int tls_enabled(void) { return T.ctx != NULL; }

/* Builds a new context: it replaces the old (which lives on in the
 * connections holding it), or the old stays with one error line. The
 * stamps are taken first, so a bad pair is reported once, not every poll. */
static void reload(const char *why)
{
	char err[400];
	file_watch_mark(&T.files, clock_now(), TLS_POLL_MS);
	SSL_CTX *ctx = build_ctx(err, sizeof(err));
	if (!ctx) {
		log_msg(LOG_ERROR, "tls certificate not reloaded: the old one stays", "why", why, "error", err, NULL);
		return;
	}
	SSL_CTX_free(T.ctx);          /* drops our reference only */
	T.ctx = ctx;
	log_msg(LOG_INFO, "tls certificate loaded", "why", why, NULL);
}

void tls_reload(void)
{
	if (T.ctx) reload("SIGHUP");
}

void tls_tick(void)
{
	if (T.ctx && file_watch_changed(&T.files, clock_now(), TLS_POLL_MS))
		reload("file changed");
}

/* ---- one connection -------------------------------------------------------- */

struct ssl_st *tls_new(int fd)
{
	SSL *s = T.ctx ? SSL_new(T.ctx) : NULL;
	if (!s) { ERR_clear_error(); return NULL; }
	if (SSL_set_fd(s, fd) != 1) {
		ERR_clear_error();
		SSL_free(s);
		return NULL;
	}
	SSL_set_accept_state(s);
	return s;
}

void tls_shutdown(struct ssl_st *s)
{
	/* One close_notify, only after a finished handshake and when none
	 * went yet; SSL_shutdown never waits for the peer's on a
	 * non-blocking socket when called once. */
	if (SSL_is_init_finished(s) && !(SSL_get_shutdown(s) & SSL_SENT_SHUTDOWN)) SSL_shutdown(s);
	ERR_clear_error();
}

void tls_free(struct ssl_st *s)
{
	if (!s) return;
	tls_shutdown(s);
	SSL_free(s);
}

/* OpenSSL's result r of a call on s, as a TLS_* code; 0 at a clean EOF.
 * After a fatal error no close_notify may follow (SSL_shutdown(3)):
 * quiet shutdown makes tls_shutdown send nothing then. */
static int result(SSL *s, int r, const char *what)
{
	int e = SSL_get_error(s, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:  return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE: return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL:
		/* EOF without close_notify, or a socket error. */
		if (errno == EAGAIN || errno == EINTR) return TLS_WANT_READ;
		SSL_set_quiet_shutdown(s, 1);
		if (errno == 0 && !ERR_peek_error()) return 0;
		snprintf(T.err, sizeof(T.err), "%s: %s", what, ERR_peek_error() ? "protocol error" :
			 errno ? strerror(errno) : "peer closed the connection");
		ERR_clear_error();
		return TLS_FAIL;
	default:
		SSL_set_quiet_shutdown(s, 1);
		take_error(T.err, sizeof(T.err), what);
		return TLS_FAIL;
	}
}

int tls_handshake(struct ssl_st *s)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(s);
	if (r == 1) return 0;
	r = result(s, r, "handshake");
	return r == 0 ? TLS_FAIL : r;   /* EOF in the handshake is a failure */
}

ssize_t tls_read(struct ssl_st *s, void *buf, size_t n)
{
	size_t got = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read_ex(s, buf, n, &got);
	if (r == 1) return (ssize_t)got;
	return result(s, 0, "read");
}

ssize_t tls_write(struct ssl_st *s, const void *buf, size_t n)
{
	size_t put = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_write_ex(s, buf, n, &put);
	if (r == 1) return (ssize_t)put;
	r = result(s, 0, "write");
	return r == 0 ? TLS_FAIL : r;
}

int tls_pending(struct ssl_st *s)
{
	return SSL_has_pending(s);
}

int tls_resumed(struct ssl_st *s)
{
	return SSL_session_reused(s);
}

int tls_ktls_send(struct ssl_st *s)
{
	(void)s;                      /* unused where OpenSSL is built without kTLS */
	return T.ktls && BIO_get_ktls_send(SSL_get_wbio(s));
}

const char *tls_peer_cn(struct ssl_st *s, char *buf, size_t len)
{
	X509 *x = SSL_get0_peer_certificate(s);
	if (!x || SSL_get_verify_result(s) != X509_V_OK) return NULL;
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
	ERR_clear_error();
	return n > 0 ? buf : NULL;
}

const char *tls_last_error(void)
{
	return T.err;
}
