/* fuzz_sse.c - libFuzzer target for sse.c (SSE events and position tokens).
 * Every input is used three ways:
 *   - as a token's text for sse_token_decode, and
 *   - as a token's bytes, base64url-encoded first (so mutations reach the
 *     binary layout, which random text rarely spells): when either decodes,
 *     the positions are well formed (1-249 bytes of [A-Za-z0-9._-] per topic
 *     name, topics increasing, partitions 0..INT32_MAX increasing within a
 *     topic, offsets -1..INT64_MAX-1, at most SSE_POS_MAX), sse_token_encode
 *     writes them back as exactly the text decoded (strict decoding: one
 *     spelling per token), and that text decodes again to the same
 *     positions; when it does not decode, there is a reason;
 *   - as a message's JSON for sse_event, without an id, with a short one and
 *     with the token when it decoded: the length measured (out NULL) is the
 *     length written, nothing is written past it, the bytes are the id line,
 *     an event line when the JSON starts {"type":"T" with T plain, one
 *     "data: " line with the JSON's CR and LF made spaces, and the blank
 *     line; no CR anywhere and no blank line but the last.
 * Every input is an exact-size heap copy, so ASan sees a read past it.
 * Build: make fuzz-build (sse.c is in FUZZ_LIB). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

static unsigned char *dup_exact(const void *p, size_t n)
{
	unsigned char *c = malloc(n ? n : 1);
	ASSERT(c);
	if (n) memcpy(c, p, n);
	return c;
}

static int topic_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

static struct sse_token tok, again;
static struct sse_pos pos[SSE_POS_MAX];
static char text[SSE_TOKEN_MAX + 1];

/* The positions of a decoded token are what sse.h promises. */
static void well_formed(const struct sse_token *t)
{
	ASSERT(t->n <= SSE_POS_MAX);
	for (size_t i = 0; i < t->n; i++) {
		const struct sse_pos *p = &t->pos[i];
		size_t tl = strlen(p->topic);
		ASSERT(tl >= 1 && tl <= 249);
		ASSERT(p->topic >= t->names && p->topic + tl < t->names + sizeof(t->names));
		for (size_t k = 0; k < tl; k++) ASSERT(topic_char((unsigned char)p->topic[k]));
		ASSERT(p->partition >= 0 && p->last >= -1 && p->last < INT64_MAX);
		if (i) {
			int c = strcmp(t->pos[i - 1].topic, p->topic);
			ASSERT(c < 0 || (c == 0 && t->pos[i - 1].partition < p->partition));
			/* One name per topic. */
			ASSERT(c != 0 || t->pos[i - 1].topic == p->topic);
		}
	}
}

static void check_event(const unsigned char *json, size_t len, const char *id, size_t id_len)
{
	size_t n = sse_event(NULL, id, id_len, (const char *)json, len);
	unsigned char *out = malloc(n + 16);
	ASSERT(out);
	memset(out, 0x5a, n + 16);
	ASSERT(sse_event(out, id, id_len, (const char *)json, len) == n);
	for (size_t i = n; i < n + 16; i++) ASSERT(out[i] == 0x5a);

	/* The type sse.h describes: {"type":"T" with T not empty, no '\\', no
	 * control byte. */
	static const char pre[] = "{\"type\":\"";
	size_t tl = 0;
	if (len > 9 && !memcmp(json, pre, 9)) {
		size_t i = 9;
		while (i < len && json[i] != '"' && json[i] != '\\' && json[i] >= 0x20) i++;
		if (i < len && json[i] == '"') tl = i - 9;
	}
	size_t at = 0;
	if (id) {
		ASSERT(n >= 5 + id_len && !memcmp(out, "id: ", 4) && !memcmp(out + 4, id, id_len) && out[4 + id_len] == '\n');
		at = 5 + id_len;
	}
	if (tl) {
		ASSERT(!memcmp(out + at, "event: ", 7) && !memcmp(out + at + 7, json + 9, tl) && out[at + 7 + tl] == '\n');
		at += 8 + tl;
	}
	ASSERT(n == at + 6 + len + 2);
	ASSERT(!memcmp(out + at, "data: ", 6));
	for (size_t i = 0; i < len; i++) {
		unsigned char want = json[i] == '\r' || json[i] == '\n' ? ' ' : json[i];
		ASSERT(out[at + 6 + i] == want);
	}
	ASSERT(out[n - 2] == '\n' && out[n - 1] == '\n');
	/* No CR, one data line, one blank line (the last). */
	size_t data = 0;
	for (size_t i = 0; i < n; i++) {
		ASSERT(out[i] != '\r');
		if (i + 1 < n - 1) ASSERT(!(out[i] == '\n' && out[i + 1] == '\n'));
		if ((i == 0 || out[i - 1] == '\n') && i + 6 <= n && !memcmp(out + i, "data: ", 6)) data++;
	}
	ASSERT(data == 1);
	free(out);
}

