/*  bc_crypt: field-level encryption at rest (AES-256-GCM envelopes), blind
 *  indexes (HMAC-SHA256) and the keyring they draw keys from.
 *
 *  The format, the checks and the rotation story are in bc_crypt.h. Here:
 *  libcrypto does the cryptography (EVP AES-256-GCM, HMAC-SHA256,
 *  CRYPTO_memcmp, OPENSSL_cleanse; randomness is bc_random_bytes); this file
 *  only frames it. The key-file parser and the envelope parser are strict and
 *  small, so both can be fuzzed: no leniency in base64 (canonical, padded),
 *  no field it does not know. Every buffer that held key bytes or plaintext
 *  is wiped before it is freed or goes out of scope, on every path.
 */
#include "bc_crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bc_mem.h"
#include "bc_util.h"

/* Bounds on a key file: plenty for years of yearly rotation. */
#define S_KEYFILE_MAX_BYTES (64 * 1024)
#define S_KEYRING_MAX_KEYS 256
#define S_DOMAIN_MAX 64
#define S_VERSION "v1:"
#define S_VERSION_LEN 3
/* nonce || ciphertext || tag: the overhead around the plaintext. */
#define S_RAW_OVERHEAD (BC_CRYPT_NONCE_LEN + BC_CRYPT_TAG_LEN)

typedef struct {
    char id[BC_KEY_ID_MAX + 1];
    uint8_t key[BC_CRYPT_KEY_LEN];
} s_key_t;

struct bc_keyring {
    s_key_t keys[S_KEYRING_MAX_KEYS];
    size_t count;
    size_t active; /* index into keys */
    uint8_t index_key[BC_CRYPT_KEY_LEN];
};

/* ---- Base64 (RFC 4648 section 4, padded, canonical only) ---------------- */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Writes the padded base64 of n bytes to out (4 * ((n + 2) / 3) + 1 bytes). */
static void s_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = s_b64[(v >> 6) & 63];
        out[o++] = s_b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = s_b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

long bc_base64_length(const char *in, size_t n)
{
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > LONG_MAX)
        return -1;
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (s_b64_value(in[i]) < 0)
            return -1;
    if (pad == 2 && (s_b64_value(in[n - 3]) & 15) != 0)
        return -1;
    if (pad == 1 && (s_b64_value(in[n - 2]) & 3) != 0)
        return -1;
    return (long)(n / 4 * 3 - pad);
}

void bc_base64_decode(const char *in, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int chars = 0;
        for (int k = 0; k < 4; k++) {
            int d = in[i + k] == '=' ? 0 : s_b64_value(in[i + k]);
            if (in[i + k] != '=')
                chars++;
            v = (v << 6) | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        if (chars > 2)
            out[o++] = (uint8_t)(v >> 8);
        if (chars > 3)
            out[o++] = (uint8_t)v;
    }
}

/* Decodes a base64 key of exactly BC_CRYPT_KEY_LEN bytes. Returns 0, -1 if
 * the text is not canonical base64, -2 if it decodes to another length
 * (*got_len says how many bytes). Nothing is written on failure. */
static int s_key_decode(const char *b64, uint8_t key[BC_CRYPT_KEY_LEN], long *got_len)
{
    size_t n = strlen(b64);
    long len = bc_base64_length(b64, n);
    *got_len = len;
    if (len < 0)
        return -1;
    if (len != BC_CRYPT_KEY_LEN)
        return -2;
    bc_base64_decode(b64, n, key);
    return 0;
}

/* ---- Primitives --------------------------------------------------------- */

/* AES-256-GCM either way. Returns 0; -1 when decryption finds a wrong tag;
 * -2 when libcrypto fails or a length does not fit its int. out (len bytes)
 * is wiped on failure, so a failed open leaves no plaintext behind. */
static int s_gcm(int encrypt, const uint8_t *key, const uint8_t *nonce, const void *aad,
                 size_t aad_len, const void *in, size_t len, uint8_t *out, uint8_t *tag)
{
    if (len > INT_MAX || aad_len > INT_MAX)
        return -2;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -2;
    int rc = -2, n = 0;
    uint8_t final[16]; /* GCM's final step writes no bytes */
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, BC_CRYPT_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1)
        goto done;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        goto done;
    if (len > 0 && (EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1 || (size_t)n != len))
        goto done;
    if (encrypt) {
        if (EVP_CipherFinal_ex(ctx, final, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BC_CRYPT_TAG_LEN, tag) != 1)
            goto done;
    } else {
        uint8_t want[BC_CRYPT_TAG_LEN]; /* the ctrl takes a non-const pointer */
        memcpy(want, tag, sizeof want);
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BC_CRYPT_TAG_LEN, want) != 1)
            goto done;
        if (EVP_CipherFinal_ex(ctx, final, &n) != 1) {
            rc = -1;
            goto done;
        }
    }
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx); /* wipes the key schedule */
    if (rc != 0 && len > 0 && out)
        OPENSSL_cleanse(out, len);
    return rc;
}

