/* http.h - incremental HTTP/1.1 request parsing (RFC 9112) and response
 * writing for kbridge's plain endpoints, the WebSocket upgrade and
 * POST /publish. The parser is pure: bytes in, a request with pointers into
 * those bytes out. Bodies are framed by Content-Length only; chunked
 * transfer coding is reported (transfer_encoding), never decoded. */
#ifndef KB_HTTP_H
#define KB_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADER_BYTES 8192  /* request line + headers (over it: 431, docs/protocol.md#http-errors) */
#define HTTP_MAX_HEADERS      256   /* more header lines than this: 431 */
#define HTTP_MAX_CL_DIGITS    15    /* Content-Length digits (< 10^15 bytes); more: 400 */

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
	int64_t content_length;              /* -1: no Content-Length field */
	int transfer_encoding;               /* 1: a Transfer-Encoding field (any value) */
};

/* Parses one request head from buf[0..len). Returns the number of bytes the
 * head occupies (> 0) when complete, 0 when more bytes are needed, or a
 * negative HTTP status for the error response: -400 (malformed), -431 (head
 * over HTTP_MAX_HEADER_BYTES or too many headers), -505 (not HTTP/1.x).
 * Empty lines before the request line are skipped (RFC 9112 §2.2); lines may
 * end in CRLF or a bare LF.
 * Content-Length must be 1*DIGIT (at most HTTP_MAX_CL_DIGITS, leading zeros
 * allowed); a list of one value repeated ("5, 5", or the field twice) is
 * that value (RFC 9110 §8.6); anything else is -400 as soon as its line is
 * in, since a length two parsers could read differently smuggles requests
 * (RFC 9112 §6.3). Both fields may be present: a caller that does not decode
 * chunked refuses transfer_encoding (411) before looking at the length. */
ssize_t http_parse_request(const char *buf, size_t len, struct http_request *req);

/* The body of a request whose head http_parse_request found in
 * buf[0..head_len): returns its length when all content_length bytes are in
 * buf[head_len..len) (*body points at them, in buf); 0 with *body =
 * buf + head_len when none is announced (no Content-Length, or 0); -1 when
 * more bytes are needed. Reads no byte of buf: bytes after head_len +
 * content_length are the next request's (pipelining). A caller with a size
 * limit checks content_length before waiting for the body (413). */
ssize_t http_body(const char *buf, size_t len, size_t head_len, const struct http_request *req,
		  const char **body);

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
