/* test_pmd.c - permessage-deflate (pmd.h, RFC 7692): offers read against
 * every parameter rule of RFC 7692 §7.1 and the list grammar of RFC 6455
 * §9.1 (values as tokens and quoted-strings, whitespace, other extensions,
 * grammar breaks before and after an acceptable offer); the handshake
 * answer byte for byte; compression at every window 9..15 checked with zlib
 * itself inflating at that window; the RFC 7692 §7.2.3 vectors; stored
 * blocks spliced before a compressed body; inflating under a limit (exact,
 * one below, a 10 MB zip bomb), corrupt, final-block and truncated data
 * judged against zlib as the reference; the module freed and used again.
 * Every input is an exact-size heap copy, so ASan sees a read past it. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include "check.h"
#include "pmd.h"

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) abort();
	return p;
}

static unsigned char *dup_exact(const void *p, size_t n)
{
	unsigned char *c = xmalloc(n);
	if (n) memcpy(c, p, n);
	return c;
}

/* ---- zlib as the reference --------------------------------------------- */

enum ref_status { REF_COMPLETE, REF_INCOMPLETE, REF_ERROR, REF_OVER };

/* Inflates in[0..len) + the RFC 7692 §7.2.2 tail with a raw window of
 * `bits`, at most cap bytes into out. COMPLETE when the data ends at a
 * block boundary (or at a final block, with at most the tail after it),
 * INCOMPLETE when it stops inside a block, ERROR on bad data, OVER when
 * more than cap bytes come out. *outlen: the bytes produced. */
static enum ref_status ref_inflate(int bits, const unsigned char *in, size_t len,
				   unsigned char *out, size_t cap, size_t *outlen)
{
	unsigned char *buf = xmalloc(len + 4), *o = xmalloc(cap + 1);
	z_stream z;
	int rc;
	enum ref_status st;

	memcpy(buf, in, len);
	memcpy(buf + len, tail, 4);
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -bits) != Z_OK) abort();
	z.next_in = buf;
	z.avail_in = (uInt)(len + 4);
	z.next_out = o;
	z.avail_out = (uInt)(cap + 1);       /* one byte more tells whether it goes past cap */
	for (;;) {
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			/* Nothing but (what is left of) the tail after the final block. */
			st = z.avail_in <= 4 ? REF_COMPLETE : REF_ERROR;
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) { st = REF_ERROR; break; }
		if (z.avail_out == 0) { st = REF_OVER; break; }
		if (z.avail_in == 0) {
			/* data_type bit 7: stopped right after a block's end. */
			st = (z.data_type & 128) ? REF_COMPLETE : REF_INCOMPLETE;
			break;
		}
		if (rc == Z_BUF_ERROR) { st = REF_INCOMPLETE; break; }
	}
	*outlen = cap + 1 - z.avail_out;
	if (*outlen > cap) {
		/* Past cap before whatever else: an answer about the limit first. */
		*outlen = cap;
		st = REF_OVER;
	}
	if (*outlen) memcpy(out, o, *outlen);
	inflateEnd(&z);
	free(buf);
	free(o);
	return st;
}

/* Raw DEFLATE of in with zlib: flush Z_SYNC_FLUSH (the tail stripped) or
 * Z_FINISH (one stream ending in a final block). Returns the length. */
static size_t ref_deflate(int bits, int flush, const void *in, size_t len, unsigned char *out, size_t cap)
{
	z_stream z;
	size_t n;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, flush) != (flush == Z_FINISH ? Z_STREAM_END : Z_OK) || z.avail_in) abort();
	n = cap - z.avail_out;
	deflateEnd(&z);
	if (flush == Z_SYNC_FLUSH) {
		if (n < 4 || memcmp(out + n - 4, tail, 4)) abort();
		n -= 4;
	}
	return n;
}

/* ---- offers ------------------------------------------------------------ */

static void offer_n(const char *v, size_t n, int want, unsigned bits, unsigned named, int line)
{
	unsigned char *c = dup_exact(v, n);
	struct pmd_params p;
	int r;

	memset(&p, 0xee, sizeof(p));
	r = pmd_offer((const char *)c, n, &p);
	if (want)
		CHECKF(r == 1 && p.server_bits == bits && p.server_bits_named == named,
		       "line %d: [%.*s] gave %d bits %u named %u, want 1 bits %u named %u",
		       line, (int)n, v, r, p.server_bits, p.server_bits_named, bits, named);
	else
		CHECKF(r == 0, "line %d: [%.*s] gave %d (bits %u named %u), want 0", line, (int)n, v, r,
		       p.server_bits, p.server_bits_named);
	free(c);
}
#define OK(v) offer_n(v, strlen(v), 1, 15, 0, __LINE__)
#define OKB(v, b) offer_n(v, strlen(v), 1, b, 1, __LINE__)
#define NO(v) offer_n(v, strlen(v), 0, 0, 0, __LINE__)
#define PMD "permessage-deflate"

