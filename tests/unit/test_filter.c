/* test_filter.c - subscription filters (filter.h), and narrowing one by a
 * token's limits (filter_restrict): no key list takes the token's keys; a
 * key list keeps only permitted keys and fails, unchanged, when none is;
 * a token's empty key list permits nothing; forced field filters are
 * ANDed on once (never twice); the narrowed filter passes exactly what
 * both pass. */
#include <stdlib.h>

#include "check.h"
#include "filter.h"

static struct filter keys(int n, const char *const *k)
{
	struct filter f = { 0 };
	for (int i = 0; i < n; i++) CHECK(filter_add_key(&f, strdup(k[i])) == 0);
	return f;
}

static int key_ok(const struct filter *f, const char *k)
{
	return filter_key_ok(f, k, strlen(k));
}

static void test_keys(void)
{
	static const char *const ab[] = { "a", "b" }, *const bc[] = { "b", "c" }, *const c[] = { "c" };
	struct filter only = keys(2, ab);

	struct filter any = { 0 };             /* no key asked: the token's keys */
	CHECK(filter_restrict(&any, &only) == 0);
	CHECK(any.nkeys == 2 && key_ok(&any, "a") && key_ok(&any, "b") && !key_ok(&any, "c"));
	CHECK(!filter_key_ok(&any, NULL, 0));  /* a keyless record is no permitted key */

	struct filter two = keys(2, bc);       /* b and c asked: b stays */
	CHECK(filter_restrict(&two, &only) == 0);
	CHECK(two.nkeys == 1 && key_ok(&two, "b") && !key_ok(&two, "c"));

	struct filter one = keys(1, c);        /* only c asked: refused, unchanged */
	CHECK(filter_restrict(&one, &only) == -1);
	CHECK(one.nkeys == 1 && key_ok(&one, "c"));

	struct filter none = { 0 };            /* "keys": [] in a token */
	none.keys = calloc(1, sizeof(char *));
	struct filter asked = { 0 };
	CHECK(filter_restrict(&asked, &none) == -1);
	CHECK(filter_restrict(&two, &none) == -1);

	struct filter open = { 0 };            /* a token without keys leaves keys alone */
	CHECK(filter_restrict(&two, &open) == 0 && two.nkeys == 1);

	filter_free(&only);
	filter_free(&any);
	filter_free(&two);
	filter_free(&one);
	filter_free(&none);
	filter_free(&asked);
}

static void test_fields(void)
{
	struct field_filter tenant = { "tenant", "\"acme\"", 6, 0 };
	struct filter only = { 0 };
	only.fields = &tenant;
	only.nfields = 1;

	struct filter f = { 0 };
	struct field_filter *own = calloc(1, sizeof(*own));
	own->name = strdup("side");
	own->value = strdup("\"buy\"");
	own->value_len = 5;
	f.fields = own;
	f.nfields = 1;
	CHECK(filter_restrict(&f, &only) == 0 && f.nfields == 2);
	CHECK(filter_restrict(&f, &only) == 0 && f.nfields == 2);   /* once, not twice */
	const char *yes = "{\"tenant\":\"acme\",\"side\":\"buy\"}";
	const char *other = "{\"tenant\":\"globex\",\"side\":\"buy\"}";
	const char *sell = "{\"tenant\":\"acme\",\"side\":\"sell\"}";
	CHECK(filter_fields_ok(&f, yes, strlen(yes), 1));
	CHECK(!filter_fields_ok(&f, other, strlen(other), 1));
	CHECK(!filter_fields_ok(&f, sell, strlen(sell), 1));
	CHECK(!filter_fields_ok(&f, "x", 1, 0));                    /* not JSON: no field, out */
	filter_free(&f);
}

int main(void)
{
	test_keys();
	test_fields();
	return check_summary("filter");
}
