/* kbridge.c - the program: main(), start-up, signals and the loop.
 * With --workers N above 1 the process started is the master (workers.c):
 * the same loop without a consumer or main listener, serving
 * --admin-listen and supervising the workers, each of which runs this
 * file's loop with everything. One thread runs one poll() over six fds: the listener, the admin
 * listener (--admin-listen), a signalfd, the eventfd librdkafka writes
 * when the consumer queue has records or events, the producer's eventfd
 * (delivery reports of client publishes) and the epoll set holding every
 * client socket. The loop knows fds and timers, not
 * clients: each turn it waits for the nearest timer, then
 * calls each layer in a fixed order (signals, Kafka, publishes, replays, the demo
 * producer, ready clients, new clients, timers, conflation, flush, reap).
 * Start-up wires the layers together: the upward callbacks (records to the
 * hub, live state to the endpoints) are registered here and nowhere else.
 * docs/architecture.md draws the layers and follows one record through. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "assign.h"
#include "auth.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "conflate.h"
#include "demo.h"
#include "endpoints.h"
#include "fleet.h"
#include "healthcheck.h"
#include "hub.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "publish.h"
#include "replay.h"
#include "server.h"
#include "state.h"
#include "tls.h"
#include "version.h"
#include "workers.h"

#define TICK_MS 250     /* timer resolution: pings, timeouts, channel gc */

enum { PFD_LISTEN, PFD_ADMIN, PFD_SIGNAL, PFD_KAFKA, PFD_PUBLISH, PFD_CLIENTS, NPFD };

static struct config cfg;
static int stopping;   /* the first SIGTERM/SIGINT was seen */
static enum { SINGLE, MASTER, WORKER } role;
static struct {        /* a worker's hand-over from the master */
	unsigned index;
	int listen_fd, table_fd;
	char name[12];
} me;

/* ---- start-up and signals ------------------------------------------------ */

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (role == MASTER) {
		sigaddset(&set, SIGCHLD);   /* a worker ended */
		/* Inherited as ignored, the kernel would reap workers itself and
		 * the master would never learn of their end. */
		signal(SIGCHLD, SIG_DFL);
	}
	/* Blocked before librdkafka starts its threads, so they inherit the mask
	 * and every signal reaches the signalfd. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* SIGHUP: every file read at start that may change while running is
 * read again; a file that fails keeps what was loaded before. */
static void reload(void)
{
	int reloaded = 0;
	reloaded += endpoints_reload();   /* --admin-token */
	if (role == MASTER) return;       /* keys and certificates: the workers' */
	if (auth_enabled()) {             /* --jwt-key, --jwt-secret (docs/security.md#rotating-keys) */
		auth_reload();
		reloaded++;
	}
	if (tls_enabled()) {              /* --tls-cert, --tls-key, --tls-client-ca */
		tls_reload();
		reloaded++;
	}
	if (!reloaded) log_msg(LOG_INFO, "SIGHUP ignored (logs go to stderr; nothing to reopen)", NULL);
}

/* The first SIGTERM/SIGINT starts the drain; a second exits at once. */
static void handle_signals(int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			if (role == MASTER) workers_reap();
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			reload();
			if (role == MASTER) workers_forward(SIGHUP);
			continue;
		}
		if (stopping) {
			/* A worker may get the signal itself and from the master
			 * passing it on (a terminal's Ctrl-C, systemd signalling
			 * the whole unit, pkill), in either order: it drains once.
			 * The master ends it with SIGKILL on a real second signal. */
			if (role == WORKER) continue;
			log_msg(LOG_WARN, "second signal: exiting now", NULL);
			if (role == MASTER) workers_kill(1000);
			_exit(1);
		}
		stopping = 1;
		if (role == MASTER) workers_stop(cfg.drain_timeout);
		server_shutdown(cfg.drain_timeout);
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void print_version(void)
{
	printf("kbridge %s\ntarget %s\n", KBRIDGE_VERSION, KBRIDGE_TARGET);
	kafka_print_version();
}

/* The Kafka layer hands each record up to routing through this. */
static void route_record(const struct record *r)
{
	hub_route(r);
}

/* What /health, /stats and /metrics read from the layers above them. */
static const struct endpoints_sources sources = {
	.clients = client_ws_count,
	.deflate_clients = client_deflate_count,
	.sse_clients = client_sse_count,
	.client_next = server_client_next,
	.kafka_up = kafka_up,
	.kafka_ready = kafka_ready,
	.kafka_version = kafka_version,
	.lag_next = assign_lag_next,
	.channel_next = hub_channel_next,
	.routes = hub_routes,
	.state_counts = state_counts,
};

