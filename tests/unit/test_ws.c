/* test_ws.c - RFC 6455 primitives: the RFC 6455 §1.3 handshake vector and every key
 * RFC 6455 §4.1 forbids; client frame headers of every length encoding fed byte by
 * byte from exact-size buffers; every header-level protocol error (-1002);
 * unmasking against a naive loop, whole and in pieces at every offset; the
 * server header encoder decoded back; close codes checked exhaustively;
 * the reserved bits: RSV1 reported on data and continuation frames (the
 * session decides, knowing whether permessage-deflate was negotiated, RFC
 * 7692 §6), refused on control frames, RSV2 and RSV3 refused always. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "ws.h"

/* ---- handshake ----------------------------------------------------------- */

static void accept_ok(const char *key, const char *want, int line)
{
	size_t n = strlen(key);
	char *k = malloc(n);
	char out[WS_ACCEPT_LEN + 2];
	if (!k) abort();
	memcpy(k, key, n);
	memset(out, 0x5a, sizeof(out));
	int rc = ws_accept_key(k, n, out);
	CHECKF(rc == 0 && memcmp(out, want, WS_ACCEPT_LEN) == 0 && out[WS_ACCEPT_LEN] == '\0',
	       "line %d: key %s gave %d %.28s", line, key, rc, out);
	CHECKF(out[WS_ACCEPT_LEN + 1] == 0x5a, "line %d: wrote past WS_ACCEPT_LEN + 1", line);
	free(k);
}

static void accept_bad(const char *key, size_t n, int line)
{
	char *k = malloc(n ? n : 1);
	char out[WS_ACCEPT_LEN + 1];
	if (!k) abort();
	memcpy(k, key, n);
	int rc = ws_accept_key(k, n, out);
	CHECKF(rc == -1, "line %d: key \"%.*s\" (%zu bytes) gave %d, want -1", line, (int)n, key, n, rc);
	free(k);
}
#define ACCEPT_BAD(s) accept_bad(s, strlen(s), __LINE__)

static void test_accept(void)
{
	/* RFC 6455 §1.3 (and RFC 6455 §4.2.2 step 5.4). */
	accept_ok("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", __LINE__);
	accept_ok("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", __LINE__);
	accept_ok("AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=", __LINE__);

	ACCEPT_BAD("");
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ=");        /* 23 */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ===");      /* 25 */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ");         /* unpadded 22 */
	ACCEPT_BAD(" dGhlIHNhbXBsZSBub25jZQ==");      /* whitespace is the caller's to trim */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ= ");
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ=!");       /* not base64 */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25j*Q==");
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZ-_");        /* base64url alphabet */
	ACCEPT_BAD("AAAAAAAAAAAAAAAAAAAAAAAA");       /* 24 chars, 18 bytes */
	ACCEPT_BAD("AAAAAAAAAAAAAAAAAAAAAAA=");       /* 24 chars, 17 bytes */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZR==");       /* non-zero pad bits */
	ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZ===");
	ACCEPT_BAD("dGhlIHNhbXBsZSBu=25jZQ==");       /* padding inside */
	accept_bad("dGhlIHNhbXBsZSBub25jZQ==\0", 25, __LINE__);
	accept_bad("dGhlIHNhbXBsZSBub\0" "5jZQ==", 24, __LINE__);
	/* key_len is respected: a valid key read with a shorter length fails. */
	accept_bad("dGhlIHNhbXBsZSBub25jZQ==", 20, __LINE__);
}

/* ---- frame headers --------------------------------------------------------- */

