/* ssesets.c - the per-record SSE events of channel sets (ssesets.h). A
 * set is compared by its members: a stream with two subscriptions on one
 * channel reads the same set as a stream with one. */
#include "ssesets.h"

#include "hub.h"

static struct {
	int on;                   /* a record is being routed */
	unsigned n;
	struct { const struct client *rep; struct frame *f; } v[SSESETS_MAX];
} S;

static int reads_channel(const struct client *c, const struct channel *ch)
{
	for (const struct sub *s = c->subs; s; s = s->cnext)
		if (s->ch == ch) return 1;
	return 0;
}

/* Whether a and b read the same set of channels. */
static int same_channels(const struct client *a, const struct client *b)
{
	for (const struct sub *s = a->subs; s; s = s->cnext)
		if (!reads_channel(b, s->ch)) return 0;
	for (const struct sub *s = b->subs; s; s = s->cnext)
		if (!reads_channel(a, s->ch)) return 0;
	return 1;
}

void ssesets_begin(void)
{
	S.on = 1;
}

void ssesets_end(void)
{
	for (unsigned k = 0; k < S.n; k++) frame_unref(S.v[k].f);
	S.n = 0;
	S.on = 0;
}

struct frame *ssesets_get(const struct client *c)
{
	for (unsigned k = 0; S.on && k < S.n; k++)
		if (same_channels(c, S.v[k].rep)) return frame_ref(S.v[k].f);
	return NULL;
}

void ssesets_put(const struct client *c, struct frame *f)
{
	if (!S.on || S.n == SSESETS_MAX) return;
	S.v[S.n].rep = c;
	S.v[S.n++].f = frame_ref(f);
}
