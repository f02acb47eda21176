/* answer.c - HTTP answers and the checks before a stream (answer.h). */
#include "answer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "clock.h"
#include "cors.h"
#include "iplimit.h"
#include "json.h"
#include "jwt.h"
#include "metrics.h"

static struct {
	const struct config *cfg;
	const struct http_request *cors;   /* answer_cors_on: refusals carry CORS for it */
	int draining;                      /* shutting down: streams get 503 */
} A;

void answer_init(const struct config *cfg)
{
	A.cfg = cfg;
}

/* Queues a complete HTTP response as one private frame (head and body in
 * one buffer: one write). HEAD gets the head of the same response. */
void answer_respond(struct client *c, int status, const char *ctype, const char *body, size_t blen,
		  int keep_alive, int head_only, const char *extra)
{
	char head[2048], more[1024];
	if (A.cors) {              /* a page of another origin may read why it was refused */
		snprintf(more, sizeof(more), "%s", extra ? extra : "");
		answer_add_cors(more, sizeof(more), A.cors, NULL);
		extra = more;
	}
	int hl = http_format_head(head, sizeof(head), status, ctype, blen, keep_alive, extra);
	if (hl < 0) return;
	size_t total = (size_t)hl + (head_only ? 0 : blen);
	struct frame *f = frame_new(total, FRAME_REPLY);
	if (!f) return;
	memcpy(f->data, head, (size_t)hl);
	if (!head_only && blen) memcpy(f->data + hl, body, blen);
	client_queue(c, f);
}

void answer_drain(void)
{
	A.draining = 1;
}

int answer_room(struct client *c)
{
	if (client_ws_count() < (uint32_t)A.cfg->max_clients_here && !A.draining) return 1;
	metrics_add(M_REJECTED_FULL, 1);
	answer_error(c, 503, A.draining ? "shutting down" : "too many clients", "Retry-After: 1\r\n");
	return 0;
}

void answer_cors_on(const struct http_request *req)
{
	A.cors = req;
}

/* An answer {"error":msg}. */
void answer_error_body(struct client *c, int status, const char *msg, int keep, const char *extra)
{
	char body[256];
	struct jbuf b;
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "error");
	json_cstr(&b, msg);
	json_obj_end(&b);
	snprintf(body, sizeof(body), "%.*s\n", (int)b.len, b.buf ? b.buf : "");
	json_free(&b);
	answer_respond(c, status, "application/json", body, strlen(body), keep, 0, extra);
}

/* An error answer that ends the connection: after an error the rest of the
 * input cannot be trusted to be a request. */
void answer_error(struct client *c, int status, const char *msg, const char *extra)
{
	answer_error_body(c, status, msg, 0, extra);
	metrics_add(M_HTTP_ERRORS, 1);
	client_linger(c);
}

/* --allow-origin: exact Origin values; a request without Origin is not
 * from a browser page and is allowed (docs/operations.md). */
int answer_origin_allowed(const struct http_request *req)
{
	const struct http_header *o = http_header_get(req, "Origin");
	return cors_origin_allowed(A.cfg->origins, A.cfg->norigins, o ? o->value : NULL, o ? o->value_len : 0);
}

/* Appends the CORS header lines of an answer to req (methods: a preflight's)
 * after the n bytes already in extra. */
void answer_add_cors(char *extra, size_t cap, const struct http_request *req, const char *methods)
{
	size_t n = strlen(extra);
	if (cors_headers(extra + n, cap - n, A.cfg->origins, A.cfg->norigins, req, methods) < 0) extra[n] = '\0';
}

/* OPTIONS of a path that exists (RFC 9110 §9.3.7): 204 with Allow. A CORS
 * preflight gets the cross-origin answer when the path is one other
 * origins may read and --allow-origin allows the Origin, else 403; a plain
 * OPTIONS of such a path the CORS headers of a GET. A refused preflight was
 * a valid request: the connection stays open (docs/protocol.md#cors). */
