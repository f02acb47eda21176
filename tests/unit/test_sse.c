/* test_sse.c - SSE events and position tokens (sse.h).
 * Tokens: round trips through sse_token_encode and sse_token_decode (one
 * topic, many, unsorted input sorted, partitions 0 and INT32_MAX, offsets
 * at every varint length boundary up to INT64_MAX - 1, 256 partitions and
 * 257, duplicates, empty, 249- and 250-byte topic names, the empty list);
 * the exact bytes of the layout sse.c documents and the size it promises
 * per partition; a token of exactly SSE_TOKEN_MAX characters and the cap
 * contract of the encoder (never a byte past cap). Strict decoding: each
 * refusal is a hand-made byte string, base64url-encoded, next to an
 * accepted twin that differs only in the point under test (version,
 * varints not in shortest form or past 64 bits, topic names of a bad byte
 * or length, topics out of order or repeated, empty topics, partitions
 * past INT32_MAX, offsets past INT64_MAX - 1, too many partitions across
 * topics, every truncation of a valid token in bytes and in text, trailing
 * bytes, the standard alphabet's '+' '/' '=', a token over SSE_TOKEN_MAX);
 * every refusal sets why. Events: the id, event and data lines byte for
 * byte, when a "type" is taken and when not, CR and LF in the JSON made
 * spaces, and the measured length (out NULL) equal to the written one,
 * with nothing written past it. Every input is an exact-size heap copy, so
 * ASan sees a read past it. */
#include <stdint.h>
#include <stdlib.h>

#include "base64.h"
#include "check.h"
#include "sse.h"

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) abort();
	return p;
}

static char *dup_exact(const void *p, size_t n)
{
	char *c = xmalloc(n);
	if (n) memcpy(c, p, n);
	return c;
}

/* ---- bytes of a token, built by hand -------------------------------------- */

struct bin {
	unsigned char b[4096];
	size_t n;
};

static void b_byte(struct bin *b, unsigned char c) { b->b[b->n++] = c; }

