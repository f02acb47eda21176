/* healthcheck.c - `kbridge --healthcheck URL`: the probe a scratch image
 * runs as its HEALTHCHECK, since it has no curl. One blocking GET with a
 * deadline; exit status 0 on HTTP 200, 1 otherwise, with one line on
 * stderr saying why. Runs instead of the server, never inside the loop. */
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

int healthcheck_run(const char *url)
{
	char host[64], path[512] = "/health";
	unsigned port = 80;
	const char *p = url;
	if (strncmp(p, "http://", 7) != 0) return fail(url, "only http:// URLs are supported");
	p += 7;
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

	int64_t deadline = mono_ms() + PROBE_TIMEOUT_MS;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) return fail(url, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return fail(url, strerror(e));
	}
	int err = 0;
	socklen_t el = sizeof(err);
	if (wait_fd(fd, POLLOUT, deadline) < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		close(fd);
		return fail(url, err ? strerror(err) : "connect timed out");
	}
	char req[700];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n", path, host, port);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return fail(url, "cannot send request");
	}
	char resp[64];
	size_t got = 0;
	while (got < 12 && wait_fd(fd, POLLIN, deadline) == 0) {
		ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0) break;
		got += (size_t)r;
	}
	close(fd);
	resp[got] = '\0';
	if (got < 12 || strncmp(resp, "HTTP/1.", 7) != 0) return fail(url, "no HTTP response");
	if (strncmp(resp + 9, "200", 3) != 0) {
		char why[32];
		snprintf(why, sizeof(why), "status %.3s", resp + 9);
		return fail(url, why);
	}
	return 0;
}
