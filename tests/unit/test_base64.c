/* test_base64.c - RFC 4648 §10 vectors in both directions, the RFC 6455
 * handshake key, round trips of every length up to 64, and every invalid
 * form the strict decoder must refuse: bad length, non-alphabet bytes,
 * whitespace, misplaced or partial padding, and non-zero pad bits (RFC 4648 §3.5).
 * base64url (RFC 4648 §5, unpadded as RFC 7515 §2 uses it): the same vectors
 * without padding, agreement with the padded decoder over every length and
 * byte value, and every form it must refuse (padding, '+' and '/', a lone
 * trailing character, non-zero trailing bits). base64url_encode: the same
 * vectors unpadded, bytes that give '-' and '_', its length for every
 * input length, nothing written past BASE64_ENCODED_LEN, and round trips
 * through base64url_decode of pseudo-random bytes of every length 0..64
 * and of every single byte value. */
#include <stdint.h>

#include "base64.h"
#include "check.h"

static void enc(const char *in, const char *want, int line)
{
	char out[64];
	size_t n = base64_encode(in, strlen(in), out);

	CHECKF(n == strlen(want) && n == BASE64_ENCODED_LEN(strlen(in)) && memcmp(out, want, n) == 0,
	       "line %d: encode \"%s\" gave %.*s", line, in, (int)n, out);
}

static void dec(const char *in, const char *want, int line)
{
	unsigned char out[64];
	ssize_t n = base64_decode(in, strlen(in), out);

	CHECKF(n >= 0 && (size_t)n == strlen(want) && memcmp(out, want, (size_t)n) == 0,
	       "line %d: decode \"%s\" gave %zd", line, in, n);
}

static void bad(const char *in, int line)
{
	unsigned char out[64];
	ssize_t n = base64_decode(in, strlen(in), out);

	CHECKF(n == -1, "line %d: \"%s\" decoded to %zd bytes, want -1", line, in, n);
}

#define VEC(plain, coded) do { enc(plain, coded, __LINE__); dec(coded, plain, __LINE__); } while (0)
#define BAD(s) bad(s, __LINE__)

static void url_dec(const char *in, const char *want, int line)
{
	unsigned char out[64];
	ssize_t n = base64url_decode(in, strlen(in), out);

	CHECKF(n >= 0 && (size_t)n == strlen(want) && memcmp(out, want, (size_t)n) == 0,
	       "line %d: base64url \"%s\" gave %zd", line, in, n);
	CHECKF((size_t)n == BASE64URL_DECODED_LEN(strlen(in)), "line %d: BASE64URL_DECODED_LEN(%zu) is %zu, wrote %zd",
	       line, strlen(in), (size_t)BASE64URL_DECODED_LEN(strlen(in)), n);
}

static void url_bad(const char *in, int line)
{
	unsigned char out[64];
	ssize_t n = base64url_decode(in, strlen(in), out);

	CHECKF(n == -1, "line %d: base64url \"%s\" decoded to %zd bytes, want -1", line, in, n);
}
#define URL_DEC(coded, plain) url_dec(coded, plain, __LINE__)
#define URL_BAD(s) url_bad(s, __LINE__)

/* base64url by way of the standard alphabet: s with '-' '_' mapped to
 * '+' '/' (and '+' '/' '=' to a byte neither takes) and padding added must
 * decode to the same bytes, or both decoders must refuse it. */
