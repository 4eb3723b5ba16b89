/*  libFuzzer target for what bc_crypt reads from outside: key files (an
 *  operator's file, but parsed before anything is trusted) and stored
 *  envelopes (a database row is outside the process). The first byte picks
 *  the parser. Envelopes are opened with a fixed keyring; whatever the
 *  bytes, decryption must fail cleanly or round-trip, never crash or leak.
 *  Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"

static const char s_keys[] = "key a AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                             "key b ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
                             "active b\n"
                             "index QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bc_keyring_t *ring;
    bc_error_t err;
    if (!ring) {
        ring = bc_keyring_parse(s_keys, sizeof s_keys - 1, "<fuzz>", &err);
        if (!ring)
            abort();
    }
    if (size < 1)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] & 1) {
        bc_keyring_t *k = bc_keyring_parse(text, size - 1, "<fuzz>", &err);
        bc_keyring_destroy(&k);
    } else {
        char *plain = NULL;
        size_t len = 0;
        if (bc_field_decrypt(ring, text, "fuzz:aad", &plain, &len, &err) == 0)
            bc_field_plaintext_free(&plain, len);
        (void)bc_field_needs_rewrap(ring, text);
        char norm[80];
        (void)bc_field_normalize_id(text, norm, sizeof norm, &err);
    }
    free(text);
    return 0;
}
