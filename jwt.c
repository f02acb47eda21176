/* jwt.c - verifying JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515
 * §7.1): splitting, strict base64url, the JSON of the header and the claims,
 * choosing the key, the signature through libcrypto's EVP interface (RFC 7518
 * §3, RFC 8037 §3.1), then exp, nbf, aud and iss. Reading the key files is
 * jwks.c; what the claims permit is auth.c's. No header parameter ever
 * brings its own key ("jwk", "jku", "x5u", "x5c" are ignored). */
#define OPENSSL_API_COMPAT 30000  /* the static build's libcrypto has no deprecated API */
#define OPENSSL_NO_DEPRECATED
#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "base64.h"
#include "json_parse.h"
#include "jwks.h"

/* A header is a few flat members; claims hold auth.c's permission object. */
#define JWT_HEADER_DEPTH 8
#define JWT_CLAIMS_DEPTH 64

struct jwt_keys {
	struct jwks ks;
};

static const char *const error_names[JWT_NERRORS] = {
	[JWT_OK] = "ok",
	[JWT_MALFORMED] = "malformed",
	[JWT_ALGORITHM] = "algorithm",
	[JWT_UNKNOWN_KEY] = "unknown_key",
	[JWT_SIGNATURE] = "signature",
	[JWT_EXPIRED] = "expired",
	[JWT_NOT_YET_VALID] = "not_yet_valid",
	[JWT_MISSING_EXP] = "missing_exp",
	[JWT_AUDIENCE] = "audience",
	[JWT_ISSUER] = "issuer",
	[JWT_NO_MEMORY] = "no_memory",
};

const char *jwt_error_name(enum jwt_error e)
{
	return (unsigned)e < JWT_NERRORS ? error_names[e] : "unknown";
}

/* ---- keys ----------------------------------------------------------------- */

struct jwt_keys *jwt_keys_load(const char *key_file, const char *secret_file, char *err, size_t errlen)
{
	struct jwt_keys *k;

	if (!key_file && !secret_file) {
		snprintf(err, errlen, "no key file and no secret file");
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "%s: out of memory", key_file ? key_file : secret_file);
		return NULL;
	}
	if ((key_file && jwks_read_keys(&k->ks, key_file, err, errlen) < 0) ||
	    (secret_file && jwks_read_secret(&k->ks, secret_file, err, errlen) < 0)) {
		jwt_keys_free(k);
		return NULL;
	}
	return k;
}

void jwt_keys_free(struct jwt_keys *k)
{
	if (!k)
		return;
	jwks_free(&k->ks);
	free(k);
}

size_t jwt_keys_count(const struct jwt_keys *k)
{
	return k ? k->ks.n + (k->ks.secret != NULL) : 0;
}

size_t jwt_keys_skipped(const struct jwt_keys *k)
{
	return k ? k->ks.skipped : 0;
}

/* ---- algorithms (RFC 7518 §3.1, RFC 8037 §3.1) ---------------------------- */

enum alg_kind { ALG_HS, ALG_RS, ALG_PS, ALG_ES, ALG_ED };

struct alg {
	const char *name;
	enum alg_kind kind;
	const char *md;          /* digest name; NULL: EdDSA hashes by itself */
	enum jwks_type key;      /* the key type it takes (not for HS) */
	size_t sig_len;          /* ES: the length of r || s (RFC 7518 §3.4) */
};

static const struct alg algs[] = {
	{ "HS256", ALG_HS, "SHA256", JWKS_RSA, 0 },
	{ "HS384", ALG_HS, "SHA384", JWKS_RSA, 0 },
	{ "HS512", ALG_HS, "SHA512", JWKS_RSA, 0 },
	{ "RS256", ALG_RS, "SHA256", JWKS_RSA, 0 },
	{ "RS384", ALG_RS, "SHA384", JWKS_RSA, 0 },
	{ "RS512", ALG_RS, "SHA512", JWKS_RSA, 0 },
	{ "PS256", ALG_PS, "SHA256", JWKS_RSA, 0 },
	{ "PS384", ALG_PS, "SHA384", JWKS_RSA, 0 },
	{ "PS512", ALG_PS, "SHA512", JWKS_RSA, 0 },
	{ "ES256", ALG_ES, "SHA256", JWKS_P256, 64 },
	{ "ES384", ALG_ES, "SHA384", JWKS_P384, 96 },
	{ "ES512", ALG_ES, "SHA512", JWKS_P521, 132 },
	{ "EdDSA", ALG_ED, NULL, JWKS_ED25519, 0 },
};

