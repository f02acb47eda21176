/* proto.h - kbridge's application protocol over WebSocket (DESIGN.md §4):
 * client control messages in both dialects, upgrade query parameters, and
 * the per-client side of subscriptions. */
#ifndef KB_PROTO_H
#define KB_PROTO_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "json.h"

/* One parsed client message: tok[0] is a JSON object; id is the raw text
 * of its "id" member (NULL if none), echoed in every reply. */
struct msg_ctx {
	struct client *c;
	const char *src;
	const struct json_tok *tok;
	int ntok;
	const char *id;
	size_t id_len;
};

#define PROTO_QUERY_MAX 2048
#define PROTO_RESUME_MAX 16     /* partitions in resume= on the upgrade */

/* Query parameters of the upgrade request (§3), validated before the 101. */
struct upgrade_opts {
	char channels[PROTO_QUERY_MAX];   /* comma list from channel= / channels= */
	int msgpack;
	int interval_ms;                  /* conflation, 0 = none */
	int snapshot;
	int nresume;                      /* resume=TOPIC:PARTITION:OFFSET,... */
	char rtopics[PROTO_RESUME_MAX][256];
	int32_t rparts[PROTO_RESUME_MAX];
	int64_t rlast[PROTO_RESUME_MAX];
};

int  proto_init(const struct config *cfg, char *err, size_t errlen);
void proto_handle(const struct msg_ctx *m);
/* 0, or -1 with a one-line reason in err (answered 400). */
int  proto_upgrade_parse(const char *query, size_t qlen, struct upgrade_opts *o, char *err, size_t errlen);
void proto_upgrade_apply(struct client *c, const struct upgrade_opts *o);
void proto_client_gone(struct client *c);
void proto_tick(void);
#endif
