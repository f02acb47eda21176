/* jwt.h - JSON Web Tokens (RFC 7519, RFC 7515 compact form): the keys that
 * verify them and the verification itself, with OpenSSL's libcrypto for
 * every signature and HMAC. Splitting, base64url and the JSON of the header
 * and claims are ours. A leaf: no knowledge of clients or permissions (the
 * protocol layer's auth.c reads the claims this returns). */
#ifndef KB_JWT_H
#define KB_JWT_H
#include <stddef.h>
#include <stdint.h>

/* Tokens longer than this are malformed (a header line holds one). */
#define JWT_MAX_LEN 16384

/* Why a token was refused. jwt_error_name() gives the reason's name as
 * used in logs, in the 401 body and in kbridge_auth_failures_total. */
enum jwt_error {
	JWT_OK = 0,
	JWT_MALFORMED,      /* "malformed": not three base64url parts, bad JSON, bad claim types */
	JWT_ALGORITHM,      /* "algorithm": alg none, unknown, or not fitting any configured key */
	JWT_UNKNOWN_KEY,    /* "unknown_key": kid names no configured key */
	JWT_SIGNATURE,      /* "signature": the signature does not verify */
	JWT_EXPIRED,        /* "expired": exp + leeway is past */
	JWT_NOT_YET_VALID,  /* "not_yet_valid": nbf - leeway is in the future */
	JWT_MISSING_EXP,    /* "missing_exp": no exp claim */
	JWT_AUDIENCE,       /* "audience": aud does not contain the configured audience */
	JWT_ISSUER,         /* "issuer": iss is not the configured issuer */
	JWT_NO_MEMORY,      /* "no_memory" */
	JWT_NERRORS
};
const char *jwt_error_name(enum jwt_error e);

/* A set of verification keys, immutable once loaded: public keys (RSA,
 * EC P-256/P-384/P-521, Ed25519) each with an optional kid and alg, and at
 * most one HMAC secret. */
struct jwt_keys;

/* Loads keys. key_file (may be NULL): a PEM file with one or more public
 * keys ("PUBLIC KEY", "RSA PUBLIC KEY") or X.509 certificates (only their
 * key is used: dates and issuer are not checked), or a JWKS document
 * ({"keys":[...]}, kty RSA, EC or OKP/Ed25519; keys with a "use" other than
 * "sig", and kinds we cannot use (kty "oct", other curves) are skipped and
 * counted: jwt_keys_skipped). secret_file (may be NULL): the HMAC secret,
 * the file's bytes with one trailing "\n" or "\r\n" removed; empty is an
 * error. NULL with a one-line reason in err (naming the file) when both
 * are NULL, a file cannot be read or is over 1 MiB, is neither form, holds
 * a key that fails to load (a private key, RSA under 2048 bits, an EC
 * point off its curve), or yields no usable key at all. */
struct jwt_keys *jwt_keys_load(const char *key_file, const char *secret_file, char *err, size_t errlen);
void jwt_keys_free(struct jwt_keys *k);
/* Public keys and secrets loaded (for the log line after a (re)load). */
size_t jwt_keys_count(const struct jwt_keys *k);
/* JWKS entries skipped as unusable (for the same log line). */
size_t jwt_keys_skipped(const struct jwt_keys *k);

/* What the caller checks beyond the signature. */
struct jwt_check {
	const char *audience;   /* NULL: aud not checked */
	const char *issuer;     /* NULL: iss not checked */
	int64_t leeway_s;
	int64_t now_s;          /* wall-clock seconds since the epoch */
};

/* A verified token's claims. payload is the decoded claims object (JSON,
 * NUL-terminated, malloc'd: jwt_claims_free). */
struct jwt_claims {
	char *payload;
	size_t payload_len;
	int64_t exp;            /* seconds since the epoch (a fraction rounded down,
				 * beyond int64 saturated) */
	int64_t nbf;            /* 0 when absent (a fraction rounded up) */
	char sub[256];          /* "sub", unescaped, cut at a UTF-8 character
				 * boundary to fit; "" when absent */
};

/* Verifies tok[0..len): splits it, decodes the header (alg, kid; typ is
 * ignored, any "crit" is malformed, keys named by the header (jwk, jku,
 * x5u, x5c) are never used) and the claims object, picks the key,
 * verifies the signature with libcrypto, then checks exp (required), nbf,
 * aud and iss. alg must fit the key: HS* only with the secret, RS/PS* with
 * RSA keys, ES256/384/512 with P-256/P-384/P-521, EdDSA with Ed25519;
 * "none" never. Keys: when the token names a kid, the keys with that kid
 * and the keys with none (PEM keys and the secret: a file of PEM keys has
 * no names to match an issuer's kid with); else every key whose type fits
 * alg. A JWKS key's own "alg", when
 * present, must equal the token's. Reasons come in this order: malformed
 * (the three parts, base64url, both JSON objects, header member types),
 * algorithm (alg unknown; HS without a secret), then for public keys:
 * unknown_key (a kid no key carries, when no key without a kid fits:
 * whatever the alg, since the key may be of a kind not loaded yet),
 * algorithm (no key fits alg, or the kid's key does not), signature; then, for a verified token only, malformed
 * for claims of the wrong type (exp or nbf not a number, sub or iss not a
 * string, aud not a string or array of strings, when checked), missing_exp,
 * expired (now >= exp + leeway), not_yet_valid (now < nbf - leeway),
 * audience, issuer. On JWT_OK *out is filled (free with jwt_claims_free);
 * otherwise *out is untouched. */
enum jwt_error jwt_verify(const struct jwt_keys *k, const char *tok, size_t len,
			  const struct jwt_check *chk, struct jwt_claims *out);
void jwt_claims_free(struct jwt_claims *c);
#endif
