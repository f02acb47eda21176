/* test_jwt.c - JWT verification (jwt.h) against tokens and keys minted by
 * PyJWT and `cryptography` (tests/unit/jwt/mint.py; nothing here signs).
 * Every algorithm with its key, another key of the same type (signature)
 * and a key of another type (algorithm); the key forms (PEM, PKCS #1,
 * certificate, bundles, JWKS with kid and alg); tampered payloads and
 * signatures; ECDSA signatures of the wrong length or in DER; PSS salt and
 * MGF1; alg none and algorithm confusion (an HS256 token keyed with the RSA
 * public key's PEM); the time claims at their leeway boundaries; aud, iss,
 * claim types and sub; malformed forms of each part; every prefix of a good
 * token; key loading and its one-line errors. Each case checks the exact
 * reason, and that *out is untouched unless the token is good.
 * Run from the repository root (tests/run.sh does). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "jwt.h"

#define DIR "tests/unit/jwt/"
#define NOW 1800000000    /* mint.py's EDGE: 2027-01-15 */
#define EXP_FAR 4102444800

/* ---- fixtures ---------------------------------------------------------- */

static char *names[256], *toks[256];
static int ntoks;

static void load_tokens(void)
{
	FILE *f = fopen(DIR "tokens.txt", "r");
	char line[JWT_MAX_LEN + 512];

	if (!f) {
		fprintf(stderr, "test_jwt: cannot open " DIR "tokens.txt (run from the repository root)\n");
		exit(1);
	}
	while (fgets(line, sizeof(line), f) && ntoks < 256) {
		char *sp = strchr(line, ' ');
		line[strcspn(line, "\n")] = '\0';
		if (!sp)
			continue;
		*sp = '\0';
		names[ntoks] = strdup(line);
		toks[ntoks++] = strdup(sp + 1);
	}
	fclose(f);
}

static const char *tok(const char *name)
{
	int i;

	for (i = 0; i < ntoks; i++)
		if (!strcmp(names[i], name))
			return toks[i];
	fprintf(stderr, "test_jwt: no token %s in " DIR "tokens.txt (rerun mint.py)\n", name);
	exit(1);
}

static struct jwt_keys *keys(const char *key, const char *secret)
{
	char kp[256], sp[256], err[512] = "";
	struct jwt_keys *k;

	snprintf(kp, sizeof(kp), DIR "%s", key ? key : "");
	snprintf(sp, sizeof(sp), DIR "%s", secret ? secret : "");
	k = jwt_keys_load(key ? kp : NULL, secret ? sp : NULL, err, sizeof(err));
	if (!k) {
		fprintf(stderr, "test_jwt: cannot load %s %s: %s\n", key ? key : "-", secret ? secret : "-", err);
		exit(1);
	}
	return k;
}

/* ---- verifying ----------------------------------------------------------- */

static struct jwt_check chk = { "kbridge", "https://issuer.test", 30, NOW };

/* jwt_verify over an exact-size copy (ASan sees any read past len), with
 * *out poisoned: untouched unless JWT_OK. Returns the reason; on JWT_OK the
 * claims stay in *out for the caller to inspect and free, else *out is
 * zeroed. */
static enum jwt_error verify_raw(const struct jwt_keys *k, const char *t, size_t n,
				 const struct jwt_check *c, struct jwt_claims *out)
{
	char *copy = malloc(n ? n : 1);
	struct jwt_claims poison;
	enum jwt_error e;

	if (!copy)
		abort();
	memcpy(copy, t, n);
	memset(out, 0x5a, sizeof(*out));
	memset(&poison, 0x5a, sizeof(poison));
	e = jwt_verify(k, copy, n, c, out);
	if (e != JWT_OK) {
		CHECKF(memcmp(out, &poison, sizeof(poison)) == 0, "*out changed on %s", jwt_error_name(e));
		memset(out, 0, sizeof(*out));  /* so a failed case's jwt_claims_free is harmless */
	}
	free(copy);
	return e;
}

