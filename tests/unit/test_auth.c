/*  Unit tests for bc_auth: RFC 4226 / RFC 6238 / RFC 4648 vectors, TOTP
 *  window and replay rules, Argon2id password hashes and policy, tokens.
 *  The Argon2 tests hash as few times as they can (each costs 20-30 ms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cmocka.h>

#include <argon2.h>

#include "bc_auth.h"
#include "bc_error.h"
#include "bc_util.h"

static const uint8_t *s_rfc_key = (const uint8_t *)"12345678901234567890";

/* RFC 4226 Appendix D: HOTP values for counters 0..9. */
static void test_hotp_rfc4226(void **state)
{
    (void)state;
    static const int want[10] = {755224, 287082, 359152, 969429, 338314,
                                 254676, 287922, 162583, 399871, 520489};
    for (uint64_t c = 0; c < 10; c++)
        assert_int_equal(bc_hotp(s_rfc_key, 20, c, 6), want[c]);
    assert_int_equal(bc_hotp(s_rfc_key, 20, 0, 5), -1);
    assert_int_equal(bc_hotp(s_rfc_key, 20, 0, 9), -1);
    assert_int_equal(bc_hotp(s_rfc_key, 0, 0, 6), -1);
    assert_int_equal(bc_hotp(NULL, 20, 0, 6), -1);
}

/* RFC 6238 Appendix B, SHA-1 rows: 8 digits, T0 = 0, X = 30. */
static void test_totp_rfc6238(void **state)
{
    (void)state;
    static const struct {
        int64_t t;
        const char *code;
    } rows[] = {
        {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
        {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int v = bc_hotp(s_rfc_key, 20, (uint64_t)(rows[i].t / BC_TOTP_PERIOD), 8);
        char got[16];
        snprintf(got, sizeof got, "%08d", v);
        assert_string_equal(got, rows[i].code);
    }
}

static void test_totp_window_and_replay(void **state)
{
    (void)state;
    /* Step 1 (t = 30..59): HOTP(1) = 287082. */
    int64_t m = -7;
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 59, 1, -1, &m), BC_TOTP_OK);
    assert_int_equal(m, 1);
    /* One step late or early is accepted with window 1, not with window 0. */
    m = -7;
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 89, 1, -1, &m), BC_TOTP_OK);
    assert_int_equal(m, 1);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 89, 0, -1, &m), BC_TOTP_MISMATCH);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 29, 1, -1, &m), BC_TOTP_OK);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 29, 0, -1, &m), BC_TOTP_MISMATCH);
    /* Two steps away is outside window 1 but inside window 2. */
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 119, 1, -1, &m), BC_TOTP_MISMATCH);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 119, 2, -1, &m), BC_TOTP_OK);
    /* Replay: the step was already used (or a later one was). */
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 59, 1, 1, &m), BC_TOTP_REPLAY);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 59, 1, 2, &m), BC_TOTP_REPLAY);
    m = -7;
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 59, 1, 0, &m), BC_TOTP_OK);
    assert_int_equal(m, 1);
    /* The next step's code after step 1 was used still works. */
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "359152", 89, 1, 1, &m), BC_TOTP_OK);
    assert_int_equal(m, 2);
    /* Wrong code, wrong key. */
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287083", 59, 1, -1, &m), BC_TOTP_MISMATCH);
    assert_int_equal(
        bc_totp_verify((const uint8_t *)"12345678901234567891", 20, "287082", 59, 1, -1, &m),
        BC_TOTP_MISMATCH);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", -1, 1, -1, &m), BC_TOTP_MISMATCH);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "287082", 59, 1, -1, NULL), BC_TOTP_OK);
    /* A code with a leading zero: RFC 6238 1111111109 -> 07081804, 6 digits 081804. */
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "081804", 1111111109, 0, -1, &m), BC_TOTP_OK);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, "81804", 1111111109, 0, -1, &m),
                     BC_TOTP_MALFORMED);
}

static void test_totp_malformed_codes(void **state)
{
    (void)state;
    static const char *bad[] = {"",        "28708",        "2870822", "28708a",
                                " 287082", "287082 ",      "287 082", "+287082",
                                "-28708",  "２８７０８２", "28708\n", "0x1234"};
    int64_t m = -7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(bc_totp_verify(s_rfc_key, 20, bad[i], 59, 1, -1, &m), BC_TOTP_MALFORMED);
    assert_int_equal(bc_totp_verify(s_rfc_key, 20, NULL, 59, 1, -1, &m), BC_TOTP_MALFORMED);
}