/* Encodes a masked client frame header; returns its length. */
static size_t client_hdr(unsigned char *b, int fin, unsigned op, uint64_t len, const unsigned char mask[4])
{
	size_t n = 2;
	b[0] = (unsigned char)((fin ? 0x80 : 0) | op);
	if (len < 126) {
		b[1] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		b[1] = 0x80 | 126;
		b[2] = (unsigned char)(len >> 8);
		b[3] = (unsigned char)len;
		n = 4;
	} else {
		b[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++) b[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		n = 10;
	}
	memcpy(b + n, mask, 4);
	return n + 4;
}

/* ws_parse_header on an exact-size heap copy of b[0..n). */
static int parse_exact(const unsigned char *b, size_t n, struct ws_frame *f)
{
	unsigned char *c = malloc(n ? n : 1);
	if (!c) abort();
	memcpy(c, b, n);
	int r = ws_parse_header(c, n, f);
	free(c);
	return r;
}

static void header_ok(int fin, unsigned op, uint64_t len, int line)
{
	static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	unsigned char b[WS_MAX_HEADER + 8];
	size_t n = client_hdr(b, fin, op, len, mask);
	size_t want_hl = len < 126 ? 6 : len <= 0xffff ? 8 : 14;
	struct ws_frame f;

	CHECKF(n == want_hl, "line %d: helper", line);
	for (size_t k = 0; k < n; k++) {
		int r = parse_exact(b, k, &f);
		if (r != 0) { CHECKF(0, "line %d: prefix %zu/%zu gave %d, want 0", line, k, n, r); return; }
	}
	memset(&f, 0xee, sizeof(f));
	int r = parse_exact(b, n, &f);
	CHECKF(r == (int)n && f.hdr_len == n, "line %d: len %llu gave %d hdr_len %zu, want %zu",
	       line, (unsigned long long)len, r, f.hdr_len, n);
	CHECKF(f.len == len, "line %d: payload length %llu, want %llu", line,
	       (unsigned long long)f.len, (unsigned long long)len);
	CHECKF(f.fin == (unsigned)!!fin && f.opcode == op && f.masked == 1 && f.rsv1 == 0,
	       "line %d: fin %u op %u masked %u rsv1 %u", line, f.fin, f.opcode, f.masked, f.rsv1);
	CHECK_MEM(f.mask, 4, mask, 4);
	/* Payload bytes after the header do not change the answer. */
	memset(b + n, 0xff, 8);
	CHECKF(parse_exact(b, n + 8, &f) == (int)n && f.len == len, "line %d: with payload", line);
}

static void header_bad(const unsigned char *b, size_t n, int line)
{
	struct ws_frame f;
	for (size_t k = 0; k < n; k++) {
		int r = parse_exact(b, k, &f);
		if (r != 0 && r != -WS_CLOSE_PROTOCOL) {
			CHECKF(0, "line %d: prefix %zu/%zu gave %d", line, k, n, r);
			return;
		}
	}
	int r = parse_exact(b, n, &f);
	CHECKF(r == -1002, "line %d: gave %d, want -1002", line, r);
}
#define HBAD(...) do { static const unsigned char hb_[] = { __VA_ARGS__ }; \
	header_bad(hb_, sizeof(hb_), __LINE__); } while (0)