static void b_var(struct bin *b, uint64_t v)
{
	do {
		b_byte(b, (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v);
}

static void b_raw(struct bin *b, const void *p, size_t n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

/* A topic's name as its length and bytes. */
static void b_topic(struct bin *b, const char *name)
{
	b_var(b, strlen(name));
	b_raw(b, name, strlen(name));
}

static struct bin *b_new(void)
{
	struct bin *b = xmalloc(sizeof(*b));
	b->n = 0;
	b_byte(b, SSE_TOKEN_VERSION);
	return b;
}

/* Decodes s[0..n) from an exact-size heap copy. */
static int decode_exact(const char *s, size_t n, struct sse_token *t, const char **why)
{
	char *c = dup_exact(s, n);
	*why = NULL;
	int r = sse_token_decode(c, n, t, why);
	free(c);
	return r;
}

static struct sse_token tok;   /* big: not on the stack */

/* Decodes bytes b[0..n) as their base64url token. */
static int decode_bytes(const unsigned char *b, size_t n, const char **why)
{
	char *txt = xmalloc(BASE64_ENCODED_LEN(n) + 1);
	size_t tl = base64url_encode(b, n, txt);
	int r = decode_exact(txt, tl, &tok, why);
	free(txt);
	return r;
}

static void bad_bin(const struct bin *b, const char *what, int line)
{
	const char *why;
	int r = decode_bytes(b->b, b->n, &why);
	CHECKF(r == -1, "line %d: %s decoded (%zu positions)", line, what, tok.n);
	CHECKF(r == 0 || (why && *why), "line %d: %s: no reason", line, what);
}

/* Accepted with n positions, the last of them (topic, partition, last). */
static void good_bin(const struct bin *b, size_t n, const char *topic, int32_t part, int64_t last,
		     const char *what, int line)
{
	const char *why;
	int r = decode_bytes(b->b, b->n, &why);
	CHECKF(r == 0, "line %d: %s refused: %s", line, what, why ? why : "(no reason)");
	if (r) return;
	CHECKF(tok.n == n, "line %d: %s: %zu positions, want %zu", line, what, tok.n, n);
	if (tok.n != n || n == 0) return;
	const struct sse_pos *p = &tok.pos[n - 1];
	CHECKF(!strcmp(p->topic, topic) && p->partition == part && p->last == last,
	       "line %d: %s: last position %s:%d:%lld", line, what, p->topic, (int)p->partition, (long long)p->last);
}
#define BAD_BIN(b, what) bad_bin(b, what, __LINE__)
#define GOOD_BIN(b, n, t, p, l, what) good_bin(b, n, t, p, l, what, __LINE__)

/* ---- round trips ------------------------------------------------------------ */

static int pos_before(const struct sse_pos *a, const struct sse_pos *b)
{
	int c = strcmp(a->topic, b->topic);
	return c < 0 || (c == 0 && a->partition < b->partition);
}

/* Encodes v[0..n) (a copy: encode sorts), decodes the token and checks it
 * gives the same positions in (topic, partition) order. Returns the token's
 * length, or -1 when encode refused. */
static ssize_t round_trip(const struct sse_pos *v, size_t n, char *txt, size_t cap, int line)
{
	struct sse_pos *w = xmalloc(n * sizeof(*w) + 1), *want = xmalloc(n * sizeof(*w) + 1);
	if (n) memcpy(w, v, n * sizeof(*w));
	/* The expected order, by insertion sort (not the module's qsort). */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		while (j && pos_before(&v[i], &want[j - 1])) {
			want[j] = want[j - 1];
			j--;
		}
		want[j] = v[i];
	}
	ssize_t len = sse_token_encode(w, n, txt, cap);
	if (len >= 0) {
		const char *why;
		CHECKF((size_t)len == strlen(txt), "line %d: length %zd, strlen %zu", line, len, strlen(txt));
		int r = decode_exact(txt, (size_t)len, &tok, &why);
		CHECKF(r == 0, "line %d: %s refused: %s", line, txt, why ? why : "?");
		CHECKF(r || tok.n == n, "line %d: %zu positions back, want %zu", line, tok.n, n);
		size_t bad = 0;
		for (size_t i = 0; r == 0 && i < n && i < tok.n; i++) {
			bad += strcmp(tok.pos[i].topic, want[i].topic) || tok.pos[i].partition != want[i].partition ||
			       tok.pos[i].last != want[i].last;
			/* A topic is written once: its positions share one name. */
			if (i && !strcmp(tok.pos[i].topic, tok.pos[i - 1].topic))
				bad += tok.pos[i].topic != tok.pos[i - 1].topic;
			/* encode sorted the caller's array */
			bad += strcmp(w[i].topic, want[i].topic) || w[i].partition != want[i].partition;
		}
		CHECKF(bad == 0, "line %d: %zu positions differ", line, bad);
	}
	free(w);
	free(want);
	return len;
}
#define RT(v, n, txt) round_trip(v, n, txt, sizeof(txt), __LINE__)

static void test_round_trip(void)
{
	char txt[SSE_TOKEN_MAX + 1];
	static char t249[250], t250[251], t249b[250];
	memset(t249, 'x', 249);
	memset(t249b, 'x', 249);
	t249b[248] = 'y';
	memset(t250, 'x', 250);

	/* One topic, one partition, at every varint length boundary. */
	static const int64_t offs[] = { -1, 0, 1, 126, 127, 128, 16383, 16384, (int64_t)1 << 21,
					(int64_t)1 << 31, (int64_t)1 << 35, (int64_t)1 << 62, INT64_MAX - 1 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		struct sse_pos v[2] = { { "trade-info", 0, offs[i] }, { "trade-info", INT32_MAX, offs[i] } };
		CHECKF(RT(v, 1, txt) > 0, "offset %lld", (long long)offs[i]);
		CHECKF(RT(v, 2, txt) > 0, "offset %lld at INT32_MAX", (long long)offs[i]);
	}
	/* Offsets encoded as last + 1: INT64_MAX itself has no spelling. */
	{
		struct sse_pos v[1] = { { "t", 0, INT64_MAX } };
		CHECK(RT(v, 1, txt) == -1);
		v[0].last = -2;
		CHECK(RT(v, 1, txt) == -1);
		v[0].last = INT64_MIN;
		CHECK(RT(v, 1, txt) == -1);
		v[0] = (struct sse_pos){ "t", -1, 5 };
		CHECK(RT(v, 1, txt) == -1);
		v[0].partition = INT32_MIN;
		CHECK(RT(v, 1, txt) == -1);
	}
	/* Many topics, given unsorted (topics, and partitions within a topic). */
	{
		struct sse_pos v[] = {
			{ "orders", 7, 100 }, { "a", 0, -1 }, { "orders", 0, 5 }, { "Z-upper", 3, 3 },
			{ "orders.v2", 1, 1 }, { "orders", 3, 0 }, { "a", INT32_MAX, INT64_MAX - 1 },
			{ "_internal", 2, 128 }, { "a.b-c_d", 1, 1 << 21 }, { "orders", 2, 2 },
		};
		CHECK(RT(v, sizeof(v) / sizeof(v[0]), txt) > 0);
		CHECK(tok.n == 10 && !strcmp(tok.pos[0].topic, "Z-upper") && !strcmp(tok.pos[1].topic, "_internal") &&
		      !strcmp(tok.pos[2].topic, "a") && tok.pos[2].partition == 0 && tok.pos[3].partition == INT32_MAX &&
		      !strcmp(tok.pos[5].topic, "orders") && tok.pos[5].partition == 0 && tok.pos[8].partition == 7 &&
		      !strcmp(tok.pos[9].topic, "orders.v2"));
		/* The same set in another order gives the same token. */
		char again[SSE_TOKEN_MAX + 1];
		struct sse_pos r[sizeof(v) / sizeof(v[0])];
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) r[i] = v[sizeof(v) / sizeof(v[0]) - 1 - i];
		CHECK(RT(r, sizeof(r) / sizeof(r[0]), again) > 0 && !strcmp(txt, again));
	}
	/* A duplicate (topic, partition) is refused, adjacent or not in the input. */
	{
		struct sse_pos v[] = { { "a", 1, 5 }, { "b", 0, 0 }, { "a", 1, 6 } };
		CHECK(RT(v, 3, txt) == -1);
		v[2].partition = 2;
		CHECK(RT(v, 3, txt) > 0);
		struct sse_pos d[] = { { "a", 0, 5 }, { "a", 0, 5 } };
		CHECK(RT(d, 2, txt) == -1);
	}
	/* Topic names: empty refused, 249 bytes fine, 250 refused. */
	{
		struct sse_pos v[] = { { "", 0, 0 } };
		CHECK(RT(v, 1, txt) == -1);
		v[0].topic = t249;
		CHECK(RT(v, 1, txt) > 0 && strlen(tok.pos[0].topic) == 249);
		v[0].topic = t250;
		CHECK(RT(v, 1, txt) == -1);
		struct sse_pos w[] = { { t249b, 0, 0 }, { t249, 1, 1 }, { t249, 0, 0 } };
		CHECK(RT(w, 3, txt) > 0);
	}
	/* The empty list: a valid token, decoding to no position. */
	{
		struct sse_pos v[1] = { { "unused", 0, 0 } };
		CHECK(RT(v, 0, txt) == 2 && !strcmp(txt, "AQ") && tok.n == 0);
	}
	/* 256 partitions: fine in one topic or spread; 257 refused. */
	{
		static struct sse_pos v[SSE_POS_MAX + 1];
		static const char *names[] = { "n0", "n1", "n2", "n3" };
		for (size_t i = 0; i <= SSE_POS_MAX; i++)
			v[i] = (struct sse_pos){ "many", (int32_t)(SSE_POS_MAX - i) * 1000, (int64_t)i * 1000003 - 1 };
		CHECK(RT(v, SSE_POS_MAX, txt) > 0 && tok.n == SSE_POS_MAX);
		CHECK(RT(v, SSE_POS_MAX + 1, txt) == -1);
		for (size_t i = 0; i <= SSE_POS_MAX; i++)
			v[i] = (struct sse_pos){ names[i % 4], (int32_t)i, INT64_MAX - 1 - (int64_t)i };
		CHECK(RT(v, SSE_POS_MAX, txt) > 0 && tok.n == SSE_POS_MAX);
		CHECK(RT(v, SSE_POS_MAX + 1, txt) == -1);
	}
}

/* ---- the layout, byte for byte ---------------------------------------------- */

static void same_as(struct sse_pos *v, size_t n, const struct bin *b, int line)
{
	char txt[SSE_TOKEN_MAX + 1], want[SSE_TOKEN_MAX + 1];
	size_t wl = base64url_encode(b->b, b->n, want);
	want[wl] = '\0';
	ssize_t len = sse_token_encode(v, n, txt, sizeof(txt));
	CHECKF(len == (ssize_t)wl && !strcmp(txt, want), "line %d: %s, want %s", line, len < 0 ? "(refused)" : txt,
	       want);
}
#define SAME_AS(v, n, b) same_as(v, n, b, __LINE__)

static void test_layout(void)
{
	struct bin *b = b_new();
	/* Version, topic, count, partition, last + 1. */
	{
		struct sse_pos v[] = { { "a", 0, -1 } };
		b_topic(b, "a"), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		SAME_AS(v, 1, b);
		char txt[16];
		CHECK(sse_token_encode(v, 1, txt, sizeof(txt)) == 8 && !strcmp(txt, "AQFhAQAA"));
	}
	/* Partitions after the first as the step minus one; offsets that take
	 * 2, 4, 5 and 9 bytes; topics sorted. */
	{
		struct sse_pos v[] = { { "b", 5, 127 }, { "a", 9, 1 << 21 }, { "b", 3, INT64_MAX - 1 },
				       { "b", INT32_MAX, (int64_t)1 << 31 } };
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, 9), b_var(b, ((uint64_t)1 << 21) + 1);
		b_topic(b, "b"), b_var(b, 3);
		b_var(b, 3), b_var(b, (uint64_t)INT64_MAX);
		b_var(b, 1), b_var(b, 128);
		b_var(b, (uint64_t)INT32_MAX - 5 - 1), b_var(b, ((uint64_t)1 << 31) + 1);
		CHECK(b->n == 1 + 2 + 1 + 1 + 4 + 2 + 1 + 1 + 9 + 1 + 2 + 5 + 5);
		SAME_AS(v, 4, b);
		free(b);
	}
	/* sse.c: a partition at offset 10^6 costs 4 bytes, at 10^9 6. One
	 * topic "trade-info" with partitions 0 and 1: 1 + 1 + 10 + 1 bytes,
	 * then 4 per partition: 21 bytes, 28 characters. */
	{
		char txt[SSE_TOKEN_MAX + 1];
		struct sse_pos v[] = { { "trade-info", 1, 1000123 }, { "trade-info", 0, 981233 } };
		CHECK(sse_token_encode(v, 2, txt, sizeof(txt)) == 28 && strlen(txt) == 28);
		v[0].last = 1999999999 / 2;   /* ~10^9: 6 bytes each, 25 bytes: 34 characters */
		v[1].last = 1000000000;
		CHECK(sse_token_encode(v, 2, txt, sizeof(txt)) == 34);
		v[0].last = 1000000;          /* one of each: 23 bytes, 31 characters */
		CHECK(sse_token_encode(v, 2, txt, sizeof(txt)) == 31);
		struct sse_pos one[] = { { "trade-info", 0, 1000000 } };
		CHECK(sse_token_encode(one, 1, txt, sizeof(txt)) == 23);   /* 17 bytes */
	}
}

