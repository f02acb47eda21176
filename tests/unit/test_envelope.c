/* test_envelope.c - a Kafka record as a data message (envelope.h). The JSON
 * frame's payload is compared byte for byte with the message docs describe:
 * field order, a JSON value verbatim (spacing and number spelling kept), UTF-8
 * text as a string, binary as base64 with "encoding", "" for an empty value
 * and null for a tombstone, "key" absent for a null key, a non-UTF-8 key as
 * base64 with "key_encoding", "seq" absent when 0, "timestamp" ISO 8601 UTC
 * with milliseconds or absent when -1, "headers" only with --headers (null
 * and base64 header values). Each format's frame is built once and shared
 * (the same pointer on a second call), a text frame for JSON and a binary
 * frame for MessagePack that decodes (mp_to_json) to the same object, also
 * for a value nested as deep as JSON goes; deeper, both carry the same
 * string. key_hash: non-zero for keyed records, 0 for null keys, the same in
 * both formats, distinct for distinct channel or key. Compressed
 * (permessage-deflate): built at most once per format and window, the
 * same pointer for every client of that kind, RSV1 and key_hash kept;
 * a window of 0 is the plain frame; a record below --deflate-min-size
 * shares the plain frame itself. */
#include <stdlib.h>

#include "check.h"
#include "envelope.h"
#include "json.h"
#include "json_parse.h"
#include "msgpack.h"

/* The payload of a server WebSocket frame (unmasked, one frame). */
static const char *payload(const struct frame *f, size_t *len, int *op)
{
	size_t hl = 2, n = f->data[1] & 0x7f;
	if (n == 126) {
		n = (size_t)f->data[2] << 8 | f->data[3];
		hl = 4;
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++) n = n << 8 | f->data[2 + i];
		hl = 10;
	}
	*op = f->data[0] & 0x0f;
	*len = n;
	CHECKF(hl + n == f->len && (f->data[0] & 0x80), "frame of %u bytes, header says %zu", f->len, hl + n);
	return (const char *)f->data + hl;
}

/* The JSON text of the record's frame in format msgpack, decoded from
 * MessagePack when msgpack (malloc'd, NUL-terminated). */
static char *message(struct envelope *e, int msgpack)
{
	struct frame *f = envelope_frame(e, msgpack);
	CHECK(f != NULL);
	if (!f) return strdup("");
	size_t n;
	int op;
	const char *p = payload(f, &n, &op);
	CHECK(op == (msgpack ? 2 : 1) && f->kind == FRAME_DATA);
	struct jbuf b;
	json_init(&b);
	if (msgpack) CHECK(mp_to_json(&b, (const unsigned char *)p, n, MP_MAX_DEPTH) == 0);
	else json_append(&b, p, n);
	json_append(&b, "", 1);
	char *s = strdup(b.buf ? b.buf : "");
	json_free(&b);
	if (!s) abort();
	return s;
}

static struct record rec(const char *key, size_t kl, const char *val, size_t vl)
{
	return (struct record){ .topic = "orders", .partition = 2, .offset = 42, .timestamp_ms = 1700000000123,
				.key = key, .key_len = kl, .value = val, .value_len = vl };
}

/* The JSON message of r (type "order", channel "ch", seq) equals want. */
static void check_json(const struct record *r, uint64_t seq, const char *want, int line)
{
	struct envelope e;
	envelope_init(&e, r, "order", "ch", seq);
	char *got = message(&e, 0);
	CHECKF(strcmp(got, want) == 0, "line %d\n got  %s\n want %s", line, got, want);
	CHECKF(json_validate(got, strlen(got)), "line %d: not JSON", line);
	free(got);
	envelope_done(&e);
}
#define CHECK_JSON(r, seq, want) check_json(r, seq, want, __LINE__)

#define TAIL "\"topic\":\"orders\",\"partition\":2,\"offset\":42,\"timestamp\":\"2023-11-14T22:13:20.123Z\""

