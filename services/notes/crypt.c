/*  crypt: note text at rest. Every body, addendum and review comment is an
 *  AES-256-GCM envelope (common/bc_crypt.h: random 96-bit nonce, key id in
 *  the envelope) whose associated data is
 *
 *      notes.<what>:<row id>:<client id>:<key id>
 *
 *  so an envelope moved to another note, another client or relabelled with
 *  another key id does not decrypt. Keys come from the field key file
 *  (field_keys_file), never from the database. Anything that does not
 *  authenticate is reported as damaged; no byte of it is returned.
 *
 *  bench_plaintext_notes (benchmarks only, see service.c) stores
 *  "clear:<text>" instead, to measure what encryption costs on the same
 *  path; a service started without it refuses such values as damaged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"
#include "notes.h"

static const notes_state_t *s_state(const bc_call_t *call)
{
    return call->state;
}

#define S_CLEAR "clear:"

/* "notes.<what>:<row>:<client>:<key id>" in buf. */
static void s_aad(char *buf, size_t size, const char *what, const char *row_id,
                  const char *client_id, const char *key_id, size_t key_len)
{
    snprintf(buf, size, "notes.%s:%s:%s:%.*s", what, row_id, client_id, (int)key_len, key_id);
}

char *notes_seal(bc_call_t *call, const char *what, const char *row_id, const char *client_id,
                 const char *plaintext)
{
    const notes_state_t *st = s_state(call);
    if (st->plaintext)
        return bc_arena_printf(call->arena, S_CLEAR "%s", plaintext);
    const char *kid = bc_keyring_active_id(st->keys);
    char aad[256];
    s_aad(aad, sizeof aad, what, row_id, client_id, kid, strlen(kid));
    char *env = NULL;
    bc_error_t err;
    if (bc_field_encrypt(st->keys, plaintext, strlen(plaintext), aad, &env, &err) < 0) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    char *out = bc_arena_strdup(call->arena, env);
    free(env);
    return out;
}

char *notes_open(bc_call_t *call, const char *what, const char *row_id, const char *client_id,
                 const char *envelope)
{
    const notes_state_t *st = s_state(call);
    if (!strncmp(envelope, S_CLEAR, strlen(S_CLEAR))) {
        if (st->plaintext)
            return bc_arena_strdup(call->arena, envelope + strlen(S_CLEAR));
        bc_call_fail(call, BC_DATA_LOSS, "", "the stored text is damaged");
        return NULL;
    }
    /* The key id the envelope names ("v1:<kid>:...") is bound in too. */
    const char *kid = strchr(envelope, ':');
    const char *end = kid ? strchr(kid + 1, ':') : NULL;
    if (!kid || !end || end - kid - 1 > BC_KEY_ID_MAX) {
        bc_call_fail(call, BC_DATA_LOSS, "", "the stored text is damaged");
        return NULL;
    }
    char aad[256];
    s_aad(aad, sizeof aad, what, row_id, client_id, kid + 1, (size_t)(end - kid - 1));
    char *plain = NULL;
    size_t len = 0;
    bc_error_t err;
    if (bc_field_decrypt(st->keys, envelope, aad, &plain, &len, &err) < 0) {
        bc_call_fail(call, BC_DATA_LOSS, "", "the stored text is damaged");
        snprintf(call->err.detail, sizeof call->err.detail, "%s", err.detail);
        return NULL;
    }
    char *out = bc_arena_strndup(call->arena, plain, len);
    bc_field_plaintext_free(&plain, len);
    return out;
}

int notes_rewrap_value(const bc_keyring_t *keys, const char *what, const char *row_id,
                       const char *client_id, const char *envelope, char **out, bc_error_t *err)
{
    *out = NULL;
    const char *kid = strchr(envelope, ':');
    const char *end = kid ? strchr(kid + 1, ':') : NULL;
    if (!kid || !end || end - kid - 1 > BC_KEY_ID_MAX)
        return bc_error_set(err, BC_DATA_LOSS, "", "the stored text is damaged");
    char aad[256];
    s_aad(aad, sizeof aad, what, row_id, client_id, kid + 1, (size_t)(end - kid - 1));
    char *plain = NULL;
    size_t len = 0;
    if (bc_field_decrypt(keys, envelope, aad, &plain, &len, err) < 0)
        return -1;
    const char *active = bc_keyring_active_id(keys);
    s_aad(aad, sizeof aad, what, row_id, client_id, active, strlen(active));
    int rc = bc_field_encrypt(keys, plain, len, aad, out, err);
    bc_field_plaintext_free(&plain, len);
    return rc;
}
