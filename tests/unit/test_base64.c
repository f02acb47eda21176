/* test_base64.c - RFC 4648 §10 vectors in both directions, the RFC 6455
 * handshake key, round trips of every length up to 64, and every invalid
 * form the strict decoder must refuse: bad length, non-alphabet bytes,
 * whitespace, misplaced or partial padding, and non-zero pad bits (RFC 4648 §3.5). */
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

	return check_summary("base64");
}
