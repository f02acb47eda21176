/* auth.c - who a client is and what it may read (auth.h,
 * docs/security.md). The keys live here and are reloaded on SIGHUP and on
 * file change; a client's token becomes a struct auth_client: its identity,
 * its expiry and its permissions, the last compiled into a struct filter
 * that narrows every subscription it makes, so the fan-out below keeps one
 * shared frame per record and never needs to know about tokens. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "conflate.h"
#include "history.h"
#include "hub.h"
#include "json.h"
#include "json_parse.h"
#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "state.h"
#include "ws.h"

#define KID_RELOAD_MS 10000   /* an unknown kid re-reads the key file at most this often */
#define EXP_MAX 253402300799LL  /* 9999-12-31T23:59:59Z */

/* A token's permissions (docs/security.md#permissions). */
struct perm {
	char **chans;             /* channel globs */
	uint32_t nchans;
	struct filter only;       /* keys (NULL: all) and forced field filters */
	char **publish;           /* channel globs and command types it may publish to */
	uint32_t npublish;
	char *claim;              /* the claim object's text: a refresh with the same is no change */
};

struct auth_client {
	struct perm p;
	int64_t exp_s;            /* the token's exp */
	uint8_t cert;             /* from a client certificate (mTLS): an identity, no permissions */
	char sub[];
};


static struct {
	const struct config *cfg;
	struct jwt_keys *keys;    /* NULL: authentication off */
	struct file_watch files;  /* --jwt-key, --jwt-secret */
	int64_t last_kid_reload;
	struct filter nothing;    /* reads nothing: a key list with no key */
} A;

/* ---- keys ------------------------------------------------------------------- */


/* Loads the files again: the new keys replace the old, or the old stay
 * with one error line. Either way the files' stamps are remembered, so a
 * bad file is reported once, not at every poll. */
static void reload(const char *why)
{
	char err[300];
	file_watch_mark(&A.files, clock_now(), AUTH_POLL_MS);
	struct jwt_keys *k = jwt_keys_load(A.cfg->jwt_key, A.cfg->jwt_secret, err, sizeof(err));
	if (!k) {
		log_msg(LOG_ERROR, "jwt keys not reloaded: the old keys stay", "why", why, "error", err, NULL);
		return;
	}
	jwt_keys_free(A.keys);
	A.keys = k;
	log_msg(LOG_INFO, "jwt keys loaded", "why", why, "keys", log_num((int64_t)jwt_keys_count(k)), NULL);
}

int auth_init(const struct config *cfg, char *err, size_t errlen)
{
	A.cfg = cfg;
	A.nothing.keys = calloc(1, sizeof(char *));
	if (!A.nothing.keys) { snprintf(err, errlen, "out of memory"); return -1; }
	if (!cfg->jwt_key && !cfg->jwt_secret) return 0;
	A.files.path[0] = cfg->jwt_key;
	A.files.path[1] = cfg->jwt_secret;
	file_watch_mark(&A.files, clock_now(), AUTH_POLL_MS);
	A.keys = jwt_keys_load(cfg->jwt_key, cfg->jwt_secret, err, errlen);
	if (!A.keys) return -1;
	log_msg(LOG_INFO, "jwt keys loaded", "why", "start", "keys", log_num((int64_t)jwt_keys_count(A.keys)), NULL);
	return 0;
}

int auth_enabled(void) { return A.keys != NULL; }

void auth_reload(void)
{
	if (A.keys) reload("SIGHUP");
}

void auth_tick(void)
{
	if (A.keys && file_watch_changed(&A.files, clock_now(), AUTH_POLL_MS)) reload("file changed");
}

/* ---- permissions -------------------------------------------------------------- */

/* '*' matches any run of characters, everything else itself. */
static int glob_match(const char *g, const char *s)
{
	const char *star = NULL, *resume = NULL;
	while (*s) {
		if (*g == '*') { star = g++; resume = s; }
		else if (*g == *s) { g++; s++; }
		else if (star) { g = star + 1; s = ++resume; }
		else return 0;
	}
	while (*g == '*') g++;
	return *g == '\0';
}

static int any_glob(char *const *globs, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (glob_match(globs[i], s)) return 1;
	return 0;
}

static int is_public(const char *channel)
{
	return any_glob((char *const *)A.cfg->public_channels, A.cfg->npublic_channels, channel);
}

