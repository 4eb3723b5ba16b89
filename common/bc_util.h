/*  bc_util: clocks, random identifiers and small string checks. */
#ifndef BC_UTIL_H
#define BC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch (deadlines travel as this). */
int64_t bc_now_ms(void);
/* Monotonic clock in milliseconds (durations, timers). */
int64_t bc_mono_ms(void);
/* Monotonic clock in microseconds. */
int64_t bc_mono_us(void);
/* Fills buf with n cryptographically random bytes (OpenSSL RAND_bytes);
 * aborts if the generator fails. */
void bc_random_bytes(void *buf, size_t n);
/* Writes a random version-4 UUID, 36 chars + NUL, into out[37]. */
void bc_uuid_v4(char out[37]);
/* A UUID version 7 (RFC 9562): the Unix time in milliseconds, then random
 * bits. Ids made one after another sort in the order they were made, so
 * a table's index on them grows at its right edge instead of everywhere. */
void bc_uuid_v7(char out[37]);
/* True for a canonical lowercase-or-uppercase 8-4-4-4-12 hex UUID. */
bool bc_is_uuid(const char *s);
/* Hex-encodes n bytes into out (2n+1 bytes). */
void bc_hex(const void *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int bc_hexval(char c);
/* Decodes exactly 2n hex digits of s into n bytes of out; false for any
 * other length or a non-hex character (out is then undefined). */
bool bc_unhex(const char *s, size_t n, uint8_t *out);
/* True when s (len bytes) is valid UTF-8 without NUL bytes. */
bool bc_utf8_valid(const char *s, size_t len);
/* Checks a short human-entered text field (a name, a title): "" is allowed
 * unless required; otherwise valid UTF-8, no control characters, not only
 * whitespace, at most max_chars code points. Returns NULL when valid, else
 * the problem as a phrase to follow the field name ("is too long"). */
const char *bc_text_problem(const char *value, bool required, size_t max_chars);
/* RFC 3339 UTC timestamp with milliseconds for t_ms ("2026-01-02T03:04:05.678Z"). */
void bc_format_time_ms(int64_t t_ms, char out[32]);

#endif
