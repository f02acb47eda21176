/* produce.c - rate-controlled Kafka producer for kbridge's benchmarks.
 * Writes R records/s of S bytes for D seconds, keys cycling over K keys
 * ("k0".."k<K-1>"), with linger.ms=0 so no record waits for a batch; it
 * wakes at most once per --tick-us (1 ms) and hands librdkafka every record
 * due by then in one call per topic. Each
 * value is a JSON object of exactly S bytes (when S leaves room for the numbers):
 *   {"pad":"xxx...","ts_us":<wall clock us at produce>,"n":<global seq from 1>,
 *    "k":<key index>,"kn":<per-key seq from 1>}
 * The numbers come last so bench/wsload.c finds them near the end of each
 * message.
 * --topic A,B,C,D: record j goes to topic j % T with key k<(j / T) % K>, so
 * each topic has K keys of its own; "k" is then the key's index over all
 * topics (t * K + key) and "kn" counts per topic and key.
 * --layout state: values for state-dialect clients (docs/protocol.md#state-dialect),
 * where what changes between two records of a key is what travels:
 *   {"pad":"xxx...","px":<price, changes every other record of the key>,
 *    "ts_us":..,"n":..,"k":..,"kn":..}
 * and the pad keeps one length all run long, so it never shows up as a
 * change: values are then at most S bytes (exactly S for the widest numbers
 * of the run), not exactly S. (Blanks after the object to make up the
 * width would travel too: a new key's value goes out verbatim.)
 * --layout market: a quote as a market-data feed would carry it, no pad and
 * --size ignored (about 250-270 bytes; the deflate row's realistic twin):
 *   {"sym":"AAPL","venue":"XNAS","bid":189.23,"ask":189.25,"bid_size":300,
 *    "ask_size":500,"last":189.24,"last_size":100,"open":187.90,"high":..,
 *    "low":..,"volume":48213377,"vwap":189.0412,"cond":["@","F"],
 *    "ts_us":..,"n":..,"k":..,"kn":..}
 * with prices, sizes and volume moving record by record (a hash of the
 * key and its count: deterministic, not a compressor's friend).
 * Prints {"event":"start",...} when the clock starts and
 * {"event":"result",...} after the final flush, one JSON object per line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "benchclock.h"

#define MAX_SIZE   (1 << 20)
#define MAX_TOPICS 64

static struct {
	uint64_t acked, failed;
	char first_error[256];
} P;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk; (void)opaque;
	if (m->err) {
		P.failed++;
		if (!P.first_error[0]) snprintf(P.first_error, sizeof(P.first_error), "%s", rd_kafka_err2str(m->err));
	} else {
		P.acked++;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: produce --brokers LIST --topic T[,T2...] [options]\n"
		"  --topic LIST    topic(s): record j goes to topic j %% T (at most 64)\n"
		"  --rate R        records per second (default 1000)\n"
		"  --size S        value bytes (default 200)\n"
		"  --keys K        keys k0..k<K-1> per topic, cycling (default 1)\n"
		"  --layout L      stream (default) or state: a \"px\" field that changes every\n"
		"                  other record of a key, a pad of one length all run long\n"
		"                  (values then at most S bytes); market: a realistic quote\n"
		"                  (~260 bytes, --size ignored)\n"
		"  --duration D    seconds (default 10)\n"
		"  --partition P   fixed partition (default: the partitioner's choice)\n"
		"  --tick-us T     wake at most every T us; records due meanwhile go in one call (1000)\n"
		"  -X key=value    librdkafka property (repeatable)\n");
	exit(2);
}

/* --layout market: key k's quote for its kk-th record (see the top). */
static size_t market_value(char *v, size_t cap, uint32_t k, uint64_t kk, int64_t ts, uint64_t n)
{
	static const char *const syms[] = { "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO",
					    "JPM", "V", "LLY", "XOM", "UNH", "MA", "COST", "HD" };
	static const char *const venues[] = { "XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG" };
	uint64_t h = (kk + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)k * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	unsigned base = 5000 + (k * 7919u) % 45000;                    /* cents: 50.00 .. 499.99 */
	unsigned mid = base + (unsigned)(h % 400) - 200, spread = 1 + (unsigned)(h >> 12) % 4;
	unsigned bid = mid - spread, ask = mid + spread, last = bid + (unsigned)(h >> 16) % (2 * spread + 1);
	unsigned vwap = base * 100 + (unsigned)(h >> 20) % 20000 - 10000;   /* 1/10000ths */
	int l = snprintf(v, cap,
			 "{\"sym\":\"%s\",\"venue\":\"%s\",\"bid\":%u.%02u,\"ask\":%u.%02u,\"bid_size\":%u,"
			 "\"ask_size\":%u,\"last\":%u.%02u,\"last_size\":%u,\"open\":%u.%02u,\"high\":%u.%02u,"
			 "\"low\":%u.%02u,\"volume\":%" PRIu64 ",\"vwap\":%u.%04u,\"cond\":[\"@\",\"%c\"],"
			 "\"ts_us\":%" PRId64 ",\"n\":%" PRIu64 ",\"k\":%u,\"kn\":%" PRIu64 "}",
			 syms[k % 16], venues[(k + kk) % 6], bid / 100, bid % 100, ask / 100, ask % 100,
			 100 * (1 + (unsigned)(h >> 24) % 50), 100 * (1 + (unsigned)(h >> 32) % 50), last / 100, last % 100,
			 1 + (unsigned)(h >> 40) % 500, (base - 150) / 100, (base - 150) % 100, (base + 250) / 100,
			 (base + 250) % 100, (base - 260) / 100, (base - 260) % 100, 1000000 + kk * 137 + (h >> 48) % 100,
			 vwap / 10000, vwap % 10000, "FTIO"[(h >> 56) % 4], ts, n, k, kk);
	return l > 0 && (size_t)l < cap ? (size_t)l : 0;
}