static void test_parse_header(void)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, (1ull << 32) + 5,
					 0x7fffffffffffffffull };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		header_ok(1, WS_OP_TEXT, lens[i], __LINE__);
		header_ok(0, WS_OP_BINARY, lens[i], __LINE__);
		header_ok(0, WS_OP_CONT, lens[i], __LINE__);
		header_ok(1, WS_OP_CONT, lens[i], __LINE__);
	}
	for (uint64_t l = 0; l <= 125; l += 125) {
		header_ok(1, WS_OP_CLOSE, l, __LINE__);
		header_ok(1, WS_OP_PING, l, __LINE__);
		header_ok(1, WS_OP_PONG, l, __LINE__);
	}
	/* RFC 6455 §5.7 "Hello" masked: 0x81 0x85 mask 37 fa 21 3d, payload 7f 9f 4d 51 58. */
	{
		static const unsigned char hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
		struct ws_frame f;
		unsigned char p[5];
		CHECK(ws_parse_header(hello, sizeof(hello), &f) == 6 && f.len == 5 && f.fin && f.opcode == WS_OP_TEXT);
		memcpy(p, hello + 6, 5);
		ws_unmask(p, 5, f.mask, 0);
		CHECK_MEM(p, 5, "Hello", 5);
	}

	/* Reserved bits (RFC 6455 §5.2): RSV2 and RSV3 always, RSV1 on a
	 * control frame (RFC 7692 §6.1); RSV1 on a data frame is reported
	 * (every opcode and length: test_rsv). */
	{
		struct ws_frame f;
		const unsigned char z[6] = { 0xc1, 0x80, 1, 2, 3, 4 }, plain[6] = { 0x81, 0x80, 1, 2, 3, 4 };
		CHECK(ws_parse_header(z, sizeof(z), &f) == 6 && f.rsv1 && f.opcode == WS_OP_TEXT);
		CHECK(ws_parse_header(plain, sizeof(plain), &f) == 6 && !f.rsv1);
	}
	HBAD(0xc9, 0x80, 1, 2, 3, 4);        /* RSV1 on a ping */
	HBAD(0xa1, 0x80, 1, 2, 3, 4);
	HBAD(0x91, 0x80, 1, 2, 3, 4);
	HBAD(0xf1, 0x80, 1, 2, 3, 4);
	HBAD(0x48, 0x80, 1, 2, 3, 4);        /* RSV on a control frame, FIN clear */
	/* Reserved opcodes 3-7 and 0xB-0xF, FIN set or not. */
	for (unsigned op = 3; op <= 15; op++) {
		if (op >= 8 && op <= 10) continue;
		unsigned char b1[6] = { (unsigned char)(0x80 | op), 0x80, 1, 2, 3, 4 };
		unsigned char b2[6] = { (unsigned char)op, 0x85, 1, 2, 3, 4 };
		header_bad(b1, 6, __LINE__);
		header_bad(b2, 6, __LINE__);
	}
	/* Control frames: never fragmented, payload <= 125 (RFC 6455 §5.5). */
	HBAD(0x08, 0x80, 1, 2, 3, 4);
	HBAD(0x09, 0x80, 1, 2, 3, 4);
	HBAD(0x0a, 0x80, 1, 2, 3, 4);
	HBAD(0x88, 0xfe, 0x00, 0x02, 1, 2, 3, 4);           /* close, 16-bit length 2 */
	HBAD(0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4);           /* ping, 126 */
	HBAD(0x8a, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x7e, 1, 2, 3, 4);
	/* Unmasked client frames (RFC 6455 §5.1). */
	HBAD(0x81, 0x05, 'H', 'e', 'l', 'l', 'o');
	HBAD(0x81, 0x00);
	HBAD(0x88, 0x02, 0x03, 0xe8);
	HBAD(0x82, 0x7e, 0x01, 0x00);
	HBAD(0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0);
	/* 64-bit length with the most significant bit set (RFC 6455 §5.2). */
	HBAD(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4);
	HBAD(0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4);
}

/* ---- reserved bits ------------------------------------------------------ */

/* A data or continuation frame with RSV1: parsed whole, RSV1 reported,
 * every prefix still waiting for bytes. */
static void rsv1_ok(int fin, unsigned op, uint64_t len, int line)
{
	static const unsigned char mask[4] = { 0xa1, 0x00, 0x5c, 0xff };
	unsigned char b[WS_MAX_HEADER + 8];
	size_t n = client_hdr(b, fin, op, len, mask);
	struct ws_frame f;

	b[0] |= 0x40;
	for (size_t k = 0; k < n; k++) {
		int r = parse_exact(b, k, &f);
		if (r != 0) { CHECKF(0, "line %d: prefix %zu/%zu gave %d, want 0", line, k, n, r); return; }
	}
	memset(&f, 0xee, sizeof(f));
	int r = parse_exact(b, n, &f);
	CHECKF(r == (int)n && f.hdr_len == n && f.len == len && f.rsv1 == 1 && f.fin == (unsigned)!!fin &&
	       f.opcode == op && f.masked == 1,
	       "line %d: op %u fin %d len %llu gave %d rsv1 %u fin %u op %u len %llu", line, op, fin,
	       (unsigned long long)len, r, f.rsv1, f.fin, f.opcode, (unsigned long long)f.len);
	CHECK_MEM(f.mask, 4, mask, 4);
	/* And the same header without RSV1 reports it clear over a poisoned struct. */
	b[0] &= (unsigned char)~0x40;
	memset(&f, 0xff, sizeof(f));
	CHECKF(parse_exact(b, n, &f) == (int)n && f.rsv1 == 0, "line %d: rsv1 %u without the bit", line, f.rsv1);
}

