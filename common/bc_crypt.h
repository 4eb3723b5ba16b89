/*  bc_crypt: field-level encryption at rest for the most sensitive columns
 *  (Medicaid ID, SSN and other client identifiers; later note text).
 *
 *  A value is sealed with AES-256-GCM (OpenSSL EVP, libcrypto only): a fresh
 *  random 96-bit nonce per value, a 128-bit tag, and associated data that
 *  binds the ciphertext to its place, so a ciphertext copied into another
 *  row or column does not decrypt. The result is a text envelope that fits a
 *  text column and a libpq text parameter:
 *
 *      v1:<key_id>:<base64(nonce[12] || ciphertext || tag[16])>
 *
 *  (standard base64 alphabet with '=' padding). The associated data is
 *  exactly the caller's aad bytes, so any AES-GCM implementation decrypts an
 *  envelope given the key, which the known-answer tests rely on. The
 *  convention for aad is "<schema>.<table>.<column>:<row uuid>", for example
 *  "intake.clients.medicaid_id:5f0c...": the row's primary key, never a value
 *  that can change. aad is required (not NULL, not empty).
 *
 *  Equality lookups (is this Medicaid ID already on file?) use a blind
 *  index: HMAC-SHA256 under a separate index key of
 *  domain || 0x00 || normalized value, as 64 lowercase hex digits, stored in
 *  its own column beside the envelope. The domain ("medicaid_id", "ssn")
 *  keeps equal digits in different kinds of identifier apart. The caller
 *  normalizes first (bc_field_normalize_id for identifiers), or "abc-1" and
 *  "ABC1" get different indexes. A blind index reveals which rows share a
 *  value, and whoever holds the index key can test guesses offline (an SSN
 *  has only 10^9 values): guard the index key as closely as the encryption
 *  keys. Changing the index key means recomputing every index from the
 *  decrypted values, so it is not rotated with the encryption keys.
 *
 *  Keys: the key file (setting field_keys_file, default var/keys/field.keys,
 *  made by deploy/gen-keys.sh) lives outside the database and its backups.
 *  One entry a line, fields separated by spaces or tabs; blank lines and
 *  lines starting with '#' are ignored:
 *
 *      # Beacon field keys
 *      key    k20250101  <base64 of 32 random bytes>   an encryption key
 *      key    k20260101  <base64 of 32 random bytes>   (as many as needed)
 *      active k20260101                                 the key new values use
 *      index  <base64 of 32 random bytes>               the blind-index key
 *
 *  A key id is 1 to 32 of A-Z a-z 0-9 _ -. bc_keyring_load refuses a file
 *  that is not a regular file, that group or others may read or write (as
 *  ssh does with private keys: chmod 600), that belongs to another user (root
 *  excepted), that is larger than 64 KiB; and any line it does not
 *  understand, invalid base64, a key that is not exactly 32 bytes, a
 *  duplicate key id, more than one active or index line, no active line, an
 *  active id that is not in the file, no index line, or an index key equal to
 *  an encryption key. Error messages give the path and line number, never
 *  key material (nor the content of a line that could be a key).
 *
 *  Rotation: add a new key line (deploy/gen-keys.sh DIR --rotate does it),
 *  point active at it, restart the services. New values use the new key;
 *  old envelopes still decrypt because old keys stay in the file and every
 *  envelope names its key. A background job re-encrypts each value for which
 *  bc_field_needs_rewrap() is true (bc_field_rewrap(), in the same
 *  transaction that reads it); once none remain, the old key line may go.
 *
 *  Errors: loading a key file fails with BC_FAILED_PRECONDITION (the process
 *  should not start). Any envelope that does not decrypt -- malformed,
 *  unknown version, unknown key id, wrong aad, any bit changed, truncated --
 *  fails with BC_DATA_LOSS, the same message for all, the reason in the
 *  detail; no plaintext is ever returned then, not even part of it. Bad
 *  arguments from the caller (no aad, a value too large) are
 *  BC_INVALID_ARGUMENT; a libcrypto failure is BC_INTERNAL.
 *
 *  Memory: key bytes live only in the keyring, which bc_keyring_destroy
 *  wipes; every temporary copy of a key or plaintext made here is wiped with
 *  OPENSSL_cleanse. Plaintext returned to the caller should be released with
 *  bc_field_plaintext_free, which wipes it too.
 *
 *  A keyring never changes once loaded: every function here is thread-safe
 *  and one keyring is shared by all worker threads.
 */