int bc_aes256gcm_seal(const uint8_t key[BC_CRYPT_KEY_LEN], const uint8_t nonce[BC_CRYPT_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *pt, size_t len, uint8_t *ct,
                      uint8_t tag[BC_CRYPT_TAG_LEN])
{
    return s_gcm(1, key, nonce, aad, aad_len, pt, len, ct, tag) == 0 ? 0 : -1;
}

int bc_aes256gcm_open(const uint8_t key[BC_CRYPT_KEY_LEN], const uint8_t nonce[BC_CRYPT_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *ct, size_t len,
                      const uint8_t tag[BC_CRYPT_TAG_LEN], uint8_t *pt)
{
    return s_gcm(0, key, nonce, aad, aad_len, ct, len, pt, (uint8_t *)tag) == 0 ? 0 : -1;
}

int bc_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                   uint8_t out[BC_CRYPT_HMAC_LEN])
{
    static const uint8_t empty[1] = {0};
    if (key_len > INT_MAX)
        return -1;
    unsigned int out_len = 0;
    /* HMAC() reads a NULL key as "no key given": pass a real empty one. */
    if (!HMAC(EVP_sha256(), key_len ? key : empty, (int)key_len, len ? msg : empty, len, out,
              &out_len) ||
        out_len != BC_CRYPT_HMAC_LEN) {
        OPENSSL_cleanse(out, BC_CRYPT_HMAC_LEN);
        return -1;
    }
    return 0;
}

/* ---- Keyring ------------------------------------------------------------ */

static bool s_key_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > BC_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The key with this id (len characters, not NUL-terminated), or NULL. */
static const s_key_t *s_key_find(const bc_keyring_t *self, const char *id, size_t len)
{
    for (size_t i = 0; i < self->count; i++)
        if (strlen(self->keys[i].id) == len && memcmp(self->keys[i].id, id, len) == 0)
            return &self->keys[i];
    return NULL;
}

static bool s_all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Sets a key-file error: "key file ORIGIN[ line N]: ...". Returns -1. */
static int s_file_error(bc_error_t *err, const char *origin, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_file_error(bc_error_t *err, const char *origin, int line, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0)
        return bc_error_set(err, BC_FAILED_PRECONDITION, "field_keys_file",
                            "key file %s line %d: %s", origin, line, what);
    return bc_error_set(err, BC_FAILED_PRECONDITION, "field_keys_file", "key file %s: %s", origin,
                        what);
}

/* What the parser remembers between lines besides the keys themselves. */
typedef struct {
    const char *origin;
    char active_id[BC_KEY_ID_MAX + 1];
    int active_line, index_line;
} s_parse_t;

static int s_parse_key_line(bc_keyring_t *self, s_parse_t *ps, int line, char **tok, int ntok,
                            bc_error_t *err)
{
    if (ntok != 3)
        return s_file_error(err, ps->origin, line, "expected: key <id> <base64 key>");
    size_t id_len = strlen(tok[1]);
    if (!s_key_id_valid(tok[1], id_len))
        /* Not printed: a misplaced key could stand where the id belongs. */
        return s_file_error(err, ps->origin, line, "key id must be 1 to %d of A-Z a-z 0-9 _ -",
                            BC_KEY_ID_MAX);
    if (s_key_find(self, tok[1], id_len))
        return s_file_error(err, ps->origin, line, "duplicate key id '%s'", tok[1]);
    if (self->count == S_KEYRING_MAX_KEYS)
        return s_file_error(err, ps->origin, line, "more than %d keys", S_KEYRING_MAX_KEYS);
    s_key_t *k = &self->keys[self->count];
    long got = 0;
    int rc = s_key_decode(tok[2], k->key, &got);
    if (rc == -1)
        return s_file_error(err, ps->origin, line, "key '%s' is not valid base64", tok[1]);
    if (rc == -2)
        return s_file_error(err, ps->origin, line, "key '%s' is %ld bytes, must be %d", tok[1], got,
                            BC_CRYPT_KEY_LEN);
    if (s_all_zero(k->key, sizeof k->key))
        return s_file_error(err, ps->origin, line, "key '%s' is all zero bytes", tok[1]);
    memcpy(k->id, tok[1], id_len + 1);
    self->count++;
    return 0;
}

static int s_parse_line(bc_keyring_t *self, s_parse_t *ps, int line, char *text, bc_error_t *err)
{
    char *tok[4];
    int ntok = 0;
    for (char *p = text; *p && ntok < 4;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || (ntok == 0 && *p == '#'))
            break;
        tok[ntok++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (ntok == 0)
        return 0;
    if (strcmp(tok[0], "key") == 0)
        return s_parse_key_line(self, ps, line, tok, ntok, err);
    if (strcmp(tok[0], "active") == 0) {
        if (ntok != 2)
            return s_file_error(err, ps->origin, line, "expected: active <key id>");
        if (ps->active_line)
            return s_file_error(err, ps->origin, line, "second active line (first on line %d)",
                                ps->active_line);
        if (!s_key_id_valid(tok[1], strlen(tok[1])))
            return s_file_error(err, ps->origin, line, "key id must be 1 to %d of A-Z a-z 0-9 _ -",
                                BC_KEY_ID_MAX);
        snprintf(ps->active_id, sizeof ps->active_id, "%s", tok[1]);
        ps->active_line = line;
        return 0;
    }
    if (strcmp(tok[0], "index") == 0) {
        if (ntok != 2)
            return s_file_error(err, ps->origin, line, "expected: index <base64 key>");
        if (ps->index_line)
            return s_file_error(err, ps->origin, line, "second index line (first on line %d)",
                                ps->index_line);
        long got = 0;
        int rc = s_key_decode(tok[1], self->index_key, &got);
        if (rc == -1)
            return s_file_error(err, ps->origin, line, "index key is not valid base64");
        if (rc == -2)
            return s_file_error(err, ps->origin, line, "index key is %ld bytes, must be %d", got,
                                BC_CRYPT_KEY_LEN);
        if (s_all_zero(self->index_key, sizeof self->index_key))
            return s_file_error(err, ps->origin, line, "index key is all zero bytes");
        ps->index_line = line;
        return 0;
    }
    /* The first field is not echoed: it could be a pasted key. */
    return s_file_error(err, ps->origin, line,
                        "unknown entry (expected key, active, index or a # comment)");
}

/* The checks that need the whole file. */
static int s_parse_finish(bc_keyring_t *self, const s_parse_t *ps, bc_error_t *err)
{
    if (self->count == 0)
        return s_file_error(err, ps->origin, 0, "no key lines");
    if (!ps->active_line)
        return s_file_error(err, ps->origin, 0, "no active line naming the encryption key");
    const s_key_t *active = s_key_find(self, ps->active_id, strlen(ps->active_id));
    if (!active)
        return s_file_error(err, ps->origin, ps->active_line, "active key '%s' is not in the file",
                            ps->active_id);
    self->active = (size_t)(active - self->keys);
    if (!ps->index_line)
        return s_file_error(err, ps->origin, 0, "no index line (the blind-index key)");
    for (size_t i = 0; i < self->count; i++)
        if (CRYPTO_memcmp(self->keys[i].key, self->index_key, BC_CRYPT_KEY_LEN) == 0)
            return s_file_error(err, ps->origin, ps->index_line,
                                "the index key must differ from every encryption key "
                                "(it equals key '%s')",
                                self->keys[i].id);
    return 0;
}

bc_keyring_t *bc_keyring_parse(const char *text, size_t len, const char *origin, bc_error_t *err)
{
    s_parse_t ps = {.origin = origin ? origin : "<memory>"};
    if (!text) {
        s_file_error(err, ps.origin, 0, "no text");
        return NULL;
    }
    if (memchr(text, '\0', len)) {
        s_file_error(err, ps.origin, 0, "contains a NUL byte");
        return NULL;
    }
    char *buf = bc_malloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    bc_keyring_t *self = bc_calloc(1, sizeof *self);
    int rc = 0, line = 0;
    for (char *p = buf; *p && rc == 0;) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl)
            *nl = '\0';
        if (++line == INT_MAX)
            rc = s_file_error(err, ps.origin, 0, "too many lines");
        else
            rc = s_parse_line(self, &ps, line, p, err);
        p = next;
    }
    if (rc == 0)
        rc = s_parse_finish(self, &ps, err);
    OPENSSL_cleanse(buf, len + 1);
    free(buf);
    if (rc != 0)
        bc_keyring_destroy(&self);
    return self;
}

