/* session_post.c - POST /publish/CHANNEL (session_post.h;
 * docs/protocol.md#publishing): a request with a Content-Length body
 * becomes one record for the producer, and the connection waits, reading
 * nothing more, until Kafka answers: 200 with the record's topic,
 * partition and offset, or an error status. The same rules as the
 * WebSocket publish message (channel, token, --max-message). */
#include "session_post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "auth.h"
#include "clock.h"
#include "json.h"
#include "json_parse.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"

#define PREFIX     "/publish/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define KEY_MAX    4096          /* ?key= decoded */
#define ANSWER_SLACK_MS 5000     /* past --publish-timeout: the producer answers before this */
#define WAITING_MAX 4096         /* connections waiting for Kafka's answer at once; beyond: 429 */

static struct {
	const struct config *cfg;
	int stopping;
	uint32_t waiting;            /* connections whose publish waits for Kafka */
	session_more_fn *more;
} SP;

void session_post_init(const struct config *cfg, session_more_fn *more)
{
	SP.cfg = cfg;
	SP.more = more;
}

void session_post_drain(void)
{
	SP.stopping = 1;
}

uint32_t session_post_waiting(void)
{
	return SP.waiting;
}

void session_post_gone(struct client *c)
{
	if (!c->ws && c->publishing) SP.waiting--;   /* a plain HTTP connection, whatever state it ended in */
}

int session_post_path(const struct client *c, const struct http_request *req)
{
	return !c->admin && req->path_len > PREFIX_LEN && memcmp(req->path, PREFIX, PREFIX_LEN) == 0;
}

int session_post_channel(const struct http_request *req)
{
	return publish_channel(req->path + PREFIX_LEN, req->path_len - PREFIX_LEN) != NULL;
}

static const struct publish_route *admit(struct client *c, const struct http_request *req, char *extra, size_t cap,
					 int keep);

int session_post_body(struct client *c, const char *buf, size_t len, size_t head_len, const struct http_request *req,
		      const char **body, size_t *body_len)
{
	if (req->transfer_encoding) {
		answer_error(c, 411, "Transfer-Encoding is not accepted here: send the body with a Content-Length", NULL);
		return -1;
	}
	if (req->content_length < 0) {
		answer_error(c, 411, "POST /publish needs a Content-Length", NULL);
		return -1;
	}
	if ((uint64_t)req->content_length > SP.cfg->max_message) {
		char msg[96];
		snprintf(msg, sizeof(msg), "the body is larger than --max-message (%zu bytes)", SP.cfg->max_message);
		answer_error(c, 413, msg, NULL);
		return -1;
	}
	ssize_t n = http_body(buf, len, head_len, req, body);
	if (n < 0) {
		/* A client that waits for leave to send its body gets it, once,
		 * when its head came alone, unless the head already decides the
		 * answer (RFC 9110 §10.1.1; HTTP/1.0 clients do not wait). */
		if (len == head_len && req->minor >= 1 && http_header_has_token(req, "Expect", "100-continue")) {
			char extra[1024];
			if (!admit(c, req, extra, sizeof(extra), 0)) {
				if (c->state == CS_HTTP) client_linger(c);   /* its body would follow */
				return -1;
			}
			if (c->au) auth_client_gone(c);
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			struct frame *f = frame_new(sizeof(cont) - 1, FRAME_REPLY);
			if (f) {
				memcpy(f->data, cont, sizeof(cont) - 1);
				client_queue(c, f);
			}
		}
		return 0;
	}
	*body_len = (size_t)n;
	return 1;
}

/* ---- Kafka's answer ------------------------------------------------------------ */

/* A note is the keep-alive flag, then the answer's extra header lines. */
static void answered(void *owner, const void *note, size_t note_len, const struct publish_outcome *o)
{
	struct client *c = owner;
	const char *n = note;
	int keep = n[0] == '1' && !SP.stopping && !c->rd_eof;   /* a peer that shut its side sends nothing more */
	char extra[1024];
	snprintf(extra, sizeof(extra), "%.*s", (int)(note_len - 1), n + 1);
	c->publishing--;
	SP.waiting--;
	if (o->ok) {
		struct jbuf b;
		json_init(&b);
		json_obj_begin(&b);
		json_key(&b, "topic");     json_cstr(&b, o->topic);
		json_key(&b, "partition"); json_int(&b, o->partition);
		json_key(&b, "offset");    json_int(&b, o->offset);
		json_obj_end(&b);
		json_raw(&b, "\n", 1);
		answer_respond(c, 200, "application/json", b.buf, b.len, keep, 0, extra);
		json_free(&b);
	} else {
		answer_error_body(c, 503, o->error, keep, extra);
	}
	if (!keep) {
		client_linger(c);
		return;
	}
	c->deadline = clock_now() + (int64_t)(SP.cfg->header_timeout * 1000);
	c->got_bytes = 0;
	SP.more(c);   /* a request that came behind this one */
}

