/* test_statediff.c - flattened changes (statediff.h). Fixed cases check the
 * exact paths (one per changed leaf, arrays and scalars as leaves, objects
 * whole where a field disappeared, a type changed, a name holds '.' or the
 * nesting is deep); a property test applies the changes of random pairs
 * of values the way the Dashboard Server's clients do (split on '.',
 * create missing objects where the step is falsy, set the last step) to a
 * tree of the old value and requires exactly the new one. */
#include <stdlib.h>

#include "check.h"
#include "json.h"
#include "json_parse.h"
#include "statediff.h"

/* ---- a tiny JSON tree, for applying changes ---------------------------------- */

struct node {
	int type;                 /* enum json_type */
	char *raw;                /* scalars and arrays: the text */
	int n;                    /* objects: members */
	char **names;
	struct node **kids;
};

static struct node *leaf(int type, const char *p, size_t n)
{
	struct node *x = calloc(1, sizeof(*x));
	x->type = type;
	x->raw = strndup(p, n);
	return x;
}

static void drop(struct node *x);

static struct node *build(const char *s, const struct json_tok *t, int i)
{
	if (t[i].type != JSON_OBJECT) {
		int q = t[i].type == JSON_STRING;
		return leaf(t[i].type, s + t[i].start - q, t[i].len + 2 * (size_t)q);
	}
	struct node *x = calloc(1, sizeof(*x));
	x->type = JSON_OBJECT;
	x->names = calloc(t[i].size + 1, sizeof(*x->names));
	x->kids = calloc(t[i].size + 1, sizeof(*x->kids));
	for (uint32_t k = 0, m = (uint32_t)i + 1; k < t[i].size; k++, m = t[m + 1].next) {
		char name[512];
		ssize_t nl = json_str_decode(s, t, (int)m, name, sizeof(name) - 1);
		name[nl < 0 ? 0 : nl] = '\0';
		/* a repeated name: the last wins, as in JavaScript */
		int at = x->n;
		for (int j = 0; j < x->n; j++)
			if (strcmp(x->names[j], name) == 0) at = j;
		if (at == x->n) { x->names[x->n] = strdup(name); x->n++; }
		drop(x->kids[at]);
		x->kids[at] = build(s, t, (int)m + 1);
	}
	return x;
}

static void drop(struct node *x)
{
	if (!x) return;
	for (int i = 0; i < x->n; i++) { free(x->names[i]); drop(x->kids[i]); }
	free(x->names);
	free(x->kids);
	free(x->raw);
	free(x);
}

static struct node *parse(const char *s, size_t n)
{
	struct json_tok *t;
	int r = json_parse_alloc(s, n, JSON_VALIDATE_MAX_DEPTH, &t);
	if (r <= 0) return NULL;
	struct node *x = build(s, t, 0);
	free(t);
	return x;
}


static int cmp_name(const void *a, const void *b, void *names)
{
	char **v = names;
	return strcmp(v[*(const int *)a], v[*(const int *)b]);
}

/* Canonical text: object members sorted by name. */
static void canon(struct jbuf *b, const struct node *x)
{
	if (x->type != JSON_OBJECT) { json_raw(b, x->raw, strlen(x->raw)); return; }
	int idx[64];
	for (int i = 0; i < x->n; i++) idx[i] = i;
	qsort_r(idx, (size_t)x->n, sizeof(int), cmp_name, x->names);
	json_obj_begin(b);
	for (int i = 0; i < x->n; i++) {
		json_key(b, x->names[idx[i]]);
		canon(b, x->kids[idx[i]]);
	}
	json_obj_end(b);
}

/* JavaScript's !value for a leaf. */
static int falsy(const struct node *x)
{
	if (!x) return 1;
	if (x->type == JSON_OBJECT || x->type == JSON_ARRAY) return 0;
	if (x->type == JSON_NULL || x->type == JSON_FALSE) return 1;
	if (x->type == JSON_STRING) return strcmp(x->raw, "\"\"") == 0;
	return x->type == JSON_NUMBER && strtod(x->raw, NULL) == 0;
}

