/* pmd.c - permessage-deflate (RFC 7692) with zlib: the offer parser and
 * answer, whole-message compression and bounded inflation. Every message
 * is compressed and inflated on its own (no context takeover either way),
 * so one stream per window size serves the whole process and is reset
 * after each message; nothing here belongs to a connection. */
#include "pmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* zlib's default level: at the JSON sizes of market data it costs little
 * more than level 1 and packs better, and a record is compressed once for
 * all its clients (docs/protocol.md#compression). */
#define PMD_LEVEL 6
#define PMD_LARGE (64u << 10)  /* bytes past which a message is compressed at level 1 */
#define PMD_MEM_LEVEL 8
#define PMD_KEEP (1u << 20)   /* buffers past this are given back after use (pmd_trim) */

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };   /* RFC 7692 §7.2.1 */

static struct {
	z_stream def[PMD_VARIANTS];
	unsigned char def_ready[PMD_VARIANTS];
	unsigned char def_level[PMD_VARIANTS];   /* the level each stream is set to */
	z_stream inf;
	int inf_ready;
	unsigned char *dbuf, *ibuf;   /* the last result of each direction */
	size_t dcap, icap;
} P;

/* ---- the offer (RFC 6455 §9.1, RFC 7692 §5, §7.1) ---------------------------- */

