/* demo.c - --demo: librdkafka's in-process mock cluster with the topics
 * token-info, trade-info and aggregate-info, and a producer of plausible
 * market data at --demo-rate records per second (docs/operations.md#demo).
 * The live consumer reads the cluster like any other; any Kafka client
 * can produce into it at the logged bootstrap address. */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "clock.h"
#include "kafka.h"
#include "log.h"

static struct {
	const struct config *cfg;
	rd_kafka_t *rk;           /* the producer; it also owns the mock cluster */
	int64_t next_ms;          /* when the next record is due */
	uint64_t n;               /* records produced */
} D;

static const char *const demo_topics[3] = { "token-info", "trade-info", "aggregate-info" };

const char *demo_start(const struct config *cfg, char *err, size_t errlen)
{
	D.cfg = cfg;
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	char why[512];
	if (rd_kafka_conf_set(pc, "test.mock.num.brokers", "1", why, sizeof(why)) ||
	    rd_kafka_conf_set(pc, "linger.ms", "0", why, sizeof(why)) ||
	    rd_kafka_conf_set(pc, "log.queue", "false", why, sizeof(why))) {
		snprintf(err, errlen, "demo producer: %s", why);
		rd_kafka_conf_destroy(pc);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(pc, kafka_log_cb);
	if (!(D.rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof(why)))) {
		snprintf(err, errlen, "demo producer: %s", why);
		return NULL;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(D.rk);
	if (!mc) {
		snprintf(err, errlen, "demo: librdkafka did not start its mock cluster");
		return NULL;
	}
	/* On librdkafka 2.15 the mock answers admin requests such as
	 * DescribeTopics (the direct assignment of fan-out mode) only with a
	 * controller set. */
	rd_kafka_mock_set_controller_id(mc, 1);
	rd_kafka_mock_group_initial_rebalance_delay_ms(mc, 0);
	for (int i = 0; i < 3; i++) rd_kafka_mock_topic_create(mc, demo_topics[i], 1, 1);
	rd_kafka_mock_topic_create(mc, "demo-chat", 1, 1);   /* --demo's chat channel: clients publish, nobody produces */
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
	log_msg(LOG_INFO, "demo mock cluster ready: produce with kcat -P -b BOOTSTRAP -t trade-info",
		"bootstrap", boot, "rate", log_num(D.cfg->demo_rate), NULL);
	D.next_ms = mono_ms();
	return boot;
}

/* One record of plausible market data: mostly trades, some token
 * updates and candles, over six symbols, keyed by symbol (so snapshots and
 * key filters have something to show). Deterministic from the counter. */
static void demo_produce_one(void)
{
	static const struct { const char *sym, *name; double price; } coins[] = {
		{ "BTC/USDT", "Bitcoin", 97000 }, { "ETH/USDT", "Ethereum", 3600 },
		{ "SOL/USDT", "Solana", 240 }, { "BNB/USDT", "BNB", 650 },
		{ "XRP/USDT", "XRP", 2.4 }, { "ADA/USDT", "Cardano", 1.05 },
	};
	uint64_t n = D.n++;
	int ti = (int)(n % 10 < 6 ? 1 : n % 10 < 8 ? 0 : 2);     /* trades dominate */
	int ci = (int)((n * 7 + n / 3) % 6);
	double wobble = 1.0 + (double)((int)((n * 2654435761u) % 2001) - 1000) / 100000.0;
	double price = coins[ci].price * wobble;
	char ts[32], payload[512];
	time_t secs = (time_t)(wall_ms() / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int len;
	if (ti == 1)
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"price\":%.6g,\"size\":%.4f,\"side\":\"%s\",\"trade_id\":%" PRIu64 ",\"timestamp\":\"%s\"}",
			       coins[ci].sym, price, 0.01 + (double)(n % 97) / 10.0, n % 2 ? "buy" : "sell", n, ts);
	else if (ti == 0)
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"name\":\"%s\",\"price\":%.6g,\"change_24h\":%.2f,\"volume_24h\":%.0f,\"timestamp\":\"%s\"}",
			       coins[ci].sym, coins[ci].name, price, (wobble - 1) * 100 * 50, coins[ci].price * 1e4, ts);
	else
		len = snprintf(payload, sizeof(payload),
			       "{\"symbol\":\"%s\",\"timeframe\":\"5s\",\"open\":%.6g,\"high\":%.6g,\"low\":%.6g,\"close\":%.6g,\"volume\":%.3f,\"timestamp\":\"%s\"}",
			       coins[ci].sym, coins[ci].price, price * 1.001, price * 0.999, price, (double)(n % 500) / 7.0, ts);
	if (len <= 0) return;
	rd_kafka_resp_err_t e = rd_kafka_producev(D.rk,
		RD_KAFKA_V_TOPIC(demo_topics[ti]),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_KEY(coins[ci].sym, strlen(coins[ci].sym)),
		RD_KAFKA_V_VALUE(payload, (size_t)len),
		RD_KAFKA_V_END);
	if (e && e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
		log_msg(LOG_WARN, "demo produce failed", "error", rd_kafka_err2str(e), NULL);
}

/* Produces what is due at --demo-rate; a producer that fell behind (a
 * stopped process, a slow machine) skips ahead instead of bursting. */
void demo_tick(void)
{
	if (!D.rk || D.cfg->demo_rate <= 0) return;
	int64_t now = mono_ms();
	double gap = 1000.0 / (double)D.cfg->demo_rate;
	int burst = 0;
	while (D.next_ms <= now && burst++ < 1000) {
		demo_produce_one();
		D.next_ms += gap < 1 ? 1 : (int64_t)gap;
	}
	if (D.next_ms < now - 1000) D.next_ms = now;   /* fell behind: do not catch up */
	rd_kafka_poll(D.rk, 0);
}

int demo_timeout_ms(void)
{
	if (!D.rk || D.cfg->demo_rate <= 0) return -1;
	int64_t d = D.next_ms - mono_ms();
	return d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
}

void demo_stop(void)
{
	if (!D.rk) return;
	rd_kafka_flush(D.rk, 100);
	rd_kafka_destroy(D.rk);
	D.rk = NULL;
}
