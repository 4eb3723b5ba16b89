/*  bc_auth: the crypto behind logins, second factors, sessions and API keys.
 *
 *  Pure logic, no I/O and no database: the gateway's identity code stores
 *  what these functions produce and hands it back to them.
 *
 *  - Passwords: Argon2id (libargon2) in the standard PHC string format, a
 *    NIST SP 800-63B length-only policy, a dummy verification for unknown
 *    accounts so that login time does not reveal which emails exist.
 *  - TOTP: RFC 6238 over RFC 4226 HOTP on OpenSSL HMAC-SHA1, 6 digits, 30 s
 *    steps, with replay protection; RFC 4648 base32 and otpauth:// URIs for
 *    provisioning authenticator apps.
 *  - Tokens: opaque random bearer tokens ("bst_..." sessions, "bak_..." API
 *    keys) stored only as their SHA-256.
 *
 *  Every function is thread-safe. Argon2 hashing and verification each take
 *  20-30 ms of one core and 19 MiB of memory: never call them on an event
 *  loop thread, and bound how many run at once.
 */
#ifndef BC_AUTH_H
#define BC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_error.h"

/* ---- Passwords ---------------------------------------------------------- */

/* Argon2id cost: the OWASP Password Storage Cheat Sheet's first
 * configuration (19 MiB, 2 passes, 1 lane). One hash or verification takes
 * 20-30 ms of one core (measured on the 2-core development server), so one
 * core checks 30-50 logins a second and the other stays free for traffic;
 * an attacker with a stolen table pays 19 MiB per guess. Raising any of
 * these makes bc_password_needs_rehash() true for older hashes, which the
 * login code upgrades on the next successful login. */
#define BC_ARGON2_M_COST_KIB 19456
#define BC_ARGON2_T_COST 2
#define BC_ARGON2_PARALLELISM 1
#define BC_ARGON2_SALT_LEN 16
#define BC_ARGON2_HASH_LEN 32

/* Largest costs bc_password_verify will spend on a stored hash: 256 MiB,
 * 16 passes, 8 lanes. Room for future upgrades, a bound on damage. */
#define BC_ARGON2_VERIFY_MAX_M_KIB 262144
#define BC_ARGON2_VERIFY_MAX_T 16
#define BC_ARGON2_VERIFY_MAX_P 8

/* Size of a buffer that holds any encoded hash bc_password_hash produces
 * ("$argon2id$v=19$m=19456,t=2,p=1$<22 chars>$<43 chars>" is 97 bytes). */
#define BC_PASSWORD_HASH_MAX 128

/* Policy bounds, in Unicode code points (NIST SP 800-63B: at least 8, we
 * ask 12; allow at least 64, we allow 256). */
#define BC_PASSWORD_MIN_CHARS 12
#define BC_PASSWORD_MAX_CHARS 256
/* Longest password in bytes any function here accepts (256 x 4-byte UTF-8). */
#define BC_PASSWORD_MAX_BYTES (BC_PASSWORD_MAX_CHARS * 4)

/* Hashes password (NUL-terminated, at most BC_PASSWORD_MAX_BYTES bytes) with
 * Argon2id, the parameters above and a fresh 16-byte random salt, and writes
 * the PHC string "$argon2id$v=19$m=...,t=...,p=...$salt$hash" into out
 * (out_len >= BC_PASSWORD_HASH_MAX is always enough). Does not apply the
 * policy: call bc_password_policy first when the password is being chosen.
 * Returns 0, or -1 with err set: INVALID_ARGUMENT for a NULL or too long
 * password, INTERNAL when out is too small or libargon2 fails (for example
 * out of memory; the detail names the libargon2 error). */
int bc_password_hash(const char *password, char *out, size_t out_len, bc_error_t *err);