static void expect_with(const struct jwt_keys *k, const char *name, const struct jwt_check *c,
			enum jwt_error want, int line)
{
	const char *t = tok(name);
	struct jwt_claims out;
	enum jwt_error e = verify_raw(k, t, strlen(t), c, &out);

	CHECKF(e == want, "line %d: %s gave %s, want %s", line, name, jwt_error_name(e), jwt_error_name(want));
	if (e == JWT_OK) {
		CHECKF(out.payload && out.payload[0] == '{' && strlen(out.payload) == out.payload_len,
		       "line %d: %s: payload not a NUL-terminated object", line, name);
		jwt_claims_free(&out);
		CHECK(out.payload == NULL);
	}
}
#define EXPECT(k, name, want) expect_with(k, name, &chk, want, __LINE__)
#define EXPECT_AT(k, name, now, want) do { \
	struct jwt_check c_ = chk; c_.now_s = (now); expect_with(k, name, &c_, want, __LINE__); \
} while (0)

/* ---- tests --------------------------------------------------------------- */

static void test_error_names(void)
{
	static const char *want[JWT_NERRORS] = {
		"ok", "malformed", "algorithm", "unknown_key", "signature", "expired",
		"not_yet_valid", "missing_exp", "audience", "issuer", "no_memory",
	};
	int i;

	for (i = 0; i < JWT_NERRORS; i++)
		CHECKF(!strcmp(jwt_error_name((enum jwt_error)i), want[i]), "%d is %s", i, jwt_error_name((enum jwt_error)i));
	CHECK(!strcmp(jwt_error_name(JWT_NERRORS), "unknown"));
	CHECK(!strcmp(jwt_error_name((enum jwt_error)-1), "unknown"));
}

/* Each algorithm: its own key verifies and fills the claims; another key
 * of the same type is a bad signature; a key of another type does not fit. */
