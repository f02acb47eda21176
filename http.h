/* http.h - incremental HTTP/1.1 request parsing (RFC 9112) and response
 * writing for kbridge's plain endpoints and the WebSocket upgrade. The parser
 * is pure: bytes in, a request with pointers into those bytes out. It never
 * reads bodies: kbridge serves only GET, HEAD and OPTIONS. */
#ifndef KB_HTTP_H
#define KB_HTTP_H
#include <stddef.h>
#include <sys/types.h>

#define HTTP_MAX_HEADER_BYTES 8192  /* request line + headers (over it: 431, docs/protocol.md#http-errors) */
#define HTTP_MAX_HEADERS      256   /* more header lines than this: 431 */

struct http_header {
	const char *name, *value;   /* value has surrounding whitespace trimmed */
	size_t name_len, value_len;
};

struct http_request {
	const char *method, *path, *query;   /* query: after '?', or NULL */
	size_t method_len, path_len, query_len;
	int minor;                           /* HTTP/1.<minor> */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
};

/* Parses one request head from buf[0..len). Returns the number of bytes the
 * head occupies (> 0) when complete, 0 when more bytes are needed, or a
 * negative HTTP status for the error response: -400 (malformed), -431 (head
 * over HTTP_MAX_HEADER_BYTES or too many headers), -505 (not HTTP/1.x).
 * Empty lines before the request line are skipped (RFC 9112 §2.2); lines may
 * end in CRLF or a bare LF. */
ssize_t http_parse_request(const char *buf, size_t len, struct http_request *req);

/* 1 if the request's path (query excluded) is exactly p. */
int http_path_is(const struct http_request *req, const char *p);

/* Value of the first header named `name` (case-insensitive), or NULL. */
const struct http_header *http_header_get(const struct http_request *req, const char *name);
/* Header lines named `name` (case-insensitive): a field that must not be
 * repeated is refused when this is above 1. */
size_t http_header_count(const struct http_request *req, const char *name);
/* 1 if the comma-separated list value[0..len) holds `token` (case-insensitive),
 * as in "Connection: keep-alive, Upgrade". */
int http_has_token(const char *value, size_t len, const char *token);
/* 1 if any header line named `name` lists token (a field may be repeated,
 * RFC 9110 §5.3). */
int http_header_has_token(const struct http_request *req, const char *name, const char *token);
/* Copies the value of query parameter `name` into out (percent-decoded,
 * NUL-terminated). Returns its length, -1 when absent, -2 when it does not
 * fit in cap or is badly encoded. */
ssize_t http_query_param(const char *query, size_t qlen, const char *name, char *out, size_t cap);
/* Iterates the query's parameters in order from *at (start at 0): the
 * name and value percent-decoded and NUL-terminated. Returns 1, 0 at the
 * end, -2 when one does not fit or is badly encoded. */
int http_query_next(const char *q, size_t qlen, size_t *at, char *name, size_t ncap, char *value, size_t vcap);
/* Copies query q[0..qlen) into out (NUL-terminated, cut to cap - 1 bytes)
 * with the value of every parameter named `name` replaced by "REDACTED"
 * (names compared as written, like http_query_param), so the query can be
 * logged. No byte of a replaced value is ever written, cut or not.
 * Returns the length written. */
size_t http_query_redact(const char *q, size_t qlen, const char *name, char *out, size_t cap);
/* 1 if the client asked for the connection to stay open after this request
 * (HTTP/1.1 default, "Connection: keep-alive" on 1.0, no "close" token). */
int http_keep_alive(const struct http_request *req);

const char *http_reason(int status);


/* Writes a response head (status line, Content-Type, Content-Length,
 * Connection, Cache-Control, then `extra` verbatim: zero or more
 * "Name: value\r\n" lines) into out; a 204 gets no Content-Type and no
 * Content-Length (it has no content). Returns its length, or -1 when cap is too small. */
int http_format_head(char *out, size_t cap, int status, const char *content_type,
		     size_t content_length, int keep_alive, const char *extra);
#endif
