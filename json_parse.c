/* json_parse.c - reading JSON (RFC 8259): a validator for record payloads,
 * a top-level field scanner, value equality for filters and a bounded token
 * parser for client control messages. Nothing here recurses: containers are
 * tracked on explicit, fixed stacks, so hostile nesting costs bounded
 * memory. It does not build DOM trees, convert numbers to doubles for
 * comparison, or accept JSON5-style extras. Writing JSON is json.c. */
#include "json_parse.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/* ---- Byte-level helpers -------------------------------------------------- */

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';  /* RFC 8259 §2 ws */
}

static size_t skip_ws(const unsigned char *p, size_t n, size_t i)
{
	while (i < n && is_ws(p[i]))
		i++;
	return i;
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* p[0..4) are hex digits (checked by the caller). */
static uint32_t hex4(const unsigned char *p)
{
	uint32_t v = 0;
	int k;

	for (k = 0; k < 4; k++)
		v = v << 4 | (uint32_t)(is_digit(p[k]) ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10);
	return v;
}

/* Encodes code point cp (<= 0x10FFFF) as UTF-8 into out; returns 1-4. */
static unsigned utf8_put(unsigned char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | cp >> 18);
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}


/* ---- Scanning ------------------------------------------------------------ */

/* p[*pos] is just past an opening quote. On success *pos is the index of
 * the closing quote and 0 is returned; -1 if the string is malformed:
 * unterminated, a bad escape (RFC 8259 §7), a raw control character, or bad UTF-8.
 * Escaped lone surrogates ("\ud800") are accepted: they match the RFC 8259 §7
 * grammar, and decoding turns them into U+FFFD. */
static int scan_str(const unsigned char *p, size_t n, size_t *pos)
{
	size_t i = *pos, k;

	for (;;) {
		i += json_plain_run(p + i, n - i);
		if (i >= n)
			return -1;
		if (p[i] == '"') {
			*pos = i;
			return 0;
		}
		if (p[i] == '\\') {
			if (i + 1 >= n)
				return -1;
			switch (p[i + 1]) {
			case '"': case '\\': case '/': case 'b':
			case 'f': case 'n': case 'r': case 't':
				i += 2;
				continue;
			case 'u':
				if (n - i < 6 || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) ||
				    !is_hex(p[i + 4]) || !is_hex(p[i + 5]))
					return -1;
				i += 6;
				continue;
			}
			return -1;
		}
		if (p[i] < 0x20)
			return -1;
		k = utf8_decode(p + i, n - i, NULL);
		if (k == 0)
			return -1;
		i += k;
	}
}

/* RFC 8259 §6 number at p[*pos]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * On success *pos is just past it. A leading zero followed by a digit stops
 * after the zero, and the caller then rejects the unexpected digit. */
static int scan_num(const unsigned char *p, size_t n, size_t *pos)
{
	size_t i = *pos;

	if (i < n && p[i] == '-')
		i++;
	if (i >= n || !is_digit(p[i]))
		return -1;
	if (p[i++] != '0')
		while (i < n && is_digit(p[i]))
			i++;
	if (i < n && p[i] == '.') {
		if (++i >= n || !is_digit(p[i]))
			return -1;
		while (i < n && is_digit(p[i]))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || !is_digit(p[i]))
			return -1;
		while (i < n && is_digit(p[i]))
			i++;
	}
	*pos = i;
	return 0;
}

/* One walk engine serves the validator (tok == NULL) and the parser. */
struct walk {
	const unsigned char *p;
	size_t n;
	struct json_tok *tok;  /* NULL: validate only, build nothing */
	int maxtok, ntok;
	unsigned maxdepth;     /* <= JSON_PARSE_MAX_DEPTH */
};

/* Appends a token; returns its index, 0 when not building tokens, or
 * JSON_ETOOMANY. */
static int tok_add(struct walk *w, int type, size_t start)
{
	struct json_tok *t;

	if (!w->tok)
		return 0;
	if (w->ntok >= w->maxtok)
		return JSON_ETOOMANY;
	t = &w->tok[w->ntok];
	t->type = (uint8_t)type;
	t->start = (uint32_t)start;
	t->len = 0;
	t->size = 0;
	t->next = (uint32_t)w->ntok + 1;
	return w->ntok++;
}

