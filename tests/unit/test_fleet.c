/* test_fleet.c - the shared table of --workers (fleet.h), with real
 * processes: the test is the master; each worker is a forked child that
 * attaches to the table by its fd, publishes what its sources say and
 * exits. The master's totals then add clients and subscriptions, take the
 * smallest seq (what every worker routed) and the largest lag, list every
 * worker's clients with their worker, and
 * report each worker's pid and readiness; /ready needs every worker; a
 * worker that ended reads as gone but its counters stay (the state
 * dialect's updates included, which a process counts itself); a child given a
 * fd that is not the table refuses it. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "fleet.h"
#include "metrics.h"

/* What a worker's own layers would say: two channels, two partitions,
 * `nclients` clients, ready or not. */
static unsigned w_index, w_clients, w_ready;

static uint32_t src_clients(void) { return w_clients; }
static uint32_t src_deflate(void) { return w_index ? w_clients : 0; }   /* worker 1's all negotiated it */
static uint32_t src_sse(void) { return w_index ? 0 : 1; }                /* worker 0's first is an SSE stream */
static int src_up(void) { return 1; }
static int src_ready(void) { return (int)w_ready; }
static const char *src_version(void) { return "test"; }
static size_t src_routes(const struct route **out) { *out = NULL; return 0; }
static void src_state(uint32_t *c, uint32_t *g, uint64_t *u) { *c = 1; *g = 1; *u = 10 + w_index; }

static int src_client(size_t *i, struct endpoints_client *out)
{
	if (*i >= w_clients) return 0;
	*out = (struct endpoints_client){ (uint32_t)(100 * w_index + *i), "127.0.0.1:5", w_index ? "bob" : NULL, 1, 0, 0, -1,
					  (int)w_index, !w_index && *i == 0 };
	(*i)++;
	return 1;
}

static int src_channel(size_t *i, const char **name, uint32_t *subs, uint64_t *seq)
{
	static const char *names[] = { "prices", "orders" };
	if (*i >= 2) return 0;
	*name = names[*i];
	*subs = w_clients;
	*seq = *i == 0 ? 50 + w_index : 7;   /* worker 1 routed more prices */
	(*i)++;
	return 1;
}

static int src_lag(size_t *i, const char **tp, int64_t *lag)
{
	static const char *tps[] = { "prices:0", "prices:1" };
	if (*i >= 2) return 0;
	*tp = tps[*i];
	*lag = *i == 0 ? (int64_t)w_index * 5 : -1;
	(*i)++;
	return 1;
}

static const struct endpoints_sources own = {
	src_clients, src_deflate, src_sse, src_client, src_up, src_ready, src_version, src_lag, src_channel, src_routes, src_state, NULL
};

/* Worker `index` publishes once and ends with its attach result. */
static pid_t run_worker(int fd, unsigned index, unsigned nclients, unsigned ready)
{
	pid_t pid = fork();
	if (pid) return pid;
	char err[256];
	w_index = index;
	w_clients = nclients;
	w_ready = ready;
	if (fleet_attach(dup(fd), index, err, sizeof(err)) < 0) _exit(3);
	clock_advance();
	metrics_add(M_MESSAGES_OUT, 100 + index);
	fleet_publish(&own, clock_now(), 0);
	_exit(0);
}

static int exit_status(pid_t pid)
{
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
	char err[256];
	int fd = fleet_create(2, err, sizeof(err));
	CHECKF(fd >= 0, "%s", err);
	if (fd < 0) return check_summary("fleet");
	const struct endpoints_sources *t = fleet_sources(&own);
	CHECK(t->clients() == 0 && !t->kafka_ready() && !t->kafka_up());

	pid_t a = run_worker(fd, 0, 2, 1), b = run_worker(fd, 1, 3, 1);
	CHECK(exit_status(a) == 0 && exit_status(b) == 0);
	fleet_started(0, a, 0);
	fleet_started(1, b, 0);
	clock_advance();

	CHECK(t->clients() == 5 && t->deflate_clients() == 3 && t->sse_clients() == 1);
	CHECK(t->kafka_up() && t->kafka_ready());
	CHECK(metrics_get(M_MESSAGES_OUT) == 201);
	uint32_t sc, sg;
	uint64_t su;
	t->state_counts(&sc, &sg, &su);
	CHECK(sc == 2 && sg == 2 && su == 21);

	const char *name;
	uint32_t subs;
	uint64_t seq;
	int seen = 0;
	for (size_t i = 0; t->channel_next(&i, &name, &subs, &seq); seen++) {
		if (!strcmp(name, "prices")) CHECKF(subs == 5 && seq == 50, "prices subs %u seq %llu", subs, (unsigned long long)seq);
		else CHECKF(!strcmp(name, "orders") && subs == 5 && seq == 7, "%s subs %u", name, subs);
	}
	CHECK(seen == 2);
	int64_t lag;
	seen = 0;
	for (size_t i = 0; t->lag_next(&i, &name, &lag); seen++)
		CHECKF(!strcmp(name, "prices:0") ? lag == 5 : lag == -1, "%s lag %lld", name, (long long)lag);
	CHECK(seen == 2);

	struct endpoints_client c;
	int on[2] = { 0, 0 }, bobs = 0, sse = 0;
	for (size_t i = 0; t->client_next(&i, &c);) {
		if (c.worker == 0 || c.worker == 1) on[c.worker]++;
		CHECKF(c.deflate == (c.worker == 1), "client %u on worker %d: deflate %d", c.id, c.worker, c.deflate);
		bobs += c.identity && !strcmp(c.identity, "bob");
		sse += c.sse;
		CHECKF(!c.sse || (c.worker == 0 && c.id == 0), "client %u on worker %d: sse", c.id, c.worker);
		CHECK(!strcmp(c.peer, "127.0.0.1:5"));
	}
	CHECK(on[0] == 2 && on[1] == 3 && bobs == 3 && sse == 1);

	struct endpoints_worker w;
	size_t i = 0;
	CHECK(t->worker_next(&i, &w) && w.index == 0 && w.pid == a && w.ready && w.clients == 2 && w.restarts == 0);
	CHECK(t->worker_next(&i, &w) && w.index == 1 && w.pid == b && w.clients == 3);
	CHECK(!t->worker_next(&i, &w));

	/* Worker 1 ends: not ready, its clients gone, its counters kept; its
	 * replacement counts as a restart and is not ready yet. */
	fleet_gone(1);
	clock_advance();
	CHECK(t->clients() == 2 && t->deflate_clients() == 0 && !t->kafka_ready() && t->kafka_up());
	CHECK(metrics_get(M_MESSAGES_OUT) == 201);
	t->state_counts(&sc, &sg, &su);
	CHECK(sc == 1 && su == 21);           /* its updates still count */
	fleet_started(1, 4242, 1);
	i = 1;
	CHECK(t->worker_next(&i, &w) && w.pid == 4242 && w.restarts == 1 && !w.ready && w.clients == 0);
	pid_t r = run_worker(fd, 1, 1, 0);
	CHECK(exit_status(r) == 0);
	clock_advance();
	CHECK(t->clients() == 3 && !t->kafka_ready());
	CHECK(metrics_get(M_MESSAGES_OUT) == 302);
	t->state_counts(&sc, &sg, &su);
	CHECK(su == 32);                      /* the replacement's add to them */

	/* A worker handed something else than the table refuses it. */
	int p[2];
	if (pipe(p) == 0) {
		CHECK(exit_status(run_worker(p[0], 0, 1, 1)) == 3);
		close(p[0]);
		close(p[1]);
	}
	close(fd);
	return check_summary("fleet");
}
