/* statediff.c - flattened changes between two JSON values (statediff.h).
 * Both texts are parsed into tokens once; the walk descends only where
 * both sides are objects, so its depth is bounded by STATEDIFF_MAX_DEPTH.
 * Values are compared by their raw text: "1.0" and "1" differ, which at
 * worst sends a leaf that did not change (harmless: a change sets a value,
 * and setting it twice gives the same state). */
#include "statediff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_parse.h"

#define NAME_MAX_LEN 255             /* longer member names: their object goes whole */
#define PAIRS_MAX (1u << 16)         /* member lookups per object pair before it goes whole */

struct side {
	const char *s;
	const struct json_tok *t;
};

/* The raw text of token i, quotes included for strings. */
static void raw(const struct side *x, int i, const char **p, size_t *n)
{
	int q = x->t[i].type == JSON_STRING;
	*p = x->s + x->t[i].start - q;
	*n = x->t[i].len + 2 * (size_t)q;
}

static int same(const struct side *a, int ia, const struct side *b, int ib)
{
	const char *p, *q;
	size_t n, m;
	raw(a, ia, &p, &n);
	raw(b, ib, &q, &m);
	return n == m && memcmp(p, q, n) == 0;
}

/* "path": the value of token i, whole. */
static size_t whole(struct jbuf *out, const struct jbuf *path, const struct side *x, int i)
{
	const char *p;
	size_t n;
	raw(x, i, &p, &n);
	json_keyn(out, path->buf, path->len);
	json_raw(out, p, n);
	return 1;
}

/* Member name token i unescaped into name (NUL-terminated). -1 when it
 * cannot be a path step: too long, or holding a '.' or a NUL. */
static int name_of(const struct side *x, int i, char name[NAME_MAX_LEN + 1])
{
	ssize_t n = json_str_decode(x->s, x->t, i, name, NAME_MAX_LEN);
	if (n < 0 || memchr(name, '.', (size_t)n) || memchr(name, '\0', (size_t)n)) return -1;
	name[n] = '\0';
	return 0;
}

/* Whether every member name of object o can be a path step and, when
 * other is not NULL, is also a member of object `other` there. */
static int names_ok(const struct side *x, int o, const struct side *other, int oo)
{
	char name[NAME_MAX_LEN + 1];
	for (uint32_t k = 0, i = (uint32_t)o + 1; k < x->t[o].size; k++, i = x->t[i + 1].next) {
		if (name_of(x, (int)i, name) < 0) return 0;
		if (other && json_obj_get(other->s, other->t, oo, name) < 0) return 0;
	}
	return 1;
}

/* Whether two values are the same to a client: strings by their unescaped
 * text, arrays element by element, objects member by member whatever
 * their order or spacing; numbers and literals by their text (1 and 1.0
 * differ: MessagePack clients see an integer and a float). */
static int equal(const struct side *a, int ia, const struct side *b, int ib, int depth)
{
	int type = a->t[ia].type;
	if (type != b->t[ib].type) return 0;
	if (same(a, ia, b, ib)) return 1;
	if (type == JSON_STRING) {
		const char *p, *q;
		size_t n, m;
		raw(a, ia, &p, &n);
		raw(b, ib, &q, &m);
		return json_value_eq(p, n, q, m);
	}
	if ((type != JSON_ARRAY && type != JSON_OBJECT) || depth >= STATEDIFF_MAX_DEPTH ||
	    (type == JSON_ARRAY && a->t[ia].size != b->t[ib].size))
		return 0;
	if (type == JSON_ARRAY) {
		for (uint32_t k = 0, i = (uint32_t)ia + 1, j = (uint32_t)ib + 1; k < a->t[ia].size;
		     k++, i = a->t[i].next, j = b->t[j].next)
			if (!equal(a, (int)i, b, (int)j, depth + 1)) return 0;
		return 1;
	}
	if ((uint64_t)a->t[ia].size * b->t[ib].size > PAIRS_MAX) return 0;
	char name[NAME_MAX_LEN + 1];
	for (uint32_t k = 0, i = (uint32_t)ib + 1; k < b->t[ib].size; k++, i = b->t[i + 1].next) {
		ssize_t n = json_str_decode(b->s, b->t, (int)i, name, NAME_MAX_LEN);
		if (n < 0 || memchr(name, '\0', (size_t)n)) return 0;
		name[n] = '\0';
		int va = json_obj_get(a->s, a->t, ia, name);
		if (va < 0 || !equal(a, va, b, json_obj_get(b->s, b->t, ib, name), depth + 1)) return 0;
	}
	/* and each of a's in b (repeated names could hide one) */
	for (uint32_t k = 0, i = (uint32_t)ia + 1; k < a->t[ia].size; k++, i = a->t[i + 1].next) {
		ssize_t n = json_str_decode(a->s, a->t, (int)i, name, NAME_MAX_LEN);
		if (n < 0) return 0;
		name[n] = '\0';
		if (json_obj_get(b->s, b->t, ib, name) < 0) return 0;
	}
	return 1;
}

