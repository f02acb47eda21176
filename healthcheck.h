/* healthcheck.h - the --healthcheck URL probe (for scratch images). */
#ifndef KB_HEALTHCHECK_H
#define KB_HEALTHCHECK_H
/* Returns the process exit status: 0 on HTTP 200, 1 otherwise. */
int healthcheck_run(const char *url);
#endif