/* ---- the request ---------------------------------------------------------------- */

/* The checks the head alone decides: the Origin, the token, the channel
 * and the token's publish claim. extra gets the answer's CORS lines.
 * The channel's route, or NULL after an answer (kept open when keep). */
static const struct publish_route *admit(struct client *c, const struct http_request *req, char *extra, size_t cap,
					 int keep)
{
	*extra = '\0';
	const struct http_header *origin = http_header_get(req, "Origin");
	if (origin) {
		if (!answer_origin_allowed(req)) {
			metrics_add(M_REJECTED_ORIGIN, 1);
			answer_error(c, 403, "origin not allowed", NULL);
			return NULL;
		}
		answer_add_cors(extra, cap, req, NULL);
	}
	if (auth_enabled()) {
		/* Each request answers for itself: a token an earlier request on
		 * this connection brought (a proxy may carry many users' requests
		 * over one connection) authorizes nothing now. */
		auth_client_gone(c);
		c->auth_deadline = 0;
		if (answer_token(c, req, 1) < 0) return NULL;
	}
	const char *channel = req->path + PREFIX_LEN;
	size_t clen = req->path_len - PREFIX_LEN;
	const struct publish_route *r = publish_channel(channel, clen);
	char name[512];
	snprintf(name, sizeof(name), "%.*s", (int)clen, channel);
	if (!r) {
		answer_error_body(c, 404, "not a channel clients may publish on", keep, extra);
		return NULL;
	}
	if (!auth_may_publish(c, name)) {
		answer_error_body(c, 403, "the token does not allow publishing on this channel", keep, extra);
		return NULL;
	}
	return r;
}

/* 429 with Retry-After: nothing was written, try again in a second. */
static void too_many(struct client *c, const char *why, int keep, const char *extra)
{
	char more[1100];
	snprintf(more, sizeof(more), "Retry-After: 1\r\n%s", extra);
	answer_error_body(c, 429, why, keep, more);
}

static void serve(struct client *c, const struct http_request *req, const char *body, size_t body_len, int keep);

void session_post(struct client *c, const struct http_request *req, const char *body, size_t body_len, int keep)
{
	serve(c, req, body, body_len, keep);
	/* The token authorized this request alone (a request that follows
	 * on the connection, an upgrade too, brings its own). */
	if (c->au) auth_client_gone(c);
}

static void serve(struct client *c, const struct http_request *req, const char *body, size_t body_len, int keep)
{
	char extra[1024];
	const struct publish_route *r = admit(c, req, extra, sizeof(extra), keep);
	if (!r) return;
	if (!body_len || !json_validate(body, body_len)) {
		answer_error_body(c, 400, "the body must be one JSON value", keep, extra);
		return;
	}
	static char key[KEY_MAX + 1];
	ssize_t klen = http_query_param(req->query, req->query_len, "key", key, sizeof(key));
	if (klen == -2) {
		answer_error_body(c, 400, "key: too long or badly encoded", keep, extra);
		return;
	}
	if (SP.stopping) {
		answer_error_body(c, 503, "server shutting down: nothing was written", 0, extra);
		publish_refused(r);
		client_linger(c);
		return;
	}
	if (SP.waiting >= WAITING_MAX) {
		too_many(c, "too many publishes wait for Kafka: nothing was written", keep, extra);
		publish_rate_limited(r);
		return;
	}
	struct publish_record rec = { .value = body, .value_len = body_len, .key = klen >= 0 ? key : NULL,
				      .key_len = klen >= 0 ? (size_t)klen : 0 };
	size_t elen = strlen(extra);
	char note[1 + sizeof(extra)];
	note[0] = keep ? '1' : '0';
	memcpy(note + 1, extra, elen);
	int rc = publish_send(r, &rec, c, answered, note, 1 + elen);
	if (rc == PUBLISH_QUEUED) {
		c->publishing++;
		SP.waiting++;
		/* Kafka's answer, not the head's deadline, ends the wait now. */
		c->deadline = clock_now() + (int64_t)(SP.cfg->publish_timeout * 1000) + ANSWER_SLACK_MS;
		return;
	}
	int status = rc == PUBLISH_FULL ? 429 : rc == PUBLISH_TOO_LARGE ? 413 : 503;
	const char *why = rc == PUBLISH_FULL ? "Kafka's producer queue is full: nothing was written"
		: rc == PUBLISH_TOO_LARGE ? "the record is larger than Kafka accepts (message.max.bytes)"
		: publish_refusal_text();
	if (status == 429) too_many(c, why, keep, extra);
	else answer_error_body(c, status, why, keep, extra);
}
