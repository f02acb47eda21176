/* mockkafka.c - librdkafka's mock Kafka cluster as a standalone process for
 * the end-to-end tests: a real Kafka protocol peer that kafka-python, kcat
 * and kbridge talk to over TCP on 127.0.0.1. Prints "bootstrap=..." once
 * ready, then obeys one command per line on stdin:
 *   down ID | up ID          take broker ID down / bring it back
 *   topic NAME PARTITIONS    create a topic
 *   regrow NAME PARTITIONS   delete topic NAME and create it again with
 *                            PARTITIONS (the mock cannot add partitions:
 *                            an empty topic "grown" this way looks the same)
 *   reqerr ID API ERR MS N   broker ID fails the next N requests with ApiKey
 *                            API with error code ERR, answering after MS ms
 *   quit                     exit (so does EOF on stdin, or --lifetime)
 * Usage: mockkafka [--brokers N] [--topic NAME:PARTITIONS]... [--lifetime S]
 *                  [--rebalance-delay MS]
 * --rebalance-delay: the group coordinator's initial rebalance delay; 0 by
 * default here (joins are fast), 3000 is Kafka's and the mock's own. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static void create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int parts)
{
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, parts, 1);
	printf("%s topic %s %d\n", e ? "error" : "ok", name, parts);
}

int main(int argc, char **argv)
{
	int brokers = 1, lifetime = 600, delay = 0;
	char errstr[512];
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--brokers") && i + 1 < argc) brokers = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--lifetime") && i + 1 < argc) lifetime = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rebalance-delay") && i + 1 < argc) delay = atoi(argv[++i]);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) { fprintf(stderr, "mockkafka: %s\n", errstr); return 1; }
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc) { fprintf(stderr, "mockkafka: cannot create mock cluster\n"); return 1; }
	/* On librdkafka 2.15 the mock needs a controller set, or admin calls
	 * such as DescribeTopics hang; joins are slow without the
	 * initial rebalance delay set to zero. */
	rd_kafka_mock_set_controller_id(mc, 1);
	rd_kafka_mock_group_initial_rebalance_delay_ms(mc, delay);

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
			char name[256];
			int parts = 1;
			snprintf(name, sizeof(name), "%s", argv[++i]);
			char *colon = strrchr(name, ':');
			if (colon) { *colon = '\0'; parts = atoi(colon + 1); }
			create_topic(mc, name, parts);
		}
	printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	time_t end = time(NULL) + lifetime;
	char line[512];
	while (time(NULL) < end) {
		struct pollfd p = { .fd = 0, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0) continue;
		if (!fgets(line, sizeof(line), stdin)) break;
		char cmd[32], arg[256];
		int n = 0;
		int got = sscanf(line, "%31s %255s %d", cmd, arg, &n);
		if (got >= 1 && !strcmp(cmd, "quit")) break;
		if (got >= 2 && !strcmp(cmd, "down")) {
			rd_kafka_mock_broker_set_down(mc, atoi(arg));
			printf("ok down %s\n", arg);
		} else if (got >= 2 && !strcmp(cmd, "up")) {
			rd_kafka_mock_broker_set_up(mc, atoi(arg));
			printf("ok up %s\n", arg);
		} else if (got >= 2 && !strcmp(cmd, "reqerr")) {
			/* reqerr BROKER APIKEY ERR RTT_MS COUNT: the next COUNT
			 * requests of that kind fail with ERR after RTT_MS. */
			int broker, api, e, rtt, cnt;
			if (sscanf(line, "%*s %d %d %d %d %d", &broker, &api, &e, &rtt, &cnt) == 5) {
				for (int k = 0; k < cnt; k++)
					rd_kafka_mock_broker_push_request_error_rtts(mc, broker, (int16_t)api, 1,
										     (rd_kafka_resp_err_t)e, rtt);
				printf("ok reqerr\n");
			} else {
				printf("error reqerr BROKER APIKEY ERR RTT_MS COUNT\n");
			}
		} else if (got >= 3 && !strcmp(cmd, "topic")) {
			create_topic(mc, arg, n);
		} else if (got >= 3 && !strcmp(cmd, "regrow")) {
			rd_kafka_mock_topic_delete(mc, arg);
			create_topic(mc, arg, n);
		} else {
			printf("error unknown command\n");
		}
		fflush(stdout);
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