/* Starts everything but the loop. Returns the Kafka wake-up fd (-1 in
 * the master, which has no consumer), or exits: 2 for a configuration
 * error, 1 for anything else. */
static int start(char **argv, int *pfd)
{
	*pfd = -1;
	char err[512];
	/* A worker counts into its slot of the shared table from the start,
	 * and takes the master's ticket keys: resumption on any worker. */
	if (role == WORKER) {
		if (fleet_attach(me.table_fd, me.index, err, sizeof(err)) < 0) {
			fprintf(stderr, "kbridge: %s\n", err);
			exit(2);
		}
		tls_ticket_keys(fleet_ticket_keys());
	}
	const struct endpoints_sources *shown = role == SINGLE ? &sources : fleet_sources(&sources);
	/* Configuration errors (routes, -X, the admin token file) exit 2
	 * before anything starts, also when the port is taken. */
	if (proto_init(&cfg, err, sizeof(err)) < 0 || kafka_check_props(&cfg, err, sizeof(err)) < 0 ||
	    endpoints_init(&cfg, shown, err, sizeof(err)) < 0 || tls_init(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "kbridge: %s\n", err);
		exit(2);
	}
	int listen_fd = role == WORKER ? me.listen_fd : role == MASTER ? SERVER_LISTEN_NONE : SERVER_LISTEN_OPEN;
	if (server_open(&cfg, listen_fd, role != WORKER, err, sizeof(err)) < 0 ||
	    (role == MASTER && workers_start(&cfg, argv, err, sizeof(err)) < 0)) {
		fprintf(stderr, "kbridge: %s\n", err);
		exit(1);
	}
	if (role == MASTER) return -1;   /* the workers consume */
	const char *demo_bootstrap = NULL;
	if (cfg.demo && !(demo_bootstrap = demo_start(&cfg, err, sizeof(err)))) {
		fprintf(stderr, "kbridge: %s\n", err);
		exit(2);
	}
	/* Subscribe to every route's topic (regexes included). */
	const struct route *routes;
	size_t nroutes = hub_routes(&routes);
	const char **topics = calloc(nroutes + 1, sizeof(*topics));
	if (!topics) { fprintf(stderr, "kbridge: out of memory\n"); exit(1); }
	for (size_t i = 0; i < nroutes; i++) topics[i] = routes[i].topic;
	int kfd = kafka_start(&cfg, demo_bootstrap, topics, nroutes, route_record, err, sizeof(err));
	free(topics);
	if (kfd < 0) {
		fprintf(stderr, "kbridge: %s\n", err);
		exit(kfd == -2 ? 2 : 1);
	}
	/* The producer of --publish and --command, when there are any. */
	if ((*pfd = publish_start(demo_bootstrap, err, sizeof(err))) == -1) {
		fprintf(stderr, "kbridge: %s\n", err);
		exit(1);
	}
	return kfd;
}

/* ---- the loop -------------------------------------------------------------- */

/* ms to wait in poll(): until the nearest timer of any layer. */
static int next_timeout(int64_t next_tick)
{
	int64_t now = clock_now();
	if (kafka_pending()) return 0;    /* stopped at its per-turn bound: more waits */
	int64_t wake = next_tick;
	/* The master past its own drain waits for its workers: SIGCHLD wakes it. */
	int64_t sw = role == MASTER && server_done() ? INT64_MAX : server_next_wake();
	if (sw < wake) wake = sw;
	int timeout = (int)(wake > now ? wake - now : 0);
	int layer[] = { kafka_timeout_ms(), publish_timeout_ms(), conflate_timeout_ms(now), replay_timeout_ms(), demo_timeout_ms(),
			state_timeout_ms(now), role == MASTER ? workers_timeout_ms(now) : fleet_timeout_ms(now) };
	for (size_t i = 0; i < sizeof(layer) / sizeof(layer[0]); i++)
		if (layer[i] >= 0 && layer[i] < timeout) timeout = layer[i];
	return timeout;
}