/* The algorithm named by string token t, or NULL ("none" among them). */
static const struct alg *alg_find(const char *src, const struct json_tok *tok, int t)
{
	size_t i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (json_str_eq(src, tok, t, algs[i].name, strlen(algs[i].name)))
			return &algs[i];
	return NULL;
}

/* 1 if sig is the HMAC of msg under the secret. Constant time in the
 * content of sig, so a forger learns nothing byte by byte. */
static int verify_hmac(const struct alg *a, const struct jwks *ks, const char *msg, size_t mlen,
		       const unsigned char *sig, size_t slen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, a->md, NULL, ks->secret, ks->secret_len,
		       (const unsigned char *)msg, mlen, mac, sizeof(mac), &maclen)) {
		ERR_clear_error();
		return 0;
	}
	return slen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

/* JWS ECDSA signatures are r || s, each the curve's length (RFC 7518 §3.4);
 * libcrypto verifies the DER ECDSA-Sig-Value. *der is OPENSSL_malloc'd. */
static int ecdsa_der(const unsigned char *sig, size_t len, unsigned char **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
	int n = -1;

	*der = NULL;
	if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
		r = s = NULL;  /* es owns them now */
		n = i2d_ECDSA_SIG(es, der);
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return n;
}

/* 1 if sig signs msg under pk with algorithm a; the key's type was
 * matched to a by the caller. */
static int verify_pkey(const struct alg *a, EVP_PKEY *pk, const char *msg, size_t mlen,
		       const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	int n, ok = 0;

	if (!ctx)
		return 0;
	if (a->kind == ALG_ES) {
		if (slen != a->sig_len)
			goto done;  /* DER or a truncated pair: not a JWS signature */
		if ((n = ecdsa_der(sig, slen, &der)) <= 0)
			goto done;
		sig = der;
		slen = (size_t)n;
	}
	if (EVP_DigestVerifyInit_ex(ctx, &pctx, a->md, NULL, NULL, pk, NULL) != 1)
		goto done;
	if (a->kind == ALG_RS && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto done;
	/* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. */
	if (a->kind == ALG_PS && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
				  EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, a->md, NULL) != 1 ||
				  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		goto done;
	ok = EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)msg, mlen) == 1;
done:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Picks the keys for a token and tries them. kid (NULL: the token has
 * none) narrows the candidates to the keys carrying it, and to keys that
 * carry none (PEM keys and the secret: issuers put a kid in every token,
 * and a file of PEM keys has no names to match it with); a JWK's own alg
 * must be a's. The reason when none verifies, in the order of jwt.h. */
static enum jwt_error verify_sig(const struct jwks *ks, const struct alg *a, const char *kid,
				 size_t kid_len, const char *msg, size_t mlen,
				 const unsigned char *sig, size_t slen)
{
	size_t i, named = 0, tried = 0;

	if (a->kind == ALG_HS) {
		/* Only the secret: a public key is never an HMAC key (RFC 8725
		 * §3.1). The secret has no kid to compare a token's with. */
		if (!ks->secret)
			return JWT_ALGORITHM;
		return verify_hmac(a, ks, msg, mlen, sig, slen) ? JWT_OK : JWT_SIGNATURE;
	}
	for (i = 0; i < ks->n; i++) {
		const struct jwks_key *k = &ks->keys[i];
		int fit = k->type == a->key && (!k->alg[0] || !strcmp(k->alg, a->name));
		int match = !kid || !k->has_kid || (k->kid_len == kid_len && !memcmp(k->kid, kid, kid_len));

		named += kid && k->has_kid && k->kid_len == kid_len && !memcmp(k->kid, kid, kid_len);
		if (!fit || !match)
			continue;
		tried++;
		if (verify_pkey(a, k->pkey, msg, mlen, sig, slen))
			return JWT_OK;
	}
	if (tried)
		return JWT_SIGNATURE;
	/* A kid no key carries is unknown whatever the alg: the key may be
	 * of a kind not loaded yet (the caller may read the file again). */
	if (kid && !named)
		return JWT_UNKNOWN_KEY;
	return JWT_ALGORITHM;   /* no key fits alg, or the kid's key does not */
}

/* ---- claims (RFC 7519 §4.1) ----------------------------------------------- */

/* A NumericDate (RFC 7519 §2): any JSON number, seconds since the epoch.
 * Fractions are cut toward the safe side: exp down (up = 0), nbf up;
 * values beyond int64 saturate. 0, or -1 when t is not a number. */