static struct node **member(struct node *x, const char *name)
{
	for (int i = 0; i < x->n; i++)
		if (strcmp(x->names[i], name) == 0) return &x->kids[i];
	x->names = realloc(x->names, (size_t)(x->n + 1) * sizeof(*x->names));
	x->kids = realloc(x->kids, (size_t)(x->n + 1) * sizeof(*x->kids));
	x->names[x->n] = strdup(name);
	x->kids[x->n] = NULL;
	return &x->kids[x->n++];
}

/* setNestedValue: returns 0, or -1 when a step lands on a truthy
 * non-object (the change could not be applied as meant). */
static int set_path(struct node *root, const char *path, struct node *val)
{
	char *p = strdup(path), *save = p, *dot;
	struct node *cur = root;
	while ((dot = strchr(p, '.'))) {
		*dot = '\0';
		struct node **m = member(cur, p);
		if (falsy(*m)) {
			drop(*m);
			*m = calloc(1, sizeof(**m));
			(*m)->type = JSON_OBJECT;
		}
		if ((*m)->type != JSON_OBJECT) { free(save); drop(val); return -1; }
		cur = *m;
		p = dot + 1;
	}
	struct node **m = member(cur, p);
	drop(*m);
	*m = val;
	free(save);
	return 0;
}

/* Applies the changes object text to root; -1 when one could not be. */
static int apply(struct node *root, const char *changes, size_t n)
{
	struct json_tok *t;
	int r = json_parse_alloc(changes, n, JSON_VALIDATE_MAX_DEPTH, &t), rc = 0;
	if (r <= 0 || t[0].type != JSON_OBJECT) { free(t); return -1; }
	for (uint32_t k = 0, m = 1; k < t[0].size; k++, m = t[m + 1].next) {
		char path[4096];
		ssize_t pl = json_str_decode(changes, t, (int)m, path, sizeof(path) - 1);
		if (pl < 0) { rc = -1; break; }
		path[pl] = '\0';
		if (set_path(root, path, build(changes, t, (int)m + 1)) < 0) rc = -1;
	}
	free(t);
	return rc;
}

/* The changes of old -> nw under "ch.k", as text (static buffer). */
static const char *changes(const char *old, const char *nw, size_t *count)
{
	static struct jbuf out;
	struct jbuf path;
	json_reset(&out);
	json_init(&path);
	json_append(&path, "ch.k", 4);
	json_obj_begin(&out);
	*count = statediff(&out, &path, old, strlen(old), nw, strlen(nw));
	json_obj_end(&out);
	json_append(&out, "", 1);
	out.len--;
	CHECK(path.len == 4);
	json_free(&path);
	return out.buf;
}

#define CHECK_DIFF(old, nw, want) do { size_t n_; const char *g_ = changes(old, nw, &n_); \
	CHECKF(strcmp(g_, want) == 0, "\n  %s -> %s\n  got  %s\n  want %s", old, nw, g_, want); } while (0)