static void test_algorithms(void)
{
	static const struct { const char *name, *alg, *key, *other, *foreign; } cases[] = {
		{ "hs256", "HS256", NULL, NULL, "rsa.pem" },
		{ "hs384", "HS384", NULL, NULL, "ec384.pem" },
		{ "hs512", "HS512", NULL, NULL, "ed25519.pem" },
		{ "rs256", "RS256", "rsa.pem", "rsa_other.pem", "ec256.pem" },
		{ "rs384", "RS384", "rsa.pem", "rsa_other.pem", "ed25519.pem" },
		{ "rs512", "RS512", "rsa.pem", "rsa_other.pem", "ec521.pem" },
		{ "ps256", "PS256", "rsa.pem", "rsa_other.pem", "ec256.pem" },
		{ "ps384", "PS384", "rsa.pem", "rsa_other.pem", "ec384.pem" },
		{ "ps512", "PS512", "rsa.pem", "rsa_other.pem", "ed25519.pem" },
		{ "es256", "ES256", "ec256.pem", "ec256_other.pem", "ec384.pem" },
		{ "es384", "ES384", "ec384.pem", "ec384_other.pem", "ec521.pem" },
		{ "es512", "ES512", "ec521.pem", "ec521_other.pem", "ec256.pem" },
		{ "eddsa", "EdDSA", "ed25519.pem", "ed25519_other.pem", "rsa.pem" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int hs = cases[i].key == NULL;
		struct jwt_keys *good = hs ? keys(NULL, "secret.txt") : keys(cases[i].key, NULL);
		struct jwt_keys *other = hs ? keys(NULL, "secret_other.txt") : keys(cases[i].other, NULL);
		struct jwt_keys *foreign = keys(cases[i].foreign, NULL);
		const char *t = tok(cases[i].name);
		char sub[32];
		struct jwt_claims out;
		enum jwt_error e;

		e = verify_raw(good, t, strlen(t), &chk, &out);
		CHECKF(e == JWT_OK, "%s with its key: %s", cases[i].name, jwt_error_name(e));
		if (e == JWT_OK) {
			snprintf(sub, sizeof(sub), "user-%s", cases[i].alg);
			CHECKF(!strcmp(out.sub, sub), "%s: sub %s", cases[i].name, out.sub);
			CHECK(out.exp == EXP_FAR && out.nbf == 0);
			CHECK(out.payload_len == strlen(out.payload) && out.payload[0] == '{');
			snprintf(sub, sizeof(sub), "\"sub\":\"user-%s\"", cases[i].alg);
			CHECKF(strstr(out.payload, sub) && strstr(out.payload, "\"kbridge\":{\"channels\":[\"prices.*\"]}"),
			       "%s: payload %s", cases[i].name, out.payload);
			jwt_claims_free(&out);
		}
		expect_with(other, cases[i].name, &chk, JWT_SIGNATURE, __LINE__);
		expect_with(foreign, cases[i].name, &chk, JWT_ALGORITHM, __LINE__);
		jwt_keys_free(good);
		jwt_keys_free(other);
		jwt_keys_free(foreign);
	}
}

static void test_key_forms(void)
{
	struct jwt_keys *k = keys("rsa_pkcs1.pem", NULL);
	EXPECT(k, "rs256", JWT_OK);
	EXPECT(k, "ps512", JWT_OK);
	CHECK(jwt_keys_count(k) == 1 && jwt_keys_skipped(k) == 0);
	jwt_keys_free(k);

	k = keys("rsa.crt", NULL);
	EXPECT(k, "rs384", JWT_OK);
	EXPECT(k, "ps256", JWT_OK);
	EXPECT(k, "es256", JWT_ALGORITHM);
	jwt_keys_free(k);

	/* A bundle: certificate, three curves, Ed25519, text between. */
	k = keys("all.pem", NULL);
	CHECK(jwt_keys_count(k) == 5);
	EXPECT(k, "rs256", JWT_OK);
	EXPECT(k, "ps384", JWT_OK);
	EXPECT(k, "es256", JWT_OK);
	EXPECT(k, "es384", JWT_OK);
	EXPECT(k, "es512", JWT_OK);
	EXPECT(k, "eddsa", JWT_OK);
	EXPECT(k, "es256_other", JWT_SIGNATURE);
	EXPECT(k, "hs256", JWT_ALGORITHM);      /* no secret: a public key is never one */
	/* PEM keys have no kid: a token naming one is tried against every
	 * key of its type (issuers name a kid in every token). */
	EXPECT(k, "rs256_kid", JWT_OK);
	EXPECT(k, "es256_kid", JWT_OK);
	jwt_keys_free(k);

	/* Keys and a secret together: each token goes to its own kind. */
	k = keys("all.pem", "secret.txt");
	CHECK(jwt_keys_count(k) == 6);
	EXPECT(k, "hs512", JWT_OK);
	EXPECT(k, "rs512", JWT_OK);
	EXPECT(k, "eddsa", JWT_OK);
	jwt_keys_free(k);
}

static void test_jwks(void)
{
	struct jwt_keys *k = keys("jwks.json", NULL);

	/* 7 usable; oct, "use":"enc", secp256k1 and X25519 skipped. */
	CHECK(jwt_keys_count(k) == 7);
	CHECK(jwt_keys_skipped(k) == 4);
	EXPECT(k, "rs256_kid", JWT_OK);
	EXPECT(k, "ps384_kid", JWT_OK);
	EXPECT(k, "ps256_kidps", JWT_OK);          /* the JWK's alg is PS256 */
	EXPECT(k, "rs256_kidps", JWT_ALGORITHM);   /* same key, but the JWK says PS256 */
	EXPECT(k, "es256_kid", JWT_OK);
	EXPECT(k, "es384_kid", JWT_OK);
	EXPECT(k, "es512_kid", JWT_OK);
	EXPECT(k, "es512_short_kid", JWT_OK);      /* x written without its leading zero byte */
	EXPECT(k, "eddsa_kid", JWT_OK);
	EXPECT(k, "rs256_kid_ec", JWT_ALGORITHM);  /* the kid names an EC key */
	EXPECT(k, "rs256_kid_unknown", JWT_UNKNOWN_KEY);
	EXPECT(k, "rs256_kid_enc", JWT_UNKNOWN_KEY); /* that key was skipped */
	EXPECT(k, "es256_kid_wrong", JWT_SIGNATURE);
	EXPECT(k, "hs256_kid", JWT_ALGORITHM);     /* the "oct" JWK is no secret */
	/* Without a kid every fitting key is tried. */
	EXPECT(k, "rs256", JWT_OK);
	EXPECT(k, "ps256", JWT_OK);
	EXPECT(k, "es256", JWT_OK);
	EXPECT(k, "es512", JWT_OK);
	EXPECT(k, "eddsa", JWT_OK);
	EXPECT(k, "es256_other", JWT_SIGNATURE);
	EXPECT(k, "hs256", JWT_ALGORITHM);
	jwt_keys_free(k);

	/* With a secret too: the secret has no kid, so a token's kid does
	 * not keep it from the secret. */
	k = keys("jwks.json", "secret.txt");
	CHECK(jwt_keys_count(k) == 8);
	EXPECT(k, "hs256", JWT_OK);
	EXPECT(k, "hs256_kid", JWT_OK);
	EXPECT(k, "rs256_kid", JWT_OK);
	jwt_keys_free(k);
}

static void test_tampered(void)
{
	struct jwt_keys *k = keys("all.pem", "secret.txt");
	static const char *names_[] = { "hs256", "rs256", "ps256", "es256", "es512", "eddsa" };
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(names_) / sizeof(names_[0]); i++) {
		EXPECT(k, names_[i], JWT_OK);  /* the control */
		snprintf(name, sizeof(name), "%s_payload", names_[i]);
		expect_with(k, name, &chk, JWT_SIGNATURE, __LINE__);
		snprintf(name, sizeof(name), "%s_sig", names_[i]);
		expect_with(k, name, &chk, JWT_SIGNATURE, __LINE__);
	}
	/* RFC 7518 §3.4: r || s, 64 bytes for P-256, nothing else. */
	EXPECT(k, "es256_short", JWT_SIGNATURE);
	EXPECT(k, "es256_long", JWT_SIGNATURE);
	EXPECT(k, "es256_zero_pad", JWT_SIGNATURE);
	EXPECT(k, "es256_der", JWT_SIGNATURE);    /* valid, but DER is not the JWS form */
	EXPECT(k, "es256_sig96", JWT_SIGNATURE);
	/* RFC 7518 §3.5: salt as long as the hash, MGF1 with the same hash. */
	EXPECT(k, "ps256_saltmax", JWT_SIGNATURE);
	EXPECT(k, "ps256_mgf1_sha1", JWT_SIGNATURE);
	EXPECT(k, "rs256_pss", JWT_SIGNATURE);    /* RS256 means PKCS #1 v1.5 */
	/* A key in the header is never used. */
	EXPECT(k, "header_jwk", JWT_SIGNATURE);
	jwt_keys_free(k);
}

