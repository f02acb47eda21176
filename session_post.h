/* session_post.h - POST /publish/CHANNEL in the session layer
 * (docs/protocol.md#publishing): the body framed by Content-Length (411
 * without one, 413 over --max-message), the request checked like the
 * WebSocket publish message (Origin, token, channel, the token's publish
 * claim, one JSON value), then handed to the producer; the answer waits
 * for Kafka's. A connection answers one publish at a time: what a client
 * pipelines behind it is read after the answer. */
#ifndef KB_SESSION_POST_H
#define KB_SESSION_POST_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "http.h"

/* Called after an answer that keeps the connection, so that requests
 * already buffered behind the publish are read (the session's input). */
typedef void session_more_fn(struct client *c);
void session_post_init(const struct config *cfg, session_more_fn *more);
/* Shutting down: publishes are refused (503), and answers close. */
void session_post_drain(void);
/* Connections waiting for Kafka's answer to their publish: they are
 * not heads in progress (the server's cap on those leaves them out), and
 * at most 4,096 wait at once (429 beyond). */
uint32_t session_post_waiting(void);
/* c is about to be freed (before the protocol layer forgets it). */
void session_post_gone(struct client *c);
/* 1 when req is for /publish/<something> on the main port. */
int  session_post_path(const struct client *c, const struct http_request *req);
/* 1 when req's /publish/CHANNEL names a --publish channel (a preflight
 * for another is a 404 like any unknown path). */
int  session_post_channel(const struct http_request *req);
/* The body of req, whose head is buf[0..head_len): 1 with *body and
 * *body_len when all of it is in buf[0..len), 0 when more must arrive,
 * -1 after answering 411 (no Content-Length, or a Transfer-Encoding) or
 * 413 (over --max-message, before any of it is read); these close. */
int  session_post_body(struct client *c, const char *buf, size_t len, size_t head_len, const struct http_request *req,
		       const char **body, size_t *body_len);
/* Serves the publish; keep: the client asked to keep the connection.
 * Either answered now (c->publishing unchanged) or waiting for Kafka
 * (c->publishing counts it; nothing more is read until the answer). */
void session_post(struct client *c, const struct http_request *req, const char *body, size_t body_len, int keep);
#endif