/* True when password matches encoded, an Argon2id PHC string from
 * bc_password_hash (any parameters). The comparison inside libargon2 is
 * constant time. False for NULL arguments, a password longer than
 * BC_PASSWORD_MAX_BYTES, a malformed or non-Argon2id string and a string
 * whose cost exceeds the BC_ARGON2_VERIFY_MAX_* bounds (a damaged row must
 * not be able to stall the gateway). */
bool bc_password_verify(const char *encoded, const char *password);

/* Spends the same time and memory as bc_password_verify against a hash with
 * the current parameters, and returns false. Call it when the login email is
 * unknown (or the account cannot log in) so that the response time does not
 * tell an attacker which accounts exist. password may be NULL. */
bool bc_password_verify_dummy(const char *password);

/* True when encoded should be replaced by a fresh bc_password_hash of the
 * same password (after a successful verify): it is not a well-formed
 * Argon2id version 19 string, or its memory cost, passes, lanes, salt length
 * or hash length is below the current constants. */
bool bc_password_needs_rehash(const char *encoded);

/* Checks a newly chosen password against the policy (NIST SP 800-63B, no
 * composition rules): valid UTF-8 without NUL, 12 to 256 code points, not
 * only whitespace (ASCII or Unicode spaces). Returns 0, or -1 with err set to
 * INVALID_ARGUMENT, field "password" and a message fit for the user. Breached
 * password lists and context words (the user's email or name) are the
 * caller's to check. */
int bc_password_policy(const char *password, bc_error_t *err);

/* ---- TOTP (RFC 6238) ---------------------------------------------------- */

#define BC_TOTP_SECRET_LEN 20 /* 160 bits, RFC 4226's recommendation */
#define BC_TOTP_DIGITS 6
#define BC_TOTP_PERIOD 30 /* seconds per step */
#define BC_TOTP_MAX_WINDOW 10
#define BC_TOTP_ISSUER "Beacon"
/* Size of a buffer enough for bc_totp_uri with an account name of up to
 * 254 bytes (the longest email address) and a 20-byte secret. */
#define BC_TOTP_URI_MAX 1024

/* Base32 text length for n bytes, without padding and without the NUL. */
#define BC_BASE32_LEN(n) (((n)*8 + 4) / 5)

typedef enum {
    BC_TOTP_OK = 0,        /* accepted; *matched_step set */
    BC_TOTP_MALFORMED = 1, /* code is not exactly 6 ASCII digits */
    BC_TOTP_MISMATCH = 2,  /* wrong code (or a key/time that cannot match) */
    BC_TOTP_REPLAY = 3     /* right code, but its step was already used */
} bc_totp_result_t;

/* Fills secret with BC_TOTP_SECRET_LEN random bytes for a new enrolment. */
void bc_totp_secret_new(uint8_t secret[BC_TOTP_SECRET_LEN]);

/* RFC 4648 base32 (upper case, no padding) of n bytes into out, which must
 * hold BC_BASE32_LEN(n) + 1 bytes. Returns the text length, or -1 (and
 * writes "" if out_size > 0) when out_size is too small. */
int bc_base32_encode(const uint8_t *in, size_t n, char *out, size_t out_size);

/* Decodes RFC 4648 base32: letters in either case, with or without the
 * '=' padding (if present it must complete the last 8-character group),
 * nothing else: no spaces, no other characters, no impossible lengths, no
 * non-zero bits after the last byte. Writes at most out_size bytes and sets
 * *out_len. Returns 0, or -1 with err set to INVALID_ARGUMENT (field
 * "secret") for bad input, or when the result would not fit. */
int bc_base32_decode(const char *in, uint8_t *out, size_t out_size, size_t *out_len,
                     bc_error_t *err);

/* RFC 4226 HOTP value of counter under key (HMAC-SHA1, dynamic truncation)
 * with digits 6, 7 or 8. Returns the value (format it "%0*d" with digits;
 * leading zeros matter), or -1 for another digit count, a NULL or empty key
 * or an HMAC failure. */