static void test_offer(void)
{
	char b[128];

	/* The plain offer and each parameter alone (RFC 7692 §7.1). Unnamed,
	 * the server window is the default 15 (RFC 7692 §7.1.2.1). */
	OK(PMD);
	OK(PMD "; server_no_context_takeover");
	OK(PMD "; client_no_context_takeover");
	OK(PMD "; client_max_window_bits");
	for (unsigned bits = 8; bits <= 15; bits++) {
		snprintf(b, sizeof(b), PMD "; client_max_window_bits=%u", bits);
		OK(b);
		snprintf(b, sizeof(b), PMD "; client_max_window_bits=\"%u\"", bits);
		OK(b);
	}
	for (unsigned bits = 9; bits <= 15; bits++) {
		snprintf(b, sizeof(b), PMD "; server_max_window_bits=%u", bits);
		OKB(b, bits);
		snprintf(b, sizeof(b), PMD "; server_max_window_bits=\"%u\"", bits);
		OKB(b, bits);
	}
	OKB(PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12;"
	    " client_max_window_bits=10", 12);
	OKB(PMD "; client_max_window_bits; server_max_window_bits=10; client_no_context_takeover;"
	    " server_no_context_takeover", 10);
	OKB(PMD ";server_max_window_bits=11;client_max_window_bits", 11);

	/* server_max_window_bits: a value is required, 9..15 (8: zlib cannot
	 * keep a 256-byte window), a decimal integer without leading zeroes
	 * (RFC 7692 §7.1.2.1). */
	NO(PMD "; server_max_window_bits");
	NO(PMD "; server_max_window_bits=8");
	NO(PMD "; server_max_window_bits=\"8\"");
	NO(PMD "; server_max_window_bits=16");
	NO(PMD "; server_max_window_bits=0");
	NO(PMD "; server_max_window_bits=1");
	NO(PMD "; server_max_window_bits=7");
	NO(PMD "; server_max_window_bits=100");
	NO(PMD "; server_max_window_bits=010");
	NO(PMD "; server_max_window_bits=09");
	NO(PMD "; server_max_window_bits=\"09\"");
	NO(PMD "; server_max_window_bits=00015");
	NO(PMD "; server_max_window_bits=4294967306");      /* 2^32 + 10 */
	NO(PMD "; server_max_window_bits=18446744073709551626");
	NO(PMD "; server_max_window_bits=+9");
	NO(PMD "; server_max_window_bits=-9");
	NO(PMD "; server_max_window_bits=9a");
	NO(PMD "; server_max_window_bits=0x9");
	NO(PMD "; server_max_window_bits=1O");
	NO(PMD "; server_max_window_bits=\"\"");
	NO(PMD "; server_max_window_bits=\" 9\"");
	NO(PMD "; server_max_window_bits=\"9 \"");
	NO(PMD "; server_max_window_bits=");                /* no value at all: grammar */
	/* client_max_window_bits: no value, or 8..15 without leading zeroes (RFC 7692 §7.1.2.2). */
	NO(PMD "; client_max_window_bits=7");
	NO(PMD "; client_max_window_bits=16");
	NO(PMD "; client_max_window_bits=0");
	NO(PMD "; client_max_window_bits=08");
	NO(PMD "; client_max_window_bits=010");
	NO(PMD "; client_max_window_bits=\"\"");
	NO(PMD "; client_max_window_bits=x");
	/* The no_context_takeover parameters take no value (RFC 7692 §7.1.1). */
	NO(PMD "; server_no_context_takeover=1");
	NO(PMD "; server_no_context_takeover=\"\"");
	NO(PMD "; client_no_context_takeover=true");
	NO(PMD "; client_no_context_takeover=\"x\"");
	/* Unknown and repeated parameters decline the offer (RFC 7692 §7). */
	NO(PMD "; foo");
	NO(PMD "; foo=1");
	NO(PMD "; server_max_window_bit=10");
	NO(PMD "; server_max_window_bits_=10");
	NO(PMD "; x-server_no_context_takeover");
	NO(PMD "; server_no_context_takeover; server_no_context_takeover");
	NO(PMD "; client_no_context_takeover; client_no_context_takeover");
	NO(PMD "; server_max_window_bits=10; server_max_window_bits=10");
	NO(PMD "; client_max_window_bits; client_max_window_bits=10");
	NO(PMD "; client_max_window_bits=9; server_no_context_takeover; client_max_window_bits=9");

	/* Quoted-string values are unescaped before the token rule (RFC 7692
	 * §7: "the value after quoted-string unescaping MUST conform to the
	 * 'token' ABNF"; RFC 7230 §3.2.6 quoted-pair). */
	OKB(PMD "; server_max_window_bits=\"1\\0\"", 10);
	OKB(PMD "; server_max_window_bits=\"\\1\\3\"", 13);
	OK(PMD "; client_max_window_bits=\"\\9\"");
	NO(PMD "; server_max_window_bits=\"1\\\"0\"");      /* unescapes to 1"0 */

	/* Other extensions, before and among offers: the first acceptable
	 * permessage-deflate offer wins (RFC 7692 §5.1). */
	OK("x-webkit-deflate-frame, " PMD);
	OKB("x-webkit-deflate-frame; no_context_takeover, " PMD "; server_max_window_bits=11", 11);
	OKB("mux; max-channels=4; flow-control, " PMD "; server_max_window_bits=9, foo", 9);
	OKB(PMD "; server_max_window_bits=8, " PMD "; server_max_window_bits=10", 10);
	OKB(PMD "; foo, " PMD "; server_max_window_bits=13", 13);
	OK(PMD "; server_no_context_takeover=1, " PMD "; client_max_window_bits");
	OKB(PMD "; server_max_window_bits=10, " PMD, 10);
	OK(PMD ", " PMD "; server_max_window_bits=10");
	OKB(PMD "; server_max_window_bits=16, " PMD "; server_max_window_bits=16, " PMD
	    "; server_max_window_bits=14", 14);
	NO("x-webkit-deflate-frame");
	NO("x-webkit-deflate-frame; server_max_window_bits=10");
	NO(PMD "; server_max_window_bits=8, " PMD "; server_max_window_bits=16");
	/* Any extension's quoted value, unescaped, must be a token (RFC 6455
	 * §9.1): escapes of token characters are fine; a comma, semicolon,
	 * space or quote inside breaks the grammar, so nothing after it counts
	 * (and a comma in quotes never splits the list). */
	OK("x; a=\"\\q\\-x\", " PMD);
	OKB("x; a=\"" PMD "\", " PMD "; server_max_window_bits=12", 12);
	NO("x; a=\"" PMD "\"");
	NO("x; a=\", " PMD "; b=\"");
	NO("x; a=\"q,uoted; " PMD "\", " PMD);
	NO("x; a=\"esc\\\"aped\", " PMD);
	NO("x; a=\"two words\", " PMD);
	/* Only the whole token counts. Extension names are tokens compared
	 * case-sensitively: RFC 6455 §4.2.1 calls out case-insensitive matching
	 * for Upgrade and Connection values only, and RFC 6455 §9.1 names none for
	 * extensions (as node ws and Python websockets compare). */
	NO("permessage-deflat");
	NO("permessage-deflatex");
	NO("xpermessage-deflate");
	NO("permessage_deflate");
	NO("PERMESSAGE-DEFLATE");
	NO("Permessage-Deflate");
	NO(PMD "; Server_Max_Window_Bits=10");

	/* Whitespace (implied *LWS of RFC 6455 §9.1's grammar; spaces and tabs)
	 * around ; , = and at either end. */
	OKB(PMD " ; server_max_window_bits = 10", 10);
	OKB("\t" PMD "\t;\tserver_max_window_bits\t=\t10\t", 10);
	OKB("  " PMD "  ;  client_no_context_takeover  ;  server_max_window_bits  =  \"9\"  ", 9);
	OKB("x-webkit-deflate-frame \t,\t " PMD ";server_max_window_bits=15", 15);
	OK(" " PMD " ");
	OK(PMD "\t");
	OK(PMD " , foo");

	/* Empty fields and empty list elements. RFC 7230 §7: a recipient MUST
	 * accept (and ignore) empty list elements. */
	NO("");
	NO(" ");
	NO("\t \t");
	NO(",");
	NO(",,,");
	NO(" , , ");
	OK(", " PMD);
	OK(",," PMD ",,");
	OKB("foo, , " PMD "; server_max_window_bits=10", 10);

	/* A grammar break: the offers before it count, the rest do not. */
	OK(PMD ", @@@");
	OKB(PMD "; server_max_window_bits=12, ;;;==", 12);
	OK(PMD ", x; a=\"unterminated");
	OK(PMD ", x; a=\"trailing backslash\\");
	OK(PMD ", x; a=b=c");
	OK(PMD ", \"quoted-name\"");
	NO("@@@, " PMD);
	NO("x;, " PMD);
	NO("x; =1, " PMD);
	NO("x; a=, " PMD);
	NO("\"x\", " PMD);
	NO(PMD ";");                       /* an empty parameter */
	NO(PMD "; ; server_no_context_takeover");
	NO(PMD ";, " PMD);
	NO(PMD " garbage");               /* two tokens without a separator */
	NO(PMD " garbage, " PMD);
	NO(PMD "; server_no_context_takeover x, " PMD);
	NO(PMD "; server_max_window_bits=\"10");          /* unterminated */
	NO(PMD "; server_max_window_bits=\"10\\\"");      /* the closing quote escaped */
	NO(PMD "; server_max_window_bits=\"10\"x");
	NO(PMD "; server_max_window_bits=10 11");
	NO(PMD "; server_max_window_bits=(10)");           /* separators are not tokens */
	NO(PMD "; server_max_window_bits=1/0");
	NO(PMD "=1");
	NO(PMD "\r\n");                    /* CTLs are not whitespace here */
	NO(PMD "\x7f");

	/* len is respected: no NUL terminator is read, a NUL inside is a byte. */
	offer_n(PMD "; server_max_window_bits=12", strlen(PMD), 1, 15, 0, __LINE__);
	offer_n(PMD "; server_max_window_bits=12", strlen(PMD "; server_max_window_bits=1"), 0, 0, 0, __LINE__);
	offer_n(PMD "; server_max_window_bits=12", strlen(PMD "; server_max_window_bits=12") - 0, 1, 12, 1,
		__LINE__);
	offer_n(PMD "\0", strlen(PMD) + 1, 0, 0, 0, __LINE__);
	offer_n(PMD ", \0", strlen(PMD) + 3, 1, 15, 0, __LINE__);
	offer_n("x\0, " PMD, 3 + strlen(PMD) + 2, 0, 0, 0, __LINE__);
	offer_n("", 0, 0, 0, 0, __LINE__);

	/* Every prefix of an offer list: never a crash or a read past len, and
	 * whatever is accepted is the one whole offer the prefix holds. */
	{
		static const char s[] = "x; a=\"q\\-x\", " PMD "; server_max_window_bits=\"1\\1\"; "
					"client_max_window_bits, y";
		size_t plain = strlen("x; a=\"q\\-x\", " PMD);
		size_t named = strlen("x; a=\"q\\-x\", " PMD "; server_max_window_bits=\"1\\1\"");
		size_t first = strlen("x; a=\"q\\-x\", " PMD "; server_max_window_bits=\"1\\1\"; client_max_window_bits");
		int bad = 0;
		for (size_t n = 0; n < sizeof(s); n++) {
			unsigned char *c = dup_exact(s, n);
			struct pmd_params p;
			int r = pmd_offer((const char *)c, n, &p);
			int want = n == plain || n == named || n >= first;
			unsigned wb = n == plain ? 15 : 11;
			if (r != want || (r && (p.server_bits != wb || p.server_bits_named != (n != plain)))) {
				fprintf(stderr, "prefix %zu: gave %d, want %d\n", n, r, want);
				bad++;
			}
			free(c);
		}
		CHECKF(bad == 0, "%d prefixes answered wrongly", bad);
	}
}