#ifndef BC_CRYPT_H
#define BC_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_error.h"

#define BC_CRYPT_KEY_LEN 32   /* AES-256 and HMAC-SHA256 keys */
#define BC_CRYPT_NONCE_LEN 12 /* 96-bit GCM nonce */
#define BC_CRYPT_TAG_LEN 16   /* 128-bit GCM tag */
#define BC_CRYPT_HMAC_LEN 32  /* HMAC-SHA256 output */

/* Longest key id, in characters. */
#define BC_KEY_ID_MAX 32
/* Largest plaintext bc_field_encrypt accepts (16 MiB). */
#define BC_FIELD_MAX_PLAINTEXT (16u * 1024 * 1024)
/* Length (without the NUL) of the longest envelope holding n plaintext
 * bytes: "v1:" + key id + ":" + base64 of nonce, ciphertext and tag. */
#define BC_FIELD_ENVELOPE_LEN(n)                                                                   \
    (3 + BC_KEY_ID_MAX + 1 + 4 * (((size_t)(n) + BC_CRYPT_NONCE_LEN + BC_CRYPT_TAG_LEN + 2) / 3))
/* Hex digits of a blind index (the buffer needs one more for the NUL). */
#define BC_FIELD_INDEX_HEX_LEN (2 * BC_CRYPT_HMAC_LEN)
/* Longest normalized identifier bc_field_normalize_id produces. */
#define BC_FIELD_ID_MAX 64

/* ---- Keyring ------------------------------------------------------------ */

typedef struct bc_keyring bc_keyring_t;

/* Loads the key file at path (format and checks above). Returns a new
 * keyring the caller owns (bc_keyring_destroy), or NULL with err set
 * (BC_FAILED_PRECONDITION, err->field "field_keys_file"). */
bc_keyring_t *bc_keyring_load(const char *path, bc_error_t *err);

/* Parses key-file text of len bytes already in memory, with every check
 * but those on the file itself (mode, owner, size); for tests and tools.
 * origin names the text in error messages ("<test>"). Returns a new keyring
 * or NULL with err set as for bc_keyring_load. */
bc_keyring_t *bc_keyring_parse(const char *text, size_t len, const char *origin, bc_error_t *err);

/* Wipes every key, frees the keyring and sets *self to NULL. NULL and
 * *self == NULL are allowed. */
void bc_keyring_destroy(bc_keyring_t **self);

/* Id of the key new envelopes use; owned by the keyring. */
const char *bc_keyring_active_id(const bc_keyring_t *self);

/* Number of encryption keys (active and older). */
size_t bc_keyring_key_count(const bc_keyring_t *self);

/* ---- Field encryption --------------------------------------------------- */

/* Encrypts len bytes of plaintext (any bytes, NUL included; NULL allowed
 * when len is 0) under the active key, bound to aad (a non-empty string,
 * convention above). On success *out is a new NUL-terminated envelope of at
 * most BC_FIELD_ENVELOPE_LEN(len) characters, owned by the caller (free()
 * or bc_free(&p)), and 0 is returned. On failure *out is NULL, err is set
 * (BC_INVALID_ARGUMENT: no aad or len > BC_FIELD_MAX_PLAINTEXT; BC_INTERNAL:
 * libcrypto failed) and -1 is returned. Two encryptions of the same
 * plaintext give different envelopes. */
int bc_field_encrypt(const bc_keyring_t *self, const void *plaintext, size_t len, const char *aad,
                     char **out, bc_error_t *err);

/* Decrypts an envelope made by bc_field_encrypt with the same aad, under
 * whichever key of the keyring it names. On success *out is a new buffer of
 * *out_len plaintext bytes plus a terminating NUL (so text can be used as a
 * string), owned by the caller, to be released with
 * bc_field_plaintext_free(out, *out_len); returns 0. On failure *out is NULL
 * and *out_len 0, err is set (BC_DATA_LOSS for any envelope that does not
 * authenticate, see above; BC_INVALID_ARGUMENT: aad missing; BC_INTERNAL:
 * libcrypto failed) and -1 is returned. */
int bc_field_decrypt(const bc_keyring_t *self, const char *envelope, const char *aad, char **out,
                     size_t *out_len, bc_error_t *err);

