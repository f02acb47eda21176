/* session.h - the session layer: what a peer says. An HTTP request head
 * becomes an endpoint answer or a WebSocket upgrade; WebSocket frames
 * become messages for the protocol layer (fragments, UTF-8, the close
 * handshake, the message size and rate limits). Called by the server with
 * the bytes it read; reads and writes no socket itself. */
#ifndef KB_SESSION_H
#define KB_SESSION_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"

void session_init(const struct config *cfg);
/* Handles what buf[0..len) completes for c (request heads in CS_HTTP,
 * frames in CS_WS and CS_CLOSING; discarded otherwise) and returns the
 * bytes consumed; the caller keeps the rest for the next read. A head
 * that reaches the size limit unfinished is answered 431. */
size_t session_input(struct client *c, unsigned char *buf, size_t len);
/* c's request head did not arrive within --header-timeout: 408, or a
 * silent close when not one byte came. */
void session_head_timeout(struct client *c);
/* Shutting down (the drain ends at deadline_ms, turn clock): from now on
 * upgrades and SSE requests are refused with 503 and publishes fail;
 * those in flight are answered before the deadline. */
void session_drain(int64_t deadline_ms);
#endif
