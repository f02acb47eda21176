/* log.h - one line per event on stderr, as text ("TIME LEVEL message k=v")
 * or JSON ({"ts":..,"level":..,"msg":..,"k":"v"}). Fields are key/value string
 * pairs ended by NULL; log_num() formats a number into a short-lived buffer. */
#ifndef KB_LOG_H
#define KB_LOG_H
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_setup(enum log_level min, int json);
int  log_enabled(enum log_level level);
/* log_msg(LOG_INFO, "client connected", "peer", "1.2.3.4:5", "id", log_num(7), NULL) */
void log_msg(enum log_level level, const char *msg, ...);
/* A field every later line carries last (a worker's index); key and
 * value must outlive the process's logging. */
void log_tag(const char *key, const char *value);
/* Formats v into one of a few rotating static buffers: valid until a few
 * more calls; meant for log_msg's arguments only. */
const char *log_num(int64_t v);
/* Copies up to n bytes of s (not NUL-terminated) into a rotating buffer. */
const char *log_str(const char *s, size_t n);
/* Parses "debug|info|warn|error"; -1 if none. */
int log_level_parse(const char *s);
#endif