static void test_fields(void)
{
	struct record r = rec("k1", 2, "{\"a\": [1, 2.50]}", 16);
	CHECK_JSON(&r, 7, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":7," TAIL ",\"data\":{\"a\": [1, 2.50]}}");
	/* seq 0: no seq. */
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\"," TAIL ",\"data\":{\"a\": [1, 2.50]}}");

	/* UTF-8 text that is not JSON: a string (escaped). */
	r = rec("k1", 2, "h\xc3\xa9 \"x\"\n", 8);
	CHECK_JSON(&r, 1, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":1," TAIL ",\"data\":\"h\xc3\xa9 \\\"x\\\"\\n\"}");
	r = rec("k1", 2, "{nope", 5);
	CHECK_JSON(&r, 1, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":1," TAIL ",\"data\":\"{nope\"}");

	/* Binary: base64 and "encoding". */
	r = rec("k1", 2, "\xff\xfe\x00", 3);
	CHECK_JSON(&r, 1, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":1," TAIL
		   ",\"data\":\"//4A\",\"encoding\":\"base64\"}");

	/* Empty value vs tombstone. */
	r = rec("k1", 2, "", 0);
	CHECK_JSON(&r, 1, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":1," TAIL ",\"data\":\"\"}");
	r = rec("k1", 2, NULL, 0);
	CHECK_JSON(&r, 1, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k1\",\"seq\":1," TAIL ",\"data\":null}");

	/* Keys: null (absent), empty, not UTF-8. */
	r = rec(NULL, 0, "1", 1);
	CHECK_JSON(&r, 3, "{\"type\":\"order\",\"channel\":\"ch\",\"seq\":3," TAIL ",\"data\":1}");
	r = rec("", 0, "1", 1);
	CHECK_JSON(&r, 3, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"\",\"seq\":3," TAIL ",\"data\":1}");
	r = rec("\xc3\x28", 2, "1", 1);
	CHECK_JSON(&r, 3, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"wyg=\",\"key_encoding\":\"base64\",\"seq\":3," TAIL
		   ",\"data\":1}");

	/* Timestamps: none, the epoch, milliseconds with leading zeros. */
	r = rec(NULL, 0, "1", 1);
	r.timestamp_ms = -1;
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,\"data\":1}");
	r.timestamp_ms = 0;
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,"
		   "\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":1}");
	r.timestamp_ms = 951782400005;   /* a leap day */
	r.partition = 0;
	r.offset = 9007199254740993;
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"topic\":\"orders\",\"partition\":0,\"offset\":9007199254740993,"
		   "\"timestamp\":\"2000-02-29T00:00:00.005Z\",\"data\":1}");

	/* envelope_is_json: computed once, for the value only. */
	struct envelope e;
	r = rec("k", 1, "[1]", 3);
	envelope_init(&e, &r, "t", "c", 1);
	CHECK(e.json == -1 && envelope_is_json(&e) == 1 && e.json == 1);
	envelope_done(&e);
	r = rec("k", 1, NULL, 0);
	envelope_init(&e, &r, "t", "c", 1);
	CHECK(envelope_is_json(&e) == 0);
	envelope_done(&e);
}

static void test_headers(void)
{
	static const struct record_header hv[] = {
		{ "trace", "abc", 3 }, { "empty", "", 0 }, { "none", NULL, 0 }, { "bin", "\xff\x00", 2 },
	};
	struct record r = rec("k", 1, "1", 1);
	r.headers = hv;
	r.nheaders = 4;
	r.timestamp_ms = -1;
	const char *plain = "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,"
			    "\"data\":1}";
	CHECK_JSON(&r, 0, plain);                 /* --headers off: never */
	envelope_configure(1);
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,"
		   "\"headers\":[[\"trace\",\"abc\"],[\"empty\",\"\"],[\"none\",null],[\"bin\",{\"base64\":\"/wA=\"}]],\"data\":1}");
	r.nheaders = 0;                           /* on, but none: no "headers" */
	CHECK_JSON(&r, 0, plain);

	/* Headers the Kafka layer could not forward are counted, never
	 * dropped unsaid. */
	r.nheaders = 4;
	r.headers_truncated = 9;
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,"
		   "\"headers\":[[\"trace\",\"abc\"],[\"empty\",\"\"],[\"none\",null],[\"bin\",{\"base64\":\"/wA=\"}]],"
		   "\"headers_truncated\":9,\"data\":1}");
	r.nheaders = 0;
	CHECK_JSON(&r, 0, "{\"type\":\"order\",\"channel\":\"ch\",\"key\":\"k\",\"topic\":\"orders\",\"partition\":2,\"offset\":42,"
		   "\"headers\":[],\"headers_truncated\":9,\"data\":1}");

	/* MessagePack carries the headers too. */
	r.nheaders = 4;
	struct envelope e;
	envelope_init(&e, &r, "order", "ch", 0);
	char *j = message(&e, 0), *m = message(&e, 1);
	CHECKF(strcmp(j, m) == 0, "\n json    %s\n msgpack %s", j, m);
	free(j);
	free(m);
	envelope_done(&e);
	envelope_configure(0);
	CHECK_JSON(&r, 0, plain);
}