int bc_hotp(const uint8_t *key, size_t key_len, uint64_t counter, int digits);

/* Checks a 6-digit TOTP code typed by the user at unix_time (seconds).
 * Accepts the codes of steps floor(unix_time / 30) - window .. + window
 * (window 0..BC_TOTP_MAX_WINDOW; 1 tolerates 30 s of clock skew), but only
 * steps greater than last_used_step (pass -1 when the factor was never
 * used). On BC_TOTP_OK sets *matched_step (NULL allowed); the caller must
 * store it as the new last_used_step before reporting success, so that a code
 * works once. Every candidate is compared in constant time and all of them
 * are computed whatever the outcome. Callers should map every result except
 * BC_TOTP_OK to the same response; REPLAY is worth an audit entry. */
bc_totp_result_t bc_totp_verify(const uint8_t *key, size_t key_len, const char *code,
                                int64_t unix_time, int window, int64_t last_used_step,
                                int64_t *matched_step);

/* Writes the provisioning URI an authenticator app reads from a QR code:
 * otpauth://totp/Beacon:<account>?secret=<base32>&issuer=Beacon&
 * algorithm=SHA1&digits=6&period=30, with account (the staff email, valid
 * UTF-8, 1..254 bytes) percent-encoded (RFC 3986: all but A-Z a-z 0-9 - . _ ~)
 * and the secret (1..64 bytes) in base32. The URI contains the secret: do not
 * log it. Returns 0, or -1 with err set (INVALID_ARGUMENT, field "account"
 * for a bad account; INTERNAL when out_size is too small; BC_TOTP_URI_MAX is
 * always enough). */
int bc_totp_uri(const uint8_t *secret, size_t secret_len, const char *account, char *out,
                size_t out_size, bc_error_t *err);

/* ---- Tokens ------------------------------------------------------------- */

#define BC_TOKEN_SESSION_PREFIX "bst_"
#define BC_TOKEN_API_KEY_PREFIX "bak_"
#define BC_TOKEN_PREFIX_MAX 8 /* prefix: 1..8 of [a-z0-9_] */
#define BC_TOKEN_RANDOM_BYTES 32
#define BC_TOKEN_RANDOM_CHARS 43 /* base64url of 32 bytes, no padding */
/* Size of a buffer enough for any token: longest prefix, 43 chars, NUL. */
#define BC_TOKEN_MAX (BC_TOKEN_PREFIX_MAX + BC_TOKEN_RANDOM_CHARS + 1)
#define BC_TOKEN_HASH_LEN 64 /* hex SHA-256, without the NUL */

/* Writes prefix + base64url (no padding) of 32 random bytes into out. The
 * prefix is a constant of the caller's (BC_TOKEN_SESSION_PREFIX, ...): 1 to
 * 8 characters of [a-z0-9_]. out_size must be at least strlen(prefix) + 44
 * (BC_TOKEN_MAX always is). Both are programmer errors: asserted, and out is
 * left "" if assertions are compiled out. The token is a secret: show it
 * once, store only bc_token_hash of it. */
void bc_token_new(const char *prefix, char *out, size_t out_size);

/* True when token has the shape bc_token_new gives with this prefix: the
 * prefix and exactly 43 base64url characters, the last with its two unused
 * bits zero. A cheap filter before the hash lookup; says nothing about
 * whether the token exists. */
bool bc_token_valid(const char *token, const char *prefix);

/* Lowercase hex SHA-256 of the NUL-terminated token into out (64 chars +
 * NUL). A fast hash is right for 256-bit random tokens: the stored hash is
 * the lookup key and a leaked table does not reveal usable tokens. */
void bc_token_hash(const char *token, char out[BC_TOKEN_HASH_LEN + 1]);

/* True when the n bytes at a and b are equal; the time taken depends only
 * on n (OpenSSL CRYPTO_memcmp). */
bool bc_ct_equal(const void *a, const void *b, size_t n);

#endif