/* Wipes len bytes at *plaintext, frees it and sets *plaintext to NULL.
 * NULL and *plaintext == NULL are allowed. */
void bc_field_plaintext_free(char **plaintext, size_t len);

/* True unless envelope is a v1 envelope under the active key: false means
 * nothing to do, true means re-encrypt it with bc_field_rewrap (which fails
 * with BC_DATA_LOSS if the envelope is malformed or its key is gone). */
bool bc_field_needs_rewrap(const bc_keyring_t *self, const char *envelope);

/* Decrypts envelope (bound to aad) and encrypts the plaintext again under
 * the active key with a fresh nonce, wiping the plaintext in between. *out
 * and the errors are as for bc_field_encrypt and bc_field_decrypt. */
int bc_field_rewrap(const bc_keyring_t *self, const char *envelope, const char *aad, char **out,
                    bc_error_t *err);

/* ---- Blind indexes ------------------------------------------------------ */

/* Writes the blind index of normalized_value in domain to out_hex
 * (BC_FIELD_INDEX_HEX_LEN lowercase hex digits and a NUL): HMAC-SHA256
 * under the keyring's index key of domain || 0x00 || normalized_value.
 * domain is 1 to 64 of a-z 0-9 _ . (for example "medicaid_id");
 * normalized_value is what the caller's normalizer produced (not empty).
 * Deterministic: the same keyring, domain and value always give the same
 * index. Returns 0, or -1 with err set (BC_INVALID_ARGUMENT) and out_hex
 * set to "". */
int bc_field_blind_index(const bc_keyring_t *self, const char *domain, const char *normalized_value,
                         char out_hex[BC_FIELD_INDEX_HEX_LEN + 1], bc_error_t *err);

/* Normalizes an identifier as typed (Medicaid ID, SSN, member number) for
 * bc_field_blind_index: ASCII letters to upper case, spaces, tabs, dashes
 * and dots removed ("123-45-6789" -> "123456789", "ab 12.3" -> "AB123").
 * Anything else (other punctuation, non-ASCII, control characters) is
 * refused rather than guessed at, as is a result that is empty or longer
 * than BC_FIELD_ID_MAX. out holds out_size bytes (BC_FIELD_ID_MAX + 1 is
 * always enough). Returns 0, or -1 with err set (BC_INVALID_ARGUMENT, the
 * message a phrase such as "must contain only letters and digits"; err->
 * field is empty for the caller to fill) and out set to "". */
int bc_field_normalize_id(const char *raw, char *out, size_t out_size, bc_error_t *err);

/* ---- Primitives (exposed for known-answer tests and tools) --------------- */

/* AES-256-GCM with a 96-bit nonce and a 128-bit tag: encrypts len bytes of
 * pt into ct (len bytes; may equal pt) and writes the tag. Returns 0, or -1
 * if libcrypto fails or len or aad_len exceeds INT_MAX. */
int bc_aes256gcm_seal(const uint8_t key[BC_CRYPT_KEY_LEN], const uint8_t nonce[BC_CRYPT_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *pt, size_t len, uint8_t *ct,
                      uint8_t tag[BC_CRYPT_TAG_LEN]);

/* The inverse: decrypts len bytes of ct into pt and checks the tag (in
 * constant time). Returns 0, or -1 if the tag does not match (pt is then
 * wiped) or libcrypto fails. */
int bc_aes256gcm_open(const uint8_t key[BC_CRYPT_KEY_LEN], const uint8_t nonce[BC_CRYPT_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *ct, size_t len,
                      const uint8_t tag[BC_CRYPT_TAG_LEN], uint8_t *pt);

/* HMAC-SHA256 of msg under key (any length). Returns 0, or -1 if libcrypto
 * fails or a length exceeds INT_MAX. */
int bc_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                   uint8_t out[BC_CRYPT_HMAC_LEN]);

/* Decoded length of n characters of padded base64 (RFC 4648 section 4), or
 * -1 unless the text is canonical: a non-zero multiple of 4 characters of
 * the alphabet, '=' only as the last one or two, and the bits the padding
 * leaves over all zero. */
long bc_base64_length(const char *in, size_t n);
/* Decodes n characters accepted by bc_base64_length into out (that many
 * bytes). */
void bc_base64_decode(const char *in, size_t n, uint8_t *out);

#endif