/* RFC 4648 section 10, both with and without padding, and lower case. */
static void test_base32_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *plain, *padded;
    } v[] = {
        {"", "", ""},
        {"f", "MY", "MY======"},
        {"fo", "MZXQ", "MZXQ===="},
        {"foo", "MZXW6", "MZXW6==="},
        {"foob", "MZXW6YQ", "MZXW6YQ="},
        {"fooba", "MZXW6YTB", "MZXW6YTB"},
        {"foobar", "MZXW6YTBOI", "MZXW6YTBOI======"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].raw);
        char enc[32];
        assert_int_equal(bc_base32_encode((const uint8_t *)v[i].raw, n, enc, sizeof enc),
                         (int)strlen(v[i].plain));
        assert_string_equal(enc, v[i].plain);
        assert_int_equal(strlen(enc), BC_BASE32_LEN(n));

        const char *inputs[3] = {v[i].plain, v[i].padded, NULL};
        char lower[32];
        snprintf(lower, sizeof lower, "%s", v[i].plain);
        for (char *p = lower; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        inputs[2] = lower;
        for (int k = 0; k < 3; k++) {
            uint8_t dec[32];
            size_t len = 99;
            bc_error_t err;
            assert_int_equal(bc_base32_decode(inputs[k], dec, sizeof dec, &len, &err), 0);
            assert_int_equal(len, n);
            assert_memory_equal(dec, v[i].raw, n);
        }
    }
    /* The RFC key as provisioning shows it. */
    char enc[64];
    bc_base32_encode(s_rfc_key, 20, enc, sizeof enc);
    assert_string_equal(enc, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /* Too small a buffer is refused, not overrun. */
    assert_int_equal(bc_base32_encode((const uint8_t *)"foobar", 6, enc, 10), -1);
    assert_string_equal(enc, "");
}

static void test_base32_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "MZXW6YT1",         /* '1' is not in the alphabet */
        "MZXW6YT8",         /* nor '8' */
        "MZX 6YTB",         /* no spaces */
        "MZXW-YTB",         /* no separators */
        "MZ=XW6==",         /* padding in the middle */
        "M",                /* 1 character cannot encode a byte */
        "MZX",              /* nor 3 */
        "MZXW6Y",           /* nor 6 */
        "MY=====",          /* padding that does not complete the group */
        "MY=======",        /* too much padding */
        "MZXW6YTB========", /* a whole group of padding */
        "MZ",               /* non-zero bits after the last byte */
        "MZXW6YR",          /* same, 7 characters */
        "MZXW6\xc3\xa9Q",   /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t dec[32];
        size_t len = 99;
        bc_error_t err;
        bc_error_clear(&err);
        assert_int_equal(bc_base32_decode(bad[i], dec, sizeof dec, &len, &err), -1);
        assert_int_equal(err.code, BC_INVALID_ARGUMENT);
        assert_string_equal(err.field, "secret");
        assert_int_equal(len, 0);
    }
    uint8_t small[3];
    size_t len;
    assert_int_equal(bc_base32_decode("MZXW6YQ", small, sizeof small, &len, NULL), -1);
    assert_int_equal(bc_base32_decode("MZXW6", small, sizeof small, &len, NULL), 0);
    assert_int_equal(bc_base32_decode(NULL, small, sizeof small, &len, NULL), -1);
}

static void test_totp_secret_and_uri(void **state)
{
    (void)state;
    uint8_t a[BC_TOTP_SECRET_LEN], b[BC_TOTP_SECRET_LEN], zero[BC_TOTP_SECRET_LEN] = {0};
    bc_totp_secret_new(a);
    bc_totp_secret_new(b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);

    char uri[BC_TOTP_URI_MAX];
    bc_error_t err;
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, "peer.one+x@example.org", uri, sizeof uri, &err),
                     0);
    assert_string_equal(uri, "otpauth://totp/Beacon:peer.one%2Bx%40example.org"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Beacon"
                             "&algorithm=SHA1&digits=6&period=30");
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, "a b/é?&=#:", uri, sizeof uri, &err), 0);
    assert_non_null(strstr(uri, "Beacon:a%20b%2F%C3%A9%3F%26%3D%23%3A?secret="));

    /* The longest account fits the documented buffer size. */
    char longest[255];
    memset(longest, '+', 254);
    longest[254] = '\0';
    assert_int_equal(bc_totp_uri(a, sizeof a, longest, uri, sizeof uri, &err), 0);

    char small[60];
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, "a@example.org", small, sizeof small, &err), -1);
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(small, "");
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, "", uri, sizeof uri, &err), -1);
    assert_string_equal(err.field, "account");
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, "\xff@example.org", uri, sizeof uri, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    char toolong[256];
    memset(toolong, 'a', 255);
    toolong[255] = '\0';
    assert_int_equal(bc_totp_uri(s_rfc_key, 20, toolong, uri, sizeof uri, &err), -1);
}

