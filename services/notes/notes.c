/*  notes: progress notes and their addenda.
 *
 *  A note belongs to a client and documents an encounter of scheduling's
 *  (a one-on-one meeting, or one client's attendance of a group meeting:
 *  each attending client gets a note of their own, optionally pre-filled
 *  from a group summary), or is a free-standing contact note (phone call,
 *  outreach, care coordination). Lifecycle (signing.c): draft (saved by its author as
 *  often as they like, each save a new version, If-Match required) ->
 *  signed (the author attests; the content hash is recorded; nothing
 *  changes afterwards, the database refuses it too) -> addenda (each signed
 *  when written, shown with the note). A note by staff who need a
 *  co-signature waits as awaiting_review until a supervisor approves it or
 *  returns it to draft (review.c).
 *
 *  Encounters are read straight from scheduling.encounters under the
 *  caller's scope (scheduling's own row policy: a specialist sees their own,
 *  a supervisor their sites'), in the same transaction as the note: simpler
 *  and sturdier than an RPC to scheduling (no extra hop, no second failure
 *  mode, one snapshot), at the price of naming scheduling's columns here
 *  (S_ENCOUNTER below is the one place).
 *
 *  Every read of a note is audited (group-committed, the reply waits for
 *  durability); every change is audited inside its transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "notes.h"

#define S_LIST_MAX 200
#define S_TAGS_MAX 20

static const char *const s_contact_kinds[] = {"phone_call", "outreach", "care_coordination",
                                              "other", NULL};

static bool s_one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(v, *set))
            return true;
    return false;
}

int notes_setting(const bc_call_t *call, const char *name)
{
    return (int)bc_config_int(call->config, name);
}

char **notes_strings(bc_call_t *call, char *const *in, size_t n)
{
    char **out = bc_arena_alloc(call->arena, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = bc_arena_strdup(call->arena, in[i]);
    return out;
}

bc_audit_event_t notes_event(const Beacon__Notes__Note *n, const char *action)
{
    return (bc_audit_event_t){.site_id = n->site_id, .action = action, .resource_type = "note",
                              .resource_id = n->id, .client_id = n->client_id,
                              .purpose = "treatment"};
}

int notes_emit(bc_call_t *call, const char *topic, Beacon__Notes__NoteEvent *ev)
{
    ev->agency_id = (char *)call->principal->agency_id;
    return bc_call_emit(call, topic, &ev->base);
}

Beacon__Notes__Note *notes_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Notes__Note *n = bc_arena_alloc(call->arena, sizeof *n);
    beacon__notes__note__init(n);
    char **text[NOTES_NCOLUMNS] = {
        &n->id,         &n->client_id,   &n->site_id,     &n->author_id,   &n->encounter_id,
        &n->group_occurrence_id, &n->kind, &n->contact_kind, &n->template_id, &n->category,
        NULL,           NULL,            &n->status,      &n->review_status, NULL,
        &n->occurred_at, &n->created_at, &n->updated_at,  &n->signed_by,   &n->signed_at,
        &n->attestation, &n->content_hash, NULL,          &n->cosigned_by, &n->cosigned_at,
        NULL};
    for (int c = 0; c < NOTES_NCOLUMNS; c++)
        if (text[c])
            *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    n->part2 = PQgetvalue(res, row, 10)[0] == 't';
    n->version = atoi(PQgetvalue(res, row, 14));
    n->late_entry = PQgetvalue(res, row, 22)[0] == 't';
    const char *tags = PQgetvalue(res, row, 11);
    if (*tags) {
        char *copy = bc_arena_strdup(call->arena, tags);
        n->tags = bc_arena_alloc(call->arena, S_TAGS_MAX * sizeof *n->tags);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n->n_tags < S_TAGS_MAX;
             t = strtok_r(NULL, ",", &save))
            n->tags[n->n_tags++] = t;
    }
    return n;
}

Beacon__Notes__Note *notes_load(bc_call_t *call, const char *id, bool lock, char **body_enc)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
        return NULL;
    }
    const char *params[] = {id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = lock ? bc_db_prepared(call->db, "notes_lock",
                                          "SELECT " NOTES_COLUMNS " FROM notes.notes n "
                                          "WHERE n.id = $1 AND n.agency_id = $2 FOR UPDATE",
                                          2, params, &err)
                         : bc_db_prepared(call->db, "notes_get",
                                          "SELECT " NOTES_COLUMNS " FROM notes.notes n "
                                          "WHERE n.id = $1 AND n.agency_id = $2",
                                          2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_call_fail(call, BC_NOT_FOUND, "", "no note with id %s", id);
        return NULL;
    }
    Beacon__Notes__Note *n = notes_from_row(call, res, 0);
    if (body_enc)
        *body_enc = bc_arena_strdup(call->arena, PQgetvalue(res, 0, NOTES_NCOLUMNS - 1));
    PQclear(res);
    return n;
}

void notes_set_sections(bc_call_t *call, Beacon__Notes__Note *n, const note_section_t *s,
                        size_t count)
{
    n->sections = bc_arena_alloc(call->arena, (count ? count : 1) * sizeof *n->sections);
    n->n_sections = 0;
    for (size_t i = 0; i < count; i++) {
        if (!*s[i].text)
            continue;
        Beacon__Notes__Section *m = bc_arena_alloc(call->arena, sizeof *m);
        beacon__notes__section__init(m);
        m->key = (char *)s[i].key;
        m->text = (char *)s[i].text;
        n->sections[n->n_sections++] = m;
    }
}

/* Opens a body into sections; false when damaged. */
bool notes_open_body(bc_call_t *call, const Beacon__Notes__Note *n, const char *body_enc,
                     note_section_t **s, size_t *count)
{
    char *plain = notes_open(call, "body", n->id, n->client_id, body_enc);
    if (!plain)
        return false;
    if (note_body_parse(plain, strlen(plain), call->arena, s, count) < 0) {
        bc_call_fail(call, BC_DATA_LOSS, "", "the stored text is damaged");
        return false;
    }
    return true;
}