static void test_confusion(void)
{
	struct jwt_keys *k = keys("rsa.pem", NULL);

	/* HS256 keyed with the RSA key's PEM text: no secret, so no HS at all. */
	EXPECT(k, "hs256_rsa_pem", JWT_ALGORITHM);
	EXPECT(k, "alg_none", JWT_ALGORITHM);
	EXPECT(k, "alg_none_sig", JWT_ALGORITHM);
	EXPECT(k, "alg_none_upper", JWT_ALGORITHM);
	EXPECT(k, "alg_lower", JWT_ALGORITHM);
	EXPECT(k, "alg_unknown", JWT_ALGORITHM);
	EXPECT(k, "alg_es256k", JWT_ALGORITHM);
	jwt_keys_free(k);
	/* With a secret: only the secret's bytes are tried, never the PEM. */
	k = keys("rsa.pem", "secret_other.txt");
	EXPECT(k, "hs256_rsa_pem", JWT_SIGNATURE);
	EXPECT(k, "alg_none", JWT_ALGORITHM);
	EXPECT(k, "rs256", JWT_OK);
	jwt_keys_free(k);
	k = keys(NULL, "secret.txt");
	EXPECT(k, "alg_none", JWT_ALGORITHM);
	EXPECT(k, "alg_none_sig", JWT_ALGORITHM);
	EXPECT(k, "alg_lower", JWT_ALGORITHM);
	EXPECT(k, "rs256", JWT_ALGORITHM);
	EXPECT(k, "es256", JWT_ALGORITHM);
	jwt_keys_free(k);
}

