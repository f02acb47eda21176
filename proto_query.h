/* proto_query.h - the upgrade request's query parameters, checked before
 * the 101 (proto_query.c) and applied after it (proto.c). */
#ifndef KB_PROTO_QUERY_H
#define KB_PROTO_QUERY_H
#include <stddef.h>
#include <stdint.h>

#define PROTO_QUERY_MAX 2048
#define PROTO_RESUME_MAX 16     /* partitions in resume= on the upgrade */

/* Query parameters of the upgrade request, validated before the 101. */
struct upgrade_opts {
	char channels[PROTO_QUERY_MAX];   /* comma list from channel= / channels= */
	int msgpack;
	int interval_ms;                  /* conflation, 0 = none; the state dialect's period */
	int state;                        /* type=tui|web: the state dialect */
	int snapshot;
	int nresume;                      /* resume=TOPIC:PARTITION:OFFSET,... */
	char rtopics[PROTO_RESUME_MAX][256];
	int32_t rparts[PROTO_RESUME_MAX];
	int64_t rlast[PROTO_RESUME_MAX];
};

/* Validates the upgrade's query: 0, or -1 with a one-line reason in err
 * (answered 400 before the 101). */
int  proto_upgrade_parse(const char *query, size_t qlen, struct upgrade_opts *o, char *err, size_t errlen);
#endif