static void test_frames(void)
{
	const char *v = "{\"a\":[1,-2,2.5,\"s\\u0001\",true,null,{}],\"b\":{\"c\":\"d\"}}";
	struct record r = rec("k", 1, v, strlen(v));
	CHECK(json_validate(r.value, r.value_len));
	struct envelope e;
	envelope_init(&e, &r, "order", "ch", 9);
	CHECK(e.frame[0] == NULL && e.frame[1] == NULL);
	struct frame *j = envelope_frame(&e, 0);
	CHECK(j && envelope_frame(&e, 0) == j && j->refs == 1);    /* built once, owned by the envelope */
	CHECK(e.frame[1] == NULL);                                  /* MessagePack only when asked */
	struct frame *m = envelope_frame(&e, 1);
	CHECK(m && m != j && envelope_frame(&e, 1) == m && m->refs == 1);
	CHECK(envelope_frame(&e, 0) == j);
	char *js = message(&e, 0), *ms = message(&e, 1);
	CHECKF(strcmp(js, ms) == 0, "\n json    %s\n msgpack %s", js, ms);
	free(js);
	free(ms);
	/* A reference taken survives envelope_done (how queues keep it). */
	frame_ref(j);
	envelope_done(&e);
	CHECK(j->refs == 1);
	frame_unref(j);
}

/* The bytes after the "data" key of a MessagePack data message (the last
 * member), or NULL. */
static const unsigned char *mp_data(const struct frame *f, size_t *len)
{
	size_t n;
	int op;
	const unsigned char *p = (const unsigned char *)payload(f, &n, &op);
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(p + i, "\xa4" "data", 5) == 0) {
			*len = n - i - 5;
			return p + i + 5;
		}
	return NULL;
}

/* Nesting: a value nested JSON_VALIDATE_MAX_DEPTH levels is JSON, verbatim
 * to JSON clients and the same arrays to MessagePack clients; one level
 * more is text that is not JSON, the same string in both formats. */
static void test_depth(void)
{
	enum { D = JSON_VALIDATE_MAX_DEPTH + 1 };
	static char deep[2 * D + 2];
	for (int d = D - 1; d <= D; d++) {
		memset(deep, '[', (size_t)d);
		deep[d] = '0';
		memset(deep + d + 1, ']', (size_t)d);
		size_t dl = 2 * (size_t)d + 1;
		struct record r = rec("k", 1, deep, dl);
		struct envelope e;
		envelope_init(&e, &r, "order", "ch", 1);
		CHECKF(envelope_is_json(&e) == (d < D), "depth %d", d);
		char *js = message(&e, 0);
		const char *jd = strstr(js, "\"data\":");
		if (d < D)
			CHECKF(jd && strncmp(jd + 7, deep, dl) == 0 && strcmp(jd + 7 + dl, "}") == 0, "json depth %d", d);
		else
			CHECKF(jd && jd[7] == '"' && strncmp(jd + 8, deep, dl) == 0 && strcmp(jd + 8 + dl, "\"}") == 0,
			       "json depth %d", d);
		struct frame *m = envelope_frame(&e, 1);
		CHECKF(m != NULL, "msgpack depth %d", d);
		size_t ml = 0;
		const unsigned char *md = m ? mp_data(m, &ml) : NULL;
		int same;
		if (d < D) {            /* d fixarrays of one element, then 0 */
			same = md && ml == (size_t)d + 1 && md[d] == 0;
			for (int k = 0; same && k < d; k++) same = md[k] == 0x91;
		} else {                /* str 16: 0xda, length, the text */
			same = md && ml == dl + 3 && md[0] == 0xda && (size_t)(md[1] << 8 | md[2]) == dl &&
			       memcmp(md + 3, deep, dl) == 0;
		}
		CHECKF(same, "msgpack data at depth %d", d);
		CHECK(m && m->key_hash == envelope_frame(&e, 0)->key_hash && m->key_hash != 0);
		free(js);
		envelope_done(&e);
	}

	struct record s = rec("k", 1, "[[[1]]]", 7);
	struct envelope e;
	envelope_init(&e, &s, "order", "ch", 1);
	char *ms = message(&e, 1);
	CHECKF(strstr(ms, "\"data\":[[[1]]]}") != NULL, "msgpack: %s", ms);
	free(ms);
	envelope_done(&e);
}

static uint64_t hash_of(const char *channel, const char *key, size_t kl, int msgpack)
{
	struct record r = rec(key, kl, "1", 1);
	struct envelope e;
	envelope_init(&e, &r, "order", channel, 1);
	struct frame *f = envelope_frame(&e, msgpack);
	uint64_t h = f ? f->key_hash : 12345;
	envelope_done(&e);
	return h;
}