static void perm_free(struct perm *p)
{
	for (uint32_t i = 0; i < p->nchans; i++) free(p->chans[i]);
	for (uint32_t i = 0; i < p->npublish; i++) free(p->publish[i]);
	free(p->chans);
	free(p->publish);
	filter_free(&p->only);
	free(p->claim);
	memset(p, 0, sizeof(*p));
}

/* An array of strings into a list (NULL entries never). -1: not that. */
static int take_strings(const char *src, const struct json_tok *tok, int t, char ***out, uint32_t *n)
{
	if (tok[t].type != JSON_ARRAY) return -1;
	*out = calloc(tok[t].size + 1, sizeof(char *));
	if (!*out) return -1;
	for (int i = t + 1, k = 0; k < (int)tok[t].size; k++, i = (int)tok[i].next) {
		if (tok[i].type != JSON_STRING) return -1;
		char *v = malloc(tok[i].len + 1);
		ssize_t len = v ? json_str_decode(src, tok, i, v, tok[i].len + 1) : -1;
		if (len < 0 || memchr(v, '\0', (size_t)len)) { free(v); return -1; }
		v[len] = '\0';
		(*out)[(*n)++] = v;
	}
	return 0;
}

/* The permission claim of a verified payload into p. -1: the claim has
 * the wrong shape (the token is then malformed) or no memory. */
static int perm_parse(const char *payload, size_t len, struct perm *p)
{
	struct json_tok *tok = NULL;
	int rc = -1, n = json_parse_alloc(payload, len, 64, &tok);
	memset(p, 0, sizeof(*p));
	if (n < 1 || tok[0].type != JSON_OBJECT) goto out;
	int o = json_obj_get(payload, tok, 0, A.cfg->jwt_claim);
	if (o < 0) { rc = 0; goto out; }           /* no claim: public channels only */
	if (tok[o].type != JSON_OBJECT) goto out;
	p->claim = strndup(payload + tok[o].start, tok[o].len);
	if (!p->claim) goto out;
	int t = json_obj_get(payload, tok, o, "channels");
	if (t >= 0 && take_strings(payload, tok, t, &p->chans, &p->nchans) < 0) goto out;
	if ((t = json_obj_get(payload, tok, o, "publish")) >= 0 &&
	    take_strings(payload, tok, t, &p->publish, &p->npublish) < 0) goto out;
	if ((t = json_obj_get(payload, tok, o, "keys")) >= 0) {
		char **keys = NULL;
		uint32_t nk = 0;
		int bad = take_strings(payload, tok, t, &keys, &nk) < 0;
		int all = 0;
		for (uint32_t i = 0; i < nk; i++) all |= !strcmp(keys[i], "*");
		if (!bad && !all) {
			p->only.keys = calloc(1, sizeof(char *));   /* a list, even an empty one */
			bad = !p->only.keys;
			for (uint32_t i = 0; i < nk && !bad; i++) {
				bad = filter_add_key(&p->only, keys[i]) < 0;
				keys[i] = NULL;
			}
		}
		for (uint32_t i = 0; i < nk; i++) free(keys[i]);
		free(keys);
		if (bad) goto out;
	}
	if ((t = json_obj_get(payload, tok, o, "filter")) >= 0) {
		if (tok[t].type != JSON_OBJECT) goto out;
		p->only.fields = calloc(tok[t].size + 1, sizeof(*p->only.fields));
		if (!p->only.fields) goto out;
		for (int i = t + 1, k = 0; k < (int)tok[t].size; k++, i = (int)tok[i + 1].next) {
			int v = i + 1;
			if (tok[v].type == JSON_ARRAY || tok[v].type == JSON_OBJECT) goto out;
			struct field_filter *ff = &p->only.fields[p->only.nfields++];
			ff->name = malloc(tok[i].len + 1);
			ssize_t nl = ff->name ? json_str_decode(payload, tok, i, ff->name, tok[i].len + 1) : -1;
			if (nl < 0) goto out;
			ff->name[nl] = '\0';
			/* The raw JSON text of the value: a string keeps its quotes. */
			size_t at = tok[v].start - (tok[v].type == JSON_STRING);
			ff->value_len = tok[v].len + 2 * (tok[v].type == JSON_STRING);
			if (!(ff->value = strndup(payload + at, ff->value_len))) goto out;
		}
	}
	rc = 0;
out:
	free(tok);
	if (rc < 0) perm_free(p);
	return rc;
}

/* c's token, NULL when it has none: an identity from a client
 * certificate alone grants nothing while JWT is on. */