static void test_rsv(void)
{
	static const uint64_t lens[] = { 0, 1, 125, 126, 65535, 65536, (1ull << 32) + 5 };
	static const unsigned data_ops[] = { WS_OP_TEXT, WS_OP_BINARY, WS_OP_CONT };
	static const unsigned control_ops[] = { WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	static const unsigned char mask[4] = { 1, 2, 3, 4 };

	/* RSV1 on text, binary and continuation frames, FIN set or not, every
	 * length encoding (the session refuses it on a continuation, RFC 7692 §6.1). */
	for (size_t i = 0; i < sizeof(data_ops) / sizeof(data_ops[0]); i++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			rsv1_ok(1, data_ops[i], lens[l], __LINE__);
			rsv1_ok(0, data_ops[i], lens[l], __LINE__);
		}
	/* RFC 7692 §7.2.3.1's compressed "Hello" frame, masked as RFC 6455 §5.7 does. */
	{
		static const unsigned char hello[] = { 0xc1, 0x87, 0x37, 0xfa, 0x21, 0x3d, 0xc5, 0xb2, 0xec, 0xf4,
						       0xfe, 0xfd, 0x21 };
		unsigned char p[7];
		struct ws_frame f;
		CHECK(ws_parse_header(hello, sizeof(hello), &f) == 6 && f.rsv1 && f.fin && f.opcode == WS_OP_TEXT &&
		      f.len == 7);
		memcpy(p, hello + 6, 7);
		ws_unmask(p, 7, f.mask, 0);
		CHECK_MEM(p, 7, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
	}

	/* RSV2 and RSV3, alone or with RSV1, on every opcode: -1002. */
	for (unsigned bits = 1; bits < 8; bits++) {
		unsigned rsv = bits << 4;                    /* 0x10 RSV3, 0x20 RSV2, 0x40 RSV1 */
		if (rsv == 0x40) continue;
		for (size_t i = 0; i < 3; i++)
			for (size_t l = 0; l < 3; l++) {
				unsigned char b[WS_MAX_HEADER];
				size_t n = client_hdr(b, (int)(l & 1), data_ops[i], lens[l * 2], mask);
				b[0] |= (unsigned char)rsv;
				header_bad(b, n, __LINE__);
			}
		for (size_t i = 0; i < 3; i++) {
			unsigned char b[WS_MAX_HEADER];
			size_t n = client_hdr(b, 1, control_ops[i], 2, mask);
			b[0] |= (unsigned char)rsv;
			header_bad(b, n, __LINE__);
		}
	}
	/* RSV1 on close, ping and pong: -1002 (RFC 7692 §6: only data messages
	 * are compressed), at every legal control length. */
	for (size_t i = 0; i < 3; i++)
		for (uint64_t l = 0; l <= 125; l += 25) {
			unsigned char b[WS_MAX_HEADER];
			size_t n = client_hdr(b, 1, control_ops[i], l, mask);
			b[0] |= 0x40;
			header_bad(b, n, __LINE__);
		}
	HBAD(0xc8, 0x82, 1, 2, 3, 4);        /* close */
	HBAD(0xc9, 0x80, 1, 2, 3, 4);        /* ping */
	HBAD(0xca, 0x80, 1, 2, 3, 4);        /* pong */
	HBAD(0x49, 0x80, 1, 2, 3, 4);        /* ping, FIN clear too */
	/* RSV1 does not rescue an otherwise bad header. */
	HBAD(0xc1, 0x05, 'H', 'e', 'l', 'l', 'o');          /* unmasked */
	HBAD(0xc3, 0x80, 1, 2, 3, 4);                       /* reserved opcode */
	HBAD(0xcb, 0x80, 1, 2, 3, 4);
	HBAD(0xc2, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4);
}

/* ---- unmasking ------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void test_unmask(void)
{
	enum { MAX = 4200 };
	unsigned char *orig = malloc(MAX + 16), *a = malloc(MAX + 16), *b = malloc(MAX + 16);
	unsigned char mask[4];
	int bad = 0;
	if (!orig || !a || !b) abort();
	for (size_t i = 0; i < MAX + 16; i++) orig[i] = (unsigned char)rnd();

	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 125, 126,
				       1000, 4099, MAX };
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t n = lens[li];
		for (uint64_t off = 0; off < 8; off++) {
			for (size_t align = 0; align < 8; align++) {
				for (int j = 0; j < 4; j++) mask[j] = (unsigned char)rnd();
				memset(a, 0xa5, MAX + 16);
				memcpy(a + align, orig, n);
				/* A large offset only matters modulo 4. */
				ws_unmask(a + align, n, mask, off + (align == 7 ? (1ull << 32) : 0));
				for (size_t i = 0; i < n; i++)
					if (a[align + i] != (orig[i] ^ mask[(off + i) & 3])) { bad++; break; }
				/* Canary: nothing outside [align, align + n) touched. */
				for (size_t i = 0; i < align; i++) if (a[i] != 0xa5) bad++;
				for (size_t i = align + n; i < align + n + 8; i++) if (a[i] != 0xa5) bad++;
			}
		}
	}
	CHECKF(bad == 0, "%d unmask results differ from the naive loop", bad);

	/* Bytes around the range are not touched. */
	memset(a, 0x11, 64);
	mask[0] = 0xff; mask[1] = 0xff; mask[2] = 0xff; mask[3] = 0xff;
	ws_unmask(a + 3, 40, mask, 1);
	CHECK(a[2] == 0x11 && a[43] == 0x11 && a[3] == 0xee && a[42] == 0xee);

	/* Pieces unmasked with their offsets equal the whole unmasked at once. */
	bad = 0;
	for (int trial = 0; trial < 2000; trial++) {
		size_t n = rnd() % 600;
		for (int j = 0; j < 4; j++) mask[j] = (unsigned char)rnd();
		memcpy(a, orig, n);
		memcpy(b, orig, n);
		ws_unmask(a, n, mask, 0);
		size_t pos = 0;
		while (pos < n) {
			size_t piece = 1 + rnd() % (trial & 1 ? 5 : 40);
			if (piece > n - pos) piece = n - pos;
			ws_unmask(b + pos, piece, mask, pos);
			pos += piece;
		}
		if (memcmp(a, b, n) != 0) bad++;
		/* Unmasking twice restores the input. */
		ws_unmask(a, n, mask, 0);
		if (memcmp(a, orig, n) != 0) bad++;
	}
	CHECKF(bad == 0, "%d piecewise unmask trials differ", bad);
	free(orig);
	free(a);
	free(b);
}

