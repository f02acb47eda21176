/* jwks.c - reading JWT verification keys: PEM public keys and certificates
 * (libcrypto's DER decoders), JWK Sets (RFC 7517, RFC 7518 §6) parsed with
 * json_parse and built with EVP_PKEY_fromdata, and the HMAC secret. Every
 * key is checked once here (type, curve, RSA size, libcrypto's public-key
 * check) so that verifying a token only has to match types. Not here:
 * choosing a key for a token, or any signature (jwt.c). */
#define OPENSSL_API_COMPAT 30000  /* the static build's libcrypto has no deprecated API */
#define OPENSSL_NO_DEPRECATED
#include "jwks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base64.h"
#include "json_parse.h"

/* JWK Sets are flat: {"keys":[{...}]} with string members. */
#define JWKS_MAX_DEPTH 8

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- one key ------------------------------------------------------------- */

/* Sorts pk by what it can verify; NULL, or why it cannot be used. */
static const char *classify(EVP_PKEY *pk, enum jwks_type *type)
{
	EVP_PKEY_CTX *ctx;
	char group[64];
	int ok;

	if (EVP_PKEY_is_a(pk, "RSA")) {
		if (EVP_PKEY_get_bits(pk) < JWKS_RSA_MIN_BITS)
			return "RSA key shorter than 2048 bits";
		*type = JWKS_RSA;
	} else if (EVP_PKEY_is_a(pk, "EC")) {
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL))
			return "EC key without a named curve";
		switch (OBJ_txt2nid(group)) {
		case NID_X9_62_prime256v1: *type = JWKS_P256; break;
		case NID_secp384r1:        *type = JWKS_P384; break;
		case NID_secp521r1:        *type = JWKS_P521; break;
		default: return "EC curve other than P-256, P-384 and P-521";
		}
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		*type = JWKS_ED25519;
	} else {
		return "key type other than RSA, EC and Ed25519";
	}
	/* An EC point off its curve, an even RSA modulus: refused now rather
	 * than failing every token later. -2: no check for this type. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (!ctx)
		return "out of memory";
	ok = EVP_PKEY_public_check(ctx);
	EVP_PKEY_CTX_free(ctx);
	return ok == 1 || ok == -2 ? NULL : "key fails libcrypto's public key check";
}

/* Adds pk (ownership moves in, freed on failure) with its kid and alg. */
static const char *add_key(struct jwks *ks, EVP_PKEY *pk, const char *kid, size_t kid_len,
			   const char *alg)
{
	struct jwks_key *k;
	enum jwks_type type;
	const char *why = classify(pk, &type);

	if (!why && ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 4;
		void *p = realloc(ks->keys, cap * sizeof(*ks->keys));
		if (!p)
			why = "out of memory";
		else
			ks->keys = p, ks->cap = cap;
	}
	if (why) {
		EVP_PKEY_free(pk);
		return why;
	}
	k = &ks->keys[ks->n++];
	memset(k, 0, sizeof(*k));
	k->pkey = pk;
	k->type = type;
	if (kid) {
		k->has_kid = 1;
		k->kid_len = kid_len;
		memcpy(k->kid, kid, kid_len);
	}
	if (alg)
		snprintf(k->alg, sizeof(k->alg), "%s", alg);
	return NULL;
}

/* Frees the keys added since ks held n of them. */
static void truncate_keys(struct jwks *ks, size_t n)
{
	while (ks->n > n)
		EVP_PKEY_free(ks->keys[--ks->n].pkey);
}

/* ---- PEM ------------------------------------------------------------------ */

/* The public key of one PEM block's DER, or NULL with why set. */
static EVP_PKEY *pem_block_key(const char *type, const unsigned char *der, long len, const char **why)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;
	X509 *x;

	if (!strcmp(type, PEM_STRING_PUBLIC)) {                 /* SubjectPublicKeyInfo */
		pk = d2i_PUBKEY(NULL, &p, len);
	} else if (!strcmp(type, PEM_STRING_RSA_PUBLIC)) {      /* PKCS #1 RSAPublicKey */
		pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, len);
	} else if (!strcmp(type, PEM_STRING_X509)) {
		/* A certificate is only a wrapper of the key here: its dates,
		 * issuer and purpose are not checked (the key file is trusted). */
		x = d2i_X509(NULL, &p, len);
		if (x && p == der + len)
			pk = X509_get_pubkey(x);
		X509_free(x);
		if (!pk) {
			*why = "certificate that does not decode";
			return NULL;
		}
		return pk;
	} else {
		*why = strstr(type, "PRIVATE") ? "private key (give the public key)"
					       : "PEM block that is not a public key or certificate";
		return NULL;
	}
	if (pk && p != der + len) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	if (!pk)
		*why = "public key that does not decode";
	return pk;
}