/* ---- answers ------------------------------------------------------------ */

static void answer_case(unsigned bits, unsigned named, const char *want, int line)
{
	struct pmd_params p = { (uint8_t)bits, (uint8_t)named };
	char out[256];
	size_t n = strlen(want);
	int r;

	memset(out, 0x5a, sizeof(out));
	r = pmd_answer(&p, out, sizeof(out));
	CHECKF(r == (int)n && memcmp(out, want, n + 1) == 0, "line %d: gave %d [%s]", line, r, r >= 0 ? out : "");
	/* Exactly length + 1 fits; one byte less does not, and nothing past cap is written. */
	memset(out, 0x5a, sizeof(out));
	r = pmd_answer(&p, out, n + 1);
	CHECKF(r == (int)n && memcmp(out, want, n + 1) == 0 && (unsigned char)out[n + 1] == 0x5a,
	       "line %d: cap %zu gave %d", line, n + 1, r);
	for (size_t cap = 0; cap <= n; cap++) {
		memset(out, 0x5a, sizeof(out));
		r = pmd_answer(&p, out, cap);
		int past = 0;
		for (size_t i = cap; i < sizeof(out); i++) if ((unsigned char)out[i] != 0x5a) past++;
		if (r != -1 || past) {
			CHECKF(0, "line %d: cap %zu gave %d, wrote %d bytes past cap", line, cap, r, past);
			break;
		}
	}
	/* The answer read back as an offer gives the same parameters. */
	{
		struct pmd_params q;
		CHECKF(pmd_offer(want, n, &q) == 1 && q.server_bits == bits && q.server_bits_named == named,
		       "line %d: answer not read back", line);
	}
}

