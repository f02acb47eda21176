/* test_lvc.c - the last-value cache and its snapshot message (lvc.h).
 * Every check compares the whole snapshot text byte for byte (and runs it
 * through json_validate): the newest value per key, least recently updated
 * first; a tombstone removes its key; a null key is never cached (an empty
 * key is a key); past max_keys the least recently updated key goes, and an
 * update makes a key the newest; JSON values verbatim, text (even text that
 * looks like JSON) as JSON strings, binary values as base64 listed in
 * "base64_values", non-UTF-8 keys as base64 listed in "base64_keys"; id,
 * channel and seq as given; with a filter (a token's limits), only the
 * entries whose key and value pass it, base64 lists included. lvc_clear
 * leaves a reusable, empty cache, and
 * LeakSanitizer (asan build) sees every entry freed. */
#include <stdlib.h>

#include "check.h"
#include "filter.h"
#include "json.h"
#include "json_parse.h"
#include "lvc.h"

/* The snapshot text (the caller frees it); checks it is valid JSON. */
static char *snap(const struct lvc *l, const char *channel, uint64_t seq, const char *id)
{
	struct jbuf b;
	json_init(&b);
	lvc_snapshot_json(&b, l, channel, seq, id, id ? strlen(id) : 0, NULL);
	CHECK(!b.failed);
	json_append(&b, "", 1);               /* NUL-terminate */
	char *s = b.failed ? NULL : strdup(b.buf);
	json_free(&b);
	if (!s) abort();
	CHECKF(json_validate(s, strlen(s)), "not JSON: %s", s);
	return s;
}

#define CHECK_SNAP(l, ch, seq, id, want) do { char *s_ = snap(l, ch, seq, id); \
	CHECKF(strcmp(s_, want) == 0, "\n got  %s\n want %s", s_, want); free(s_); } while (0)

static void upd(struct lvc *l, const char *key, const char *value, int is_json)
{
	lvc_update(l, key, key ? strlen(key) : 0, value, value ? strlen(value) : 0, is_json);
}

static void test_values(void)
{
	struct lvc l = { 0 };
	lvc_configure(3);
	CHECK(lvc_enabled());
	CHECK_SNAP(&l, "ch", 0, NULL, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":0,\"data\":{}}");

	upd(&l, "a", "1", 1);
	upd(&l, "b", "{\"x\":[1, 2]}", 1);
	upd(&l, "c", "hello", 0);
	CHECK(l.n == 3);
	CHECK_SNAP(&l, "ch", 5, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":5,\"data\":{\"a\":1,\"b\":{\"x\":[1, 2]},\"c\":\"hello\"}}");

	/* Newest value per key; the update makes a the newest. */
	upd(&l, "a", "2", 1);
	CHECK(l.n == 3);
	CHECK_SNAP(&l, "ch", 6, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":6,\"data\":{\"b\":{\"x\":[1, 2]},\"c\":\"hello\",\"a\":2}}");

	/* Past max_keys: the least recently updated (b) goes. */
	upd(&l, "d", "true", 1);
	CHECK(l.n == 3);
	CHECK_SNAP(&l, "ch", 7, NULL, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":7,\"data\":{\"c\":\"hello\",\"a\":2,\"d\":true}}");

	/* Tombstones: the key goes; one for an absent key changes nothing. */
	upd(&l, "c", NULL, 0);
	upd(&l, "zz", NULL, 1);
	CHECK(l.n == 2);
	CHECK_SNAP(&l, "ch", 8, NULL, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":8,\"data\":{\"a\":2,\"d\":true}}");

	/* A null key is not cached; an empty key is one. */
	upd(&l, NULL, "9", 1);
	CHECK(l.n == 2);
	upd(&l, "", "0", 1);
	CHECK(l.n == 3);
	CHECK_SNAP(&l, "ch", 9, NULL, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":9,\"data\":{\"a\":2,\"d\":true,\"\":0}}");
	lvc_clear(&l);
	CHECK(l.n == 0 && l.old == NULL && l.new == NULL);
	CHECK_SNAP(&l, "ch", 9, NULL, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":9,\"data\":{}}");

	/* Text is a JSON string even when it looks like JSON; escapes apply;
	 * an empty value is "" (not a tombstone). */
	lvc_configure(10);
	upd(&l, "n", "123", 0);
	upd(&l, "q", "he said \"hi\"\n", 0);
	upd(&l, "e", "", 0);
	upd(&l, "k\"\\", "null", 1);
	CHECK(l.n == 4);
	CHECK_SNAP(&l, "c", 1, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"c\",\"seq\":1,\"data\":{\"n\":\"123\",\"q\":\"he said \\\"hi\\\"\\n\","
		   "\"e\":\"\",\"k\\\"\\\\\":null}}");
	/* A value that changes kind (JSON -> text) renders as its newest kind. */
	upd(&l, "n", "abc", 0);
	upd(&l, "q", "[1]", 1);
	CHECK_SNAP(&l, "c", 2, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"c\",\"seq\":2,\"data\":{\"e\":\"\",\"k\\\"\\\\\":null,\"n\":\"abc\",\"q\":[1]}}");
	lvc_clear(&l);
}

