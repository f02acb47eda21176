/* http.c - HTTP/1.1 request-head parser and response-head writer.
 * The parser is a pure function over (buf, len): it allocates nothing, keeps
 * no state between calls and points into the caller's buffer, so it can be fed
 * a head whole or byte by byte and fuzzed directly. A body is only located
 * (Content-Length framing), never parsed; chunked coding is not decoded. */
#include "http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9') return 1;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values may hold HTAB, SP, visible ASCII and obs-text (RFC 9110 §5.5). */
static int is_vchar_or_ws(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Finds the end of the line starting at p: returns the index just after its
 * LF and sets *eol to the index of CR or LF ending the content; 0 if no LF. */
static size_t line_end(const char *buf, size_t from, size_t len, size_t *eol)
{
	const char *lf = memchr(buf + from, '\n', len - from);
	if (!lf) return 0;
	size_t e = (size_t)(lf - buf);
	*eol = (e > from && buf[e - 1] == '\r') ? e - 1 : e;
	return e + 1;
}

static int parse_request_line(const char *s, size_t n, struct http_request *req)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)s[i])) i++;
	if (i == 0 || i >= n || s[i] != ' ') return -400;
	req->method = s;
	req->method_len = i++;

	size_t t = i;
	while (i < n && s[i] != ' ') {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f) return -400;
		i++;
	}
	if (i == t || i >= n) return -400;
	/* origin-form only (RFC 9112 §3.2.1); "*" and absolute-form are not ours. */
	if (s[t] != '/') return -400;
	const char *q = memchr(s + t, '?', i - t);
	req->path = s + t;
	req->path_len = q ? (size_t)(q - (s + t)) : i - t;
	req->query = q ? q + 1 : NULL;
	req->query_len = q ? (size_t)(s + i - (q + 1)) : 0;
	i++;

	/* HTTP-version = "HTTP/" DIGIT "." DIGIT, and nothing after it. */
	if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 || s[i + 6] != '.' ||
	    s[i + 5] < '0' || s[i + 5] > '9' || s[i + 7] < '0' || s[i + 7] > '9')
		return -400;
	if (s[i + 5] != '1') return -505;
	req->minor = s[i + 7] - '0';
	return 0;
}

static int parse_header_line(const char *s, size_t n, struct http_header *h)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)s[i])) i++;
	/* No whitespace between name and colon (RFC 9112 §5.1): 400. */
	if (i == 0 || i >= n || s[i] != ':') return -400;
	h->name = s;
	h->name_len = i++;
	while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
	size_t end = n;
	while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
	for (size_t k = i; k < end; k++)
		if (!is_vchar_or_ws((unsigned char)s[k])) return -400;
	h->value = s + i;
	h->value_len = end - i;
	return 0;
}