static void test_time(void)
{
	struct jwt_keys *k = keys("rsa.pem", "secret.txt");
	struct jwt_claims out;
	struct jwt_check c = chk;
	const char *t;

	EXPECT(k, "expired", JWT_EXPIRED);
	EXPECT(k, "rs256_expired", JWT_EXPIRED);
	EXPECT_AT(k, "expired", 1700000000 - 1000, JWT_OK);
	/* exp = NOW: valid until exp + leeway, exclusive (RFC 7519 §4.1.4). */
	EXPECT_AT(k, "edge", NOW + 29, JWT_OK);
	EXPECT_AT(k, "edge", NOW + 30, JWT_EXPIRED);
	c.leeway_s = 0;
	expect_with(k, "edge", &c, JWT_EXPIRED, __LINE__);
	c.now_s = NOW - 1;
	expect_with(k, "edge", &c, JWT_OK, __LINE__);
	/* nbf = NOW - 1000: valid from nbf - leeway, inclusive (RFC 7519 §4.1.5). */
	EXPECT_AT(k, "edge", NOW - 1030, JWT_OK);
	EXPECT_AT(k, "edge", NOW - 1031, JWT_NOT_YET_VALID);
	c.now_s = NOW - 1000;
	expect_with(k, "edge", &c, JWT_OK, __LINE__);
	c.now_s = NOW - 1001;
	expect_with(k, "edge", &c, JWT_NOT_YET_VALID, __LINE__);
	/* A negative leeway counts as none. */
	c.leeway_s = -100;
	c.now_s = NOW - 1;
	expect_with(k, "edge", &c, JWT_OK, __LINE__);
	EXPECT(k, "nbf_future", JWT_NOT_YET_VALID);
	EXPECT_AT(k, "nbf_future", 1900000000 - 30, JWT_OK);
	EXPECT(k, "exp_missing", JWT_MISSING_EXP);
	EXPECT_AT(k, "exp_missing", 0, JWT_MISSING_EXP);
	/* Fractions: exp rounds down, nbf up. */
	c = chk;
	c.audience = c.issuer = NULL;
	t = tok("exp_fraction");
	CHECK(verify_raw(k, t, strlen(t), &c, &out) == JWT_OK);
	CHECK(out.exp == EXP_FAR && out.nbf == 1500000001 && out.sub[0] == '\0');
	jwt_claims_free(&out);
	t = tok("exp_huge");
	CHECK(verify_raw(k, t, strlen(t), &c, &out) == JWT_OK);
	CHECK(out.exp == INT64_MAX);
	jwt_claims_free(&out);
	c.now_s = INT64_MAX;
	c.leeway_s = INT64_MAX;
	expect_with(k, "exp_huge", &c, JWT_OK, __LINE__);   /* no overflow */
	expect_with(k, "hs256", &c, JWT_OK, __LINE__);      /* exp + leeway saturates */
	jwt_keys_free(k);
}