static void test_binary(void)
{
	struct lvc l = { 0 };
	lvc_configure(10);
	lvc_update(&l, "bin", 3, "\x00\xff", 2, 0);               /* binary value, UTF-8 key */
	lvc_update(&l, "\xff\x01", 2, "true", 4, 1);              /* JSON value, binary key */
	lvc_update(&l, "txt", 3, "ok", 2, 0);
	lvc_update(&l, "\xfe", 1, "\x80", 1, 0);                  /* both binary */
	CHECK_SNAP(&l, "raw", 3, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"raw\",\"seq\":3,"
		   "\"data\":{\"bin\":\"AP8=\",\"/wE=\":true,\"txt\":\"ok\",\"/g==\":\"gA==\"},"
		   "\"base64_keys\":[\"/wE=\",\"/g==\"],\"base64_values\":[\"bin\",\"/g==\"]}");

	/* Overwriting the binary value with text drops it from base64_values;
	 * removing the binary keys drops base64_keys entirely. */
	lvc_update(&l, "bin", 3, "text", 4, 0);
	lvc_update(&l, "\xff\x01", 2, NULL, 0, 0);
	lvc_update(&l, "\xfe", 1, NULL, 0, 0);
	CHECK_SNAP(&l, "raw", 4, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"raw\",\"seq\":4,\"data\":{\"txt\":\"ok\",\"bin\":\"text\"}}");

	/* Keys are compared as bytes: a NUL inside is part of the key. */
	lvc_update(&l, "a\0b", 3, "1", 1, 1);
	lvc_update(&l, "a\0c", 3, "2", 1, 1);
	lvc_update(&l, "a", 1, "3", 1, 1);
	CHECK(l.n == 5);
	CHECK_SNAP(&l, "raw", 5, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"raw\",\"seq\":5,\"data\":{\"txt\":\"ok\",\"bin\":\"text\","
		   "\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3}}");
	lvc_clear(&l);
}

static void test_id(void)
{
	struct lvc l = { 0 };
	lvc_configure(4);
	upd(&l, "k", "1", 1);
	CHECK_SNAP(&l, "ch", 2, "42", "{\"type\":\"snapshot\",\"id\":42,\"channel\":\"ch\",\"seq\":2,\"data\":{\"k\":1}}");
	CHECK_SNAP(&l, "ch", 2, "\"r-1\"", "{\"type\":\"snapshot\",\"id\":\"r-1\",\"channel\":\"ch\",\"seq\":2,\"data\":{\"k\":1}}");
	CHECK_SNAP(&l, "ch", 2, "{\"a\":[1,\"x\"]}",
		   "{\"type\":\"snapshot\",\"id\":{\"a\":[1,\"x\"]},\"channel\":\"ch\",\"seq\":2,\"data\":{\"k\":1}}");
	CHECK_SNAP(&l, "odd \"name\"", 18446744073709551615ull, NULL,
		   "{\"type\":\"snapshot\",\"channel\":\"odd \\\"name\\\"\",\"seq\":18446744073709551615,\"data\":{\"k\":1}}");
	lvc_clear(&l);
}

/* Many keys through a small bound: exactly the newest max_keys remain,
 * oldest first; lvc_configure(0) turns caching off (updates are ignored). */
