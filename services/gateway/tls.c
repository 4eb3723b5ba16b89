/*  tls: the gateway's OpenSSL configuration (PostgreSQL be-secure-openssl.c
 *  keeps TLS behind one file; so do we). TLS 1.2 and 1.3 only, AEAD cipher
 *  suites only, no renegotiation, no compression, server cipher preference,
 *  ALPN for HTTP/2 and HTTP/1.1.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bc_metrics.h"
#include "gateway.h"

/* Where failed handshakes are counted; set once, before any thread runs. */
static bc_counter_t *s_handshake_failures;

/* A fatal alert, sent or received, before the handshake finished is a
 * failed handshake (a TLS 1.1 client, no shared cipher, garbage). */
static void s_on_info(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) && (ret >> 8) == SSL3_AL_FATAL && !SSL_is_init_finished(ssl))
        bc_counter_add(s_handshake_failures, 1);
}

/* TLS 1.2 suites with forward secrecy and AEAD; TLS 1.3's are all AEAD. */
static const char s_tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char s_tls13_suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

static SSL_CTX *s_fail(SSL_CTX *ctx, bc_error_t *err, const char *what, const char *file)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    bc_error_set(err, BC_INVALID_ARGUMENT, "", "%s %s", what, file ? file : "");
    bc_error_detail(err, "%s", buf);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *gw_tls_new(const char *cert_file, const char *key_file,
                    bc_counter_t *handshake_failures, bc_error_t *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return s_fail(NULL, err, "cannot create TLS context", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, s_tls12_ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, s_tls13_suites) != 1)
        return s_fail(ctx, err, "cannot set cipher suites", NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        return s_fail(ctx, err, "cannot load TLS certificate", cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
        return s_fail(ctx, err, "cannot load TLS private key", key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return s_fail(ctx, err, "TLS private key does not match certificate", cert_file);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    s_handshake_failures = handshake_failures;
    if (handshake_failures)
        SSL_CTX_set_info_callback(ctx, s_on_info);
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}