/* One hash serves the round trip, the wrong password and the tampering. */
static void test_password_round_trip(void **state)
{
    (void)state;
    const char *pw = "correct horse battery staple";
    char enc[BC_PASSWORD_HASH_MAX];
    bc_error_t err;
    assert_int_equal(bc_password_hash(pw, enc, sizeof enc, &err), 0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "$argon2id$v=19$m=%d,t=%d,p=%d$", BC_ARGON2_M_COST_KIB,
             BC_ARGON2_T_COST, BC_ARGON2_PARALLELISM);
    assert_int_equal(strncmp(enc, prefix, strlen(prefix)), 0);
    /* 22 characters of salt, '$', 43 of hash. */
    assert_int_equal(strlen(enc), strlen(prefix) + 22 + 1 + 43);
    assert_false(bc_password_needs_rehash(enc));

    assert_true(bc_password_verify(enc, pw));
    assert_false(bc_password_verify(enc, "correct horse battery stapl"));
    assert_false(bc_password_verify(enc, "Correct horse battery staple"));
    assert_false(bc_password_verify(enc, NULL));
    assert_false(bc_password_verify(NULL, pw));

    /* Flip one character of the stored hash, then of the salt. */
    char bad[BC_PASSWORD_HASH_MAX];
    snprintf(bad, sizeof bad, "%s", enc);
    size_t last = strlen(bad) - 2;
    bad[last] = bad[last] == 'A' ? 'B' : 'A';
    assert_false(bc_password_verify(bad, pw));
    snprintf(bad, sizeof bad, "%s", enc);
    bad[strlen(prefix)] = bad[strlen(prefix)] == 'A' ? 'B' : 'A';
    assert_false(bc_password_verify(bad, pw));
    /* Truncated, other variant, absurd cost: refused without hashing. */
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(enc) - 10, enc);
    assert_false(bc_password_verify(bad, pw));
    snprintf(bad, sizeof bad, "$argon2i$%s", enc + strlen("$argon2id$"));
    assert_false(bc_password_verify(bad, pw));
    snprintf(bad, sizeof bad, "$argon2id$v=19$m=4194304,t=2,p=1$%s", enc + strlen(prefix));
    assert_false(bc_password_verify(bad, pw));

    /* A second hash of the same password has a different salt. */
    char enc2[BC_PASSWORD_HASH_MAX];
    assert_int_equal(bc_password_hash(pw, enc2, sizeof enc2, &err), 0);
    assert_string_not_equal(enc, enc2);

    /* The buffer size is checked, not overrun. */
    char small[64];
    assert_int_equal(bc_password_hash(pw, small, sizeof small, &err), -1);
    assert_int_equal(err.code, BC_INTERNAL);
    assert_int_equal(bc_password_hash(NULL, enc2, sizeof enc2, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
}

static void test_password_needs_rehash(void **state)
{
    (void)state;
    /* A hash made with weaker parameters verifies but needs a rehash. */
    const char *pw = "an older password hash";
    const uint8_t salt[16] = "0123456789abcdef";
    char weak[BC_PASSWORD_HASH_MAX];
    assert_int_equal(
        argon2id_hash_encoded(1, 4096, 1, pw, strlen(pw), salt, 16, 32, weak, sizeof weak),
        ARGON2_OK);
    assert_true(bc_password_verify(weak, pw));
    assert_true(bc_password_needs_rehash(weak));
    /* Costs past the verification bounds are refused even when they would
     * match (cheap to make with a tiny memory cost). */
    char odd[BC_PASSWORD_HASH_MAX];
    assert_int_equal(argon2id_hash_encoded(BC_ARGON2_VERIFY_MAX_T + 1, 8, 1, pw, strlen(pw), salt,
                                           16, 32, odd, sizeof odd),
                     ARGON2_OK);
    assert_false(bc_password_verify(odd, pw));
    assert_int_equal(argon2id_hash_encoded(1, 8 * (BC_ARGON2_VERIFY_MAX_P + 1),
                                           BC_ARGON2_VERIFY_MAX_P + 1, pw, strlen(pw), salt, 16, 32,
                                           odd, sizeof odd),
                     ARGON2_OK);
    assert_false(bc_password_verify(odd, pw));
    assert_int_equal(argon2id_hash_encoded(BC_ARGON2_VERIFY_MAX_T, 8 * BC_ARGON2_VERIFY_MAX_P,
                                           BC_ARGON2_VERIFY_MAX_P, pw, strlen(pw), salt, 16, 32,
                                           odd, sizeof odd),
                     ARGON2_OK);
    assert_true(bc_password_verify(odd, pw));
    /* Each parameter on its own. */
    char s[256];
    const char *tail = "$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
    snprintf(s, sizeof s, "$argon2id$v=19$m=%d,t=%d,p=%d%s", BC_ARGON2_M_COST_KIB, BC_ARGON2_T_COST,
             BC_ARGON2_PARALLELISM, tail);
    assert_false(bc_password_needs_rehash(s));
    snprintf(s, sizeof s, "$argon2id$v=19$m=%d,t=%d,p=%d%s", BC_ARGON2_M_COST_KIB * 2,
             BC_ARGON2_T_COST + 1, BC_ARGON2_PARALLELISM, tail);
    assert_false(bc_password_needs_rehash(s));
    snprintf(s, sizeof s, "$argon2id$v=19$m=%d,t=%d,p=%d%s", BC_ARGON2_M_COST_KIB - 1,
             BC_ARGON2_T_COST, BC_ARGON2_PARALLELISM, tail);
    assert_true(bc_password_needs_rehash(s));
    snprintf(s, sizeof s, "$argon2id$v=19$m=%d,t=%d,p=%d%s", BC_ARGON2_M_COST_KIB,
             BC_ARGON2_T_COST - 1, BC_ARGON2_PARALLELISM, tail);
    assert_true(bc_password_needs_rehash(s));
    snprintf(s, sizeof s, "$argon2id$v=16$m=%d,t=%d,p=%d%s", BC_ARGON2_M_COST_KIB, BC_ARGON2_T_COST,
             BC_ARGON2_PARALLELISM, tail);
    assert_true(bc_password_needs_rehash(s));
    /* An 8-byte salt; a 16-byte hash. */
    snprintf(s, sizeof s, "$argon2id$v=19$m=%d,t=%d,p=%d$MDEyMzQ1Njc%s", BC_ARGON2_M_COST_KIB,
             BC_ARGON2_T_COST, BC_ARGON2_PARALLELISM, strrchr(tail, '$'));
    assert_true(bc_password_needs_rehash(s));
    snprintf(s, sizeof s,
             "$argon2id$v=19$m=%d,t=%d,p=%d$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg",
             BC_ARGON2_M_COST_KIB, BC_ARGON2_T_COST, BC_ARGON2_PARALLELISM);
    assert_true(bc_password_needs_rehash(s));
    assert_true(bc_password_needs_rehash("$2b$12$abcdefghijklmnopqrstuv"));
    assert_true(bc_password_needs_rehash(""));
    assert_true(bc_password_needs_rehash(NULL));
}

/* The dummy must cost what a real verification costs, or login timing
 * tells which emails exist. A loose bound: a no-op dummy fails it. */
static void test_password_verify_dummy(void **state)
{
    (void)state;
    char enc[BC_PASSWORD_HASH_MAX];
    assert_int_equal(bc_password_hash("some password here", enc, sizeof enc, NULL), 0);
    int64_t t0 = bc_mono_us();
    assert_true(bc_password_verify(enc, "some password here"));
    int64_t real = bc_mono_us() - t0;
    t0 = bc_mono_us();
    assert_false(bc_password_verify_dummy("some password here"));
    int64_t dummy = bc_mono_us() - t0;
    assert_true(dummy * 3 >= real);
    assert_true(real * 3 >= dummy);
    assert_false(bc_password_verify_dummy(NULL));
}

static void test_password_policy(void **state)
{
    (void)state;
    bc_error_t err;
    assert_int_equal(bc_password_policy("abcdefghijk", &err), -1); /* 11 */
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.field, "password");
    assert_non_null(strstr(err.message, "at least 12"));
    assert_int_equal(bc_password_policy("abcdefghijkl", &err), 0); /* 12 */
    /* 12 two-byte and 12 four-byte characters count as 12; 11 of them do not. */
    assert_int_equal(bc_password_policy("éééééééééééé", &err), 0);
    assert_int_equal(bc_password_policy("ééééééééééé", &err), -1);
    assert_int_equal(bc_password_policy("😀😀😀😀😀😀😀😀😀😀😀😀", &err), 0);
    assert_int_equal(bc_password_policy("😀😀😀😀😀😀😀😀😀😀😀", &err), -1);
    /* Invalid UTF-8: a lone continuation byte, a truncated sequence, overlong '/'. */
    assert_int_equal(bc_password_policy("abcdefghijkl\x80", &err), -1);
    assert_non_null(strstr(err.message, "invalid"));
    assert_int_equal(bc_password_policy("abcdefghijkl\xc3", &err), -1);
    assert_int_equal(bc_password_policy("abcdefghijkl\xc0\xaf", &err), -1);
    /* Whitespace only, ASCII or Unicode, is refused; spaces inside are fine. */
    assert_int_equal(bc_password_policy("            ", &err), -1);
    assert_non_null(strstr(err.message, "spaces"));
    assert_int_equal(bc_password_policy("\t \t \t \t \t \t \xe3\x80\x80\xc2\xa0", &err), -1);
    assert_int_equal(bc_password_policy("     a      ", &err), 0);
    /* 256 characters pass, 257 do not, nor 300 four-byte ones. */
    char buf[1300];
    memset(buf, 'x', 256);
    buf[256] = '\0';
    assert_int_equal(bc_password_policy(buf, &err), 0);
    buf[256] = 'x';
    buf[257] = '\0';
    assert_int_equal(bc_password_policy(buf, &err), -1);
    assert_non_null(strstr(err.message, "at most 256"));
    buf[0] = '\0';
    for (int i = 0; i < 300; i++)
        strcat(buf, "😀");
    assert_int_equal(bc_password_policy(buf, &err), -1);
    assert_int_equal(bc_password_policy(NULL, &err), -1);
    /* Verification refuses passwords longer than any policy allows, quickly. */
    assert_false(bc_password_verify("$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
                                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
                                    buf));
}

