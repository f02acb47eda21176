/* auth.h - authentication and permissions (docs/security.md): which keys
 * verify tokens, who a client is, what it may read, and when its token runs
 * out. Tokens come from the upgrade (Authorization: Bearer, access_token=)
 * or from an "auth" message; their permissions compile into the ordinary
 * subscription filters (filter.h), so fan-out keeps one frame per record.
 * In the protocol layer: it answers clients through the client layer and
 * drops subscriptions through the routing layer. Without --jwt-key and
 * --jwt-secret every function here allows everything. */
#ifndef KB_AUTH_H
#define KB_AUTH_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "filter.h"
#include "jwt.h"

struct channel;

/* Loads the key files. 0, or -1 with one line in err (exit 2). */
int  auth_init(const struct config *cfg, char *err, size_t errlen);
/* Whether clients must authenticate (a key or a secret is configured). */
int  auth_enabled(void);
/* SIGHUP: reload the key files now; a file that fails keeps the old keys. */
void auth_reload(void);
/* Every loop tick: reload key files whose modification time changed
 * (checked every AUTH_POLL_MS). */
void auth_tick(void);
#define AUTH_POLL_MS 2000

/* The upgrade's token (from Authorization or access_token=; NULL when it
 * carries none). JWT_OK: c is authenticated (or needs no token); else the
 * reason to refuse the upgrade with 401. Sets the auth-timeout deadline
 * of a client that brought no token. per_request: the token is a single
 * request's (POST /publish), logged at debug level, by=request. */
enum jwt_error auth_upgrade(struct client *c, const char *token, size_t len, int per_request);
/* {"type":"auth","token":"T"} (or "action"): authenticate or refresh; the
 * reply is an ack or UNAUTHORIZED. */
void auth_message(struct client *c, const char *token, size_t len, const char *id, size_t id_len);
/* Whether c may send a message of this kind now (auth and ping always;
 * the rest once authenticated, or subscribe alone for public channels). */
int  auth_may(const struct client *c);
/* Whether c may publish on channel `name` (or send the command of that
 * type): authentication off, or its token's publish claim has a glob
 * matching it. Public channels are not publishable without a token. */
int  auth_may_publish(const struct client *c, const char *name);

/* Narrows f, a new subscription's filter on channel ch (NULL: every
 * channel), to what c may read. 0, or -1 after answering UNAUTHORIZED
 * (ch not readable, or none of the keys asked is permitted) or BAD_REQUEST
 * (out of memory); id is echoed. */
int  auth_filter(struct client *c, const struct channel *ch, struct filter *f, const char *id, size_t id_len);
/* The restriction on what c may read of ch for a snapshot (keys and
 * forced fields), or NULL when it may read all of it. */
const struct filter *auth_view(const struct client *c, const struct channel *ch);

/* c->auth_deadline passed: the token expired (TOKEN_EXPIRED, close 1008)
 * or no token came in time (close 1008). */
void auth_deadline(struct client *c);
/* The reason in words ("token expired", "bad signature", ...), for the
 * 401 body beside jwt_error_name(). */
const char *auth_reason_text(enum jwt_error e);
/* c unsubscribed: a client without a token left with no subscription
 * gets --auth-timeout again to authenticate (an anonymous reader of
 * public channels is not closed, an idle one is). */
void auth_unsubscribed(struct client *c);
/* Mutual TLS (--tls-client-ca): c's verified certificate has subject CN
 * cn. It is c's identity; without --jwt-key and --jwt-secret, c counts as
 * authenticated for every channel; with them the token still decides
 * every permission, and its sub becomes the identity once it comes. */
void auth_set_certificate(struct client *c, const char *cn);
/* The token's sub of c, else its certificate's CN, NULL when none. */
const char *auth_identity(const struct client *c);
/* c is about to be freed. */
void auth_client_gone(struct client *c);
#endif
