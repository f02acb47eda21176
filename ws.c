/* ws.c - RFC 6455 framing primitives: accept key, client frame-header
 * parsing, server frame-header encoding, unmasking and close-code checks.
 * Stateless; the per-connection message state lives in session.c. */
#include "ws.h"

#include <string.h>

#include "base64.h"
#include "sha1.h"

/* RFC 6455 §1.3: the GUID every server appends to the client's key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_parse_header(const unsigned char *b, size_t len, struct ws_frame *f)
{
	if (len < 2) return 0;
	unsigned op = b[0] & 0x0f;
	f->fin = b[0] >> 7;
	f->opcode = op;
	f->masked = b[1] >> 7;
	f->rsv1 = (b[0] >> 6) & 1;
	/* RSV2 and RSV3 must be 0: no extension that uses them is ever
	 * negotiated (RFC 6455 §5.2). RSV1 is permessage-deflate's "compressed"
	 * bit: the session knows whether it was negotiated. */
	if (b[0] & 0x30) return -WS_CLOSE_PROTOCOL;
	switch (op) {
	case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
		break;
	case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
		/* RFC 6455 §5.5: control frames are never fragmented, payload <= 125;
		 * RFC 7692 §6.1: never compressed. */
		if (!f->fin || f->rsv1 || (b[1] & 0x7f) > WS_MAX_CONTROL) return -WS_CLOSE_PROTOCOL;
		break;
	default:
		return -WS_CLOSE_PROTOCOL;     /* reserved opcodes (RFC 6455 §5.2) */
	}
	/* RFC 6455 §5.1: a server MUST close on an unmasked client frame. */
	if (!f->masked) return -WS_CLOSE_PROTOCOL;

	size_t need = 2;
	uint64_t n = b[1] & 0x7f;
	if (n == 126) need += 2;
	else if (n == 127) need += 8;
	need += 4;
	if (len < need) return 0;
	if (n == 126) {
		n = (uint64_t)b[2] << 8 | b[3];
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++) n = n << 8 | b[2 + i];
		if (n >> 63) return -WS_CLOSE_PROTOCOL;   /* RFC 6455 §5.2: MSB must be 0 */
	}
	memcpy(f->mask, b + need - 4, 4);
	f->len = n;
	f->hdr_len = need;
	return (int)need;
}

void ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset)
{
	size_t i = 0;
	unsigned k = (unsigned)(offset & 3);
	/* Align to the mask, then do 8 bytes at a time with a rotated key. */
	while (i < n && k != 0) { p[i++] ^= mask[k]; k = (k + 1) & 3; }
	if (n - i >= 8) {
		unsigned char m8[8];
		for (int j = 0; j < 8; j++) m8[j] = mask[j & 3];
		uint64_t m;
		memcpy(&m, m8, 8);
		for (; n - i >= 8; i += 8) {
			uint64_t v;
			memcpy(&v, p + i, 8);
			v ^= m;
			memcpy(p + i, &v, 8);
		}
	}
	for (; i < n; i++, k = (k + 1) & 3) p[i] ^= mask[k];
}

size_t ws_header_len(uint64_t len)
{
	return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

size_t ws_header_encode(unsigned char *out, enum ws_opcode op, uint64_t len)
{
	out[0] = 0x80 | (unsigned char)op;
	if (len < 126) {
		out[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
	unsigned char raw[18], digest[SHA1_DIGEST_LEN];
	/* RFC 6455 §4.1: the key is a base64-encoded 16-byte value, i.e. 24 characters. */
	if (key_len != 24 || base64_decode(key, key_len, raw) != 16) return -1;

	struct sha1_ctx c;
	sha1_init(&c);
	sha1_update(&c, key, key_len);
	sha1_update(&c, ws_guid, sizeof(ws_guid) - 1);
	sha1_final(&c, digest);
	base64_encode(digest, sizeof(digest), out);
	out[WS_ACCEPT_LEN] = '\0';
	return 0;
}

int ws_close_code_valid(unsigned code)
{
	if (code >= 3000 && code <= 4999) return 1;          /* registered / private */
	switch (code) {
	case 1000: case 1001: case 1002: case 1003:
	case 1007: case 1008: case 1009: case 1010: case 1011:
	case 1012: case 1013: case 1014:
		return 1;
	default:
		return 0;   /* 1004-1006 and 1015 are never sent; the rest reserved */
	}
}
