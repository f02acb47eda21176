/* fuzz_pmd.c - libFuzzer target for pmd.c (permessage-deflate, RFC 7692).
 * The first byte picks what the rest is (its value mod 8, so the seeds'
 * ASCII '0'..'4' read as modes; 5..7 are modes 1..3 again):
 *   0  a Sec-WebSocket-Extensions value for pmd_offer: an accepted offer has
 *      a window 9..15 (15 unless named), its pmd_answer fits 128 bytes and
 *      reads back as the same offer, and garbage after it changes nothing;
 *   1  a compressed client message for pmd_inflate under a small limit (the
 *      second byte sets it), judged against zlib inflating the same bytes
 *      + 00 00 ff ff: what pmd_inflate accepts is exactly zlib's output and
 *      ends at a block boundary, what zlib reads whole within the limit is
 *      accepted, what zlib refuses or leaves mid-block is bad data;
 *   2  a message for pmd_deflate at the window the second byte picks: it
 *      never ends with 00 00 ff ff, zlib inflates it at that window, and
 *      pmd_inflate gives the message back;
 *   3  a message split where the second byte says: a stored block of the
 *      head, then the body compressed, inflates to the whole message;
 *   4  a message compressed by zlib (window, sync flush or final block as
 *      the third byte says), then cut short or one byte changed, then
 *      judged as in mode 1 under the limit the second byte sets: damage
 *      where real streams have structure, which random bytes rarely reach.
 * Every input is an exact-size heap copy, so ASan sees a read past it.
 * Build: make fuzz-build (pmd.c is in FUZZ_LIB; links -lz). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

static unsigned char *dup_exact(const void *p, size_t n)
{
	unsigned char *c = malloc(n ? n : 1);
	ASSERT(c);
	if (n) memcpy(c, p, n);
	return c;
}

/* ---- mode 0: offers ------------------------------------------------------ */

static int offer(const void *v, size_t n, struct pmd_params *p)
{
	unsigned char *c = dup_exact(v, n);
	int r = pmd_offer((const char *)c, n, p);
	free(c);
	ASSERT(r == 0 || r == 1);
	return r;
}

static void fuzz_offer(const uint8_t *v, size_t n)
{
	struct pmd_params p, q;
	char ans[128];
	int len;

	if (!offer(v, n, &p))
		return;
	ASSERT(p.server_bits >= PMD_MIN_BITS && p.server_bits <= PMD_MAX_BITS);
	ASSERT(p.server_bits_named == 0 || p.server_bits_named == 1);
	ASSERT(p.server_bits_named || p.server_bits == 15);
	len = pmd_answer(&p, ans, sizeof(ans));
	ASSERT(len > 0 && (size_t)len == strlen(ans));
	ASSERT(!strncmp(ans, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 74));
	ASSERT(offer(ans, (size_t)len, &q) == 1);
	ASSERT(q.server_bits == p.server_bits && q.server_bits_named == p.server_bits_named);
	ASSERT(pmd_answer(&p, ans, (size_t)len) == -1);
	/* An offer already accepted stays accepted whatever follows it. */
	if (n < 4096) {
		unsigned char *more = malloc(n + 3);
		ASSERT(more);
		memcpy(more, v, n);
		memcpy(more + n, ", \x01", 3);
		ASSERT(offer(more, n + 3, &q) == 1);
		ASSERT(q.server_bits == p.server_bits && q.server_bits_named == p.server_bits_named);
		free(more);
	}
}

/* ---- mode 1: inflating against zlib --------------------------------------- */

/* REF_FINAL00: a final block, then one 00 byte, then the tail: RFC 7692
 * §7.2.3.4's shape, which pmd.h's "anything after it" would refuse;
 * test_pmd pins the answer, this target takes either. */
enum ref_status { REF_COMPLETE, REF_INCOMPLETE, REF_ERROR, REF_OVER, REF_FINAL00 };

/* zlib's reading of in + tail at window 15, at most cap bytes (+1 to see
 * past it) into out. */