/* A member name and its ':' at or after p[*i]; parent is the object's token. */
static int walk_name(struct walk *w, size_t *i, uint32_t parent)
{
	const unsigned char *p = w->p;
	size_t n = w->n, j = skip_ws(p, n, *i), end;
	int t;

	if (j >= n || p[j] != '"')
		return JSON_EINVAL;
	if ((t = tok_add(w, JSON_STRING, j + 1)) < 0)
		return t;
	end = j + 1;
	if (scan_str(p, n, &end))
		return JSON_EINVAL;
	if (w->tok) {
		w->tok[t].len = (uint32_t)(end - j - 1);
		w->tok[parent].size++;
	}
	j = skip_ws(p, n, end + 1);
	if (j >= n || p[j] != ':')
		return JSON_EINVAL;
	*i = j + 1;
	return 0;
}

/* Walks exactly one value that starts at or after p[*pos] (leading
 * whitespace skipped) and leaves *pos just past it; trailing bytes are the
 * caller's business. Open containers live on two fixed stacks: one bit per
 * level (object or array), and when building tokens the container's token
 * index. The first problem met is the one reported. */
static int walk(struct walk *w, size_t *pos)
{
	uint64_t isobj[JSON_PARSE_MAX_DEPTH / 64 + 1];
	uint32_t open[JSON_PARSE_MAX_DEPTH];
	const unsigned char *p = w->p;
	size_t n = w->n, i = *pos, end;
	unsigned depth = 0;
	int want = 1;  /* 1: a value comes next; 0: a ',' or a closing bracket */
	int t, r, obj;

	for (;;) {
		i = skip_ws(p, n, i);
		if (want) {
			unsigned char c;
			int type;

			if (i >= n)
				return JSON_EINVAL;
			c = p[i];
			switch (c) {
			case '{': type = JSON_OBJECT; break;
			case '[': type = JSON_ARRAY; break;
			case '"': type = JSON_STRING; break;
			case 't': type = JSON_TRUE; break;
			case 'f': type = JSON_FALSE; break;
			case 'n': type = JSON_NULL; break;
			default:
				if (c != '-' && !is_digit(c))
					return JSON_EINVAL;
				type = JSON_NUMBER;
			}
			if ((type == JSON_OBJECT || type == JSON_ARRAY) && depth >= w->maxdepth)
				return JSON_EDEPTH;
			if ((t = tok_add(w, type, c == '"' ? i + 1 : i)) < 0)
				return t;
			/* Arrays count elements here; objects count names. */
			if (w->tok && depth && !(isobj[(depth - 1) / 64] >> ((depth - 1) % 64) & 1))
				w->tok[open[depth - 1]].size++;

			if (type == JSON_OBJECT || type == JSON_ARRAY) {
				uint64_t bit = 1ull << (depth % 64);
				if (type == JSON_OBJECT)
					isobj[depth / 64] |= bit;
				else
					isobj[depth / 64] &= ~bit;
				if (w->tok)
					open[depth] = (uint32_t)t;
				depth++;
				i = skip_ws(p, n, i + 1);
				/* '{' + 2 == '}' and '[' + 2 == ']' in ASCII: an empty
				 * container is closed by the "after a value" step. */
				if (i < n && p[i] == c + 2) {
					want = 0;
					continue;
				}
				if (type == JSON_OBJECT && (r = walk_name(w, &i, w->tok ? open[depth - 1] : 0)) < 0)
					return r;
				continue;
			}
			if (type == JSON_STRING) {
				end = i + 1;
				if (scan_str(p, n, &end))
					return JSON_EINVAL;
				if (w->tok)
					w->tok[t].len = (uint32_t)(end - i - 1);
				i = end + 1;
			} else {
				static const char *const lit[] = {
					[JSON_NULL] = "null", [JSON_FALSE] = "false", [JSON_TRUE] = "true",
				};
				end = i;
				if (type == JSON_NUMBER) {
					if (scan_num(p, n, &end))
						return JSON_EINVAL;
				} else {
					size_t ln = strlen(lit[type]);
					if (n - i < ln || memcmp(p + i, lit[type], ln))
						return JSON_EINVAL;
					end = i + ln;
				}
				if (w->tok)
					w->tok[t].len = (uint32_t)(end - i);
				i = end;
			}
			if (depth == 0)
				break;
			want = 0;
			continue;
		}

		/* After a value inside a container. */
		if (i >= n)
			return JSON_EINVAL;
		obj = isobj[(depth - 1) / 64] >> ((depth - 1) % 64) & 1;
		if (p[i] == ',') {
			i++;
			if (obj && (r = walk_name(w, &i, w->tok ? open[depth - 1] : 0)) < 0)
				return r;
			want = 1;
			continue;
		}
		if (p[i] != (obj ? '}' : ']'))
			return JSON_EINVAL;
		depth--;
		if (w->tok) {
			struct json_tok *ct = &w->tok[open[depth]];
			ct->len = (uint32_t)(i + 1 - ct->start);
			ct->next = (uint32_t)w->ntok;
		}
		i++;
		if (depth == 0)
			break;
	}
	*pos = i;
	return 0;
}

