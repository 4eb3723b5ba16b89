/*  bc_auth: Argon2id passwords, RFC 6238 TOTP and opaque bearer tokens.
 *
 *  Password hashing is libargon2's; HMAC, SHA-256 and constant-time
 *  comparison are OpenSSL's (libcrypto only, no TLS headers); randomness is
 *  bc_random_bytes. Everything else here (PHC string parsing, base32,
 *  base64url, percent-encoding, the password policy) is small, strict and
 *  allocation-free so that it can be fuzzed and reasoned about.
 */
#include "bc_auth.h"

#include <argon2.h>
#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"

/* ---- Small encoders ----------------------------------------------------- */

static const char s_b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char s_b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char s_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Unpadded base-2^width text (width 6: base64, 5: base32) of n bytes with
 * the given alphabet, most significant bits first, the last character
 * zero-filled. out holds (8n + width - 1) / width + 1 bytes. Returns the text
 * length. */
static size_t s_encode_bits(const uint8_t *in, size_t n, const char *alphabet, int width,
                            char *out)
{
    const uint32_t mask = (1u << width) - 1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= width) {
            bits -= width;
            out[o++] = alphabet[(acc >> bits) & mask];
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (width - bits)) & mask];
    out[o] = '\0';
    return o;
}

/* Unpadded base64 of n bytes with the given alphabet; out holds
 * (4n + 2) / 3 + 1 bytes. Returns the text length. */
static size_t s_base64_encode(const uint8_t *in, size_t n, const char *alphabet, char *out)
{
    return s_encode_bits(in, n, alphabet, 6, out);
}

static bool s_is_b64_std(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static bool s_is_b64_url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Value of a base32 character in either case, or -1. */
static int s_b32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

int bc_base32_encode(const uint8_t *in, size_t n, char *out, size_t out_size)
{
    if (out_size < BC_BASE32_LEN(n) + 1) {
        if (out_size > 0)
            out[0] = '\0';
        return -1;
    }
    return (int)s_encode_bits(in, n, s_b32, 5, out);
}

int bc_base32_decode(const char *in, uint8_t *out, size_t out_size, size_t *out_len,
                     bc_error_t *err)
{
    /* Padding needed after a final group of r data characters; -1 marks the
     * lengths no whole number of bytes can produce. */
    static const int pad_for_rem[8] = {0, -1, 6, -1, 4, 3, -1, 1};
    *out_len = 0;
    if (!in)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "secret", "secret is missing");
    size_t len = strlen(in);
    size_t data = len;
    while (data > 0 && in[data - 1] == '=')
        data--;
    size_t pad = len - data;
    int want = pad_for_rem[data % 8];
    if (want < 0 || (pad > 0 && (size_t)want != pad))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "secret", "secret is not valid base32");
    size_t n = data * 5 / 8;
    if (n > out_size)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "secret", "secret is too long");
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < data; i++) {
        int v = s_b32_value(in[i]);
        if (v < 0)
            return bc_error_set(err, BC_INVALID_ARGUMENT, "secret", "secret is not valid base32");
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Canonical encodings only: the bits after the last byte are zero. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "secret", "secret is not valid base32");
    *out_len = o;
    return 0;
}

/* ---- Passwords ---------------------------------------------------------- */

typedef struct {
    uint32_t version, m, t, p;
    size_t salt_len, hash_len; /* decoded bytes */
} s_phc_t;

/* Reads a decimal uint32 at *s (1..10 digits) and advances *s. */
static int s_parse_u32(const char **s, uint32_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 11) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || digits > 10 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    *s = p;
    return 0;
}

static int s_expect(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return -1;
    *s += n;
    return 0;
}

/* Reads a run of unpadded base64 and returns its decoded length, or -1. */
static int s_parse_b64(const char **s, size_t *bytes)
{
    const char *p = *s;
    while (s_is_b64_std(*p))
        p++;
    size_t chars = (size_t)(p - *s);
    if (chars == 0 || chars % 4 == 1)
        return -1;
    *bytes = chars * 3 / 4;
    *s = p;
    return 0;
}

/* Parses "$argon2id$v=V$m=M,t=T,p=P$SALT$HASH" strictly. */
static int s_phc_parse(const char *s, s_phc_t *phc)
{
    if (!s)
        return -1;
    if (s_expect(&s, "$argon2id$v=") < 0 || s_parse_u32(&s, &phc->version) < 0 ||
        s_expect(&s, "$m=") < 0 || s_parse_u32(&s, &phc->m) < 0 || s_expect(&s, ",t=") < 0 ||
        s_parse_u32(&s, &phc->t) < 0 || s_expect(&s, ",p=") < 0 || s_parse_u32(&s, &phc->p) < 0 ||
        s_expect(&s, "$") < 0 || s_parse_b64(&s, &phc->salt_len) < 0 || s_expect(&s, "$") < 0 ||
        s_parse_b64(&s, &phc->hash_len) < 0)
        return -1;
    return *s == '\0' ? 0 : -1;
}

