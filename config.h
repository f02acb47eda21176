/* config.h - kbridge's configuration: every flag of docs/operations.md, its
 * environment variable(s), its default and its validation. config_load()
 * either fills a struct config or prints one line naming the bad flag and
 * exits 2: nothing has started yet when it runs. */
#ifndef KB_CONFIG_H
#define KB_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

enum slow_policy { SLOW_DROP_OLDEST, SLOW_CONFLATE, SLOW_DISCONNECT };
enum offset_kind { OFFSET_LATEST, OFFSET_EARLIEST, OFFSET_TAIL, OFFSET_TIME };

struct config {
	const char *brokers;
	const char **topics;   size_t ntopics;    /* "topic[=channel[:type]]" */
	const char *group;
	enum offset_kind offset;
	int64_t offset_arg;                       /* N for TAIL, ms for TIME */
	const char **xprops;   size_t nxprops;    /* "key=value" */

	struct sockaddr_storage listen;
	socklen_t listen_len;
	const char *listen_str;

	long max_clients;
	long max_clients_here;                    /* this process's share (--workers); else max_clients */
	size_t client_buffer;
	long client_queue;
	enum slow_policy slow;
	size_t max_message;
	int deflate;                              /* --deflate on: permessage-deflate is negotiated */
	size_t deflate_min_size;
	double ping_interval;                     /* seconds; 0 = no pings */
	const char **origins;  size_t norigins;   /* empty = any ("*") */
	int demo;
	long demo_rate;
	int log_level;
	int log_json;
	double drain_timeout;
	double header_timeout;
	long max_subscriptions;
	long client_rate;
	int headers;                              /* add record headers to envelopes */
	size_t history;
	long snapshot_keys;                       /* last-value cache bound per channel */
	const char **state_shapes; size_t nstate_shapes;   /* "channel=map|value|list" */
	const char *ca_file;                      /* -> ssl.ca.location */
	const char *healthcheck;                  /* URL: probe it and exit */
	const char *healthcheck_ca;               /* PEM CAs for an https:// probe */
	int healthcheck_insecure;                 /* https:// probe without verification */

	/* Authentication and abuse limits (docs/security.md). */
	const char *jwt_key;                      /* file: PEM keys/certificates or a JWKS document */
	const char *jwt_secret;                   /* file: the HMAC secret */
	const char *jwt_audience, *jwt_issuer;
	double jwt_leeway;                        /* seconds of clock skew for exp and nbf */
	const char *jwt_claim;                    /* the claim object holding permissions */
	const char **public_channels; size_t npublic_channels;   /* globs */
	double auth_timeout;                      /* seconds to authenticate by message */
	struct sockaddr_storage admin_listen;     /* admin_listen_len 0: no admin listener */
	socklen_t admin_listen_len;
	const char *admin_listen_str;
	const char *admin_token;                  /* file: the admin bearer token */
	long max_clients_per_ip;                  /* 0: off */
	long upgrade_rate;                        /* upgrades per second per address, 0: off */
	struct cidr *trusted; size_t ntrusted;    /* --trusted-proxy */

	/* TLS on --listen (issue 14); NULL: plain. */
	const char *tls_cert, *tls_key;           /* both or neither */
	const char *tls_client_ca;                /* mutual TLS */

	int workers;                              /* processes sharing --listen (issue 16); 1: this one */
	int workers_auto;                         /* --workers auto: capped to --max-clients */

	/* Publishing into Kafka (docs/protocol.md#publishing). */
	const char **publishes; size_t npublishes;   /* --publish "CHANNEL=TOPIC" */
	const char **commands; size_t ncommands;     /* --command "TYPE=TOPIC" */
	double publish_timeout;                   /* seconds Kafka has to acknowledge */
	long max_inflight;                        /* unacknowledged publishes per client */
};

#define CONFIG_WORKERS_MAX 64
#define CONFIG_WORKERS_MAX_STR "64"

/* An address range of --trusted-proxy. IPv4 ranges are kept as IPv4;
 * IPv4-mapped IPv6 peers are compared as IPv4. */
struct cidr {
	int family;                               /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

/* A file named by the configuration, as seen now: a rewrite changes one
 * of these (all 0 when the file cannot be read). Key and certificate
 * files are polled with a file_watch and read again when it changes. */
struct file_stamp { struct timespec mtime; off_t size; ino_t ino; };

/* Up to FILE_WATCH_MAX such files (NULL paths skipped), polled. */
#define FILE_WATCH_MAX 3
struct file_watch {
	const char *path[FILE_WATCH_MAX];
	struct file_stamp st[FILE_WATCH_MAX];
	int64_t next;                 /* turn-clock ms of the next look */
};
/* Remembers the files as they are now (right before they are read), and
 * looks again no sooner than now + period_ms. */
void file_watch_mark(struct file_watch *w, int64_t now, int64_t period_ms);
/* 1 when one of the files changed since the mark; looks at most once per
 * period_ms (0 between looks). */
int  file_watch_changed(struct file_watch *w, int64_t now, int64_t period_ms);

/* 1 when the address sa falls in one of the n ranges. */
int cidr_match(const struct cidr *r, size_t n, const struct sockaddr *sa);

/* Parses argv and the environment. Exits 0 after --help, --version or
 * --licenses, 2 on a bad value. `version_line` prints the --version text. */
void config_load(struct config *c, int argc, char **argv, void (*version_line)(void));
/* Logs the effective configuration in one line, secrets from -X redacted. */
void config_log_summary(const struct config *c);
#endif
