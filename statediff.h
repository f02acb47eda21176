/* statediff.h - the changes that turn one JSON value into another, as the
 * state dialect's flattened paths (docs/protocol.md#state-dialect): one
 * "path": value member per leaf that differs, where arrays and scalars are
 * leaves. An object is sent whole at its path where a field disappeared,
 * where one of its names holds a '.', or where the nesting passes
 * STATEDIFF_MAX_DEPTH; a node that turned from object to non-object or back
 * is sent whole. Applying the members in order (split the path on '.',
 * create missing objects, set the leaf) turns the old value into the new
 * one. Knows JSON text only: no clients, channels or records. */
#ifndef KB_STATEDIFF_H
#define KB_STATEDIFF_H
#include <stddef.h>

#include "json.h"

#define STATEDIFF_MAX_DEPTH 32   /* deeper objects are sent whole */

/* Appends to out, an open JSON object, the members that turn old into nw,
 * their paths under path (what path->buf[0..path->len) holds, left as it
 * was on return). Both are valid JSON texts. Returns the members added. */
size_t statediff(struct jbuf *out, struct jbuf *path, const char *old, size_t old_len,
		 const char *nw, size_t new_len);
#endif