/* Length of password if it is acceptable input for hashing, else -1. */
static long s_password_len(const char *password)
{
    if (!password)
        return -1;
    size_t n = strnlen(password, BC_PASSWORD_MAX_BYTES + 1);
    return n > BC_PASSWORD_MAX_BYTES ? -1 : (long)n;
}

int bc_password_hash(const char *password, char *out, size_t out_len, bc_error_t *err)
{
    if (out_len > 0)
        out[0] = '\0';
    long n = s_password_len(password);
    if (n < 0)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            password ? "password is too long" : "password is missing");
    size_t need = argon2_encodedlen(BC_ARGON2_T_COST, BC_ARGON2_M_COST_KIB, BC_ARGON2_PARALLELISM,
                                    BC_ARGON2_SALT_LEN, BC_ARGON2_HASH_LEN, Argon2_id);
    if (out_len < need) {
        bc_error_set(err, BC_INTERNAL, NULL, "could not hash the password");
        bc_error_detail(err, "password hash buffer %zu bytes, need %zu", out_len, need);
        return -1;
    }
    uint8_t salt[BC_ARGON2_SALT_LEN];
    bc_random_bytes(salt, sizeof salt);
    int rc = argon2id_hash_encoded(BC_ARGON2_T_COST, BC_ARGON2_M_COST_KIB, BC_ARGON2_PARALLELISM,
                                   password, (size_t)n, salt, sizeof salt, BC_ARGON2_HASH_LEN, out,
                                   out_len);
    if (rc != ARGON2_OK) {
        out[0] = '\0';
        bc_error_set(err, BC_INTERNAL, NULL, "could not hash the password");
        bc_error_detail(err, "argon2id_hash_encoded: %s", argon2_error_message(rc));
        return -1;
    }
    return 0;
}

/* The checks bc_password_verify makes before running Argon2, shared with the
 * dummy so that both return early in exactly the same cases. */
static bool s_verify_inputs_ok(const char *encoded, const char *password, size_t *pw_len)
{
    long n = s_password_len(password);
    s_phc_t phc;
    if (n < 0 || s_phc_parse(encoded, &phc) < 0)
        return false;
    if (phc.m > BC_ARGON2_VERIFY_MAX_M_KIB || phc.t > BC_ARGON2_VERIFY_MAX_T ||
        phc.p > BC_ARGON2_VERIFY_MAX_P)
        return false;
    *pw_len = (size_t)n;
    return true;
}

bool bc_password_verify(const char *encoded, const char *password)
{
    size_t n;
    if (!s_verify_inputs_ok(encoded, password, &n))
        return false;
    return argon2id_verify(encoded, password, n) == ARGON2_OK;
}

bool bc_password_verify_dummy(const char *password)
{
    /* A well-formed hash with the current parameters whose "hash" is random
     * bytes: verifying costs exactly a real verification and cannot match. */
    uint8_t salt[BC_ARGON2_SALT_LEN], hash[BC_ARGON2_HASH_LEN];
    bc_random_bytes(salt, sizeof salt);
    bc_random_bytes(hash, sizeof hash);
    char salt64[(4 * BC_ARGON2_SALT_LEN + 2) / 3 + 1], hash64[(4 * BC_ARGON2_HASH_LEN + 2) / 3 + 1];
    s_base64_encode(salt, sizeof salt, s_b64_std, salt64);
    s_base64_encode(hash, sizeof hash, s_b64_std, hash64);
    char encoded[BC_PASSWORD_HASH_MAX];
    snprintf(encoded, sizeof encoded, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", ARGON2_VERSION_13,
             BC_ARGON2_M_COST_KIB, BC_ARGON2_T_COST, BC_ARGON2_PARALLELISM, salt64, hash64);
    size_t n;
    if (s_verify_inputs_ok(encoded, password, &n))
        (void)argon2id_verify(encoded, password, n);
    return false;
}

bool bc_password_needs_rehash(const char *encoded)
{
    s_phc_t phc;
    if (s_phc_parse(encoded, &phc) < 0)
        return true;
    return phc.version != ARGON2_VERSION_13 || phc.m < BC_ARGON2_M_COST_KIB ||
           phc.t < BC_ARGON2_T_COST || phc.p < BC_ARGON2_PARALLELISM ||
           phc.salt_len < BC_ARGON2_SALT_LEN || phc.hash_len < BC_ARGON2_HASH_LEN;
}

/* Decodes the code point at s[*i] of a string already known to be valid
 * UTF-8 and advances *i. */
