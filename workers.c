/* workers.c - the master of --workers (workers.h). The program layer, like
 * kbridge.c: it starts processes and wires them, and knows no client. A
 * worker is started with fork and execve of this same binary (so it runs
 * the master's version even after the file on disk was replaced); its
 * listener and the shared table cross the exec as two inherited fds,
 * named in KBRIDGE_WORKER=index:listen_fd:table_fd. A worker that ends
 * without being asked is started again: 100 ms later, doubling while it
 * keeps dying within WORKER_STEADY_MS of its start, up to 5 s. A worker
 * of the first start that exits 2 met a configuration error the master
 * could not see; the master then stops them all and exits 2. A later one
 * that does (a key file missing for a moment) is restarted like any. A
 * worker whose loop stops turning for HUNG_MS is killed and restarted. */
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fleet.h"
#include "log.h"
#include "server.h"

#define ENV_NAME "KBRIDGE_WORKER"
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define WORKER_STEADY_MS 10000    /* a worker alive this long was no crash loop */
#define KILL_GRACE_MS 2000        /* after the drain, before SIGKILL */
#define HUNG_MS 20000             /* a worker whose loop has not turned this long is killed */

extern char **environ;

struct worker {
	pid_t pid;              /* 0: not running */
	int listen_fd;          /* kept across a restart; -1 while one that keeps dying waits */
	int64_t started;        /* turn clock of its start */
	int64_t restart_at;     /* when to start it again; 0: not due */
	int64_t backoff;        /* the next wait after a quick death */
	int ever;               /* started at least once */
	int first;              /* the running process is the slot's first */
	int hung;               /* killed by the watchdog: said once */
};

static struct {
	struct worker *w;
	unsigned n;
	const struct config *cfg;
	struct sockaddr_storage addr;   /* every listener's: --listen, its port resolved */
	socklen_t alen;
	int table_fd;
	char **argv;
	const char *exe;
	int stopping;
	int64_t kill_at;        /* stopping: SIGKILL what still runs then */
	int64_t serviced;       /* the master's last workers_service */
	int64_t watch_from;     /* the watchdog counts from here at the earliest */
	int status;             /* the master's exit status */
} W;