int json_validate(const char *s, size_t n)
{
	struct walk w = { (const unsigned char *)s, n, NULL, 0, 0, JSON_VALIDATE_MAX_DEPTH };
	size_t i = 0;

	if (walk(&w, &i))
		return 0;
	return skip_ws(w.p, n, i) == n;
}

int json_parse(const char *s, size_t n, struct json_tok *tok, int maxtok, int maxdepth)
{
	struct walk w = { (const unsigned char *)s, n, tok, maxtok, 0, 0 };
	size_t i = 0;
	int r;

	/* Spans are 32-bit; control messages are far smaller than that. */
	if (!tok || maxtok <= 0 || n > UINT32_MAX)
		return JSON_ETOOMANY;
	w.maxdepth = maxdepth < 0 ? 0 : maxdepth > JSON_PARSE_MAX_DEPTH ?
		JSON_PARSE_MAX_DEPTH : (unsigned)maxdepth;
	if ((r = walk(&w, &i)) < 0)
		return r;
	if (skip_ws(w.p, n, i) != n)
		return JSON_EINVAL;
	return w.ntok;
}

int json_parse_alloc(const char *s, size_t n, int maxdepth, struct json_tok **out)
{
	/* A value has at most n / 2 + 2 tokens; start small, grow by 8. */
	size_t most = n / 2 + 2, cap = 256;
	int r;
	*out = NULL;
	if (most > (size_t)INT32_MAX) return JSON_ETOOMANY;
	for (;;) {
		if (cap > most) cap = most;
		struct json_tok *t = malloc(cap * sizeof(*t));
		if (!t) return JSON_ETOOMANY;
		r = json_parse(s, n, t, (int)cap, maxdepth);
		if (r > 0) { *out = t; return r; }
		free(t);
		if (r != JSON_ETOOMANY || cap == most) return r;
		cap *= 8;
	}
}

/* ---- Unescaping ------------------------------------------------------------ */

/* Reads the content of a string that scan_str accepted (no quotes) as
 * unescaped UTF-8, one byte at a time, without copying it anywhere. */
struct ustr {
	const unsigned char *r;
	size_t n, i;
	unsigned char buf[4];  /* the rest of an escape's UTF-8 encoding */
	unsigned blen, bpos;
};

static void ustr_init(struct ustr *u, const void *raw, size_t n)
{
	u->r = raw;
	u->n = n;
	u->i = 0;
	u->blen = u->bpos = 0;
}

/* Next unescaped byte, or -1 at the end. */
static int ustr_next(struct ustr *u)
{
	const unsigned char *r = u->r;
	uint32_t cp, lo;
	unsigned char c;

	if (u->bpos < u->blen)
		return u->buf[u->bpos++];
	if (u->i >= u->n)
		return -1;
	if (r[u->i] != '\\')
		return r[u->i++];
	c = r[u->i + 1];
	u->i += 2;
	switch (c) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u': break;
	default:  return c;  /* '"', '\\', '/' */
	}
	cp = hex4(r + u->i);
	u->i += 4;
	/* RFC 8259 §7: characters beyond the BMP are escaped as a surrogate pair. */
	if (cp >= 0xd800 && cp <= 0xdbff && u->n - u->i >= 6 &&
	    r[u->i] == '\\' && r[u->i + 1] == 'u') {
		lo = hex4(r + u->i + 2);
		if (lo >= 0xdc00 && lo <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			u->i += 6;
		}
	}
	/* A lone surrogate has no UTF-8 form (RFC 8259 §8.2 leaves its meaning open). */
	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = 0xfffd;
	u->blen = utf8_put(u->buf, cp);
	u->bpos = 1;
	return u->buf[0];
}

/* 1 if the raw string content raw[0..rn) unescapes to s[0..n). */
static int raw_str_eq(const char *raw, size_t rn, const char *s, size_t n)
{
	struct ustr u;
	size_t i;
	int c;

	if (!memchr(raw, '\\', rn))
		return rn == n && memcmp(raw, s, n) == 0;  /* the usual case */
	ustr_init(&u, raw, rn);
	for (i = 0; (c = ustr_next(&u)) >= 0; i++)
		if (i >= n || (unsigned char)s[i] != c)
			return 0;
	return i == n;
}

