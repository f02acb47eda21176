/* endpoints.h - the plain HTTP endpoints (docs/operations.md): /health,
 * /ready, /stats, /metrics, /docs, /asyncapi.json, /openapi.json and the
 * console. Each request fills a status and a body; the session layer sends
 * them, and asks first what a path is (OPTIONS, CORS). Which port serves
 * which path (--admin-listen) and the admin token (--admin-token) are
 * decided here too. The live state of layers above this one (clients,
 * channels, Kafka) is read through sources registered once at start-up;
 * counters come from metrics.c. */
#ifndef KB_ENDPOINTS_H
#define KB_ENDPOINTS_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "route.h"

struct http_out {
	int status;
	const char *ctype;     /* NULL: application/json */
	const char *extra;     /* extra header lines, or NULL */
	struct jbuf body;
};

/* Per-client summaries in /stats: a stats call must stay cheap. */
#define ENDPOINTS_CLIENTS_MAX 100

/* One WebSocket client as /stats lists it. */
struct endpoints_client {
	uint32_t id;
	const char *peer;      /* "ip:port", valid until the next call */
	const char *identity;  /* the token's subject, NULL when none */
	uint32_t subscriptions;
	uint32_t queued_messages;
	size_t queued_bytes;
	int worker;            /* --workers: the worker it is on; -1 without */
	int deflate;           /* negotiated permessage-deflate */
	int sse;               /* an SSE stream, not a WebSocket */
};

/* One worker process as /stats lists it (--workers). */
struct endpoints_worker {
	unsigned index;
	int pid;               /* 0: not running (between a crash and its restart) */
	int ready, kafka_up;
	uint32_t clients;
	uint32_t restarts;
};

/* What the endpoints read from the layers above them. Iterators start
 * with *i = 0 and return 0 when done. */
struct endpoints_sources {
	uint32_t (*clients)(void);                                  /* open WebSocket clients and SSE streams */
	uint32_t (*deflate_clients)(void);                          /* of them, with permessage-deflate */
	uint32_t (*sse_clients)(void);                              /* of them, SSE streams */
	int (*client_next)(size_t *i, struct endpoints_client *out);
	int (*kafka_up)(void);
	int (*kafka_ready)(void);
	const char *(*kafka_version)(void);
	int (*lag_next)(size_t *i, const char **tp, int64_t *lag);  /* "topic:partition", -1 unknown */
	int (*channel_next)(size_t *i, const char **name, uint32_t *subs, uint64_t *seq);
	size_t (*routes)(const struct route **out);
	/* the state dialect: its clients, their groups, updates sent */
	void (*state_counts)(uint32_t *clients, uint32_t *groups, uint64_t *updates);
	/* --workers: each worker process; NULL without workers */
	int (*worker_next)(size_t *i, struct endpoints_worker *out);
};

/* cfg and sources must stay valid for the process's life. Reads the
 * --admin-token file: 0, or -1 with one line in err (exit 2). */
int  endpoints_init(const struct config *cfg, const struct endpoints_sources *sources, char *err, size_t errlen);
/* SIGHUP: reads the --admin-token file again; one that cannot be read or
 * is empty keeps the old token and logs one error line. 0 when there is
 * no such file to reload. */
int  endpoints_reload(void);

/* The token's maximum length: it travels in one header line. */
#define ENDPOINTS_TOKEN_MAX 4096

/* What a path is, before it is answered. */
struct endpoint_info {
	const char *methods;   /* what Allow and a preflight's answer list */
	int cors;              /* JSON or text: pages of other origins may read it
	                        * (docs/protocol.md#cors); the HTML pages may not */
};

/* 0 and *info for a path endpoints_handle answers, -1 for one it answers
 * with 404. admin: the request came to --admin-listen, which serves only
 * /metrics, /stats, /ws/stats and the probes /health and /ready; with an
 * admin listener the main port no longer serves the first three. */
int endpoints_find(const struct http_request *req, int admin, struct endpoint_info *info);

/* GET/HEAD of a non-WebSocket path (admin: as for endpoints_find). With
 * --admin-token the admin endpoints answer 401 unless the request carries
 * Authorization: Bearer <token>. */
void endpoints_handle(const struct http_request *req, int admin, struct http_out *out);
#endif