static void test_answer(void)
{
	answer_case(15, 0, PMD "; server_no_context_takeover; client_no_context_takeover", __LINE__);
	answer_case(15, 1, PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
		    __LINE__);
	answer_case(9, 1, PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9",
		    __LINE__);
	answer_case(10, 1, PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
		    __LINE__);
	/* The answer of every accepted offer, from the offer itself. */
	for (unsigned bits = 9; bits <= 15; bits++) {
		char off[96], want[160], out[160];
		struct pmd_params p;
		snprintf(off, sizeof(off), PMD "; client_max_window_bits; server_max_window_bits=%u", bits);
		snprintf(want, sizeof(want), PMD "; server_no_context_takeover; client_no_context_takeover;"
			 " server_max_window_bits=%u", bits);
		CHECK(pmd_offer(off, strlen(off), &p) == 1);
		CHECKF(pmd_answer(&p, out, sizeof(out)) == (int)strlen(want) && strcmp(out, want) == 0,
		       "bits %u: %s", bits, out);
	}
	/* The longest answer is 101 bytes + NUL, and PMD_ANSWER_MAX holds it
	 * (pmd.h's first "64 bytes suffice" did not: a 101 without the extension). */
	{
		struct pmd_params p = { 15, 1 };
		char out[PMD_ANSWER_MAX];
		CHECK(pmd_answer(&p, out, 102) == 101);
		CHECK(PMD_ANSWER_MAX >= 102);
		for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++)
			for (unsigned named = 0; named <= 1; named++) {
				p.server_bits = (uint8_t)bits;
				p.server_bits_named = (uint8_t)named;
				CHECKF(pmd_answer(&p, out, sizeof(out)) > 0, "bits %u named %u: no room", bits, named);
			}
	}
}

/* ---- compressing --------------------------------------------------------- */

static unsigned char *make_data(int kind, size_t n)
{
	unsigned char *d = xmalloc(n);
	size_t i = 0;

	switch (kind) {
	case 0:                                    /* random: incompressible */
		for (i = 0; i < n; i++) d[i] = (unsigned char)rnd();
		break;
	case 1:                                    /* JSON-ish records */
		while (i < n) {
			char line[160];
			int k = snprintf(line, sizeof(line),
					 "{\"topic\":\"orders\",\"partition\":%u,\"offset\":%u,\"key\":\"k%u\","
					 "\"value\":{\"sku\":\"A-%u\",\"qty\":%u}}\n",
					 rnd() % 8, (unsigned)i, rnd() % 1000, rnd() % 50, rnd() % 9);
			for (int j = 0; j < k && i < n; j++) d[i++] = (unsigned char)line[j];
		}
		break;
	default:                                   /* zeros */
		memset(d, 0, n);
	}
	return d;
}

static int ends_with_tail(const unsigned char *p, size_t n)
{
	return n >= 4 && memcmp(p + n - 4, tail, 4) == 0;
}

static void round_trip(unsigned bits, const unsigned char *d, size_t n, const char *what)
{
	const unsigned char *out, *inf;
	size_t inflen = 0;
	ssize_t r = pmd_deflate(bits, d, n, &out);

	if (r <= 0) { CHECKF(0, "%s bits %u len %zu: deflate gave %zd", what, bits, n, r); return; }
	unsigned char *c = dup_exact(out, (size_t)r);
	CHECKF(!ends_with_tail(c, (size_t)r), "%s bits %u len %zu: ends with 00 00 ff ff", what, bits, n);

	/* zlib inflates it with exactly that window, to a block boundary. */
	unsigned char *z = xmalloc(n + 1);
	size_t zn = 0;
	enum ref_status st = ref_inflate((int)bits, c, (size_t)r, z, n, &zn);
	CHECKF(st == REF_COMPLETE && zn == n && (n == 0 || memcmp(z, d, n) == 0),
	       "%s bits %u len %zu: zlib -%u gave status %d, %zu bytes", what, bits, n, bits, st, zn);
	free(z);

	/* pmd_inflate with the limit at the size, then one below. */
	enum pmd_inflate_result ir = pmd_inflate(c, (size_t)r, n, &inf, &inflen);
	CHECKF(ir == PMD_OK && inflen == n && (n == 0 || memcmp(inf, d, n) == 0),
	       "%s bits %u len %zu: inflate gave %d, %zu bytes", what, bits, n, ir, inflen);
	if (n) {
		ir = pmd_inflate(c, (size_t)r, n - 1, &inf, &inflen);
		CHECKF(ir == PMD_TOO_BIG, "%s bits %u len %zu: limit %zu gave %d", what, bits, n, n - 1, ir);
	}
	free(c);
}