static void test_tokens(void **state)
{
    (void)state;
    enum { N = 64 };
    static char tok[N][BC_TOKEN_MAX];
    for (int i = 0; i < N; i++) {
        bc_token_new(BC_TOKEN_SESSION_PREFIX, tok[i], sizeof tok[i]);
        assert_int_equal(strlen(tok[i]), 4 + 43);
        assert_int_equal(strncmp(tok[i], "bst_", 4), 0);
        for (const char *p = tok[i] + 4; *p; p++)
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_",
                                   *p));
        assert_true(bc_token_valid(tok[i], BC_TOKEN_SESSION_PREFIX));
        assert_false(bc_token_valid(tok[i], BC_TOKEN_API_KEY_PREFIX));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(tok[i], tok[j]);
    }
    char key[BC_TOKEN_MAX];
    bc_token_new(BC_TOKEN_API_KEY_PREFIX, key, sizeof key);
    assert_true(bc_token_valid(key, "bak_"));

    /* Shape checks: length, alphabet, the unused low bits, the prefix. */
    char t[BC_TOKEN_MAX + 2];
    snprintf(t, sizeof t, "%s", tok[0]);
    t[46] = 'A';
    assert_true(bc_token_valid(t, "bst_"));
    t[46] = 'B'; /* low bits set: no 32-byte value encodes to this */
    assert_false(bc_token_valid(t, "bst_"));
    t[46] = 'A';
    t[10] = '+';
    assert_false(bc_token_valid(t, "bst_"));
    snprintf(t, sizeof t, "%sA", tok[0]);
    assert_false(bc_token_valid(t, "bst_"));
    snprintf(t, sizeof t, "%.46s", tok[0]);
    assert_false(bc_token_valid(t, "bst_"));
    assert_false(bc_token_valid(NULL, "bst_"));
    assert_false(bc_token_valid(tok[0], NULL));
    assert_false(bc_token_valid(tok[0], ""));

    /* SHA-256 as lowercase hex: the FIPS 180-2 "abc" vector, and distinct
     * tokens hash apart. */
    char h[BC_TOKEN_HASH_LEN + 1], h2[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    bc_token_hash(tok[0], h);
    bc_token_hash(tok[1], h2);
    assert_int_equal(strlen(h), 64);
    assert_string_not_equal(h, h2);
    bc_token_hash(tok[0], h2);
    assert_string_equal(h, h2);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(bc_ct_equal("abcdef", "abcdef", 6));
    assert_false(bc_ct_equal("abcdef", "abcdeg", 6));
    assert_false(bc_ct_equal("xbcdef", "abcdef", 6));
    assert_true(bc_ct_equal("abcdef", "abcxyz", 3));
    assert_true(bc_ct_equal("a", "b", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226),
        cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_totp_window_and_replay),
        cmocka_unit_test(test_totp_malformed_codes),
        cmocka_unit_test(test_base32_vectors),
        cmocka_unit_test(test_base32_rejects),
        cmocka_unit_test(test_totp_secret_and_uri),
        cmocka_unit_test(test_password_round_trip),
        cmocka_unit_test(test_password_needs_rehash),
        cmocka_unit_test(test_password_verify_dummy),
        cmocka_unit_test(test_password_policy),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_ct_equal),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
