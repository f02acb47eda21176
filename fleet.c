/* fleet.c - the shared table of --workers (fleet.h). One mapping: a header,
 * one entry per worker, then the metrics slots (one per worker and one for
 * the master). Gauges are single atomics. The tables (channels, lag, the
 * client list) sit under a sequence lock per entry: the one writer makes
 * the count odd while it writes, readers copy and retry when it moved.
 * Readers merge what they copied: subscriptions and clients add up, a
 * channel's seq is the smallest (what every worker routed), a partition's
 * lag the largest. */
#include "fleet.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "clock.h"
#include "map.h"
#include "metrics.h"
#include "tls.h"

#define MAGIC 0x6b62666c65657431ull   /* "kbfleet1" */
#define NAME 256                      /* channel names, "topic:partition" */
#define CHANNELS 1024                 /* per worker; more are left out of the totals */
#define LAGS 2048
#define PEER 64
#define IDENTITY 128

struct entry {
	_Atomic int32_t pid;              /* 0: not running */
	_Atomic uint32_t restarts;
	_Atomic uint32_t ready, up, connected;   /* connected: WebSocket clients */
	_Atomic uint32_t deflated;               /* of them, with permessage-deflate */
	_Atomic uint32_t sse;                    /* of them, SSE streams */
	_Atomic uint32_t st_clients, st_groups;
	_Atomic uint64_t st_updates;
	_Atomic uint64_t st_updates_before;   /* the master's: what ended processes of the slot sent */
	_Atomic int64_t turned;           /* the end of the worker's last turn, monotonic ms; 0: none yet */
	_Atomic uint32_t seq;             /* odd while the tables change */
	uint32_t nchannels, nlags, nclients;
	struct { char name[NAME]; uint32_t subs; uint64_t seq; } channels[CHANNELS];
	struct { char tp[NAME]; int64_t lag; } lags[LAGS];
	struct {
		uint32_t id, subs, queued_messages;
		uint64_t queued_bytes;
		char peer[PEER], identity[IDENTITY];
		uint8_t has_identity, deflate, sse;
	} clients[ENDPOINTS_CLIENTS_MAX];
};

struct table {
	uint64_t magic;
	unsigned char ticket_keys[TLS_TICKET_KEYS_LEN];   /* the master's random bytes */
	int64_t started_ms;               /* the master's start, monotonic ms: uptime */
	uint32_t n;                       /* workers */
	uint32_t entry_size, slot_size;   /* what the creator compiled: a worker checks */
	struct entry e[];                 /* then n + 1 metrics slots */
};

static struct {
	struct table *t;
	size_t size;
	int self;                         /* the worker's entry; -1: the master */
	int64_t due;                      /* the next table publish */
	int owed;                         /* a turn ran since the last one */
	int64_t refreshed;                /* the turn of the last refresh() */
	const struct endpoints_sources *own;
	/* merged tables of the current iteration */
	struct map names;
	struct merged { const char *name; uint64_t a; int64_t b; } *m;
	size_t nm, cap;
	char *names_buf;                  /* the copied names the merged ones point into */
	size_t names_len, names_cap;
	struct endpoints_client *cl;
	char (*cl_peer)[PEER], (*cl_identity)[IDENTITY];
	size_t ncl;
} F = { .self = -1 };

/* One entry's tables, read consistently (zeroed, so not in the binary). */
static struct entry copy;

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

static size_t table_size(unsigned n)
{
	size_t head = sizeof(struct table) + n * sizeof(struct entry);
	head = (head + 63) & ~(size_t)63;
	return head + (n + 1) * metrics_slot_size();
}

static void *slots_of(struct table *t)
{
	size_t head = sizeof(struct table) + t->n * sizeof(struct entry);
	return (char *)t + ((head + 63) & ~(size_t)63);
}

static int map_table(int fd, size_t size, char *err, size_t errlen)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "workers: cannot map the shared table: %s", strerror(errno));
		return -1;
	}
	F.t = p;
	F.size = size;
	return 0;
}

int fleet_create(unsigned n, char *err, size_t errlen)
{
	int fd = memfd_create("kbridge-workers", MFD_CLOEXEC);
	size_t size = table_size(n);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		snprintf(err, errlen, "workers: cannot create the shared table: %s", strerror(errno));
		if (fd >= 0) close(fd);
		return -1;
	}
	if (map_table(fd, size, err, errlen) < 0) { close(fd); return -1; }
	F.t->magic = MAGIC;
	F.t->n = n;
	F.t->entry_size = sizeof(struct entry);
	F.t->slot_size = (uint32_t)metrics_slot_size();
	F.t->started_ms = mono_ms();
	if (RAND_bytes(F.t->ticket_keys, sizeof(F.t->ticket_keys)) != 1) {
		snprintf(err, errlen, "workers: no random bytes for the session ticket keys");
		return -1;
	}
	metrics_share(slots_of(F.t), n + 1, n);
	return fd;
}