bc_keyring_t *bc_keyring_load(const char *path, bc_error_t *err)
{
    if (!path || !*path) {
        bc_error_set(err, BC_FAILED_PRECONDITION, "field_keys_file", "field_keys_file is not set");
        return NULL;
    }
    /* O_NONBLOCK: a FIFO put in its place must not hang the start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        s_file_error(err, path, 0, "cannot open: %s", strerror(e));
        return NULL;
    }
    /* Checked on the open descriptor, so it is this file's mode we trust. */
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    bc_keyring_t *self = NULL;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        s_file_error(err, path, 0, "cannot stat: %s", strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        s_file_error(err, path, 0, "is not a regular file");
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        s_file_error(err, path, 0,
                     "group or others may access it (mode %04o); it must be readable by "
                     "its owner only (chmod 600)",
                     (unsigned)(st.st_mode & 07777));
    } else if (st.st_uid != geteuid() && st.st_uid != 0) {
        s_file_error(err, path, 0, "belongs to uid %u, not to this process's user or root",
                     (unsigned)st.st_uid);
    } else if (st.st_size > S_KEYFILE_MAX_BYTES) {
        s_file_error(err, path, 0, "is larger than %d bytes", S_KEYFILE_MAX_BYTES);
    } else {
        /* One byte more than allowed, to notice a file that grew since fstat. */
        buf = bc_malloc(S_KEYFILE_MAX_BYTES + 1);
        int rc = 0;
        while (len <= S_KEYFILE_MAX_BYTES) {
            ssize_t n = read(fd, buf + len, S_KEYFILE_MAX_BYTES + 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                rc = s_file_error(err, path, 0, "cannot read: %s", strerror(e));
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        if (rc == 0 && len > S_KEYFILE_MAX_BYTES)
            s_file_error(err, path, 0, "is larger than %d bytes", S_KEYFILE_MAX_BYTES);
        else if (rc == 0)
            self = bc_keyring_parse(buf, len, path, err);
        OPENSSL_cleanse(buf, S_KEYFILE_MAX_BYTES + 1);
        free(buf);
    }
    close(fd);
    return self;
}

void bc_keyring_destroy(bc_keyring_t **self)
{
    if (!self || !*self)
        return;
    OPENSSL_cleanse(*self, sizeof **self);
    free(*self);
    *self = NULL;
}

const char *bc_keyring_active_id(const bc_keyring_t *self)
{
    return self->keys[self->active].id;
}

size_t bc_keyring_key_count(const bc_keyring_t *self)
{
    return self->count;
}

/* ---- Envelopes ---------------------------------------------------------- */

/* aad as bytes, or -1 with err set: binding to a row is not optional. */
static long s_aad_len(const char *aad, bc_error_t *err)
{
    size_t n = aad ? strnlen(aad, (size_t)INT_MAX + 1) : 0;
    if (n == 0 || n > INT_MAX) {
        bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "could not protect the value");
        bc_error_detail(err, "associated data is %s", n ? "too long" : "missing");
        return -1;
    }
    return (long)n;
}

int bc_field_encrypt(const bc_keyring_t *self, const void *plaintext, size_t len, const char *aad,
                     char **out, bc_error_t *err)
{
    *out = NULL;
    long aad_len = s_aad_len(aad, err);
    if (aad_len < 0)
        return -1;
    if (len > 0 && !plaintext)
        return bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "no value to protect");
    if (len > BC_FIELD_MAX_PLAINTEXT) {
        bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "value is too large to store");
        bc_error_detail(err, "%zu bytes, at most %u", len, BC_FIELD_MAX_PLAINTEXT);
        return -1;
    }
    const s_key_t *key = &self->keys[self->active];
    size_t raw_len = len + S_RAW_OVERHEAD;
    uint8_t *raw = bc_malloc(raw_len);
    bc_random_bytes(raw, BC_CRYPT_NONCE_LEN);
    if (s_gcm(1, key->key, raw, aad, (size_t)aad_len, plaintext, len, raw + BC_CRYPT_NONCE_LEN,
              raw + BC_CRYPT_NONCE_LEN + len) != 0) {
        free(raw);
        bc_error_set(err, BC_INTERNAL, NULL, "could not protect the value");
        bc_error_detail(err, "AES-256-GCM encryption failed in libcrypto");
        return -1;
    }
    size_t id_len = strlen(key->id);
    char *env = bc_malloc(S_VERSION_LEN + id_len + 1 + 4 * ((raw_len + 2) / 3) + 1);
    memcpy(env, S_VERSION, S_VERSION_LEN);
    memcpy(env + S_VERSION_LEN, key->id, id_len);
    env[S_VERSION_LEN + id_len] = ':';
    s_b64_encode(raw, raw_len, env + S_VERSION_LEN + id_len + 1);
    free(raw); /* ciphertext only: nothing to wipe */
    *out = env;
    return 0;
}

