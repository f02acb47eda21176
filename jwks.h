/* jwks.h - the keys that verify JSON Web Tokens, read from files: PEM public
 * keys and X.509 certificates, JWK Sets (RFC 7517 §5) and the HMAC secret,
 * each made into a libcrypto key and sorted by the JWS algorithms it can
 * verify. Reading only: which key checks which token is jwt.c's. A leaf
 * below jwt.c (jwt_keys_load is the way in for everything else). */
#ifndef KB_JWKS_H
#define KB_JWKS_H
#include <stddef.h>

#include <openssl/types.h>

/* Key and secret files larger than this are refused (they hold a few keys). */
#define JWKS_FILE_MAX (1024 * 1024)
/* A "kid" longer than this refuses the file. */
#define JWKS_KID_MAX 255
/* RSA keys shorter than this refuse the file (RFC 7518 §3.3: 2048 or more). */
#define JWKS_RSA_MIN_BITS 2048

/* The algorithms a key fits (RFC 7518 §3.1): RS* and PS* take RSA keys,
 * ES256/384/512 one curve each, EdDSA Ed25519. */
enum jwks_type { JWKS_RSA, JWKS_P256, JWKS_P384, JWKS_P521, JWKS_ED25519 };

struct jwks_key {
	EVP_PKEY *pkey;              /* owned */
	enum jwks_type type;
	int has_kid;                 /* PEM keys never have one */
	size_t kid_len;
	char kid[JWKS_KID_MAX + 1];  /* may hold NUL bytes: compare kid_len bytes */
	char alg[16];                /* the JWK's "alg", "" when it has none */
};

/* A set of keys and at most one secret; zero it before first use. */
struct jwks {
	struct jwks_key *keys;
	size_t n, cap;
	unsigned char *secret;       /* NULL when none; wiped when freed */
	size_t secret_len;
	size_t skipped;              /* JWKs left out: "use" other than "sig", a
				      * kty, crv or alg we cannot verify with */
};

/* Adds the keys of buf[0..len): a JWK Set when its first byte past
 * whitespace is '{', else PEM blocks ("PUBLIC KEY", "RSA PUBLIC KEY",
 * "CERTIFICATE"; text between blocks is ignored). 0, or -1 with
 * "name: reason" in err, ks then holding what it held before. Giving no
 * usable key at all is an error. */
int jwks_parse(struct jwks *ks, const char *name, const char *buf, size_t len,
	       char *err, size_t errlen);
/* jwks_parse of a file's contents (at most JWKS_FILE_MAX bytes). */
int jwks_read_keys(struct jwks *ks, const char *path, char *err, size_t errlen);
/* Sets the secret: the file's bytes, one trailing "\n" or "\r\n" removed;
 * an empty secret is an error. 0, or -1 with "path: reason" in err. */
int jwks_read_secret(struct jwks *ks, const char *path, char *err, size_t errlen);
/* Frees the keys and wipes the secret; ks is zero afterwards. */
void jwks_free(struct jwks *ks);
#endif
