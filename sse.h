/* sse.h - Server-Sent Events (docs/protocol.md#sse): the bytes of one
 * event (the HTML standard's text/event-stream syntax) made from a server
 * message's JSON, and the position token carried in its `id:` line.
 * A token is base64url (RFC 4648 §5, no padding) of a small binary list:
 * for each partition, its topic's name (once per topic), the partition
 * and the offset of the last record the stream delivered or passed over.
 * Knows bytes and the token's layout, not clients, channels or Kafka. */
#ifndef KB_SSE_H
#define KB_SSE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SSE_TOKEN_MAX 4096   /* characters of a token, written or read */
#define SSE_POS_MAX   256    /* partitions in one token */
#define SSE_TOKEN_VERSION 1

/* One partition's position: the offset of the last record passed (-1:
 * none, the partition starts at offset 0). */
struct sse_pos {
	const char *topic;   /* NUL-terminated */
	int32_t partition;
	int64_t last;
};

/* Writes the token of v[0..n) (sorted here by topic, then partition; a
 * (topic, partition) must not appear twice) into out, NUL-terminated.
 * Returns its length, or -1 when n is over SSE_POS_MAX, a value is out of
 * range or the token would not fit cap (at most SSE_TOKEN_MAX + 1). */
ssize_t sse_token_encode(struct sse_pos *v, size_t n, char *out, size_t cap);

/* A decoded token: positions whose topics point into names. */
struct sse_token {
	size_t n;
	struct sse_pos pos[SSE_POS_MAX];
	char names[SSE_TOKEN_MAX];
};
/* Reads a token strictly: base64url as written, the version, every length
 * within the bytes, topic names of 1-249 bytes of Kafka's topic alphabet
 * ([A-Za-z0-9._-]), topics in increasing order and partitions increasing
 * within a topic, offsets >= -1, varints in their shortest form, nothing
 * left over (an empty list is valid). Returns 0, or -1 with a short reason in *why (static text). */
int sse_token_decode(const char *tok, size_t len, struct sse_token *out, const char **why);

/* The event of a server message given as one JSON text: an optional
 * `id: ID` line, `event: TYPE` when the JSON's first member is a plain
 * "type" string (else the event is the default "message"), one `data:`
 * line, and the blank line that dispatches it. Line breaks in the JSON
 * (insignificant whitespace: valid JSON has none inside strings) become
 * spaces, so data is always one line. Writes into out when not NULL;
 * returns the length either way. */
size_t sse_event(unsigned char *out, const char *id, size_t id_len, const char *json, size_t len);
#endif