bc_code_t notes_fill(bc_call_t *call, Beacon__Notes__Note *n, const char *body_enc)
{
    note_section_t *s = NULL;
    size_t count = 0;
    if (notes_open_body(call, n, body_enc, &s, &count))
        notes_set_sections(call, n, s, count);
    else
        n->damaged = true;
    const char *params[] = {n->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_addenda",
                                   "SELECT id::text, author_id::text, body_enc, content_hash, "
                                   NOTES_TIME("signed_at") ", attestation FROM notes.addenda "
                                   "WHERE note_id = $1 ORDER BY signed_at, id",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    n->addenda = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *n->addenda);
    for (int i = 0; i < rows; i++) {
        Beacon__Notes__Addendum *a = bc_arena_alloc(call->arena, sizeof *a);
        beacon__notes__addendum__init(a);
        a->id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        a->author_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        char *text = notes_open(call, "addendum", a->id, n->client_id, PQgetvalue(res, i, 2));
        if (!text)
            n->damaged = true;
        a->text = text ? text : "";
        a->content_hash = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        a->signed_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        a->attestation = bc_arena_strdup(call->arena, PQgetvalue(res, i, 5));
        n->addenda[n->n_addenda++] = a;
    }
    PQclear(res);
    res = bc_db_prepared(call->db, "notes_reviews",
                         "SELECT id::text, reviewer_id::text, outcome, coalesce(comments_enc, ''), "
                         NOTES_TIME("reviewed_at") " FROM notes.reviews WHERE note_id = $1 "
                         "ORDER BY reviewed_at, id",
                         1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    rows = PQntuples(res);
    n->reviews = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *n->reviews);
    for (int i = 0; i < rows; i++) {
        Beacon__Notes__Review *r = bc_arena_alloc(call->arena, sizeof *r);
        beacon__notes__review__init(r);
        r->id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        r->reviewer_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        r->outcome = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
        const char *enc = PQgetvalue(res, i, 3);
        char *text = *enc ? notes_open(call, "comments", r->id, n->client_id, enc) : "";
        if (!text)
            n->damaged = true;
        r->comments = text ? text : "";
        r->reviewed_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        n->reviews[n->n_reviews++] = r;
    }
    PQclear(res);
    bc_error_clear(&call->err);
    return BC_OK;
}

/* Tags: up to S_TAGS_MAX of 1-40 a-z 0-9 _ -, as a text[] literal. */
const char *notes_tags(bc_call_t *call, char *const *tags, size_t n)
{
    if (n > S_TAGS_MAX) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "tags", "at most %d tags", S_TAGS_MAX);
        return NULL;
    }
    size_t len = 3;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(tags[i]);
        bool ok = l >= 1 && l <= 40;
        for (size_t k = 0; ok && k < l; k++) {
            char c = tags[i][k];
            ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        }
        if (!ok) {
            bc_call_fail(call, BC_INVALID_ARGUMENT, "tags",
                         "a tag is 1 to 40 of a-z 0-9 _ - (tags[%zu])", i);
            return NULL;
        }
        len += l + 1;
    }
    char *out = bc_arena_alloc(call->arena, len);
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", tags[i]);
    *p++ = '}';
    *p = '\0';
    return out;
}

