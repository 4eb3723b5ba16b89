/*  templates: note templates as data. GIRP, DAP and SOAP ship as JSON files
 *  in templates_dir, loaded once at start (a bad file stops the service
 *  rather than letting notes be written against it); an agency adds its own
 *  through the API (supervisors), stored in notes.templates. A template
 *  names its sections, which are required before signing, and help text.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"
#include "bc_log.h"
#include "notes.h"

#define S_MAX_FILES 64
#define S_MAX_FILE_BYTES 65536

static int s_load_file(const char *path, bc_arena_t *arena, note_template_t *t, bc_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir", "template %s cannot be read",
                     path);
        bc_error_detail(err, "%s", strerror(errno));
        return -1;
    }
    char *buf = bc_malloc(S_MAX_FILE_BYTES + 1);
    size_t n = fread(buf, 1, S_MAX_FILE_BYTES + 1, f);
    fclose(f);
    int rc;
    if (n > S_MAX_FILE_BYTES)
        rc = bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir", "template %s is too large",
                          path);
    else if ((rc = note_template_parse(buf, n, arena, t, err)) < 0) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir", "template %s: %s (%s)", path,
                     msg, err->field);
    }
    free(buf);
    t->shipped = true;
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(((const note_template_t *)a)->id, ((const note_template_t *)b)->id);
}

int notes_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    notes_state_t *st = bc_calloc(1, sizeof *st);
    *state = NULL;
    st->arena = bc_arena_new(16 * 1024);
    st->shipped = bc_calloc(S_MAX_FILES, sizeof *st->shipped);
    const char *dir = bc_config_str(config, "templates_dir");
    DIR *d = opendir(dir);
    if (!d) {
        bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir",
                     "template folder %s cannot be opened", dir);
        notes_stop(st);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
            continue;
        if (st->nshipped == S_MAX_FILES) {
            rc = bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir",
                              "more than %d templates in %s", S_MAX_FILES, dir);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        rc = s_load_file(path, st->arena, &st->shipped[st->nshipped], err);
        for (size_t i = 0; rc == 0 && i < st->nshipped; i++)
            if (!strcmp(st->shipped[i].id, st->shipped[st->nshipped].id))
                rc = bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir",
                                  "template id %s appears twice in %s", st->shipped[i].id, dir);
        if (rc == 0)
            st->nshipped++;
    }
    closedir(d);
    if (rc == 0 && st->nshipped == 0)
        rc = bc_error_set(err, BC_FAILED_PRECONDITION, "templates_dir", "no templates in %s", dir);
    qsort(st->shipped, st->nshipped, sizeof *st->shipped, s_cmp);
    if (rc == 0) {
        st->plaintext = bc_config_bool(config, "bench_plaintext_notes");
        const char *ctx = getenv("BENCH_NOTES_PLAINTEXT_OK");
        if (st->plaintext && (!ctx || strcmp(ctx, "notes-encryption-cost")))
            rc = bc_error_set(err, BC_FAILED_PRECONDITION, "bench_plaintext_notes",
                              "bench_plaintext_notes stores note text in clear and is for "
                              "benchmarks only: it needs BENCH_NOTES_PLAINTEXT_OK="
                              "notes-encryption-cost");
        else if (st->plaintext)
            bc_log(BC_LOG_WARN, "NOTE TEXT IS STORED UNENCRYPTED (bench_plaintext_notes): benchmarks only");
    }
    if (rc == 0) {
        st->keys = bc_keyring_load(bc_config_str(config, "field_keys_file"), err);
        if (!st->keys)
            rc = -1;
    }
    if (rc == 0 && !st->plaintext && bc_config_int(config, "rewrap_scan_seconds") > 0) {
        st->rewrap = notes_rewrap_start(config, st->keys, err);
        if (!st->rewrap)
            rc = -1;
    }
    if (rc == 0 && bc_config_int(config, "overdue_scan_seconds") > 0 &&
        !(st->overdue = notes_overdue_start(config, err)))
        rc = -1;
    if (rc < 0) {
        notes_stop(st);
        return -1;
    }
    *state = st;
    return 0;
}

void notes_stop(void *state)
{
    notes_state_t *st = state;
    if (!st)
        return;
    notes_overdue_stop(st->overdue);
    notes_rewrap_stop(st->rewrap);
    bc_keyring_destroy(&st->keys);
    bc_arena_destroy(&st->arena);
    free(st->shipped);
    free(st);
}

bc_code_t notes_template(bc_call_t *call, const char *id, note_template_t *t)
{
    const notes_state_t *st = call->state;
    for (size_t i = 0; i < st->nshipped; i++)
        if (!strcmp(st->shipped[i].id, id)) {
            *t = st->shipped[i];
            return BC_OK;
        }
    const char *params[] = {call->principal->agency_id, id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_template_get",
                                   "SELECT definition::text FROM notes.templates "
                                   "WHERE agency_id = $1 AND id = $2",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "template_id", "no note template %.40s",
                            id);
    }
    const char *def = PQgetvalue(res, 0, 0);
    int rc = note_template_parse(def, strlen(def), call->arena, t, &err);
    PQclear(res);
    if (rc < 0)
        return bc_call_fail(call, BC_DATA_LOSS, "template_id", "template %.40s is damaged", id);
    return BC_OK;
}

static Beacon__Notes__Template *s_message(bc_call_t *call, const note_template_t *t)
{
    Beacon__Notes__Template *m = bc_arena_alloc(call->arena, sizeof *m);
    beacon__notes__template__init(m);
    m->id = (char *)t->id;
    m->name = (char *)t->name;
    m->shipped = t->shipped;
    m->n_sections = t->nsections;
    m->sections = bc_arena_alloc(call->arena, t->nsections * sizeof *m->sections);
    for (size_t i = 0; i < t->nsections; i++) {
        Beacon__Notes__TemplateSection *s = bc_arena_alloc(call->arena, sizeof *s);
        beacon__notes__template_section__init(s);
        s->key = (char *)t->sections[i].key;
        s->label = (char *)t->sections[i].label;
        s->help = (char *)(t->sections[i].help ? t->sections[i].help : "");
        s->required = t->sections[i].required;
        m->sections[i] = s;
    }
    return m;
}

bc_code_t templates_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    const notes_state_t *st = call->state;
    const char *params[] = {call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_templates_list",
                                   "SELECT definition::text FROM notes.templates "
                                   "WHERE agency_id = $1 ORDER BY id",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    size_t n = (size_t)PQntuples(res);
    Beacon__Notes__ListTemplatesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__notes__list_templates_reply__init(r);
    r->templates = bc_arena_alloc(call->arena, (st->nshipped + n + 1) * sizeof *r->templates);
    for (size_t i = 0; i < st->nshipped; i++)
        r->templates[r->n_templates++] = s_message(call, &st->shipped[i]);
    for (size_t i = 0; i < n; i++) {
        note_template_t t;
        const char *def = PQgetvalue(res, (int)i, 0);
        if (note_template_parse(def, strlen(def), call->arena, &t, &err) == 0)
            r->templates[r->n_templates++] = s_message(call, &t);
    }
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

bc_code_t templates_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__CreateTemplateRequest *req =
        (const Beacon__Notes__CreateTemplateRequest *)in;
    note_template_t t = {.id = req->id, .name = req->name, .nsections = req->n_sections};
    if (req->n_sections > NOTE_TEMPLATE_MAX_SECTIONS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "sections",
                            "a template has 1 to %d sections", NOTE_TEMPLATE_MAX_SECTIONS);
    for (size_t i = 0; i < req->n_sections; i++)
        t.sections[i] = (note_section_def_t){req->sections[i]->key, req->sections[i]->label,
                                             req->sections[i]->help, req->sections[i]->required};
    bc_error_t err;
    if (note_template_check(&t, &err) < 0)
        return bc_call_fail_err(call, &err);
    const notes_state_t *st = call->state;
    for (size_t i = 0; i < st->nshipped; i++)
        if (!strcmp(st->shipped[i].id, t.id))
            return bc_call_fail(call, BC_ALREADY_EXISTS, "id", "template %s ships with Beacon",
                                t.id);
    char *def = note_template_json(&t);
    const char *params[] = {call->principal->agency_id, t.id, t.name, def,
                            call->principal->staff_id};
    PGresult *res = bc_db_prepared(call->db, "notes_template_add",
                                   "INSERT INTO notes.templates (agency_id, id, name, definition, "
                                   "created_by) VALUES ($1, $2, $3, $4::jsonb, $5)",
                                   5, params, &err);
    free(def);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_ALREADY_EXISTS, "id", "template %s exists", t.id);
        return bc_call_fail_err(call, &err);
    }
    PQclear(res);
    *out = &s_message(call, &t)->base;
    return BC_OK;
}
