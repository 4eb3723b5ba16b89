/*  signing: a note's life after it is created. Drafts saved by their author
 *  (each save a new version, If-Match required), signing (the author
 *  attests, every required section filled, the content hash recorded, late
 *  entries marked; a note by staff who need a co-signature then waits for
 *  review, review.c), and addenda (each signed when written, shown with the
 *  note). A signed note never changes: the database refuses it too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "notes.h"

/* Opens a change of a draft: the note locked, the caller its author, still
 * a draft, at the version expected (with must_match, 0 matches nothing:
 * the version came from an If-Match the route requires). */
static Beacon__Notes__Note *s_open_draft(bc_call_t *call, const char *id, int expected,
                                         bool must_match, char **body)
{
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Notes__Note *n = notes_load(call, id, true, body);
    if (!n)
        return NULL;
    if (strcmp(n->author_id, call->principal->staff_id)) {
        bc_call_fail(call, BC_PERMISSION_DENIED, "id", "only the note's author may change it");
        return NULL;
    }
    if (strcmp(n->status, "draft")) {
        bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                     "note %s is %s and cannot be edited: add an addendum instead", n->id,
                     !strcmp(n->status, "signed") ? "signed" : "awaiting review");
        return NULL;
    }
    if ((expected || must_match) && expected != n->version) {
        bc_call_fail(call, BC_STALE, "expected_version",
                     "the note was saved since you read it (now version %d)", n->version);
        return NULL;
    }
    return n;
}

bc_code_t notes_save_draft(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__SaveDraftRequest *req = (const Beacon__Notes__SaveDraftRequest *)in;
    const char *tags = req->n_tags ? notes_tags(call, req->tags, req->n_tags) : NULL;
    if (req->n_tags && !tags)
        return call->err.code;
    char *body_old = NULL;
    Beacon__Notes__Note *n = s_open_draft(call, req->id, req->expected_version, true, &body_old);
    if (!n)
        return call->err.code;
    note_template_t t;
    bc_code_t code = notes_template(call, n->template_id, &t);
    if (code != BC_OK)
        return code;
    note_section_t *s = bc_arena_alloc(call->arena, t.nsections * sizeof *s);
    if ((code = notes_sections(call, &t, req->sections, req->n_sections, false, s)) != BC_OK)
        return code;
    char *body = note_body_json(s, t.nsections);
    char *env = notes_seal(call, "body", n->id, n->client_id, body);
    free(body);
    if (!env)
        return call->err.code;
    const char *params[] = {n->id, env, tags, call->principal->staff_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "notes_save",
                                   "UPDATE notes.notes n SET body_enc = $2, "
                                   "tags = coalesce($3::text[], tags), version = version + 1, "
                                   "updated_by = $4, updated_at = now() WHERE id = $1 "
                                   "RETURNING " NOTES_COLUMNS,
                                   4, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    n = notes_from_row(call, res, 0);
    PQclear(res);
    notes_set_sections(call, n, s, t.nsections);
    bc_audit_event_t ev = notes_event(n, BC_AUDIT_UPDATE);
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

static const char *s_attestation(bc_call_t *call, bool attest, const char *text)
{
    if (!attest) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "attest",
                     "signing needs attest: true (the author attests the note is accurate "
                     "and complete)");
        return NULL;
    }
    const char *problem = bc_text_problem(text, false, 500);
    if (problem) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "attestation", "attestation %s", problem);
        return NULL;
    }
    return *text ? text : "I attest that this note is accurate and complete.";
}