static void test_key_hash(void)
{
	uint64_t a = hash_of("ch", "k", 1, 0);
	CHECK(a != 0 && a == hash_of("ch", "k", 1, 1) && a == hash_of("ch", "k", 1, 0));
	CHECK(hash_of("ch", NULL, 0, 0) == 0 && hash_of("ch", NULL, 0, 1) == 0);
	CHECK(hash_of("ch", "", 0, 0) != 0);                    /* an empty key is a key */
	CHECK(hash_of("other", "k", 1, 0) != a);                /* another channel */
	CHECK(hash_of("ch", "j", 1, 0) != a);                   /* another key */
	CHECK(hash_of("ch", "k\0", 2, 0) != a);                 /* the whole key counts */
	CHECK(hash_of("k", "ch", 2, 0) != a && hash_of("k", "ch", 2, 0) != hash_of("ch", "k", 1, 0));

	/* Many keys on two channels: no two the same. */
	enum { NK = 2000 };
	static uint64_t h[2 * NK];
	char key[16];
	for (int c = 0; c < 2; c++)
		for (int i = 0; i < NK; i++) {
			int n = snprintf(key, sizeof(key), "key-%d", i);
			h[c * NK + i] = hash_of(c ? "prices" : "orders", key, (size_t)n, 0);
		}
	int dup = 0, zero = 0;
	for (int i = 0; i < 2 * NK; i++) {
		zero += h[i] == 0;
		for (int k = i + 1; k < 2 * NK; k++) dup += h[i] == h[k];
	}
	CHECKF(dup == 0 && zero == 0, "%d equal key hashes, %d zero", dup, zero);
}

static void test_deflated(void)
{
	char v[600];
	size_t vl = 0;
	while (vl + 30 < sizeof(v)) vl += (size_t)snprintf(v + vl, sizeof(v) - vl, "%s{\"px\":%zu}", vl ? "," : "[", vl);
	v[vl++] = ']';
	struct record r = rec("k", 1, v, vl);
	struct envelope e;
	envelope_init(&e, &r, "order", "ch", 9);
	struct frame *j = envelope_frame(&e, 0);
	CHECK(envelope_frame_for(&e, 0, 0) == j);
	/* About 600 bytes: a 10-bit window (1 KiB) reaches across it, so every
	 * window from 10 up shares one copy; a 9-bit client gets its own. */
	CHECK(pmd_window(15, j->len) == 10);
	struct frame *z15 = envelope_frame_for(&e, 0, 15), *z10 = envelope_frame_for(&e, 0, 10);
	struct frame *z9 = envelope_frame_for(&e, 0, 9), *m15 = envelope_frame_for(&e, 1, 15);
	CHECK(z15 && z9 && m15 && z15 != j && z10 == z15 && z9 != z15 && m15 != z15);
	CHECK(envelope_frame_for(&e, 0, 12) == z15 && envelope_frame_for(&e, 0, 9) == z9 &&
	      envelope_frame_for(&e, 1, 11) == m15);                       /* once per format and window */
	CHECK(z15->refs == 1 && j->refs == 1);
	CHECK(z15->data[0] == (0x80 | 0x40 | 1) && m15->data[0] == (0x80 | 0x40 | 2));
	CHECK(z15->key_hash == j->key_hash && z15->key_hash != 0 && z15->len < j->len);
	envelope_done(&e);

	/* Short: every window gets the plain frame itself, held once. */
	struct record s = rec("k", 1, "{\"a\":1}", 7);
	envelope_init(&e, &s, "order", "ch", 10);
	j = envelope_frame(&e, 0);
	CHECK(envelope_frame_for(&e, 0, 15) == j && envelope_frame_for(&e, 0, 9) == j && j->refs == 2);
	envelope_done(&e);

	/* Longer than a 14-bit window reaches: 15 and 14 each their own. */
	static char big[40000];
	size_t bl = 0;
	while (bl + 40 < sizeof(big)) bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "%s{\"px\":%zu}", bl ? "," : "[", bl * 7);
	big[bl++] = ']';
	struct record b = rec("k", 1, big, bl);
	envelope_init(&e, &b, "order", "ch", 11);
	struct frame *b15 = envelope_frame_for(&e, 0, 15), *b14 = envelope_frame_for(&e, 0, 14);
	CHECK(b15 && b14 && b15 != b14 && (b15->data[0] & 0x40) && (b14->data[0] & 0x40));
	envelope_done(&e);
}

int main(void)
{
	test_fields();
	test_headers();
	test_frames();
	test_depth();
	test_key_hash();
	test_deflated();
	return check_summary("envelope");
}