int main(int argc, char **argv)
{
	config_load(&cfg, argc, argv, print_version);
	if (cfg.healthcheck) return healthcheck_run(cfg.healthcheck, cfg.healthcheck_ca, cfg.healthcheck_insecure);
	if (workers_child(&me.index, &me.listen_fd, &me.table_fd) == 0) role = WORKER;
	else if (cfg.workers > 1) role = MASTER;
	log_setup((enum log_level)cfg.log_level, cfg.log_json);
	if (role == WORKER) {
		snprintf(me.name, sizeof(me.name), "%u", me.index);
		log_tag("worker", me.name);
		/* --max-clients bounds the box: each worker takes its share,
		 * the first max % N one more. */
		long share = cfg.max_clients / cfg.workers;
		cfg.max_clients_here = share + ((long)me.index < cfg.max_clients % cfg.workers);
	}
	clock_advance();
	metrics_start();
	raise_fd_limit();

	int sfd = setup_signals();
	if (sfd < 0) { fprintf(stderr, "kbridge: signals: %s\n", strerror(errno)); return 1; }
	int pfd;
	int kfd = start(argv, &pfd);

	struct pollfd pfds[NPFD] = {
		[PFD_LISTEN] = { .fd = server_listen_fd(), .events = POLLIN },
		[PFD_ADMIN] = { .fd = server_admin_fd(), .events = POLLIN },
		[PFD_SIGNAL] = { .fd = sfd, .events = POLLIN },
		[PFD_KAFKA] = { .fd = kfd, .events = POLLIN },
		[PFD_PUBLISH] = { .fd = pfd, .events = POLLIN },
		[PFD_CLIENTS] = { .fd = server_epoll_fd(), .events = POLLIN },
	};
	if (role == WORKER) log_msg(LOG_INFO, "worker started", "pid", log_num(getpid()), NULL);
	else config_log_summary(&cfg);
	int64_t next_tick = clock_now() + TICK_MS;

	for (;;) {
		int timeout = next_timeout(next_tick);
		pfds[PFD_LISTEN].fd = server_listen_fd();   /* -1 while paused or after shutdown */
		pfds[PFD_ADMIN].fd = server_admin_fd();     /* and -1 without --admin-listen */
		int n = poll(pfds, NPFD, timeout);
		if (n < 0 && errno != EINTR) {
			log_msg(LOG_ERROR, "poll failed", "error", strerror(errno), NULL);
			return 1;
		}
		int64_t now = clock_advance();

		if (n > 0 && pfds[PFD_SIGNAL].revents) handle_signals(sfd);
		/* Kafka first: records queue frames that this turn's flush sends. */
		if ((n > 0 && pfds[PFD_KAFKA].revents) || kafka_pending() || kafka_timeout_ms() == 0) kafka_service();
		if ((n > 0 && pfds[PFD_PUBLISH].revents) || publish_timeout_ms() == 0) publish_service();
		if (replay_timeout_ms() == 0) replay_service();
		if (demo_timeout_ms() == 0) demo_tick();
		/* Clients came, went or spoke: the totals other processes read
		 * show it from the end of this turn. */
		int moved = n > 0 && (pfds[PFD_CLIENTS].revents || pfds[PFD_LISTEN].revents);
		/* Ready clients first, then new ones: events refer to clients
		 * that exist now. */
		if (n > 0 && pfds[PFD_CLIENTS].revents) server_ready();
		if (n > 0 && (pfds[PFD_LISTEN].revents & POLLIN)) server_accept();
		if (n > 0 && (pfds[PFD_ADMIN].revents & POLLIN)) server_accept_admin();
		if (now >= next_tick) {
			server_tick();
			/* Key and certificate files are watched where they are used:
			 * in the workers, not the master. */
			if (role != MASTER) {
				proto_tick();
				tls_tick();
			}
			next_tick = now + TICK_MS;
		}
		conflate_service(now);
		if (state_timeout_ms(now) == 0) state_service(now);
		server_flush();
		server_reap();
		if (role == MASTER) {
			workers_service(now);
			if (workers_status() && !stopping) {   /* a worker's configuration error */
				stopping = 1;
				server_shutdown(0);
			}
			if (server_done() && workers_done()) break;
		} else {
			if (role == WORKER) fleet_publish(&sources, now, moved);
			if (server_done()) break;
		}
	}
	log_msg(LOG_INFO, "stopped", "clients_left", log_num(server_connections()), NULL);
	kafka_stop();
	publish_stop();
	replay_stop();
	demo_stop();
	return role == MASTER ? workers_status() : 0;
}