static void test_claims(void)
{
	struct jwt_keys *k = keys(NULL, "secret.txt");
	struct jwt_check open = chk;
	struct jwt_claims out;
	const char *t;
	size_t i;

	open.audience = open.issuer = NULL;
	EXPECT(k, "aud_wrong", JWT_AUDIENCE);
	EXPECT(k, "aud_array", JWT_OK);
	EXPECT(k, "aud_array_wrong", JWT_AUDIENCE);
	EXPECT(k, "aud_missing", JWT_AUDIENCE);
	EXPECT(k, "aud_number", JWT_MALFORMED);
	EXPECT(k, "aud_array_number", JWT_MALFORMED);
	EXPECT(k, "iss_wrong", JWT_ISSUER);
	EXPECT(k, "iss_missing", JWT_ISSUER);
	EXPECT(k, "iss_number", JWT_MALFORMED);
	EXPECT(k, "exp_string", JWT_MALFORMED);
	EXPECT(k, "exp_null", JWT_MALFORMED);
	EXPECT(k, "nbf_string", JWT_MALFORMED);
	EXPECT(k, "sub_number", JWT_MALFORMED);
	/* aud and iss are read only when configured. */
	expect_with(k, "aud_wrong", &open, JWT_OK, __LINE__);
	expect_with(k, "aud_missing", &open, JWT_OK, __LINE__);
	expect_with(k, "aud_number", &open, JWT_OK, __LINE__);
	expect_with(k, "iss_wrong", &open, JWT_OK, __LINE__);
	expect_with(k, "iss_number", &open, JWT_OK, __LINE__);
	/* Escapes compare by their meaning: "kbr\u0069dge" is "kbridge". */
	EXPECT(k, "aud_escaped", JWT_OK);
	/* Checked in order: time before audience before issuer. */
	{
		struct jwt_check c = chk;
		c.audience = "someone-else";
		c.issuer = "nobody";
		expect_with(k, "expired", &c, JWT_EXPIRED, __LINE__);
		expect_with(k, "hs256", &c, JWT_AUDIENCE, __LINE__);
		c.audience = "kbridge";
		expect_with(k, "hs256", &c, JWT_ISSUER, __LINE__);
	}

	t = tok("sub_absent");
	CHECK(verify_raw(k, t, strlen(t), &chk, &out) == JWT_OK && out.sub[0] == '\0');
	jwt_claims_free(&out);
	t = tok("sub_escaped");
	CHECK(verify_raw(k, t, strlen(t), &open, &out) == JWT_OK);
	CHECKF(!strcmp(out.sub, "caf\xc3\xa9 \"x\""), "sub %s", out.sub);
	jwt_claims_free(&out);
	/* 254 'a', then a two-byte character across the 255-byte cut: it goes. */
	t = tok("sub_long");
	CHECK(verify_raw(k, t, strlen(t), &chk, &out) == JWT_OK);
	CHECKF(strlen(out.sub) == 254, "sub is %zu bytes", strlen(out.sub));
	for (i = 0; i < 254 && out.sub[i] == 'a'; i++)
		;
	CHECK(i == 254);
	CHECK(strstr(out.payload, "bbbb") != NULL);   /* the payload keeps it whole */
	jwt_claims_free(&out);
	jwt_claims_free(NULL);
	jwt_keys_free(k);
}

