/* sse.c - SSE events and position tokens (sse.h).
 * Token layout, before base64url: one version byte (1), then per topic
 * its name's length and bytes, the number of its partitions, and per
 * partition the partition number (the first as is, the next ones as the
 * step from the previous, minus one) and the last offset plus one, every
 * number an unsigned LEB128 varint. A partition at offset 10^6 costs 4
 * bytes, at 10^9 6: 6 to 8 characters of the token. */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"

#define TOPIC_MAX 249      /* Kafka's longest topic name */
#define BIN_MAX (SSE_TOKEN_MAX / 4 * 3)

static int pos_cmp(const void *a, const void *b)
{
	const struct sse_pos *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	if (c) return c;
	return (x->partition > y->partition) - (x->partition < y->partition);
}

/* Appends v as a varint; 0, or -1 when it does not fit. */
static int put_varint(unsigned char *b, size_t *n, size_t cap, uint64_t v)
{
	do {
		if (*n >= cap) return -1;
		b[(*n)++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return 0;
}

ssize_t sse_token_encode(struct sse_pos *v, size_t n, char *out, size_t cap)
{
	unsigned char bin[BIN_MAX];
	size_t bl = 0;
	if (n > SSE_POS_MAX) return -1;
	qsort(v, n, sizeof(*v), pos_cmp);
	bin[bl++] = SSE_TOKEN_VERSION;
	for (size_t i = 0; i < n;) {
		size_t tl = strlen(v[i].topic), k = i;
		while (k < n && strcmp(v[k].topic, v[i].topic) == 0) k++;
		if (tl == 0 || tl > TOPIC_MAX || put_varint(bin, &bl, sizeof(bin), tl) < 0 || bl + tl > sizeof(bin))
			return -1;
		memcpy(bin + bl, v[i].topic, tl);
		bl += tl;
		if (put_varint(bin, &bl, sizeof(bin), k - i) < 0) return -1;
		for (size_t j = i; j < k; j++) {
			if (v[j].partition < 0 || v[j].last < -1 || v[j].last == INT64_MAX) return -1;
			if (j > i && v[j].partition == v[j - 1].partition) return -1;
			uint64_t p = j == i ? (uint64_t)v[j].partition : (uint64_t)(v[j].partition - v[j - 1].partition - 1);
			if (put_varint(bin, &bl, sizeof(bin), p) < 0 ||
			    put_varint(bin, &bl, sizeof(bin), (uint64_t)(v[j].last + 1)) < 0)
				return -1;
		}
		i = k;
	}
	if (BASE64_ENCODED_LEN(bl) + 1 > cap) return -1;
	size_t len = base64url_encode(bin, bl, out);
	out[len] = '\0';
	return (ssize_t)len;
}

/* Reads a varint in its shortest form; 0, or -1. */
static int get_varint(const unsigned char *b, size_t n, size_t *at, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*at >= n) return -1;
		unsigned char c = b[(*at)++];
		if (shift == 63 && (c & 0x7e)) return -1;          /* past 64 bits */
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			if (c == 0 && shift) return -1;             /* not the shortest form */
			*v = x;
			return 0;
		}
	}
	return -1;
}

static int topic_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int sse_token_decode(const char *tok, size_t len, struct sse_token *out, const char **why)
{
	unsigned char bin[BIN_MAX];
	out->n = 0;
	*why = "the position is not a kbridge SSE token";
	if (len == 0 || len > SSE_TOKEN_MAX) {
		if (len) *why = "the position token is too long";
		return -1;
	}
	ssize_t bl = base64url_decode(tok, len, bin);
	if (bl < 1) return -1;
	if (bin[0] != SSE_TOKEN_VERSION) {
		*why = "the position token has an unknown version";
		return -1;
	}
	size_t at = 1, used = 0;
	const char *prev = NULL;
	while (at < (size_t)bl) {
		uint64_t tl = 0, np = 0, p = 0, off = 0;
		if (get_varint(bin, (size_t)bl, &at, &tl) < 0 || tl == 0 || tl > TOPIC_MAX || tl > (size_t)bl - at)
			return -1;
		char *name = out->names + used;
		if (used + tl + 1 > sizeof(out->names)) return -1;
		for (size_t i = 0; i < tl; i++) {
			if (!topic_char(bin[at + i])) return -1;
			name[i] = (char)bin[at + i];
		}
		name[tl] = '\0';
		at += tl;
		used += tl + 1;
		if (prev && strcmp(prev, name) >= 0) return -1;    /* topics in order, once each */
		prev = name;
		if (get_varint(bin, (size_t)bl, &at, &np) < 0 || np == 0 || np > SSE_POS_MAX - out->n) {
			if (np > SSE_POS_MAX) *why = "the position token names too many partitions";
			return -1;
		}
		int64_t part = -1;
		for (uint64_t i = 0; i < np; i++) {
			if (get_varint(bin, (size_t)bl, &at, &p) < 0 || get_varint(bin, (size_t)bl, &at, &off) < 0)
				return -1;
			uint64_t next = i == 0 ? p : (uint64_t)part + 1 + p;
			if (p > INT32_MAX || next > INT32_MAX || off > (uint64_t)INT64_MAX) return -1;
			part = (int64_t)next;
			out->pos[out->n++] = (struct sse_pos){ name, (int32_t)part, (int64_t)off - 1 };
		}
	}
	return 0;
}

/* The value of a leading "type" member when it needs no unescaping. */
static size_t event_type(const char *json, size_t len, const char **type)
{
	static const char pre[] = "{\"type\":\"";
	size_t pl = sizeof(pre) - 1;
	if (len <= pl || memcmp(json, pre, pl) != 0) return 0;
	for (size_t i = pl; i < len; i++) {
		unsigned char c = (unsigned char)json[i];
		if (c == '"') {
			*type = json + pl;
			return i - pl;
		}
		if (c == '\\' || c < 0x20) return 0;
	}
	return 0;
}

static size_t put(unsigned char *out, size_t at, const void *p, size_t n)
{
	if (out && n) memcpy(out + at, p, n);
	return at + n;
}

size_t sse_event(unsigned char *out, const char *id, size_t id_len, const char *json, size_t len)
{
	const char *type = NULL;
	size_t tl = event_type(json, len, &type), n = 0;
	if (id) {
		n = put(out, n, "id: ", 4);
		n = put(out, n, id, id_len);
		n = put(out, n, "\n", 1);
	}
	if (tl) {
		n = put(out, n, "event: ", 7);
		n = put(out, n, type, tl);
		n = put(out, n, "\n", 1);
	}
	n = put(out, n, "data: ", 6);
	if (out) {
		unsigned char *d = out + n;
		memcpy(d, json, len);
		for (size_t i = 0; i < len; i++)
			if (d[i] == '\n' || d[i] == '\r') d[i] = ' ';
	}
	n += len;
	return put(out, n, "\n\n", 2);
}