/* Splits a v1 envelope. On success *key is the keyring's key it names and
 * *b64 / *b64_len the payload; otherwise *why says what is wrong (for the
 * error detail; it never quotes the envelope beyond a valid key id). */
static int s_envelope_split(const bc_keyring_t *self, const char *env, const s_key_t **key,
                            const char **b64, size_t *b64_len, char *why, size_t why_size)
{
    if (!env) {
        snprintf(why, why_size, "no envelope");
        return -1;
    }
    if (strncmp(env, S_VERSION, S_VERSION_LEN) != 0) {
        snprintf(why, why_size, "not a v1 envelope");
        return -1;
    }
    const char *id = env + S_VERSION_LEN;
    const char *colon = memchr(id, ':', strnlen(id, BC_KEY_ID_MAX + 1));
    if (!colon || !s_key_id_valid(id, (size_t)(colon - id))) {
        snprintf(why, why_size, "malformed key id");
        return -1;
    }
    size_t id_len = (size_t)(colon - id);
    *key = s_key_find(self, id, id_len);
    if (!*key) {
        snprintf(why, why_size, "unknown key id '%.*s'", (int)id_len, id);
        return -1;
    }
    *b64 = colon + 1;
    *b64_len = strnlen(*b64, BC_FIELD_ENVELOPE_LEN(BC_FIELD_MAX_PLAINTEXT) + 1);
    if (*b64_len > BC_FIELD_ENVELOPE_LEN(BC_FIELD_MAX_PLAINTEXT)) {
        snprintf(why, why_size, "envelope too long");
        return -1;
    }
    return 0;
}