static const struct auth_client *token_of(const struct client *c)
{
	return c->au && !c->au->cert ? c->au : NULL;
}

static int allows_all(const struct client *c)
{
	const struct auth_client *t = token_of(c);
	for (uint32_t i = 0; t && i < t->p.nchans; i++)
		if (t->p.chans[i][strspn(t->p.chans[i], "*")] == '\0') return 1;
	return 0;
}

static int chan_readable(const struct client *c, const char *name)
{
	if (!A.keys || is_public(name)) return 1;
	const struct auth_client *t = token_of(c);
	return t && any_glob(t->p.chans, t->p.nchans, name);
}

const struct filter *auth_view(const struct client *c, const struct channel *ch)
{
	if (!A.keys || (ch && is_public(hub_channel_name(ch)))) return NULL;
	if (!token_of(c)) return &A.nothing;
	const struct filter *only = &token_of(c)->p.only;
	return only->keys || only->nfields ? only : NULL;
}

static void unauthorized(struct client *c, const char *id, size_t id_len, const char *channel, const char *msg)
{
	struct jbuf b;
	reply_begin(&b, "error", id, id_len);
	json_key(&b, "code");    json_cstr(&b, "UNAUTHORIZED");
	if (channel) { json_key(&b, "channel"); json_cstr(&b, channel); }
	json_key(&b, "message"); json_cstr(&b, msg);
	reply_send(c, &b);
}

int auth_filter(struct client *c, const struct channel *ch, struct filter *f, const char *id, size_t id_len)
{
	if (!A.keys) return 0;
	const char *name = hub_channel_name(ch);
	/* Every channel at once takes a token that allows every channel. */
	if (ch ? !chan_readable(c, name) : !allows_all(c)) {
		char msg[320];
		snprintf(msg, sizeof(msg), ch ? "your token does not allow channel \"%s\"" :
			 "a subscription to every channel needs a token that allows every channel (\"*\")", name);
		unauthorized(c, id, id_len, ch ? name : NULL, msg);
		return -1;
	}
	const struct filter *only = auth_view(c, ch);
	int rc = only ? filter_restrict(f, only) : 0;
	if (rc == -1) unauthorized(c, id, id_len, name, "your token allows none of the keys asked for");
	if (rc == -2) reply_error(c, id, id_len, "BAD_REQUEST", "out of memory");
	return rc < 0 ? -1 : 0;
}

/* ---- tokens ------------------------------------------------------------------ */

static const char *reason_text(enum jwt_error e)
{
	switch (e) {
	case JWT_MALFORMED:     return "malformed token";
	case JWT_ALGORITHM:     return "algorithm not allowed";
	case JWT_UNKNOWN_KEY:   return "unknown key";
	case JWT_SIGNATURE:     return "bad signature";
	case JWT_EXPIRED:       return "token expired";
	case JWT_NOT_YET_VALID: return "token not yet valid";
	case JWT_MISSING_EXP:   return "token has no exp";
	case JWT_AUDIENCE:      return "wrong audience";
	case JWT_ISSUER:        return "wrong issuer";
	case JWT_NO_MEMORY:     return "out of memory";
	default:                return "valid";
	}
}

const char *auth_reason_text(enum jwt_error e) { return reason_text(e); }

/* Verifies a token and builds its auth_client. An unknown kid re-reads
 * the key file first (a key rotated in at the identity provider), at
 * most once per KID_RELOAD_MS. */
static enum jwt_error verify(const char *tok, size_t len, struct auth_client **out)
{
	struct jwt_check chk = { A.cfg->jwt_audience, A.cfg->jwt_issuer, (int64_t)A.cfg->jwt_leeway,
				 wall_ms() / 1000 };
	struct jwt_claims cl;
	enum jwt_error e = jwt_verify(A.keys, tok, len, &chk, &cl);
	if (e == JWT_UNKNOWN_KEY && A.cfg->jwt_key && clock_now() - A.last_kid_reload >= KID_RELOAD_MS) {
		A.last_kid_reload = clock_now();
		reload("unknown kid");
		e = jwt_verify(A.keys, tok, len, &chk, &cl);
	}
	if (e != JWT_OK) return e;
	size_t sl = strlen(cl.sub);
	struct auth_client *au = calloc(1, sizeof(*au) + sl + 1);
	if (!au) { jwt_claims_free(&cl); return JWT_NO_MEMORY; }
	memcpy(au->sub, cl.sub, sl + 1);
	/* Beyond the year 9999 is forever: kept there, the deadline's
	 * arithmetic in ms cannot overflow and the ack's date prints. */
	au->exp_s = cl.exp < EXP_MAX ? cl.exp : EXP_MAX;
	int bad = perm_parse(cl.payload, cl.payload_len, &au->p);
	jwt_claims_free(&cl);
	if (bad) { free(au); return JWT_MALFORMED; }
	*out = au;
	return JWT_OK;
}

