/* ws.h - RFC 6455 primitives: the opening handshake's accept key, an
 * incremental frame-header parser for client frames, the server frame-header
 * encoder, unmasking and close-code rules. Pure functions: the connection
 * state machine (fragmentation, UTF-8 across fragments, close handshake)
 * is session.c's. */
#ifndef KB_WS_H
#define KB_WS_H
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
	WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA
};

/* Close codes (RFC 6455 §7.4.1). */
enum {
	WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_BAD_DATA = 1007, WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_INTERNAL = 1011
};

#define WS_MAX_HEADER 14         /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_SERVER_HEADER 10  /* server frames are unmasked */
#define WS_MAX_CONTROL 125       /* RFC 6455 §5.5: control payloads */
#define WS_ACCEPT_LEN 28         /* base64 of a SHA-1 digest */

struct ws_frame {
	unsigned fin : 1, rsv1 : 1, masked : 1, opcode : 4;   /* rsv1: compressed (RFC 7692 §6) */
	unsigned char mask[4];
	uint64_t len;      /* payload length */
	size_t hdr_len;    /* bytes of header, mask key included */
};

/* Parses the header of a client frame at buf[0..len). Returns the header
 * length (> 0) when complete, 0 when more bytes are needed, or a negative
 * close code when the header alone breaks RFC 6455: -1002 for RSV2 or RSV3,
 * RSV1 on a control frame (RFC 7692 §6.1), unknown opcodes, fragmented or
 * oversized control frames, an unmasked frame (RFC 6455 §5.1) or a 64-bit
 * length with its high bit set. RSV1 on a data frame is left in f->rsv1
 * for the caller, who knows whether permessage-deflate was negotiated. */
int ws_parse_header(const unsigned char *buf, size_t len, struct ws_frame *f);

/* Unmasks n payload bytes in place; `offset` is the position of p[0] within
 * the frame's payload, so a payload can be unmasked in pieces. */
void ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset);

/* RSV1 on a server frame: its payload is compressed (RFC 7692 §6); or'ed
 * into the opcode given to ws_header_encode. */
#define WS_RSV1 0x40

/* Writes an unmasked, final server frame header for a payload of len bytes
 * into out (up to WS_MAX_SERVER_HEADER bytes); returns its length. op may
 * carry WS_RSV1. */
size_t ws_header_encode(unsigned char *out, enum ws_opcode op, uint64_t len);
/* Header length ws_header_encode would write. */
size_t ws_header_len(uint64_t len);

/* Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2) into out
 * (WS_ACCEPT_LEN bytes + NUL). Returns -1 when the key is not the base64 of
 * exactly 16 bytes, as RFC 6455 §4.1 requires. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* 1 if a peer may send this code in a close frame (RFC 6455 §7.4; 1012-1014 from the
 * IANA registry accepted too), else 0. */
int ws_close_code_valid(unsigned code);
#endif
