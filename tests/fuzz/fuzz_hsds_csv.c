/*  libFuzzer target for the HSDS CSV reader (services/referral/hsds_csv.c,
 *  on libcsv), which reads uploaded package files: any bytes must parse or
 *  be refused without a crash, every row's line must grow, and each field
 *  written back with hsds_csv_field must read as the same single field.
 *
 *  `make fuzz` builds and runs it with the others. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/referral/hsds_csv.c"

typedef struct {
    bc_arena_t *arena;
    int last_line;
} s_state_t;

static int s_one(void *arg, char **fields, size_t n, int line)
{
    const char *want = arg;
    if (n != 1 || strcmp(fields[0] ? fields[0] : "", want))
        abort();
    (void)line;
    return 0;
}

static int s_row(void *arg, char **fields, size_t n, int line)
{
    s_state_t *st = arg;
    if (line <= st->last_line || n == 0)
        abort();
    st->last_line = line;
    for (size_t i = 0; i < n; i++) {
        if (!fields[i] || !*fields[i] || strlen(fields[i]) > 4096)
            continue;
        const char *text = hsds_csv_field(st->arena, fields[i]);
        int bad;
        hsds_csv_read(st->arena, text, strlen(text), s_one, fields[i], &bad);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_state_t st = {bc_arena_new(4096), 0};
    int bad;
    hsds_csv_read(st.arena, (const char *)data, size, s_row, &st, &bad);
    bc_arena_destroy(&st.arena);
    return 0;
}
