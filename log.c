/* log.c - structured, line-at-a-time logging to stderr in text or JSON.
 * One write(2) per line so lines from librdkafka's threads (routed through the
 * main loop anyway) and ours never interleave. Not a per-message logger: the
 * hot path never logs. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

static enum log_level log_min = LOG_INFO;
static int log_json;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level min, int json)
{
	log_min = min;
	log_json = json;
}

int log_enabled(enum log_level level)
{
	return level >= log_min;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0) return i;
	if (strcmp(s, "warning") == 0) return LOG_WARN;
	return -1;
}

const char *log_num(int64_t v)
{
	static char bufs[8][24];
	static unsigned next;
	char *b = bufs[next++ & 7];
	snprintf(b, sizeof(bufs[0]), "%lld", (long long)v);
	return b;
}

const char *log_str(const char *s, size_t n)
{
	static char bufs[4][128];
	static unsigned next;
	char *b = bufs[next++ & 3];
	snprintf(b, sizeof(bufs[0]), "%.*s", (int)(n < 127 ? n : 127), s);
	return b;
}

/* A text value needs quotes when it is empty or holds spaces, quotes,
 * '=' or control bytes (which the quoting escapes: a value from a peer,
 * a token's sub, cannot forge a line or move the terminal's cursor). */
static int plain(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || *v == '"' || *v == '=' || *v == 0x7f) return 0;
	return 1;
}

static void text_value(struct jbuf *b, const char *v)
{
	if (*v && plain(v)) {
		json_append(b, v, strlen(v));
		return;
	}
	json_str(b, v, strlen(v));
}

/* One field: " k=v" in text, "k":"v" in JSON. */
static void field(struct jbuf *b, const char *k, const char *v)
{
	if (log_json) {
		json_key(b, k);
		json_cstr(b, v);
		return;
	}
	json_append(b, " ", 1);
	json_append(b, k, strlen(k));
	json_append(b, "=", 1);
	text_value(b, v);
}

static const char *tag_key, *tag_val;

void log_tag(const char *key, const char *value)
{
	tag_key = key;
	tag_val = value;
}

void log_msg(enum log_level level, const char *msg, ...)
{
	if (level < log_min) return;
	struct timespec ts;
	struct tm tm;
	char when[40];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	struct jbuf b;
	json_init(&b);
	va_list ap;
	va_start(ap, msg);
	if (log_json) {
		json_obj_begin(&b);
		json_key(&b, "ts");    json_cstr(&b, when);
		json_key(&b, "level"); json_cstr(&b, level_names[level]);
		json_key(&b, "msg");   json_cstr(&b, msg);
	} else {
		json_append(&b, when, strlen(when));
		json_append(&b, " ", 1);
		json_append(&b, level_names[level], strlen(level_names[level]));
		json_append(&b, " ", 1);
		json_append(&b, msg, strlen(msg));
	}
	for (const char *k; (k = va_arg(ap, const char *));) {
		const char *v = va_arg(ap, const char *);
		if (v) field(&b, k, v);        /* a NULL value leaves the field out */
	}
	if (tag_key) field(&b, tag_key, tag_val);
	if (log_json) json_obj_end(&b);
	va_end(ap);
	json_append(&b, "\n", 1);
	if (!b.failed) {
		ssize_t w = write(STDERR_FILENO, b.buf, b.len);
		(void)w;   /* nowhere to report a failing stderr */
	}
	json_free(&b);
}
