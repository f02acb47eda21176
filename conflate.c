/* conflate.c - per-client conflation (conflate.h). Each conflating client
 * has a map from (channel, key) to the time of that key's last delivery and
 * the newest record held back since. Clients holding anything sit on one
 * list that the loop services; a held record goes out when its key's
 * interval is over, through client_send like any other frame. Knows
 * channels only as opaque pointers: routing is the layer above. */
#include "conflate.h"

#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "clock.h"

#define CONF_MAX_KEYS 10000   /* per client; beyond it records pass unconflated */

struct centry {
	int64_t last_sent;        /* ms */
	int64_t due;              /* when pending may go */
	struct frame *pending;    /* newest record held back, or NULL */
	const void *chan;
	struct conflate_at at;    /* pending's place in Kafka */
};

struct conflation {
	struct client *c;
	uint32_t interval_ms;     /* the last interval used: bounds idle entries */
	struct map keys;          /* chan pointer + key bytes -> struct centry * */
	uint32_t npending;
	struct conflation *next;  /* on the waiting list while npending > 0 */
	int listed;
};

static struct conflation *waiting;
static int64_t next_due = INT64_MAX;   /* earliest held record's due time */

/* The map key: the channel pointer, then the whole record key (in buf when
 * it fits, else in a buffer the caller frees: distinct long keys must not
 * share an entry). NULL when out of memory. */
static char *entry_key(char *buf, size_t cap, const void *chan, const void *key, size_t key_len, size_t *len)
{
	*len = sizeof(chan) + key_len;
	char *k = *len <= cap ? buf : malloc(*len);
	if (!k) return NULL;
	memcpy(k, &chan, sizeof(chan));
	if (key_len) memcpy(k + sizeof(chan), key, key_len);
	return k;
}

static void list_add(struct conflation *cf)
{
	if (cf->listed) return;
	cf->listed = 1;
	cf->next = waiting;
	waiting = cf;
}

/* Drops entries with nothing held whose interval is long over. */
static void prune(struct conflation *cf, int64_t now)
{
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&cf->keys, &i, &s)) {
		struct centry *e = s->val;
		if (!e->pending && now - e->last_sent >= (int64_t)cf->interval_ms) {
			map_del(&cf->keys, s->key, s->klen);
			free(e);
		}
	}
}

void conflate_offer(struct client *c, const void *chan, const void *key, size_t key_len,
		    struct frame *f, uint32_t interval_ms, struct conflate_at at)
{
	int64_t now = clock_now();
	struct conflation *cf = c->cf;
	if (!cf) {
		if (!(cf = calloc(1, sizeof(*cf)))) { client_send(c, f); return; }
		cf->c = c;
		c->cf = cf;
	}
	cf->interval_ms = interval_ms;
	char buf[512];
	size_t kl;
	char *kb = entry_key(buf, sizeof(buf), chan, key, key_len, &kl);
	if (!kb) { client_send(c, f); return; }
	struct centry *e = map_get(&cf->keys, kb, kl);
	if (!e) {
		/* A new key starts as if last sent an interval ago: it goes now.
		 * The map is bounded: idle entries go first, and past the bound
		 * records pass unconflated rather than being lost. */
		if (cf->keys.count >= CONF_MAX_KEYS) prune(cf, now);
		if (cf->keys.count < CONF_MAX_KEYS && (e = calloc(1, sizeof(*e)))) {
			e->chan = chan;
			e->last_sent = now - interval_ms;
			if (map_put(&cf->keys, kb, kl, e) < 0) {
				free(e);
				e = NULL;
			}
		}
	}
	if (kb != buf) free(kb);
	if (!e) {                     /* no room: the record passes unconflated */
		client_send(c, f);
		return;
	}
	if (!e->pending && now - e->last_sent >= (int64_t)interval_ms) {
		e->last_sent = now;
		client_send(c, f);
		return;
	}
	/* Within the interval: keep only the newest (asked for: no notice). */
	if (e->pending) frame_unref(e->pending);
	else cf->npending++;
	e->pending = f;
	e->at = at;
	e->due = e->last_sent + interval_ms;
	if (e->due < next_due) next_due = e->due;
	list_add(cf);
}

/* Sends every held record whose key's interval is over and recomputes
 * the earliest due time. Cheap when nothing is due: one comparison. */
void conflate_service(int64_t now)
{
	if (now < next_due) return;
	next_due = INT64_MAX;
	struct conflation **pp = &waiting;
	while (*pp) {
		struct conflation *cf = *pp;
		size_t i = 0;
		struct map_slot *s;
		while (cf->npending && map_next(&cf->keys, &i, &s)) {
			struct centry *e = s->val;
			if (!e->pending) continue;
			if (e->due > now) {
				if (e->due < next_due) next_due = e->due;
				continue;
			}
			struct frame *f = e->pending;
			e->pending = NULL;
			e->last_sent = now;
			cf->npending--;
			client_send(cf->c, f);
		}
		if (cf->npending == 0) {
			cf->listed = 0;
			*pp = cf->next;
		} else {
			pp = &cf->next;
		}
	}
}

int conflate_timeout_ms(int64_t now)
{
	if (!waiting || next_due == INT64_MAX) return -1;
	return next_due <= now ? 0 : next_due - now > 1000 ? 1000 : (int)(next_due - now);
}

void conflate_drop_channel(struct client *c, const void *chan)
{
	struct conflation *cf = c->cf;
	if (!cf) return;
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&cf->keys, &i, &s)) {
		struct centry *e = s->val;
		if ((!chan || e->chan == chan) && e->pending) {
			frame_unref(e->pending);
			e->pending = NULL;
			cf->npending--;
		}
	}
}

int conflate_first_held(const struct client *c, const char *topic, int32_t partition, int64_t *offset)
{
	int found = 0;
	size_t i = 0;
	struct map_slot *s;
	while (c->cf && c->cf->npending && map_next(&c->cf->keys, &i, &s)) {
		const struct centry *e = s->val;
		if (!e->pending || e->at.topic != topic || e->at.partition != partition) continue;
		if (!found || e->at.offset < *offset) *offset = e->at.offset;
		found = 1;
	}
	return found;
}

void conflate_client_gone(struct client *c)
{
	struct conflation *cf = c->cf;
	if (!cf) return;
	for (struct conflation **pp = &waiting; *pp; pp = &(*pp)->next)
		if (*pp == cf) { *pp = cf->next; break; }
	size_t i = 0;
	struct map_slot *s;
	while (map_next(&cf->keys, &i, &s)) {
		struct centry *e = s->val;
		frame_unref(e->pending);
		free(e);
	}
	map_free(&cf->keys);
	free(cf);
	c->cf = NULL;
}