static enum ref_status ref_inflate(const unsigned char *in, size_t len, unsigned char *out, size_t cap,
				   size_t *outlen)
{
	unsigned char *buf = malloc(len + 4);
	z_stream z;
	enum ref_status st;
	int rc;

	ASSERT(buf);
	memcpy(buf, in, len);
	memcpy(buf + len, tail, 4);
	memset(&z, 0, sizeof(z));
	ASSERT(inflateInit2(&z, -15) == Z_OK);
	z.next_in = buf;
	z.avail_in = (uInt)(len + 4);
	z.next_out = out;
	z.avail_out = (uInt)(cap + 1);
	for (;;) {
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			/* A final block may end inside the tail: the message plus
			 * the tail is a whole stream, so it inflates. */
			st = z.avail_in <= 4 ? REF_COMPLETE :
			     z.avail_in == 5 && buf[len - 1] == 0 ? REF_FINAL00 : REF_ERROR;
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) { st = REF_ERROR; break; }
		if (z.avail_out == 0) { st = REF_OVER; break; }
		if (z.avail_in == 0) { st = (z.data_type & 128) ? REF_COMPLETE : REF_INCOMPLETE; break; }
		if (rc == Z_BUF_ERROR) { st = REF_INCOMPLETE; break; }
	}
	*outlen = cap + 1 - z.avail_out;
	if (*outlen > cap)
		st = REF_OVER;        /* past cap before whatever else */
	inflateEnd(&z);
	free(buf);
	return st;
}

static void fuzz_inflate(const uint8_t *d, size_t n)
{
	size_t limit, reflen, outlen = 0;
	const unsigned char *out = NULL;
	unsigned char *ref, *c;
	enum pmd_inflate_result r;
	enum ref_status st;

	if (n < 1)
		return;
	limit = (size_t)d[0] * 16;             /* 0..4080 */
	d++, n--;
	ref = malloc(limit + 1);
	ASSERT(ref);
	st = ref_inflate(d, n, ref, limit, &reflen);
	c = dup_exact(d, n);
	r = pmd_inflate(c, n, limit, &out, &outlen);
	free(c);
	ASSERT(r == PMD_OK || r == PMD_TOO_BIG || r == PMD_BAD_DATA || r == PMD_NO_MEMORY);
	if (r == PMD_OK) {
		ASSERT(outlen <= limit);
		ASSERT(n == 0 || ((st == REF_COMPLETE || st == REF_FINAL00) && outlen == reflen));
		ASSERT(outlen == 0 || memcmp(out, ref, outlen) == 0);
	}
	if (n && st == REF_COMPLETE)
		ASSERT(r == PMD_OK);
	if (st == REF_OVER)
		ASSERT(r == PMD_TOO_BIG || r == PMD_BAD_DATA);
	if (st == REF_FINAL00)
		ASSERT(r == PMD_OK || r == PMD_BAD_DATA);
	if (n && (st == REF_ERROR || st == REF_INCOMPLETE))
		ASSERT(r == PMD_BAD_DATA);
	free(ref);
}

/* ---- modes 2 and 3: compressing ------------------------------------------- */

/* zlib inflates c at window bits to exactly want. */
static void zlib_reads(unsigned bits, const unsigned char *c, size_t cn, const void *want, size_t wn)
{
	unsigned char *buf = malloc(cn + 4), *out = malloc(wn + 1);
	z_stream z;
	int rc;

	ASSERT(buf && out);
	memcpy(buf, c, cn);
	memcpy(buf + cn, tail, 4);
	memset(&z, 0, sizeof(z));
	ASSERT(inflateInit2(&z, -(int)bits) == Z_OK);
	z.next_in = buf;
	z.avail_in = (uInt)(cn + 4);
	z.next_out = out;
	z.avail_out = (uInt)(wn + 1);
	rc = inflate(&z, Z_SYNC_FLUSH);
	ASSERT(rc == Z_OK || (rc == Z_BUF_ERROR && wn == 0));
	ASSERT(z.avail_in == 0 && (z.data_type & 128) && wn + 1 - z.avail_out == wn);
	ASSERT(wn == 0 || memcmp(out, want, wn) == 0);
	inflateEnd(&z);
	free(buf);
	free(out);
}

