/* Checks that the OpenSSL we link (trimmed, for the static flavour) still
 * does what Kafka clients need: TLS 1.2 and 1.3 handshakes with RSA and EC
 * certificates, verified against a trust anchor, and PBKDF2/HMAC-SHA-2 for
 * SASL SCRAM. Client and server run in-process over a BIO pair: no network. */
#include <stdio.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static int fail(const char *what) {
    fprintf(stderr, "tls_smoke: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

static X509 *self_signed(EVP_PKEY *key) {
    X509 *x = X509_new();
    X509_NAME *n = X509_get_subject_name(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!X509_sign(x, key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* One handshake + one record each way at the given protocol version. */
static int handshake(EVP_PKEY *key, int version, const char *label) {
    X509 *cert = self_signed(key);
    if (!cert)
        return fail("X509_sign");
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(sctx, cert);
    SSL_CTX_use_PrivateKey(sctx, key);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), cert);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);

    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *sb, *cb;
    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "localhost");
    SSL_set1_host(c, "localhost");

    int done_c = 0, done_s = 0, rc = 1;
    for (int i = 0; i < 100 && !(done_c && done_s); i++) {
        if (!done_c)
            done_c = SSL_do_handshake(c) == 1;
        if (!done_s)
            done_s = SSL_do_handshake(s) == 1;
    }
    char buf[16] = {0};
    if (done_c && done_s && SSL_write(c, "ping", 4) == 4 &&
        SSL_read(s, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0 &&
        SSL_get_verify_result(c) == X509_V_OK) {
        printf("tls: %s %s %s ok\n", label, SSL_get_version(c),
               SSL_get_cipher_name(c));
        rc = 0;
    } else {
        fail(label);
    }
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    X509_free(cert);
    return rc;
}

int main(void) {
    /* PBKDF2-HMAC-SHA256("password", "salt", 1): RFC 7914 section 11. */
    static const unsigned char want[8] = {0x12, 0x0f, 0xb6, 0xcf,
                                          0xfc, 0xf8, 0xb3, 0x2c};
    unsigned char out[64];
    if (!PKCS5_PBKDF2_HMAC("password", 8, (const unsigned char *)"salt", 4, 1,
                           EVP_sha256(), 8, out) ||
        memcmp(out, want, 8) != 0)
        return fail("PBKDF2-HMAC-SHA256");
    if (!PKCS5_PBKDF2_HMAC("password", 8, (const unsigned char *)"salt", 4,
                           4096, EVP_sha512(), 64, out))
        return fail("PBKDF2-HMAC-SHA512");
    printf("scram: pbkdf2/hmac sha256 sha512 ok\n");

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    if (!ec || !rsa)
        return fail("key generation");
    int rc = handshake(ec, TLS1_3_VERSION, "ec") |
             handshake(ec, TLS1_2_VERSION, "ec") |
             handshake(rsa, TLS1_3_VERSION, "rsa") |
             handshake(rsa, TLS1_2_VERSION, "rsa");
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    return rc;
}
