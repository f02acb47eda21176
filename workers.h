/* workers.h - the master process of --workers N (docs/operations.md#workers).
 * It binds N listeners on --listen with SO_REUSEPORT, one per worker, and
 * keeps them: a worker that dies leaves its queue of new connections to
 * the one that replaces it. Each worker is this binary executed again with
 * its listener and the shared table (fleet.h); it runs the whole
 * single-process loop with its own consumer. The master restarts a worker
 * that died (with backoff) and logs why, forwards SIGHUP and SIGTERM, and
 * serves --admin-listen from the totals; it is on no data path. */
#ifndef KB_WORKERS_H
#define KB_WORKERS_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* In a worker: the index and fds the master handed it (from the
 * environment, which is then cleaned). 0: this is a worker; -1: it is
 * not; exits 2 when the hand-over is malformed. */
int  workers_child(unsigned *index, int *listen_fd, int *table_fd);

/* The master: binds the listeners, creates the shared table and starts
 * every worker. argv: this process's own, given to each worker. 0, or -1
 * with one line in err (exit 1). */
int  workers_start(const struct config *cfg, char **argv, char *err, size_t errlen);

void workers_reap(void);             /* SIGCHLD: collect and log the ended */
void workers_service(int64_t now);   /* restarts that are due */
int  workers_timeout_ms(int64_t now);/* until the next restart, -1 when none */
void workers_forward(int sig);       /* SIGHUP (and a second SIGTERM) to every worker */
/* SIGTERM: no more connections (the listeners close) and every worker
 * drains; drain_s later a worker still running is killed. */
void workers_stop(double drain_s);
int  workers_done(void);             /* stopped, and every worker has ended */
int  workers_status(void);           /* the master's exit status once done */
#endif
