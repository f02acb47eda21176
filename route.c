/* route.c - parsing and matching --topic specs (route.h). Pure apart from
 * allocation: no I/O, nothing global. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int route_topic_valid(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 249) return 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* One spec into r. The spec is copied once and cut in place at '=' and
 * ':', so topic, channel and type all point into that one allocation. */
static int route_parse(const char *spec, struct route *r, char *err, size_t errlen)
{
	char *s = strdup(spec);
	if (!s) { snprintf(err, errlen, "out of memory"); return -1; }
	r->topic = s;
	char *eq = strchr(s, '=');
	if (eq) {
		*eq = '\0';
		char *colon = strchr(eq + 1, ':');
		if (colon) {
			*colon = '\0';
			if (!colon[1]) { snprintf(err, errlen, "--topic %s: empty type after ':'", spec); return -1; }
			r->type = colon + 1;
		}
		if (!eq[1]) { snprintf(err, errlen, "--topic %s: empty channel after '='", spec); return -1; }
		r->channel = eq + 1;
	}
	r->is_regex = s[0] == '^';
	if (r->is_regex) {
		int rc = regcomp(&r->re, s, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char why[128];
			regerror(rc, &r->re, why, sizeof(why));
			r->is_regex = 0;          /* nothing compiled: nothing to free */
			snprintf(err, errlen, "--topic %s: bad regular expression: %s", spec, why);
			return -1;
		}
	} else if (!route_topic_valid(s)) {
		snprintf(err, errlen, "--topic %s: '%s' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
			 spec, s);
		return -1;
	}
	return 0;
}

/* All routes at once, so a duplicate can be named against the one it
 * repeats; one spare zeroed entry ends the array. */
int routes_parse(const char *const *specs, size_t n, struct route **out, char *err, size_t errlen)
{
	struct route *v = calloc(n + 1, sizeof(*v));
	if (!v) { snprintf(err, errlen, "out of memory"); return -1; }
	for (size_t i = 0; i < n; i++) {
		if (route_parse(specs[i], &v[i], err, errlen) < 0) {
			routes_free(v, i + 1);
			return -1;
		}
		/* A literal topic has one route: a second one could never apply. */
		for (size_t k = 0; !v[i].is_regex && k < i; k++)
			if (!v[k].is_regex && strcmp(v[k].topic, v[i].topic) == 0) {
				snprintf(err, errlen, "--topic %s: topic %s is already routed by an earlier --topic",
					 specs[i], v[i].topic);
				routes_free(v, i + 1);
				return -1;
			}
	}
	*out = v;
	return 0;
}

void routes_free(struct route *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		if (v[i].is_regex) regfree(&v[i].re);
		free(v[i].topic);
	}
	free(v);
}

const struct route *route_match(const struct route *v, size_t n, const char *topic)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i].is_regex && strcmp(v[i].topic, topic) == 0) return &v[i];
	for (size_t i = 0; i < n; i++)
		if (v[i].is_regex && regexec(&v[i].re, topic, 0, NULL, 0) == 0) return &v[i];
	return NULL;
}

/* Such a channel is only a name until its topic appears; the name must
 * be a valid topic name itself, since the topic would be named so. */
int route_could_name(const struct route *v, size_t n, const char *name, size_t len)
{
	char buf[256];
	if (len == 0 || len > 249 || memchr(name, '\0', len)) return 0;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (!route_topic_valid(buf)) return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].is_regex && !v[i].channel && regexec(&v[i].re, buf, 0, NULL, 0) == 0) return 1;
	return 0;
}
