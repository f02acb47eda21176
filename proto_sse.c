/* proto_sse.c - GET /sse on the protocol side (proto_sse.h). The query is
 * turned into the subscribe message a WebSocket client would send, so the
 * stream is subscribed, narrowed by a token's permissions, snapshotted and
 * resumed by exactly the code that serves WebSocket clients; its errors are
 * caught (client_capture) and become the HTTP refusal. */
#include "proto_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conflate.h"
#include "http.h"
#include "hub.h"
#include "json_parse.h"
#include "proto.h"
#include "replay.h"
#include "sse.h"
#include "tp.h"

static int refuse(struct sse_refusal *no, int status, const char *code, const char *fmt, const char *arg)
{
	no->status = status;
	no->code = code;
	snprintf(no->message, sizeof(no->message), fmt, arg ? arg : "");
	return -1;
}

/* Appends the comma list v to b's open array as strings; 0, or -1 when
 * an item is empty. */
static int put_list(struct jbuf *b, char *v)
{
	char *save = NULL;
	size_t n = strlen(v);
	if (!n || v[0] == ',' || v[n - 1] == ',' || strstr(v, ",,")) return -1;
	for (char *s = strtok_r(v, ",", &save); s; s = strtok_r(NULL, ",", &save)) json_cstr(b, s);
	return 0;
}

/* The positions to resume from, into b as "resume":{"topic:partition":last}:
 * an SSE token, or resume='s WebSocket form TOPIC:PARTITION:OFFSET,...
 * Every topic must feed one of the channels asked for. */