static void test_deflate(void)
{
	static const size_t sizes[] = { 0, 1, 2, 5, 255, 256, 4096, 65535, 65536, 65537, 200000 };
	static const char *kinds[] = { "random", "json", "zeros" };
	const unsigned char *out;
	ssize_t r;

	for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++)
		for (int k = 0; k < 3; k++)
			for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
				unsigned char *d = make_data(k, sizes[i]);
				round_trip(bits, d, sizes[i], kinds[k]);
				free(d);
			}

	/* Past the 1 MiB a buffer is kept at, and a small message after it. */
	{
		unsigned char *d = make_data(0, 3u << 20);
		round_trip(15, d, 3u << 20, "random 3 MiB");
		round_trip(15, d, 1000, "random 1000 after 3 MiB");
		free(d);
	}
	/* Windows outside 9..15 are refused. */
	CHECK(pmd_deflate(8, "Hello", 5, &out) == -1);
	CHECK(pmd_deflate(16, "Hello", 5, &out) == -1);
	CHECK(pmd_deflate(0, "Hello", 5, &out) == -1);

	/* RFC 7692 §7.2.3.1: "Hello" is f2 48 cd c9 c9 07 00, at every window;
	 * RFC 7692 §7.2.3.6: the empty message is the single byte 00. */
	for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++) {
		static const unsigned char hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
		r = pmd_deflate(bits, "Hello", 5, &out);
		CHECKF(r == 7 && memcmp(out, hello, 7) == 0, "bits %u: Hello gave %zd bytes", bits, r);
		r = pmd_deflate(bits, "", 0, &out);
		CHECKF(r == 1 && out[0] == 0x00, "bits %u: empty gave %zd bytes", bits, r);
	}

	/* The window is the one asked for: a 5000-byte random block repeated
	 * shrinks only when the window holds it, and zlib inflating at that
	 * window (above) rejects any distance beyond it. */
	{
		enum { BLK = 5000, REP = 8 };
		unsigned char *blk = make_data(0, BLK), *d = xmalloc(BLK * REP);
		for (int i = 0; i < REP; i++) memcpy(d + i * BLK, blk, BLK);
		for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++) {
			round_trip(bits, d, BLK * REP, "repeated");
			r = pmd_deflate(bits, d, BLK * REP, &out);
			if (bits >= 13)
				CHECKF(r > 0 && r < BLK * 2, "bits %u: %zd bytes, want < %d", bits, r, BLK * 2);
			else
				CHECKF(r > BLK * REP - 100, "bits %u: %zd bytes from %d: window above 2^%u?", bits, r,
				       BLK * REP, bits);
		}
		free(blk);
		free(d);
	}

	/* No context takeover: the same message compresses to the same bytes
	 * whatever came before, at the same or another window. */
	{
		unsigned char *a = make_data(1, 3000), *bb = make_data(1, 3000);
		r = pmd_deflate(10, a, 3000, &out);
		unsigned char *first = dup_exact(out, (size_t)r);
		size_t fn = (size_t)r;
		CHECK(pmd_deflate(10, bb, 3000, &out) > 0);
		CHECK(pmd_deflate(15, a, 3000, &out) > 0);
		CHECK(pmd_deflate(15, bb, 3000, &out) > 0);
		r = pmd_deflate(10, a, 3000, &out);
		CHECKF(r == (ssize_t)fn && memcmp(out, first, fn) == 0, "same message, other bytes (%zd vs %zu)", r, fn);
		/* The same message spliced twice does not refer back across. */
		CHECK(r > 0 && pmd_deflate(10, a, 3000, &out) == (ssize_t)fn && memcmp(out, first, fn) == 0);
		free(first);
		free(a);
		free(bb);
	}

	/* Each buffer survives the other's calls: deflate's *out is valid until
	 * the next pmd_deflate, inflate's until the next pmd_inflate. */
	{
		const unsigned char *inf;
		size_t inflen;
		unsigned char *d = make_data(1, 2000);
		r = pmd_deflate(15, d, 2000, &out);
		unsigned char *c = dup_exact(out, (size_t)r);
		CHECK(pmd_inflate((const unsigned char *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 100, &inf, &inflen) == PMD_OK);
		CHECK(memcmp(out, c, (size_t)r) == 0);
		CHECK(pmd_inflate(c, (size_t)r, 2000, &inf, &inflen) == PMD_OK && inflen == 2000);
		CHECK(pmd_deflate(12, "other message", 13, &out) > 0);
		CHECK(memcmp(inf, d, 2000) == 0);
		free(c);
		free(d);
	}
}

/* ---- stored blocks ------------------------------------------------------- */

