/* envelope.c - record -> data message (envelope.h). The JSON text is the
 * one encoding; MessagePack is transcoded from it, so both formats carry the
 * same fields. A frame's key_hash identifies its (channel, key) for the
 * conflating slow-client policy. */
#include "envelope.h"

#include <string.h>

#include "clock.h"
#include "map.h"
#include "json_parse.h"
#include "utf8.h"

static int with_headers;

void envelope_configure(int headers)
{
	with_headers = headers;
}

void envelope_init(struct envelope *e, const struct record *r, const char *type, const char *channel, uint64_t seq)
{
	*e = (struct envelope){ .r = r, .type = type, .channel = channel, .seq = seq, .json = -1 };
	json_init(&e->text);
}

int envelope_is_json(struct envelope *e)
{
	if (e->json < 0)
		e->json = e->r->value && json_validate(e->r->value, e->r->value_len);
	return e->json;
}

/* The data message of docs/protocol.md into b. data_json says the value is
 * valid JSON and goes in verbatim. */
static void encode(struct jbuf *b, const struct envelope *e, int data_json)
{
	const struct record *r = e->r;
	char ts[CLOCK_ISO8601_LEN];
	json_obj_begin(b);
	json_key(b, "type");    json_cstr(b, e->type);
	json_key(b, "channel"); json_cstr(b, e->channel);
	if (r->key) {
		json_key(b, "key");
		if (utf8_valid(r->key, r->key_len)) {
			json_str(b, r->key, r->key_len);
		} else {
			json_base64(b, r->key, r->key_len);
			json_key(b, "key_encoding"); json_cstr(b, "base64");
		}
	}
	if (e->seq) { json_key(b, "seq"); json_uint(b, e->seq); }
	json_key(b, "topic");     json_cstr(b, r->topic);
	json_key(b, "partition"); json_int(b, r->partition);
	json_key(b, "offset");    json_int(b, r->offset);
	if (r->timestamp_ms >= 0) {
		clock_iso8601(ts, r->timestamp_ms);
		json_key(b, "timestamp"); json_cstr(b, ts);
	}
	if (with_headers && (r->nheaders || r->headers_truncated)) {
		/* [["name","value"],...]: a value that is not UTF-8 becomes
		 * {"base64":"..."}, a header without value null. Headers past
		 * the bound are counted, never dropped unsaid. */
		json_key(b, "headers");
		json_arr_begin(b);
		for (size_t i = 0; i < r->nheaders; i++) {
			const struct record_header *h = &r->headers[i];
			json_arr_begin(b);
			json_cstr(b, h->name);
			if (!h->value) {
				json_null(b);
			} else if (utf8_valid(h->value, h->value_len)) {
				json_str(b, h->value, h->value_len);
			} else {
				json_obj_begin(b);
				json_key(b, "base64");
				json_base64(b, h->value, h->value_len);
				json_obj_end(b);
			}
			json_arr_end(b);
		}
		json_arr_end(b);
		if (r->headers_truncated) {
			json_key(b, "headers_truncated");
			json_uint(b, r->headers_truncated);
		}
	}
	json_key(b, "data");
	if (!r->value) {
		json_null(b);                          /* tombstone */
	} else if (data_json) {
		json_raw(b, r->value, r->value_len);   /* verbatim */
	} else if (utf8_valid(r->value, r->value_len)) {
		json_str(b, r->value, r->value_len);
	} else {
		json_base64(b, r->value, r->value_len);
		json_key(b, "encoding"); json_cstr(b, "base64");
	}
	json_obj_end(b);
}

/* --slow-client conflate replaces queued records of the same channel and
 * key; records without a key are never conflated (hash 0). */
static void set_key_hash(struct frame *f, const struct envelope *e)
{
	if (!f || !e->r->key) return;
	uint64_t h = map_hash(e->channel, strlen(e->channel)) ^ (map_hash(e->r->key, e->r->key_len) * 31);
	f->key_hash = h ? h : 1;
}

/* The JSON text, encoded on first need; NULL when out of memory. */
static const struct jbuf *text(struct envelope *e)
{
	if (!e->text.len) encode(&e->text, e, envelope_is_json(e));
	return e->text.failed ? NULL : &e->text;
}

struct frame *envelope_frame(struct envelope *e, int msgpack)
{
	int i = msgpack ? 1 : 0;
	if (e->frame[i] || ((e->failed >> i) & 1)) return e->frame[i];
	text(e);
	/* MessagePack is transcoded from the JSON text: the same object at
	 * any depth the JSON carries (docs/protocol.md#messagepack). */
	if (!e->text.failed) e->frame[i] = frame_message(msgpack, e->text.buf, e->text.len, FRAME_DATA);
	if (!e->frame[i]) {
		e->failed |= 1 << i;        /* not tried again for the next client */
		return NULL;
	}
	set_key_hash(e->frame[i], e);
	return e->frame[i];
}

struct frame *envelope_frame_for(struct envelope *e, int msgpack, unsigned zbits)
{
	struct frame *f = envelope_frame(e, msgpack);
	if (!f || !zbits) return f;
	/* Every window the message fits in shares one copy (pmd_window). */
	unsigned w = pmd_window(zbits, f->len);
	struct frame **z = &e->zframe[msgpack ? 1 : 0][w - PMD_MIN_BITS];
	if (!*z) *z = frame_for(frame_ref(f), w);
	return *z;
}

struct frame *envelope_sse(struct envelope *e, const char *id, size_t id_len)
{
	int i = id ? 1 : 0;
	if (e->sse[i] || ((e->failed >> (2 + i)) & 1)) return e->sse[i];
	const struct jbuf *t = text(e);
	if (t) e->sse[i] = frame_sse(id, id_len, t->buf, t->len, FRAME_DATA);
	if (!e->sse[i]) {
		e->failed |= 1u << (2 + i);
		return NULL;
	}
	set_key_hash(e->sse[i], e);
	return e->sse[i];
}

void envelope_done(struct envelope *e)
{
	frame_unref(e->sse[0]);
	frame_unref(e->sse[1]);
	frame_unref(e->frame[0]);
	frame_unref(e->frame[1]);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < PMD_VARIANTS; k++) frame_unref(e->zframe[i][k]);
	json_free(&e->text);
}