static uint32_t s_utf8_next(const unsigned char *s, size_t *i)
{
    unsigned char c = s[(*i)++];
    if (c < 0x80)
        return c;
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
    uint32_t cp = c & (0x3f >> more);
    while (more-- > 0)
        cp = (cp << 6) | (s[(*i)++] & 0x3f);
    return cp;
}

/* Unicode White_Space, plus the zero-width characters that look like
 * nothing at all. */
static bool s_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200d) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x2060 || cp == 0x3000 || cp == 0xfeff;
}

int bc_password_policy(const char *password, bc_error_t *err)
{
    if (!password)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password", "password is missing");
    size_t len = strnlen(password, BC_PASSWORD_MAX_BYTES + 1);
    if (len > BC_PASSWORD_MAX_BYTES)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            "password must be at most %d characters", BC_PASSWORD_MAX_CHARS);
    if (!bc_utf8_valid(password, len))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            "password contains invalid characters");
    const unsigned char *s = (const unsigned char *)password;
    size_t chars = 0;
    bool all_space = true;
    for (size_t i = 0; i < len;) {
        if (!s_is_space(s_utf8_next(s, &i)))
            all_space = false;
        chars++;
    }
    if (chars < BC_PASSWORD_MIN_CHARS)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            "password must be at least %d characters", BC_PASSWORD_MIN_CHARS);
    if (chars > BC_PASSWORD_MAX_CHARS)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            "password must be at most %d characters", BC_PASSWORD_MAX_CHARS);
    if (all_space)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "password",
                            "password must not be only spaces");
    return 0;
}

/* ---- TOTP --------------------------------------------------------------- */

void bc_totp_secret_new(uint8_t secret[BC_TOTP_SECRET_LEN])
{
    bc_random_bytes(secret, BC_TOTP_SECRET_LEN);
}

int bc_hotp(const uint8_t *key, size_t key_len, uint64_t counter, int digits)
{
    static const uint32_t pow10[] = {1000000, 10000000, 100000000};
    if (digits < 6 || digits > 8 || !key || key_len == 0 || key_len > INT32_MAX)
        return -1;
    uint8_t msg[8];
    for (int i = 7; i >= 0; i--) {
        msg[i] = (uint8_t)(counter & 0xff);
        counter >>= 8;
    }
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha1(), key, (int)key_len, msg, sizeof msg, mac, &mac_len) || mac_len != 20)
        return -1;
    /* RFC 4226 5.3 dynamic truncation. */
    int off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    OPENSSL_cleanse(mac, sizeof mac);
    return (int)(bin % pow10[digits - 6]);
}

bc_totp_result_t bc_totp_verify(const uint8_t *key, size_t key_len, const char *code,
                                int64_t unix_time, int window, int64_t last_used_step,
                                int64_t *matched_step)
{
    assert(window >= 0 && window <= BC_TOTP_MAX_WINDOW);
    if (window < 0)
        window = 0;
    if (window > BC_TOTP_MAX_WINDOW)
        window = BC_TOTP_MAX_WINDOW;
    if (!code)
        return BC_TOTP_MALFORMED;
    for (int i = 0; i < BC_TOTP_DIGITS; i++)
        if (code[i] < '0' || code[i] > '9')
            return BC_TOTP_MALFORMED;
    if (code[BC_TOTP_DIGITS] != '\0')
        return BC_TOTP_MALFORMED;
    if (unix_time < 0)
        return BC_TOTP_MISMATCH;

    /* Every candidate is computed and compared, so the time taken does not
     * depend on which step (if any) matched. */
    int64_t now = unix_time / BC_TOTP_PERIOD;
    int64_t found = -1;
    bool replay = false;
    for (int64_t step = now - window; step <= now + window; step++) {
        if (step < 0)
            continue;
        int v = bc_hotp(key, key_len, (uint64_t)step, BC_TOTP_DIGITS);
        if (v < 0)
            continue;
        char want[BC_TOTP_DIGITS];
        for (int i = BC_TOTP_DIGITS - 1; i >= 0; i--, v /= 10)
            want[i] = (char)('0' + v % 10);
        bool eq = bc_ct_equal(want, code, BC_TOTP_DIGITS);
        OPENSSL_cleanse(want, sizeof want);
        if (eq && step > last_used_step && found < 0)
            found = step;
        else if (eq && step <= last_used_step)
            replay = true;
    }
    if (found >= 0) {
        if (matched_step)
            *matched_step = found;
        return BC_TOTP_OK;
    }
    return replay ? BC_TOTP_REPLAY : BC_TOTP_MISMATCH;
}

/* A bounded string builder: appends silently stop at the end of the buffer
 * and set overflow, which the caller checks once. */