static int url_agrees(const char *s, size_t n)
{
	char std[96];
	unsigned char a[64], b[64];
	ssize_t na, nb;
	size_t i;

	for (i = 0; i < n; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : strchr("+/=", s[i]) && s[i] ? '*' : s[i];
	while (i % 4)
		std[i++] = '=';
	na = base64url_decode(s, n, a);
	nb = n % 4 == 1 ? -1 : base64_decode(std, i, b);
	return na == nb && (na < 0 || memcmp(a, b, (size_t)na) == 0);
}

static void url_enc(const char *in, const char *want, int line)
{
	char out[64];
	memset(out, 0x5a, sizeof(out));
	size_t n = base64url_encode(in, strlen(in), out);
	CHECKF(n == strlen(want) && memcmp(out, want, n) == 0, "line %d: base64url_encode \"%s\" gave %.*s", line, in,
	       (int)n, out);
	CHECKF((unsigned char)out[BASE64_ENCODED_LEN(strlen(in))] == 0x5a, "line %d: wrote past BASE64_ENCODED_LEN", line);
}
#define URL_ENC(plain, coded) url_enc(plain, coded, __LINE__)

static void test_url_encode(void)
{
	unsigned char raw[65], back[65];
	char txt[BASE64_ENCODED_LEN(65) + 8];
	size_t fails = 0;

	/* RFC 4648 §10, unpadded (RFC 4648 §5, RFC 7515 §2) */
	URL_ENC("", "");
	URL_ENC("f", "Zg");
	URL_ENC("fo", "Zm8");
	URL_ENC("foo", "Zm9v");
	URL_ENC("foob", "Zm9vYg");
	URL_ENC("fooba", "Zm9vYmE");
	URL_ENC("foobar", "Zm9vYmFy");
	URL_ENC("{\"alg\":\"HS256\"}", "eyJhbGciOiJIUzI1NiJ9");
	/* 62 and 63 are '-' and '_', in every position of a quad and a tail. */
	{
		static const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
		CHECK(base64url_encode(hi, 3, txt) == 4 && memcmp(txt, "-_-_", 4) == 0);
		CHECK(base64url_encode(hi, 1, txt) == 2 && memcmp(txt, "-w", 2) == 0);
		CHECK(base64url_encode(hi, 2, txt) == 3 && memcmp(txt, "-_8", 3) == 0);
		static const unsigned char ff[] = { 0xff, 0xff, 0xff, 0xff };
		CHECK(base64url_encode(ff, 4, txt) == 6 && memcmp(txt, "_____w", 6) == 0);
		static const unsigned char f8[] = { 0x03, 0xef, 0xbe };
		CHECK(base64url_encode(f8, 3, txt) == 4 && memcmp(txt, "A---", 4) == 0);
		static const unsigned char z[] = { 0, 0 };
		CHECK(base64url_encode(z, 2, txt) == 3 && memcmp(txt, "AAA", 3) == 0);
	}
	/* Pseudo-random bytes of every length 0..64: the unpadded length, only
	 * the URL-safe alphabet, nothing past BASE64_ENCODED_LEN, the same text
	 * as the padded encoder's translated, and base64url_decode gives the
	 * bytes back. */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t len = 0; len <= 64; len++) {
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			raw[i] = (unsigned char)(x >> 24);
		}
		char std[BASE64_ENCODED_LEN(65)];
		memset(txt, 0x5a, sizeof(txt));
		size_t n = base64url_encode(raw, len, txt), sn = base64_encode(raw, len, std), bad = 0;
		fails += n != (len * 4 + 2) / 3 || (unsigned char)txt[BASE64_ENCODED_LEN(len)] != 0x5a;
		for (size_t i = 0; i < n; i++) {
			char want = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];
			bad += txt[i] != want || !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", txt[i]) ||
			       txt[i] == 0;
		}
		fails += bad || (sn != n && std[n] != '=');
		ssize_t m = base64url_decode(txt, n, back);
		fails += m != (ssize_t)len || memcmp(raw, back, len) != 0;
	}
	CHECKF(fails == 0, "%zu base64url_encode failures over lengths 0..64", fails);
	fails = 0;
	for (unsigned v = 0; v < 256; v++) {
		unsigned char c = (unsigned char)v;
		size_t n = base64url_encode(&c, 1, txt);
		fails += n != 2 || base64url_decode(txt, 2, back) != 1 || back[0] != c;
		raw[0] = 0x11, raw[1] = c, raw[2] = (unsigned char)~v;
		n = base64url_encode(raw, 3, txt);
		fails += n != 4 || base64url_decode(txt, 4, back) != 3 || memcmp(raw, back, 3) != 0;
	}
	CHECKF(fails == 0, "%zu byte values failed the round trip", fails);
}