static void test_cases(void)
{
	size_t n;
	CHECK_DIFF("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":2}", "{}");
	CHECK(changes("{\"a\":1}", "{\"a\":1}", &n) && n == 0);
	CHECK_DIFF("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":3}", "{\"ch.k.b\":3}");
	/* a new field: that field; nested: only the leaf */
	CHECK_DIFF("{\"a\":1}", "{\"a\":1,\"c\":{\"d\":[1]}}", "{\"ch.k.c\":{\"d\":[1]}}");
	CHECK_DIFF("{\"p\":{\"x\":1,\"y\":2}}", "{\"p\":{\"x\":1,\"y\":5}}", "{\"ch.k.p.y\":5}");
	/* arrays and scalars are leaves */
	CHECK_DIFF("{\"v\":[1,2,3]}", "{\"v\":[1,2,4]}", "{\"ch.k.v\":[1,2,4]}");
	CHECK_DIFF("[1]", "[2]", "{\"ch.k\":[2]}");
	CHECK_DIFF("5", "\"5\"", "{\"ch.k\":\"5\"}");
	/* a field gone: the object whole at its path */
	CHECK_DIFF("{\"p\":{\"x\":1,\"y\":2},\"q\":1}", "{\"p\":{\"x\":1},\"q\":1}", "{\"ch.k.p\":{\"x\":1}}");
	CHECK_DIFF("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"ch.k\":{\"a\":1}}");
	/* object <-> non-object: the node whole */
	CHECK_DIFF("{\"p\":{\"x\":1}}", "{\"p\":7}", "{\"ch.k.p\":7}");
	CHECK_DIFF("{\"p\":null}", "{\"p\":{\"x\":1}}", "{\"ch.k.p\":{\"x\":1}}");
	CHECK_DIFF("{\"a\":1}", "null", "{\"ch.k\":null}");
	/* names with '.': the nearest object without such a name goes whole */
	CHECK_DIFF("{\"p\":{\"a.b\":1,\"c\":1}}", "{\"p\":{\"a.b\":2,\"c\":1}}", "{\"ch.k.p\":{\"a.b\":2,\"c\":1}}");
	CHECK_DIFF("{\"p\":{\"c\":1}}", "{\"p\":{\"c\":1,\"x.y\":0}}", "{\"ch.k.p\":{\"c\":1,\"x.y\":0}}");
	/* an escaped name is a name: "\u0061" is "a" */
	CHECK_DIFF("{\"a\":1}", "{\"\\u0061\":2}", "{\"ch.k.a\":2}");
	/* the same value written otherwise is no change; another number
	 * spelling is (MessagePack clients would see another type) */
	CHECK_DIFF("{\"arr\":[1, \"x\"],\"t\":\"\\u00e9\"}", "{\"arr\":[1,\"x\"],\"t\":\"\xc3\xa9\"}", "{}");
	CHECK_DIFF("{\"v\":[{\"a\":1,\"b\":[2]}]}", "{\"v\":[{ \"b\":[2] ,\"a\":1}]}", "{}");
	CHECK_DIFF("[1]", "[ 1 ]", "{}");
	CHECK_DIFF("{\"n\":1}", "{\"n\":1.0}", "{\"ch.k.n\":1.0}");
	CHECK_DIFF("{\"v\":[{\"a\":1,\"a\":1}]}", "{\"v\":[{\"a\":1,\"b\":1}]}", "{\"ch.k.v\":[{\"a\":1,\"b\":1}]}");
	CHECK(statediff_equal("{\"a\":[1,\"x\"]}", 13, "{ \"a\" : [1, \"x\"] }", 18));
	CHECK(!statediff_equal("[1,2]", 5, "[2,1]", 5));
	/* an object with a '.' in a name, the same value reordered: no change;
	 * repeated names count once, the last */
	CHECK_DIFF("{\"a.b\":1,\"c\":2}", "{\"c\":2,\"a.b\":1}", "{}");
	CHECK(statediff_equal("{\"d\":1,\"d\":2}", 13, "{\"d\":2}", 7));
	/* several leaves */
	CHECK_DIFF("{\"a\":1,\"b\":{\"c\":true,\"d\":\"x\"},\"e\":[]}", "{\"a\":2,\"b\":{\"c\":false,\"d\":\"x\"},\"e\":[]}",
		   "{\"ch.k.a\":2,\"ch.k.b.c\":false}");
	/* past STATEDIFF_MAX_DEPTH levels the object goes whole */
	char deep_a[400] = "", deep_b[400] = "";
	for (int i = 0; i < STATEDIFF_MAX_DEPTH + 2; i++) { strcat(deep_a, "{\"x\":"); strcat(deep_b, "{\"x\":"); }
	strcat(deep_a, "1"); strcat(deep_b, "2");
	for (int i = 0; i < STATEDIFF_MAX_DEPTH + 2; i++) { strcat(deep_a, "}"); strcat(deep_b, "}"); }
	const char *g = changes(deep_a, deep_b, &n);
	CHECKF(n == 1 && strstr(g, "{\"x\":2}") != NULL, "%s", g);
}