static int parse_pem(struct jwks *ks, const char *name, const char *buf, size_t len,
		     char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	size_t n0 = ks->n, block = 0;
	int rc = -1;

	if (!bio) {
		fail(err, errlen, "%s: out of memory", name);
		return -1;
	}
	ERR_clear_error();  /* the end of the blocks is told by the last error */
	for (;;) {
		char *type = NULL, *hdr = NULL;
		unsigned char *der = NULL;
		const char *why = NULL;
		long dlen = 0;
		EVP_PKEY *pk;

		if (!PEM_read_bio(bio, &type, &hdr, &der, &dlen)) {
			/* No further "-----BEGIN" line is the end; anything else
			 * (no END line, bad base64) is a broken block. */
			unsigned long e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				if (block)
					rc = 0;
				else
					fail(err, errlen, "%s: neither a PEM file nor a JWKS document", name);
			} else {
				fail(err, errlen, "%s: PEM block %zu does not decode", name, block + 1);
			}
			break;
		}
		block++;
		pk = pem_block_key(type, der, dlen, &why);
		if (pk)
			why = add_key(ks, pk, NULL, 0, NULL);
		if (why)
			fail(err, errlen, "%s: PEM block %zu (%s): %s", name, block, type, why);
		OPENSSL_free(type);
		OPENSSL_free(hdr);
		OPENSSL_free(der);
		if (why)
			break;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (rc < 0)
		truncate_keys(ks, n0);
	return rc;
}

/* ---- JWK Set (RFC 7517 §4, §5; RFC 7518 §6) ------------------------------- */

struct jwk_ctx {
	const char *src;
	const struct json_tok *tok;
	int obj;                 /* the JWK's object token */
};

/* Member `name` as a string: 1 and its token in *t, 0 when absent, -1 when
 * not a string. */
static int jwk_str(const struct jwk_ctx *j, const char *name, int *t)
{
	*t = json_obj_get(j->src, j->tok, j->obj, name);
	if (*t < 0)
		return 0;
	return j->tok[*t].type == JSON_STRING ? 1 : -1;
}

/* Member `name`, a base64url string, decoded into out (malloc'd). 0, or -1
 * with why set. */
static int jwk_bytes(const struct jwk_ctx *j, const char *name, unsigned char **out,
		     size_t *len, const char **why)
{
	const struct json_tok *t;
	ssize_t n;
	int i;

	*out = NULL;
	if (jwk_str(j, name, &i) != 1) {
		*why = "a base64url member is missing or not a string";
		return -1;
	}
	t = &j->tok[i];
	/* Base64url has no characters JSON escapes: the raw span is the text. */
	*out = malloc(BASE64URL_DECODED_LEN(t->len) + 1);
	if (!*out) {
		*why = "out of memory";
		return -1;
	}
	n = base64url_decode(j->src + t->start, t->len, *out);
	if (n <= 0) {
		free(*out);
		*out = NULL;
		*why = "a member is not base64url or is empty";
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

/* Builds a public key of libcrypto type `kind` from params. */
static EVP_PKEY *from_params(const char *kind, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, kind, NULL);
	EVP_PKEY *pk = NULL;

	if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
			pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

/* RFC 7518 §6.3.1: modulus n and exponent e, big-endian. */
static EVP_PKEY *jwk_rsa(const struct jwk_ctx *j, const char **why)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (jwk_bytes(j, "n", &n, &nlen, why) < 0 || jwk_bytes(j, "e", &e, &elen, why) < 0)
		goto done;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pk = from_params("RSA", bld);
	if (!pk)
		*why = "RSA key that libcrypto refuses";
done:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pk;
}

/* RFC 7518 §6.2.1: the point (x, y) on the named curve. The coordinates
 * should be full length; shorter ones (leading zeros dropped, as some
 * issuers write them) are padded back. */
static EVP_PKEY *jwk_ec(const struct jwk_ctx *j, const char *group, size_t clen, const char **why)
{
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 66];
	size_t xlen, ylen;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (jwk_bytes(j, "x", &x, &xlen, why) < 0 || jwk_bytes(j, "y", &y, &ylen, why) < 0)
		goto done;
	if (xlen > clen || ylen > clen) {
		*why = "EC coordinate longer than its curve's";
		goto done;
	}
	/* An uncompressed point (SEC 1, section 2.3.3): 0x04 || X || Y. */
	memset(pub, 0, sizeof(pub));
	pub[0] = 0x04;
	memcpy(pub + 1 + clen - xlen, x, xlen);
	memcpy(pub + 1 + 2 * clen - ylen, y, ylen);
	bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen))
		pk = from_params("EC", bld);
	if (!pk)
		*why = "EC point that libcrypto refuses";
done:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pk;
}

/* RFC 8037 §2: an Ed25519 public key is x, 32 bytes. */
static EVP_PKEY *jwk_ed25519(const struct jwk_ctx *j, const char **why)
{
	unsigned char *x = NULL;
	size_t xlen = 0;
	EVP_PKEY *pk = NULL;

	if (jwk_bytes(j, "x", &x, &xlen, why) < 0)
		return NULL;
	if (xlen == 32)
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
	if (!pk)
		*why = "Ed25519 key that is not 32 bytes";
	free(x);
	return pk;
}

/* One JWK: 1 added, 0 skipped (counted), -1 refused with why set. */
static int jwk_add(struct jwks *ks, const struct jwk_ctx *j, const char **why)
{
	static const struct { const char *crv, *group; size_t len; } curves[] = {
		{ "P-256", "prime256v1", 32 }, { "P-384", "secp384r1", 48 }, { "P-521", "secp521r1", 66 },
	};
	char kid[JWKS_KID_MAX + 1], alg[16];
	ssize_t kid_len = 0, alg_len = 0;
	int kt, t, has_use, has_kid, has_alg;
	EVP_PKEY *pk = NULL;
	size_t c;

	if (j->tok[j->obj].type != JSON_OBJECT) {
		*why = "not an object";
		return -1;
	}
	if (jwk_str(j, "kty", &kt) != 1) {
		*why = "no \"kty\" string";
		return -1;
	}
	/* "use" other than "sig": a key for encryption, never for tokens. */
	if ((has_use = jwk_str(j, "use", &t)) < 0) {
		*why = "\"use\" is not a string";
		return -1;
	}
	if (has_use && !json_str_eq(j->src, j->tok, t, "sig", 3))
		return 0;
	if ((has_kid = jwk_str(j, "kid", &t)) < 0) {
		*why = "\"kid\" is not a string";
		return -1;
	}
	if (has_kid && (kid_len = json_str_decode(j->src, j->tok, t, kid, sizeof(kid) - 1)) < 0) {
		*why = "\"kid\" longer than 255 bytes";
		return -1;
	}
	if ((has_alg = jwk_str(j, "alg", &t)) < 0) {
		*why = "\"alg\" is not a string";
		return -1;
	}
	/* An alg too long for any JWS algorithm verifies nothing here. */
	if (has_alg && (alg_len = json_str_decode(j->src, j->tok, t, alg, sizeof(alg) - 1)) < 0)
		return 0;
	if (has_alg && memchr(alg, 0, (size_t)alg_len))
		return 0;
	if (json_obj_get(j->src, j->tok, j->obj, "d") >= 0) {
		*why = "private key (\"d\"): give the public key";
		return -1;
	}
	if (json_str_eq(j->src, j->tok, kt, "RSA", 3)) {
		pk = jwk_rsa(j, why);
	} else if (json_str_eq(j->src, j->tok, kt, "EC", 2)) {
		if (jwk_str(j, "crv", &t) != 1) {
			*why = "EC key without a \"crv\" string";
			return -1;
		}
		for (c = 0; c < sizeof(curves) / sizeof(curves[0]); c++)
			if (json_str_eq(j->src, j->tok, t, curves[c].crv, strlen(curves[c].crv)))
				break;
		if (c == sizeof(curves) / sizeof(curves[0]))
			return 0;  /* secp256k1 and others: no JWS algorithm of ours */
		pk = jwk_ec(j, curves[c].group, curves[c].len, why);
	} else if (json_str_eq(j->src, j->tok, kt, "OKP", 3)) {
		if (jwk_str(j, "crv", &t) != 1) {
			*why = "OKP key without a \"crv\" string";
			return -1;
		}
		if (!json_str_eq(j->src, j->tok, t, "Ed25519", 7))
			return 0;  /* Ed448, X25519, X448 */
		pk = jwk_ed25519(j, why);
	} else {
		return 0;      /* "oct" (a secret has no place here) and others */
	}
	if (!pk)
		return -1;
	*why = add_key(ks, pk, has_kid ? kid : NULL, (size_t)kid_len, has_alg ? alg : NULL);
	return *why ? -1 : 1;
}