int fleet_attach(int fd, unsigned self, char *err, size_t errlen)
{
	struct table head;
	if (pread(fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head) || head.magic != MAGIC ||
	    head.entry_size != sizeof(struct entry) || head.slot_size != metrics_slot_size() || self >= head.n) {
		snprintf(err, errlen, "workers: fd %d is not this build's shared table (a worker runs the master's binary)", fd);
		return -1;
	}
	if (map_table(fd, table_size(head.n), err, errlen) < 0) return -1;
	close(fd);
	F.self = (int)self;
	metrics_share(slots_of(F.t), head.n + 1, self);
	metrics_start_at(F.t->started_ms);   /* uptime is the master's */
	return 0;
}

void fleet_started(unsigned self, pid_t pid, int restart)
{
	STORE(F.t->e[self].pid, (int32_t)pid);
	STORE(F.t->e[self].turned, 0);
	if (restart) STORE(F.t->e[self].restarts, LOAD(F.t->e[self].restarts) + 1);
}

/* The master clears the entry of a worker that ended, maybe in the middle
 * of a publish: the sequence is made even again. */
void fleet_gone(unsigned self)
{
	struct entry *e = &F.t->e[self];
	uint32_t s = LOAD(e->seq);
	s += (s & 1) + 1;
	atomic_store_explicit(&e->seq, s, memory_order_release);
	e->nchannels = e->nlags = e->nclients = 0;
	atomic_store_explicit(&e->seq, s + 1, memory_order_release);
	STORE(e->pid, 0);
	STORE(e->st_updates_before, LOAD(e->st_updates_before) + LOAD(e->st_updates));
	STORE(e->st_updates, 0);
	STORE(e->ready, 0);
	STORE(e->up, 0);
	STORE(e->connected, 0);
	STORE(e->deflated, 0);
	STORE(e->sse, 0);
	STORE(e->st_clients, 0);
	STORE(e->st_groups, 0);
}

/* ---- a worker publishes --------------------------------------------------------- */

/* Copies s into a fixed field, cut at a UTF-8 character boundary. */
static void put_str(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n >= cap) {
		n = cap - 1;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void publish_tables(struct entry *e, const struct endpoints_sources *live)
{
	const char *name;
	uint32_t subs;
	uint64_t seq;
	int64_t lag;
	struct endpoints_client c;
	size_t i;
	atomic_fetch_add_explicit(&e->seq, 1, memory_order_acq_rel);
	atomic_thread_fence(memory_order_release);
	uint32_t n = 0;
	for (i = 0; n < CHANNELS && live->channel_next(&i, &name, &subs, &seq); n++) {
		put_str(e->channels[n].name, NAME, name);
		e->channels[n].subs = subs;
		e->channels[n].seq = seq;
	}
	e->nchannels = n;
	for (i = 0, n = 0; n < LAGS && live->lag_next(&i, &name, &lag); n++) {
		put_str(e->lags[n].tp, NAME, name);
		e->lags[n].lag = lag;
	}
	e->nlags = n;
	for (i = 0, n = 0; n < ENDPOINTS_CLIENTS_MAX && live->client_next(&i, &c); n++) {
		e->clients[n].id = c.id;
		e->clients[n].subs = c.subscriptions;
		e->clients[n].queued_messages = c.queued_messages;
		e->clients[n].queued_bytes = c.queued_bytes;
		put_str(e->clients[n].peer, PEER, c.peer);
		e->clients[n].has_identity = c.identity != NULL;
		e->clients[n].deflate = (uint8_t)c.deflate;
		e->clients[n].sse = (uint8_t)c.sse;
		put_str(e->clients[n].identity, IDENTITY, c.identity ? c.identity : "");
	}
	e->nclients = n;
	atomic_fetch_add_explicit(&e->seq, 1, memory_order_release);
}

void fleet_publish(const struct endpoints_sources *live, int64_t now, int now_too)
{
	if (F.self < 0) return;
	struct entry *e = &F.t->e[F.self];
	uint32_t sc, sg;
	uint64_t su;
	STORE(e->turned, now);
	live->state_counts(&sc, &sg, &su);
	STORE(e->connected, live->clients());
	STORE(e->deflated, live->deflate_clients());
	STORE(e->sse, live->sse_clients());
	STORE(e->ready, (uint32_t)live->kafka_ready());
	STORE(e->up, (uint32_t)live->kafka_up());
	STORE(e->st_clients, sc);
	STORE(e->st_groups, sg);
	STORE(e->st_updates, su);
	if (now < F.due && !now_too) { F.owed = 1; return; }
	publish_tables(e, live);
	F.owed = 0;
	F.due = now + FLEET_PUBLISH_MS;
}

int64_t fleet_turned(unsigned self)
{
	return LOAD(F.t->e[self].turned);
}

const unsigned char *fleet_ticket_keys(void)
{
	return F.t ? F.t->ticket_keys : NULL;
}

int fleet_timeout_ms(int64_t now)
{
	if (!F.owed) return -1;
	return F.due > now ? (int)(F.due - now) : 0;
}

/* ---- any process reads ------------------------------------------------------------ */

/* A worker's own entry is published again before it is read, so a
 * process never answers with its own state older than this turn. */
static void refresh(void)
{
	int64_t now = clock_now();
	if (F.self < 0 || now == F.refreshed) return;
	F.refreshed = now;
	fleet_publish(F.own, now, 1);
}

/* Copies entry w's tables consistently into `copy`. A writer killed in
 * the middle of a publish leaves the sequence odd until the master
 * reaps it: after SPIN tries the entry reads as empty. */
#define SPIN 20000
static const struct entry *copy_entry(unsigned w)
{
	const struct entry *e = &F.t->e[w];
	for (int tries = 0;; tries++) {
		if (tries == SPIN) {
			copy.nchannels = copy.nlags = copy.nclients = 0;
			return &copy;
		}
		uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1) {
			if (tries % 64 == 63) sched_yield();   /* the writer may be waiting for this core */
			continue;
		}
		uint32_t nc = e->nchannels, nl = e->nlags, nk = e->nclients;
		if (nc > CHANNELS) nc = CHANNELS;
		if (nl > LAGS) nl = LAGS;
		if (nk > ENDPOINTS_CLIENTS_MAX) nk = ENDPOINTS_CLIENTS_MAX;
		memcpy(copy.channels, e->channels, nc * sizeof(e->channels[0]));
		memcpy(copy.lags, e->lags, nl * sizeof(e->lags[0]));
		memcpy(copy.clients, e->clients, nk * sizeof(e->clients[0]));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1) continue;
		copy.nchannels = nc;
		copy.nlags = nl;
		copy.nclients = nk;
		return &copy;
	}
}

