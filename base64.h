/* base64.h - RFC 4648 §4 base64 with padding (encode and strict decode). */
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
#endif