static int parse_jwks(struct jwks *ks, const char *name, const char *buf, size_t len,
		      char *err, size_t errlen)
{
	struct json_tok *tok = NULL;
	size_t n0 = ks->n, skipped0 = ks->skipped, added = 0, idx = 0;
	int ntok, keys, i, r;
	const char *why = NULL;

	ntok = json_parse_alloc(buf, len, JWKS_MAX_DEPTH, &tok);
	if (ntok < 0) {
		fail(err, errlen, "%s: not a JWKS document (%s)", name,
		     ntok == JSON_EDEPTH ? "nested too deep" : "not JSON");
		return -1;
	}
	keys = tok[0].type == JSON_OBJECT ? json_obj_get(buf, tok, 0, "keys") : -1;
	if (keys < 0 || tok[keys].type != JSON_ARRAY) {
		fail(err, errlen, "%s: not a JWKS document (no \"keys\" array)", name);
		free(tok);
		return -1;
	}
	for (i = keys + 1; i < (int)tok[keys].next; i = (int)tok[i].next, idx++) {
		struct jwk_ctx j = { buf, tok, i };
		r = jwk_add(ks, &j, &why);
		if (r < 0) {
			fail(err, errlen, "%s: key %zu: %s", name, idx, why);
			break;
		}
		added += (size_t)r;
		ks->skipped += r == 0;
	}
	free(tok);
	if (!why && !added) {
		fail(err, errlen, "%s: no usable key (%zu skipped)", name, ks->skipped - skipped0);
		why = "";
	}
	if (why) {
		truncate_keys(ks, n0);
		ks->skipped = skipped0;
		return -1;
	}
	return 0;
}

int jwks_parse(struct jwks *ks, const char *name, const char *buf, size_t len,
	       char *err, size_t errlen)
{
	size_t i = 0;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (i < len && buf[i] == '{')
		return parse_jwks(ks, name, buf, len, err, errlen);
	if (len > INT32_MAX) {
		fail(err, errlen, "%s: too large", name);
		return -1;
	}
	return parse_pem(ks, name, buf, len, err, errlen);
}

/* ---- files ---------------------------------------------------------------- */

/* Reads a whole regular file of at most JWKS_FILE_MAX bytes into *buf
 * (malloc'd, NUL added). 0, or -1 with err set. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t cap, n = 0;
	char *b = NULL;
	ssize_t r;
	int fd;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   /* a FIFO must not hold the loop */
	if (fd < 0) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > JWKS_FILE_MAX) {
		fail(err, errlen, "%s: larger than %d bytes", path, JWKS_FILE_MAX);
		goto fail;
	}
	/* The size may change under us: read until EOF, still within the cap. */
	cap = (size_t)st.st_size + 1;
	b = malloc(cap + 1);
	if (!b) {
		fail(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while ((r = read(fd, b + n, cap - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fail(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		n += (size_t)r;
		if (n == cap) {
			char *p;
			if (cap > JWKS_FILE_MAX) {
				fail(err, errlen, "%s: larger than %d bytes", path, JWKS_FILE_MAX);
				goto fail;
			}
			cap = cap * 2 > JWKS_FILE_MAX + 1 ? JWKS_FILE_MAX + 1 : cap * 2;
			p = realloc(b, cap + 1);
			if (!p) {
				fail(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			b = p;
		}
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
fail:
	free(b);
	close(fd);
	return -1;
}

int jwks_read_keys(struct jwks *ks, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	if (read_file(path, &buf, &len, err, errlen) < 0)
		return -1;
	rc = jwks_parse(ks, path, buf, len, err, errlen);
	free(buf);
	return rc;
}

int jwks_read_secret(struct jwks *ks, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;

	if (read_file(path, &buf, &len, err, errlen) < 0)
		return -1;
	/* One line ending, as an editor or `echo` leaves it; no other trimming:
	 * the secret is the bytes the token issuer holds. */
	if (len && buf[len - 1] == '\n')
		len -= 1 + (len > 1 && buf[len - 2] == '\r');
	if (!len) {
		free(buf);
		fail(err, errlen, "%s: empty secret", path);
		return -1;
	}
	if (ks->secret) {
		OPENSSL_cleanse(ks->secret, ks->secret_len);
		free(ks->secret);
	}
	ks->secret = (unsigned char *)buf;  /* ownership moves to ks */
	ks->secret_len = len;
	return 0;
}

void jwks_free(struct jwks *ks)
{
	truncate_keys(ks, 0);
	free(ks->keys);
	if (ks->secret) {
		OPENSSL_cleanse(ks->secret, ks->secret_len);
		free(ks->secret);
	}
	memset(ks, 0, sizeof(*ks));
}
