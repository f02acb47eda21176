/* pmd.h - permessage-deflate (RFC 7692): reading a client's offers and
 * writing the answer of the opening handshake, compressing one whole
 * message with no context takeover, and inflating one client message under
 * a bound. One zlib stream per window size for the whole process, reset
 * for every message: no connection owns any zlib state
 * (docs/protocol.md#compression).
 * Knows bytes and RFC 7692's rules, not clients or frames. */
#ifndef KB_PMD_H
#define KB_PMD_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PMD_MIN_BITS 9    /* zlib's raw deflate cannot keep to a 256-byte window (8) */
#define PMD_MAX_BITS 15
#define PMD_VARIANTS (PMD_MAX_BITS - PMD_MIN_BITS + 1)

/* The accepted offer: the window kbridge compresses with, and whether the
 * client named server_max_window_bits (then the answer must carry it). */
struct pmd_params {
	uint8_t server_bits;      /* PMD_MIN_BITS..PMD_MAX_BITS */
	uint8_t server_bits_named;
};

/* Reads one Sec-WebSocket-Extensions field value (RFC 7692 §5, RFC 6455
 * §9.1: a comma list of offers, each `name *(; param[=value])`, values a
 * token or a quoted-string). Returns 1 and fills out at the first
 * permessage-deflate offer kbridge can honour; 0 when there is none (other
 * extensions, offers with an unknown, repeated or invalid parameter,
 * server_max_window_bits=8) or the field breaks the grammar from some
 * point on (the offers before that point still count). */
int pmd_offer(const char *value, size_t len, struct pmd_params *out);

/* The answer's Sec-WebSocket-Extensions value for p, NUL-terminated in out.
 * Always server_no_context_takeover and client_no_context_takeover.
 * Returns its length, or -1 when cap is too small (PMD_ANSWER_MAX suffices). */
int pmd_answer(const struct pmd_params *p, char *out, size_t cap);
#define PMD_ANSWER_MAX 128

/* The window to compress len bytes with for a client that allows `bits`:
 * the smallest one (from PMD_MIN_BITS) that already reaches across the
 * whole message. Output made with a smaller window is valid for any larger
 * one (RFC 7692 §7.1.2.1), so clients of every window the message fits
 * share one compressed copy, and a client cannot multiply the work of a
 * short record by choosing windows. */
unsigned pmd_window(unsigned bits, size_t len);

/* Compresses one message with a window of `bits` (RFC 7692 §7.2.1: raw
 * DEFLATE, flushed, the 4-byte 00 00 ff ff tail removed). *out points to
 * a buffer of this module, valid until the next pmd_deflate call. Returns
 * the compressed length, or -1 when out of memory or zlib fails. */
ssize_t pmd_deflate(unsigned bits, const void *in, size_t len, const unsigned char **out);

/* A DEFLATE stored block holding len bytes of p (len <= 65535), written to
 * out (len + 5 bytes): a message's first bytes, sent uncompressed, ahead
 * of a shared compressed body (RFC 1951 §3.2.4). Returns the bytes written. */
size_t pmd_stored_block(unsigned char *out, const void *p, size_t len);
#define PMD_STORED_OVERHEAD 5

enum pmd_inflate_result {
	PMD_OK = 0,
	PMD_TOO_BIG = -1,     /* inflates past the limit: close 1009 */
	PMD_BAD_DATA = -2,    /* not valid DEFLATE data: close 1007 */
	PMD_NO_MEMORY = -3,   /* close 1011 */
};

/* Inflates one client message (its frames' payloads joined) with the tail
 * of RFC 7692 §7.2.2 appended. At most `limit` bytes come out; *out then
 * points to them, in a buffer of this module valid until the next
 * pmd_inflate call, and *outlen says how many. A final block (BFINAL)
 * ends the data: anything after it but the empty stored block of RFC 7692
 * §7.2.1 is bad data. An empty input is an empty message. Limits past
 * UINT32_MAX - 1 count as that. */
enum pmd_inflate_result pmd_inflate(const unsigned char *in, size_t len, size_t limit,
				    const unsigned char **out, size_t *outlen);

/* Gives back a buffer grown past 1 MiB by the last message, once its
 * result is no longer needed: one huge message does not stay resident. */
void pmd_trim(void);

/* Frees the module's zlib streams and buffers (tests, sanitizer runs). */
void pmd_free(void);
#endif