static void au_free(struct auth_client *au)
{
	if (!au) return;
	perm_free(&au->p);
	free(au);
}

static void failed(struct client *c, enum jwt_error e)
{
	metrics_auth_failure(e);
	log_msg(LOG_INFO, "authentication failed", "client", log_num(c->id), "peer", client_peer(c),
		"reason", jwt_error_name(e), NULL);
}

/* The turn-clock ms at which a token of exp (wall-clock seconds) ends. */
static int64_t deadline_of(int64_t exp_s)
{
	return clock_now() + (exp_s + (int64_t)A.cfg->jwt_leeway) * 1000 - wall_ms();
}

/* Installs au as c's token. A refresh that changes the permissions drops
 * or narrows what the new ones do not allow, each dropped channel said
 * with UNAUTHORIZED. */
static void install(struct client *c, struct auth_client *au)
{
	struct auth_client *old = c->au;
	c->au = au;
	c->auth_deadline = deadline_of(au->exp_s);
	if (old && old->cert) {       /* the certificate's identity gives way to the token's */
		au_free(old);
		old = NULL;
	}
	if (!old) return;
	int same = (!old->p.claim && !au->p.claim) ||
		   (old->p.claim && au->p.claim && !strcmp(old->p.claim, au->p.claim));
	au_free(old);
	if (same) return;
	int changed = 0;
	for (;;) {
		/* One channel at a time: each removal changes the list. */
		const struct sub *s;
		for (s = c->subs; s; s = s->cnext)
			if (s->ch ? !chan_readable(c, hub_channel_name(s->ch)) : !allows_all(c)) break;
		if (!s) break;
		struct channel *ch = s->ch;
		char msg[320];
		snprintf(msg, sizeof(msg), "your new token does not allow channel \"%s\": unsubscribed", hub_channel_name(ch));
		hub_unsubscribe(c, ch, 0, NULL, 0);
		unauthorized(c, NULL, 0, hub_channel_name(ch), msg);
		changed = 1;
	}
	/* What stays is narrowed by the new keys and filter, channel by channel. */
	struct channel **chans = c->nsubs ? calloc(c->nsubs, sizeof(*chans)) : NULL;
	uint32_t n = 0;
	for (const struct sub *s = c->subs; s && chans; s = s->cnext) {
		uint32_t k = 0;
		while (k < n && chans[k] != s->ch) k++;
		if (k == n) chans[n++] = s->ch;
	}
	if (c->nsubs && !chans) n = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct filter *only = auth_view(c, chans[i]);
		if (!only) continue;
		int gone = hub_restrict(c, chans[i], only);
		changed = 1;
		if (gone < 0) hub_unsubscribe(c, chans[i], 0, NULL, 0);
		if (gone)
			unauthorized(c, NULL, 0, hub_channel_name(chans[i]), gone < 0 ? "out of memory: unsubscribed" :
				     "your new token allows none of the keys subscribed to: unsubscribed");
	}
	if (c->nsubs && !chans) {
		/* No memory to narrow with: drop rather than over-deliver. */
		hub_unsubscribe(c, NULL, 1, NULL, 0);
		unauthorized(c, NULL, 0, NULL, "out of memory: every subscription removed");
		changed = 1;
	}
	free(chans);
	if (!changed) return;
	/* What was held back under the old token may be what the new one
	 * refuses: conflation's pending records go (newer ones follow), and
	 * a resume still waiting for Kafka ends, said with RESUME_GAP. */
	conflate_drop_channel(c, NULL);
	if (c->rs) {
		replay_owner_gone(c);
		history_gate_free(c);
		reply_error(c, NULL, 0, "RESUME_GAP", "your token changed during a resume: it ended, and what it held "
			    "back was dropped; subscribe with \"resume\" again from the last offsets you have");
	}
	if (c->dialect) state_client_changed(c, NULL, 0);
}