static void test_stored(void)
{
	unsigned char out[70000];
	const unsigned char *body, *inf;
	size_t inflen;

	/* RFC 7692 §7.2.3.3's first ten bytes; RFC 1951 §3.2.4: 00, LEN, ~LEN. */
	memset(out, 0x5a, 32);
	CHECK(pmd_stored_block(out, "Hello", 5) == 10);
	CHECK_MEM(out, 11, "\x00\x05\x00\xfa\xff" "Hello" "\x5a", 11);
	memset(out, 0x5a, 32);
	CHECK(pmd_stored_block(out, "", 0) == 5);
	CHECK_MEM(out, 6, "\x00\x00\x00\xff\xff\x5a", 6);
	CHECK(pmd_stored_block(out, "x", 1) == 6);
	CHECK_MEM(out, 6, "\x00\x01\x00\xfe\xff" "x", 6);
	{
		unsigned char *d = make_data(0, 65535);
		out[65540] = 0x5a;
		CHECK(pmd_stored_block(out, d, 65535) == 65540);
		CHECK(memcmp(out, "\x00\xff\xff\x00\x00", 5) == 0 && memcmp(out + 5, d, 65535) == 0 && out[65540] == 0x5a);
		free(d);
	}
	CHECK(PMD_STORED_OVERHEAD == 5);

	/* A stored head + a pmd_deflate body is one message: zlib at window 15
	 * (kbridge's client windows are all 15) and pmd_inflate read head+body. */
	static const size_t heads[] = { 0, 1, 37, 300, 65535 };
	for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++)
		for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++) {
			size_t hn = heads[h], bn = 5000;
			unsigned char *head = make_data(1, hn), *bd = make_data(1, bn);
			ssize_t r = pmd_deflate(bits, bd, bn, &body);
			unsigned char *msg = xmalloc(hn + PMD_STORED_OVERHEAD + (size_t)(r > 0 ? r : 0));
			size_t mn = pmd_stored_block(msg, head, hn);
			unsigned char *want = xmalloc(hn + bn), *z = xmalloc(hn + bn);
			size_t zn;

			CHECK(r > 0 && mn == hn + PMD_STORED_OVERHEAD);
			memcpy(msg + mn, body, (size_t)r);
			mn += (size_t)r;
			memcpy(want, head, hn);
			memcpy(want + hn, bd, bn);
			enum ref_status st = ref_inflate(15, msg, mn, z, hn + bn, &zn);
			CHECKF(st == REF_COMPLETE && zn == hn + bn && memcmp(z, want, zn) == 0,
			       "head %zu bits %u: zlib status %d, %zu bytes", hn, bits, st, zn);
			unsigned char *c = dup_exact(msg, mn);
			enum pmd_inflate_result ir = pmd_inflate(c, mn, hn + bn, &inf, &inflen);
			CHECKF(ir == PMD_OK && inflen == hn + bn && memcmp(inf, want, inflen) == 0,
			       "head %zu bits %u: pmd_inflate %d, %zu bytes", hn, bits, ir, inflen);
			free(c);
			free(head);
			free(bd);
			free(msg);
			free(want);
			free(z);
		}
}

/* ---- inflating ------------------------------------------------------------ */

static enum pmd_inflate_result inflate_n(const void *in, size_t n, size_t limit, unsigned char *got, size_t *gotlen)
{
	unsigned char *c = dup_exact(in, n);
	const unsigned char *out = NULL;
	size_t outlen = (size_t)-1;
	enum pmd_inflate_result r = pmd_inflate(c, n, limit, &out, &outlen);

	if (r == PMD_OK) {
		CHECKF(outlen <= limit, "outlen %zu over limit %zu", outlen, limit);
		if (got && outlen <= limit) memcpy(got, out, outlen);
		if (gotlen) *gotlen = outlen;
	}
	free(c);
	return r;
}

static void inflate_case(const void *in, size_t n, size_t limit, enum pmd_inflate_result want,
			 const void *wantout, size_t wantlen, int line)
{
	unsigned char got[256];
	size_t gotlen = 0;
	enum pmd_inflate_result r = inflate_n(in, n, limit, got, &gotlen);

	if (want == PMD_OK)
		CHECKF(r == PMD_OK && gotlen == wantlen && memcmp(got, wantout, wantlen) == 0,
		       "line %d: gave %d, %zu bytes [%.*s]", line, r, gotlen, (int)(r == PMD_OK ? gotlen : 0), got);
	else
		CHECKF(r == want, "line %d: gave %d, want %d", line, r, want);
}
#define INF(in, limit, want, out) inflate_case(in, sizeof(in) - 1, limit, want, out, sizeof(out) - 1, __LINE__)

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 10 MB of zeros deflated (sync flush, tail stripped) without ever holding them. */
static unsigned char *zip_bomb(size_t *n)
{
	static unsigned char zeros[65536];
	size_t cap = 1 << 20;
	unsigned char *out = xmalloc(cap);
	z_stream z;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
	z.next_out = out;
	z.avail_out = (uInt)cap;
	for (int i = 0; i < 160; i++) {                       /* 160 * 64 KiB = 10 MiB */
		z.next_in = zeros;
		z.avail_in = sizeof(zeros);
		if (deflate(&z, i == 159 ? Z_SYNC_FLUSH : Z_NO_FLUSH) != Z_OK || z.avail_in) abort();
	}
	*n = cap - z.avail_out - 4;
	deflateEnd(&z);
	return out;
}

static void test_inflate_bomb(void)
{
	size_t n;
	unsigned char *bomb = zip_bomb(&n);
	long before = maxrss_kb();
	double t0 = now_s();
	enum pmd_inflate_result r = inflate_n(bomb, n, 65536, NULL, NULL);
	double dt = now_s() - t0;
	long grew = maxrss_kb() - before;

	CHECKF(n < 20000, "bomb is %zu bytes", n);
	CHECKF(r == PMD_TOO_BIG, "bomb gave %d", r);
	CHECKF(dt < 0.5, "bomb took %.3f s", dt);
	CHECKF(grew < 4096, "max RSS grew %ld KiB inflating the bomb under a 64 KiB limit", grew);
	/* The same data under a limit that holds it is a good message. */
	{
		const unsigned char *out;
		size_t outlen = 0;
		size_t big = 10u << 20, nz = 0;
		unsigned char *c = dup_exact(bomb, n);
		r = pmd_inflate(c, n, big, &out, &outlen);
		if (r == PMD_OK) for (size_t i = 0; i < outlen; i++) nz += out[i] != 0;
		CHECKF(r == PMD_OK && outlen == big && nz == 0, "bomb under 10 MiB gave %d, %zu bytes", r, outlen);
		CHECK(pmd_inflate(c, n, big - 1, &out, &outlen) == PMD_TOO_BIG);
		free(c);
	}
	free(bomb);
}