typedef struct {
    char *p;
    size_t size, len;
    bool overflow;
} s_sb_t;

static void s_sb_add(s_sb_t *sb, const char *s, size_t n)
{
    if (sb->overflow || sb->size - sb->len <= n) {
        sb->overflow = true;
        return;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void s_sb_str(s_sb_t *sb, const char *s)
{
    s_sb_add(sb, s, strlen(s));
}

/* RFC 3986 percent-encoding: only unreserved characters stay literal. */
static void s_sb_pct(s_sb_t *sb, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            s_sb_add(sb, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            s_sb_add(sb, e, 3);
        }
    }
}

int bc_totp_uri(const uint8_t *secret, size_t secret_len, const char *account, char *out,
                size_t out_size, bc_error_t *err)
{
    if (out_size > 0)
        out[0] = '\0';
    if (!account || !*account)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "account", "account name is missing");
    size_t alen = strnlen(account, 255);
    if (alen > 254 || !bc_utf8_valid(account, alen))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "account", "account name is not valid");
    if (!secret || secret_len == 0 || secret_len > 64)
        return bc_error_set(err, BC_INTERNAL, NULL, "could not build the provisioning URI");
    char b32[BC_BASE32_LEN(64) + 1];
    bc_base32_encode(secret, secret_len, b32, sizeof b32);

    s_sb_t sb = {out, out_size, 0, out_size == 0};
    s_sb_str(&sb, "otpauth://totp/");
    s_sb_pct(&sb, BC_TOTP_ISSUER);
    s_sb_str(&sb, ":");
    s_sb_pct(&sb, account);
    s_sb_str(&sb, "?secret=");
    s_sb_str(&sb, b32);
    s_sb_str(&sb, "&issuer=");
    s_sb_pct(&sb, BC_TOTP_ISSUER);
    char tail[64];
    snprintf(tail, sizeof tail, "&algorithm=SHA1&digits=%d&period=%d", BC_TOTP_DIGITS,
             BC_TOTP_PERIOD);
    s_sb_str(&sb, tail);
    OPENSSL_cleanse(b32, sizeof b32);
    if (sb.overflow) {
        OPENSSL_cleanse(out, out_size);
        if (out_size > 0)
            out[0] = '\0';
        bc_error_set(err, BC_INTERNAL, NULL, "could not build the provisioning URI");
        bc_error_detail(err, "URI buffer of %zu bytes is too small", out_size);
        return -1;
    }
    return 0;
}

/* ---- Tokens ------------------------------------------------------------- */

static bool s_prefix_ok(const char *prefix, size_t *len)
{
    if (!prefix)
        return false;
    size_t n = 0;
    for (; prefix[n]; n++) {
        char c = prefix[n];
        if (n >= BC_TOKEN_PREFIX_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    *len = n;
    return n > 0;
}

void bc_token_new(const char *prefix, char *out, size_t out_size)
{
    size_t plen = 0;
    bool ok = s_prefix_ok(prefix, &plen) && out_size >= plen + BC_TOKEN_RANDOM_CHARS + 1;
    assert(ok);
    if (!ok) {
        if (out_size > 0)
            out[0] = '\0';
        return;
    }
    uint8_t raw[BC_TOKEN_RANDOM_BYTES];
    bc_random_bytes(raw, sizeof raw);
    memcpy(out, prefix, plen);
    s_base64_encode(raw, sizeof raw, s_b64_url, out + plen);
    OPENSSL_cleanse(raw, sizeof raw);
}

bool bc_token_valid(const char *token, const char *prefix)
{
    size_t plen;
    if (!token || !s_prefix_ok(prefix, &plen) || strncmp(token, prefix, plen) != 0)
        return false;
    const char *r = token + plen;
    for (int i = 0; i < BC_TOKEN_RANDOM_CHARS; i++)
        if (!s_is_b64_url(r[i]))
            return false;
    /* 43 characters carry 258 bits: the last one's two low bits are zero. */
    size_t last = (size_t)(strchr(s_b64_url, r[BC_TOKEN_RANDOM_CHARS - 1]) - s_b64_url);
    if (last % 4 != 0)
        return false;
    return r[BC_TOKEN_RANDOM_CHARS] == '\0';
}

void bc_token_hash(const char *token, char out[BC_TOKEN_HASH_LEN + 1])
{
    uint8_t md[32];
    unsigned int md_len = 0;
    if (!EVP_Digest(token, strlen(token), md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        /* Only a broken libcrypto gets here, as for bc_random_bytes. */
        fprintf(stderr, "{\"level\":\"error\",\"msg\":\"SHA-256 failed\"}\n");
        abort();
    }
    bc_hex(md, sizeof md, out);
}

bool bc_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