int json_obj_get(const char *src, const struct json_tok *tok, int obj, const char *key)
{
	size_t klen = strlen(key);
	uint32_t m, i;
	int found = -1;

	if (tok[obj].type != JSON_OBJECT)
		return -1;
	/* Last duplicate wins, as in json_top_field and JavaScript. */
	for (m = 0, i = (uint32_t)obj + 1; m < tok[obj].size; m++, i = tok[i + 1].next)
		if (raw_str_eq(src + tok[i].start, tok[i].len, key, klen))
			found = (int)i + 1;
	return found;
}

int json_str_eq(const char *src, const struct json_tok *tok, int t, const char *s, size_t n)
{
	if (tok[t].type != JSON_STRING)
		return 0;
	return raw_str_eq(src + tok[t].start, tok[t].len, s, n);
}

ssize_t json_str_decode(const char *src, const struct json_tok *tok, int t, char *out, size_t cap)
{
	struct ustr u;
	size_t len = 0;
	int c;

	if (tok[t].type != JSON_STRING)
		return -1;
	ustr_init(&u, src + tok[t].start, tok[t].len);
	while ((c = ustr_next(&u)) >= 0) {
		if (len >= cap)
			return -1;
		out[len++] = (char)c;
	}
	if (len < cap)
		out[len] = '\0';
	return (ssize_t)len;
}

/* ---- Numbers --------------------------------------------------------------- */

/* A number that scan_num accepted, as sign, significant digits and a
 * power of ten: value = digits * 10^exp, digits without leading or trailing
 * zeros (ndig == 0 means zero). Comparing these is exact, unlike doubles,
 * which would call 9007199254740993 equal to 9007199254740992. */
struct jnum {
	const unsigned char *d;  /* first significant digit */
	size_t ndig;             /* significant digits, counted without the '.' */
	int neg;
	int big;                 /* exponent beyond +-1e15: exp is not exact */
	int64_t exp;
};

static void num_norm(const unsigned char *p, size_t n, struct jnum *m)
{
	size_t i = 0, is, ie, fs, fe, first, last;
	int64_t e = 0;
	int eneg = 0;

	m->neg = p[0] == '-';
	m->big = 0;
	i = is = (size_t)m->neg;
	while (i < n && is_digit(p[i]))
		i++;
	ie = fs = fe = i;
	if (i < n && p[i] == '.') {
		fs = ++i;
		while (i < n && is_digit(p[i]))
			i++;
		fe = i;
	}
	if (i < n) {  /* 'e' or 'E' */
		i++;
		if (p[i] == '+' || p[i] == '-')
			eneg = p[i++] == '-';
		for (; i < n; i++) {
			if (e > 1000000000000000)
				m->big = 1;  /* stop growing; compared as text later */
			else
				e = e * 10 + (p[i] - '0');
		}
		if (eneg)
			e = -e;
	}
	e -= (int64_t)(fe - fs);
	/* The digit string is p[is..fe) minus the '.' at ie when present. */
	for (first = is; first < fe && (p[first] == '0' || p[first] == '.'); first++)
		;
	if (first == fe) {
		m->d = p + is;
		m->ndig = 0;
		m->exp = 0;
		return;
	}
	for (last = fe - 1; p[last] == '0' || p[last] == '.'; last--)
		if (p[last] == '0')
			e++;  /* a trailing zero moves into the exponent */
	m->d = p + first;
	m->ndig = last - first + 1;
	if (fe > fs && first < ie && last >= fs)
		m->ndig--;  /* the '.' sits inside the significant digits */
	m->exp = e;
}

/* The next significant digit, skipping the '.'. */
static unsigned char num_digit(const unsigned char **d)
{
	if (**d == '.')
		(*d)++;
	return *(*d)++;
}

static int num_eq(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
	struct jnum x, y;
	size_t k;

	num_norm(a, an, &x);
	num_norm(b, bn, &y);
	if (x.ndig == 0 || y.ndig == 0)
		return x.ndig == y.ndig;  /* 0 == -0 == 0.0e7 */
	if (x.big || y.big)
		return an == bn && memcmp(a, b, an) == 0;
	if (x.neg != y.neg || x.ndig != y.ndig || x.exp != y.exp)
		return 0;
	for (k = 0; k < x.ndig; k++)
		if (num_digit(&x.d) != num_digit(&y.d))
			return 0;
	return 1;
}