static void test_inflate(void)
{
	unsigned char buf[8192], z[8192];
	size_t n, zn;

	/* RFC 7692 §7.2.3: sync-flushed, stored, two blocks, empty. */
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 100, PMD_OK, "Hello");
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 5, PMD_OK, "Hello");
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 4, PMD_TOO_BIG, "");
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 0, PMD_TOO_BIG, "");
	INF("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 5, PMD_OK, "Hello");
	INF("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 4, PMD_TOO_BIG, "");
	INF("\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 5, PMD_OK, "Hello");
	INF("\x00", 0, PMD_OK, "");
	INF("\x00", 10, PMD_OK, "");
	INF("\x02\x00", 0, PMD_OK, "");                 /* an empty fixed-Huffman block */
	/* RFC 7692 §7.2.3.4: a final block, then 00 so the tail still parses. The RFC
	 * gives this as a valid message. */
	INF("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 5, PMD_OK, "Hello");
	/* RFC 7692 §7.2.3.2's second message refers back into the first: without
	 * context takeover the distance is too far back. */
	INF("\xf2\x00\x11\x00\x00", 100, PMD_BAD_DATA, "");
	/* Zero bytes: the tail alone is no whole block, but an empty message
	 * is an empty message. */
	inflate_case("", 0, 0, PMD_OK, "", 0, __LINE__);
	inflate_case("", 0, 100, PMD_OK, "", 0, __LINE__);

	/* Corrupt data (RFC 1951): reserved block type, a stored block whose
	 * NLEN is not ~LEN, a code past the table, a distance before the start. */
	INF("\x06", 100, PMD_BAD_DATA, "");
	INF("\x07", 100, PMD_BAD_DATA, "");
	INF("\xff\xff\xff", 100, PMD_BAD_DATA, "");
	INF("\x00\x05\x00\x00\x00Hello", 100, PMD_BAD_DATA, "");
	INF("\x00\x05\x00\xfa\xfe" "Hello", 100, PMD_BAD_DATA, "");
	INF("\xfc\xff\xff", 100, PMD_BAD_DATA, "");    /* dynamic block, HLIT 288 > 286 */
	/* zlib agrees each of these is bad. */
	{
		static const struct { const char *p; size_t n; } bad[] = {
			{ "\x06", 1 }, { "\x07", 1 }, { "\xff\xff\xff", 3 }, { "\xfc\xff\xff", 3 },
			{ "\xf2\x00\x11\x00\x00", 5 }, { "\x00\x05\x00\xfa\xfe" "Hello", 10 } };
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			CHECKF(ref_inflate(15, (const unsigned char *)bad[i].p, bad[i].n, z, 100, &zn) == REF_ERROR,
			       "corrupt case %zu is not bad to zlib", i);
		CHECK(ref_inflate(15, (const unsigned char *)"\x00\x05\x00\x00\x00Hello", 10, z, 100, &zn) == REF_ERROR);
	}

	/* A final block ends the stream: with only the tail after it, good. */
	{
		unsigned char *d = make_data(1, 3000);
		n = ref_deflate(15, Z_FINISH, d, 3000, buf, sizeof(buf));
		CHECKF(inflate_n(buf, n, 3000, z, &zn) == PMD_OK && zn == 3000 && memcmp(z, d, 3000) == 0,
		       "BFINAL stream of 3000 bytes");
		CHECK(inflate_n(buf, n, 2999, NULL, NULL) == PMD_TOO_BIG);
		/* Anything else after it is bad data: another block, or bytes. */
		size_t m = ref_deflate(15, Z_SYNC_FLUSH, "Hello", 5, buf + n, sizeof(buf) - n);
		CHECK(inflate_n(buf, n + m, 10000, NULL, NULL) == PMD_BAD_DATA);
		memcpy(buf + n, "\x01\x02\x03", 3);
		CHECK(inflate_n(buf, n + 3, 10000, NULL, NULL) == PMD_BAD_DATA);
		buf[n] = 0xff;
		CHECK(inflate_n(buf, n + 1, 10000, NULL, NULL) == PMD_BAD_DATA);
		n = ref_deflate(15, Z_FINISH, "Hello", 5, buf, sizeof(buf));
		CHECK(n == 7 && memcmp(buf, "\xf3\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
		inflate_case(buf, n, 5, PMD_OK, "Hello", 5, __LINE__);
		memcpy(buf + n, "\xf3\x48\xcd\xc9\xc9\x07\x00", 7);    /* two final blocks */
		CHECK(inflate_n(buf, 14, 100, NULL, NULL) == PMD_BAD_DATA);
		free(d);
	}

	/* Truncated: every cut of a compressed message. Where zlib says the cut
	 * plus the tail stops inside a block (or is bad), that is bad data; where
	 * it ends at a block boundary, it is the bytes zlib gives. */
	{
		unsigned char *d = make_data(1, 3000);
		size_t full = ref_deflate(15, Z_SYNC_FLUSH, d, 3000, buf, sizeof(buf)), bad = 0, incomplete = 0;
		for (size_t cut = 1; cut < full; cut++) {
			size_t got = 0;
			enum ref_status st = ref_inflate(15, buf, cut, z, 3000, &zn);
			enum pmd_inflate_result r = inflate_n(buf, cut, 3000, z + 4000, &got);
			if (st == REF_OVER) {
				/* The tail read as codes runs past the limit: either answer. */
				if (r != PMD_TOO_BIG && r != PMD_BAD_DATA && bad++ < 5)
					fprintf(stderr, "cut %zu/%zu: over the limit in zlib, pmd_inflate %d\n", cut, full, r);
			} else if (st != REF_COMPLETE) {
				incomplete++;
				if (r != PMD_BAD_DATA) {
					if (bad++ < 5) fprintf(stderr, "cut %zu/%zu: zlib status %d, pmd_inflate %d\n",
							       cut, full, st, r);
				}
			} else if (r != PMD_OK || got != zn || memcmp(z, z + 4000, zn)) {
				if (bad++ < 5) fprintf(stderr, "cut %zu/%zu: complete in zlib, pmd_inflate %d\n", cut, full, r);
			}
		}
		CHECKF(incomplete > full / 2, "only %zu of %zu cuts are incomplete", incomplete, full);
		CHECKF(bad == 0, "%zu of %zu cuts judged unlike zlib", bad, full - 1);
		/* One cut by name: half of the stream. */
		CHECK(inflate_n(buf, full / 2, 3000, NULL, NULL) == PMD_BAD_DATA);
		/* Stored data cut short. */
		CHECK(inflate_n("\x00\x05\x00\xfa\xff" "Hel", 8, 100, NULL, NULL) == PMD_BAD_DATA);
		free(d);
	}

	/* After TOO_BIG and BAD_DATA the next message inflates from scratch. */
	CHECK(inflate_n("\x06", 1, 100, NULL, NULL) == PMD_BAD_DATA);
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 5, PMD_OK, "Hello");
	CHECK(inflate_n("\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1, NULL, NULL) == PMD_TOO_BIG);
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", 5, PMD_OK, "Hello");
	/* And no window carries over: "Hello" then a reference to it is bad. */
	INF("\xf2\x00\x11\x00\x00", 100, PMD_BAD_DATA, "");

	/* Any limit holds "Hello", the largest ones too (pmd.h bounds none;
	 * kbridge's --max-message stops at 64 MiB). */
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", (size_t)UINT32_MAX - 1, PMD_OK, "Hello");
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", (size_t)UINT32_MAX, PMD_OK, "Hello");
	INF("\xf2\x48\xcd\xc9\xc9\x07\x00", SIZE_MAX, PMD_OK, "Hello");

	/* A client window below 15 reads the same (kbridge inflates at 15). */
	for (int bits = 9; bits <= 15; bits++) {
		unsigned char *d = make_data(1, 6000);
		n = ref_deflate(bits, Z_SYNC_FLUSH, d, 6000, buf, sizeof(buf));
		CHECKF(inflate_n(buf, n, 6000, z, &zn) == PMD_OK && zn == 6000 && memcmp(z, d, 6000) == 0,
		       "client window %d", bits);
		free(d);
	}
}

/* ---- freeing ----------------------------------------------------------------- */

static void test_free(void)
{
	const unsigned char *out, *inf;
	size_t inflen;

	for (int round = 0; round < 3; round++) {
		ssize_t r = pmd_deflate(11, "Hello", 5, &out);
		CHECK(r == 7 && memcmp(out, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
		unsigned char *c = dup_exact(out, 7);
		CHECK(pmd_inflate(c, 7, 5, &inf, &inflen) == PMD_OK && inflen == 5 && memcmp(inf, "Hello", 5) == 0);
		free(c);
		pmd_free();
	}
	pmd_free();                                  /* twice in a row: nothing left to free */
}

/* pmd_window: the smallest window from 9 that reaches across the message
 * (zlib reaches 2^bits - 262 back), never more than the client's; and
 * what it picks inflates with the client's own window; pmd_trim gives a
 * large buffer back. */
static void test_window(void)
{
	CHECK(pmd_window(15, 0) == 9 && pmd_window(15, 250) == 9 && pmd_window(15, 251) == 10);
	CHECK(pmd_window(15, 762) == 10 && pmd_window(15, 763) == 11);
	CHECK(pmd_window(15, 32506) == 15 && pmd_window(15, 1 << 20) == 15);
	CHECK(pmd_window(12, 100000) == 12 && pmd_window(9, 100000) == 9 && pmd_window(10, 100) == 9);
	for (unsigned bits = PMD_MIN_BITS; bits <= PMD_MAX_BITS; bits++)
		for (size_t len = 0; len < 70000; len += 997)
			CHECKF(pmd_window(bits, len) <= bits && pmd_window(bits, len) >= PMD_MIN_BITS &&
			       (pmd_window(bits, len) == bits || ((size_t)1 << pmd_window(bits, len)) - 262 >= len),
			       "bits %u len %zu: %u", bits, len, pmd_window(bits, len));
	/* A 3000-byte message compressed for a 12-bit window reads back with 15. */
	static unsigned char msg[3000];
	for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (unsigned char)("abcdefgh"[i % 8] + (i / 97) % 3);
	const unsigned char *z, *out;
	size_t n;
	ssize_t zn = pmd_deflate(pmd_window(15, sizeof(msg)), msg, sizeof(msg), &z);
	CHECK(zn > 0 && pmd_inflate(z, (size_t)zn, sizeof(msg), &out, &n) == PMD_OK && n == sizeof(msg) &&
	      memcmp(out, msg, n) == 0);
	/* Past 1 MiB a buffer is given back by pmd_trim, and all works after. */
	static unsigned char huge[(1 << 20) + 4096];
	CHECK(pmd_deflate(15, huge, sizeof(huge), &z) > 0);
	pmd_trim();
	CHECK(pmd_deflate(15, msg, sizeof(msg), &z) == zn);
}

int main(void)
{
	pmd_free();                                  /* before any use */
	test_inflate_bomb();                         /* first: RSS is still low */
	test_offer();
	test_answer();
	test_deflate();
	test_stored();
	test_inflate();
	test_window();
	test_free();
	return check_summary("pmd");
}
