/* utf8.c - strict UTF-8 validation (RFC 3629 §4 syntax) as a byte-at-a-time
 * DFA, so WebSocket text split into fragments at any byte is checked as it
 * arrives and fails at the first impossible byte (RFC 6455 §8.1 fail-fast).
 * Also a one-sequence decoder for the JSON code. No allocation, no locale. */
#include "utf8.h"

#include <string.h>

/* Byte classes. The second-byte ranges differ after E0, ED, F0 and F4
 * because those lead bytes are where overlongs, surrogates and code points
 * above U+10FFFF become impossible (RFC 3629 §4, UTF8-3 and UTF8-4). */
enum {
	C_ASCII,   /* 00..7F */
	C_CONT1,   /* 80..8F */
	C_CONT2,   /* 90..9F */
	C_CONT3,   /* A0..BF */
	C_BAD,     /* C0, C1, F5..FF: never valid */
	C_L2,      /* C2..DF */
	C_E0,
	C_L3,      /* E1..EC, EE, EF */
	C_ED,
	C_F0,
	C_L4,      /* F1..F3 */
	C_F4,
	C_NCLASS
};

/* States: ACCEPT=0 and REJECT=1 come from the header; the others say what
 * the next byte must be. */
enum { S_NEED1 = 2, S_NEED2, S_NEED3, S_E0, S_ED, S_F0, S_F4, S_NSTATE };

static unsigned char u8_class(unsigned char c)
{
	if (c < 0x80) return C_ASCII;
	if (c < 0x90) return C_CONT1;
	if (c < 0xa0) return C_CONT2;
	if (c < 0xc0) return C_CONT3;
	if (c < 0xc2) return C_BAD;
	if (c < 0xe0) return C_L2;
	if (c == 0xe0) return C_E0;
	if (c == 0xed) return C_ED;
	if (c < 0xf0) return C_L3;
	if (c == 0xf0) return C_F0;
	if (c < 0xf4) return C_L4;
	if (c == 0xf4) return C_F4;
	return C_BAD;
}

#define R UTF8_REJECT
static const unsigned char u8_next[S_NSTATE][C_NCLASS] = {
	/*            ASCII CONT1   CONT2   CONT3   BAD L2       E0    L3       ED    F0    L4       F4 */
	[UTF8_ACCEPT] = { 0,  R,      R,      R,      R,  S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4 },
	[UTF8_REJECT] = { R,  R,      R,      R,      R,  R,       R,    R,       R,    R,    R,       R },
	[S_NEED1]     = { R,  0,      0,      0,      R,  R,       R,    R,       R,    R,    R,       R },
	[S_NEED2]     = { R,  S_NEED1, S_NEED1, S_NEED1, R, R,     R,    R,       R,    R,    R,       R },
	[S_NEED3]     = { R,  S_NEED2, S_NEED2, S_NEED2, R, R,     R,    R,       R,    R,    R,       R },
	[S_E0]        = { R,  R,      R,      S_NEED1, R, R,       R,    R,       R,    R,    R,       R }, /* A0..BF: no overlong */
	[S_ED]        = { R,  S_NEED1, S_NEED1, R,     R, R,       R,    R,       R,    R,    R,       R }, /* 80..9F: no surrogate */
	[S_F0]        = { R,  R,      S_NEED2, S_NEED2, R, R,      R,    R,       R,    R,    R,       R }, /* 90..BF: no overlong */
	[S_F4]        = { R,  S_NEED2, R,      R,      R, R,       R,    R,       R,    R,    R,       R }, /* 80..8F: <= U+10FFFF */
};
#undef R

/* ASCII between code points is skipped a word at a time; other bytes go
 * through u8_class's few compares rather than a 256-entry class table. */
uint32_t utf8_feed(uint32_t state, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0;

	if (state >= S_NSTATE)
		return UTF8_REJECT;  /* not a state we produced */
	while (i < n) {
		if (state == UTF8_ACCEPT) {
			/* Fast path: whole words of ASCII between code points. */
			while (i + 8 <= n) {
				uint64_t w;
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ull)
					break;
				i += 8;
			}
			while (i < n && p[i] < 0x80)
				i++;
			if (i == n)
				break;
		}
		state = u8_next[state][u8_class(p[i++])];
		if (state == UTF8_REJECT)
			break;  /* sticky: the rest cannot matter */
	}
	return state;
}

int utf8_valid(const void *s, size_t n)
{
	return utf8_feed(UTF8_ACCEPT, s, n) == UTF8_ACCEPT;
}

static int is_cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

size_t utf8_decode(const void *s, size_t n, uint32_t *cp)
{
	const unsigned char *p = s;
	unsigned char lo = 0x80, hi = 0xbf;
	uint32_t c;
	size_t len, i;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80) {
		len = 1;
	} else if (c < 0xc2) {
		return 0;  /* continuation byte or overlong 2-byte lead */
	} else if (c < 0xe0) {
		len = 2, c &= 0x1f;
	} else if (c < 0xf0) {
		len = 3, c &= 0x0f;
		if (p[0] == 0xe0) lo = 0xa0;         /* overlong */
		else if (p[0] == 0xed) hi = 0x9f;    /* surrogates */
	} else if (c < 0xf5) {
		len = 4, c &= 0x07;
		if (p[0] == 0xf0) lo = 0x90;         /* overlong */
		else if (p[0] == 0xf4) hi = 0x8f;    /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	if (len > 1 && (p[1] < lo || p[1] > hi))
		return 0;
	for (i = 1; i < len; i++) {
		if (!is_cont(p[i]))
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (cp)
		*cp = c;
	return len;
}