static void fuzz_deflate(const uint8_t *d, size_t n)
{
	const unsigned char *out, *inf;
	unsigned char *c, *m;
	size_t inflen;
	unsigned bits;
	ssize_t r;

	if (n < 1)
		return;
	bits = PMD_MIN_BITS + d[0] % PMD_VARIANTS;
	d++, n--;
	m = dup_exact(d, n);
	r = pmd_deflate(bits, m, n, &out);
	ASSERT(r > 0);
	ASSERT(r < 4 || memcmp(out + r - 4, tail, 4) != 0);
	c = dup_exact(out, (size_t)r);
	zlib_reads(bits, c, (size_t)r, d, n);
	ASSERT(pmd_inflate(c, (size_t)r, n, &inf, &inflen) == PMD_OK && inflen == n);
	ASSERT(n == 0 || memcmp(inf, d, n) == 0);
	if (n)
		ASSERT(pmd_inflate(c, (size_t)r, n - 1, &inf, &inflen) == PMD_TOO_BIG);
	/* No context takeover: the same message gives the same bytes again. */
	ASSERT(pmd_deflate(bits, m, n, &out) == r && memcmp(out, c, (size_t)r) == 0);
	free(c);
	free(m);
}

static void fuzz_stored(const uint8_t *d, size_t n)
{
	const unsigned char *body, *inf;
	unsigned char *msg;
	size_t head, mn, inflen;
	ssize_t r;

	if (n < 1)
		return;
	head = d[0];
	d++, n--;
	if (head > n)
		head = n;
	r = pmd_deflate(15, d + head, n - head, &body);
	ASSERT(r > 0);
	msg = malloc(head + PMD_STORED_OVERHEAD + (size_t)r);
	ASSERT(msg);
	mn = pmd_stored_block(msg, d, head);
	ASSERT(mn == head + PMD_STORED_OVERHEAD);
	ASSERT(msg[0] == 0 && msg[1] == (head & 0xff) && msg[2] == head >> 8 && msg[3] == (~head & 0xff) &&
	       msg[4] == ((~head >> 8) & 0xff) && memcmp(msg + 5, d, head) == 0);
	memcpy(msg + mn, body, (size_t)r);
	mn += (size_t)r;
	zlib_reads(15, msg, mn, d, n);
	ASSERT(pmd_inflate(msg, mn, n, &inf, &inflen) == PMD_OK && inflen == n);
	ASSERT(n == 0 || memcmp(inf, d, n) == 0);
	free(msg);
}

/* d: limit/16, how, where, then the message. how: bits 0-2 the window
 * (9 + how % 7), bit 3 a final block (Z_FINISH) instead of a sync flush,
 * bits 4-5: 0 as is, 1 cut to where/256 of its length, 2 the byte at
 * where/256 of its length xor the message's first byte (or 0x5a), 3 both. */
static void fuzz_damaged(const uint8_t *d, size_t n)
{
	unsigned char *z, *in;
	unsigned how, where;
	size_t zn, cap;
	z_stream s;
	int bits;

	if (n < 3)
		return;
	how = d[1];
	where = d[2];
	bits = 9 + (int)(how & 7) % 7;
	memset(&s, 0, sizeof(s));
	ASSERT(deflateInit2(&s, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	cap = deflateBound(&s, n - 3) + 16;
	z = malloc(1 + cap);
	ASSERT(z);
	z[0] = d[0];                           /* the limit byte, as mode 1 reads it */
	s.next_in = (Bytef *)(uintptr_t)(d + 3);
	s.avail_in = (uInt)(n - 3);
	s.next_out = z + 1;
	s.avail_out = (uInt)cap;
	ASSERT(deflate(&s, how & 8 ? Z_FINISH : Z_SYNC_FLUSH) == (how & 8 ? Z_STREAM_END : Z_OK));
	zn = cap - s.avail_out;
	deflateEnd(&s);
	if (!(how & 8)) {
		ASSERT(zn >= 4 && memcmp(z + 1 + zn - 4, tail, 4) == 0);
		zn -= 4;
	}
	if (how & 0x20 && zn)
		z[1 + (size_t)where * zn / 256] ^= n > 3 && d[3] ? d[3] : 0x5a;
	if (how & 0x10)
		zn = (size_t)where * zn / 256;
	in = dup_exact(z, 1 + zn);
	free(z);
	fuzz_inflate(in, 1 + zn);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] % 8;
	switch (mode > 4 ? mode - 4 : mode) {
	case 0: fuzz_offer(data + 1, size - 1); break;
	case 1: fuzz_inflate(data + 1, size - 1); break;
	case 2: fuzz_deflate(data + 1, size - 1); break;
	case 3: fuzz_stored(data + 1, size - 1); break;
	default: fuzz_damaged(data + 1, size - 1); break;
	}
	return 0;
}
