/* position.c - an SSE stream's position as a token (position.h). */
#include "position.h"

#include <string.h>

#include "assign.h"
#include "conflate.h"
#include "history.h"
#include "sse.h"
#include "tp.h"

/* Index of topic:partition in v[0..n), -1 when absent (topics compared
 * by their stable pointer). */
static long pos_find(const struct sse_pos *v, size_t n, const char *topic, int32_t partition)
{
	for (size_t k = 0; k < n; k++)
		if (v[k].topic == topic && v[k].partition == partition) return (long)k;
	return -1;
}

void position_settle(struct client *c, const struct position_reader *rd)
{
	if (!c->rs || history_gate_busy(c)) return;
	size_t i = 0;
	const void *gt;
	const char *name;
	int32_t p;
	int64_t last, at;
	int held;
	while (history_gate_next(c, &i, &gt, &p, &last, &held))
		if ((name = rd->gate_topic(gt, rd->arg)) && (assign_position(name, p, &at) < 0 || at < last)) return;
	history_gate_free(c);
}

ssize_t position_token(const struct client *c, const struct position_reader *rd, const char *topic,
		       int32_t partition, int64_t offset, char *out, size_t cap)
{
	static struct sse_pos v[SSE_POS_MAX];
	static unsigned char held_at[SSE_POS_MAX];
	size_t n = 0, i = 0, ngates;
	const void *gt;
	const char *name;
	int32_t p;
	int64_t last;
	int held;
	while (c && history_gate_next(c, &i, &gt, &p, &last, &held)) {
		if (!(name = rd->gate_topic(gt, rd->arg))) continue;
		if (n == SSE_POS_MAX) return -1;
		held_at[n] = (unsigned char)held;
		v[n++] = (struct sse_pos){ name, p, last };
	}
	ngates = n;
	const char *tp;
	char tn[TP_TOPIC_MAX];
	for (i = 0; assign_position_next(&i, &tp, &last);) {
		if (tp_parse(tp, strlen(tp), tn, sizeof(tn), &p) < 0 || !(name = rd->topic(tn, rd->arg))) continue;
		long k = pos_find(v, ngates, name, p);
		if (k >= 0) {                     /* a gate: its place, or the consumer's past an open one */
			if (!held_at[k] && last > v[k].last) v[k].last = last;
			continue;
		}
		if (n == SSE_POS_MAX) return -1;
		v[n++] = (struct sse_pos){ name, p, last };
	}
	/* Not past a record conflation still holds for the reader. */
	int64_t first;
	for (size_t j = 0; c && j < n; j++)
		if (conflate_first_held(c, v[j].topic, v[j].partition, &first) && first - 1 < v[j].last)
			v[j].last = first - 1;
	long k = topic ? pos_find(v, n, topic, partition) : -1;
	if (k >= 0) v[k].last = offset;
	return sse_token_encode(v, n, out, cap);
}