int workers_child(unsigned *index, int *listen_fd, int *table_fd)
{
	const char *v = getenv(ENV_NAME);
	if (!v) return -1;
	char tail;
	if (sscanf(v, "%u:%d:%d%c", index, listen_fd, table_fd, &tail) != 3 || *listen_fd < 0 || *table_fd < 0) {
		fprintf(stderr, "kbridge: %s: malformed hand-over '%s' (it is set by the master of --workers)\n", ENV_NAME, v);
		exit(2);
	}
	unsetenv(ENV_NAME);
	fcntl(*listen_fd, F_SETFD, FD_CLOEXEC);
	fcntl(*table_fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

/* The environment of worker i: this one and its hand-over. */
static char **child_env(unsigned i, char *handover, size_t len)
{
	size_t n = 0;
	while (environ[n]) n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env) return NULL;
	size_t k = 0;
	for (size_t j = 0; j < n; j++)
		if (strncmp(environ[j], ENV_NAME "=", sizeof(ENV_NAME))) env[k++] = environ[j];
	snprintf(handover, len, ENV_NAME "=%u:%d:%d", i, W.w[i].listen_fd, W.table_fd);
	env[k] = handover;
	return env;
}

static void spawn(unsigned i)
{
	struct worker *w = &W.w[i];
	char handover[64], err[256];
	if (w->listen_fd < 0 && (w->listen_fd = server_bind(&W.addr, W.alen, W.cfg->listen_str, 1, err, sizeof(err))) < 0) {
		log_msg(LOG_ERROR, "cannot start worker", "worker", log_num(i), "error", err, NULL);
		w->restart_at = clock_now() + BACKOFF_MAX_MS;
		return;
	}
	char **env = child_env(i, handover, sizeof(handover));
	pid_t master = getpid();
	pid_t pid = env ? fork() : -1;
	if (pid == 0) {
		/* Only async-signal-safe calls until the exec. The two fds
		 * cross it; every other fd of the master is close-on-exec. */
		fcntl(w->listen_fd, F_SETFD, 0);
		fcntl(W.table_fd, F_SETFD, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);   /* the master is gone: drain and end */
		if (getppid() != master) _exit(1);
		execve(W.exe, W.argv, env);
		_exit(127);
	}
	free(env);
	w->restart_at = 0;
	if (pid < 0) {
		log_msg(LOG_ERROR, "cannot start worker", "worker", log_num(i), "error", strerror(errno), NULL);
		w->restart_at = clock_now() + BACKOFF_MAX_MS;
		return;
	}
	w->pid = pid;
	w->hung = 0;
	w->started = clock_now();
	w->first = !w->ever;
	fleet_started(i, pid, w->ever);
	if (w->ever) log_msg(LOG_INFO, "worker restarted", "worker", log_num(i), "pid", log_num(pid), NULL);
	w->ever = 1;
}

int workers_start(const struct config *cfg, char **argv, char *err, size_t errlen)
{
	/* The binary to run again: the one this process runs, even if the
	 * file was replaced since; without /proc, the path it was run by. */
	if (access("/proc/self/exe", X_OK) == 0) W.exe = "/proc/self/exe";
	else if (strchr(argv[0], '/')) W.exe = argv[0];
	else {
		snprintf(err, errlen, "--workers: cannot find this program to start workers (no /proc/self/exe; run it by its path)");
		return -1;
	}
	W.argv = argv;
	W.cfg = cfg;
	W.n = (unsigned)cfg->workers;
	if (!(W.w = calloc(W.n, sizeof(*W.w)))) { snprintf(err, errlen, "out of memory"); return -1; }
	/* Every listener on the same port: the first one's when --listen asks
	 * for port 0. A probe without SO_REUSEPORT first: another kbridge with
	 * workers on the port would otherwise let this one join its group. */
	W.addr = cfg->listen;
	W.alen = cfg->listen_len;
	int probe = server_bind(&W.addr, W.alen, cfg->listen_str, 0, err, errlen);
	if (probe < 0) return -1;
	getsockname(probe, (struct sockaddr *)&W.addr, &W.alen);
	close(probe);
	for (unsigned i = 0; i < W.n; i++) {
		if ((W.w[i].listen_fd = server_bind(&W.addr, W.alen, cfg->listen_str, 1, err, errlen)) < 0) return -1;
		W.w[i].backoff = BACKOFF_FIRST_MS;
	}
	if ((W.table_fd = fleet_create(W.n, err, errlen)) < 0) return -1;
	for (unsigned i = 0; i < W.n; i++) spawn(i);
	return 0;
}

static const char *why(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status)) snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	return buf;
}

/* A worker ended: stopping, it is done; exit status 2, the master stops;
 * otherwise it is started again after its backoff. */
static void ended(unsigned i, int status)
{
	struct worker *w = &W.w[i];
	char buf[96];
	int64_t now = clock_now(), lived = now - w->started;
	w->pid = 0;
	fleet_gone(i);
	if (W.stopping) {
		log_msg(WIFEXITED(status) && !WEXITSTATUS(status) ? LOG_DEBUG : LOG_WARN, "worker ended",
			"worker", log_num(i), "why", why(status, buf, sizeof(buf)), NULL);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && w->first) {
		log_msg(LOG_ERROR, "worker failed with a configuration error; stopping", "worker", log_num(i),
			"lived_ms", log_num(lived), NULL);
		W.status = 2;
		workers_stop(0);
		return;
	}
	if (lived >= WORKER_STEADY_MS) w->backoff = BACKOFF_FIRST_MS;
	w->restart_at = now + w->backoff;
	/* Dying again at once: its listener leaves the port until the next
	 * start, so new connections go to the workers that serve instead of
	 * waiting seconds in a queue (those waiting in it now are reset). */
	if (w->backoff > BACKOFF_FIRST_MS && w->listen_fd >= 0) {
		close(w->listen_fd);
		w->listen_fd = -1;
	}
	log_msg(LOG_ERROR, "worker died; restarting it", "worker", log_num(i), "why", why(status, buf, sizeof(buf)),
		"lived_ms", log_num(lived), "restart_in_ms", log_num(w->backoff), NULL);
	w->backoff = w->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff * 2;
}

