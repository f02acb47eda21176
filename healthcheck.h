/* healthcheck.h - the --healthcheck URL probe (for scratch images). */
#ifndef KB_HEALTHCHECK_H
#define KB_HEALTHCHECK_H
/* Probes an http:// or https:// URL; an https:// one is verified against
 * ca_file (PEM; NULL: the system's CA paths) unless insecure. Returns the
 * process exit status: 0 on HTTP 200, 1 otherwise. */
int healthcheck_run(const char *url, const char *ca_file, int insecure);
#endif
