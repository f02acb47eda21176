/* base64.h - RFC 4648 §4 base64 with padding (encode and strict decode), and
 * RFC 4648 §5 base64url without padding: the strict decoder JWS needs (RFC
 * 7515) and the encoder of SSE position tokens. */
#ifndef KB_BASE64_H
#define KB_BASE64_H
#include <stddef.h>
#include <sys/types.h>

/* Bytes needed to encode n input bytes (no NUL terminator counted). */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Encodes len bytes of in into out (BASE64_ENCODED_LEN(len) bytes, no NUL);
 * returns the number of bytes written. */
size_t base64_encode(const void *in, size_t len, char *out);

/* Strict decode: padding required, no whitespace, no non-alphabet bytes, and
 * non-zero trailing bits are rejected. out needs (len / 4) * 3 bytes.
 * Returns decoded length, or -1 on invalid input. */
ssize_t base64_decode(const char *in, size_t len, unsigned char *out);

/* Encodes len bytes as base64url without padding (RFC 4648 §5) into out
 * (BASE64_ENCODED_LEN(len) bytes suffice, no NUL); returns the bytes
 * written. */
size_t base64url_encode(const void *in, size_t len, char *out);

/* Bytes base64url_decode writes at most for len input bytes. */
#define BASE64URL_DECODED_LEN(len) ((len) / 4 * 3 + (len) % 4 * 3 / 4)

/* Strict base64url decode as JWS uses it (RFC 7515 §2): the URL-safe
 * alphabet ('-' and '_'), no padding, no whitespace, no length of 4k+1,
 * and non-zero trailing bits are rejected, so each byte string has exactly
 * one accepted text. out needs BASE64URL_DECODED_LEN(len) bytes. Returns
 * the decoded length, or -1 on invalid input. */
ssize_t base64url_decode(const char *in, size_t len, unsigned char *out);
#endif
