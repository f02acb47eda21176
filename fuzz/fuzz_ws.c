/* fuzz_ws.c - libFuzzer target for ws.c. The input is a stream of client
 * frames, read as a server does: parse a header, refuse it or a payload over
 * MAX_MSG, wait for the whole payload, unmask it. The stream is read whole,
 * in two pieces split where the input's first two bytes say, and byte by
 * byte (short inputs); every reading must see the same frames, payloads and
 * final error. Each buffer is an exact-size heap copy so ASan catches reads
 * past what was received. Also: unmask in pieces vs a naive loop, the
 * server-header encoder decoded back, and ws_accept_key on the first bytes.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_ws.c ws.c sha1.c base64.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define MAX_MSG 65536

/* What a reading saw: a byte log of frames and how it ended. */
struct log {
	unsigned char *b;
	size_t n, cap;
};

static void put(struct log *l, const void *p, size_t n)
{
	if (l->n + n > l->cap) {
		l->cap = (l->n + n) * 2 + 64;
		l->b = realloc(l->b, l->cap);
		ASSERT(l->b);
	}
	memcpy(l->b + l->n, p, n);
	l->n += n;
}

/* Consumes the complete frames at buf[0..len); returns bytes consumed, or
 * (size_t)-1 once the stream is dead (an error was logged). */
static size_t consume(unsigned char *buf, size_t len, struct log *l)
{
	size_t pos = 0;
	while (pos < len) {
		struct ws_frame f;
		int r = ws_parse_header(buf + pos, len - pos, &f);
		if (r == 0) {
			ASSERT(len - pos < WS_MAX_HEADER);
			break;
		}
		if (r < 0) {
			ASSERT(r == -WS_CLOSE_PROTOCOL);
			unsigned char e[2] = { 0xee, 0x02 };
			put(l, e, 2);
			return (size_t)-1;
		}
		ASSERT((size_t)r == f.hdr_len && (size_t)r <= len - pos);
		ASSERT(r == 6 || r == 8 || r == 14);
		ASSERT(f.masked && (f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10)));
		ASSERT(f.len < (1ull << 63));
		if (f.opcode >= 8) ASSERT(f.fin && f.len <= WS_MAX_CONTROL);
		ASSERT(r != 6 || f.len < 126);
		ASSERT(r != 8 || f.len <= 0xffff);
		if (f.len > MAX_MSG) {                        /* 1009 before buffering */
			unsigned char e[2] = { 0xee, 0x09 };
			put(l, e, 2);
			return (size_t)-1;
		}
		if (len - pos - (size_t)r < f.len) break;     /* wait for the payload */
		unsigned char *p = buf + pos + r;
		size_t n = (size_t)f.len;
		/* Unmask a copy naively, and in place in two pieces; they must agree. */
		unsigned char *naive = malloc(n ? n : 1);
		ASSERT(naive);
		for (size_t i = 0; i < n; i++) naive[i] = p[i] ^ f.mask[i & 3];
		size_t cut = n ? (p[0] + (size_t)f.mask[1]) % (n + 1) : 0;
		ws_unmask(p, cut, f.mask, 0);
		ws_unmask(p + cut, n - cut, f.mask, cut);
		ASSERT(memcmp(p, naive, n) == 0);
		free(naive);
		unsigned char h[1 + 1 + 8];
		h[0] = (unsigned char)f.opcode;
		h[1] = (unsigned char)f.fin;
		memcpy(h + 2, &f.len, 8);
		put(l, h, sizeof(h));
		put(l, p, n);
		pos += (size_t)r + n;
	}
	return pos;
}

/* Reads data as a server whose reads return the given piece sizes (the
 * last piece takes the rest); returns the log. */
static struct log read_stream(const uint8_t *data, size_t size, const size_t *pieces, size_t npieces)
{
	struct log l = { 0 };
	unsigned char *held = NULL;
	size_t nheld = 0, at = 0;
	for (size_t i = 0; at < size || i == 0; i++) {
		size_t take = i < npieces ? pieces[i] : size - at;
		if (take > size - at) take = size - at;
		/* Exact-size buffer: what is held plus what just arrived. */
		unsigned char *b = malloc(nheld + take ? nheld + take : 1);
		ASSERT(b);
		if (nheld) memcpy(b, held, nheld);
		memcpy(b + nheld, data + at, take);
		at += take;
		free(held);
		size_t len = nheld + take, used = consume(b, len, &l);
		if (used == (size_t)-1) { free(b); held = NULL; break; }
		nheld = len - used;
		held = malloc(nheld ? nheld : 1);
		ASSERT(held);
		memcpy(held, b + used, nheld);
		free(b);
		if (at == size) break;
	}
	free(held);
	return l;
}

static int same(const struct log *a, const struct log *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->b, b->b, a->n) == 0);
}

static void check_encode(const uint8_t *data, size_t size)
{
	if (size < 9) return;
	uint64_t len;
	memcpy(&len, data + 1, 8);
	len >>= (data[0] & 63);                 /* all magnitudes */
	len &= ~(1ull << 63);
	unsigned op = data[0] & 0x80 ? WS_OP_BINARY : WS_OP_TEXT;
	unsigned char out[WS_MAX_SERVER_HEADER + 4];
	size_t n = ws_header_encode(out, (enum ws_opcode)op, len);
	ASSERT(n == ws_header_len(len) && n <= WS_MAX_SERVER_HEADER);
	ASSERT(out[0] == (0x80 | op) && !(out[1] & 0x80));
	out[1] |= 0x80;                          /* masked, so the client parser reads it */
	memset(out + n, 0, 4);
	struct ws_frame f;
	ASSERT(ws_parse_header(out, n + 4, &f) == (int)n + 4 && f.len == len && f.opcode == op && f.fin);
}

static void check_accept(const uint8_t *data, size_t size)
{
	size_t n = size < 30 ? size : 30;
	char *key = malloc(n ? n : 1), out[WS_ACCEPT_LEN + 1];
	unsigned char raw[30];
	ASSERT(key);
	memcpy(key, data, n);
	int r = ws_accept_key(key, n, out);
	int want = n == 24 && base64_decode(key, n, raw) == 16 ? 0 : -1;
	ASSERT(r == want);
	if (r == 0) {
		ASSERT(out[WS_ACCEPT_LEN] == '\0' && out[WS_ACCEPT_LEN - 1] == '=');
		ASSERT(base64_decode(out, WS_ACCEPT_LEN, raw) == 20);
	}
	free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_accept(data, size);
	check_encode(data, size);

	struct log whole = read_stream(data, size, NULL, 0);
	size_t split = size >= 2 ? (data[0] | (size_t)data[1] << 8) % (size + 1) : 0;
	size_t two[1] = { split };
	struct log halves = read_stream(data, size, two, 1);
	ASSERT(same(&halves, &whole));
	free(halves.b);
	if (size <= 512) {
		size_t ones[512];
		for (size_t i = 0; i < size; i++) ones[i] = 1;
		struct log bytes = read_stream(data, size, ones, size);
		ASSERT(same(&bytes, &whole));
		free(bytes.b);
	}
	free(whole.b);
	return 0;
}
