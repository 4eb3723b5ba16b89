/*  review: supervision of notes and overdue documentation.
 *
 *  Supervisors mark staff who need a co-signature (new specialists). A note
 *  such a person signs waits as awaiting_review in the supervisors' queue;
 *  a supervisor (never the author) approves it, which makes it signed and
 *  final, or returns it to draft with comments for the author to act on.
 *
 *  Overdue: an encounter that ended more than overdue_hours ago (72 by
 *  default) with no signed note (none, or a draft) is listed for its
 *  specialist and their sites' supervisors. note.overdue goes out once per
 *  encounter (notes.overdue_notices remembers which were announced): the
 *  scanner in overdue.c announces encounters as they cross the line, and
 *  this list announces, in the transaction that records it, any the
 *  scanner did not reach.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "notes.h"

bc_code_t review_note(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__ReviewNoteRequest *req = (const Beacon__Notes__ReviewNoteRequest *)in;
    bool approved = !strcmp(req->outcome, "approved");
    if (!approved && strcmp(req->outcome, "returned"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "outcome", "outcome is approved or returned");
    const char *problem = bc_text_problem(req->comments, !approved, 4000);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "comments", "comments %s%s", problem,
                            approved ? "" : " (say what the author should change)");
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    char *body = NULL;
    Beacon__Notes__Note *n = notes_load(call, req->id, true, &body);
    if (!n)
        return call->err.code;
    if (strcmp(n->status, "awaiting_review"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "note %s is not awaiting review (it is %s)", n->id, n->status);
    if (!strcmp(n->author_id, call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                            "a supervisor does not review their own note");
    char id[37];
    bc_uuid_v4(id);
    char *env = *req->comments ? notes_seal(call, "comments", id, n->client_id, req->comments)
                               : NULL;
    if (*req->comments && !env)
        return call->err.code;
    const char *rp[] = {id,           n->id,        call->principal->agency_id, n->site_id,
                        n->author_id, n->category,  call->principal->staff_id,  req->outcome,
                        env};
    PGresult *res = bc_db_prepared(call->db, "notes_review_add",
                                   "INSERT INTO notes.reviews (id, note_id, agency_id, site_id, "
                                   "note_author, category, reviewer_id, outcome, comments_enc) "
                                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                   9, rp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    const char *np[] = {n->id, call->principal->staff_id};
    res = approved
              ? bc_db_prepared(call->db, "notes_approve",
                               "UPDATE notes.notes SET status = 'signed', review_status = "
                               "'approved', cosigned_by = $2, cosigned_at = now(), version = "
                               "version + 1, updated_by = $2, updated_at = now() WHERE id = $1",
                               2, np, &err)
              : bc_db_prepared(call->db, "notes_return",
                               "UPDATE notes.notes SET status = 'draft', review_status = "
                               "'returned', content_hash = NULL, attestation = NULL, signed_by = "
                               "NULL, signed_at = NULL, late_entry = false, version = version + "
                               "1, updated_by = $2, updated_at = now() WHERE id = $1",
                               2, np, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    Beacon__Notes__NoteEvent ne = BEACON__NOTES__NOTE_EVENT__INIT;
    ne.note_id = n->id;
    ne.site_id = n->site_id;
    ne.client_id = n->client_id;
    ne.author_id = n->author_id;
    ne.encounter_id = n->encounter_id;
    ne.review_id = id;
    ne.outcome = req->outcome;
    ne.content_hash = n->content_hash;
    ne.category = n->category;
    ne.staff_id = (char *)call->principal->staff_id;
    ne.late_entry = n->late_entry;
    if (notes_emit(call, "review.completed", &ne) < 0 ||
        (approved && notes_emit(call, "note.signed", &ne) < 0))
        return call->err.code;
    n = notes_load(call, n->id, false, &body);
    if (!n)
        return call->err.code;
    bc_code_t code = notes_fill(call, n, body);
    if (code != BC_OK)
        return code;
    bc_audit_event_t ev = notes_event(n, "review");
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

bc_code_t review_set_supervision(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out)
{
    const Beacon__Notes__SetSupervisionRequest *req =
        (const Beacon__Notes__SetSupervisionRequest *)in;
    if (!bc_is_uuid(req->staff_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id", "staff_id must be a UUID");
    /* Someone who works at one of the supervisor's sites. */
    size_t nsites = call->principal->n_site_ids;
    size_t len = 3;
    for (size_t i = 0; i < nsites; i++)
        len += strlen(call->principal->site_ids[i]) + 1;
    char *sites = bc_arena_alloc(call->arena, len);
    char *p = sites;
    *p++ = '{';
    for (size_t i = 0; i < nsites; i++)
        p += sprintf(p, "%s%s", i ? "," : "", call->principal->site_ids[i]);
    *p++ = '}';
    *p = '\0';
    const char *sp[] = {req->staff_id, call->principal->agency_id, sites};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_staff_here",
                                   "SELECT 1 FROM identity.staff_site_directory WHERE staff_id = "
                                   "$1 AND agency_id = $2 AND site_id = ANY ($3::uuid[]) LIMIT 1",
                                   3, sp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool here = PQntuples(res) == 1;
    PQclear(res);
    if (!here)
        return bc_call_fail(call, BC_NOT_FOUND, "staff_id",
                            "no active staff member %s at your sites", req->staff_id);
    const char *params[] = {req->staff_id, call->principal->agency_id,
                            req->requires_cosign ? "true" : "false", call->principal->staff_id};
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    res = bc_db_prepared(call->db, "notes_supervision_set",
                         "INSERT INTO notes.supervision (staff_id, agency_id, requires_cosign, "
                         "set_by) VALUES ($1, $2, $3, $4) ON CONFLICT (staff_id) DO UPDATE SET "
                         "requires_cosign = EXCLUDED.requires_cosign, set_by = EXCLUDED.set_by, "
                         "set_at = now()",
                         4, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE, .resource_type = "note_supervision",
                           .resource_id = req->staff_id, .purpose = "operations"};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    Beacon__Notes__Supervision *s = bc_arena_alloc(call->arena, sizeof *s);
    beacon__notes__supervision__init(s);
    s->staff_id = bc_arena_strdup(call->arena, req->staff_id);
    s->requires_cosign = req->requires_cosign;
    *out = &s->base;
    return BC_OK;
}

