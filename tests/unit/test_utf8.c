/* test_utf8.c - the UTF-8 DFA and decoder: tables of valid and invalid
 * sequences (Autobahn TestSuite case 6.x style) with the index of the first
 * byte that must be rejected, every prefix checked so rejection is never
 * late, every split point of multi-byte texts fed in pieces, and an
 * exhaustive cross-check against a plain reference decoder. */
#include <stdint.h>

#include "check.h"
#include "utf8.h"

struct vcase {
	const char *name;
	const char *s;
	int len;
	int reject_at;  /* index of the first impossible byte; -1 valid, -2 truncated */
};

#define V(name, s) { name, s, (int)sizeof(s) - 1, -1 }
#define T(name, s) { name, s, (int)sizeof(s) - 1, -2 }
#define X(name, s, at) { name, s, (int)sizeof(s) - 1, at }

static const struct vcase cases[] = {
	V("empty", ""),
	V("ascii", "Hello, world! 0123456789 ~\x7f\x01"),
	V("6.2.1 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
	V("6.5.1 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
	V("6.7.1 U+0000", "\x00"),
	V("6.7.2 U+0080", "\xc2\x80"),
	V("6.7.3 U+0800", "\xe0\xa0\x80"),
	V("6.7.4 U+10000", "\xf0\x90\x80\x80"),
	V("6.9.1 U+007F", "\x7f"),
	V("6.9.2 U+07FF", "\xdf\xbf"),
	V("6.9.3 U+FFFF", "\xef\xbf\xbf"),
	V("6.9.4 U+10FFFF", "\xf4\x8f\xbf\xbf"),
	V("6.11.1 U+D7FF", "\xed\x9f\xbf"),
	V("6.11.2 U+E000", "\xee\x80\x80"),
	V("6.11.3 U+FFFD", "\xef\xbf\xbd"),
	V("6.22 U+FFFE", "\xef\xbf\xbe"),
	V("6.22 U+1FFFF", "\xf0\x9f\xbf\xbf"),
	V("6.22 U+10FFFE", "\xf4\x8f\xbf\xbe"),
	V("U+2028", "\xe2\x80\xa8"),
	V("G clef", "\xf0\x9d\x84\x9e"),
	V("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"),

	X("6.3.1 kosme-edited surrogate", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 12),
	X("6.4.1 fail fast mid-text", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", 12),
	X("6.8.1 5-byte form", "\xf8\x88\x80\x80\x80", 0),
	X("6.8.2 6-byte form", "\xfc\x84\x80\x80\x80\x80", 0),
	X("6.10.1 U+110000", "\xf4\x90\x80\x80", 1),
	X("6.10.2 F5 lead", "\xf5\x80\x80\x80", 0),
	X("6.10.3 F7 BF BF BF", "\xf7\xbf\xbf\xbf", 0),
	X("6.12.1 lone 80", "\x80", 0),
	X("6.12.2 lone BF", "\xbf", 0),
	X("6.12.3 80 BF", "\x80\xbf", 0),
	X("6.12.8 after ascii", "ab\x80", 2),
	X("6.13.1 lead then space", "\xc0\x20", 0),
	X("6.13.2 E1 then space", "\xe1\x20", 1),
	X("6.13.3 F1 then space", "\xf1\x20", 1),
	X("6.14.x C2 then lead", "\xc2\xc2", 1),
	X("6.14.x E1 80 then ascii", "\xe1\x80\x41", 2),
	X("6.14.x F1 80 80 then ascii", "\xf1\x80\x80\x41", 3),
	X("6.17.1 FE", "\xfe", 0),
	X("6.17.2 FF", "\xff", 0),
	X("6.17.3 FE FE FF FF", "\xfe\xfe\xff\xff", 0),
	X("6.18.1 overlong / 2", "\xc0\xaf", 0),
	X("6.18.2 overlong / 3", "\xe0\x80\xaf", 1),
	X("6.18.3 overlong / 4", "\xf0\x80\x80\xaf", 1),
	X("6.19.1 max overlong 2", "\xc1\xbf", 0),
	X("6.19.2 max overlong 3", "\xe0\x9f\xbf", 1),
	X("6.19.3 max overlong 4", "\xf0\x8f\xbf\xbf", 1),
	X("6.19.4 overlong NUL", "\xc0\x80", 0),
	X("6.20.1 U+D800", "\xed\xa0\x80", 1),
	X("6.20.2 U+DB7F", "\xed\xad\xbf", 1),
	X("6.20.4 U+DBFF", "\xed\xaf\xbf", 1),
	X("6.20.5 U+DC00", "\xed\xb0\x80", 1),
	X("6.20.7 U+DFFF", "\xed\xbf\xbf", 1),
	X("6.21.1 paired surrogates", "\xed\xa0\x80\xed\xb0\x80", 1),
	X("F4 BF", "\xf4\xbf\xbf\xbf", 1),
	X("reject is sticky", "\xff" "abc", 0),

	T("truncated C2", "\xc2"),
	T("truncated E1 80", "\xe1\x80"),
	T("truncated E0 A0", "\xe0\xa0"),
	T("truncated ED 9F", "\xed\x9f"),
	T("truncated F1 80 80", "\xf1\x80\x80"),
	T("truncated F4 8F BF", "\xf4\x8f\xbf"),
	T("6.6.x kosme cut", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce"),
};

/* Every prefix of every case: REJECT exactly from the first impossible
 * byte on, and the whole-text verdict from utf8_valid. */
static void test_table(void)
{
	size_t c;

	for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const struct vcase *t = &cases[c];
		uint32_t st = UTF8_ACCEPT;
		int k, late = 0;

		for (k = 1; k <= t->len; k++) {
			uint32_t whole = utf8_feed(UTF8_ACCEPT, t->s, (size_t)k);
			int want_rej = t->reject_at >= 0 && k > t->reject_at;

			st = utf8_feed(st, t->s + k - 1, 1);   /* byte by byte too */
			if ((whole == UTF8_REJECT) != want_rej || (st == UTF8_REJECT) != want_rej)
				late++;
		}
		CHECKF(late == 0, "%s: rejection at the wrong byte (%d prefixes)", t->name, late);
		CHECKF(utf8_valid(t->s, (size_t)t->len) == (t->reject_at == -1), "%s: utf8_valid", t->name);
		if (t->reject_at == -2)
			CHECKF(st != UTF8_ACCEPT && st != UTF8_REJECT, "%s: state %u", t->name, st);
	}
}

/* Valid texts split at every pair of points stay valid, and the state in
 * between is never REJECT. */
static void test_splits(void)
{
	static const char *const texts[] = {
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
		"x\xf0\x9d\x84\x9e\xe2\x80\xa8\xc3\xa9\xf4\x8f\xbf\xbf\xed\x9f\xbfy",
		"abcdefghijklmnop\342\202\254abcdefghijklmnopqrstuvwxyz\xf0\x9f\x98\x80",
	};
	size_t t, i, j, n, bad = 0;

	for (t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		const char *s = texts[t];
		n = strlen(s);
		for (i = 0; i <= n; i++)
			for (j = i; j <= n; j++) {
				uint32_t a = utf8_feed(UTF8_ACCEPT, s, i);
				uint32_t b = utf8_feed(a, s + i, j - i);
				uint32_t c = utf8_feed(b, s + j, n - j);
				bad += a == UTF8_REJECT || b == UTF8_REJECT || c != UTF8_ACCEPT;
			}
	}
	CHECKF(bad == 0, "%zu split feeds wrong", bad);

	/* Empty feeds keep any state. */
	CHECK(utf8_feed(UTF8_ACCEPT, "", 0) == UTF8_ACCEPT);
	CHECK(utf8_feed(UTF8_REJECT, "", 0) == UTF8_REJECT);
	CHECK(utf8_feed(UTF8_REJECT, "a", 1) == UTF8_REJECT);
	{
		uint32_t mid = utf8_feed(UTF8_ACCEPT, "\xe2", 1);
		CHECK(utf8_feed(mid, "", 0) == mid);
		CHECK(utf8_feed(utf8_feed(mid, "\x82", 1), "\xac", 1) == UTF8_ACCEPT);
	}
	/* A state we never produce is refused, not misread. */
	CHECK(utf8_feed(12345, "a", 1) == UTF8_REJECT);
}

/* The word-at-a-time ASCII path must not step over a bad byte anywhere. */
static void test_fast_path(void)
{
	char buf[80];
	size_t pos, bad = 0;

	for (pos = 0; pos < sizeof buf; pos++) {
		memset(buf, 'a', sizeof buf);
		buf[pos] = (char)0x80;
		bad += utf8_valid(buf, sizeof buf) != 0;
		bad += utf8_feed(UTF8_ACCEPT, buf, pos) != UTF8_ACCEPT;
		bad += utf8_feed(UTF8_ACCEPT, buf, pos + 1) != UTF8_REJECT;
		buf[pos] = (char)0xc3;  /* truncated at the very end when pos is last */
		if (pos + 1 < sizeof buf)
			buf[pos + 1] = (char)0xa9;
		bad += utf8_valid(buf, sizeof buf) != (pos + 1 < sizeof buf);
	}
	CHECKF(bad == 0, "%zu fast-path errors", bad);
}

/* Reference: decode by bit pattern, then check the RFC 3629 rules. */
static int ref_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, len, k;
	uint32_t cp;

	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) { i++; continue; }
		if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
		else return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
			return 0;  /* overlong */
		if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += len;
	}
	return 1;
}