static int numeric_date(const char *src, const struct json_tok *tok, int t, int up, int64_t *out)
{
	double d;
	int64_t v;

	if (tok[t].type != JSON_NUMBER)
		return -1;
	if (json_tok_int(src, tok, t, out) == 0)
		return 0;
	/* src is NUL-terminated and a JSON number is followed by a byte
	 * strtod stops at. */
	d = strtod(src + tok[t].start, NULL);
	if (d >= 9.2e18) {
		*out = INT64_MAX;
	} else if (d <= -9.2e18) {
		*out = INT64_MIN;
	} else {
		v = (int64_t)d;  /* toward zero */
		if (up && (double)v < d)
			v++;
		else if (!up && (double)v > d)
			v--;
		*out = v;
	}
	return 0;
}

/* 1 when aud (a string or an array of strings) holds want, 0 when not,
 * -1 when it is some other type. */
static int aud_has(const char *src, const struct json_tok *tok, int t, const char *want)
{
	size_t n = strlen(want);
	int i, found = 0;

	if (tok[t].type == JSON_STRING)
		return json_str_eq(src, tok, t, want, n);
	if (tok[t].type != JSON_ARRAY)
		return -1;
	for (i = t + 1; i < (int)tok[t].next; i = (int)tok[i].next) {
		if (tok[i].type != JSON_STRING)
			return -1;
		found |= json_str_eq(src, tok, i, want, n);
	}
	return found;
}

/* Copies string token t into sub, cut at a character boundary to fit. */
static enum jwt_error copy_sub(const char *src, const struct json_tok *tok, int t, char *sub, size_t cap)
{
	char *tmp = malloc((size_t)tok[t].len + 1);
	ssize_t n;

	if (!tmp)
		return JWT_NO_MEMORY;
	n = json_str_decode(src, tok, t, tmp, (size_t)tok[t].len + 1);  /* never longer than raw */
	if (n < 0)
		n = 0;
	if ((size_t)n >= cap) {
		n = (ssize_t)cap - 1;
		while (n > 0 && ((unsigned char)tmp[n] & 0xc0) == 0x80)
			n--;  /* tmp[n] would be the middle of a UTF-8 sequence */
	}
	memcpy(sub, tmp, (size_t)n);
	sub[n] = '\0';
	free(tmp);
	return JWT_OK;
}

/* The claims after the signature verified: types first (malformed), then
 * exp, nbf, aud, iss in the order of jwt.h. */
static enum jwt_error check_claims(const char *src, const struct json_tok *tok,
				   const struct jwt_check *chk, struct jwt_claims *c)
{
	int exp = json_obj_get(src, tok, 0, "exp");
	int nbf = json_obj_get(src, tok, 0, "nbf");
	int sub = json_obj_get(src, tok, 0, "sub");
	int aud = chk->audience ? json_obj_get(src, tok, 0, "aud") : -1;
	int iss = chk->issuer ? json_obj_get(src, tok, 0, "iss") : -1;
	int64_t leeway = chk->leeway_s > 0 ? chk->leeway_s : 0;
	int aud_in = 0;

	c->exp = c->nbf = 0;
	c->sub[0] = '\0';
	if (exp >= 0 && numeric_date(src, tok, exp, 0, &c->exp) < 0)
		return JWT_MALFORMED;
	if (nbf >= 0 && numeric_date(src, tok, nbf, 1, &c->nbf) < 0)
		return JWT_MALFORMED;
	if (sub >= 0 && tok[sub].type != JSON_STRING)
		return JWT_MALFORMED;
	if (aud >= 0 && (aud_in = aud_has(src, tok, aud, chk->audience)) < 0)
		return JWT_MALFORMED;
	if (iss >= 0 && tok[iss].type != JSON_STRING)
		return JWT_MALFORMED;

	/* RFC 7519 §4.1.4: now must be before exp; RFC 7519 §4.1.5: at or
	 * after nbf. The leeway widens both, saturating, never overflowing. */
	if (exp < 0)
		return JWT_MISSING_EXP;
	if (c->exp <= INT64_MAX - leeway && chk->now_s >= c->exp + leeway)
		return JWT_EXPIRED;
	if (nbf >= 0 && c->nbf >= INT64_MIN + leeway && chk->now_s < c->nbf - leeway)
		return JWT_NOT_YET_VALID;
	if (chk->audience && !aud_in)
		return JWT_AUDIENCE;
	if (chk->issuer && (iss < 0 || !json_str_eq(src, tok, iss, chk->issuer, strlen(chk->issuer))))
		return JWT_ISSUER;
	return sub >= 0 ? copy_sub(src, tok, sub, c->sub, sizeof(c->sub)) : JWT_OK;
}

