/* test_tp.c - "topic:partition" keys (tp.h). tp_format is checked for its
 * exact text and returned length, including truncation to the buffer (always
 * NUL-terminated, length = what fits); tp_parse for splitting at the last
 * ':', every refusal (no colon, empty topic or partition, signs, spaces,
 * letters, an overlong number, a topic that does not fit the caller's
 * buffer), inputs that are not NUL-terminated, and format -> parse round
 * trips over a spread of partitions. Buffers are poisoned first so a missing
 * terminator or a write past the topic shows. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tp.h"

static void test_format(void)
{
	char buf[TP_KEY_MAX];
	memset(buf, 'x', sizeof(buf));
	CHECK(tp_format(buf, sizeof(buf), "orders", 3) == 8 && strcmp(buf, "orders:3") == 0);
	CHECK(tp_format(buf, sizeof(buf), "t", 0) == 3 && strcmp(buf, "t:0") == 0);
	CHECK(tp_format(buf, sizeof(buf), "t", -1) == 4 && strcmp(buf, "t:-1") == 0);
	CHECK(tp_format(buf, sizeof(buf), "t", INT32_MAX) == 12 && strcmp(buf, "t:2147483647") == 0);

	/* A 249-byte topic (Kafka's longest) and any int32 fit in TP_KEY_MAX. */
	char topic[250];
	memset(topic, 'a', 249);
	topic[249] = '\0';
	size_t n = tp_format(buf, sizeof(buf), topic, INT32_MIN);
	CHECK(n == 249 + 1 + 11 && strlen(buf) == n && strcmp(buf + 250, "-2147483648") == 0);

	/* Truncation: cap - 1 bytes, NUL-terminated, that length returned. */
	char small[6];
	memset(small, 'x', sizeof(small));
	CHECK(tp_format(small, sizeof(small), "abcdef", 1) == 5);
	CHECK(memcmp(small, "abcde", 6) == 0);
	memset(small, 'x', sizeof(small));
	CHECK(tp_format(small, sizeof(small), "abc", 12) == 5 && strcmp(small, "abc:1") == 0);
	memset(small, 'x', sizeof(small));
	CHECK(tp_format(small, sizeof(small), "ab", 12) == 5 && strcmp(small, "ab:12") == 0);   /* exactly fits */
	CHECK(tp_format(small, 1, "ab", 12) == 0 && small[0] == '\0');
}

/* tp_parse of a NUL-terminated string; the topic buffer is poisoned so a
 * missing NUL or a write past the topic shows. */
static int parse(const char *s, char *topic, size_t cap, int32_t *p)
{
	memset(topic, '#', cap);
	*p = -7;
	return tp_parse(s, strlen(s), topic, cap, p);
}

static void test_parse(void)
{
	char topic[TP_TOPIC_MAX];
	int32_t p;

	CHECK(parse("orders:3", topic, sizeof(topic), &p) == 0 && strcmp(topic, "orders") == 0 && p == 3);
	CHECK(parse("t:0", topic, sizeof(topic), &p) == 0 && strcmp(topic, "t") == 0 && p == 0);
	CHECK(parse("t:007", topic, sizeof(topic), &p) == 0 && p == 7);
	CHECK(parse("t:100000000", topic, sizeof(topic), &p) == 0 && p == 100000000);
	/* The last ':' separates. */
	CHECK(parse("a:b:12", topic, sizeof(topic), &p) == 0 && strcmp(topic, "a:b") == 0 && p == 12);
	CHECK(parse("::1", topic, sizeof(topic), &p) == 0 && strcmp(topic, ":") == 0 && p == 1);

	/* Not of the form: nothing written. */
	static const char *const bad[] = {
		"", "orders", ":3", "t:", "t:-1", "t:+1", "t: 1", "t:1 ", "t:1x", "t:x", "t:0x10",
		"a:1:", "t:1.0", "t:99999999999999999999", "t:12345678901",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], topic, sizeof(topic), &p);
		CHECKF(rc == -1 && p == -7 && topic[0] == '#', "tp_parse(\"%s\") = %d, partition %d", bad[i], rc, p);
	}

	/* n bounds the input: the bytes after it are not read. */
	const char *s = "abc:12345";
	CHECK(tp_parse(s, 6, topic, sizeof(topic), &p) == 0 && strcmp(topic, "abc") == 0 && p == 12);
	CHECK(tp_parse(s, 4, topic, sizeof(topic), &p) == -1);    /* "abc:" */
	CHECK(tp_parse(s, 3, topic, sizeof(topic), &p) == -1);    /* "abc" */
	CHECK(tp_parse("t:1\0", 4, topic, sizeof(topic), &p) == -1);     /* a NUL in the partition */

	/* The topic must fit cap with its NUL. */
	char t4[4];
	CHECK(parse("abc:1", t4, sizeof(t4), &p) == 0 && strcmp(t4, "abc") == 0 && p == 1);
	CHECK(parse("abcd:1", t4, sizeof(t4), &p) == -1 && t4[0] == '#');
}

static void test_round_trip(void)
{
	static const char *const topics[] = { "t", "orders.v2", "a_b-c", "x:y" };
	static const int32_t parts[] = { 0, 1, 9, 10, 99, 12345, 99999999, 100000000 };
	char key[TP_KEY_MAX], topic[TP_TOPIC_MAX];
	int bad = 0;
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
			int32_t p = -1;
			size_t n = tp_format(key, sizeof(key), topics[i], parts[k]);
			if (tp_parse(key, n, topic, sizeof(topic), &p) != 0 || strcmp(topic, topics[i]) != 0 ||
			    p != parts[k])
				if (bad++ == 0) fprintf(stderr, "round trip of %s failed\n", key);
		}
	CHECKF(bad == 0, "%d round trips failed", bad);

	/* The longest topic Kafka allows round-trips through TP_TOPIC_MAX. */
	char longest[250];
	memset(longest, 'z', 249);
	longest[249] = '\0';
	int32_t p = -1;
	size_t n = tp_format(key, sizeof(key), longest, 42);
	CHECK(tp_parse(key, n, topic, sizeof(topic), &p) == 0 && strcmp(topic, longest) == 0 && p == 42);
}

/* Resume positions "topic:partition:offset": offsets from -1 on. */
static void test_position_parse(void)
{
	char topic[TP_TOPIC_MAX];
	int32_t p;
	int64_t last;
	CHECK(tp_position_parse("trade-info:3:981233", topic, sizeof(topic), &p, &last) == 0 &&
	      !strcmp(topic, "trade-info") && p == 3 && last == 981233);
	CHECK(tp_position_parse("t:0:-1", topic, sizeof(topic), &p, &last) == 0 && last == -1);
	/* The last two ':' separate, as tp_parse splits at the last one. */
	CHECK(tp_position_parse("a:b:1:7", topic, sizeof(topic), &p, &last) == 0 && !strcmp(topic, "a:b") && p == 1 &&
	      last == 7);
	static const char *const bad[] = { "t:0:", "t:0:-2", "t:0:1x", "t:0", "t", ":0:1", "t::1", "t:x:1", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(tp_position_parse(bad[i], topic, sizeof(topic), &p, &last) == -1, "\"%s\" accepted", bad[i]);
	CHECK(tp_position_parse("topic:1:5", topic, 5, &p, &last) == -1);   /* topic longer than cap */
}

int main(void)
{
	test_format();
	test_parse();
	test_round_trip();
	test_position_parse();
	return check_summary("tp");
}
