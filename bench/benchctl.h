/* benchctl.h - the stdin control channel the bench tools share (run.py
 * drives wsload and floor with one command per line): a non-blocking read
 * that hands each complete line to the tool. Header-only: each tool is one
 * C file. */
#ifndef KB_BENCHCTL_H
#define KB_BENCHCTL_H
#include <errno.h>
#include <string.h>
#include <unistd.h>

struct benchctl {
	char buf[512];
	size_t len;
};

/* Reads what stdin has and calls on_line for every complete line (without
 * its newline). Returns 1 at EOF or on a read error (the driver went away),
 * else 0. A line longer than the buffer is dropped. */
static inline int benchctl_read(struct benchctl *c, void (*on_line)(char *line))
{
	ssize_t r = read(0, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (r <= 0) return !(r < 0 && (errno == EAGAIN || errno == EINTR));
	c->len += (size_t)r;
	c->buf[c->len] = '\0';
	char *nl;
	while ((nl = strchr(c->buf, '\n'))) {
		*nl = '\0';
		on_line(c->buf);
		size_t rest = c->len - (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, rest + 1);
		c->len = rest;
	}
	if (c->len == sizeof(c->buf) - 1) c->len = 0;
	return 0;
}
#endif