int main(int argc, char **argv)
{
	const char *brokers = NULL, *topic = NULL;
	double rate = 1000, duration = 10;
	long size = 200, keys = 1, tick_us = 1000;
	int state_layout = 0, market_layout = 0;
	int partition = RD_KAFKA_PARTITION_UA;
	char errstr[512];

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* Benchmark defaults (bench/README.md, "Latency settings": linger.ms=0 so
	 * the producer adds no delay of its own); -X may override them. */
	static const char *defaults[][2] = {
		{ "linger.ms", "0" },
		{ "queue.buffering.max.messages", "1000000" },
		{ "queue.buffering.max.kbytes", "1048576" },
		{ "enable.idempotence", "false" },
		{ "log_level", "4" },
	};
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, sizeof(errstr));

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) usage();
		i++;
		if (!strcmp(a, "--brokers")) brokers = v;
		else if (!strcmp(a, "--topic")) topic = v;
		else if (!strcmp(a, "--rate")) rate = atof(v);
		else if (!strcmp(a, "--size")) size = atol(v);
		else if (!strcmp(a, "--keys")) keys = atol(v);
		else if (!strcmp(a, "--duration")) duration = atof(v);
		else if (!strcmp(a, "--partition")) partition = atoi(v);
		else if (!strcmp(a, "--tick-us")) tick_us = atol(v);
		else if (!strcmp(a, "--layout")) {
			if (!strcmp(v, "state")) state_layout = 1;
			else if (!strcmp(v, "market")) market_layout = 1;
			else if (!strcmp(v, "stream")) state_layout = 0;
			else usage();
		}
		else if (!strcmp(a, "-X")) {
			char kv[1024];
			snprintf(kv, sizeof(kv), "%s", v);
			char *eq = strchr(kv, '=');
			if (!eq) usage();
			*eq = '\0';
			if (rd_kafka_conf_set(conf, kv, eq + 1, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
				fprintf(stderr, "produce: -X %s: %s\n", v, errstr);
				return 2;
			}
		} else usage();
	}
	if (!brokers || !topic || rate <= 0 || duration <= 0 || size < 0 || size > MAX_SIZE || keys < 1 || tick_us < 1)
		usage();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "produce: %s\n", errstr);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) { fprintf(stderr, "produce: %s\n", errstr); return 1; }
	/* --topic A,B,...: one handle per topic. */
	rd_kafka_topic_t *rkt[MAX_TOPICS];
	uint32_t ntopics = 0;
	char tlist[4096];
	snprintf(tlist, sizeof(tlist), "%s", topic);
	for (char *save = NULL, *t = strtok_r(tlist, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (ntopics == MAX_TOPICS) usage();
		rkt[ntopics++] = rd_kafka_topic_new(rk, t, NULL);
	}
	if (!ntopics) usage();

	/* Connect and learn the topics before the clock starts. */
	for (uint32_t t = 0; t < ntopics; t++) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t merr = RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int tries = 0; tries < 20; tries++) {
			merr = rd_kafka_metadata(rk, 0, rkt[t], &md, 2000);
			if (!merr) break;
		}
		if (merr) {
			fprintf(stderr, "produce: metadata for %s: %s\n", rd_kafka_topic_name(rkt[t]), rd_kafka_err2str(merr));
			return 1;
		}
		rd_kafka_metadata_destroy(md);
	}

	/* Timer slack would add up to 50 us to every sleep between records. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	/* Records due in one tick go to librdkafka in one call, so they share a
	 * producer batch: the mock cluster answers a fetch with one batch only
	 * (rdkafka_mock_handlers.c), so one-record batches at 10,000/s would cap
	 * what any consumer can fetch from it. linger.ms stays 0. */
	size_t slot = (size_t)(market_layout && size < 400 ? 400 : size) + 160;
	size_t cap = (size_t)(16 << 20) / slot;
	if (cap < 1) cap = 1;
	if (cap > 4096) cap = 4096;
	char *arena = malloc(cap * slot);
	char (*keybuf)[24] = calloc(cap, sizeof(*keybuf));
	rd_kafka_message_t *msgs = calloc(cap, sizeof(*msgs));
	rd_kafka_message_t *scratch = calloc(cap, sizeof(*scratch));    /* one topic's share */
	uint64_t nkeys = (uint64_t)keys * ntopics;         /* keys over all topics */
	uint64_t *kn = calloc((size_t)nkeys, sizeof(*kn));
	if (!arena || !keybuf || !msgs || !scratch || !kn) { fprintf(stderr, "produce: out of memory\n"); return 1; }
	uint64_t total = (uint64_t)(rate * duration + 0.5), n = 0, calls = 0;

	/* --layout state: the pad's length is set once, for the widest numbers
	 * of the run (the last n, the last kn, a 16-digit ts_us), so it never
	 * changes; values with narrower numbers are that much shorter. */
	long state_pad = 0;
	if (state_layout) {
		char widest[200];
		int wl = snprintf(widest, sizeof(widest),
				  "\",\"px\":100.00,\"ts_us\":%" PRId64 ",\"n\":%" PRIu64 ",\"k\":%" PRIu64 ",\"kn\":%" PRIu64 "}",
				  (int64_t)9999999999999999, total, nkeys - 1, total / nkeys + 1);
		state_pad = size - 8 - wl;
		if (state_pad < 0) state_pad = 0;
	}

	int64_t start_wall = wall_us(), start = mono_us();
	printf("{\"event\":\"start\",\"t_us\":%" PRId64 ",\"records\":%" PRIu64 "}\n", start_wall, total);
	fflush(stdout);

	while (n < total) {
		/* Record j is due at start + j/R: produce everything that is due,
		 * then sleep until the next one is, at least one tick. */
		int64_t now = mono_us();
		uint64_t due = (uint64_t)((double)(now - start) * rate / 1e6) + 1;
		if (due > total) due = total;
		while (n < due) {
			size_t m = (size_t)(due - n) < cap ? (size_t)(due - n) : cap;
			int64_t ts = wall_us();
			for (size_t i = 0; i < m; i++) {
				uint64_t j = n + i;
				uint32_t t = (uint32_t)(j % ntopics);
				uint32_t key = (uint32_t)((j / ntopics) % (uint64_t)keys);
				uint32_t k = t * (uint32_t)keys + key;       /* = key with one topic */
				uint64_t kk = ++kn[k];
				char suffix[200], px[32] = "";
				char *v = arena + i * slot;
				if (market_layout) {
					msgs[i] = (rd_kafka_message_t){ .payload = v, .len = market_value(v, slot, k, kk, ts, j + 1),
									.key = keybuf[i] };
					msgs[i].key_len = (size_t)snprintf(keybuf[i], sizeof(keybuf[i]), "k%u", key);
					continue;
				}
				if (state_layout) {
					/* a price that moves every other record of the key */
					unsigned c = (unsigned)((k * 7919u + (unsigned)((kk + 1) / 2) * 13u) % 10000u);
					snprintf(px, sizeof(px), "\",\"px\":%u.%02u", 100 + c / 100, c % 100);
				}
				int sl = snprintf(suffix, sizeof(suffix),
						  "%s%s\"ts_us\":%" PRId64 ",\"n\":%" PRIu64 ",\"k\":%u,\"kn\":%" PRIu64 "}",
						  px, state_layout ? "," : "\",", ts, j + 1, k, kk);
				long pad = state_layout ? state_pad : size - 8 - sl;      /* 8 = strlen("{\"pad\":\"") */
				if (pad < 0) pad = 0;
				memcpy(v, "{\"pad\":\"", 8);
				memset(v + 8, 'x', (size_t)pad);
				memcpy(v + 8 + pad, suffix, (size_t)sl);
				msgs[i] = (rd_kafka_message_t){ .payload = v, .len = (size_t)(8 + pad + sl),
								.key = keybuf[i] };
				msgs[i].key_len = (size_t)snprintf(keybuf[i], sizeof(keybuf[i]), "k%u", key);
			}
			/* One call per topic: its records of this tick share a batch. */
			for (uint32_t t = 0; t < ntopics; t++) {
				rd_kafka_message_t *tm = msgs;
				size_t cnt = 0;
				if (ntopics > 1) {
					/* this topic's records, in order */
					for (size_t i = (size_t)((t + ntopics - n % ntopics) % ntopics); i < m; i += ntopics)
						scratch[cnt++] = msgs[i];
					tm = scratch;
				} else {
					cnt = m;
				}
				if (!cnt) continue;
				int got = rd_kafka_produce_batch(rkt[t], partition, RD_KAFKA_MSG_F_COPY, tm, (int)cnt);
				calls++;
				if (got != (int)cnt) {
					/* A retry could reorder the sequence: the queue is sized so
					 * this does not happen; when it does, say so and stop. */
					for (size_t i = 0; i < cnt; i++)
						if (tm[i].err) {
							fprintf(stderr, "produce: %s: %s\n", rd_kafka_topic_name(rkt[t]),
								rd_kafka_err2str(tm[i].err));
							break;
						}
					return 1;
				}
			}
			n += m;
		}
		rd_kafka_poll(rk, 0);
		if (n >= total) break;
		int64_t next = start + (int64_t)((double)n * 1e6 / rate);
		if (next < now + tick_us) next = now + tick_us;
		if (next > mono_us()) {
			struct timespec t = { .tv_sec = next / 1000000, .tv_nsec = (long)(next % 1000000) * 1000 };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
		}
	}
	int64_t end_wall = wall_us();
	double secs = (double)(mono_us() - start) / 1e6;
	rd_kafka_flush(rk, 30000);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("{\"event\":\"result\",\"produced\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"failed\":%" PRIu64 ","
	       "\"unflushed\":%d,\"calls\":%" PRIu64 ",\"topics\":%u,\"keys\":%ld,\"size\":%ld,\"rate\":%.1f,"
	       "\"duration_s\":%.3f,\"cpu_s\":%.3f,\"start_us\":%" PRId64 ",\"end_us\":%" PRId64 ",\"first_error\":\"%s\"}\n",
	       n, P.acked, P.failed, rd_kafka_outq_len(rk), calls, ntopics, keys, size,
	       secs > 0 ? (double)n / secs : 0.0, secs, cpu, start_wall, end_wall, P.first_error);
	fflush(stdout);
	free(arena);
	free(keybuf);
	free(msgs);
	free(scratch);
	free(kn);
	for (uint32_t t = 0; t < ntopics; t++) rd_kafka_topic_destroy(rkt[t]);
	rd_kafka_destroy(rk);
	return P.failed || P.acked != n ? 1 : 0;
}
