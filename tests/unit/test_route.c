/* test_route.c - --topic specs (route.h). routes_parse is checked field by
 * field for "topic", "topic=channel" and "topic=channel:type", literal and
 * regex, and for every refusal with its exact one-line error (empty channel,
 * empty type, bad regex, invalid topic name, a literal topic routed twice);
 * failures after regexes were compiled leak nothing (LeakSanitizer in the
 * asan build). route_match prefers a literal over any regex wherever the
 * regex stands, then takes the first matching regex; route_could_name is 1
 * only for a valid topic name that a regex route without "=channel" matches,
 * and reads exactly len bytes of a name that need not be NUL-terminated. */
#include <stdlib.h>

#include "check.h"
#include "route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse(const char *const *specs, size_t n, struct route **out, char *err, size_t errlen)
{
	memset(err, 0, errlen);
	*out = NULL;
	return routes_parse(specs, n, out, err, errlen);
}

static int streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_forms(void)
{
	static const char *const specs[] = {
		"orders", "prices=quotes", "trades=deals:trade", "^metrics\\..*", "^logs-[0-9]+=logs:line",
	};
	struct route *v;
	char err[256];
	CHECK(parse(specs, N(specs), &v, err, sizeof(err)) == 0 && err[0] == '\0');
	if (!v) return;
	CHECK(streq(v[0].topic, "orders") && !v[0].channel && !v[0].type && !v[0].is_regex);
	CHECK(streq(v[1].topic, "prices") && streq(v[1].channel, "quotes") && !v[1].type && !v[1].is_regex);
	CHECK(streq(v[2].topic, "trades") && streq(v[2].channel, "deals") && streq(v[2].type, "trade"));
	CHECK(streq(v[3].topic, "^metrics\\..*") && !v[3].channel && !v[3].type && v[3].is_regex);
	CHECK(streq(v[4].topic, "^logs-[0-9]+") && streq(v[4].channel, "logs") && streq(v[4].type, "line") &&
	      v[4].is_regex);
	/* The regex is compiled as POSIX extended. */
	CHECK(regexec(&v[4].re, "logs-12", 0, NULL, 0) == 0 && regexec(&v[4].re, "logs-", 0, NULL, 0) != 0);
	/* The specs were copied: the caller's strings are its own. */
	CHECK(v[1].topic != specs[1] && strcmp(specs[1], "prices=quotes") == 0);
	routes_free(v, N(specs));

	/* No specs: an empty array, freed like any other. */
	CHECK(parse(NULL, 0, &v, err, sizeof(err)) == 0 && v != NULL);
	routes_free(v, 0);
	routes_free(NULL, 3);
}

/* Each bad spec list fails with exactly this error; nothing is returned
 * and nothing leaks. */
