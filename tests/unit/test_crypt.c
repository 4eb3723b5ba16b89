/*  Unit tests for bc_crypt: AES-256-GCM known answers (McGrew-Viega test
 *  cases, also read back through an envelope), HMAC-SHA256 known answers
 *  (RFC 4231), envelope round trips, nonce uniqueness, tamper detection bit
 *  by bit, rotation and re-wrapping, key-file checks on temporary files,
 *  blind indexes, the identifier normalizer and deploy/gen-keys.sh.
 *  No database; temporary files live in one directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bc_crypt.h"
#include "bc_error.h"
#include "bc_util.h"

/* ---- Helpers ------------------------------------------------------------ */

static char s_dir[256]; /* this run's temporary directory */

/* Bytes from hex (test vectors). Returns the length. */
static size_t s_unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void s_assert_hex(const uint8_t *got, size_t n, const char *want_hex)
{
    char hex[1024];
    assert_true(2 * n < sizeof hex);
    bc_hex(got, n, hex);
    assert_string_equal(hex, want_hex);
}

/* Padded base64 (OpenSSL's encoder, independent of the one under test);
 * the result is a new string. */
static char *s_b64(const uint8_t *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* Decodes padded base64 into a new buffer; *n is the byte count. */
static uint8_t *s_unb64(const char *in, size_t *n)
{
    size_t len = strlen(in);
    uint8_t *out = malloc(len / 4 * 3 + 3);
    assert_non_null(out);
    int got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    assert_true(got >= 0);
    size_t pad = len >= 2 && in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    *n = (size_t)got - pad;
    return out;
}

/* 32 bytes first, first+1, ... as base64: distinct keys for the tests. */
static char s_keys[4][64];
#define KEY_A s_keys[0]
#define KEY_B s_keys[1]
#define KEY_I s_keys[2] /* index key */
#define KEY_J s_keys[3] /* another index key */

static void s_key_bytes(int which, uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(1 + 32 * which + i);
}

static bc_keyring_t *s_parse(const char *text)
{
    bc_error_t err = {0};
    bc_keyring_t *kr = bc_keyring_parse(text, strlen(text), "<test>", &err);
    if (!kr)
        fail_msg("keyring did not parse: %s", err.message);
    return kr;
}

/* Keyring with keys a and b (active as named) and index key I. */
static bc_keyring_t *s_keyring_ab(const char *active)
{
    char text[512];
    snprintf(text, sizeof text, "key a %s\nkey b %s\nactive %s\nindex %s\n", KEY_A, KEY_B, active,
             KEY_I);
    return s_parse(text);
}

static char *s_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    return path;
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The message and detail of err mention none of the test keys. */
static void s_assert_no_key_material(const bc_error_t *err)
{
    for (int i = 0; i < 4; i++) {
        char head[12];
        snprintf(head, sizeof head, "%.10s", s_keys[i]);
        assert_null(strstr(err->message, head));
        assert_null(strstr(err->detail, head));
    }
}

/* Writes text to a 0600 file, loads it, and checks the load fails with a
 * message containing want. */
static void s_assert_file_refused(const char *text, const char *want)
{
    char *path = s_path("bad.keys");
    s_write(path, text, 0600);
    bc_error_t err = {0};
    bc_keyring_t *kr = bc_keyring_load(path, &err);
    if (kr || !strstr(err.message, want))
        fail_msg("want refusal containing \"%s\", got %s \"%s\"", want, kr ? "a keyring" : "",
                 err.message);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_string_equal(err.field, "field_keys_file");
    assert_non_null(strstr(err.message, path));
    s_assert_no_key_material(&err);
    unlink(path);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int s_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/beacon-crypt.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir))
        return -1;
    for (int k = 0; k < 4; k++) {
        uint8_t key[32];
        s_key_bytes(k, key);
        EVP_EncodeBlock((unsigned char *)s_keys[k], key, 32);
    }
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    return nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- Known answers ------------------------------------------------------ */

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16
 * (the AES-256 ones; 96-bit IVs). */
static const struct {
    const char *key, *iv, *pt, *aad, *ct, *tag;
} s_gcm_vectors[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_gcm_known_answers(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof s_gcm_vectors / sizeof s_gcm_vectors[0]; v++) {
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16], back[64];
        s_unhex(s_gcm_vectors[v].key, key);
        s_unhex(s_gcm_vectors[v].iv, iv);
        size_t n = s_unhex(s_gcm_vectors[v].pt, pt);
        size_t an = s_unhex(s_gcm_vectors[v].aad, aad);
        assert_int_equal(bc_aes256gcm_seal(key, iv, aad, an, pt, n, ct, tag), 0);
        s_assert_hex(ct, n, s_gcm_vectors[v].ct);
        s_assert_hex(tag, 16, s_gcm_vectors[v].tag);
        assert_int_equal(bc_aes256gcm_open(key, iv, aad, an, ct, n, tag, back), 0);
        assert_memory_equal(back, pt, n);
        /* A wrong tag opens nothing, and the output is wiped. */
        tag[15] ^= 1;
        memset(back, 0x5a, sizeof back);
        assert_int_equal(bc_aes256gcm_open(key, iv, aad, an, ct, n, tag, back), -1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(back[i], 0);
    }
    /* In place (ct == pt), as the header allows. */
    uint8_t key[32], iv[12], buf[64], tag[16];
    s_unhex(s_gcm_vectors[2].key, key);
    s_unhex(s_gcm_vectors[2].iv, iv);
    size_t n = s_unhex(s_gcm_vectors[2].pt, buf);
    assert_int_equal(bc_aes256gcm_seal(key, iv, NULL, 0, buf, n, buf, tag), 0);
    s_assert_hex(buf, n, s_gcm_vectors[2].ct);
}

