/* stateview.h - a period's view of one channel in the state dialect
 * (state.h): what the period's clients were last sent, held as references
 * to the channel's values, and at each tick what changed since. Internal
 * to the state dialect (state.c). */
#ifndef KB_STATEVIEW_H
#define KB_STATEVIEW_H
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "state.h"

struct state_change {
	char *key;
	size_t klen;
	struct lv_value *old, *nw; /* references; NULL: absent */
};

struct state_view {
	struct state_view *next;
	uint32_t ms;
	uint32_t users;            /* groups of that period on the channel */
	uint8_t shape;
	uint64_t ver;
	struct map keys;           /* map, list: key -> struct lv_value * (a reference) */
	struct lv_value *value;    /* value: a reference, NULL for null */
	char *vkey;
	size_t vkey_len;
	/* this tick's comparison with the channel */
	uint64_t tick, applied;
	int shape_changed, value_changed;
	struct state_change *chg;
	uint32_t nchg, cap;
};

/* The view of period ms on s, or NULL. */
struct state_view *view_find(const struct state_chan *s, uint32_t ms);
/* Takes a view of s for one more group of period ms, made as the channel
 * is now when it is the first. NULL when out of memory. */
struct state_view *view_hold(struct state_chan *s, uint32_t ms);
/* A group of period ms no longer views s; the last one frees the view. */
void view_release(struct state_chan *s, uint32_t ms);
/* Fills v's changes: what differs in s since the view's last apply
 * (values compared by reference; once per tick number). */
void view_prepare(struct state_view *v, const struct state_chan *s, uint64_t tick);
/* After the tick's messages: the view holds what its clients now hold. */
void view_apply(struct state_view *v, const struct state_chan *s);
#endif