/* ---- random pairs ------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static const char *const names[] = { "a", "b", "c", "x.y", "", "0", "price", "d" };

static void gen(struct jbuf *b, int depth)
{
	switch (depth > 3 ? rnd(6) : rnd(9)) {
	case 0: json_int(b, (int64_t)rnd(5)); break;
	case 1: json_cstr(b, rnd(2) ? "" : "s"); break;
	case 2: json_null(b); break;
	case 3: json_bool(b, (int)rnd(2)); break;
	case 4: json_arr_begin(b); for (unsigned i = rnd(3); i; i--) json_int(b, (int64_t)rnd(3)); json_arr_end(b); break;
	case 5: json_double(b, rnd(2) ? 0.5 : 0.0); break;
	default: {
		json_obj_begin(b);
		int used = 0;
		for (unsigned i = rnd(4); i; i--) {
			unsigned k = rnd(8);
			if (used & (1 << k)) continue;
			used |= 1 << k;
			json_key(b, names[k]);
			gen(b, depth + 1);
		}
		json_obj_end(b);
	}
	}
}

/* nw from old by small edits, so most pairs share structure. */
static void mutate(struct jbuf *b, const struct node *x, int depth)
{
	if (x->type != JSON_OBJECT || rnd(8) == 0) {
		if (rnd(3) == 0) gen(b, depth);
		else if (x->type == JSON_OBJECT) mutate(b, x, depth);
		else json_raw(b, x->raw, strlen(x->raw));
		return;
	}
	json_obj_begin(b);
	for (int i = 0; i < x->n; i++) {
		if (rnd(7) == 0) continue;                       /* a field gone */
		json_key(b, x->names[i]);
		if (rnd(3) == 0) mutate(b, x->kids[i], depth + 1);
		else canon(b, x->kids[i]);
	}
	if (rnd(4) == 0) { json_key(b, names[rnd(8)]); gen(b, depth + 1); }   /* maybe a new one */
	json_obj_end(b);
}

static void test_random(void)
{
	int bad = 0;
	for (int round = 0; round < 20000 && bad < 5; round++) {
		struct jbuf a, b, want, got;
		json_init(&a); json_init(&b); json_init(&want); json_init(&got);
		gen(&a, 0);
		struct node *old = parse(a.buf, a.len);
		mutate(&b, old, 0);
		struct node *nw = parse(b.buf, b.len);
		/* the client's state: {"ch":{"k":old}}; the server's: {"ch":{"k":nw}} */
		struct node *state = parse("{\"ch\":{\"k\":0}}", 14);
		drop(state->kids[0]->kids[0]);
		state->kids[0]->kids[0] = old;
		size_t n;
		json_append(&a, "", 1); json_append(&b, "", 1);
		const char *ch = changes(a.buf, b.buf, &n);
		int ok = apply(state, ch, strlen(ch)) == 0;
		canon(&got, state->kids[0]->kids[0]);
		canon(&want, nw);
		if (!ok || got.len != want.len || memcmp(got.buf, want.buf, got.len) != 0) {
			bad++;
			fprintf(stderr, "random %d:\n  old  %s\n  new  %s\n  chg  %s\n  got  %.*s\n", round, a.buf, b.buf, ch,
				(int)got.len, got.buf);
		}
		CHECK(ok && got.len == want.len && memcmp(got.buf, want.buf, got.len) == 0);
		drop(state);
		drop(nw);
		json_free(&a); json_free(&b); json_free(&want); json_free(&got);
	}
}

int main(void)
{
	test_cases();
	test_random();
	return check_summary("statediff");
}