static int name_is(const struct http_header *h, const char *name, size_t n)
{
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Folds one Content-Length value v[0..n) into *cl (-1 until a first one):
 * a comma list whose elements are all 1*DIGIT and equal to each other and
 * to any earlier field line (RFC 9110 §8.6). An empty element ("", "5,"),
 * a sign, any other byte, or more than HTTP_MAX_CL_DIGITS digits is -400:
 * we answer a length we cannot be sure of rather than guess. */
static int content_length(const char *v, size_t n, int64_t *cl)
{
	size_t i = 0;
	for (;;) {
		int64_t x = 0;
		size_t digits = 0;
		while (i < n && is_ows(v[i])) i++;
		while (i < n && v[i] >= '0' && v[i] <= '9') {
			if (++digits > HTTP_MAX_CL_DIGITS) return -400;
			x = x * 10 + (v[i++] - '0');
		}
		while (i < n && is_ows(v[i])) i++;
		if (digits == 0 || (*cl >= 0 && x != *cl)) return -400;
		*cl = x;
		if (i == n) return 0;
		if (v[i++] != ',') return -400;
	}
}

/* Notes what the field just parsed says about a body. */
static int body_field(const struct http_header *h, struct http_request *req)
{
	if (name_is(h, "Transfer-Encoding", 17)) req->transfer_encoding = 1;
	if (name_is(h, "Content-Length", 14)) return content_length(h->value, h->value_len, &req->content_length);
	return 0;
}

ssize_t http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	size_t pos = 0, eol, next;
	int rc;

	memset(req, 0, sizeof(*req));
	req->content_length = -1;
	/* Skip (a bounded number of) empty lines left over from a previous request. */
	for (;;) {
		if (pos > 64) return -400;   /* a flood of empty lines is not a request */
		if (pos >= len) return 0;
		if (buf[pos] == '\n') { pos++; continue; }
		if (buf[pos] == '\r') {
			if (pos + 1 >= len) return 0;
			if (buf[pos + 1] != '\n') return -400;
			pos += 2;
			continue;
		}
		break;
	}

	next = line_end(buf, pos, len, &eol);
	if (!next) return len >= HTTP_MAX_HEADER_BYTES ? -431 : 0;
	if (next > HTTP_MAX_HEADER_BYTES) return -431;
	if (memchr(buf + pos, '\r', eol - pos)) return -400;   /* stray CR */
	if ((rc = parse_request_line(buf + pos, eol - pos, req)) < 0) return rc;

	for (pos = next;;) {
		next = line_end(buf, pos, len, &eol);
		if (!next) return len >= HTTP_MAX_HEADER_BYTES ? -431 : 0;
		if (next > HTTP_MAX_HEADER_BYTES) return -431;
		if (eol == pos) return (ssize_t)next;           /* empty line: head ends */
		if (memchr(buf + pos, '\r', eol - pos)) return -400;
		/* obs-fold (a line starting with whitespace) is rejected: RFC 9112 §5.2. */
		if (buf[pos] == ' ' || buf[pos] == '\t') return -400;
		if (req->nheaders == HTTP_MAX_HEADERS) return -431;
		if ((rc = parse_header_line(buf + pos, eol - pos, &req->headers[req->nheaders])) < 0 ||
		    (rc = body_field(&req->headers[req->nheaders], req)) < 0)
			return rc;
		req->nheaders++;
		pos = next;
	}
}

ssize_t http_body(const char *buf, size_t len, size_t head_len, const struct http_request *req,
		  const char **body)
{
	/* head_len comes from http_parse_request on this buf, so it is <= len;
	 * anything else has no body in buf to point at. */
	if (head_len > len) {
		*body = NULL;
		return -1;
	}
	*body = buf + head_len;
	if (req->content_length <= 0) return 0;
	/* Compared without adding, so no sum can wrap; a length over SSIZE_MAX
	 * (32-bit builds only) cannot be in memory and stays "need more". */
	if ((uint64_t)req->content_length > len - head_len || (uint64_t)req->content_length > SSIZE_MAX)
		return -1;
	return (ssize_t)req->content_length;
}

int http_path_is(const struct http_request *req, const char *p)
{
	size_t n = strlen(p);
	return req->path_len == n && memcmp(req->path, p, n) == 0;
}

const struct http_header *http_header_get(const struct http_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++)
		if (name_is(&req->headers[i], name, n)) return &req->headers[i];
	return NULL;
}

size_t http_header_count(const struct http_request *req, const char *name)
{
	size_t n = strlen(name), count = 0;
	for (size_t i = 0; i < req->nheaders; i++)
		if (name_is(&req->headers[i], name, n)) count++;
	return count;
}

int http_has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
		size_t s = i;
		while (i < len && v[i] != ',') i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0) return 1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

/* Percent-decodes p[0..n) ('+' is a space) into out, NUL-terminated.
 * Returns the length, or -2 when it does not fit cap or is badly encoded. */