/* The request's sections checked against t, in template order, in out
 * (t->nsections entries). */
bc_code_t notes_sections(bc_call_t *call, const note_template_t *t,
                         Beacon__Notes__Section *const *in, size_t n, bool signing,
                         note_section_t *out)
{
    note_section_t *given = bc_arena_alloc(call->arena, (n ? n : 1) * sizeof *given);
    for (size_t i = 0; i < n; i++)
        given[i] = (note_section_t){in[i]->key, in[i]->text};
    bc_error_t err;
    if (note_sections_check(t, given, n, (size_t)notes_setting(call, "max_section_chars"),
                            (size_t)notes_setting(call, "max_note_bytes"), signing, out,
                            &err) < 0)
        return bc_call_fail_err(call, &err);
    return BC_OK;
}

/* What a new note documents. */
typedef struct {
    char site_id[40];
    char encounter_id[40];
    char occurrence_id[40];
    char occurred_at[40];
} s_subject_t;

#define S_ENCOUNTER                                                                                \
    "SELECT e.id::text, e.client_id::text, e.site_id::text, "                                     \
    "coalesce(e.group_occurrence_id::text, ''), e.starts_at::text FROM scheduling.encounters e "

static void s_subject_from(PGresult *res, s_subject_t *s)
{
    snprintf(s->encounter_id, sizeof s->encounter_id, "%s", PQgetvalue(res, 0, 0));
    snprintf(s->site_id, sizeof s->site_id, "%s", PQgetvalue(res, 0, 2));
    snprintf(s->occurrence_id, sizeof s->occurrence_id, "%s", PQgetvalue(res, 0, 3));
    snprintf(s->occurred_at, sizeof s->occurred_at, "%s", PQgetvalue(res, 0, 4));
}

/* The encounter the note documents: encounter_id, or the client's
 * attendance of group_occurrence_id. The client must be the one who
 * attended. */
static bc_code_t s_encounter(bc_call_t *call, const char *client_id, const char *encounter_id,
                             const char *occurrence_id, s_subject_t *s)
{
    bc_error_t err;
    PGresult *res;
    if (*encounter_id) {
        if (!bc_is_uuid(encounter_id))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "encounter_id",
                                "encounter_id must be a UUID");
        const char *params[] = {call->principal->agency_id, encounter_id};
        res = bc_db_prepared(call->db, "notes_encounter",
                             S_ENCOUNTER "WHERE e.agency_id = $1 AND e.id = $2", 2, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        if (PQntuples(res) == 0) {
            PQclear(res);
            return bc_call_fail(call, BC_NOT_FOUND, "encounter_id", "no encounter with id %s",
                                encounter_id);
        }
        bool theirs = !strcmp(PQgetvalue(res, 0, 1), client_id);
        if (theirs)
            s_subject_from(res, s);
        PQclear(res);
        if (!theirs)
            return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                                "client %s did not attend encounter %s: a note documents the "
                                "encounter of the client who attended",
                                client_id, encounter_id);
        return BC_OK;
    }
    if (!bc_is_uuid(occurrence_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "group_occurrence_id",
                            "group_occurrence_id must be a UUID");
    const char *params[] = {call->principal->agency_id, occurrence_id, client_id};
    res = bc_db_prepared(call->db, "notes_group_encounter",
                         S_ENCOUNTER "WHERE e.agency_id = $1 AND e.group_occurrence_id = $2 "
                         "AND e.client_id = $3",
                         3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool found = PQntuples(res) == 1;
    if (found)
        s_subject_from(res, s);
    PQclear(res);
    if (!found)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "client %s did not attend group meeting %s (or it has not been "
                            "completed): only attending clients get a note",
                            client_id, occurrence_id);
    return BC_OK;
}