static void ack(struct client *c, const char *id, size_t id_len)
{
	char when[32];
	time_t t = (time_t)c->au->exp_s;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(when, sizeof(when), "9999-12-31T23:59:59Z");
	struct jbuf b;
	reply_begin(&b, "ack", id, id_len);
	json_key(&b, "action");  json_cstr(&b, "auth");
	json_key(&b, "sub");     json_cstr(&b, c->au->sub);
	json_key(&b, "expires"); json_cstr(&b, when);
	reply_send(c, &b);
}

enum jwt_error auth_upgrade(struct client *c, const char *token, size_t len, int per_request)
{
	if (!A.keys) return JWT_OK;
	if (!token) {
		c->auth_deadline = clock_now() + (int64_t)(A.cfg->auth_timeout * 1000);
		return JWT_OK;
	}
	struct auth_client *au = NULL;
	enum jwt_error e = verify(token, len, &au);
	if (e != JWT_OK) { failed(c, e); return e; }
	install(c, au);
	/* A connection's token is worth a line; one per POST would be a line
	 * per publish. */
	log_msg(per_request ? LOG_DEBUG : LOG_INFO, "client authenticated", "client", log_num(c->id), "sub", au->sub,
		"by", per_request ? "request" : "upgrade", NULL);
	return JWT_OK;
}

void auth_message(struct client *c, const char *token, size_t len, const char *id, size_t id_len)
{
	if (!A.keys) {
		reply_error(c, id, id_len, "BAD_REQUEST", "authentication is off on this server: no token is needed");
		return;
	}
	struct auth_client *au = NULL;
	enum jwt_error e = verify(token, len, &au);
	if (e != JWT_OK) {
		failed(c, e);
		char msg[96];
		snprintf(msg, sizeof(msg), "invalid token: %s (%s)", reason_text(e), jwt_error_name(e));
		unauthorized(c, id, id_len, NULL, msg);
		return;
	}
	int refresh = token_of(c) != NULL;
	install(c, au);
	log_msg(refresh ? LOG_DEBUG : LOG_INFO, refresh ? "token refreshed" : "client authenticated",
		"client", log_num(c->id), "sub", au->sub, "by", "message", NULL);
	ack(c, id, id_len);
}

int auth_may_publish(const struct client *c, const char *name)
{
	if (!A.keys) return 1;
	const struct auth_client *t = token_of(c);
	return t && any_glob(t->p.publish, t->p.npublish, name);
}

int auth_may(const struct client *c)
{
	return !A.keys || token_of(c) || A.cfg->npublic_channels;
}

void auth_deadline(struct client *c)
{
	c->auth_deadline = 0;
	if (c->state != CS_WS) return;
	if (token_of(c)) {
		log_msg(LOG_INFO, "token expired", "client", log_num(c->id), "sub", c->au->sub, NULL);
		reply_error(c, NULL, 0, "TOKEN_EXPIRED", "your token expired: send a new one with {\"type\":\"auth\"} before it does");
		client_ws_close(c, WS_CLOSE_POLICY, "token expired", CLIENT_CLOSE_WAIT_MS);
	} else if (!c->nsubs) {
		metrics_add(M_REJECTED_AUTH_TIMEOUT, 1);
		log_msg(LOG_INFO, "client closed: no token in time", "client", log_num(c->id), "peer", client_peer(c), NULL);
		client_ws_close(c, WS_CLOSE_POLICY, "authentication required", CLIENT_CLOSE_WAIT_MS);
	}
	/* else: an anonymous reader of public channels stays */
}

void auth_unsubscribed(struct client *c)
{
	if (A.keys && !token_of(c) && !c->nsubs && !c->auth_deadline)
		c->auth_deadline = clock_now() + (int64_t)(A.cfg->auth_timeout * 1000);
}

void auth_set_certificate(struct client *c, const char *cn)
{
	if (c->au) return;
	size_t n = strlen(cn);
	struct auth_client *au = calloc(1, sizeof(*au) + n + 1);
	if (!au) return;              /* no identity: logs say less, nothing breaks */
	memcpy(au->sub, cn, n + 1);
	/* An identity without permissions: with JWT off every check here
	 * allows all anyway (A.keys stays NULL for the whole run); with JWT on
	 * token_of() ignores it, so the token still decides and replaces it. */
	au->exp_s = EXP_MAX;
	au->cert = 1;
	c->au = au;
}

const char *auth_identity(const struct client *c)
{
	return c->au ? c->au->sub : NULL;
}

void auth_client_gone(struct client *c)
{
	au_free(c->au);
	c->au = NULL;
}
