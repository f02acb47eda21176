/* state.h - the Dashboard Server's state dialect (type=tui|web,
 * docs/protocol.md#state-dialect). A client of this dialect holds a state,
 * {channel: ...}, gets it whole in a snapshot, then once per period only
 * what changed, as flattened paths (statediff.h).
 *
 * Each channel keeps its state beside its last-value cache (struct
 * state_chan, owned by hub.c's channel) in one of three shapes. Clients
 * with the same period, format and subscriptions form a group; per period,
 * each channel has a view: what the group's clients were last sent (value
 * references, no copies). At a period's tick every view compares itself
 * with the channel, each group turns that into one update body (its
 * filters applied) encoded once and shared by reference by its clients;
 * only the small head naming the client's own seq is per client. A client
 * that cannot take an update (its queue is full) gets a fresh snapshot
 * instead when it has caught up.
 *
 * Part of the routing layer: hub.c hands records in and keeps the
 * subscriptions (struct sub with st set); the protocol layer asks for
 * regrouping and snapshots; the loop drives the ticks. */
#ifndef KB_STATE_H
#define KB_STATE_H
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "lvc.h"
#include "record.h"

enum state_shape { SHAPE_NONE, SHAPE_MAP, SHAPE_VALUE, SHAPE_LIST };

struct state_view;

/* The state of one channel. */
struct state_chan {
	const char *name;          /* the channel's name (its owner's memory) */
	struct lvc *lvc;           /* the channel's last-value cache: map and list */
	uint8_t shape;             /* enum state_shape: NONE until set or the first record */
	struct lv_value *value;    /* SHAPE_VALUE: the newest value, NULL for null */
	char *vkey;                /* its record's key (for key filters), NULL: none */
	size_t vkey_len;
	uint64_t ver;              /* records routed here: views compare it first */
	struct state_view *views;  /* one per period with clients on this channel */
};

/* --state-shape CHANNEL=map|value|list: the shape named for a channel,
 * SHAPE_NONE when none. -1 and a reason in err for a bad item. */
int  state_configure(const struct config *cfg, char *err, size_t errlen);
int  state_shape_of(const char *channel);
/* Sets up / frees a channel's state (no client may still view it). */
void state_chan_init(struct state_chan *s, const char *name, struct lvc *lvc);
void state_chan_free(struct state_chan *s);
/* A record routed to the channel, after its last-value cache took it;
 * is_json: its value is valid JSON (needed only while the shape is value
 * or not yet known: state_wants_json). */
void state_record(struct state_chan *s, const struct record *r, int is_json);
int  state_wants_json(const struct state_chan *s);

/* c's subscriptions (c->subs, those with st set) changed, or c is new:
 * it moves to the group of its new set and, when the set changed, gets a
 * snapshot (id: the request's raw id, echoed; may be NULL). */
void state_client_changed(struct client *c, const char *id, size_t id_len);
/* refresh: a snapshot of every subscribed channel. */
void state_client_snapshot(struct client *c, const char *id, size_t id_len);
/* c is going: it leaves its group. */
void state_client_gone(struct client *c);

/* ms until the next period tick, -1 when no client speaks the dialect. */
int  state_timeout_ms(int64_t now);
/* Runs every tick that is due: updates (or snapshots) to their clients. */
void state_service(int64_t now);

/* /stats: clients speaking the dialect, their groups, updates sent. */
void state_counts(uint32_t *clients, uint32_t *groups, uint64_t *updates);
#endif