static int is_tchar(unsigned char ch)
{
	/* RFC 9110 §5.6.2 token characters. */
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

struct cursor {
	const char *p, *end;
};

static void ows(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

/* A token at the cursor into (s, n); 0 when there is none. */
static int token(struct cursor *c, const char **s, size_t *n)
{
	const char *b = c->p;
	while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
	*s = b;
	*n = (size_t)(c->p - b);
	return *n > 0;
}

/* A parameter value: a token, or a quoted-string whose unescaped text must
 * itself be a token (RFC 6455 §9.1); copied unescaped into v. -1: broken
 * grammar; 0: a value kbridge reads as none of its own (too long). */
static int value(struct cursor *c, char *v, size_t cap, size_t *vn)
{
	*vn = 0;
	if (c->p < c->end && *c->p == '"') {
		c->p++;
		int tok = 1;
		while (c->p < c->end && *c->p != '"') {
			if (*c->p == '\\' && ++c->p == c->end) return -1;
			if (!is_tchar((unsigned char)*c->p)) tok = 0;
			if (*vn < cap) v[*vn] = *c->p;
			(*vn)++;
			c->p++;
		}
		if (c->p == c->end || !tok || *vn == 0) return -1;   /* unterminated, or not a token inside */
		c->p++;
		return *vn < cap;
	}
	const char *s;
	size_t n;
	if (!token(c, &s, &n)) return -1;
	if (n >= cap) return 0;
	memcpy(v, s, n);
	*vn = n;
	return 1;
}

/* RFC 7692 §7.1.2: a window size is 8..15 in decimal, without leading zeros. */
static int window_bits(const char *v, size_t n)
{
	if (n == 1 && v[0] == '8') return 8;
	if (n == 1 && v[0] == '9') return 9;
	if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
	return -1;
}

enum { P_SERVER_NCT = 1, P_CLIENT_NCT = 2, P_SERVER_BITS = 4, P_CLIENT_BITS = 8 };

/* One parameter of a permessage-deflate offer; 0 when it is one kbridge
 * can honour, -1 when the offer must be declined. */
static int param(const char *name, size_t nn, int has_value, const char *v, size_t vn,
		 unsigned *seen, struct pmd_params *out)
{
	unsigned bit;
	int bits = has_value ? window_bits(v, vn) : -1;
#define IS(lit) (nn == sizeof(lit) - 1 && memcmp(name, lit, nn) == 0)
	if (IS("server_no_context_takeover")) {
		bit = P_SERVER_NCT;       /* ours anyway */
		if (has_value) return -1;
	} else if (IS("client_no_context_takeover")) {
		bit = P_CLIENT_NCT;       /* we answer with it anyway */
		if (has_value) return -1;
	} else if (IS("server_max_window_bits")) {
		bit = P_SERVER_BITS;
		if (bits < PMD_MIN_BITS) return -1;   /* 8 cannot be kept by zlib */
		out->server_bits = (uint8_t)bits;
		out->server_bits_named = 1;
	} else if (IS("client_max_window_bits")) {
		bit = P_CLIENT_BITS;      /* any client window inflates in ours */
		if (has_value && bits < 0) return -1;
	} else {
		return -1;
	}
#undef IS
	if (*seen & bit) return -1;       /* RFC 7692 §7: a parameter given twice */
	*seen |= bit;
	return 0;
}

int pmd_offer(const char *value_, size_t len, struct pmd_params *out)
{
	struct cursor c = { value_, value_ + len };
	for (;;) {
		/* RFC 9110 §5.6.1: empty list elements are allowed and skipped. */
		while (ows(&c), c.p < c.end && *c.p == ',') c.p++;
		if (c.p == c.end) return 0;
		const char *name;
		size_t nn;
		if (!token(&c, &name, &nn)) return 0;
		int ours = nn == 18 && memcmp(name, "permessage-deflate", 18) == 0, ok = 1;
		struct pmd_params p = { PMD_MAX_BITS, 0 };
		unsigned seen = 0;
		for (;;) {
			ows(&c);
			if (c.p == c.end || *c.p != ';') break;
			c.p++;
			ows(&c);
			const char *pn;
			size_t pnn;
			if (!token(&c, &pn, &pnn)) return 0;
			ows(&c);
			char v[16];
			size_t vn = 0;
			int has_value = 0;
			if (c.p < c.end && *c.p == '=') {
				c.p++;
				ows(&c);
				int r = value(&c, v, sizeof(v), &vn);
				if (r < 0) return 0;
				has_value = 1;
				if (r == 0) ok = 0;
			}
			if (ours && ok && param(pn, pnn, has_value, v, vn, &seen, &p) < 0) ok = 0;
		}
		if (c.p < c.end && *c.p != ',') return 0;   /* junk after the offer */
		if (ours && ok) {
			*out = p;
			return 1;
		}
	}
}

int pmd_answer(const struct pmd_params *p, char *out, size_t cap)
{
	int n = p->server_bits_named ?
		snprintf(out, cap, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
			 "server_max_window_bits=%u", (unsigned)p->server_bits) :
		snprintf(out, cap, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* ---- compression ------------------------------------------------------------- */

/* Makes room for need bytes in *buf (a large one is given back by
 * pmd_trim once its message is done). */
static int room(unsigned char **buf, size_t *cap, size_t need)
{
	if (*cap >= need) return 0;
	size_t n = need < 4096 ? 4096 : need;
	unsigned char *b = realloc(*buf, n);
	if (!b) return -1;
	*buf = b;
	*cap = n;
	return 0;
}

unsigned pmd_window(unsigned bits, size_t len)
{
	/* zlib reaches back at most 2^bits - 262 bytes (MIN_LOOKAHEAD). */
	unsigned b = PMD_MIN_BITS;
	while (b < bits && ((size_t)1 << b) - 262 < len) b++;
	return b < bits ? b : bits;
}

ssize_t pmd_deflate(unsigned bits, const void *in, size_t len, const unsigned char **out)
{
	if (bits < PMD_MIN_BITS || bits > PMD_MAX_BITS || len > UINT32_MAX) return -1;
	unsigned i = bits - PMD_MIN_BITS;
	z_stream *z = &P.def[i];
	if (!P.def_ready[i]) {
		memset(z, 0, sizeof(*z));
		/* Negative bits: raw DEFLATE, no zlib header (RFC 7692 §7.2.1). */
		if (deflateInit2(z, PMD_LEVEL, Z_DEFLATED, -(int)bits, PMD_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
		P.def_ready[i] = 1;
		P.def_level[i] = PMD_LEVEL;
	}
	/* A large message takes the fastest level: the loop must not stall on
	 * one (a level-6 megabyte takes tens of milliseconds); the stream is
	 * fresh, so deflateParams changes nothing already written. */
	int level = len > PMD_LARGE ? 1 : PMD_LEVEL;
	if (P.def_level[i] != level) {
		if (deflateParams(z, level, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
		P.def_level[i] = (unsigned char)level;
	}
	/* The bound plus the sync flush's empty stored block. */
	size_t need = deflateBound(z, (uLong)len) + 16;
	if (need > UINT32_MAX || room(&P.dbuf, &P.dcap, need) < 0) return -1;   /* zlib counts in 32 bits */
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)len;
	z->next_out = P.dbuf;
	z->avail_out = (uInt)P.dcap;
	int rc = deflate(z, Z_SYNC_FLUSH);
	size_t n = P.dcap - z->avail_out;
	int whole = (rc == Z_OK || rc == Z_BUF_ERROR) && z->avail_in == 0 && z->avail_out > 0;
	deflateReset(z);   /* no context takeover: the next message starts afresh */
	if (!whole || n < 4 || memcmp(P.dbuf + n - 4, tail, 4) != 0) return -1;
	*out = P.dbuf;
	return (ssize_t)(n - 4);
}

size_t pmd_stored_block(unsigned char *out, const void *p, size_t len)
{
	/* RFC 1951 §3.2.4: BFINAL 0, BTYPE 00, padding to the byte, then LEN
	 * and its one's complement, little-endian. */
	out[0] = 0x00;
	out[1] = (unsigned char)len;
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)~len;
	out[4] = (unsigned char)(~len >> 8);
	if (len) memcpy(out + PMD_STORED_OVERHEAD, p, len);
	return len + PMD_STORED_OVERHEAD;
}

/* ---- inflation --------------------------------------------------------------- */

enum pmd_inflate_result pmd_inflate(const unsigned char *in, size_t len, size_t limit,
				    const unsigned char **out, size_t *outlen)
{
	z_stream *z = &P.inf;
	if (!P.inf_ready) {
		memset(z, 0, sizeof(*z));
		/* The largest window reads what any client window wrote. */
		if (inflateInit2(z, -PMD_MAX_BITS) != Z_OK) return PMD_NO_MEMORY;
		P.inf_ready = 1;
	}
	if (len > UINT32_MAX) return PMD_TOO_BIG;
	if (limit > UINT32_MAX - 1) limit = UINT32_MAX - 1;   /* zlib counts in 32 bits */
	if (len == 0) {   /* an empty message, sent as nothing at all */
		*out = (const unsigned char *)"";
		*outlen = 0;
		return PMD_OK;
	}
	/* One byte past the limit is room enough to know it was passed. */
	size_t cap = limit + 1, have = 0;
	size_t first = cap < 4096 ? cap : 4096;
	if (room(&P.ibuf, &P.icap, first) < 0) return PMD_NO_MEMORY;
	enum pmd_inflate_result res = PMD_OK;
	int part = 0, ended = 0;
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)len;
	for (;;) {
		if (z->avail_in == 0 && part == 0) {
			part = 1;          /* the message's own bytes are in: the tail */
			z->next_in = (Bytef *)(uintptr_t)tail;
			z->avail_in = sizeof(tail);
		}
		if (have == P.icap) {
			size_t n = P.icap * 2 < cap ? P.icap * 2 : cap;
			if (n == P.icap) { res = PMD_TOO_BIG; break; }
			if (room(&P.ibuf, &P.icap, n) < 0) { res = PMD_NO_MEMORY; break; }
		}
		z->next_out = P.ibuf + have;
		z->avail_out = (uInt)(P.icap - have);
		int rc = inflate(z, Z_SYNC_FLUSH);
		have = P.icap - z->avail_out;
		if (have > limit) { res = PMD_TOO_BIG; break; }
		if (rc == Z_STREAM_END) { ended = 1; break; }
		if (rc == Z_MEM_ERROR) { res = PMD_NO_MEMORY; break; }
		if (rc != Z_OK && rc != Z_BUF_ERROR) { res = PMD_BAD_DATA; break; }
		if (z->avail_in == 0 && part == 1 && z->avail_out > 0) break;   /* all read, all out */
	}
	if (res == PMD_OK) {
		/* A final block ends the data: only the empty stored block that
		 * RFC 7692 §7.2.1's steps append may follow it (its first byte,
		 * 0x00, when the final block ended on a byte boundary; the rest
		 * is the tail we appended). An open block at the end means the
		 * message was cut short. */
		int trailer = part == 1 || (z->avail_in == 0 || (z->avail_in == 1 && z->next_in[0] == 0));
		if (ended ? !trailer : !(z->data_type & 128)) res = PMD_BAD_DATA;
	}
	inflateReset(z);   /* no context takeover: the next message starts afresh */
	if (res != PMD_OK) return res;
	*out = P.ibuf;
	*outlen = have;
	return PMD_OK;
}

void pmd_trim(void)
{
	if (P.dcap > PMD_KEEP) { free(P.dbuf); P.dbuf = NULL; P.dcap = 0; }
	if (P.icap > PMD_KEEP) { free(P.ibuf); P.ibuf = NULL; P.icap = 0; }
}

void pmd_free(void)
{
	for (unsigned i = 0; i < PMD_VARIANTS; i++)
		if (P.def_ready[i]) deflateEnd(&P.def[i]);
	if (P.inf_ready) inflateEnd(&P.inf);
	free(P.dbuf);
	free(P.ibuf);
	memset(&P, 0, sizeof(P));
}
