/* sha1.h - SHA-1 (FIPS 180-4), only for the WebSocket handshake (RFC 6455 §4.2.2).
 * Not for anything that needs collision resistance. */
#ifndef KB_SHA1_H
#define KB_SHA1_H
#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20

struct sha1_ctx {
	uint32_t h[5];
	uint64_t nbytes;       /* total bytes hashed so far */
	unsigned char block[64];
	size_t used;           /* bytes waiting in block */
};

void sha1_init(struct sha1_ctx *c);
void sha1_update(struct sha1_ctx *c, const void *data, size_t len);
void sha1_final(struct sha1_ctx *c, unsigned char out[SHA1_DIGEST_LEN]);
/* One-shot convenience. */
void sha1(const void *data, size_t len, unsigned char out[SHA1_DIGEST_LEN]);
#endif