static void test_errors(void)
{
	static const struct {
		const char *specs[3];
		size_t n;
		const char *err;
	} cases[] = {
		{ { "t=" }, 1, "--topic t=: empty channel after '='" },
		{ { "t=:x" }, 1, "--topic t=:x: empty channel after '='" },
		{ { "t=c:" }, 1, "--topic t=c:: empty type after ':'" },
		{ { "^a.*", "^b=c", "t=c:" }, 3, "--topic t=c:: empty type after ':'" },
		{ { "=c" }, 1, "--topic =c: '' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)" },
		{ { "" }, 1, "--topic : '' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)" },
		{ { "a b" }, 1, "--topic a b: 'a b' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)" },
		{ { "t:x" }, 1, "--topic t:x: 't:x' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)" },
		{ { "t/x=c" }, 1, "--topic t/x=c: 't/x' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)" },
		{ { "^ok", "orders", "orders=again" }, 3, "--topic orders=again: topic orders is already routed by an earlier --topic" },
		{ { "a", "b", "a" }, 3, "--topic a: topic a is already routed by an earlier --topic" },
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct route *v;
		char err[256];
		int rc = parse(cases[i].specs, cases[i].n, &v, err, sizeof(err));
		CHECKF(rc == -1 && v == NULL && strcmp(err, cases[i].err) == 0, "case %zu: rc %d, err \"%s\"", i, rc, err);
	}

	/* A bad regex names the spec and says why (regerror's text). */
	static const char *const bad_re[] = { "^a", "^orders(", "x" };
	struct route *v;
	char err[256];
	const char *want = "--topic ^orders(: bad regular expression: ";
	CHECK(parse(bad_re, N(bad_re), &v, err, sizeof(err)) == -1 && v == NULL);
	CHECKF(strncmp(err, want, strlen(want)) == 0 && strlen(err) > strlen(want), "err \"%s\"", err);

	/* The error is cut to errlen, NUL-terminated. */
	static const char *const empty[] = { "t=" };
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	CHECK(routes_parse(empty, 1, &v, tiny, sizeof(tiny)) == -1 && memcmp(tiny, "--topic", 8) == 0);

	/* Topic names: 249 bytes at most, of [a-zA-Z0-9._-]. */
	char name[260];
	memset(name, 'a', 249);
	name[249] = '\0';
	CHECK(route_topic_valid(name));
	name[249] = 'a';
	name[250] = '\0';
	CHECK(!route_topic_valid(name));
	CHECK(route_topic_valid("Az09._-"));
	CHECK(!route_topic_valid("") && !route_topic_valid("a+b") && !route_topic_valid("\xc3\xa9"));

	/* A regex may be routed twice, and a literal next to a regex that
	 * matches it is fine. */
	static const char *const twice[] = { "^x.*", "^x.*=other", "xy" };
	CHECK(parse(twice, N(twice), &v, err, sizeof(err)) == 0);
	routes_free(v, N(twice));
}

static void test_match(void)
{
	static const char *const specs[] = {
		"^t.*=any", "tx=lit", "^t.*=second", "^u[0-9]+", "^v=named", "plain",
	};
	struct route *v;
	char err[256];
	if (parse(specs, N(specs), &v, err, sizeof(err)) != 0) { CHECKF(0, "%s", err); return; }

	/* A literal wins over a regex listed before it. */
	CHECK(route_match(v, N(specs), "tx") == &v[1]);
	/* Among regexes, the first that matches. */
	CHECK(route_match(v, N(specs), "ty") == &v[0]);
	CHECK(route_match(v, N(specs), "t") == &v[0]);
	CHECK(route_match(v, N(specs), "u42") == &v[3]);
	CHECK(route_match(v, N(specs), "plain") == &v[5]);
	/* Literals match whole names only; regexes as written (here anchored
	 * at the start only). */
	CHECK(route_match(v, N(specs), "plainer") == NULL);
	CHECK(route_match(v, N(specs), "u") == NULL);
	CHECK(route_match(v, N(specs), "u7x") == &v[3]);
	CHECK(route_match(v, N(specs), "zz") == NULL);
	CHECK(route_match(v, 0, "tx") == NULL);

	/* route_could_name: a regex without "=channel" names its topics. */
	CHECK(route_could_name(v, N(specs), "u1", 2) == 1);
	CHECK(route_could_name(v, N(specs), "u1 trailing", 2) == 1);   /* exactly len bytes */
	CHECK(route_could_name(v, N(specs), "u", 1) == 0);
	CHECK(route_could_name(v, N(specs), "ty", 2) == 0);   /* only regexes with a channel match */
	CHECK(route_could_name(v, N(specs), "vv", 2) == 0);
	CHECK(route_could_name(v, N(specs), "plain", 5) == 0); /* literal routes never */
	CHECK(route_could_name(v, N(specs), "", 0) == 0);
	CHECK(route_could_name(v, N(specs), "u1 x", 4) == 0);  /* not a valid topic name */
	CHECK(route_could_name(v, N(specs), "u1:0", 4) == 0);
	CHECK(route_could_name(v, N(specs), "u1\0x", 4) == 0); /* an embedded NUL */
	char longname[300];
	memset(longname, '1', sizeof(longname));
	longname[0] = 'u';
	CHECK(route_could_name(v, N(specs), longname, 249) == 1);
	CHECK(route_could_name(v, N(specs), longname, 250) == 0);
	CHECK(route_could_name(v, N(specs), longname, sizeof(longname)) == 0);
	routes_free(v, N(specs));
}

int main(void)
{
	test_forms();
	test_errors();
	test_match();
	return check_summary("route");
}