/* A valid token of exactly SSE_TOKEN_MAX characters (3072 bytes), and the
 * encoder's cap: refused when too small, never a byte written past it. */
static void test_sizes(void)
{
	static char t1[250], t2[250];
	static struct sse_pos v[SSE_POS_MAX];
	memset(t1, 'a', 249);
	memset(t2, 'b', 249);
	const char *why;
	struct bin *b = b_new();
	size_t n = 0;
	/* 2 topics of 249 bytes, 128 partitions each with 9-byte offsets:
	 * 1 + 2 * (2 + 249 + 2) + 256 * 10 = 3067 bytes; the first partition
	 * of t2 at 2^28 (5 bytes) and one step of 128 (2 bytes) make 3072. */
	for (int t = 0; t < 2; t++) {
		b_topic(b, t ? t2 : t1);
		b_var(b, 128);
		int32_t part = 0;
		for (int i = 0; i < 128; i++) {
			uint64_t step = i == 0 ? (t ? (uint64_t)1 << 28 : 0) : (i == 5 && !t ? 128 : 0);
			part = i == 0 ? (int32_t)step : part + 1 + (int32_t)step;
			b_var(b, step);
			int64_t last = INT64_MAX - 1 - (int64_t)n;
			b_var(b, (uint64_t)last + 1);
			v[n++] = (struct sse_pos){ t ? t2 : t1, part, last };
		}
	}
	CHECKF(b->n == SSE_TOKEN_MAX / 4 * 3, "%zu bytes", b->n);
	GOOD_BIN(b, SSE_POS_MAX, t2, (1 << 28) + 127, INT64_MAX - 1 - 255, "3072 bytes");
	char *txt = xmalloc(SSE_TOKEN_MAX + 8), *want = xmalloc(SSE_TOKEN_MAX + 1);
	size_t wl = base64url_encode(b->b, b->n, want);
	CHECK(wl == SSE_TOKEN_MAX);
	CHECK(sse_token_encode(v, n, txt, SSE_TOKEN_MAX + 1) == SSE_TOKEN_MAX && !memcmp(txt, want, wl) &&
	      txt[SSE_TOKEN_MAX] == '\0');
	CHECK(sse_token_encode(v, n, txt, SSE_TOKEN_MAX) == -1);
	CHECK(decode_exact(txt, SSE_TOKEN_MAX, &tok, &why) == 0 && tok.n == SSE_POS_MAX);
	/* One byte more (t1's first partition at 128: 2 bytes) fits no token. */
	for (int i = 0; i < 128; i++) v[i].partition += 128;
	memset(txt, 0x5a, SSE_TOKEN_MAX + 8);
	CHECK(sse_token_encode(v, n, txt, SSE_TOKEN_MAX + 1) == -1);
	CHECK((unsigned char)txt[SSE_TOKEN_MAX + 1] == 0x5a);
	free(b);

	/* Caps around a small token's length: either a whole NUL-terminated
	 * token, or -1; nothing past cap either way. For every cap from the
	 * padded length + 1 up, the token is written. */
	struct sse_pos s[] = { { "trade-info", 0, 981233 } };   /* 17 bytes: 23 characters, 24 padded */
	for (size_t cap = 0; cap <= 30; cap++) {
		memset(txt, 0x5a, SSE_TOKEN_MAX + 8);
		ssize_t r = sse_token_encode(s, 1, txt, cap);
		size_t past = 0;
		for (size_t i = cap; i < 40; i++) past += txt[i] != 0x5a;
		CHECKF(past == 0, "cap %zu: %zu bytes written past it", cap, past);
		CHECKF(r == -1 || (r == 23 && cap >= 24 && strlen(txt) == 23), "cap %zu: %zd", cap, r);
		if (cap >= BASE64_ENCODED_LEN(17) + 1) CHECKF(r == 23, "cap %zu: %zd", cap, r);
	}
	free(txt);
	free(want);
}