/* Test case 16 stored as an envelope: the format is plain AES-256-GCM
 * (nonce || ciphertext || tag, aad = the caller's bytes), so anything that
 * implements GCM can read it. */
static void test_gcm_vector_through_envelope(void **state)
{
    (void)state;
    uint8_t key[32], raw[12 + 60 + 16], pt[60];
    char aad[21];
    s_unhex(s_gcm_vectors[3].key, key);
    s_unhex(s_gcm_vectors[3].iv, raw);
    s_unhex(s_gcm_vectors[3].ct, raw + 12);
    s_unhex(s_gcm_vectors[3].tag, raw + 72);
    s_unhex(s_gcm_vectors[3].pt, pt);
    s_unhex(s_gcm_vectors[3].aad, (uint8_t *)aad); /* no zero byte in it */
    aad[20] = '\0';
    char *kb64 = s_b64(key, 32), *pb64 = s_b64(raw, sizeof raw);
    char text[256], env[256];
    snprintf(text, sizeof text, "key tc16 %s\nactive tc16\nindex %s\n", kb64, KEY_I);
    snprintf(env, sizeof env, "v1:tc16:%s", pb64);
    bc_keyring_t *kr = s_parse(text);
    char *out = NULL;
    size_t len = 0;
    bc_error_t err = {0};
    assert_int_equal(bc_field_decrypt(kr, env, aad, &out, &len, &err), 0);
    assert_int_equal(len, 60);
    assert_memory_equal(out, pt, 60);
    assert_int_equal(out[60], '\0');
    bc_field_plaintext_free(&out, len);
    assert_null(out);

    /* And the other way: our envelope opens with the bare primitive. */
    char *mine = NULL;
    assert_int_equal(bc_field_encrypt(kr, "ABC123", 6, "intake.clients.medicaid_id:x", &mine, &err),
                     0);
    assert_int_equal(strncmp(mine, "v1:tc16:", 8), 0);
    size_t rn = 0;
    uint8_t *r = s_unb64(mine + 8, &rn);
    assert_int_equal(rn, 12 + 6 + 16);
    uint8_t back[6];
    const char *a = "intake.clients.medicaid_id:x";
    assert_int_equal(bc_aes256gcm_open(key, r, a, strlen(a), r + 12, 6, r + 18, back), 0);
    assert_memory_equal(back, "ABC123", 6);
    free(r);
    free(mine);
    free(kb64);
    free(pb64);
    bc_keyring_destroy(&kr);
}

