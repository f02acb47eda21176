/* base64.c - RFC 4648 §4 base64 (standard alphabet, '=' padding). The decoder
 * is strict because it only reads Sec-WebSocket-Key, where anything but the
 * canonical form of 16 bytes is a bad handshake: no whitespace, no URL-safe
 * alphabet, no missing padding, no non-zero pad bits (RFC 4648 §3.5). */
#include "base64.h"

#include <stdint.h>

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	char *o = out;
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64_alpha[v >> 18];
		*o++ = b64_alpha[(v >> 12) & 63];
		*o++ = b64_alpha[(v >> 6) & 63];
		*o++ = b64_alpha[v & 63];
	}
	if (len - i == 1) {
		*o++ = b64_alpha[p[i] >> 2];
		*o++ = b64_alpha[(p[i] & 3) << 4];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
		*o++ = b64_alpha[v >> 10];
		*o++ = b64_alpha[(v >> 4) & 63];
		*o++ = b64_alpha[(v & 15) << 2];
		*o++ = '=';
	}
	return (size_t)(o - out);
}

/* Value of one alphabet byte, or -1 ('=' included: callers handle padding). */
static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t base64_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0;

	if (len % 4)
		return -1;
	for (i = 0; i < len; i += 4) {
		int a = b64_val(p[i]), b = b64_val(p[i + 1]);
		int c = b64_val(p[i + 2]), d = b64_val(p[i + 3]);
		int last = i + 4 == len;

		if (a < 0 || b < 0)
			return -1;
		if (c < 0 || d < 0) {
			/* Padding may only end the input: "xx==" or "xxx=". */
			if (!last || p[i + 3] != '=')
				return -1;
			if (c < 0) {
				if (p[i + 2] != '=' || (b & 15))
					return -1;  /* RFC 4648 §3.5: pad bits must be zero */
				out[o++] = (unsigned char)(a << 2 | b >> 4);
			} else {
				if (c & 3)
					return -1;
				out[o++] = (unsigned char)(a << 2 | b >> 4);
				out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
			}
			break;
		}
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	return (ssize_t)o;
}