/* ---- the token ------------------------------------------------------------ */

/* Decodes one base64url part into out (NUL added). Length, or -1. */
static ssize_t part(const char *s, size_t n, unsigned char *out)
{
	ssize_t r = base64url_decode(s, n, out);

	if (r >= 0)
		out[r] = '\0';
	return r;
}

enum jwt_error jwt_verify(const struct jwt_keys *k, const char *tok, size_t len,
			  const struct jwt_check *chk, struct jwt_claims *out)
{
	const char *d1, *d2, *kid = NULL;
	unsigned char *buf = NULL, *hdr, *sig;
	char *payload = NULL, kidbuf[JWKS_KID_MAX + 2];
	struct json_tok *ht = NULL, *pt = NULL;
	struct jwt_claims c;
	ssize_t hlen, plen, slen, kid_len = 0;
	size_t n1, n2, n3;
	const struct alg *a;
	enum jwt_error rc = JWT_MALFORMED;
	int t;

	/* Three parts, two dots (RFC 7515 §7.1); an encrypted JWE has five. */
	if (!k || !tok || !len || len > JWT_MAX_LEN)
		return JWT_MALFORMED;
	if (!(d1 = memchr(tok, '.', len)) || !(d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok))) ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
		return JWT_MALFORMED;
	n1 = (size_t)(d1 - tok);
	n2 = (size_t)(d2 - d1 - 1);
	n3 = len - (size_t)(d2 + 1 - tok);

	buf = malloc(BASE64URL_DECODED_LEN(n1) + 1 + BASE64URL_DECODED_LEN(n3) + 1);
	payload = malloc(BASE64URL_DECODED_LEN(n2) + 1);
	if (!buf || !payload) {
		rc = JWT_NO_MEMORY;
		goto done;
	}
	hdr = buf;
	if ((hlen = part(tok, n1, hdr)) < 0)
		goto done;
	sig = hdr + hlen + 1;
	if ((plen = part(d1 + 1, n2, (unsigned char *)payload)) < 0 ||
	    (slen = part(d2 + 1, n3, sig)) < 0)
		goto done;

	/* The JOSE header (RFC 7515 §4): an object whose alg is a string. */
	if (json_parse_alloc((char *)hdr, (size_t)hlen, JWT_HEADER_DEPTH, &ht) <= 0 ||
	    ht[0].type != JSON_OBJECT)
		goto done;
	t = json_obj_get((char *)hdr, ht, 0, "alg");
	if (t < 0 || ht[t].type != JSON_STRING)
		goto done;
	a = alg_find((char *)hdr, ht, t);
	/* RFC 7515 §4.1.11: no extension is understood here, so any "crit"
	 * makes the token one we must not accept. */
	if (json_obj_get((char *)hdr, ht, 0, "crit") >= 0)
		goto done;
	if ((t = json_obj_get((char *)hdr, ht, 0, "kid")) >= 0) {
		if (ht[t].type != JSON_STRING)
			goto done;
		/* A kid longer than any loaded one matches none: cut it one
		 * byte past the longest. */
		kid_len = json_str_decode((char *)hdr, ht, t, kidbuf, sizeof(kidbuf));
		if (kid_len < 0)
			kid_len = (ssize_t)sizeof(kidbuf);
		kid = kidbuf;
	}
	/* The claims set (RFC 7519 §7.2 step 10): a JSON object. */
	if (json_parse_alloc(payload, (size_t)plen, JWT_CLAIMS_DEPTH, &pt) <= 0 ||
	    pt[0].type != JSON_OBJECT)
		goto done;

	/* "none" and anything unknown (RFC 8725 §3.1). */
	if (!a) {
		rc = JWT_ALGORITHM;
		goto done;
	}
	/* The signature covers the encoded header and payload as sent. */
	rc = verify_sig(&k->ks, a, kid, (size_t)kid_len, tok, (size_t)(d2 - tok), sig, (size_t)slen);
	if (rc != JWT_OK)
		goto done;
	rc = check_claims(payload, pt, chk, &c);
	if (rc != JWT_OK)
		goto done;
	c.payload = payload;  /* ownership moves to *out */
	c.payload_len = (size_t)plen;
	payload = NULL;
	*out = c;
done:
	free(pt);
	free(ht);
	free(payload);
	free(buf);
	return rc;
}

void jwt_claims_free(struct jwt_claims *c)
{
	if (!c)
		return;
	free(c->payload);
	c->payload = NULL;
	c->payload_len = 0;
}