/* Decodes txt[0..len) (an exact-size heap copy); when it is a token, its
 * positions re-encode to the same text, which decodes to the same positions.
 * Returns 1 when it decoded. */
static int check_token(const char *txt, size_t len)
{
	char *c = (char *)dup_exact(txt, len);
	const char *why = NULL;
	int r = sse_token_decode(c, len, &tok, &why);
	ASSERT(r == 0 || r == -1);
	if (r < 0) {
		ASSERT(why && *why);
		free(c);
		return 0;
	}
	ASSERT(len >= 2 && len <= SSE_TOKEN_MAX);
	well_formed(&tok);
	memcpy(pos, tok.pos, tok.n * sizeof(pos[0]));
	ssize_t n = sse_token_encode(pos, tok.n, text, sizeof(text));
	ASSERT(n == (ssize_t)len && text[n] == '\0' && !memcmp(text, c, len));
	/* encode kept the order decode gave (already sorted). */
	for (size_t i = 0; i < tok.n; i++)
		ASSERT(pos[i].topic == tok.pos[i].topic && pos[i].partition == tok.pos[i].partition &&
		       pos[i].last == tok.pos[i].last);
	ASSERT(sse_token_decode(text, (size_t)n, &again, &why) == 0 && again.n == tok.n);
	for (size_t i = 0; i < tok.n; i++)
		ASSERT(!strcmp(again.pos[i].topic, tok.pos[i].topic) && again.pos[i].partition == tok.pos[i].partition &&
		       again.pos[i].last == tok.pos[i].last);
	/* A token and an 'A' is never a token: a lone character, or a byte 0
	 * where a topic's name length (never 0) would be. */
	if (len < SSE_TOKEN_MAX) {
		char *more = malloc(len + 1);
		ASSERT(more);
		memcpy(more, c, len);
		more[len] = 'A';
		ASSERT(sse_token_decode(more, len + 1, &again, &why) == -1 && why && *why);
		free(more);
	}
	free(c);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *in = dup_exact(data, size);
	int as_text = check_token((const char *)in, size);

	/* The input as a token's bytes. */
	if (BASE64_ENCODED_LEN(size) <= SSE_TOKEN_MAX) {
		char *t = malloc(BASE64_ENCODED_LEN(size) + 1);
		ASSERT(t);
		size_t tl = base64url_encode(in, size, t);
		if (check_token(t, tl)) {
			/* sse_token_encode's bytes are the input's. */
			unsigned char *bin = malloc(BASE64URL_DECODED_LEN(tl) + 1);
			ASSERT(bin && base64url_decode(text, tl, bin) == (ssize_t)size && !memcmp(bin, in, size));
			free(bin);
			check_event(in, size, t, tl);
		}
		free(t);
	}

	check_event(in, size, NULL, 0);
	check_event(in, size, "AQ", 2);
	if (as_text) check_event(in, size, (const char *)in, size);
	free(in);
	return 0;
}
