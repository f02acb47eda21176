/* proto_publish.h - the protocol's side of publishing into Kafka
 * (docs/protocol.md#publishing): the publish message of both dialects and
 * the --command messages become records for the producer (publish.h), and
 * Kafka's answer becomes the client's ack or PUBLISH_FAILED. */
#ifndef KB_PROTO_PUBLISH_H
#define KB_PROTO_PUBLISH_H
#include <stdint.h>

#include "config.h"
#include "proto.h"

/* Reads --publish and --command (a --command naming one of the
 * protocol's own message types is refused). 0, or -1 with the reason. */
int  proto_publish_init(const struct config *cfg, char *err, size_t errlen);
/* m's operation is token t (a string): a publish, or a --command type.
 * Returns 1 when it was one (answered now or when Kafka answers), 0 when
 * it is neither. The caller has checked auth_may. */
int  proto_publish_handle(const struct msg_ctx *m, int t);
/* 1 when the JSON text m[0..len) is an object whose operation is a
 * publish or a --command type, as written (read off the text, without
 * tokens: their pace is --max-inflight's, not --client-rate's, and their
 * records may be larger JSON than a control message). */
int  proto_publish_text(const char *m, size_t len);
/* Shutting down (the drain ends at deadline_ms, turn clock): new
 * publishes fail, those in flight are answered before it, and a client
 * held open for its answers is closed (1001) after its last one. */
void proto_publish_drain(int64_t deadline_ms);
/* c is going away: its answers are no longer wanted. */
void proto_publish_gone(struct client *c);
#endif