int json_tok_int(const char *src, const struct json_tok *tok, int t, int64_t *out)
{
	const unsigned char *d;
	struct jnum m;
	uint64_t v = 0;
	size_t k;
	int64_t e;

	if (tok[t].type != JSON_NUMBER)
		return -1;
	num_norm((const unsigned char *)src + tok[t].start, tok[t].len, &m);
	if (m.ndig == 0) {
		*out = 0;
		return 0;
	}
	/* 1.0 and 1e2 are integral; 1.5 and 1e-1 are not. */
	if (m.big || m.exp < 0 || (int64_t)m.ndig + m.exp > 19)
		return -1;
	d = m.d;
	for (k = 0; k < m.ndig; k++)
		v = v * 10 + (uint64_t)(num_digit(&d) - '0');  /* <= 19 digits fit */
	for (e = m.exp; e > 0; e--) {
		if (v > UINT64_MAX / 10)
			return -1;
		v *= 10;
	}
	if (m.neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -1;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return -1;
		*out = (int64_t)v;
	}
	return 0;
}

/* ---- Payload scanning -------------------------------------------------------- */

int json_top_field(const char *s, size_t n, const char *key, size_t keylen,
		   const char **val, size_t *vlen)
{
	/* The object itself is one level, so members get one less. */
	struct walk w = { (const unsigned char *)s, n, NULL, 0, 0, JSON_VALIDATE_MAX_DEPTH - 1 };
	const unsigned char *p = w.p;
	size_t i = skip_ws(p, n, 0), k, kend, v, vs = 0, ve = 0;
	int found = 0;

	if (i >= n || p[i] != '{')
		return 0;
	i = skip_ws(p, n, i + 1);
	if (i < n && p[i] == '}')
		return 0;  /* {} has no fields, whatever follows */
	/* Every member is checked, not just up to the first match: the last
	 * duplicate wins and a malformed object has no fields at all. */
	for (;;) {
		if (i >= n || p[i] != '"')
			return 0;
		k = kend = i + 1;
		if (scan_str(p, n, &kend))
			return 0;
		i = skip_ws(p, n, kend + 1);
		if (i >= n || p[i] != ':')
			return 0;
		v = i = skip_ws(p, n, i + 1);
		if (walk(&w, &i))
			return 0;
		if (raw_str_eq(s + k, kend - k, key, keylen)) {
			found = 1;
			vs = v;
			ve = i;
		}
		i = skip_ws(p, n, i);
		if (i < n && p[i] == ',') {
			i = skip_ws(p, n, i + 1);
			continue;
		}
		if (i < n && p[i] == '}')
			break;
		return 0;
	}
	if (skip_ws(p, n, i + 1) != n)
		return 0;
	if (found) {
		*val = s + vs;
		*vlen = ve - vs;
	}
	return found;
}

/* The span of the single value in s[0..n) without surrounding whitespace,
 * or -1 if s is not exactly one valid value. */
static int value_span(const char *s, size_t n, size_t *b, size_t *e)
{
	struct walk w = { (const unsigned char *)s, n, NULL, 0, 0, JSON_VALIDATE_MAX_DEPTH };
	size_t i = skip_ws(w.p, n, 0);

	*b = i;
	if (walk(&w, &i) || skip_ws(w.p, n, i) != n)
		return -1;
	*e = i;
	return 0;
}

int json_value_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t ab, ae, bb, be;
	unsigned char ca, cb;

	if (value_span(a, alen, &ab, &ae) || value_span(b, blen, &bb, &be))
		return 0;
	ca = (unsigned char)a[ab];
	cb = (unsigned char)b[bb];
	if (ca == '"' && cb == '"') {
		struct ustr x, y;
		int c;

		ustr_init(&x, a + ab + 1, ae - ab - 2);
		ustr_init(&y, b + bb + 1, be - bb - 2);
		do {
			c = ustr_next(&x);
			if (c != ustr_next(&y))
				return 0;
		} while (c >= 0);
		return 1;
	}
	if ((ca == '-' || is_digit(ca)) && (cb == '-' || is_digit(cb)))
		return num_eq((const unsigned char *)a + ab, ae - ab,
			      (const unsigned char *)b + bb, be - bb);
	/* Literals, objects and arrays: the same bytes. Different types
	 * always differ here too, since their first bytes differ. */
	return ae - ab == be - bb && memcmp(a + ab, b + bb, ae - ab) == 0;
}

void json_tok_raw(const char *src, const struct json_tok *tok, int t, const char **p, size_t *n)
{
	int q = tok[t].type == JSON_STRING;
	*p = src + tok[t].start - q;
	*n = tok[t].len + 2 * (size_t)q;
}

char *json_tok_strdup(const char *src, const struct json_tok *tok, int t, size_t *len)
{
	size_t cap = tok[t].len + 1;     /* unescaping never grows text */
	char *s = malloc(cap);
	if (!s) return NULL;
	ssize_t n = json_str_decode(src, tok, t, s, cap);
	if (n < 0) { free(s); return NULL; }
	s[n] = '\0';
	if (len) *len = (size_t)n;
	return s;
}