static void test_malformed(void)
{
	static const char *bad[] = {
		"two_parts", "four_parts", "empty_parts", "header_padded", "payload_padded",
		"sig_padded", "header_plus", "payload_slash", "sig_space", "header_lone_char",
		"header_bits", "payload_not_json", "payload_trailing", "payload_array",
		"payload_bad_utf8", "header_array", "header_string", "header_not_json",
		"header_no_alg", "header_alg_number", "header_alg_null", "header_kid_number",
		"header_crit", "header_b64_false", "header_deep", "jwe",
	};
	struct jwt_keys *k = keys("all.pem", "secret.txt");
	struct jwt_claims out;
	char *big;
	size_t i, n;
	const char *t;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_with(k, bad[i], &chk, JWT_MALFORMED, __LINE__);
	EXPECT(k, "header_bits_control", JWT_OK);   /* the same token with canonical bits */
	EXPECT(k, "empty_sig", JWT_SIGNATURE);
	/* Malformed comes before algorithm. */
	CHECK(verify_raw(k, "eyJhbGciOiJub25lIn0.W10.", 24, &chk, &out) == JWT_MALFORMED);   /* none, [] */
	CHECK(verify_raw(k, "eyJhbGciOiJub25lIn0.e30.", 24, &chk, &out) == JWT_ALGORITHM);   /* none, {} */
	CHECK(verify_raw(k, "", 0, &chk, &out) == JWT_MALFORMED);
	CHECK(jwt_verify(k, NULL, 10, &chk, &out) == JWT_MALFORMED);
	CHECK(jwt_verify(NULL, tok("hs256"), strlen(tok("hs256")), &chk, &out) == JWT_MALFORMED);
	CHECK(verify_raw(k, "..", 2, &chk, &out) == JWT_MALFORMED);
	CHECK(verify_raw(k, ".", 1, &chk, &out) == JWT_MALFORMED);
	/* An embedded NUL is a bad byte, not an end. */
	t = tok("hs256");
	n = strlen(t);
	big = malloc(JWT_MAX_LEN + 2);
	if (!big)
		abort();
	memcpy(big, t, n);
	big[n] = '\0';
	CHECK(verify_raw(k, big, n + 1, &chk, &out) == JWT_MALFORMED);
	/* Every proper prefix fails without reading past its end. */
	for (i = 0; i < n; i++) {
		enum jwt_error e = verify_raw(k, t, i, &chk, &out);
		CHECKF(e == JWT_MALFORMED || e == JWT_SIGNATURE, "prefix %zu: %s", i, jwt_error_name(e));
	}
	t = tok("es512");
	n = strlen(t);
	for (i = 0; i < n; i++) {
		enum jwt_error e = verify_raw(k, t, i, &chk, &out);
		CHECKF(e == JWT_MALFORMED || e == JWT_SIGNATURE, "es512 prefix %zu: %s", i, jwt_error_name(e));
	}
	/* JWT_MAX_LEN: header.payload.<signature padded with 'A'>; at the limit
	 * the token is judged on its merits (a bad signature), one byte over it
	 * is malformed before anything is decoded. Lengths of 4k+1 are avoided:
	 * they are malformed base64url anyway. */
	{
		const char *d = strrchr(t, '.');
		size_t head = (size_t)(d - t) + 1;

		memcpy(big, t, head);
		memset(big + head, 'A', JWT_MAX_LEN + 2 - head);
		n = (JWT_MAX_LEN - head) % 4 == 1 ? JWT_MAX_LEN - 1 : JWT_MAX_LEN;
		CHECK(verify_raw(k, big, n, &chk, &out) == JWT_SIGNATURE);
		n = (JWT_MAX_LEN + 1 - head) % 4 == 1 ? JWT_MAX_LEN + 2 : JWT_MAX_LEN + 1;
		CHECK(verify_raw(k, big, n, &chk, &out) == JWT_MALFORMED);
	}
	free(big);
	jwt_keys_free(k);
}

static void load_fails(const char *key, const char *secret, const char *want1, const char *want2, int line)
{
	char kp[256], sp[256], err[512];
	struct jwt_keys *k;

	snprintf(kp, sizeof(kp), DIR "%s", key ? key : "");
	snprintf(sp, sizeof(sp), DIR "%s", secret ? secret : "");
	memset(err, 0, sizeof(err));
	k = jwt_keys_load(key ? kp : NULL, secret ? sp : NULL, err, sizeof(err));
	CHECKF(k == NULL, "line %d: %s %s loaded", line, key ? key : "-", secret ? secret : "-");
	jwt_keys_free(k);
	CHECKF(strstr(err, want1) && strstr(err, want2) && !strchr(err, '\n'),
	       "line %d: err \"%s\" lacks \"%s\" or \"%s\"", line, err, want1, want2);
}
#define LOAD_FAILS(key, secret, w1, w2) load_fails(key, secret, w1, w2, __LINE__)

