/* proto.h - the protocol layer: kbridge's application protocol over
 * WebSocket (docs/protocol.md). Client control messages of both dialects,
 * upgrade query parameters, and the per-client side of subscriptions,
 * snapshots and resume. Below the session layer (which parses frames and
 * JSON), above routing, Kafka and the client layer. */
#ifndef KB_PROTO_H
#define KB_PROTO_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "json_parse.h"
#include "proto_query.h"

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

/* Sets up this layer and the routing layer below it (routes from cfg)
 * and registers for the outcomes of replays from Kafka. 0, or -1 with a
 * one-line reason in err (a configuration error: exit 2). */
int  proto_init(const struct config *cfg, char *err, size_t errlen);
/* Handles one client control message (a JSON object); every reply goes to
 * m->c through the client layer. */
void proto_handle(const struct msg_ctx *m);
/* After the 101: applies the validated options (format, conflation,
 * subscriptions, snapshots, resume). */
void proto_upgrade_apply(struct client *c, const struct upgrade_opts *o);
/* c is about to be freed: every layer below forgets it. */
void proto_client_gone(struct client *c);
/* Once per loop tick (between requests): frees unused channels. */
void proto_tick(void);
#endif