int main(void)
{
	unsigned char raw[64], back[64];
	char txt[BASE64_ENCODED_LEN(64)];
	size_t len, i, fails = 0;
	const char *p;

	/* RFC 4648 §10 */
	VEC("", "");
	VEC("f", "Zg==");
	VEC("fo", "Zm8=");
	VEC("foo", "Zm9v");
	VEC("foob", "Zm9vYg==");
	VEC("fooba", "Zm9vYmE=");
	VEC("foobar", "Zm9vYmFy");
	/* RFC 6455 §1.3 sample nonce: 16 bytes, and the accept value */
	dec("dGhlIHNhbXBsZSBub25jZQ==", "the sample nonce", __LINE__);
	CHECK(base64_decode("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28, raw) == 20);
	/* '+' and '/' both ways */
	{
		static const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
		char o[4];
		CHECK(base64_encode(hi, 3, o) == 4 && memcmp(o, "+/+/", 4) == 0);
		CHECK(base64_decode("+/+/", 4, raw) == 3 && memcmp(raw, hi, 3) == 0);
	}

	/* Round trip of every length 0..64 over all byte values. */
	for (len = 0; len <= 64; len++) {
		ssize_t n;
		for (i = 0; i < len; i++)
			raw[i] = (unsigned char)(i * 37 + len * 101);
		n = (ssize_t)base64_encode(raw, len, txt);
		fails += (size_t)n != BASE64_ENCODED_LEN(len);
		n = base64_decode(txt, (size_t)n, back);
		fails += n != (ssize_t)len || memcmp(raw, back, len) != 0;
	}
	CHECKF(fails == 0, "%zu round-trip failures", fails);

	/* Length not a multiple of 4 */
	BAD("Z");
	BAD("Zg");
	BAD("Zg=");
	BAD("Zm9vY");
	BAD("Zm9vYg=");
	BAD("Zm9vYg===");
	/* Missing padding (RFC 4648 allows it only when a spec says so) */
	BAD("Zm8");
	BAD("Zm9vYg");
	/* Bytes outside the alphabet, in every position of a quad */
	BAD("Zm9*");
	BAD("*m9v");
	BAD("Z*9v");
	BAD("Zm*v");
	BAD("Zm9v\n");
	BAD("Zm9 v");
	BAD("Zm9-");      /* URL-safe alphabet */
	BAD("Zm9_");
	BAD("Zm9v Zm9v");
	/* Misplaced padding */
	BAD("====");
	BAD("=m9v");
	BAD("Z===");
	BAD("Zg=v");      /* pad then data */
	BAD("Zg==Zm9v");  /* padding before the last quad */
	BAD("Zm8=Zm9v");
	BAD("Zm9v=Zg=");
	/* Non-zero trailing (pad) bits, RFC 4648 §3.5: canonical "Zg==" and "Zm8=" */
	BAD("Zh==");
	BAD("Zv==");
	BAD("Zm9=");
	BAD("Zm+=");
	/* Every byte value other than the alphabet and '=' is refused alone. */
	fails = 0;
	for (i = 0; i < 256; i++) {
		char q[4] = { 'Q', 'Q', 'Q', (char)i };
		int ok = (i >= 'A' && i <= 'Z') || (i >= 'a' && i <= 'z') ||
			 (i >= '0' && i <= '9') || i == '+' || i == '/' || i == '=';
		fails += (base64_decode(q, 4, raw) >= 0) != ok;
	}
	CHECKF(fails == 0, "%zu byte values misjudged", fails);
	/* An embedded NUL is just a bad byte */
	CHECK(base64_decode("Zm\0v", 4, raw) == -1);
	/* NUL-free decoder usage must not read past len */
	p = "Zm9vYmFyXXXX";
	CHECK(base64_decode(p, 8, raw) == 6 && memcmp(raw, "foobar", 6) == 0);

	/* ---- base64url ---- */
	URL_DEC("", "");
	URL_DEC("Zg", "f");
	URL_DEC("Zm8", "fo");
	URL_DEC("Zm9v", "foo");
	URL_DEC("Zm9vYg", "foob");
	URL_DEC("Zm9vYmE", "fooba");
	URL_DEC("Zm9vYmFy", "foobar");
	URL_DEC("eyJhbGciOiJIUzI1NiJ9", "{\"alg\":\"HS256\"}");  /* RFC 7515 §A.1 style header */
	{
		static const unsigned char hi[] = { 0xfb, 0xff, 0xbf };
		CHECK(base64url_decode("-_-_", 4, raw) == 3 && memcmp(raw, hi, 3) == 0);
		CHECK(base64url_decode("-w", 2, raw) == 1 && raw[0] == 0xfb);
	}
	/* Every length up to 64 over all byte values, encoded by the standard
	 * encoder and translated: the padded and unpadded decoders agree. */
	fails = 0;
	for (len = 0; len <= 64; len++) {
		size_t n, k;
		ssize_t m;
		for (i = 0; i < len; i++)
			raw[i] = (unsigned char)(i * 53 + len * 7 + 200);
		n = base64_encode(raw, len, txt);
		while (n && txt[n - 1] == '=')
			n--;
		for (k = 0; k < n; k++)
			txt[k] = txt[k] == '+' ? '-' : txt[k] == '/' ? '_' : txt[k];
		m = base64url_decode(txt, n, back);
		fails += m != (ssize_t)len || memcmp(raw, back, len) != 0 || BASE64URL_DECODED_LEN(n) != len;
		fails += !url_agrees(txt, n);
	}
	CHECKF(fails == 0, "%zu base64url round-trip failures", fails);
	/* Padding is refused wherever it stands. */
	URL_BAD("Zg==");
	URL_BAD("Zm8=");
	URL_BAD("Zg=");
	URL_BAD("=");
	URL_BAD("Zm9v====");
	/* The standard alphabet's '+' and '/' are not base64url. */
	URL_BAD("+/+/");
	URL_BAD("Zm9+");
	URL_BAD("Zm9/");
	URL_BAD("Zm/v");
	/* One leftover character is never whole bytes. */
	URL_BAD("Z");
	URL_BAD("Zm9vY");
	/* Whitespace and other bytes, in whole quads and in the tail. */
	URL_BAD("Zm9v\n");
	URL_BAD("Zm9 ");
	URL_BAD(" Zm9");
	URL_BAD("Zm.v");
	URL_BAD("Z*");
	URL_BAD("Zm*");
	URL_BAD("*g");
	/* Non-zero trailing bits (RFC 4648 §3.5): canonical are "Zg" and "Zm8". */
	URL_BAD("Zh");
	URL_BAD("Zv");
	URL_BAD("Z_");
	URL_BAD("Zm9");
	URL_BAD("Zm-");
	URL_BAD("Zm9vYh");
	/* Every byte value in every position of a quad and of a tail. */
	fails = 0;
	for (i = 0; i < 256; i++) {
		char q[4] = { 'Q', 'Q', 'Q', 'Q' };
		int ok = (i >= 'A' && i <= 'Z') || (i >= 'a' && i <= 'z') ||
			 (i >= '0' && i <= '9') || i == '-' || i == '_';
		for (len = 0; len < 4; len++) {
			q[len] = (char)i;
			fails += (base64url_decode(q, 4, raw) >= 0) != ok;
			fails += !url_agrees(q, 4);
			q[len] = 'Q';
		}
		q[0] = (char)i;
		fails += (base64url_decode(q, 2, raw) >= 0) != ok;  /* "xQ": Q's low bits are 0 */
		fails += !url_agrees(q, 2) || !url_agrees(q, 3);
	}
	CHECKF(fails == 0, "%zu byte values misjudged by base64url", fails);
	CHECK(base64url_decode("Zm\0v", 4, raw) == -1);
	/* Reads no further than len. */
	CHECK(base64url_decode("Zm9vYmFy====", 8, raw) == 6 && memcmp(raw, "foobar", 6) == 0);
	CHECK(base64url_decode("Zm8=", 3, raw) == 2 && memcmp(raw, "fo", 2) == 0);

	test_url_encode();
	return check_summary("base64");
}