static void test_loading(void)
{
	char path[] = "/tmp/test_jwt.XXXXXX", err[512];
	struct jwt_keys *k;
	char *big;
	int fd;

	LOAD_FAILS("missing.pem", NULL, "missing.pem", "No such file");
	LOAD_FAILS("garbage.txt", NULL, "garbage.txt", "neither");
	LOAD_FAILS("rsa1024.pem", NULL, "rsa1024.pem", "2048");
	LOAD_FAILS("eck1.pem", NULL, "eck1.pem", "curve");
	LOAD_FAILS("private.pem", NULL, "private.pem", "private key");
	LOAD_FAILS("truncated.pem", NULL, "truncated.pem", "does not decode");
	LOAD_FAILS("not_json.json", NULL, "not_json.json", "not JSON");
	LOAD_FAILS("jwks_nokeys.json", NULL, "jwks_nokeys.json", "\"keys\"");
	LOAD_FAILS("jwks_unusable.json", NULL, "jwks_unusable.json", "no usable key (2 skipped)");
	LOAD_FAILS("jwks_rsa1024.json", NULL, "jwks_rsa1024.json", "key 0: RSA key shorter than 2048");
	LOAD_FAILS("jwks_private.json", NULL, "jwks_private.json", "private key");
	LOAD_FAILS("jwks_offcurve.json", NULL, "jwks_offcurve.json", "refuses");
	LOAD_FAILS("jwks_padded.json", NULL, "jwks_padded.json", "base64url");
	LOAD_FAILS("", NULL, DIR, "not a regular file");      /* the directory */
	LOAD_FAILS(NULL, "secret_empty.txt", "secret_empty.txt", "empty");
	LOAD_FAILS(NULL, "missing.txt", "missing.txt", "No such file");
	/* A good key file and a bad secret: nothing is loaded. */
	LOAD_FAILS("rsa.pem", "secret_empty.txt", "secret_empty.txt", "empty");
	LOAD_FAILS("garbage.txt", "secret.txt", "garbage.txt", "neither");
	LOAD_FAILS(NULL, NULL, "no key file", "secret");

	/* Over 1 MiB: refused before parsing. */
	fd = mkstemp(path);
	big = calloc(1, 1024 * 1024 + 1);
	if (fd < 0 || !big)
		abort();
	memset(big, ' ', 1024 * 1024 + 1);
	CHECK(write(fd, big, 1024 * 1024 + 1) == 1024 * 1024 + 1);
	close(fd);
	k = jwt_keys_load(path, NULL, err, sizeof(err));
	CHECKF(!k && strstr(err, path) && strstr(err, "larger"), "err %s", err);
	k = jwt_keys_load(NULL, path, err, sizeof(err));
	CHECKF(!k && strstr(err, "larger"), "err %s", err);
	unlink(path);
	free(big);
	/* A tiny err buffer is cut, never overrun. */
	memset(err, 'x', sizeof(err));
	CHECK(jwt_keys_load(DIR "garbage.txt", NULL, err, 8) == NULL && err[7] == '\0' && err[8] == 'x');

	/* Secrets: one line ending goes, not two; "\r\n" counts as one. */
	k = keys(NULL, "secret_crlf.txt");
	CHECK(jwt_keys_count(k) == 1);
	EXPECT(k, "hs256_crlf", JWT_OK);
	jwt_keys_free(k);
	k = keys(NULL, "secret_nl.txt");
	EXPECT(k, "hs256_nl", JWT_OK);
	EXPECT(k, "hs256_crlf", JWT_SIGNATURE);
	jwt_keys_free(k);
	CHECK(jwt_keys_count(NULL) == 0 && jwt_keys_skipped(NULL) == 0);
	jwt_keys_free(NULL);
}

int main(void)
{
	int i;

	load_tokens();
	test_error_names();
	test_algorithms();
	test_key_forms();
	test_jwks();
	test_tampered();
	test_confusion();
	test_time();
	test_claims();
	test_malformed();
	test_loading();
	for (i = 0; i < ntoks; i++) {
		free(names[i]);
		free(toks[i]);
	}
	return check_summary("jwt");
}
