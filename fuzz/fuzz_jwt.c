/* fuzz_jwt.c - libFuzzer target for jwt.c (and base64url, json_parse under
 * it): hostile tokens against a fixed key set, an HMAC secret and a P-256
 * key (tests/unit/jwt's secret.txt and ec256.pem, so mint.py's seeds
 * verify). An input holding a NUL byte is instead "header JSON \0 claims
 * JSON": this target encodes and signs it with HS256 itself, so the claims
 * checks behind a good signature are fuzzed too. Beyond "no crash, no
 * leak": the reason is a known one, a good token's claims are well formed
 * (JSON, sub UTF-8 and cut to fit, within exp and nbf), and dropping the
 * aud and iss checks never makes a token worse.
 * Build: make fuzz-build (links -lcrypto). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base64.h"
#include "json_parse.h"
#include "jwt.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names its line, then aborts so libFuzzer saves the input. */
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

#define NOW 1800000000
#define LEEWAY 30

static const char secret[] = "kbridge unit-test secret, 48 bytes long: 0123456";
static const char ec256_pem[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIjI83mhbEBcvrzn8v0/Bpas1O2of\n"
	"Hfbt5FoEYcrhZ1yWyFQAmgIguqnYX+mC7dqB5DQPws/69fxBFO0aKLyH3A==\n"
	"-----END PUBLIC KEY-----\n";

static struct jwt_keys *keys;

/* jwt_keys_load reads files: write both once, load, remove them. */
static void load_keys(void)
{
	char kp[] = "/tmp/fuzz_jwt_key.XXXXXX", sp[] = "/tmp/fuzz_jwt_secret.XXXXXX", err[256];
	int kf = mkstemp(kp), sf = mkstemp(sp);

	ASSERT(kf >= 0 && sf >= 0);
	ASSERT(write(kf, ec256_pem, strlen(ec256_pem)) == (ssize_t)strlen(ec256_pem));
	ASSERT(write(sf, secret, strlen(secret)) == (ssize_t)strlen(secret));
	close(kf);
	close(sf);
	keys = jwt_keys_load(kp, sp, err, sizeof(err));
	unlink(kp);
	unlink(sp);
	if (!keys)
		fprintf(stderr, "fuzz_jwt: %s\n", err);
	ASSERT(keys && jwt_keys_count(keys) == 2);
}

static enum jwt_error verify(const char *tok, size_t n, int checked)
{
	struct jwt_check chk = { "kbridge", "https://issuer.test", LEEWAY, NOW };
	struct jwt_claims c;
	enum jwt_error e;
	size_t sub;

	if (!checked)
		chk.audience = chk.issuer = NULL;
	e = jwt_verify(keys, tok, n, &chk, &c);
	ASSERT((unsigned)e < JWT_NERRORS && strcmp(jwt_error_name(e), "unknown"));
	if (e == JWT_OK) {
		/* Raw JSON text holds no NUL byte: the length is the string's. */
		ASSERT(c.payload && c.payload_len == strlen(c.payload));
		ASSERT(json_validate(c.payload, c.payload_len));
		sub = strlen(c.sub);
		ASSERT(sub < sizeof(c.sub) && utf8_valid(c.sub, sub));
		ASSERT(c.exp > INT64_MIN + LEEWAY && NOW < c.exp + (c.exp > INT64_MAX - LEEWAY ? 0 : LEEWAY));
		ASSERT(c.nbf <= NOW + LEEWAY);
		jwt_claims_free(&c);
	}
	return e;
}

/* Verifies tok with and without the aud and iss checks: fewer checks can
 * only turn audience and issuer into ok, nothing else changes. */
static void verify_both(const char *tok, size_t n)
{
	enum jwt_error strict = verify(tok, n, 1), loose = verify(tok, n, 0);

	if (strict == JWT_AUDIENCE || strict == JWT_ISSUER)
		ASSERT(loose == JWT_OK || loose == JWT_MALFORMED);
	else if (strict != JWT_MALFORMED)
		ASSERT(loose == strict);
}

/* Appends the base64url of in[0..n) at out, returns the length written. */
static size_t b64url(const void *in, size_t n, char *out)
{
	size_t m = base64_encode(in, n, out), i;

	while (m && out[m - 1] == '=')
		m--;
	for (i = 0; i < m; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t n, maclen = 0;
	char *tok;

	if (!keys)
		load_keys();
	if (!nul) {
		verify_both((const char *)data, size);
		return 0;
	}
	/* header \0 claims: header.claims.HS256-signature */
	tok = malloc(BASE64_ENCODED_LEN(size) + 8 + BASE64_ENCODED_LEN(EVP_MAX_MD_SIZE));
	ASSERT(tok != NULL);
	n = b64url(data, (size_t)(nul - data), tok);
	tok[n++] = '.';
	n += b64url(nul + 1, size - (size_t)(nul + 1 - data), tok + n);
	ASSERT(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
			 (const unsigned char *)tok, n, mac, sizeof(mac), &maclen) != NULL);
	tok[n++] = '.';
	n += b64url(mac, maclen, tok + n);
	verify_both(tok, n);
	free(tok);
	return 0;
}