static int put_positions(struct jbuf *b, char *pos, size_t len, const char *channels, struct sse_refusal *no)
{
	static struct sse_token tok;
	const char *why;
	tok.n = 0;
	if (memchr(pos, ':', len)) {
		char *save = NULL;
		size_t used = 0;
		for (char *item = strtok_r(pos, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
			struct sse_pos *p = &tok.pos[tok.n];
			if (tok.n == SSE_POS_MAX ||
			    tp_position_parse(item, tok.names + used, sizeof(tok.names) - used, &p->partition, &p->last) < 0)
				goto bad_list;
			p->topic = tok.names + used;
			used += strlen(p->topic) + 1;
			tok.n++;
		}
	} else if (sse_token_decode(pos, len, &tok, &why) < 0) {
		return refuse(no, 400, "BAD_REQUEST", "%s (Last-Event-ID or resume=)", why);
	}
	json_key(b, "resume");
	json_obj_begin(b);
	for (size_t i = 0; i < tok.n; i++) {
		const struct sse_pos *p = &tok.pos[i];
		const struct channel *ch = hub_topic_channel(p->topic);
		char list[sizeof(((struct sse_req *)0)->channels)], *save = NULL;
		int covered = 0;
		snprintf(list, sizeof(list), "%s", channels);
		for (char *s = strtok_r(list, ",", &save); ch && s && !covered; s = strtok_r(NULL, ",", &save))
			covered = hub_channel(s, strlen(s)) == ch;
		char tp[TP_KEY_MAX + 32];
		snprintf(tp, sizeof(tp), "%s:%d", p->topic, (int)p->partition);
		if (!covered) {
			no->status = 400;
			no->code = "BAD_REQUEST";
			snprintf(no->message, sizeof(no->message), "the position names %.200s, which none of the channels asked for reads", tp);
			return -1;
		}
		json_key(b, tp);
		json_int(b, p->last);
	}
	json_obj_end(b);
	return 0;
bad_list:
	return refuse(no, 400, "BAD_REQUEST", "resume must be a position token or TOPIC:PARTITION:OFFSET,...", NULL);
}

int proto_sse_parse(const char *q, size_t qlen, const char *last_id, size_t last_len, struct sse_req *r,
		    struct sse_refusal *no)
{
	static char name[256], val[HTTP_MAX_HEADER_BYTES], pos[HTTP_MAX_HEADER_BYTES];
	struct jbuf keys, filt;
	int snapshot = 0, rc;
	size_t at = 0, used = 0, pos_len = 0;
	memset(r, 0, sizeof(*r));
	json_init(&r->sub);
	json_init(&keys);
	json_init(&filt);
	json_arr_begin(&keys);
	json_obj_begin(&filt);
	while ((rc = http_query_next(q, qlen, &at, name, sizeof(name), val, sizeof(val))) == 1) {
		size_t vl = strlen(val);
		if (!strcmp(name, "channel") || !strcmp(name, "channels")) {
			if (!vl || used + vl + 2 > sizeof(r->channels)) goto bad_channels;
			if (used) r->channels[used++] = ',';
			memcpy(r->channels + used, val, vl + 1);
			used += vl;
		} else if (!strcmp(name, "key") || !strcmp(name, "keys")) {
			if (put_list(&keys, val) < 0) goto bad_keys;
		} else if (!strncmp(name, "filter.", 7)) {
			if (!name[7]) { refuse(no, 400, "BAD_REQUEST", "filter.FIELD=VALUE needs a field name", NULL); goto fail; }
			json_key(&filt, name + 7);
			/* VALUE as JSON when it parses (5 is a number, "5" a string), else a string. */
			if (vl && json_validate(val, vl)) json_raw(&filt, val, vl);
			else json_cstr(&filt, val);
		} else if (!strcmp(name, "snapshot")) {
			if (!strcmp(val, "1") || !strcmp(val, "true")) snapshot = 1;
			else if (!strcmp(val, "0") || !strcmp(val, "false")) snapshot = 0;
			else { refuse(no, 400, "BAD_REQUEST", "snapshot must be 1 or 0", NULL); goto fail; }
		} else if (!strcmp(name, "interval")) {
			char *end;
			long ms = strtol(val, &end, 10);
			if (!vl || *end || ms < 0 || ms > 3600000) {
				refuse(no, 400, "BAD_REQUEST", "interval must be milliseconds 0-3600000", NULL);
				goto fail;
			}
			r->interval_ms = (int)ms;
		} else if (!strcmp(name, "resume")) {
			memcpy(pos, val, vl + 1);
			pos_len = vl;
		} else if (!strcmp(name, "format") && strcmp(val, "json") != 0) {
			refuse(no, 400, "BAD_REQUEST", "an SSE stream is JSON text: format=msgpack is for WebSocket connections", NULL);
			goto fail;
		} else if (!strcmp(name, "type")) {
			refuse(no, 400, "BAD_REQUEST", "type=tui|web (the state dialect) is for WebSocket connections", NULL);
			goto fail;
		}
	}
	if (rc < 0) { refuse(no, 400, "BAD_REQUEST", "the query is badly encoded or a parameter is too long", NULL); goto fail; }
	if (!used) { refuse(no, 400, "BAD_REQUEST", "name the channels to stream: channel= or channels=", NULL); goto fail; }
	json_arr_end(&keys);
	json_obj_end(&filt);

	struct jbuf *b = &r->sub;
	json_obj_begin(b);
	json_key(b, "type");
	json_cstr(b, "subscribe");
	json_key(b, "channels");
	json_arr_begin(b);
	char list[sizeof(r->channels)];
	memcpy(list, r->channels, sizeof(list));
	if (put_list(b, list) < 0) goto bad_channels;
	json_arr_end(b);
	/* Every channel is checked here: 404 before anything else. */
	memcpy(list, r->channels, sizeof(list));
	char *save = NULL;
	for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
		if (!hub_channel(s, strlen(s))) {
			refuse(no, 404, "UNKNOWN_CHANNEL", "no route produces channel \"%.200s\"", s);
			goto fail;
		}
	if (keys.len > 2) { json_key(b, "keys"); json_raw(b, keys.buf, keys.len); }
	if (filt.len > 2) { json_key(b, "filter"); json_raw(b, filt.buf, filt.len); }
	/* Last-Event-ID (the browser's reconnect) wins over the URL's resume=. */
	if (last_id && last_len) {
		if (last_len >= sizeof(pos)) { refuse(no, 400, "BAD_REQUEST", "Last-Event-ID is too long", NULL); goto fail; }
		memcpy(pos, last_id, last_len);
		pos[last_len] = '\0';
		pos_len = last_len;
	}
	if (pos_len && put_positions(b, pos, pos_len, r->channels, no) < 0) goto fail;
	/* A resumed stream gets what it missed, not a snapshot. */
	json_key(b, "snapshot");
	json_bool(b, snapshot && !pos_len);
	json_obj_end(b);
	json_free(&keys);
	json_free(&filt);
	if (b->failed) return refuse(no, 400, "BAD_REQUEST", "out of memory", NULL);
	return 0;
bad_channels:
	refuse(no, 400, "BAD_REQUEST", "channel= and channels= take channel names separated by commas", NULL);
	goto fail;
bad_keys:
	refuse(no, 400, "BAD_REQUEST", "key= and keys= take keys separated by commas", NULL);
fail:
	json_free(&keys);
	json_free(&filt);
	return -1;
}

int proto_sse_open(struct client *c, const struct sse_req *r, struct sse_refusal *no)
{
	struct json_tok *tok;
	int n = json_parse_alloc(r->sub.buf, r->sub.len, 8, &tok);
	if (n < 0) return refuse(no, 400, "BAD_REQUEST", "the query is not UTF-8 text, or out of memory", NULL);
	c->interval_ms = (uint32_t)r->interval_ms;
	struct client_capture cap = { .c = c };
	struct msg_ctx m = { .c = c, .src = r->sub.buf, .tok = tok, .ntok = n };
	client_capture(&cap);
	proto_handle(&m);
	client_capture(NULL);
	free(tok);
	if (!cap.got) return 0;
	if (c->nsubs) {
		/* Subscribed, but the resume could not start (Kafka replays are
		 * busy, or failed): end the stream after saying so, and the
		 * reader reconnects from the same position in a second. An HTTP
		 * error would make an EventSource give up for good. */
		client_send(c, client_message(c, cap.json, cap.len, FRAME_REPLY));
		client_ws_close(c, 0, "resume not started", 0);
		return 0;
	}
	/* The error the subscription got becomes the answer. */
	struct json_tok et[32];
	int en = json_parse(cap.json, cap.len, et, 32, 4);
	int ct = en > 0 ? json_obj_get(cap.json, et, 0, "code") : -1;
	int mt = en > 0 ? json_obj_get(cap.json, et, 0, "message") : -1;
	char code[32] = "BAD_REQUEST";
	ssize_t cl = ct >= 0 ? json_str_decode(cap.json, et, ct, code, sizeof(code) - 1) : -1;
	if (cl >= 0) code[cl] = '\0';
	ssize_t ml = mt >= 0 ? json_str_decode(cap.json, et, mt, no->message, sizeof(no->message) - 1) : -1;
	no->message[ml > 0 ? ml : 0] = '\0';
	no->status = 400;
	no->code = "BAD_REQUEST";
	if (!strcmp(code, "UNKNOWN_CHANNEL")) no->status = 404, no->code = "UNKNOWN_CHANNEL";
	else if (!strcmp(code, "UNAUTHORIZED")) no->status = c->au ? 403 : 401, no->code = "UNAUTHORIZED";
	else if (!strcmp(code, "TOO_MANY_SUBSCRIPTIONS")) no->code = "TOO_MANY_SUBSCRIPTIONS";
	if (no->status == 401)
		snprintf(no->message, sizeof(no->message), "a channel asked for is not public: bring a token "
			 "(access_token= or Authorization: Bearer)");
	if (!no->message[0]) snprintf(no->message, sizeof(no->message), "the stream could not be subscribed");
	hub_client_gone(c);
	conflate_client_gone(c);
	replay_owner_gone(c);
	return -1;
}

void proto_sse_free(struct sse_req *r)
{
	json_free(&r->sub);
}

void proto_sse_heartbeat(struct client *c)
{
	hub_sse_position(c, 1);
	c->sse_moved = 0;
}

void proto_sse_tick(struct client *c)
{
	if (c->sse_moved) {
		hub_sse_position(c, 0);
		c->sse_moved = 0;
	}
}
