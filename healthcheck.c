/* healthcheck.c - `kbridge --healthcheck URL`: the probe a scratch image
 * runs as its HEALTHCHECK, since it has no curl. One blocking GET with a
 * deadline over http:// or https:// (libssl, verifying the server against
 * --healthcheck-ca or the system's CA paths unless --healthcheck-insecure);
 * exit status 0 on HTTP 200, 1 otherwise, with one line on stderr saying
 * why. Runs instead of the server, never inside the loop. */
#include "healthcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"

#define PROBE_TIMEOUT_MS 3000

static int fail(const char *url, const char *why)
{
	fprintf(stderr, "kbridge: healthcheck %s: %s\n", url, why);
	return 1;
}

/* Waits for fd to be ready for events; 0 ready, -1 timeout or error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	int64_t now = mono_ms();
	if (now >= deadline_ms) return -1;
	struct pollfd p = { .fd = fd, .events = events };
	return poll(&p, 1, (int)(deadline_ms - now)) == 1 ? 0 : -1;
}

/* One TLS connection of the probe; ssl NULL for plain http://. */
struct probe {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int64_t deadline;
	int verify;             /* the certificate is checked (no --healthcheck-insecure) */
	char why[256];          /* the cause when a step fails */
};

static void probe_close(struct probe *p)
{
	if (p->ssl) SSL_free(p->ssl);
	if (p->ctx) SSL_CTX_free(p->ctx);
	if (p->fd >= 0) close(p->fd);
}

/* The OpenSSL error queue's first entry (or `dflt`) into p->why. */
static void ssl_why(struct probe *p, const char *step, const char *dflt)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	if (e) ERR_error_string_n(e, buf, sizeof(buf));
	else snprintf(buf, sizeof(buf), "%s", dflt);
	if (p->ssl && p->verify) {   /* unverified, the result is recorded but means nothing */
		long v = SSL_get_verify_result(p->ssl);
		if (v != X509_V_OK) snprintf(buf, sizeof(buf), "certificate verify failed: %s",
		                             X509_verify_cert_error_string(v));
	}
	snprintf(p->why, sizeof(p->why), "%s: %s", step, buf);
	ERR_clear_error();
}

/* Waits for what a non-blocking SSL call asked for; 0 to retry, -1 to stop. */
static int ssl_wait(struct probe *p, int r)
{
	int e = SSL_get_error(p->ssl, r);
	if (e == SSL_ERROR_WANT_READ) return wait_fd(p->fd, POLLIN, p->deadline);
	if (e == SSL_ERROR_WANT_WRITE) return wait_fd(p->fd, POLLOUT, p->deadline);
	return -1;
}

/* TLS client handshake, verifying the certificate against `ip` (the URL's
 * host is always a numeric address here, so the check is on an IP SAN). */
static int tls_start(struct probe *p, const char *ip, const char *ca_file, int insecure)
{
	p->ctx = SSL_CTX_new(TLS_client_method());
	if (!p->ctx) { ssl_why(p, "TLS", "cannot create a context"); return -1; }
	SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
	p->verify = !insecure;
	if (!insecure) {
		int ok = ca_file ? SSL_CTX_load_verify_locations(p->ctx, ca_file, NULL)
		                 : SSL_CTX_set_default_verify_paths(p->ctx);
		if (ok != 1) { ssl_why(p, ca_file ? ca_file : "system CA paths", "cannot load CAs"); return -1; }
		SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
	}
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(p->ctx, alpn, sizeof(alpn) - 1);
	p->ssl = SSL_new(p->ctx);
	if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1) { ssl_why(p, "TLS", "cannot create a connection"); return -1; }
	if (!insecure && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), ip) != 1) {
		ssl_why(p, "TLS", "cannot set the address to verify");
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(p->ssl);
		if (r == 1) return 0;
		if (ssl_wait(p, r) < 0) {
			ssl_why(p, "TLS handshake", r < 0 && mono_ms() >= p->deadline ? "timed out" : "failed");
			return -1;
		}
	}
}

static int probe_write(struct probe *p, const char *buf, int n)
{
	if (!p->ssl) return write(p->fd, buf, (size_t)n) == n ? 0 : -1;
	for (;;) {
		int r = SSL_write(p->ssl, buf, n);
		if (r == n) return 0;
		if (ssl_wait(p, r) < 0) return -1;
	}
}

/* Reads what is there once the socket is readable: >0 bytes, 0 EOF, -1 error. */
static long probe_read(struct probe *p, char *buf, size_t n)
{
	if (!p->ssl) return (long)read(p->fd, buf, n);
	for (;;) {
		int r = SSL_read(p->ssl, buf, (int)n);
		if (r > 0) return r;
		if (SSL_get_error(p->ssl, r) == SSL_ERROR_ZERO_RETURN) return 0;
		if (ssl_wait(p, r) < 0) return -1;
	}
}

int healthcheck_run(const char *url, const char *ca_file, int insecure)
{
	char host[64], path[512] = "/health";
	unsigned port = 80;
	int tls = 0;
	const char *p = url;
	if (strncmp(p, "http://", 7) == 0) p += 7;
	else if (strncmp(p, "https://", 8) == 0) { p += 8; tls = 1; port = 443; }
	else return fail(url, "only http:// and https:// URLs are supported");
	size_t hl = strcspn(p, ":/");
	if (hl == 0 || hl >= sizeof(host)) return fail(url, "bad host");
	memcpy(host, p, hl);
	host[hl] = '\0';
	p += hl;
	if (*p == ':') {
		char *end;
		unsigned long v = strtoul(p + 1, &end, 10);
		if (end == p + 1 || v == 0 || v > 65535) return fail(url, "bad port");
		port = (unsigned)v;
		p = end;
	}
	if (*p == '/') snprintf(path, sizeof(path), "%s", p);
	else if (*p) return fail(url, "bad URL");
	/* A scratch image has no /etc/hosts: "localhost" cannot be resolved there. */
	if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return fail(url, "host must be a numeric IPv4 address (no name resolution in a scratch image)");

	struct probe pr = { .fd = -1, .deadline = mono_ms() + PROBE_TIMEOUT_MS };
	pr.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pr.fd < 0) return fail(url, strerror(errno));
	if (connect(pr.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		probe_close(&pr);
		return fail(url, strerror(e));
	}
	int err = 0;
	socklen_t el = sizeof(err);
	if (wait_fd(pr.fd, POLLOUT, pr.deadline) < 0 || getsockopt(pr.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		probe_close(&pr);
		return fail(url, err ? strerror(err) : "connect timed out");
	}
	if (tls && tls_start(&pr, host, ca_file, insecure) < 0) {
		probe_close(&pr);
		return fail(url, pr.why);
	}
	char req[700];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n", path, host, port);
	if (probe_write(&pr, req, n) < 0) {
		probe_close(&pr);
		return fail(url, "cannot send request");
	}
	char resp[64];
	size_t got = 0;
	while (got < 12 && wait_fd(pr.fd, POLLIN, pr.deadline) == 0) {
		long r = probe_read(&pr, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0) break;
		got += (size_t)r;
	}
	probe_close(&pr);
	resp[got] = '\0';
	if (got < 12 || strncmp(resp, "HTTP/1.", 7) != 0) return fail(url, "no HTTP response");
	if (strncmp(resp + 9, "200", 3) != 0) {
		char why[32];
		snprintf(why, sizeof(why), "status %.3s", resp + 9);
		return fail(url, why);
	}
	return 0;
}