void workers_reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < W.n; i++)
			if (W.w[i].pid == pid) ended(i, status);
}

/* The watchdog: a worker's loop turns at least every tick, so one that has
 * not for HUNG_MS (counted from its start until its first turn) is stuck:
 * it is killed, and restarted like one that died. */
static void watch(unsigned i, int64_t now)
{
	struct worker *w = &W.w[i];
	int64_t last = fleet_turned(i);
	if (last < w->started) last = w->started;
	if (last < W.watch_from) last = W.watch_from;
	if (w->hung || now - last < HUNG_MS) return;
	log_msg(LOG_ERROR, "worker stopped turning its loop; killing it", "worker", log_num(i), "pid", log_num(w->pid),
		"stuck_ms", log_num(now - last), NULL);
	kill(w->pid, SIGKILL);
	w->hung = 1;
}

void workers_service(int64_t now)
{
	/* The master itself did not run for a while (the whole group was
	 * stopped or frozen, or starved): its workers were too, so their
	 * silence so far proves nothing. */
	if (now - W.serviced > 1000) W.watch_from = now;
	W.serviced = now;
	for (unsigned i = 0; i < W.n; i++) {
		if (!W.stopping && W.w[i].restart_at && now >= W.w[i].restart_at) spawn(i);
		if (!W.stopping && W.w[i].pid) watch(i, now);
	}
	if (W.stopping && W.kill_at && now >= W.kill_at) {
		for (unsigned i = 0; i < W.n; i++)
			if (W.w[i].pid) {
				log_msg(LOG_WARN, "worker did not end after the drain; killing it", "worker", log_num(i), NULL);
				kill(W.w[i].pid, SIGKILL);
			}
		W.kill_at = 0;
	}
}

int workers_timeout_ms(int64_t now)
{
	int64_t due = W.stopping ? W.kill_at : 0;
	for (unsigned i = 0; i < W.n && !W.stopping; i++)
		if (W.w[i].restart_at && (!due || W.w[i].restart_at < due)) due = W.w[i].restart_at;
	if (!due) return -1;
	return due > now ? (int)(due - now) : 0;
}

void workers_forward(int sig)
{
	for (unsigned i = 0; i < W.n; i++)
		if (W.w[i].pid) kill(W.w[i].pid, sig);
}

void workers_stop(double drain_s)
{
	if (W.stopping) return;
	W.stopping = 1;
	W.kill_at = clock_now() + (int64_t)(drain_s * 1000) + KILL_GRACE_MS;
	/* The port closes at once: the master's copies of the listeners go
	 * first, the workers close theirs when the signal arrives. */
	for (unsigned i = 0; i < W.n; i++) {
		if (W.w[i].listen_fd >= 0) close(W.w[i].listen_fd);
		W.w[i].listen_fd = -1;
	}
	workers_forward(SIGTERM);
}

void workers_kill(int64_t wait_ms)
{
	workers_forward(SIGKILL);
	int64_t until = mono_ms() + wait_ms;
	for (unsigned i = 0; i < W.n; i++)
		while (W.w[i].pid && waitpid(W.w[i].pid, NULL, WNOHANG) == 0 && mono_ms() < until) {
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
}

int workers_done(void)
{
	if (!W.stopping) return 0;
	for (unsigned i = 0; i < W.n; i++)
		if (W.w[i].pid) return 0;
	return 1;
}

int workers_status(void)
{
	return W.status;
}