static ssize_t query_decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t k = 0; k < n; k++) {
		char c = p[k];
		if (c == '%') {
			int hi, lo;
			if (k + 2 >= n) return -2;   /* truncated escape */
			if ((hi = hexval(p[k + 1])) < 0 || (lo = hexval(p[k + 2])) < 0)
				return -2;
			c = (char)(hi << 4 | lo);
			if (c == '\0') return -2;   /* would cut the C string short */
			k += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= cap) return -2;
		out[o++] = c;
	}
	if (o >= cap) return -2;
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t http_query_param(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), i = 0;
	while (q && i < qlen) {
		size_t s = i;
		while (i < qlen && q[i] != '&') i++;
		const char *eq = memchr(q + s, '=', i - s);
		size_t klen = eq ? (size_t)(eq - (q + s)) : i - s;
		if (klen == nl && memcmp(q + s, name, nl) == 0)
			return eq ? query_decode(eq + 1, i - s - klen - 1, out, cap) : query_decode("", 0, out, cap);
		i++;
	}
	return -1;
}

int http_query_next(const char *q, size_t qlen, size_t *at, char *name, size_t ncap, char *value, size_t vcap)
{
	while (q && *at < qlen) {
		size_t s = *at, i = s;
		while (i < qlen && q[i] != '&') i++;
		*at = i + 1;
		if (i == s) continue;                      /* "&&" */
		const char *eq = memchr(q + s, '=', i - s);
		size_t klen = eq ? (size_t)(eq - (q + s)) : i - s;
		if (query_decode(q + s, klen, name, ncap) < 0) return -2;
		if (query_decode(eq ? eq + 1 : "", eq ? i - s - klen - 1 : 0, value, vcap) < 0) return -2;
		return 1;
	}
	return 0;
}

/* Appends what fits of p[0..n) to out, leaving room for the NUL. */
static size_t put(char *out, size_t cap, size_t o, const char *p, size_t n)
{
	while (n-- && o + 1 < cap) out[o++] = *p++;
	return o;
}

size_t http_query_redact(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
	static const char mark[] = "REDACTED";
	size_t nl = strlen(name), o = 0, i = 0;
	if (cap == 0) return 0;
	while (q && i < qlen) {
		size_t s = i;
		while (i < qlen && q[i] != '&') i++;
		const char *eq = memchr(q + s, '=', i - s);
		int secret = eq && (size_t)(eq - (q + s)) == nl && memcmp(q + s, name, nl) == 0;
		/* A secret keeps its name and '=', and its value becomes the mark. */
		o = put(out, cap, o, q + s, secret ? nl + 1 : i - s);
		if (secret) o = put(out, cap, o, mark, sizeof(mark) - 1);
		if (i < qlen) o = put(out, cap, o, "&", 1);
		i++;
	}
	out[o] = '\0';
	return o;
}

int http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (name_is(h, name, n) && http_has_token(h->value, h->value_len, token))
			return 1;
	}
	return 0;
}

static int connection_has(const struct http_request *req, const char *token)
{
	return http_header_has_token(req, "Connection", token);
}

int http_keep_alive(const struct http_request *req)
{
	if (connection_has(req, "close")) return 0;
	if (req->minor == 0) return connection_has(req, "keep-alive");
	return 1;
}

const char *http_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";   /* RFC 9110 §15.5.14 (was "Payload Too Large") */
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

int http_format_head(char *out, size_t cap, int status, const char *content_type,
		     size_t content_length, int keep_alive, const char *extra)
{
	const char *conn = keep_alive ? "keep-alive" : "close";
	if (!extra) extra = "";
	/* A 204 has no content: no Content-Type, and no Content-Length
	 * (RFC 9110 §8.6: a server MUST NOT send one in a 204). */
	int n = status == 204
		? snprintf(out, cap,
			   "HTTP/1.1 204 %s\r\n"
			   "Connection: %s\r\n"
			   "Cache-Control: no-store\r\n"
			   "%s\r\n",
			   http_reason(status), conn, extra)
		: snprintf(out, cap,
			   "HTTP/1.1 %d %s\r\n"
			   "Content-Type: %s\r\n"
			   "Content-Length: %zu\r\n"
			   "Connection: %s\r\n"
			   "Cache-Control: no-store\r\n"
			   "%s\r\n",
			   status, http_reason(status), content_type, content_length, conn, extra);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}
