/*  billing: BillingNoteStatus, what the billing service (scheduling) needs
 *  to know about the notes of many encounters at once: whether each is
 *  signed and whether it carries a co-signature. Status columns only: no
 *  note text, section, addendum or review comment ever leaves for billing.
 *
 *  For a principal with the billing role, at its sites, inside a
 *  transaction that sets beacon.purpose = billing (the policy of migration
 *  006 holds only there). Up to S_MAX_ENCOUNTERS ids per call.
 */
#include <string.h>

#include "bc_util.h"
#include "notes.h"

#define S_MAX_ENCOUNTERS 5000

bc_code_t billing_note_status(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Notes__BillingNoteStatusRequest *req =
        (const Beacon__Notes__BillingNoteStatusRequest *)in;
    if (!bc_call_has_role(call, "billing"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "note status is for billing");
    if (req->n_encounter_ids > S_MAX_ENCOUNTERS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "encounter_ids",
                            "at most %d encounters per call", S_MAX_ENCOUNTERS);
    char *ids = bc_arena_alloc(call->arena, req->n_encounter_ids * 37 + 3), *p = ids;
    *p++ = '{';
    for (size_t i = 0; i < req->n_encounter_ids; i++) {
        if (!bc_is_uuid(req->encounter_ids[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "encounter_ids",
                                "encounter_ids[%zu] must be a UUID", i);
        if (i)
            *p++ = ',';
        memcpy(p, req->encounter_ids[i], 36);
        p += 36;
    }
    *p++ = '}';
    *p = '\0';
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_set_local(call->db, "beacon.purpose", "billing", &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *params[] = {ids, call->principal->agency_id};
    PGresult *res = bc_db_prepared(
        call->db, "notes_billing_status",
        "SELECT n.encounter_id::text, n.status, n.cosigned_by IS NOT NULL, "
        "coalesce(to_char(n.signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
        "FROM notes.notes n WHERE n.encounter_id = ANY ($1::uuid[]) AND n.encounter_id IS NOT NULL "
        "AND n.agency_id = $2",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Notes__BillingNoteStatusReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__notes__billing_note_status_reply__init(r);
    int rows = PQntuples(res);
    r->notes = bc_arena_alloc(call->arena, ((size_t)rows + 1) * sizeof *r->notes);
    for (int i = 0; i < rows; i++) {
        Beacon__Notes__BillingNoteStatus *s = bc_arena_alloc(call->arena, sizeof *s);
        beacon__notes__billing_note_status__init(s);
        s->encounter_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        s->status = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        s->cosigned = PQgetvalue(res, i, 2)[0] == 't';
        s->signed_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        r->notes[r->n_notes++] = s;
    }
    PQclear(res);
    bc_db_rollback(call->db); /* read only */
    *out = &r->base;
    return BC_OK;
}
