/* proto_query.c - the upgrade request's query parameters (proto_query.h):
 * channel(s)=, format=, type=, interval=, snapshot= and resume=, checked
 * before the 101 so that every mistake is still an HTTP 400 with a reason.
 * Applying them after the 101 is proto.c's. */
#include "proto_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "hub.h"
#include "tp.h"

int proto_upgrade_parse(const char *q, size_t qlen, struct upgrade_opts *o, char *err, size_t errlen)
{
	char v[PROTO_QUERY_MAX];
	ssize_t n;
	memset(o, 0, sizeof(*o));

	/* channel= and channels= both name channels to subscribe to at once. */
	static const char *const chan_params[] = { "channel", "channels" };
	for (int i = 0; i < 2; i++) {
		n = http_query_param(q, qlen, chan_params[i], v, sizeof(v));
		if (n == -2) { snprintf(err, errlen, "query parameter %s is badly encoded or too long", chan_params[i]); return -1; }
		if (n > 0) {
			size_t used = strlen(o->channels);
			if (used + (size_t)n + 2 > sizeof(o->channels)) { snprintf(err, errlen, "too many channels in the query"); return -1; }
			if (used) o->channels[used++] = ',';
			memcpy(o->channels + used, v, (size_t)n + 1);
			/* Every named channel must be one a route can produce. */
			char *save = NULL;
			for (char *name = strtok_r(v, ",", &save); name; name = strtok_r(NULL, ",", &save))
				if (!hub_channel(name, strlen(name))) {
					snprintf(err, errlen, "unknown channel '%.64s': no route produces it", name);
					return -1;
				}
		}
	}
	n = http_query_param(q, qlen, "format", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "json") == 0) o->msgpack = 0;
		else if (strcmp(v, "msgpack") == 0) o->msgpack = 1;
		else { snprintf(err, errlen, "format must be json or msgpack"); return -1; }
	} else if (n == -2) { snprintf(err, errlen, "query parameter format is badly encoded"); return -1; }

	/* type=tui|web: the Dashboard Server's client types speak the state
	 * dialect (state.h), one update per 100 or 250 ms; interval= overrides. */
	n = http_query_param(q, qlen, "type", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "tui") == 0) { o->state = 1; o->interval_ms = 100; }
		else if (strcmp(v, "web") == 0) { o->state = 1; o->interval_ms = 250; }
		else { snprintf(err, errlen, "type must be tui or web"); return -1; }
	}
	n = http_query_param(q, qlen, "interval", v, sizeof(v));
	if (n >= 0) {
		char *end;
		long ms = strtol(v, &end, 10);
		if (!*v || *end || ms < 0 || ms > 3600000) { snprintf(err, errlen, "interval must be milliseconds 0-3600000"); return -1; }
		o->interval_ms = (int)ms;
	}
	n = http_query_param(q, qlen, "snapshot", v, sizeof(v));
	if (n >= 0) {
		if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) o->snapshot = 1;
		else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) o->snapshot = 0;
		else { snprintf(err, errlen, "snapshot must be 1 or 0"); return -1; }
	}
	/* resume=TOPIC:PARTITION:OFFSET,... (docs/protocol.md#resume) */
	n = http_query_param(q, qlen, "resume", v, sizeof(v));
	if (n == -2) { snprintf(err, errlen, "query parameter resume is badly encoded or too long"); return -1; }
	char *save = NULL;
	for (char *item = n > 0 ? strtok_r(v, ",", &save) : NULL; item; item = strtok_r(NULL, ",", &save)) {
		if (o->nresume == PROTO_RESUME_MAX ||
		    tp_position_parse(item, o->rtopics[o->nresume], 256, &o->rparts[o->nresume], &o->rlast[o->nresume]) < 0)
			goto bad_resume;
		o->nresume++;
	}
	if (o->nresume && o->state) {
		snprintf(err, errlen, "resume= does not apply to type=tui|web (a snapshot gives the whole state)");
		return -1;
	}
	if (o->nresume && !o->channels[0]) {
		snprintf(err, errlen, "resume= needs channel= or channels= to say what to resume");
		return -1;
	}
	return 0;
bad_resume:
	snprintf(err, errlen, "resume must be TOPIC:PARTITION:OFFSET,... (at most %d)", PROTO_RESUME_MAX);
	return -1;
}