int bc_field_decrypt(const bc_keyring_t *self, const char *envelope, const char *aad, char **out,
                     size_t *out_len, bc_error_t *err)
{
    *out = NULL;
    *out_len = 0;
    long aad_len = s_aad_len(aad, err);
    if (aad_len < 0)
        return -1;
    const s_key_t *key = NULL;
    const char *b64 = NULL;
    size_t b64_len = 0;
    char why[96];
    long raw_len = -1;
    if (s_envelope_split(self, envelope, &key, &b64, &b64_len, why, sizeof why) == 0) {
        raw_len = bc_base64_length(b64, b64_len);
        if (raw_len < 0)
            snprintf(why, sizeof why, "payload is not canonical base64");
        else if (raw_len < S_RAW_OVERHEAD)
            snprintf(why, sizeof why, "payload is %ld bytes, shorter than nonce and tag", raw_len);
    }
    if (raw_len < S_RAW_OVERHEAD) {
        bc_error_set(err, BC_DATA_LOSS, NULL, "a protected value could not be decrypted");
        bc_error_detail(err, "%s", why);
        return -1;
    }
    uint8_t *raw = bc_malloc((size_t)raw_len);
    bc_base64_decode(b64, b64_len, raw);
    size_t pt_len = (size_t)raw_len - S_RAW_OVERHEAD;
    char *pt = bc_malloc(pt_len + 1);
    int rc = s_gcm(0, key->key, raw, aad, (size_t)aad_len, raw + BC_CRYPT_NONCE_LEN, pt_len,
                   (uint8_t *)pt, raw + BC_CRYPT_NONCE_LEN + pt_len);
    free(raw);
    if (rc != 0) {
        /* s_gcm has wiped whatever plaintext the failed attempt produced. */
        free(pt);
        if (rc == -1) {
            bc_error_set(err, BC_DATA_LOSS, NULL, "a protected value could not be decrypted");
            bc_error_detail(err,
                            "authentication failed under key '%s': the envelope was "
                            "changed or belongs to other associated data",
                            key->id);
        } else {
            bc_error_set(err, BC_INTERNAL, NULL, "a protected value could not be decrypted");
            bc_error_detail(err, "AES-256-GCM decryption failed in libcrypto");
        }
        return -1;
    }
    pt[pt_len] = '\0';
    *out = pt;
    *out_len = pt_len;
    return 0;
}