/* utf8_decode consumed sequence by sequence must agree with utf8_valid. */
static int by_decode(const unsigned char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if ((k = utf8_decode(s + i, n - i, NULL)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

static void test_exhaustive(void)
{
	static const unsigned char tails[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff };
	unsigned char s[4];
	unsigned long bad = 0, bad_dec = 0;
	unsigned a, b, c, d;

	for (a = 0; a < 256; a++)
		for (b = 0; b < 256; b++) {
			s[0] = (unsigned char)a, s[1] = (unsigned char)b;
			bad += utf8_valid(s, 1) != ref_valid(s, 1);
			bad += utf8_valid(s, 2) != ref_valid(s, 2);
			bad_dec += by_decode(s, 2) != ref_valid(s, 2);
			for (c = 0; c < 256; c++) {
				s[2] = (unsigned char)c;
				bad += utf8_valid(s, 3) != ref_valid(s, 3);
				if (a >= 0xe0)
					bad_dec += by_decode(s, 3) != ref_valid(s, 3);
			}
			if (a >= 0xf0)
				for (c = 0; c < sizeof tails; c++)
					for (d = 0; d < sizeof tails; d++) {
						s[2] = tails[c], s[3] = tails[d];
						bad += utf8_valid(s, 4) != ref_valid(s, 4);
						bad_dec += by_decode(s, 4) != ref_valid(s, 4);
					}
		}
	CHECKF(bad == 0, "%lu sequences misjudged by the DFA", bad);
	CHECKF(bad_dec == 0, "%lu sequences misjudged by utf8_decode", bad_dec);
}

static void test_decode(void)
{
	static const struct { const char *s; size_t len; uint32_t cp; } ok[] = {
		{ "A", 1, 0x41 }, { "\xc2\x80", 2, 0x80 }, { "\xdf\xbf", 2, 0x7ff },
		{ "\xe0\xa0\x80", 3, 0x800 }, { "\xed\x9f\xbf", 3, 0xd7ff },
		{ "\xee\x80\x80", 3, 0xe000 }, { "\xe2\x80\xa9", 3, 0x2029 },
		{ "\xf0\x90\x80\x80", 4, 0x10000 }, { "\xf4\x8f\xbf\xbf", 4, 0x10ffff },
	};
	size_t i;
	uint32_t cp;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		cp = 0;
		CHECKF(utf8_decode(ok[i].s, strlen(ok[i].s), &cp) == ok[i].len && cp == ok[i].cp,
		       "decode %zu gave U+%04X", i, (unsigned)cp);
	}
	CHECK(utf8_decode("\0", 1, &cp) == 1 && cp == 0);
	CHECK(utf8_decode("ab", 2, NULL) == 1);
	CHECK(utf8_decode("", 0, &cp) == 0);
	CHECK(utf8_decode("\xe2\x80", 2, &cp) == 0);   /* truncated */
	CHECK(utf8_decode("\xe2\x80\xa8", 2, &cp) == 0); /* n limits it */
	CHECK(utf8_decode("\xed\xa0\x80", 3, &cp) == 0);
	CHECK(utf8_decode("\xc0\x80", 2, &cp) == 0);
	CHECK(utf8_decode("\xf4\x90\x80\x80", 4, &cp) == 0);
	CHECK(utf8_decode("\x80", 1, &cp) == 0);
}

int main(void)
{
	test_table();
	test_splits();
	test_fast_path();
	test_exhaustive();
	test_decode();
	return check_summary("utf8");
}
