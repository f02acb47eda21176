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
 * keys or X.509 certificates, or a JWKS document ({"keys":[...]}, kty RSA,
 * EC or OKP/Ed25519; keys with "use":"enc" and kinds we cannot use are
 * skipped and counted in *skipped). secret_file (may be NULL): the HMAC
 * secret, the file's bytes with one trailing newline removed; empty is an
 * error. NULL with a one-line reason in err (naming the file) when a file
 * cannot be read, is neither form, holds a key that fails to load, or
 * yields no key at all. RSA keys under 2048 bits are refused. */
struct jwt_keys *jwt_keys_load(const char *key_file, const char *secret_file, char *err, size_t errlen);
void jwt_keys_free(struct jwt_keys *k);
/* Public keys and secrets loaded (for the log line after a (re)load). */
size_t jwt_keys_count(const struct jwt_keys *k);

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
	int64_t exp;            /* seconds since the epoch */
	int64_t nbf;            /* 0 when absent */
	char sub[256];          /* "sub", truncated; "" when absent */
};

/* Verifies tok[0..len): splits it, decodes the header (alg, kid, typ is
 * ignored), picks the key (by kid when the token names one: a key with
 * that kid; else any key whose type fits alg), verifies the signature
 * with libcrypto, then checks exp (required), nbf, aud and iss. alg must
 * fit the key: HS* only with the secret, RS/PS* with RSA keys, ES256/384/512
 * with P-256/P-384/P-521, EdDSA with Ed25519; "none" never. A JWKS key's
 * own "alg", when present, must equal the token's. On JWT_OK *out is filled
 * (free with jwt_claims_free); otherwise *out is untouched. */
enum jwt_error jwt_verify(const struct jwt_keys *k, const char *tok, size_t len,
			  const struct jwt_check *chk, struct jwt_claims *out);
void jwt_claims_free(struct jwt_claims *c);
#endif