/* RFC 4231 test cases 1-4, 6 and 7 (HMAC-SHA-256). */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131], data[256], mac[32];
    size_t kn, dn;

    memset(key, 0x0b, 20);
    assert_int_equal(bc_hmac_sha256(key, 20, "Hi There", 8, mac), 0);
    s_assert_hex(mac, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    const char *d2 = "what do ya want for nothing?";
    assert_int_equal(bc_hmac_sha256("Jefe", 4, d2, strlen(d2), mac), 0);
    s_assert_hex(mac, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    assert_int_equal(bc_hmac_sha256(key, 20, data, 50, mac), 0);
    s_assert_hex(mac, 32, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    kn = s_unhex("0102030405060708090a0b0c0d0e0f10111213141516171819", key);
    memset(data, 0xcd, 50);
    assert_int_equal(bc_hmac_sha256(key, kn, data, 50, mac), 0);
    s_assert_hex(mac, 32, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

    memset(key, 0xaa, 131);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(bc_hmac_sha256(key, 131, d6, strlen(d6), mac), 0);
    s_assert_hex(mac, 32, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    const char *d7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the HMAC "
                     "algorithm.";
    dn = strlen(d7);
    assert_int_equal(bc_hmac_sha256(key, 131, d7, dn, mac), 0);
    s_assert_hex(mac, 32, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* ---- Envelopes ---------------------------------------------------------- */

static const char *s_aad = "intake.clients.medicaid_id:5f0c1e2a-3b4c-4d5e-8f60-718293a4b5c6";

static void s_round_trip(const bc_keyring_t *kr, const void *pt, size_t n)
{
    bc_error_t err = {0};
    char *env = NULL, *out = NULL;
    size_t len = 99;
    assert_int_equal(bc_field_encrypt(kr, pt, n, s_aad, &env, &err), 0);
    assert_non_null(env);
    /* v1:<active id>:<canonical base64 of nonce, ciphertext, tag> */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "v1:%s:", bc_keyring_active_id(kr));
    assert_int_equal(strncmp(env, prefix, strlen(prefix)), 0);
    const char *b64 = env + strlen(prefix);
    assert_int_equal(strlen(b64), 4 * ((n + 28 + 2) / 3));
    assert_true(strlen(env) <= BC_FIELD_ENVELOPE_LEN(n));
    assert_int_equal(
        strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
        strlen(b64));
    assert_int_equal(bc_field_decrypt(kr, env, s_aad, &out, &len, &err), 0);
    assert_int_equal(len, n);
    if (n)
        assert_memory_equal(out, pt, n);
    assert_int_equal(out[n], '\0');
    bc_field_plaintext_free(&out, len);
    free(env);
}

static void test_round_trip(void **state)
{
    (void)state;
    bc_keyring_t *kr = s_keyring_ab("a");
    s_round_trip(kr, "", 0);
    s_round_trip(kr, NULL, 0);
    s_round_trip(kr, "x", 1);
    s_round_trip(kr, "\0", 1);
    const char *utf8 = "Zoë Ångström — 日本語 🙂 (Medicaid: ÅB-12)";
    s_round_trip(kr, utf8, strlen(utf8));
    size_t big = 64 * 1024;
    uint8_t *buf = malloc(big);
    bc_random_bytes(buf, big);
    buf[0] = 0; /* zero bytes inside are fine */
    buf[big / 2] = 0;
    s_round_trip(kr, buf, big);
    s_round_trip(kr, buf, big - 1);
    free(buf);

    /* Too large, no plaintext pointer, no aad: refused, nothing returned. */
    bc_error_t err = {0};
    char *env = (char *)"untouched";
    assert_int_equal(
        bc_field_encrypt(kr, "x", (size_t)BC_FIELD_MAX_PLAINTEXT + 1, s_aad, &env, &err), -1);
    assert_null(env);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_int_equal(bc_field_encrypt(kr, NULL, 3, s_aad, &env, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_int_equal(bc_field_encrypt(kr, "x", 1, NULL, &env, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_int_equal(bc_field_encrypt(kr, "x", 1, "", &env, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_null(env);
    bc_keyring_destroy(&kr);
    assert_null(kr);
    bc_keyring_destroy(&kr);
    bc_keyring_destroy(NULL);
    bc_field_plaintext_free(NULL, 0);
}

static void test_nonces_differ(void **state)
{
    (void)state;
    bc_keyring_t *kr = s_keyring_ab("a");
    bc_error_t err = {0};
    enum { N = 200 };
    uint8_t nonces[N][12];
    char *first = NULL;
    for (int i = 0; i < N; i++) {
        char *env = NULL;
        assert_int_equal(bc_field_encrypt(kr, "123456789", 9, s_aad, &env, &err), 0);
        if (i == 0) {
            first = env;
        } else {
            assert_string_not_equal(env, first);
        }
        size_t rn;
        uint8_t *raw = s_unb64(env + 5, &rn);
        memcpy(nonces[i], raw, 12);
        free(raw);
        if (env != first)
            free(env);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_true(memcmp(nonces[i], nonces[j], 12) != 0);
    free(first);
    bc_keyring_destroy(&kr);
}

/* Decrypting env with aad must fail with code, returning no plaintext. */
static void s_assert_refused(const bc_keyring_t *kr, const char *env, const char *aad,
                             bc_code_t code)
{
    bc_error_t err = {0};
    char *out = (char *)"untouched";
    size_t len = 99;
    if (bc_field_decrypt(kr, env, aad, &out, &len, &err) != -1)
        fail_msg("envelope \"%.60s\" decrypted", env ? env : "(null)");
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(err.code, code);
    assert_null(strstr(err.message, "hello"));
    assert_null(strstr(err.detail, "hello"));
}

static char *s_envelope_of(const char *id, const uint8_t *raw, size_t n)
{
    char *b64 = s_b64(raw, n);
    size_t size = strlen(id) + strlen(b64) + 8;
    char *env = malloc(size);
    snprintf(env, size, "v1:%s:%s", id, b64);
    free(b64);
    return env;
}

static void test_tamper_detected(void **state)
{
    (void)state;
    bc_keyring_t *kr = s_keyring_ab("a");
    bc_error_t err = {0};
    char *env = NULL;
    assert_int_equal(bc_field_encrypt(kr, "hello", 5, s_aad, &env, &err), 0);
    size_t rn;
    uint8_t *raw = s_unb64(env + 5, &rn);
    assert_int_equal(rn, 12 + 5 + 16);

    /* Every single bit of nonce (0-11), ciphertext (12-16) and tag (17-32). */
    for (size_t bit = 0; bit < rn * 8; bit++) {
        raw[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        char *bad = s_envelope_of("a", raw, rn);
        s_assert_refused(kr, bad, s_aad, BC_DATA_LOSS);
        free(bad);
        raw[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* Truncated (to a valid shorter payload, to nonce and tag only, to less
     * than that) or extended. */
    for (size_t n = 0; n < rn; n++) {
        char *bad = s_envelope_of("a", raw, n);
        s_assert_refused(kr, bad, s_aad, BC_DATA_LOSS);
        free(bad);
    }
    uint8_t longer[64];
    memcpy(longer, raw, rn);
    memset(longer + rn, 0, 3);
    char *bad = s_envelope_of("a", longer, rn + 3);
    s_assert_refused(kr, bad, s_aad, BC_DATA_LOSS);
    free(bad);
    char cut[256];
    snprintf(cut, sizeof cut, "%.*s", (int)strlen(env) - 1, env);
    s_assert_refused(kr, cut, s_aad, BC_DATA_LOSS); /* not base64 any more */
    snprintf(cut, sizeof cut, "%s\n", env);
    s_assert_refused(kr, cut, s_aad, BC_DATA_LOSS);
    snprintf(cut, sizeof cut, " %s", env);
    s_assert_refused(kr, cut, s_aad, BC_DATA_LOSS);

    /* Wrong associated data: another row, another column, near misses. */
    s_assert_refused(kr, env, "intake.clients.medicaid_id:5f0c1e2a-3b4c-4d5e-8f60-718293a4b5c7",
                     BC_DATA_LOSS);
    s_assert_refused(kr, env, "intake.clients.ssn:5f0c1e2a-3b4c-4d5e-8f60-718293a4b5c6",
                     BC_DATA_LOSS);
    s_assert_refused(kr, env, "intake.clients.medicaid_id:5f0c1e2a-3b4c-4d5e-8f60-718293a4b5c",
                     BC_DATA_LOSS);
    s_assert_refused(kr, env, "intake.clients.medicaid_id:5f0c1e2a-3b4c-4d5e-8f60-718293a4b5c6 ",
                     BC_DATA_LOSS);
    s_assert_refused(kr, env, NULL, BC_INVALID_ARGUMENT);
    s_assert_refused(kr, env, "", BC_INVALID_ARGUMENT);

    /* Wrong key id: another key of the ring, an unknown one, malformed ones. */
    char *other = s_envelope_of("b", raw, rn);
    s_assert_refused(kr, other, s_aad, BC_DATA_LOSS);
    free(other);
    const char *ids[] = {"zz", "", "a b", "a/b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char *e = s_envelope_of(ids[i], raw, rn);
        s_assert_refused(kr, e, s_aad, BC_DATA_LOSS);
        free(e);
    }
    /* Unknown or malformed versions and framing. */
    const char *b64 = env + 5;
    const struct {
        const char *before, *after;
    } frames[] = {{"v2:a:", ""},   {"v0:a:", ""},  {"V1:a:", ""}, {"v10:a:", ""},
                  {"v1a:", ""},    {"v1:a", ""},   {"v1::", ""},  {"", ""},
                  {"v1:a:", "=="}, {"v1:a::", ""}, {"v1:a: ", ""}};
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        char e[256];
        snprintf(e, sizeof e, "%s%s%s", frames[i].before, b64, frames[i].after);
        s_assert_refused(kr, e, s_aad, BC_DATA_LOSS);
    }
    s_assert_refused(kr, "v1:a:", s_aad, BC_DATA_LOSS);
    s_assert_refused(kr, "", s_aad, BC_DATA_LOSS);
    s_assert_refused(kr, "v1", s_aad, BC_DATA_LOSS);
    s_assert_refused(kr, NULL, s_aad, BC_DATA_LOSS);

    /* Non-canonical base64: "hell" gives 32 bytes, so the payload ends in
     * one '=' and its last character carries two spare bits; "abc" gives 31
     * bytes, two '=' and four spare bits. Setting them decodes to the very
     * same bytes in a lenient decoder; refused here. */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *short_pts[] = {"hell", "abc"};
    for (int k = 0; k < 2; k++) {
        const char *pt = short_pts[k];
        size_t pad = (size_t)(k + 1), spare = k == 0 ? 3 : 15;
        char *env4 = NULL;
        assert_int_equal(bc_field_encrypt(kr, pt, strlen(pt), s_aad, &env4, &err), 0);
        size_t el = strlen(env4);
        assert_int_equal(strspn(env4 + el - pad, "="), pad);
        size_t last = el - pad - 1;
        size_t v = (size_t)(strchr(alpha, env4[last]) - alpha);
        assert_int_equal(v & spare, 0);
        char *loose = strdup(env4);
        for (size_t bit = 1; bit <= spare; bit <<= 1) {
            loose[last] = alpha[v | bit];
            s_assert_refused(kr, loose, s_aad, BC_DATA_LOSS);
        }
        free(loose);
        char *out4 = NULL;
        size_t len4 = 0;
        assert_int_equal(bc_field_decrypt(kr, env4, s_aad, &out4, &len4, &err), 0);
        assert_string_equal(out4, pt);
        bc_field_plaintext_free(&out4, len4);
        free(env4);
    }

    /* The original still decrypts after all that. */
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(bc_field_decrypt(kr, env, s_aad, &out, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    bc_field_plaintext_free(&out, len);
    free(raw);
    free(env);
    bc_keyring_destroy(&kr);
}

static void test_rotation(void **state)
{
    (void)state;
    bc_error_t err = {0};
    char text[512];
    /* Before: only key a. */
    snprintf(text, sizeof text, "key a %s\nactive a\nindex %s\n", KEY_A, KEY_I);
    bc_keyring_t *before = s_parse(text);
    /* After: b added and active, a kept. */
    bc_keyring_t *after = s_keyring_ab("b");
    /* Later: a removed. */
    snprintf(text, sizeof text, "key b %s\nactive b\nindex %s\n", KEY_B, KEY_I);
    bc_keyring_t *later = s_parse(text);
    assert_string_equal(bc_keyring_active_id(after), "b");
    assert_int_equal(bc_keyring_key_count(after), 2);

    char *env_a = NULL, *out = NULL;
    size_t len = 0;
    const char *note = "Met at the library; discussed housing referral.";
    assert_int_equal(bc_field_encrypt(before, note, strlen(note), s_aad, &env_a, &err), 0);
    assert_false(bc_field_needs_rewrap(before, env_a));
    assert_true(bc_field_needs_rewrap(after, env_a));
    assert_int_equal(bc_field_decrypt(after, env_a, s_aad, &out, &len, &err), 0);
    assert_string_equal(out, note);
    bc_field_plaintext_free(&out, len);

    /* Re-wrap under b; it then needs nothing and reads the same. */
    char *env_b = NULL;
    assert_int_equal(bc_field_rewrap(after, env_a, s_aad, &env_b, &err), 0);
    assert_int_equal(strncmp(env_b, "v1:b:", 5), 0);
    assert_false(bc_field_needs_rewrap(after, env_b));
    assert_int_equal(bc_field_decrypt(later, env_b, s_aad, &out, &len, &err), 0);
    assert_string_equal(out, note);
    bc_field_plaintext_free(&out, len);
    /* Re-wrapping checks the aad like any decryption. */
    char *none = (char *)"untouched";
    assert_int_equal(bc_field_rewrap(after, env_a, "intake.clients.ssn:x", &none, &err), -1);
    assert_null(none);
    assert_int_equal(err.code, BC_DATA_LOSS);

    /* The old ring does not know b; the newest no longer knows a. */
    s_assert_refused(before, env_b, s_aad, BC_DATA_LOSS);
    s_assert_refused(later, env_a, s_aad, BC_DATA_LOSS);
    assert_int_equal(bc_field_rewrap(later, env_a, s_aad, &none, &err), -1);
    assert_int_equal(err.code, BC_DATA_LOSS);
    assert_non_null(strstr(err.detail, "unknown key id 'a'"));

    /* needs_rewrap compares whole ids and is true for anything unreadable. */
    snprintf(text, sizeof text, "key a %s\nkey ab %s\nactive a\nindex %s\n", KEY_A, KEY_B, KEY_I);
    bc_keyring_t *prefix = s_parse(text);
    assert_true(bc_field_needs_rewrap(prefix, "v1:ab:AAAA"));
    assert_false(bc_field_needs_rewrap(prefix, "v1:a:AAAA"));
    assert_true(bc_field_needs_rewrap(prefix, "v1:a"));
    assert_true(bc_field_needs_rewrap(prefix, "v2:a:AAAA"));
    assert_true(bc_field_needs_rewrap(prefix, ""));
    assert_true(bc_field_needs_rewrap(prefix, NULL));

    free(env_a);
    free(env_b);
    bc_keyring_destroy(&prefix);
    bc_keyring_destroy(&before);
    bc_keyring_destroy(&after);
    bc_keyring_destroy(&later);
}

/* ---- Key files ---------------------------------------------------------- */

static void test_keyfile_loads(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof text,
             "# Beacon field keys\r\n"
             "\n"
             "   # indented comment\n"
             "key\told-1   %s\r\n"
             "  key new_2 %s  \n"
             "active new_2\n"
             "index %s", /* no final newline */
             KEY_A, KEY_B, KEY_I);
    char *path = s_path("good.keys");
    bc_error_t err = {0};
    const mode_t modes[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        s_write(path, text, modes[i]);
        bc_keyring_t *kr = bc_keyring_load(path, &err);
        if (!kr)
            fail_msg("mode %04o: %s", (unsigned)modes[i], err.message);
        assert_string_equal(bc_keyring_active_id(kr), "new_2");
        assert_int_equal(bc_keyring_key_count(kr), 2);
        bc_keyring_destroy(&kr);
    }
    unlink(path);
}

static void test_keyfile_file_checks(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text, "key a %s\nactive a\nindex %s\n", KEY_A, KEY_I);
    char *path = s_path("perm.keys");
    bc_error_t err = {0};
    /* Any access for group or others is refused, as ssh does. */
    const mode_t modes[] = {0644, 0640, 0604, 0660, 0620, 0602, 0601, 0610, 0666};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        s_write(path, text, modes[i]);
        assert_null(bc_keyring_load(path, &err));
        assert_int_equal(err.code, BC_FAILED_PRECONDITION);
        assert_non_null(strstr(err.message, "chmod 600"));
        s_assert_no_key_material(&err);
    }
    unlink(path);

    /* Missing, a directory, a FIFO (must not hang), empty path. */
    assert_null(bc_keyring_load(s_path("missing.keys"), &err));
    assert_non_null(strstr(err.message, "cannot open"));
    assert_null(bc_keyring_load(s_dir, &err));
    assert_non_null(strstr(err.message, "not a regular file"));
    char *fifo = s_path("fifo.keys");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(bc_keyring_load(fifo, &err));
    assert_non_null(strstr(err.message, "not a regular file"));
    unlink(fifo);
    assert_null(bc_keyring_load("", &err));
    assert_null(bc_keyring_load(NULL, &err));
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);

    /* Larger than 64 KiB (even if it is only comments). */
    size_t big = 65 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, '#', big);
    huge[big] = '\0';
    for (size_t i = 80; i < big; i += 80)
        huge[i] = '\n';
    s_write(path, huge, 0600);
    assert_null(bc_keyring_load(path, &err));
    assert_non_null(strstr(err.message, "larger than"));
    free(huge);

    /* Another user's file (only root can make one to test with). */
    if (geteuid() == 0) {
        s_write(path, text, 0600);
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_null(bc_keyring_load(path, &err));
        assert_non_null(strstr(err.message, "belongs to uid 65534"));
    }
    unlink(path);
}

static void test_keyfile_content_checks(void **state)
{
    (void)state;
    char t[1024];
    uint8_t raw[48];

    /* Not base64; non-canonical base64 (spare bits set); short; long. */
    snprintf(t, sizeof t, "key a %s\nkey b !!notbase64!!\nactive a\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 2: key 'b' is not valid base64");
    char noncanon[64];
    snprintf(noncanon, sizeof noncanon, "%s", KEY_B);
    noncanon[42] = noncanon[42] == 'B' ? 'C' : 'B'; /* 43rd char keeps 2 spare bits */
    snprintf(t, sizeof t, "key a %s\nkey b %s\nactive a\nindex %s\n", KEY_A, noncanon, KEY_I);
    s_assert_file_refused(t, "line 2: key 'b' is not valid base64");
    snprintf(t, sizeof t, "key a %.43s\nactive a\nindex %s\n", KEY_A, KEY_I); /* no padding */
    s_assert_file_refused(t, "line 1: key 'a' is not valid base64");
    memset(raw, 7, sizeof raw);
    char *k16 = s_b64(raw, 16), *k31 = s_b64(raw, 31), *k33 = s_b64(raw, 33), *k48 = s_b64(raw, 48);
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", k16, KEY_I);
    s_assert_file_refused(t, "line 1: key 'a' is 16 bytes, must be 32");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", k31, KEY_I);
    s_assert_file_refused(t, "key 'a' is 31 bytes, must be 32");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", k33, KEY_I);
    s_assert_file_refused(t, "key 'a' is 33 bytes, must be 32");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", KEY_A, k48);
    s_assert_file_refused(t, "line 3: index key is 48 bytes, must be 32");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", KEY_A, k16);
    s_assert_file_refused(t, "index key is 16 bytes");
    memset(raw, 0, sizeof raw);
    char *zero = s_b64(raw, 32);
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", zero, KEY_I);
    s_assert_file_refused(t, "key 'a' is all zero bytes");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", KEY_A, zero);
    s_assert_file_refused(t, "line 3: index key is all zero bytes");
    free(zero);
    free(k16);
    free(k31);
    free(k33);
    free(k48);

    /* Duplicate ids; active missing, unknown or twice; index missing or
     * twice or equal to an encryption key. */
    snprintf(t, sizeof t, "key a %s\nkey a %s\nactive a\nindex %s\n", KEY_A, KEY_B, KEY_I);
    s_assert_file_refused(t, "line 2: duplicate key id 'a'");
    snprintf(t, sizeof t, "key a %s\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "no active line");
    snprintf(t, sizeof t, "key a %s\nactive c\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 2: active key 'c' is not in the file");
    snprintf(t, sizeof t, "key a %s\nkey b %s\nactive a\nactive b\nindex %s\n", KEY_A, KEY_B,
             KEY_I);
    s_assert_file_refused(t, "line 4: second active line (first on line 3)");
    snprintf(t, sizeof t, "key a %s\nactive a\n", KEY_A);
    s_assert_file_refused(t, "no index line");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\nindex %s\n", KEY_A, KEY_I, KEY_J);
    s_assert_file_refused(t, "line 4: second index line (first on line 3)");
    snprintf(t, sizeof t, "key a %s\nkey b %s\nactive a\nindex %s\n", KEY_A, KEY_B, KEY_B);
    s_assert_file_refused(t, "index key must differ from every encryption key (it equals key 'b')");
    s_assert_file_refused("", "no key lines");
    s_assert_file_refused("# only a comment\n\n", "no key lines");
    snprintf(t, sizeof t, "active a\nindex %s\n", KEY_I);
    s_assert_file_refused(t, "no key lines");

    /* Lines it does not understand; the offending text is never echoed. */
    snprintf(t, sizeof t, "%s\nkey a %s\nactive a\nindex %s\n", KEY_B, KEY_A, KEY_I);
    s_assert_file_refused(t, "line 1: unknown entry");
    snprintf(t, sizeof t, "key %s %s\nactive a\nindex %s\n", KEY_B, KEY_A, KEY_I);
    s_assert_file_refused(t, "line 1: key id must be 1 to 32");
    snprintf(t, sizeof t, "key a:b %s\nactive a\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "key id must be");
    snprintf(t, sizeof t, "key a\nactive a\nindex %s\n", KEY_I);
    s_assert_file_refused(t, "line 1: expected: key <id> <base64 key>");
    snprintf(t, sizeof t, "key a %s # old\nactive a\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 1: expected: key <id> <base64 key>");
    snprintf(t, sizeof t, "key a %s\nactive\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 2: expected: active <key id>");
    snprintf(t, sizeof t, "key a %s\nactive a\nindex a %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 3: expected: index <base64 key>");
    snprintf(t, sizeof t, "KEY a %s\nactive a\nindex %s\n", KEY_A, KEY_I);
    s_assert_file_refused(t, "line 1: unknown entry");

    /* A NUL byte (only bc_keyring_parse can be handed one). */
    bc_error_t err = {0};
    snprintf(t, sizeof t, "key a %s\nactive a\nindex %s\n", KEY_A, KEY_I);
    size_t n = strlen(t);
    t[5] = '\0';
    assert_null(bc_keyring_parse(t, n, "<test>", &err));
    assert_non_null(strstr(err.message, "NUL byte"));
    assert_null(bc_keyring_parse(NULL, 0, "<test>", &err));
}

/* ---- Blind indexes and normalization ------------------------------------ */

static void test_blind_index(void **state)
{
    (void)state;
    bc_error_t err = {0};
    char text[512];
    bc_keyring_t *ab = s_keyring_ab("a");
    bc_keyring_t *ba = s_keyring_ab("b"); /* same index key, rotated */
    snprintf(text, sizeof text, "key a %s\nactive a\nindex %s\n", KEY_A, KEY_J);
    bc_keyring_t *other = s_parse(text); /* another index key */

    char x[BC_FIELD_INDEX_HEX_LEN + 1], y[BC_FIELD_INDEX_HEX_LEN + 1];
    assert_int_equal(bc_field_blind_index(ab, "medicaid_id", "AB1234567", x, &err), 0);
    assert_int_equal(strlen(x), 64);
    assert_int_equal(strspn(x, "0123456789abcdef"), 64);
    /* Deterministic, and unchanged by rotating the encryption key. */
    assert_int_equal(bc_field_blind_index(ab, "medicaid_id", "AB1234567", y, &err), 0);
    assert_string_equal(x, y);
    assert_int_equal(bc_field_blind_index(ba, "medicaid_id", "AB1234567", y, &err), 0);
    assert_string_equal(x, y);
    /* Exactly HMAC-SHA256(index key, domain || 0x00 || value). */
    uint8_t ikey[32], mac[32];
    s_key_bytes(2, ikey);
    const char msg[] = "medicaid_id\0AB1234567";
    assert_int_equal(bc_hmac_sha256(ikey, 32, msg, sizeof msg - 1, mac), 0);
    s_assert_hex(mac, 32, x);
    /* Other domain, other value, other index key: other index. */
    assert_int_equal(bc_field_blind_index(ab, "ssn", "AB1234567", y, &err), 0);
    assert_string_not_equal(x, y);
    assert_int_equal(bc_field_blind_index(ab, "medicaid_id", "AB1234568", y, &err), 0);
    assert_string_not_equal(x, y);
    assert_int_equal(bc_field_blind_index(other, "medicaid_id", "AB1234567", y, &err), 0);
    assert_string_not_equal(x, y);
    /* The separator keeps domain and value apart: ("ab", "c") != ("a", "bc"). */
    assert_int_equal(bc_field_blind_index(ab, "ab", "C", x, &err), 0);
    assert_int_equal(bc_field_blind_index(ab, "a", "BC", y, &err), 0);
    assert_string_not_equal(x, y);
    /* A long value (past the stack buffer) is still plain HMAC. */
    char longval[1001];
    memset(longval, 'Z', 1000);
    longval[1000] = '\0';
    char lmsg[1005] = "ssn";
    memcpy(lmsg + 4, longval, 1000);
    assert_int_equal(bc_field_blind_index(ab, "ssn", longval, x, &err), 0);
    assert_int_equal(bc_hmac_sha256(ikey, 32, lmsg, 1004, mac), 0);
    s_assert_hex(mac, 32, x);

    /* Bad domains and empty values are refused. */
    const char *domains[] = {"", "Medicaid", "medicaid id", "a:b",
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
        strcpy(x, "junk");
        assert_int_equal(bc_field_blind_index(ab, domains[i], "A1", x, &err), -1);
        assert_int_equal(err.code, BC_INVALID_ARGUMENT);
        assert_string_equal(x, "");
    }
    assert_int_equal(bc_field_blind_index(ab, NULL, "A1", x, &err), -1);
    assert_int_equal(bc_field_blind_index(ab, "ssn", "", x, &err), -1);
    assert_int_equal(bc_field_blind_index(ab, "ssn", NULL, x, &err), -1);
    assert_int_equal(bc_field_blind_index(ab, "a.b_9", "A1", x, &err), 0);

    bc_keyring_destroy(&ab);
    bc_keyring_destroy(&ba);
    bc_keyring_destroy(&other);
}

static void test_normalize_id(void **state)
{
    (void)state;
    bc_error_t err = {0};
    char out[BC_FIELD_ID_MAX + 1];
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"123-45-6789", "123456789"}, {"123 45 6789", "123456789"},
        {" ab 12.3 ", "AB123"},       {"\tx-y\t", "XY"},
        {"ZZ0000000", "ZZ0000000"},   {"a", "A"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(bc_field_normalize_id(ok[i].in, out, sizeof out, &err), 0);
        assert_string_equal(out, ok[i].want);
    }
    const char *bad[] = {"", "---", " . ", "ABC/1", "AB_1", "Zoë1", "A\n1", "A+1", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(out, "junk");
        assert_int_equal(bc_field_normalize_id(bad[i], out, sizeof out, &err), -1);
        assert_int_equal(err.code, BC_INVALID_ARGUMENT);
        assert_string_equal(out, "");
    }
    char max[BC_FIELD_ID_MAX + 8];
    memset(max, '7', BC_FIELD_ID_MAX);
    strcpy(max + BC_FIELD_ID_MAX, "--");
    assert_int_equal(bc_field_normalize_id(max, out, sizeof out, &err), 0);
    assert_int_equal(strlen(out), BC_FIELD_ID_MAX);
    strcpy(max + BC_FIELD_ID_MAX, "8");
    assert_int_equal(bc_field_normalize_id(max, out, sizeof out, &err), -1);
    assert_string_equal(out, "");
    char tiny[4];
    assert_int_equal(bc_field_normalize_id("12345", tiny, sizeof tiny, &err), -1);
    assert_string_equal(tiny, "");

    /* Differently typed, same identifier, same index. */
    bc_keyring_t *kr = s_keyring_ab("a");
    char n1[BC_FIELD_ID_MAX + 1], n2[BC_FIELD_ID_MAX + 1];
    char x[BC_FIELD_INDEX_HEX_LEN + 1], y[BC_FIELD_INDEX_HEX_LEN + 1];
    assert_int_equal(bc_field_normalize_id("ab-123 456", n1, sizeof n1, &err), 0);
    assert_int_equal(bc_field_normalize_id("AB123456", n2, sizeof n2, &err), 0);
    assert_int_equal(bc_field_blind_index(kr, "medicaid_id", n1, x, &err), 0);
    assert_int_equal(bc_field_blind_index(kr, "medicaid_id", n2, y, &err), 0);
    assert_string_equal(x, y);
    bc_keyring_destroy(&kr);
}

/* ---- deploy/gen-keys.sh ------------------------------------------------- */

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_gen_keys_script(void **state)
{
    (void)state;
    /* tests/run.sh runs the tests from the repository root. */
    if (access("deploy/gen-keys.sh", R_OK) != 0)
        skip();
    char dir[512], file[600], cmd[1400];
    snprintf(dir, sizeof dir, "%s/gen/keys", s_dir);
    snprintf(file, sizeof file, "%s/field.keys", dir);
    snprintf(cmd, sizeof cmd, "bash deploy/gen-keys.sh '%s' 2>/dev/null", dir);
    assert_int_equal(system(cmd), 0);

    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    bc_error_t err = {0};
    bc_keyring_t *kr = bc_keyring_load(file, &err);
    if (!kr)
        fail_msg("generated file does not load: %s", err.message);
    assert_int_equal(bc_keyring_key_count(kr), 1);
    char *env = NULL;
    assert_int_equal(bc_field_encrypt(kr, "AB123", 5, s_aad, &env, &err), 0);
    char idx1[BC_FIELD_INDEX_HEX_LEN + 1], idx2[BC_FIELD_INDEX_HEX_LEN + 1];
    assert_int_equal(bc_field_blind_index(kr, "medicaid_id", "AB123", idx1, &err), 0);
    char first_active[BC_KEY_ID_MAX + 1];
    snprintf(first_active, sizeof first_active, "%s", bc_keyring_active_id(kr));
    bc_keyring_destroy(&kr);

    /* Running it again changes nothing. */
    char *before = s_slurp(file);
    assert_int_equal(system(cmd), 0);
    char *again = s_slurp(file);
    assert_string_equal(before, again);
    free(again);

    /* --rotate: a new active key, the old one kept, the index key too. */
    snprintf(cmd, sizeof cmd, "bash deploy/gen-keys.sh '%s' --rotate 2>/dev/null", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    kr = bc_keyring_load(file, &err);
    if (!kr)
        fail_msg("rotated file does not load: %s", err.message);
    assert_int_equal(bc_keyring_key_count(kr), 2);
    assert_string_not_equal(bc_keyring_active_id(kr), first_active);
    assert_true(bc_field_needs_rewrap(kr, env));
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(bc_field_decrypt(kr, env, s_aad, &out, &len, &err), 0);
    assert_string_equal(out, "AB123");
    bc_field_plaintext_free(&out, len);
    assert_int_equal(bc_field_blind_index(kr, "medicaid_id", "AB123", idx2, &err), 0);
    assert_string_equal(idx1, idx2);
    bc_keyring_destroy(&kr);

    /* A usage error is an error. */
    snprintf(cmd, sizeof cmd, "bash deploy/gen-keys.sh '%s' --bogus 2>/dev/null", dir);
    assert_int_not_equal(system(cmd), 0);
    free(before);
    free(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_known_answers),
        cmocka_unit_test(test_gcm_vector_through_envelope),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_nonces_differ),
        cmocka_unit_test(test_tamper_detected),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_keyfile_loads),
        cmocka_unit_test(test_keyfile_file_checks),
        cmocka_unit_test(test_keyfile_content_checks),
        cmocka_unit_test(test_blind_index),
        cmocka_unit_test(test_normalize_id),
        cmocka_unit_test(test_gen_keys_script),
    };
    return cmocka_run_group_tests_name("crypt", tests, s_setup, s_teardown);
}