/* ---- strict decoding ---------------------------------------------------------- */

static void test_refusals(void)
{
	struct bin *b;
	const char *why;
	static char t249[250], t250[251];
	memset(t249, 'q', 249);
	memset(t250, 'q', 250);

	/* The version byte. */
	for (int ver = 0; ver < 256; ver++) {
		b = b_new();
		b->b[0] = (unsigned char)ver;
		b_topic(b, "a"), b_var(b, 1), b_var(b, 0), b_var(b, 1);
		if (ver == SSE_TOKEN_VERSION) GOOD_BIN(b, 1, "a", 0, 0, "version 1");
		else BAD_BIN(b, "another version");
		if (ver == 0 || ver == 2) {
			b->n = 1;
			BAD_BIN(b, "another version, empty list");
		}
		free(b);
	}
	/* Nothing at all is not a token (the empty list is "AQ"). */
	CHECK(decode_exact("", 0, &tok, &why) == -1 && why && *why);
	CHECK(decode_exact("AQ", 2, &tok, &why) == 0 && tok.n == 0);

	/* Varints in their shortest form only, everywhere one stands: topic
	 * "a" with partitions 4 (offset 300) and 5 (step 0, offset 7), each of
	 * the six numbers also spelt with 1 or 2 needless continuation bytes. */
	static const char *const field[] = { "topic length", "count", "partition", "offset", "step", "offset 2" };
	static const uint64_t vals[6] = { 1, 2, 4, 300, 0, 7 };
	for (int f = 0; f < 6; f++) {
		for (int pad = 0; pad < 3; pad++) {
			b = b_new();
			for (int k = 0; k < 6; k++) {
				if (k != f || pad == 0) {
					b_var(b, vals[k]);
				} else {
					struct bin *tmp = xmalloc(sizeof(*tmp));
					tmp->n = 0;
					b_var(tmp, vals[k]);
					tmp->b[tmp->n - 1] |= 0x80;
					b_raw(b, tmp->b, tmp->n);
					for (int z = 1; z < pad; z++) b_byte(b, 0x80);
					b_byte(b, 0x00);
					free(tmp);
				}
				if (k == 0) b_raw(b, "a", 1);
			}
			if (pad == 0) GOOD_BIN(b, 2, "a", 5, 6, "shortest varints");
			else BAD_BIN(b, field[f]);
			free(b);
		}
	}
	/* Past 64 bits: ten bytes are the most, the tenth holding bit 63 only. */
	{
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, 0);
		size_t at = b->n;
		b_var(b, (uint64_t)INT64_MAX);       /* last INT64_MAX - 1: 9 bytes */
		CHECK(b->n - at == 9);
		GOOD_BIN(b, 1, "a", 0, INT64_MAX - 1, "offset INT64_MAX - 1");
		b->n = at;
		b_var(b, (uint64_t)INT64_MAX + 1);   /* last would be INT64_MAX: 10 bytes */
		CHECK(b->n - at == 10 && b->b[b->n - 1] == 0x01);
		BAD_BIN(b, "offset + 1 past INT64_MAX");
		b->n = at;
		b_var(b, UINT64_MAX);
		BAD_BIN(b, "offset 2^64 - 1");
		b->b[b->n - 1] = 0x02;              /* bit 64 */
		BAD_BIN(b, "varint of 65 bits");
		b->b[b->n - 1] = 0x7f;
		BAD_BIN(b, "varint of 70 bits");
		b->b[b->n - 1] = 0x81;
		b_byte(b, 0x00);                    /* 11 bytes */
		BAD_BIN(b, "varint of 11 bytes");
		b->n = at;
		for (int i = 0; i < 12; i++) b_byte(b, 0x80);
		b_byte(b, 0);
		BAD_BIN(b, "zero in 13 bytes");
		free(b);
		/* The same past 64 bits in a topic length and in a count. */
		b = b_new();
		for (int i = 0; i < 9; i++) b_byte(b, 0xff);
		b_byte(b, 0x02);
		BAD_BIN(b, "topic length of 65 bits");
		free(b);
		b = b_new();
		b_topic(b, "a");
		for (int i = 0; i < 9; i++) b_byte(b, 0x81);
		b_byte(b, 0x01);
		b_var(b, 0), b_var(b, 0);
		BAD_BIN(b, "count past 256");
		free(b);
	}
	/* Topic names: 1-249 bytes of [A-Za-z0-9._-]. */
	for (int c = 0; c < 256; c++) {
		char name[4] = { 'a', (char)c, 'z', 0 };
		b = b_new();
		b_var(b, 3), b_raw(b, name, 3), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			 c == '_' || c == '-';
		if (ok) GOOD_BIN(b, 1, name, 0, -1, "topic char");
		else BAD_BIN(b, "topic char");
		if (!ok) CHECKF(decode_bytes(b->b, b->n, &why) == -1, "byte %d in a topic name", c);
		free(b);
	}
	{
		b = b_new();
		b_var(b, 0), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		BAD_BIN(b, "empty topic");
		free(b);
		b = b_new();
		b_topic(b, t249), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		GOOD_BIN(b, 1, t249, 0, -1, "249-byte topic");
		free(b);
		b = b_new();
		b_topic(b, t250), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		BAD_BIN(b, "250-byte topic");
		free(b);
		b = b_new();
		b_var(b, 5), b_raw(b, "ab", 2);      /* a length past the bytes */
		BAD_BIN(b, "topic length past the end");
		free(b);
	}
	/* Topics in increasing order, once each. */
	{
		static const char *const pairs[][2] = {
			{ "a", "b" }, { "b", "a" }, { "a", "a" }, { "a", "ab" }, { "ab", "a" }, { "Z", "a" },
			{ "a", "Z" }, { "-", "." }, { "9", "A" }, { "_", "a" }, { "a", "_" },
		};
		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			b = b_new();
			b_topic(b, pairs[i][0]), b_var(b, 1), b_var(b, 0), b_var(b, 0);
			b_topic(b, pairs[i][1]), b_var(b, 1), b_var(b, 0), b_var(b, 0);
			if (strcmp(pairs[i][0], pairs[i][1]) < 0) GOOD_BIN(b, 2, pairs[i][1], 0, -1, pairs[i][0]);
			else BAD_BIN(b, pairs[i][0]);
			free(b);
		}
		/* Repeated, not adjacent. */
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		b_topic(b, "b"), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		b_topic(b, "a"), b_var(b, 1), b_var(b, 1), b_var(b, 0);
		BAD_BIN(b, "a, b, a");
		free(b);
	}
	/* A topic has at least one partition. */
	{
		b = b_new();
		b_topic(b, "a"), b_var(b, 0);
		BAD_BIN(b, "no partitions");
		b_topic(b, "b"), b_var(b, 1), b_var(b, 0), b_var(b, 0);
		BAD_BIN(b, "no partitions, then a topic");
		free(b);
	}
	/* Partitions up to INT32_MAX, first as is or by steps. */
	{
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, INT32_MAX), b_var(b, 0);
		GOOD_BIN(b, 1, "a", INT32_MAX, -1, "partition INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, (uint64_t)INT32_MAX + 1), b_var(b, 0);
		BAD_BIN(b, "partition 2^31");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, UINT32_MAX), b_var(b, 0);
		BAD_BIN(b, "partition 2^32 - 1");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 1), b_var(b, (uint64_t)1 << 32), b_var(b, 0);
		BAD_BIN(b, "partition 2^32 (would wrap to 0)");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, INT32_MAX - 1), b_var(b, 0), b_var(b, 0), b_var(b, 0);
		GOOD_BIN(b, 2, "a", INT32_MAX, -1, "step to INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, INT32_MAX), b_var(b, 0), b_var(b, 0), b_var(b, 0);
		BAD_BIN(b, "step past INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, 0), b_var(b, 0), b_var(b, INT32_MAX - 1), b_var(b, 0);
		GOOD_BIN(b, 2, "a", INT32_MAX, -1, "a big step to INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, 1), b_var(b, 0), b_var(b, INT32_MAX - 1), b_var(b, 0);
		BAD_BIN(b, "a big step past INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, 0), b_var(b, 0), b_var(b, (uint64_t)INT32_MAX), b_var(b, 0);
		BAD_BIN(b, "a step of 2^31 - 1 past INT32_MAX");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 2), b_var(b, 0), b_var(b, 0), b_var(b, UINT64_MAX), b_var(b, 0);
		BAD_BIN(b, "a step that wraps");
		free(b);
	}
	/* 256 partitions across topics at most. */
	for (int extra = 0; extra < 2; extra++) {
		b = b_new();
		b_topic(b, "a"), b_var(b, 200);
		for (int i = 0; i < 200; i++) b_var(b, 0), b_var(b, 0);
		b_topic(b, "b"), b_var(b, 56 + (uint64_t)extra);
		for (int i = 0; i < 56 + extra; i++) b_var(b, 0), b_var(b, 0);
		if (extra) BAD_BIN(b, "257 partitions in two topics");
		else GOOD_BIN(b, 256, "b", 55, -1, "256 partitions in two topics");
		free(b);
		b = b_new();
		b_topic(b, "a"), b_var(b, 256 + (uint64_t)extra);
		for (int i = 0; i < 256 + extra; i++) b_var(b, 0), b_var(b, 0);
		if (extra) BAD_BIN(b, "257 partitions in one topic");
		else GOOD_BIN(b, 256, "a", 255, -1, "256 partitions in one topic");
		free(b);
	}
	/* Names fill the decoder's store: 256 topics of 249 bytes would not
	 * fit a token, but many long ones must be read whole. */
	{
		b = b_new();
		char name[250];
		memset(name, 'k', 249);
		name[249] = '\0';
		for (int t = 0; t < 12; t++) {
			name[0] = (char)('A' + t);
			b_topic(b, name), b_var(b, 1), b_var(b, (uint64_t)t), b_var(b, 0);
		}
		name[0] = 'L';
		GOOD_BIN(b, 12, name, 11, -1, "12 topics of 249 bytes");
		free(b);
	}
}

/* Every prefix of a valid token's bytes: a prefix ending just after a
 * topic's last partition (or at the version byte) is the token of fewer
 * topics; any other is refused. And every prefix of its text decodes
 * exactly as the bytes it spells, or is refused. */
static void test_truncation(void)
{
	struct bin *b = b_new();
	size_t ends[8], nends = 0, counts[8];
	ends[nends] = b->n, counts[nends++] = 0;
	b_topic(b, "alpha"), b_var(b, 3);
	b_var(b, 0), b_var(b, 1000001), b_var(b, 4), b_var(b, 0), b_var(b, 200), b_var(b, (uint64_t)INT64_MAX);
	ends[nends] = b->n, counts[nends++] = 3;
	b_topic(b, "beta.x"), b_var(b, 1), b_var(b, 300), b_var(b, 128);
	ends[nends] = b->n, counts[nends++] = 4;
	b_topic(b, "gamma_long-name-of-a-topic"), b_var(b, 2), b_var(b, 7), b_var(b, 1), b_var(b, 0), b_var(b, 70000);
	ends[nends] = b->n, counts[nends++] = 6;
	const char *why;
	CHECK(decode_bytes(b->b, b->n, &why) == 0 && tok.n == 6 && tok.pos[2].partition == 206 &&
	      tok.pos[2].last == INT64_MAX - 1 && tok.pos[5].partition == 8 && tok.pos[5].last == 69999);
	size_t bad = 0;
	for (size_t len = 0; len <= b->n; len++) {
		size_t want = (size_t)-1;
		for (size_t k = 0; k < nends; k++)
			if (ends[k] == len) want = counts[k];
		int r = decode_bytes(b->b, len, &why);
		if (want == (size_t)-1) {
			bad += r != -1 || !why || !*why;
			if (r != -1) fprintf(stderr, "prefix of %zu bytes decoded to %zu\n", len, tok.n);
		} else {
			bad += r != 0 || tok.n != want;
			if (r != 0) fprintf(stderr, "prefix of %zu bytes refused: %s\n", len, why);
		}
	}
	CHECKF(bad == 0, "%zu prefixes misjudged", bad);

	/* The text: a prefix decodes as the bytes it spells (when its trailing
	 * bits are 0 and its length not 4k+1), else it is refused. */
	char txt[SSE_TOKEN_MAX + 1];
	size_t tl = base64url_encode(b->b, b->n, txt);
	bad = 0;
	for (size_t len = 0; len < tl; len++) {
		unsigned char raw[SSE_TOKEN_MAX];
		ssize_t bl = base64url_decode(txt, len, raw);
		int r = decode_exact(txt, len, &tok, &why);
		if (bl < 1) {
			bad += r != -1;
			continue;
		}
		size_t n = tok.n;
		int r2 = decode_bytes(raw, (size_t)bl, &why);
		bad += r != r2 || (r == 0 && n != tok.n);
	}
	CHECKF(bad == 0, "%zu text prefixes misjudged", bad);

	/* Anything after the last topic is refused: each single byte, and a
	 * whole topic made invalid only by being out of order. */
	bad = 0;
	for (int c = 0; c < 256; c++) {
		size_t n = b->n;
		b_byte(b, (unsigned char)c);
		bad += decode_bytes(b->b, b->n, &why) != -1;
		b->n = n;
	}
	CHECKF(bad == 0, "%zu trailing bytes accepted", bad);
	b_byte(b, 0), b_byte(b, 0);
	BAD_BIN(b, "two trailing zeros");
	free(b);
}

/* The text of a token: the URL-safe alphabet, no padding, no other bytes,
 * not past SSE_TOKEN_MAX. */
static void test_text(void)
{
	const char *why;
	char txt[SSE_TOKEN_MAX + 8];
	int dash = 0, under = 0;
	/* Tokens with '-' and '_' in them; each of those made '+' or '/' is refused. */
	for (int64_t off = 0; off < 20000 && !(dash && under); off++) {
		struct sse_pos v[] = { { "t", 0, off * 997 } };
		ssize_t n = sse_token_encode(v, 1, txt, sizeof(txt));
		if (n < 0) { CHECK(0); break; }
		char *d = strchr(txt, '-'), *u = strchr(txt, '_');
		if (!d && !u) continue;
		CHECK(decode_exact(txt, (size_t)n, &tok, &why) == 0 && tok.n == 1 && tok.pos[0].last == off * 997);
		if (d) {
			dash = 1;
			*d = '+';
			CHECKF(decode_exact(txt, (size_t)n, &tok, &why) == -1 && why, "%s", txt);
			*d = '/';
			CHECKF(decode_exact(txt, (size_t)n, &tok, &why) == -1 && why, "%s", txt);
			*d = '-';
		}
		if (u) {
			under = 1;
			*u = '/';
			CHECKF(decode_exact(txt, (size_t)n, &tok, &why) == -1 && why, "%s", txt);
			*u = '+';
			CHECKF(decode_exact(txt, (size_t)n, &tok, &why) == -1 && why, "%s", txt);
			*u = '_';
		}
	}
	CHECK(dash && under);
	/* Padding, whitespace, other bytes. */
	{
		struct sse_pos v[] = { { "orders", 3, 41 } };   /* 1 + 1 + 6 + 1 + 1 + 1 = 11 bytes: 15 characters */
		ssize_t n = sse_token_encode(v, 1, txt, sizeof(txt));
		CHECK(n == 15);
		CHECK(decode_exact(txt, 15, &tok, &why) == 0 && tok.n == 1);
		memcpy(txt + 15, "=", 2);
		CHECK(decode_exact(txt, 16, &tok, &why) == -1 && why);
		memcpy(txt + 15, "==", 3);
		CHECK(decode_exact(txt, 17, &tok, &why) == -1 && why);
		static const char *const tails[] = { " ", "\n", "\r\n", "A", "AA", "AAA", "AAAA", ".", "%3D", "\0" };
		for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
			size_t tl = i == 9 ? 1 : strlen(tails[i]);
			memcpy(txt + 15, tails[i], tl);
			CHECKF(decode_exact(txt, 15 + tl, &tok, &why) == -1 && why, "tail %zu", i);
		}
		/* The last character with non-zero trailing bits: refused. */
		static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		char last = txt[14];
		size_t val = (size_t)(strchr(alpha, last) - alpha);
		CHECK((val & 3) == 0);
		for (size_t bits = 1; bits < 4; bits++) {
			txt[14] = alpha[val | bits];
			CHECKF(decode_exact(txt, 15, &tok, &why) == -1 && why, "%.15s", txt);
		}
		txt[14] = last;
		CHECK(decode_exact(txt, 15, &tok, &why) == 0);
	}
	/* Length: 4096 characters of 'A' is not a token (version 0), 4097 is too long. */
	{
		char *big = xmalloc(SSE_TOKEN_MAX + 8);
		memset(big, 'A', SSE_TOKEN_MAX + 8);
		CHECK(decode_exact(big, SSE_TOKEN_MAX, &tok, &why) == -1 && why && !strstr(why, "long"));
		CHECK(decode_exact(big, SSE_TOKEN_MAX + 1, &tok, &why) == -1 && why && strstr(why, "long"));
		CHECK(decode_exact(big, SSE_TOKEN_MAX + 4, &tok, &why) == -1 && why && strstr(why, "long"));
		/* A valid token with 'A's after it, to over the limit: too long. */
		memcpy(big, "AQFhAQAA", 8);
		CHECK(decode_exact(big, 8, &tok, &why) == 0 && tok.n == 1);
		CHECK(decode_exact(big, SSE_TOKEN_MAX + 4, &tok, &why) == -1 && why && strstr(why, "long"));
		free(big);
	}
	/* The reason for an unknown version says so. */
	CHECK(decode_exact("Ag", 2, &tok, &why) == -1 && why && strstr(why, "version"));
}