static void test_bound(void)
{
	struct lvc l = { 0 };
	char key[16], val[16];
	lvc_configure(100);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "%d", i);
		upd(&l, key, val, 1);
	}
	CHECK(l.n == 100);
	/* Refresh k950: it moves to the newest end. */
	upd(&l, "k950", "-1", 1);
	char *s = snap(&l, "big", 0, NULL);
	const char *head = "{\"type\":\"snapshot\",\"channel\":\"big\",\"seq\":0,\"data\":{\"k900\":900,\"k901\":901,";
	const char *tail = "\"k998\":998,\"k999\":999,\"k950\":-1}}";
	CHECKF(strncmp(s, head, strlen(head)) == 0, "starts %.80s", s);
	CHECKF(strlen(s) > strlen(tail) && strcmp(s + strlen(s) - strlen(tail), tail) == 0, "ends %s",
	       s + (strlen(s) > 60 ? strlen(s) - 60 : 0));
	CHECK(strstr(s, "\"k899\"") == NULL && strstr(s, "\"k950\":950") == NULL);
	/* 100 members, by the parser's count. */
	struct json_tok tok[512];
	int nt = json_parse(s, strlen(s), tok, 512, 8);
	int data = nt > 0 ? json_obj_get(s, tok, 0, "data") : -1;
	CHECK(data > 0 && tok[data].type == JSON_OBJECT && tok[data].size == 100);
	free(s);

	/* Shrinking the bound takes effect at the next update. */
	lvc_configure(2);
	upd(&l, "k999", "0", 1);
	CHECK(l.n == 2);
	CHECK_SNAP(&l, "big", 1, NULL, "{\"type\":\"snapshot\",\"channel\":\"big\",\"seq\":1,\"data\":{\"k950\":-1,\"k999\":0}}");

	lvc_configure(0);
	CHECK(!lvc_enabled());
	upd(&l, "new", "1", 1);
	CHECK(l.n == 2);
	lvc_clear(&l);
}

/* A snapshot restricted to what a token allows: keys and forced fields. */
static void test_only(void)
{
	struct lvc l = { 0 };
	lvc_configure(100);
	upd(&l, "a", "{\"t\":\"acme\",\"v\":1}", 1);
	upd(&l, "b", "{\"t\":\"globex\",\"v\":2}", 1);
	upd(&l, "c", "{\"t\":\"acme\",\"v\":3}", 1);
	upd(&l, "d", "plain text", 0);
	lvc_update(&l, "\xff", 1, "\xfe\xfd", 2, 0);
	struct filter f = { 0 };
	char *want_keys[] = { "a", "b", "d" };
	for (int i = 0; i < 3; i++) CHECK(filter_add_key(&f, strdup(want_keys[i])) == 0);
	struct jbuf b;
	json_init(&b);
	lvc_snapshot_json(&b, &l, "ch", 7, NULL, 0, &f);
	json_append(&b, "", 1);
	CHECKF(strcmp(b.buf, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":7,\"data\":{"
		      "\"a\":{\"t\":\"acme\",\"v\":1},\"b\":{\"t\":\"globex\",\"v\":2},\"d\":\"plain text\"}}") == 0,
	       "%s", b.buf);
	/* A forced field: text values and other tenants are left out. */
	struct filter only = { 0 };
	struct field_filter ff = { "t", "\"acme\"", 6, 0 };
	only.fields = &ff;
	only.nfields = 1;
	json_reset(&b);
	lvc_snapshot_json(&b, &l, "ch", 7, NULL, 0, &only);
	json_append(&b, "", 1);
	CHECKF(strcmp(b.buf, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":7,\"data\":{"
		      "\"a\":{\"t\":\"acme\",\"v\":1},\"c\":{\"t\":\"acme\",\"v\":3}}}") == 0, "%s", b.buf);
	/* The binary entry and its base64 lists appear only when allowed. */
	CHECK(filter_add_key(&f, strdup("\xff")) == 0);
	json_reset(&b);
	lvc_snapshot_json(&b, &l, "ch", 7, NULL, 0, &f);
	json_append(&b, "", 1);
	CHECKF(strstr(b.buf, "\"base64_keys\":[\"/w==\"]") && strstr(b.buf, "\"base64_values\":[\"/w==\"]"), "%s", b.buf);
	json_reset(&b);
	struct filter none = { 0 };
	none.keys = calloc(1, sizeof(char *));
	lvc_snapshot_json(&b, &l, "ch", 7, NULL, 0, &none);
	json_append(&b, "", 1);
	CHECKF(strcmp(b.buf, "{\"type\":\"snapshot\",\"channel\":\"ch\",\"seq\":7,\"data\":{}}") == 0, "%s", b.buf);
	filter_free(&none);
	filter_free(&f);
	json_free(&b);
	lvc_clear(&l);
}

int main(void)
{
	test_only();
	test_values();
	test_binary();
	test_id();
	test_bound();
	return check_summary("lvc");
}