/* The client as intake shows it to the caller: its site. */
static bc_code_t s_client(bc_call_t *call, const char *client_id, char site[40])
{
    if (!bc_is_uuid(client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    const char *params[] = {client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_client_ref",
                                   "SELECT site_id::text, status FROM intake.client_ref($1)", 1,
                                   params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool found = PQntuples(res) == 1;
    bool merged = found && !strcmp(PQgetvalue(res, 0, 1), "merged");
    if (found)
        snprintf(site, 40, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!found)
        return bc_call_fail(call, BC_NOT_FOUND, "client_id", "no client with id %s", client_id);
    if (merged)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "client %s was merged into another record: write the note there",
                            client_id);
    return BC_OK;
}

/* Inserts one draft (the transaction is open); the note in *out. */
static bc_code_t s_insert(bc_call_t *call, const char *client_id, const s_subject_t *subj,
                          const char *contact_kind, const note_template_t *t,
                          const char *category, bool part2, const char *tags,
                          const note_section_t *s, bool skip_existing, Beacon__Notes__Note **out)
{
    char id[37];
    bc_uuid_v4(id);
    char *body = note_body_json(s, t->nsections);
    char *env = notes_seal(call, "body", id, client_id, body);
    free(body);
    if (!env)
        return call->err.code;
    const char *params[] = {id,
                            call->principal->agency_id,
                            subj->site_id,
                            client_id,
                            call->principal->staff_id,
                            *subj->encounter_id ? subj->encounter_id : NULL,
                            *subj->occurrence_id ? subj->occurrence_id : NULL,
                            *subj->encounter_id ? "encounter" : "contact",
                            contact_kind,
                            t->id,
                            category,
                            part2 ? "true" : "false",
                            tags,
                            env,
                            *subj->occurred_at ? subj->occurred_at : NULL};
    bc_error_t err;
    PGresult *res =
        skip_existing
            ? bc_db_prepared(call->db, "notes_insert_group",
                             "WITH n AS (INSERT INTO notes.notes (id, agency_id, site_id, "
                             "client_id, author_id, encounter_id, group_occurrence_id, kind, "
                             "contact_kind, template_id, category, part2, tags, body_enc, "
                             "occurred_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                             "$9, $10, $11, $12, $13::text[], $14, coalesce($15::timestamptz, "
                             "now()), $5) ON CONFLICT (encounter_id) WHERE encounter_id IS NOT "
                             "NULL DO NOTHING RETURNING *) SELECT " NOTES_COLUMNS " FROM n",
                             15, params, &err)
            : bc_db_prepared(call->db, "notes_insert",
                             "WITH n AS (INSERT INTO notes.notes (id, agency_id, site_id, "
                             "client_id, author_id, encounter_id, group_occurrence_id, kind, "
                             "contact_kind, template_id, category, part2, tags, body_enc, "
                             "occurred_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                             "$9, $10, $11, $12, $13::text[], $14, coalesce($15::timestamptz, "
                             "now()), $5) RETURNING *) SELECT " NOTES_COLUMNS " FROM n",
                             15, params, &err);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_CONFLICT, "encounter_id",
                                "encounter %s already has a note: open it, or add an addendum "
                                "once it is signed",
                                subj->encounter_id);
        return bc_call_fail_err(call, &err);
    }
    *out = PQntuples(res) ? notes_from_row(call, res, 0) : NULL;
    PQclear(res);
    if (*out) {
        notes_set_sections(call, *out, s, t->nsections);
        bc_audit_event_t ev = notes_event(*out, BC_AUDIT_CREATE);
        if (bc_call_audit_write(call, &ev) < 0)
            return call->err.code;
    }
    return BC_OK;
}

/* An RFC 3339 instant or a date, roughly checked here (PostgreSQL parses it). */
static bool s_time_ok(const char *v)
{
    size_t n = strlen(v);
    if (n < 10 || n > 35)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        bool digit = c >= '0' && c <= '9';
        if (i < 10 && (i == 4 || i == 7 ? c != '-' : !digit))
            return false;
        if (i >= 10 && !digit && !strchr("T:.+-Z", c))
            return false;
    }
    return true;
}

static bc_code_t s_category(bc_call_t *call, const char *in, const char **out)
{
    *out = *in ? in : "progress";
    if (strcmp(*out, "progress") && strcmp(*out, "sud_counseling"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "category",
                            "category is progress or sud_counseling");
    return BC_OK;
}

bc_code_t notes_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__CreateNoteRequest *req = (const Beacon__Notes__CreateNoteRequest *)in;
    const char *category;
    bc_code_t code = s_category(call, req->category, &category);
    if (code != BC_OK)
        return code;
    bool contact = !*req->encounter_id && !*req->group_occurrence_id;
    if (*req->encounter_id && *req->group_occurrence_id)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "group_occurrence_id",
                            "give encounter_id or group_occurrence_id, not both");
    if (contact && !s_one_of(req->contact_kind, s_contact_kinds))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "contact_kind",
                            "a note without an encounter is a contact note: contact_kind is one "
                            "of phone_call, outreach, care_coordination, other");
    if (!contact && (*req->contact_kind || *req->occurred_at))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, *req->contact_kind ? "contact_kind"
                                                                          : "occurred_at",
                            "an encounter's note takes its kind and time from the encounter");
    if (*req->occurred_at && !s_time_ok(req->occurred_at))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "occurred_at",
                            "occurred_at must be an RFC 3339 time or a date");
    note_template_t t;
    if (!*req->template_id)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "template_id",
                            "template_id is required (girp, dap, soap or the agency's own)");
    if ((code = notes_template(call, req->template_id, &t)) != BC_OK)
        return code;
    note_section_t *s = bc_arena_alloc(call->arena, t.nsections * sizeof *s);
    if ((code = notes_sections(call, &t, req->sections, req->n_sections, false, s)) != BC_OK)
        return code;
    const char *tags = notes_tags(call, req->tags, req->n_tags);
    if (!tags)
        return call->err.code;
    s_subject_t subj = {0};
    if ((code = s_client(call, req->client_id, subj.site_id)) != BC_OK)
        return code;
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (!contact &&
        (code = s_encounter(call, req->client_id, req->encounter_id, req->group_occurrence_id,
                            &subj)) != BC_OK)
        return code;
    if (contact)
        snprintf(subj.occurred_at, sizeof subj.occurred_at, "%s", req->occurred_at);
    if (!bc_call_has_site(call, subj.site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "client_id",
                            "the client's site is not one of yours");
    bool part2 = !req->not_part2 || !strcmp(category, "sud_counseling");
    Beacon__Notes__Note *n = NULL;
    if ((code = s_insert(call, req->client_id, &subj, contact ? req->contact_kind : NULL, &t,
                         category, part2, tags, s, false, &n)) != BC_OK)
        return code;
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

bc_code_t notes_create_group(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__CreateGroupNotesRequest *req =
        (const Beacon__Notes__CreateGroupNotesRequest *)in;
    if (!bc_is_uuid(req->group_occurrence_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "group_occurrence_id",
                            "group_occurrence_id must be a UUID");
    note_template_t t;
    bc_code_t code = notes_template(call, *req->template_id ? req->template_id : "", &t);
    if (code != BC_OK)
        return code;
    note_section_t *s = bc_arena_alloc(call->arena, t.nsections * sizeof *s);
    if ((code = notes_sections(call, &t, req->summary, req->n_summary, false, s)) != BC_OK)
        return code;
    const char *tags = notes_tags(call, req->tags, req->n_tags);
    if (!tags)
        return call->err.code;
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *params[] = {call->principal->agency_id, req->group_occurrence_id};
    PGresult *res = bc_db_prepared(call->db, "notes_group_encounters",
                                   S_ENCOUNTER "WHERE e.agency_id = $1 AND e.group_occurrence_id "
                                   "= $2 ORDER BY e.client_id",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "group_occurrence_id",
                            "no completed group meeting %s with attending clients you may see",
                            req->group_occurrence_id);
    }
    Beacon__Notes__CreateGroupNotesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__notes__create_group_notes_reply__init(r);
    r->notes = bc_arena_alloc(call->arena, (size_t)rows * sizeof *r->notes);
    for (int i = 0; i < rows; i++) {
        s_subject_t subj;
        snprintf(subj.encounter_id, sizeof subj.encounter_id, "%s", PQgetvalue(res, i, 0));
        snprintf(subj.site_id, sizeof subj.site_id, "%s", PQgetvalue(res, i, 2));
        snprintf(subj.occurrence_id, sizeof subj.occurrence_id, "%s", PQgetvalue(res, i, 3));
        snprintf(subj.occurred_at, sizeof subj.occurred_at, "%s", PQgetvalue(res, i, 4));
        const char *client = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        Beacon__Notes__Note *n = NULL;
        if ((code = s_insert(call, client, &subj, NULL, &t, "progress", true, tags, s, true,
                             &n)) != BC_OK) {
            PQclear(res);
            return code;
        }
        if (n)
            r->notes[r->n_notes++] = n;
    }
    PQclear(res);
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t notes_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__GetNoteRequest *req = (const Beacon__Notes__GetNoteRequest *)in;
    char *body = NULL;
    Beacon__Notes__Note *n = notes_load(call, req->id, false, &body);
    if (!n)
        return call->err.code;
    bc_code_t code = notes_fill(call, n, body);
    if (code != BC_OK)
        return code;
    bc_audit_event_t ev = notes_event(n, BC_AUDIT_READ);
    if (n->damaged) {
        ev.outcome = BC_AUDIT_ERROR;
        ev.detail = "{\"damaged\":true}";
    }
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

/* Notes matching the filters, without text, each read audited. */
static bc_code_t s_list(bc_call_t *call, const char *const params[10], bool queue,
                        ProtobufCMessage **out)
{
    bc_error_t err;
    PGresult *res =
        queue ? bc_db_prepared(call->db, "notes_queue",
                               "SELECT " NOTES_COLUMNS " FROM notes.notes n WHERE n.agency_id = $1 "
                               "AND n.status = 'awaiting_review' "
                               "AND ($2::uuid IS NULL OR n.site_id = $2) "
                               "ORDER BY n.signed_at, n.id LIMIT 500",
                               2, params, &err)
              : bc_db_prepared(call->db, "notes_list",
                               "SELECT " NOTES_COLUMNS " FROM notes.notes n WHERE n.agency_id = $1 "
                               "AND ($2::uuid IS NULL OR n.client_id = $2) "
                               "AND ($3::uuid IS NULL OR n.author_id = $3) "
                               "AND ($4::timestamptz IS NULL OR n.occurred_at >= $4) "
                               "AND ($5::timestamptz IS NULL OR n.occurred_at < $5) "
                               "AND ($6::text IS NULL OR n.template_id = $6) "
                               "AND ($7::text IS NULL OR n.status = $7) "
                               "AND ($8::text IS NULL OR $8 = ANY (n.tags)) "
                               "AND n.category = $9 "
                               "ORDER BY n.occurred_at DESC, n.id LIMIT $10::int",
                               10, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Notes__ListNotesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__notes__list_notes_reply__init(r);
    r->notes = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *r->notes);
    for (int i = 0; i < rows; i++)
        r->notes[r->n_notes++] = notes_from_row(call, res, i);
    PQclear(res);
    for (size_t i = 0; i < r->n_notes; i++) {
        bc_audit_event_t ev = notes_event(r->notes[i], BC_AUDIT_READ);
        ev.detail = "{\"list\":true}";
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}

bc_code_t notes_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__ListNotesRequest *req = (const Beacon__Notes__ListNotesRequest *)in;
    const char *author = !strcmp(req->author_id, "me") ? call->principal->staff_id : req->author_id;
    struct {
        const char *value, *field;
    } ids[] = {{req->client_id, "client_id"}, {author, "author_id"}};
    for (size_t i = 0; i < 2; i++)
        if (*ids[i].value && !bc_is_uuid(ids[i].value))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, ids[i].field, "%s must be a UUID",
                                ids[i].field);
    if ((*req->from && !s_time_ok(req->from)) || (*req->to && !s_time_ok(req->to)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, *req->from && !s_time_ok(req->from) ? "from" : "to",
                            "from and to are RFC 3339 times or dates");
    if (*req->status && strcmp(req->status, "draft") && strcmp(req->status, "signed") &&
        strcmp(req->status, "awaiting_review"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status is draft, awaiting_review or signed");
    const char *category;
    bc_code_t code = s_category(call, req->category, &category);
    if (code != BC_OK)
        return code;
    if (req->limit < 0 || req->limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit is 1 to %d", S_LIST_MAX);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", req->limit ? req->limit : 50);
#define S_OPT(v) (*(v) ? (v) : NULL)
    const char *params[10] = {call->principal->agency_id, S_OPT(req->client_id), S_OPT(author),
                              S_OPT(req->from), S_OPT(req->to), S_OPT(req->template_id),
                              S_OPT(req->status), S_OPT(req->tag), category, limit};
    return s_list(call, params, false, out);
}

bc_code_t review_queue(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__ReviewQueueRequest *req = (const Beacon__Notes__ReviewQueueRequest *)in;
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    const char *params[10] = {call->principal->agency_id, S_OPT(req->site_id)};
    return s_list(call, params, true, out);
}
