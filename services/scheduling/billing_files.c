/*  billing_files: the batches as the billing role reads them: a batch, the
 *  list, and its stored 837P file and CSV, part by part (each part decrypted
 *  on the way out; the files are written by billing_batch.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"
#include "bc_util.h"
#include "billing.h"
#include "billing_internal.h"
#include "scheduling.h"

#define S_NULL(s) (*(s) ? (s) : NULL)

PGresult *billing_row(bc_call_t *call, const char *name, const char *sql, const char *id,
                      const char *what)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
        return NULL;
    }
    const char *params[] = {id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, 2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_call_fail(call, BC_NOT_FOUND, "", "no %s %s", what, id);
        return NULL;
    }
    return res;
}

/* ---- batches ------------------------------------------------------------------------ */

static PGresult *s_batch(bc_call_t *call, const char *id)
{
    return billing_row(call, "billing_batch_get",
                       "SELECT " BILLING_BATCH_COLUMNS " FROM billing.batches "
                       "WHERE id = $1 AND agency_id = $2",
                       id, "batch");
}

bc_code_t billing_batch_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__GetBatchRequest *req = (const Beacon__Billing__GetBatchRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    PGresult *res = s_batch(call, req->id);
    if (!res)
        return call->err.code;
    Beacon__Billing__Batch *b = billing_batch_from_row(call, res, 0);
    PQclear(res);
    *out = &b->base;
    return BC_OK;
}

bc_code_t billing_batch_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__ListBatchesRequest *req =
        (const Beacon__Billing__ListBatchesRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    if (*req->payer_id && !billing_payer_id_valid(req->payer_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_id", "payer_id is malformed");
    int limit = req->limit ? req->limit : 50;
    if (limit < 1 || limit > 200)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to 200");
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {call->principal->agency_id, S_NULL(req->payer_id), lim};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "billing_batch_list",
                                   "SELECT " BILLING_BATCH_COLUMNS " FROM billing.batches "
                                   "WHERE agency_id = $1 AND ($2::text IS NULL OR payer_id = $2) "
                                   "ORDER BY created_at DESC, id LIMIT $3::int",
                                   3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Billing__ListBatchesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__billing__list_batches_reply__init(r);
    r->n_batches = (size_t)PQntuples(res);
    r->batches = bc_arena_alloc(call->arena, (r->n_batches + 1) * sizeof *r->batches);
    for (size_t i = 0; i < r->n_batches; i++)
        r->batches[i] = billing_batch_from_row(call, res, (int)i);
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

/* One stored part of a batch's file, opened, as a FileReply. Its download
 * is audited (export, purpose payment) once per part. */
static bc_code_t s_part(bc_call_t *call, const Beacon__Billing__GetBatchFileRequest *req,
                        const char *kind, ProtobufCMessage **out)
{
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    PGresult *res = s_batch(call, req->id);
    if (!res)
        return call->err.code;
    Beacon__Billing__Batch *b = billing_batch_from_row(call, res, 0);
    PQclear(res);
    int parts = !strcmp(kind, "837p") ? b->parts : b->csv_parts;
    int part = req->part ? req->part : 1;
    if (part < 1 || part > parts)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "part", "part must be 1 to %d", parts);
    char part_s[16];
    snprintf(part_s, sizeof part_s, "%d", part);
    const char *params[] = {b->id, kind, part_s};
    bc_error_t err;
    res = bc_db_prepared(call->db, "billing_part_get",
                         "SELECT body_enc FROM billing.batch_parts "
                         "WHERE batch_id = $1 AND kind = $2 AND part = $3::int",
                         3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bc_call_fail(call, BC_DATA_LOSS, "", "part %d of batch %s is missing", part, b->id);
    }
    char aad[128], *plain = NULL;
    size_t len = 0;
    snprintf(aad, sizeof aad, "billing.batch_parts:%s:%s:%d", b->id, kind, part);
    int rc = bc_field_decrypt(billing_keys(call), PQgetvalue(res, 0, 0), aad, &plain, &len, &err);
    PQclear(res);
    if (rc < 0)
        return bc_call_fail(call, BC_DATA_LOSS, "", "part %d of batch %s does not open", part,
                            b->id);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"kind\":\"%s\",\"part\":%d,\"claims\":%d}", kind, part,
             b->claim_count);
    bc_audit_event_t ev = {.action = BC_AUDIT_EXPORT, .resource_type = "billing_batch",
                           .resource_id = b->id, .purpose = "payment", .detail = detail};
    if (bc_call_audit_read(call, &ev) < 0) {
        bc_field_plaintext_free(&plain, len);
        return call->err.code;
    }
    Beacon__FileReply *f = bc_arena_alloc(call->arena, sizeof *f);
    beacon__file_reply__init(f);
    bool x12 = !strcmp(kind, "837p");
    f->content_type = x12 ? "application/edi-x12" : "text/csv; charset=utf-8";
    char ref[33];
    billing_x12_id(b->id, ref, sizeof ref);
    f->filename = parts > 1 ? bc_arena_printf(call->arena, "%s-%09lld-part%d-of-%d.%s",
                                              x12 ? "837p" : "claims",
                                              (long long)b->interchange_control_number, part,
                                              parts, x12 ? "x12" : "csv")
                            : bc_arena_printf(call->arena, "%s-%09lld.%s", x12 ? "837p" : "claims",
                                              (long long)b->interchange_control_number,
                                              x12 ? "x12" : "csv");
    f->body.len = len;
    f->body.data = bc_arena_alloc(call->arena, len ? len : 1);
    memcpy(f->body.data, plain, len);
    bc_field_plaintext_free(&plain, len);
    *out = &f->base;
    return BC_OK;
}

bc_code_t billing_batch_file(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_part(call, (const Beacon__Billing__GetBatchFileRequest *)in, "837p", out);
}

bc_code_t billing_batch_csv(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_part(call, (const Beacon__Billing__GetBatchFileRequest *)in, "csv", out);
}