bc_code_t notes_sign(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__SignNoteRequest *req = (const Beacon__Notes__SignNoteRequest *)in;
    const char *attestation = s_attestation(call, req->attest, req->attestation);
    if (!attestation)
        return call->err.code;
    char *body = NULL;
    Beacon__Notes__Note *n = s_open_draft(call, req->id, req->expected_version, false, &body);
    if (!n)
        return call->err.code;
    note_template_t t;
    bc_code_t code = notes_template(call, n->template_id, &t);
    if (code != BC_OK)
        return code;
    note_section_t *stored = NULL;
    size_t count = 0;
    if (!notes_open_body(call, n, body, &stored, &count))
        return bc_call_fail(call, BC_DATA_LOSS, "id",
                            "note %s is damaged (its stored text failed its integrity check) "
                            "and cannot be signed",
                            n->id);
    note_section_t *s = bc_arena_alloc(call->arena, t.nsections * sizeof *s);
    bc_error_t err;
    if (note_sections_check(&t, stored, count, SIZE_MAX, SIZE_MAX, true, s, &err) < 0)
        return bc_call_fail_err(call, &err);
    char hash[NOTE_HASH_HEX + 1];
    note_content_hash(n->id, n->client_id, n->template_id, s, t.nsections, hash);
    const char *sp[] = {call->principal->staff_id};
    PGresult *res = bc_db_prepared(call->db, "notes_cosign_needed",
                                   "SELECT requires_cosign FROM notes.supervision "
                                   "WHERE staff_id = $1",
                                   1, sp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool cosign = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    char late[16];
    snprintf(late, sizeof late, "%d", notes_setting(call, "late_entry_hours"));
    const char *params[] = {n->id, cosign ? "awaiting_review" : "signed",
                            cosign ? "pending" : "none", hash, attestation,
                            call->principal->staff_id, late};
    res = bc_db_prepared(call->db, "notes_sign",
                         "UPDATE notes.notes n SET status = $2, review_status = $3, "
                         "content_hash = $4, attestation = $5, signed_by = $6, signed_at = now(), "
                         "late_entry = now() - occurred_at > make_interval(hours => $7::int), "
                         "version = version + 1, updated_by = $6, updated_at = now() "
                         "WHERE id = $1 RETURNING " NOTES_COLUMNS,
                         7, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    n = notes_from_row(call, res, 0);
    PQclear(res);
    notes_set_sections(call, n, s, t.nsections);
    bc_audit_event_t ev = notes_event(n, "sign");
    Beacon__Notes__NoteEvent ne = BEACON__NOTES__NOTE_EVENT__INIT;
    ne.note_id = n->id;
    ne.site_id = n->site_id;
    ne.client_id = n->client_id;
    ne.author_id = n->author_id;
    ne.encounter_id = n->encounter_id;
    ne.content_hash = n->content_hash;
    ne.category = n->category;
    ne.late_entry = n->late_entry;
    if ((!cosign && notes_emit(call, "note.signed", &ne) < 0) ||
        bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

bc_code_t notes_add_addendum(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__AddAddendumRequest *req = (const Beacon__Notes__AddAddendumRequest *)in;
    const char *attestation = s_attestation(call, req->attest, req->attestation);
    if (!attestation)
        return call->err.code;
    const char *problem = note_text_problem(req->text, (size_t)notes_setting(call, "max_section_chars"));
    if (!problem && note_blank(req->text))
        problem = "is required";
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "text", "text %s", problem);
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    char *body = NULL;
    Beacon__Notes__Note *n = notes_load(call, req->note_id, true, &body);
    if (!n)
        return call->err.code;
    if (strcmp(n->status, "signed"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "note_id",
                            "addenda are for signed notes; this one is %s: edit it instead",
                            n->status);
    if (!bc_call_has_role(call, "supervisor") && strcmp(n->author_id, call->principal->staff_id) &&
        !bc_call_has_site(call, n->site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "note_id",
                            "you may not add to this note");
    char id[37];
    bc_uuid_v4(id);
    char hash[NOTE_HASH_HEX + 1];
    note_addendum_hash(id, n->content_hash, req->text, hash);
    char *env = notes_seal(call, "addendum", id, n->client_id, req->text);
    if (!env)
        return call->err.code;
    const char *params[] = {id,         n->id,       call->principal->agency_id,
                            n->site_id, n->client_id, n->author_id, n->category,
                            call->principal->staff_id, env, hash, attestation};
    PGresult *res = bc_db_prepared(call->db, "notes_addendum_add",
                                   "INSERT INTO notes.addenda (id, note_id, agency_id, site_id, "
                                   "client_id, note_author, category, author_id, body_enc, "
                                   "content_hash, attestation) VALUES ($1, $2, $3, $4, $5, $6, "
                                   "$7, $8, $9, $10, $11)",
                                   11, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    bc_code_t code = notes_fill(call, n, body);
    if (code != BC_OK)
        return code;
    bc_audit_event_t ev = notes_event(n, "addendum");
    Beacon__Notes__NoteEvent ne = BEACON__NOTES__NOTE_EVENT__INIT;
    ne.note_id = n->id;
    ne.site_id = n->site_id;
    ne.client_id = n->client_id;
    ne.author_id = call->principal->staff_id;
    ne.encounter_id = n->encounter_id;
    ne.addendum_id = id;
    ne.content_hash = hash;
    ne.category = n->category;
    if (notes_emit(call, "addendum.added", &ne) < 0 || bc_call_audit_write(call, &ev) < 0 ||
        bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