/* Merges one table of every worker by name into F.m: channels (a: the
 * subscriptions added up, b: the smallest seq) or lag (b: the largest, -1
 * when no worker knows it). Both describe the slowest worker: a channel
 * has been routed up to seq by every worker that has it. */
enum table_kind { T_CHANNELS, T_LAGS };

static void merge(enum table_kind kind)
{
	F.nm = 0;
	map_free(&F.names);
	for (unsigned w = 0; w < F.t->n; w++) {
		const struct entry *e = copy_entry(w);
		uint32_t n = kind == T_LAGS ? e->nlags : e->nchannels;
		for (uint32_t k = 0; k < n; k++) {
			const char *name = kind == T_LAGS ? e->lags[k].tp : e->channels[k].name;
			uint64_t a = kind == T_LAGS ? 0 : e->channels[k].subs;
			int64_t b = kind == T_LAGS ? e->lags[k].lag : (int64_t)e->channels[k].seq;
			size_t len = strnlen(name, NAME - 1);
			uintptr_t at = (uintptr_t)map_get(&F.names, name, len);
			if (at) {
				F.m[at - 1].a += a;
				if (kind == T_LAGS ? b > F.m[at - 1].b : b < F.m[at - 1].b) F.m[at - 1].b = b;
				continue;
			}
			if (F.nm == F.cap) {
				size_t cap = F.cap ? F.cap * 2 : 64;
				struct merged *m = realloc(F.m, cap * sizeof(*m));
				if (!m) goto out;   /* out of memory: what was merged */
				F.m = m;
				F.cap = cap;
			}
			if (map_put(&F.names, name, len, (void *)(uintptr_t)(F.nm + 1)) < 0) goto out;
			F.m[F.nm++] = (struct merged){ NULL, a, b };
		}
	}
out:;
	/* the names: the map's own copies of the keys */
	struct map_slot *slot;
	for (size_t i = 0; map_next(&F.names, &i, &slot);) F.m[(uintptr_t)slot->val - 1].name = slot->key;
}

static int channel_next(size_t *i, const char **name, uint32_t *subs, uint64_t *seq)
{
	if (*i == 0) { refresh(); merge(T_CHANNELS); }
	if (*i >= F.nm) return 0;
	*name = F.m[*i].name;
	*subs = (uint32_t)F.m[*i].a;
	*seq = (uint64_t)F.m[*i].b;
	(*i)++;
	return 1;
}

static int lag_next(size_t *i, const char **tp, int64_t *lag)
{
	if (*i == 0) { refresh(); merge(T_LAGS); }
	if (*i >= F.nm) return 0;
	*tp = F.m[*i].name;
	*lag = F.m[*i].b;
	(*i)++;
	return 1;
}

