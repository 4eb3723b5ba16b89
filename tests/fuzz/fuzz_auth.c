/*  libFuzzer target for the authentication decoders that read text from
 *  outside: base32 TOTP secrets (decode, then encode and compare), token
 *  shape checks and stored password-hash parsing. Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    uint8_t raw[256];
    size_t n = 0;
    bc_error_t err;
    if (bc_base32_decode(text, raw, sizeof raw, &n, &err) == 0) {
        /* What decodes must encode back to the same bytes. */
        char again[512];
        uint8_t back[256];
        size_t m = 0;
        if (bc_base32_encode(raw, n, again, sizeof again) < 0 ||
            bc_base32_decode(again, back, sizeof back, &m, &err) < 0 || m != n ||
            memcmp(raw, back, n) != 0)
            abort();
    }
    (void)bc_token_valid(text, BC_TOKEN_SESSION_PREFIX);
    (void)bc_token_valid(text, BC_TOKEN_API_KEY_PREFIX);
    (void)bc_password_needs_rehash(text);
    (void)bc_password_policy(text, &err);
    free(text);
    return 0;
}