/* ---- events ------------------------------------------------------------------- */

/* sse_event's bytes for (id, json) are want; measured and written lengths
 * agree; nothing past them is written; the output has no CR, one "data: "
 * line and ends with the blank line. */
static void ev(const char *id, const char *json, size_t jlen, const char *want, int line)
{
	char *j = dup_exact(json, jlen), *i = id ? dup_exact(id, strlen(id)) : NULL;
	size_t n = sse_event(NULL, i, id ? strlen(id) : 0, j, jlen);
	unsigned char *out = xmalloc(n + 16);
	memset(out, 0x5a, n + 16);
	size_t w = sse_event(out, i, id ? strlen(id) : 0, j, jlen);
	CHECKF(w == n, "line %d: measured %zu, wrote %zu", line, n, w);
	size_t past = 0;
	for (size_t k = n; k < n + 16; k++) past += out[k] != 0x5a;
	CHECKF(past == 0, "line %d: %zu bytes past the length", line, past);
	CHECKF(w == strlen(want) && !memcmp(out, want, w), "line %d: got [%.*s]", line, (int)w, (const char *)out);
	size_t data = 0, cr = 0;
	for (size_t k = 0; k < w; k++) {
		cr += out[k] == '\r';
		if ((k == 0 || out[k - 1] == '\n') && k + 6 <= w && !memcmp(out + k, "data: ", 6)) data++;
	}
	CHECKF(cr == 0 && data == 1 && w >= 2 && out[w - 1] == '\n' && out[w - 2] == '\n' &&
	       memmem(out, w, "\n\n", 2) == out + w - 2, "line %d: event structure", line);
	free(out);
	free(j);
	free(i);
}
#define EV(id, json, want) ev(id, json, strlen(json), want, __LINE__)