static size_t diff(struct jbuf *out, struct jbuf *path, const struct side *a, int ia, const struct side *b, int ib,
		   int depth)
{
	if (same(a, ia, b, ib)) return 0;
	if (a->t[ia].type != JSON_OBJECT || b->t[ib].type != JSON_OBJECT || depth >= STATEDIFF_MAX_DEPTH)
		return equal(a, ia, b, ib, depth) ? 0 : whole(out, path, b, ib);
	/* Field by field only when no field disappeared and every name can
	 * be a path step; otherwise this object goes whole. */
	if ((uint64_t)a->t[ia].size * b->t[ib].size > PAIRS_MAX || !names_ok(a, ia, b, ib) || !names_ok(b, ib, NULL, 0))
		return equal(a, ia, b, ib, depth) ? 0 : whole(out, path, b, ib);
	size_t base = path->len, added = 0;
	char name[NAME_MAX_LEN + 1];
	for (uint32_t k = 0, i = (uint32_t)ib + 1; k < b->t[ib].size; k++, i = b->t[i + 1].next) {
		name_of(b, (int)i, name);
		/* A repeated name counts once, as its last occurrence (JavaScript). */
		if (json_obj_get(b->s, b->t, ib, name) != (int)i + 1) continue;
		int va = json_obj_get(a->s, a->t, ia, name);
		json_append(path, ".", 1);
		json_append(path, name, strlen(name));
		added += va < 0 ? whole(out, path, b, (int)i + 1) : diff(out, path, a, va, b, (int)i + 1, depth + 1);
		path->len = base;
	}
	return added;
}

int statediff_equal(const char *x, size_t xl, const char *y, size_t yl)
{
	struct json_tok *ta = NULL, *tb = NULL;
	int eq = xl == yl && memcmp(x, y, xl) == 0;
	if (!eq && json_parse_alloc(x, xl, JSON_VALIDATE_MAX_DEPTH, &ta) > 0 &&
	    json_parse_alloc(y, yl, JSON_VALIDATE_MAX_DEPTH, &tb) > 0) {
		struct side a = { x, ta }, b = { y, tb };
		eq = equal(&a, 0, &b, 0, 0);
	}
	free(ta);
	free(tb);
	return eq;
}

size_t statediff(struct jbuf *out, struct jbuf *path, const char *old, size_t old_len,
		 const char *nw, size_t new_len)
{
	struct json_tok *ta = NULL, *tb = NULL;
	size_t added;
	if (json_parse_alloc(old, old_len, JSON_VALIDATE_MAX_DEPTH, &ta) > 0 &&
	    json_parse_alloc(nw, new_len, JSON_VALIDATE_MAX_DEPTH, &tb) > 0) {
		struct side a = { old, ta }, b = { nw, tb };
		added = diff(out, path, &a, 0, &b, 0, 0);
	} else if (old_len == new_len && memcmp(old, nw, old_len) == 0) {
		added = 0;
	} else {
		/* Not parsed (out of memory): the new value whole is still right. */
		json_keyn(out, path->buf, path->len);
		json_raw(out, nw, new_len);
		added = 1;
	}
	free(ta);
	free(tb);
	return added;
}