bc_code_t review_overdue(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__ListOverdueRequest *req = (const Beacon__Notes__ListOverdueRequest *)in;
    bool supervisor = bc_call_has_role(call, "supervisor");
    const char *staff = req->staff_id;
    if (!*staff && !supervisor)
        staff = "me";
    if (!strcmp(staff, "me"))
        staff = call->principal->staff_id;
    if (*staff && !bc_is_uuid(staff))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id", "staff_id is me or a UUID");
    if (*staff && !supervisor && strcmp(staff, call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "staff_id",
                            "only supervisors see others' overdue notes");
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    int hours = notes_setting(call, "overdue_hours");
    char hbuf[16];
    snprintf(hbuf, sizeof hbuf, "%d", hours);
    const char *params[] = {call->principal->agency_id, *staff ? staff : NULL,
                            *req->site_id ? req->site_id : NULL, hbuf};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* Encounters in the caller's scope (scheduling's row policy). */
    PGresult *res = bc_db_prepared(
        call->db, "notes_overdue",
        "SELECT e.id::text, e.client_id::text, e.staff_id::text, e.site_id::text, "
        "to_char(e.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "(extract(epoch FROM now() - e.ends_at) / 3600)::int, coalesce(n.id::text, ''), "
        "coalesce(n.status, '') FROM scheduling.encounters e "
        "LEFT JOIN notes.notes n ON n.encounter_id = e.id "
        "WHERE e.agency_id = $1 AND ($2::uuid IS NULL OR e.staff_id = $2) "
        "AND ($3::uuid IS NULL OR e.site_id = $3) "
        "AND e.ends_at < now() - make_interval(hours => $4::int) "
        "AND (n.id IS NULL OR n.status = 'draft') ORDER BY e.ends_at, e.id LIMIT 1000",
        4, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Notes__ListOverdueReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__notes__list_overdue_reply__init(r);
    r->overdue_hours = hours;
    r->overdue = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *r->overdue);
    for (int i = 0; i < rows; i++) {
        Beacon__Notes__OverdueItem *o = bc_arena_alloc(call->arena, sizeof *o);
        beacon__notes__overdue_item__init(o);
        char **cols[] = {&o->encounter_id, &o->client_id, &o->staff_id, &o->site_id,
                         &o->ended_at,     NULL,          &o->note_id,  &o->note_status};
        for (int c = 0; c < 8; c++)
            if (cols[c])
                *cols[c] = bc_arena_strdup(call->arena, PQgetvalue(res, i, c));
        o->hours_since = atoi(PQgetvalue(res, i, 5));
        r->overdue[r->n_overdue++] = o;
    }
    PQclear(res);
    /* Announce each newly overdue encounter once. */
    for (size_t i = 0; i < r->n_overdue; i++) {
        const Beacon__Notes__OverdueItem *o = r->overdue[i];
        const char *np[] = {o->encounter_id, call->principal->agency_id, o->site_id, o->staff_id};
        res = bc_db_prepared(call->db, "notes_overdue_notice",
                             "INSERT INTO notes.overdue_notices (encounter_id, agency_id, "
                             "site_id, staff_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING "
                             "RETURNING 1",
                             4, np, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        bool fresh = PQntuples(res) == 1;
        PQclear(res);
        if (fresh) {
            Beacon__Notes__NoteEvent ne = BEACON__NOTES__NOTE_EVENT__INIT;
            ne.encounter_id = o->encounter_id;
            ne.site_id = o->site_id;
            ne.client_id = o->client_id;
            ne.staff_id = o->staff_id;
            ne.note_id = o->note_id;
            if (notes_emit(call, "note.overdue", &ne) < 0)
                return call->err.code;
        }
    }
    if (bc_call_commit(call) < 0)
        return call->err.code;
    for (size_t i = 0; i < r->n_overdue; i++) {
        bc_audit_event_t ev = {.site_id = r->overdue[i]->site_id, .action = BC_AUDIT_READ,
                               .resource_type = "encounter",
                               .resource_id = r->overdue[i]->encounter_id,
                               .client_id = r->overdue[i]->client_id, .purpose = "operations",
                               .detail = "{\"overdue_note\":true}"};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}