static void test_event(void)
{
	EV(NULL, "{\"a\":1}", "data: {\"a\":1}\n\n");
	EV("AQFhAQAA", "{\"a\":1}", "id: AQFhAQAA\ndata: {\"a\":1}\n\n");
	EV("", "{}", "id: \ndata: {}\n\n");          /* an empty id line resets the client's */
	EV(NULL, "", "data: \n\n");
	/* The event type: a leading "type" member with a plain string. */
	EV(NULL, "{\"type\":\"trade\",\"p\":1}", "event: trade\ndata: {\"type\":\"trade\",\"p\":1}\n\n");
	EV("AQ", "{\"type\":\"snapshot\"}", "id: AQ\nevent: snapshot\ndata: {\"type\":\"snapshot\"}\n\n");
	EV(NULL, "{\"type\":\"a.b-c_d e\",\"x\":[]}", "event: a.b-c_d e\ndata: {\"type\":\"a.b-c_d e\",\"x\":[]}\n\n");
	EV(NULL, "{\"type\":\"\xc3\xa9t\xc3\xa9\"}", "event: \xc3\xa9t\xc3\xa9\ndata: {\"type\":\"\xc3\xa9t\xc3\xa9\"}\n\n");
	/* No event line: "type" not first, not a string, escaped, empty, cut. */
	EV(NULL, "{\"x\":1,\"type\":\"t\"}", "data: {\"x\":1,\"type\":\"t\"}\n\n");
	EV(NULL, "{\"type\":1}", "data: {\"type\":1}\n\n");
	EV(NULL, "{\"type\":null}", "data: {\"type\":null}\n\n");
	EV(NULL, "{\"type\":\"a\\\"b\"}", "data: {\"type\":\"a\\\"b\"}\n\n");
	EV(NULL, "{\"type\":\"a\\nb\"}", "data: {\"type\":\"a\\nb\"}\n\n");
	EV(NULL, "{\"type\":\"\\u0074\"}", "data: {\"type\":\"\\u0074\"}\n\n");
	EV(NULL, "{\"type\":\"\"}", "data: {\"type\":\"\"}\n\n");
	EV(NULL, "{\"type\":\"abc", "data: {\"type\":\"abc\n\n");
	EV(NULL, "{\"type\":\"", "data: {\"type\":\"\n\n");
	EV(NULL, "{\"type\"", "data: {\"type\"\n\n");
	EV(NULL, "{\"typex\":\"a\"}", "data: {\"typex\":\"a\"}\n\n");
	EV(NULL, "{\"Type\":\"a\"}", "data: {\"Type\":\"a\"}\n\n");
	/* Not an object. */
	EV(NULL, "[\"type\",\"a\"]", "data: [\"type\",\"a\"]\n\n");
	EV(NULL, "\"type\"", "data: \"type\"\n\n");
	EV(NULL, "42", "data: 42\n\n");
	EV(NULL, "\"{\\\"type\\\":\\\"x\\\"}\"", "data: \"{\\\"type\\\":\\\"x\\\"}\"\n\n");
	/* Line breaks become spaces: data stays one line, no CR anywhere. */
	EV(NULL, "{\r\n\"a\":\r1,\n\"b\":\n\n2}\r", "data: {  \"a\": 1, \"b\":  2} \n\n");
	EV("AQ", "\n", "id: AQ\ndata:  \n\n");
	EV(NULL, "{\"a\":1}\n\ndata: x\n\nevent: y", "data: {\"a\":1}  data: x  event: y\n\n");
	/* A raw line break or CR inside the type: no event line (a control byte). */
	EV(NULL, "{\"type\":\"a\nb\"}", "data: {\"type\":\"a b\"}\n\n");
	EV(NULL, "{\"type\":\"a\rb\"}", "data: {\"type\":\"a b\"}\n\n");
	EV(NULL, "{\"type\":\"a\tb\"}", "data: {\"type\":\"a\tb\"}\n\n");
	EV(NULL, "{\"type\":\"x\"}\r\n", "event: x\ndata: {\"type\":\"x\"}  \n\n");
	/* NUL bytes are carried (the length is what counts). */
	{
		unsigned char out[64];
		size_t n = sse_event(out, NULL, 0, "{\"t\":\"\0\"}", 9);
		CHECK(n == 17 && !memcmp(out, "data: {\"t\":\"\0\"}\n\n", 17));
		CHECK(sse_event(NULL, NULL, 0, "{\"t\":\"\0\"}", 9) == 17);
	}
	/* The id's length is id_len, not strlen. */
	{
		unsigned char out[64];
		size_t n = sse_event(out, "AQFhXYZ", 4, "1", 1);
		CHECK(n == 18 && !memcmp(out, "id: AQFh\ndata: 1\n\n", 18));
	}
	/* A large message measured and written alike. */
	{
		size_t big = 100000;
		char *j = xmalloc(big);
		for (size_t i = 0; i < big; i++) j[i] = "{\"type\":\"bulk\",\"v\":\"ab\r\ncd\"}"[i % 27];
		memcpy(j, "{\"type\":\"bulk\"", 14);
		size_t n = sse_event(NULL, "AQ", 2, j, big);
		unsigned char *out = xmalloc(n);
		CHECK(sse_event(out, "AQ", 2, j, big) == n && n == 4 + 2 + 1 + 7 + 4 + 1 + 6 + big + 2);
		CHECK(memchr(out, '\r', n) == NULL && memmem(out, n, "\n\n", 2) == out + n - 2);
		free(out);
		free(j);
	}
}

int main(void)
{
	test_round_trip();
	test_layout();
	test_sizes();
	test_refusals();
	test_truncation();
	test_text();
	test_event();
	return check_summary("sse");
}
