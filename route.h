/* route.h - --topic specs ("topic[=channel[:type]]", a leading '^' makes
 * the topic a POSIX extended regex): parsing, validation and matching. The
 * routing layer (hub.c) builds its channels from them, the Kafka layer
 * subscribes to their topics, /docs and /asyncapi.json describe them. */
#ifndef KB_ROUTE_H
#define KB_ROUTE_H
#include <regex.h>
#include <stddef.h>

struct route {
	char *topic;              /* literal topic or regex source */
	char *channel;            /* NULL: the topic's own name */
	char *type;               /* NULL: the topic's own name */
	int is_regex;
	regex_t re;               /* compiled when is_regex */
};

/* Parses every spec into a new array (*out, freed by routes_free). A bad
 * spec, a bad regex, an invalid topic name or a literal topic routed twice
 * is an error: -1 with one line in err naming the spec. */
int  routes_parse(const char *const *specs, size_t n, struct route **out, char *err, size_t errlen);
void routes_free(struct route *v, size_t n);

/* The route a topic's records take: a literal route first, else the first
 * regex that matches; NULL when none consumes the topic. */
const struct route *route_match(const struct route *v, size_t n, const char *topic);

/* 1 if some regex route without "=channel" would name a channel name[0..len)
 * (its matched topics are their own channels), so it may be subscribed to
 * before such a topic exists. */
int  route_could_name(const struct route *v, size_t n, const char *name, size_t len);

/* Kafka's topic name rules: 1-249 of [a-zA-Z0-9._-]. */
int  route_topic_valid(const char *t);
#endif
