/* test_sha1.c - SHA-1 against FIPS 180 / NIST example vectors, padding
 * boundary lengths (55, 56, 63, 64 ... bytes, checked against an independent
 * implementation), the RFC 6455 §1.3 handshake example, and incremental
 * updates split at every point of an input that spans several blocks. */
#include <stdlib.h>

#include "check.h"
#include "sha1.h"

static void hex(const unsigned char d[SHA1_DIGEST_LEN], char out[41])
{
	static const char x[] = "0123456789abcdef";
	int i;

	for (i = 0; i < SHA1_DIGEST_LEN; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[40] = '\0';
}

static void check_oneshot(const void *data, size_t len, const char *want, int line)
{
	unsigned char d[SHA1_DIGEST_LEN];
	char h[41];

	sha1(data, len, d);
	hex(d, h);
	CHECKF(strcmp(h, want) == 0, "line %d: len %zu: got %s want %s", line, len, h, want);
}

#define ONESHOT(s, want) check_oneshot(s, strlen(s), want, __LINE__)

static void test_vectors(void)
{
	static const struct { size_t n; const char *want; } as[] = {
		{ 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a" },
		{ 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699" },
		{ 57, "f08f24908d682555111be7ff6f004e78283d989a" },
		{ 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5" },
		{ 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d" },
		{ 65, "11655326c708d70319be2610e8a57d9a5b959d3b" },
		{ 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56" },
		{ 120, "f34c1488385346a55709ba056ddd08280dd4c6d6" },
		{ 128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0" },
	};
	char a[128];
	size_t i;

	ONESHOT("", "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	ONESHOT("abc", "a9993e364706816aba3e25717850c26c9cd0d89d");
	ONESHOT("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		"84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	ONESHOT("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		"a49b2446a02c645bf419f995b67091253a04a259");
	/* RFC 6455 §1.3: key + GUID, whose base64 digest is s3pPLMBiTxaQ9kYGzzhZRbK+xOo= */
	ONESHOT("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
		"b37a4f2cc0624f1690f64606cf385945b2bec4ea");
	memset(a, 'a', sizeof a);
	for (i = 0; i < sizeof as / sizeof as[0]; i++)
		check_oneshot(a, as[i].n, as[i].want, __LINE__);
}

static void test_million_a(void)
{
	struct sha1_ctx c;
	unsigned char d[SHA1_DIGEST_LEN];
	char chunk[1000], h[41];
	char *big;
	int i;

	/* In 1000-byte updates ... */
	memset(chunk, 'a', sizeof chunk);
	sha1_init(&c);
	for (i = 0; i < 1000; i++)
		sha1_update(&c, chunk, sizeof chunk);
	sha1_final(&c, d);
	hex(d, h);
	CHECK_MEM(h, strlen(h), "34aa973cd4c4daa4f61eeb2bdbad27316534016f", 40);

	/* ... and in one call. */
	big = malloc(1000000);
	CHECK(big != NULL);
	if (!big)
		return;
	memset(big, 'a', 1000000);
	check_oneshot(big, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f", __LINE__);
	free(big);
}

static void test_incremental(void)
{
	/* 768 bytes: twelve blocks, so splits land everywhere within a block. */
	static const char want[] = "ac2a264c8ec1f4232a40854e8239bc3a697ab1d2";
	unsigned char in[768], d[SHA1_DIGEST_LEN];
	struct sha1_ctx c;
	char h[41];
	size_t i, j, bad = 0;

	for (i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)i;
	for (i = 0; i <= sizeof in; i++) {
		sha1_init(&c);
		sha1_update(&c, in, i);
		sha1_update(&c, in + i, sizeof in - i);
		sha1_final(&c, d);
		hex(d, h);
		bad += strcmp(h, want) != 0;
	}
	CHECKF(bad == 0, "%zu of %zu two-way splits wrong", bad, sizeof in + 1);

	/* Three pieces, with an empty update in between for good measure. */
	bad = 0;
	for (i = 0; i <= 200; i += 7)
		for (j = i; j <= sizeof in; j += 13) {
			sha1_init(&c);
			sha1_update(&c, in, i);
			sha1_update(&c, in + i, 0);
			sha1_update(&c, in + i, j - i);
			sha1_update(&c, in + j, sizeof in - j);
			sha1_final(&c, d);
			hex(d, h);
			bad += strcmp(h, want) != 0;
		}
	CHECKF(bad == 0, "%zu three-way splits wrong", bad);

	sha1_init(&c);
	for (i = 0; i < sizeof in; i++)
		sha1_update(&c, in + i, 1);
	sha1_final(&c, d);
	hex(d, h);
	CHECK_MEM(h, strlen(h), want, 40);
}

int main(void)
{
	test_vectors();
	test_million_a();
	test_incremental();
	return check_summary("sha1");
}