void answer_options(struct client *c, const struct http_request *req, const struct endpoint_info *ei, int keep)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), "Allow: %s\r\n", ei->methods);
	if (cors_is_preflight(req)) {
		if (!ei->cors) {
			answer_error_body(c, 403, "this path does not answer other origins", keep, NULL);
			return;
		}
		if (!answer_origin_allowed(req)) {
			char vary[64] = "";
			answer_add_cors(vary, sizeof(vary), req, NULL);   /* Vary: Origin, with a list */
			answer_error_body(c, 403, "origin not allowed", keep, vary);
			return;
		}
		answer_add_cors(extra, sizeof(extra), req, ei->methods);
	} else if (ei->cors) {
		answer_add_cors(extra, sizeof(extra), req, NULL);
	}
	answer_respond(c, 204, NULL, NULL, 0, keep, 0, extra);
}

/* An upgrade that is not a valid one: counted, then answered like any
 * HTTP error. */
void answer_refused(struct client *c, int status, const char *msg, const char *extra)
{
	metrics_add(M_REJECTED_BAD, 1);
	answer_error(c, status, msg, extra);
}

/* The request's token, if it brings one (docs/security.md#tokens):
 * Authorization: Bearer, else access_token=. A bad one is answered 401
 * (RFC 6750 §3) with the reason, and so is none at all when required;
 * -1 then. */
int answer_token(struct client *c, const struct http_request *req, int required)
{
	const struct http_header *az = http_header_get(req, "Authorization");
	static char qtok[JWT_MAX_LEN + 1];
	if (auth_enabled() && http_header_count(req, "Authorization") > 1) {
		/* A proxy and kbridge must not read different tokens. */
		answer_refused(c, 400, "two Authorization lines", NULL);
		return -1;
	}
	const char *tok = NULL;
	size_t len = 0;
	ssize_t n;
	if (az && az->value_len >= 7 && strncasecmp(az->value, "Bearer ", 7) == 0) {
		tok = az->value + 7;
		len = az->value_len - 7;
		while (len && *tok == ' ') { tok++; len--; }
		if (!len) tok = NULL;          /* "Bearer " alone: no token */
	} else if ((n = http_query_param(req->query, req->query_len, "access_token", qtok, sizeof(qtok))) >= 0) {
		tok = qtok;
		len = (size_t)n;
	} else if (n == -2) {
		tok = qtok;                    /* too long or badly encoded: malformed */
		len = JWT_MAX_LEN + 1;
	}
	if (required && auth_enabled() && !len) {
		answer_error(c, 401, "a token is required: Authorization: Bearer <token>", "WWW-Authenticate: Bearer\r\n");
		return -1;
	}
	enum jwt_error e = auth_upgrade(c, tok, len, required);
	if (e == JWT_OK) return 0;
	char body[256];
	struct jbuf b;
	json_init(&b);
	json_obj_begin(&b);
	json_key(&b, "error");  json_cstr(&b, auth_reason_text(e));
	json_key(&b, "reason"); json_cstr(&b, jwt_error_name(e));
	json_obj_end(&b);
	snprintf(body, sizeof(body), "%.*s\n", (int)b.len, b.buf ? b.buf : "");
	json_free(&b);
	char extra[160];
	snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"%s\"\r\n",
		 auth_reason_text(e));
	answer_respond(c, 401, "application/json", body, strlen(body), 0, 0, extra);
	metrics_add(M_HTTP_ERRORS, 1);
	client_linger(c);
	return -1;
}

/* The per-address limits (--max-clients-per-ip, --upgrade-rate) on the
 * address the client counts as: behind a --trusted-proxy the one the
 * proxy names, which from here on is c's peer (logs, /stats). 0, or -1
 * after a 429. */
int answer_admitted(struct client *c, const struct http_request *req)
{
	struct sockaddr_storage fwd;
	socklen_t fl;
	if (iplimit_forwarded(req, &c->peer.sa, A.cfg->trusted, A.cfg->ntrusted, &fwd, &fl) &&
	    (size_t)fl <= sizeof(c->peer))
		memcpy(&c->peer, &fwd, (size_t)fl);
	unsigned retry = 0;
	switch (iplimit_admit(&c->peer.sa, clock_now(), &retry)) {
	case IPLIMIT_OK:
		return 0;
	case IPLIMIT_PER_IP:
		metrics_add(M_REJECTED_PER_IP, 1);
		answer_error(c, 429, "too many connections from this address", NULL);
		return -1;
	case IPLIMIT_RATE: {
		char extra[48];
		snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry);
		metrics_add(M_REJECTED_RATE, 1);
		answer_error(c, 429, "too many upgrades from this address", extra);
		return -1;
	}
	}
	return 0;
}