/* Every worker's client list, each entry naming its worker. */
static void merge_clients(void)
{
	F.ncl = 0;
	size_t cap = (size_t)F.t->n * ENDPOINTS_CLIENTS_MAX;
	if (!F.cl) {
		F.cl = calloc(cap, sizeof(*F.cl));
		F.cl_peer = calloc(cap, sizeof(*F.cl_peer));
		F.cl_identity = calloc(cap, sizeof(*F.cl_identity));
		if (!F.cl || !F.cl_peer || !F.cl_identity) {
			free(F.cl); free(F.cl_peer); free(F.cl_identity);
			F.cl = NULL;
			return;
		}
	}
	for (unsigned w = 0; w < F.t->n; w++) {
		const struct entry *e = copy_entry(w);
		for (uint32_t k = 0; k < e->nclients && F.ncl < cap; k++, F.ncl++) {
			memcpy(F.cl_peer[F.ncl], e->clients[k].peer, PEER);
			memcpy(F.cl_identity[F.ncl], e->clients[k].identity, IDENTITY);
			F.cl_peer[F.ncl][PEER - 1] = F.cl_identity[F.ncl][IDENTITY - 1] = '\0';
			F.cl[F.ncl] = (struct endpoints_client){
				e->clients[k].id, F.cl_peer[F.ncl], e->clients[k].has_identity ? F.cl_identity[F.ncl] : NULL,
				e->clients[k].subs, e->clients[k].queued_messages, e->clients[k].queued_bytes, (int)w,
				e->clients[k].deflate, e->clients[k].sse };
		}
	}
}

static int client_next(size_t *i, struct endpoints_client *out)
{
	if (*i == 0) { refresh(); merge_clients(); }
	if (*i >= F.ncl) return 0;
	*out = F.cl[(*i)++];
	return 1;
}

static uint32_t clients(void)
{
	refresh();
	uint32_t sum = 0;
	for (unsigned w = 0; w < F.t->n; w++) sum += LOAD(F.t->e[w].connected);
	return sum;
}

static uint32_t deflate_clients(void)
{
	refresh();
	uint32_t sum = 0;
	for (unsigned w = 0; w < F.t->n; w++) sum += LOAD(F.t->e[w].deflated);
	return sum;
}

static uint32_t sse_clients(void)
{
	refresh();
	uint32_t sum = 0;
	for (unsigned w = 0; w < F.t->n; w++) sum += LOAD(F.t->e[w].sse);
	return sum;
}

/* Kafka is up when any worker reaches a broker; kbridge is ready when
 * every worker is. */
static int kafka_up(void)
{
	refresh();
	for (unsigned w = 0; w < F.t->n; w++)
		if (LOAD(F.t->e[w].up)) return 1;
	return 0;
}

static int kafka_ready(void)
{
	refresh();
	for (unsigned w = 0; w < F.t->n; w++)
		if (!LOAD(F.t->e[w].pid) || !LOAD(F.t->e[w].ready)) return 0;
	return 1;
}

static void state_counts(uint32_t *sc, uint32_t *sg, uint64_t *su)
{
	refresh();
	*sc = *sg = 0;
	*su = 0;
	for (unsigned w = 0; w < F.t->n; w++) {
		*sc += LOAD(F.t->e[w].st_clients);
		*sg += LOAD(F.t->e[w].st_groups);
		*su += LOAD(F.t->e[w].st_updates_before) + LOAD(F.t->e[w].st_updates);
	}
}

static int worker_next(size_t *i, struct endpoints_worker *out)
{
	if (*i >= F.t->n) return 0;
	if (*i == 0) refresh();
	const struct entry *e = &F.t->e[*i];
	*out = (struct endpoints_worker){ (unsigned)*i, LOAD(e->pid), (int)LOAD(e->ready), (int)LOAD(e->up),
					  LOAD(e->connected), LOAD(e->restarts) };
	(*i)++;
	return 1;
}

static const char *kafka_version(void)
{
	return F.own->kafka_version();
}

static size_t routes(const struct route **out)
{
	return F.own->routes(out);
}

const struct endpoints_sources *fleet_sources(const struct endpoints_sources *own)
{
	static const struct endpoints_sources merged = {
		.clients = clients,
		.deflate_clients = deflate_clients,
		.sse_clients = sse_clients,
		.client_next = client_next,
		.kafka_up = kafka_up,
		.kafka_ready = kafka_ready,
		.kafka_version = kafka_version,
		.lag_next = lag_next,
		.channel_next = channel_next,
		.routes = routes,
		.state_counts = state_counts,
		.worker_next = worker_next,
	};
	F.own = own;
	return &merged;
}