/* ---- server headers ------------------------------------------------------- */

static void encode_case(enum ws_opcode op, uint64_t len, const unsigned char *want, size_t want_n, int line)
{
	unsigned char out[WS_MAX_SERVER_HEADER + 8];
	memset(out, 0x5a, sizeof(out));
	size_t n = ws_header_encode(out, op, len);
	CHECKF(n == ws_header_len(len) && n <= WS_MAX_SERVER_HEADER, "line %d: encode %zu, header_len %zu",
	       line, n, ws_header_len(len));
	if (want) CHECK_MEM(out, n, want, want_n);
	for (size_t i = n; i < sizeof(out); i++)
		if (out[i] != 0x5a) { CHECKF(0, "line %d: wrote byte %zu", line, i); break; }
	/* Decode it back: FIN set, no RSV, our opcode, unmasked. Setting the
	 * mask bit and appending a key lets the client parser read the length. */
	CHECKF(out[0] == (0x80 | op) && !(out[1] & 0x80), "line %d: first bytes %02x %02x", line, out[0], out[1]);
	unsigned char m[WS_MAX_HEADER];
	memcpy(m, out, n);
	m[1] |= 0x80;
	memset(m + n, 0, 4);
	struct ws_frame f;
	int r = ws_parse_header(m, n + 4, &f);
	CHECKF(r == (int)n + 4 && f.len == len && f.fin && f.opcode == op, "line %d: decoded %d len %llu",
	       line, r, (unsigned long long)f.len);
	/* And the server header itself, as a client would see it, is unmasked. */
	CHECK(ws_parse_header(out, n, &f) == -WS_CLOSE_PROTOCOL);
}
#define ENC(op, len, ...) do { static const unsigned char w_[] = { __VA_ARGS__ }; \
	encode_case(op, len, w_, sizeof(w_), __LINE__); } while (0)