void bc_field_plaintext_free(char **plaintext, size_t len)
{
    if (!plaintext || !*plaintext)
        return;
    OPENSSL_cleanse(*plaintext, len);
    free(*plaintext);
    *plaintext = NULL;
}

bool bc_field_needs_rewrap(const bc_keyring_t *self, const char *envelope)
{
    const char *id = bc_keyring_active_id(self);
    size_t id_len = strlen(id);
    return !envelope || strncmp(envelope, S_VERSION, S_VERSION_LEN) != 0 ||
           strncmp(envelope + S_VERSION_LEN, id, id_len) != 0 ||
           envelope[S_VERSION_LEN + id_len] != ':';
}

int bc_field_rewrap(const bc_keyring_t *self, const char *envelope, const char *aad, char **out,
                    bc_error_t *err)
{
    *out = NULL;
    char *pt = NULL;
    size_t len = 0;
    if (bc_field_decrypt(self, envelope, aad, &pt, &len, err) != 0)
        return -1;
    int rc = bc_field_encrypt(self, pt, len, aad, out, err);
    bc_field_plaintext_free(&pt, len);
    return rc;
}

/* ---- Blind indexes ------------------------------------------------------ */

int bc_field_blind_index(const bc_keyring_t *self, const char *domain, const char *normalized_value,
                         char out_hex[BC_FIELD_INDEX_HEX_LEN + 1], bc_error_t *err)
{
    out_hex[0] = '\0';
    size_t dlen = domain ? strnlen(domain, S_DOMAIN_MAX + 1) : 0;
    bool domain_ok = dlen > 0 && dlen <= S_DOMAIN_MAX;
    for (size_t i = 0; domain_ok && i < dlen; i++) {
        char c = domain[i];
        domain_ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    }
    if (!domain_ok)
        return bc_error_set(err, BC_INVALID_ARGUMENT, NULL,
                            "blind index domain must be 1 to %d of a-z 0-9 _ .", S_DOMAIN_MAX);
    size_t vlen = normalized_value ? strnlen(normalized_value, BC_FIELD_MAX_PLAINTEXT + 1) : 0;
    if (vlen == 0 || vlen > BC_FIELD_MAX_PLAINTEXT)
        return bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "value to index is %s",
                            vlen ? "too long" : "empty");

    /* domain || 0x00 || value: the NUL cannot occur in a domain, so no two
     * (domain, value) pairs give the same message. */
    uint8_t small[256];
    size_t n = dlen + 1 + vlen;
    uint8_t *msg = n <= sizeof small ? small : bc_malloc(n);
    memcpy(msg, domain, dlen);
    msg[dlen] = 0;
    memcpy(msg + dlen + 1, normalized_value, vlen);
    uint8_t mac[BC_CRYPT_HMAC_LEN];
    int rc = bc_hmac_sha256(self->index_key, BC_CRYPT_KEY_LEN, msg, n, mac);
    OPENSSL_cleanse(msg, n);
    if (msg != small)
        free(msg);
    if (rc != 0)
        return bc_error_set(err, BC_INTERNAL, NULL, "could not compute a blind index");
    bc_hex(mac, sizeof mac, out_hex);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

int bc_field_normalize_id(const char *raw, char *out, size_t out_size, bc_error_t *err)
{
    if (out_size > 0)
        out[0] = '\0';
    if (!raw)
        return bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "is required");
    size_t o = 0;
    for (const char *p = raw; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '-' || c == '.')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            if (out_size > 0)
                OPENSSL_cleanse(out, out_size);
            return bc_error_set(err, BC_INVALID_ARGUMENT, NULL,
                                "must contain only letters and digits (spaces, dashes and dots "
                                "are ignored)");
        }
        if (o >= BC_FIELD_ID_MAX || o + 1 >= out_size) {
            if (out_size > 0)
                OPENSSL_cleanse(out, out_size);
            return bc_error_set(err, BC_INVALID_ARGUMENT, NULL,
                                "must be at most %d letters and digits", BC_FIELD_ID_MAX);
        }
        out[o++] = c;
    }
    if (o == 0)
        return bc_error_set(err, BC_INVALID_ARGUMENT, NULL, "is required");
    out[o] = '\0';
    return 0;
}
