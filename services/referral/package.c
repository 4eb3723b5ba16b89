/*  package: an uploaded zip of an HSDS data package (what ExportDirectory
 *  gives, or what the Open Referral tools publish) opened into the files it
 *  holds, so that ImportDirectory reads them as if each had been sent on
 *  its own. Read with libarchive from memory. An archive is hostile input:
 *  only regular files are taken (directories passed, links and devices
 *  refused), names lose their folders, and the files unpacked from one
 *  request are bounded in number and in total size (a zip bomb stops at the
 *  bound instead of filling memory). */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <strings.h>

#include "referral.h"

/* The most bytes the files of one request may unpack to. */
#define S_MAX_UNPACKED (64u << 20)

static bool s_is_zip(const Beacon__Referral__ImportFile *f)
{
    size_t n = strlen(f->name);
    return n > 4 && !strcasecmp(f->name + n - 4, ".zip");
}

/* Appends the regular files of zip f to out (*n of them, at most max);
 * *budget: bytes still allowed. BC_OK or a failure of call. */
static bc_code_t s_unzip(bc_call_t *call, const Beacon__Referral__ImportFile *f,
                         Beacon__Referral__ImportFile **out, size_t *n, size_t max, size_t *budget)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_zip(a);
    bc_code_t code = BC_OK;
    if (archive_read_open_memory(a, f->content.data, f->content.len) != ARCHIVE_OK) {
        code = bc_call_fail(call, BC_INVALID_ARGUMENT, "files.content",
                            "file \"%.80s\" is not a zip archive that can be read", f->name);
        goto done;
    }
    struct archive_entry *e;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *path = archive_entry_pathname(e);
        if (archive_entry_filetype(e) == AE_IFDIR)
            continue;
        if (archive_entry_filetype(e) != AE_IFREG || !path) {
            code = bc_call_fail(call, BC_INVALID_ARGUMENT, "files.content",
                                "file \"%.80s\" holds something that is not a plain file",
                                f->name);
            goto done;
        }
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!*base || *base == '.' || !strncmp(path, "__MACOSX/", 9))
            continue; /* hidden files and the resource forks some zip tools add */
        la_int64_t size = archive_entry_size(e);
        if (*n >= max || size < 0 || (size_t)size > *budget) {
            code = bc_call_fail(call, BC_PAYLOAD_TOO_LARGE, "files.content",
                                "file \"%.80s\" unpacks to more than %d files or %u MiB", f->name,
                                (int)max, S_MAX_UNPACKED >> 20);
            goto done;
        }
        Beacon__Referral__ImportFile *g = bc_arena_alloc(call->arena, sizeof *g);
        beacon__referral__import_file__init(g);
        g->name = bc_arena_printf(call->arena, "%s/%s", f->name, base);
        g->content.data = bc_arena_alloc(call->arena, (size_t)size + 1);
        la_ssize_t got = archive_read_data(a, g->content.data, (size_t)size);
        if (got != (la_ssize_t)size) {
            code = bc_call_fail(call, BC_INVALID_ARGUMENT, "files.content",
                                "file \"%.80s\": %.80s could not be unpacked", f->name, path);
            goto done;
        }
        g->content.len = (size_t)size;
        *budget -= (size_t)size;
        out[(*n)++] = g;
    }
    if (rc != ARCHIVE_EOF)
        code = bc_call_fail(call, BC_INVALID_ARGUMENT, "files.content",
                            "file \"%.80s\" is a damaged zip archive", f->name);
done:
    archive_read_free(a);
    return code;
}

bc_code_t directory_unpack(bc_call_t *call, Beacon__Referral__ImportFile *const *files, size_t n,
                           size_t max, Beacon__Referral__ImportFile ***out, size_t *nout)
{
    Beacon__Referral__ImportFile **all = bc_arena_alloc(call->arena, max * sizeof *all);
    size_t count = 0, budget = S_MAX_UNPACKED;
    for (size_t i = 0; i < n; i++) {
        if (!s_is_zip(files[i])) {
            if (count >= max)
                return bc_call_fail(call, BC_INVALID_ARGUMENT, "files",
                                    "files holds 1 to %d files", (int)max);
            all[count++] = files[i];
            continue;
        }
        bc_code_t code = s_unzip(call, files[i], all, &count, max, &budget);
        if (code != BC_OK)
            return code;
    }
    *out = all;
    *nout = count;
    return BC_OK;
}