static void test_encode(void)
{
	ENC(WS_OP_TEXT, 0, 0x81, 0x00);
	ENC(WS_OP_TEXT, 5, 0x81, 0x05);
	ENC(WS_OP_BINARY, 125, 0x82, 0x7d);
	ENC(WS_OP_TEXT, 126, 0x81, 0x7e, 0x00, 0x7e);
	ENC(WS_OP_TEXT, 127, 0x81, 0x7e, 0x00, 0x7f);
	ENC(WS_OP_TEXT, 256, 0x81, 0x7e, 0x01, 0x00);
	ENC(WS_OP_TEXT, 65535, 0x81, 0x7e, 0xff, 0xff);
	ENC(WS_OP_TEXT, 65536, 0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0);
	ENC(WS_OP_BINARY, (1ull << 32) + 5, 0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 5);
	ENC(WS_OP_BINARY, 0x0102030405060708ull, 0x82, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8);
	ENC(WS_OP_CLOSE, 2, 0x88, 0x02);
	ENC(WS_OP_PING, 125, 0x89, 0x7d);
	ENC(WS_OP_PONG, 0, 0x8a, 0x00);
	CHECK(ws_header_len(0) == 2 && ws_header_len(125) == 2 && ws_header_len(126) == 4 &&
	      ws_header_len(65535) == 4 && ws_header_len(65536) == 10 && ws_header_len(UINT64_MAX >> 1) == 10);
	for (uint64_t l = 0; l < 70000; l += 1 + (l < 130 ? 0 : 97))
		encode_case(WS_OP_TEXT, l, NULL, 0, __LINE__);
}

/* ---- close codes ---------------------------------------------------------- */

static void test_close_codes(void)
{
	static const unsigned valid[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
					  1014, 3000, 3999, 4000, 4999 };
	static const unsigned invalid[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
					    5000, 65535, 65536, 0xffffffffu };
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		CHECKF(ws_close_code_valid(valid[i]) == 1, "%u should be valid", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		CHECKF(ws_close_code_valid(invalid[i]) == 0, "%u should be invalid", invalid[i]);
	/* Exhaustively over the 16-bit range. */
	int bad = 0;
	for (unsigned c = 0; c <= 0xffff; c++) {
		int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
		if (ws_close_code_valid(c) != want) { if (!bad) fprintf(stderr, "code %u wrong\n", c); bad++; }
	}
	CHECKF(bad == 0, "%d codes classified wrongly", bad);
}

int main(void)
{
	test_accept();
	test_parse_header();
	test_rsv();
	test_unmask();
	test_encode();
	test_close_codes();
	return check_summary("ws");
}
