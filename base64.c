/* base64.c - RFC 4648 §4 base64 (standard alphabet, '=' padding), and the
 * RFC 4648 §5 base64url decoder without padding that JWS uses. Both decoders
 * are strict: base64_decode reads Sec-WebSocket-Key, where anything but the
 * canonical form of 16 bytes is a bad handshake (no whitespace, no URL-safe
 * alphabet, no missing padding, no non-zero pad bits, RFC 4648 §3.5), and
 * base64url_decode reads token parts, which must have one spelling only. */
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

size_t base64url_encode(const void *in, size_t len, char *out)
{
	size_t n = base64_encode(in, len, out);
	while (n && out[n - 1] == '=') n--;
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '+') out[i] = '-';
		else if (out[i] == '/') out[i] = '_';
	}
	return n;
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

/* Value of one base64url alphabet byte, or -1 (RFC 4648 §5). */
static int b64url_val(unsigned char c)
{
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	if (c == '+' || c == '/')
		return -1;
	return b64_val(c);
}

ssize_t base64url_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0, rest = len % 4;
	int v[4];

	/* One leftover character carries 6 bits: not even one byte. */
	if (rest == 1)
		return -1;
	for (i = 0; i + 4 <= len; i += 4) {
		v[0] = b64url_val(p[i]), v[1] = b64url_val(p[i + 1]);
		v[2] = b64url_val(p[i + 2]), v[3] = b64url_val(p[i + 3]);
		if ((v[0] | v[1] | v[2] | v[3]) < 0)
			return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	if (rest) {
		v[0] = b64url_val(p[i]), v[1] = b64url_val(p[i + 1]);
		v[2] = rest == 3 ? b64url_val(p[i + 2]) : 0;
		if ((v[0] | v[1] | v[2]) < 0)
			return -1;
		/* The bits past the last whole byte must be zero (RFC 4648 §3.5). */
		if (rest == 2 ? (v[1] & 15) : (v[2] & 3))
			return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (rest == 3)
			out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
	}
	return (ssize_t)o;
}
