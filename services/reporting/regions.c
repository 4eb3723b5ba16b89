/*  regions: named sets of agencies for the region dashboards (README
 *  "Reporting"; migration 011).
 *
 *  Agency admins only (deny by default; the gateway admits no other role).
 *  A region is created by an agency admin: their agency owns it and is its
 *  first member. Membership needs both sides: the owner's admins invite
 *  (or remove) other agencies, and an invited agency's admins join it (or
 *  leave it, or decline) by setting the list with or without their own
 *  agency. An agency sees a region (and may change its own membership) only
 *  when it owns it or has a row in it; others get 404, as for a region
 *  that does not exist. Every change is audited (resource type "region",
 *  the agencies added and removed in detail) in its transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_util.h"
#include "reporting.h"

#define S_MAX_AGENCIES 100

#define S_REGION_COLUMNS                                                                        \
    "r.id::text, r.name, coalesce(r.owner_agency_id::text, ''), "                               \
    "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "             \
    "coalesce(string_agg(a.agency_id::text, ',' ORDER BY a.agency_id) FILTER (WHERE a.accepted), " \
    "''), coalesce(string_agg(a.agency_id::text, ',' ORDER BY a.agency_id) "                   \
    "FILTER (WHERE NOT a.accepted), '') "                                                       \
    "FROM reporting.regions r LEFT JOIN reporting.region_agencies a ON a.region_id = r.id "

static bc_code_t s_need_admin(bc_call_t *call)
{
    if (!bc_call_has_role(call, "agency_admin") || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "regions are for agency admins");
    return BC_OK;
}

/* Splits comma-separated ids into an arena array of *n strings. */
static char **s_split(bc_call_t *call, const char *csv, size_t *n)
{
    size_t cap = 1;
    for (const char *c = csv; *c; c++)
        cap += *c == ',';
    char **out = bc_arena_alloc(call->arena, cap * sizeof *out);
    *n = 0;
    char *copy = bc_arena_strdup(call->arena, csv), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        out[(*n)++] = t;
    return out;
}

static Beacon__Reporting__Region *s_from_row(bc_call_t *call, PGresult *res, int i)
{
    Beacon__Reporting__Region *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__reporting__region__init(r);
    r->id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
    r->name = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
    r->owner_agency_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
    r->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
    r->agency_ids = s_split(call, PQgetvalue(res, i, 4), &r->n_agency_ids);
    r->invited_agency_ids = s_split(call, PQgetvalue(res, i, 5), &r->n_invited_agency_ids);
    return r;
}

/* The region id as the caller's agency may see it (owner, member or
 * invited; with left, also just after leaving it), or NULL (*code set:
 * NOT_FOUND or the database's error). */
static Beacon__Reporting__Region *s_load(bc_call_t *call, const char *id, bool left,
                                         bc_code_t *code)
{
    *code = BC_OK;
    const char *params[] = {id, call->principal->agency_id, left ? "true" : "false"};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "rp_region_load",
        "SELECT " S_REGION_COLUMNS "WHERE r.id = $1::uuid GROUP BY r.id "
        "HAVING $3::boolean OR r.owner_agency_id = $2::uuid OR bool_or(a.agency_id = $2::uuid)",
        3, params, &err);
    if (!res) {
        *code = bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Reporting__Region *r = PQntuples(res) == 1 ? s_from_row(call, res, 0) : NULL;
    PQclear(res);
    if (!r)
        *code = bc_call_fail(call, BC_NOT_FOUND, "region_id",
                             "no region %s that your agency owns, belongs to or is invited to",
                             id);
    return r;
}

static bool s_in(char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(ids[i], id))
            return true;
    return false;
}

/* A JSON array of ids (uuids: nothing to escape) in the arena. */
static char *s_json_ids(bc_call_t *call, char *const *ids, size_t n)
{
    char *out = bc_arena_alloc(call->arena, n * 40 + 3);
    size_t w = 0;
    out[w++] = '[';
    for (size_t i = 0; i < n; i++)
        w += (size_t)sprintf(out + w, "%s\"%s\"", i ? "," : "", ids[i]);
    out[w++] = ']';
    out[w] = '\0';
    return out;
}

/* Audits the change inside the open transaction, commits, and answers with
 * the region as it now stands (left: the caller's agency just left it). */
static bc_code_t s_finish(bc_call_t *call, const char *id, bool left, const char *action,
                          const char *detail, ProtobufCMessage **out)
{
    bc_audit_event_t ev = {.action = action,
                           .resource_type = "region",
                           .resource_id = id,
                           .purpose = "operations",
                           .detail = detail};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    bc_code_t code;
    Beacon__Reporting__Region *r = s_load(call, id, left, &code);
    if (!r)
        return code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t regions_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Reporting__CreateRegionRequest *req =
        (const Beacon__Reporting__CreateRegionRequest *)in;
    bc_code_t code = s_need_admin(call);
    if (code != BC_OK)
        return code;
    const char *problem = bc_text_problem(req->name, true, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "name", "name %s", problem);
    char id[37];
    bc_uuid_v4(id);
    const char *params[] = {id, req->name, call->principal->agency_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "rp_region_create",
        "WITH r AS (INSERT INTO reporting.regions (id, name, owner_agency_id) "
        "           VALUES ($1::uuid, $2, $3::uuid) RETURNING id) "
        "INSERT INTO reporting.region_agencies (region_id, agency_id, accepted) "
        "SELECT id, $3::uuid, true FROM r",
        3, params, &err);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_ALREADY_EXISTS, "name",
                                "a region with this name already exists");
        return bc_call_fail_err(call, &err);
    }
    PQclear(res);
    char *detail = bc_arena_printf(call->arena, "{\"agency_ids\":[\"%s\"]}",
                                   call->principal->agency_id);
    return s_finish(call, id, false, BC_AUDIT_CREATE, detail, out);
}

bc_code_t regions_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    bc_code_t code = s_need_admin(call);
    if (code != BC_OK)
        return code;
    const char *params[] = {call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "rp_regions_list",
        "SELECT " S_REGION_COLUMNS "GROUP BY r.id "
        "HAVING r.owner_agency_id = $1::uuid OR bool_or(a.agency_id = $1::uuid) "
        "ORDER BY r.name LIMIT 1000",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Reporting__ListRegionsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__reporting__list_regions_reply__init(r);
    int n = PQntuples(res);
    r->regions = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *r->regions);
    for (int i = 0; i < n; i++)
        r->regions[r->n_regions++] = s_from_row(call, res, i);
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

/* Checks the wanted list: UUIDs, no more than the limit. */
static bc_code_t s_check_ids(bc_call_t *call, const Beacon__Reporting__SetRegionAgenciesRequest *req)
{
    if (req->n_agency_ids > S_MAX_AGENCIES)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "agency_ids",
                            "a region has at most %d agencies", S_MAX_AGENCIES);
    for (size_t i = 0; i < req->n_agency_ids; i++)
        if (!bc_is_uuid(req->agency_ids[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "agency_ids",
                                "agency_ids[%zu] must be a UUID", i);
    return BC_OK;
}

bc_code_t regions_set_agencies(bc_call_t *call, const ProtobufCMessage *in,
                               ProtobufCMessage **out)
{
    const Beacon__Reporting__SetRegionAgenciesRequest *req =
        (const Beacon__Reporting__SetRegionAgenciesRequest *)in;
    bc_code_t code = s_need_admin(call);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(req->region_id))
        return bc_call_fail(call, BC_NOT_FOUND, "region_id", "no region %s", req->region_id);
    if ((code = s_check_ids(call, req)) != BC_OK)
        return code;
    const char *mine = call->principal->agency_id;
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *lp[] = {req->region_id};
    PGresult *res = bc_db_prepared(call->db, "rp_region_lock",
                                   "SELECT 1 FROM reporting.regions WHERE id = $1::uuid FOR UPDATE",
                                   1, lp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    Beacon__Reporting__Region *r = s_load(call, req->region_id, false, &code);
    if (!r)
        return code;
    bool owner = !strcasecmp(r->owner_agency_id, mine);
    /* Today's rows, members and invited alike, against the wanted list. */
    size_t nrows = r->n_agency_ids + r->n_invited_agency_ids;
    char **rows = bc_arena_alloc(call->arena, (nrows + 1) * sizeof *rows);
    memcpy(rows, r->agency_ids, r->n_agency_ids * sizeof *rows);
    memcpy(rows + r->n_agency_ids, r->invited_agency_ids,
           r->n_invited_agency_ids * sizeof *rows);
    char **added = bc_arena_alloc(call->arena, (req->n_agency_ids + 1) * sizeof *added);
    char **removed = bc_arena_alloc(call->arena, (nrows + 1) * sizeof *removed);
    size_t nadded = 0, nremoved = 0;
    for (size_t i = 0; i < req->n_agency_ids; i++)
        if (!s_in(rows, nrows, req->agency_ids[i]) && !s_in(added, nadded, req->agency_ids[i]))
            added[nadded++] = req->agency_ids[i];
    for (size_t i = 0; i < nrows; i++)
        if (!s_in(req->agency_ids, req->n_agency_ids, rows[i]))
            removed[nremoved++] = rows[i];
    for (size_t i = 0; i < nadded + nremoved; i++) {
        const char *id = i < nadded ? added[i] : removed[i - nadded];
        if (!owner && strcasecmp(id, mine))
            return bc_call_fail(call, BC_PERMISSION_DENIED, "agency_ids",
                                "only the region's owner invites or removes other agencies; "
                                "yours may join or leave");
    }
    if (owner && s_in(removed, nremoved, mine))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "agency_ids",
                            "the owner's agency stays in its region");
    bool stays = !s_in(removed, nremoved, mine);
    const char *ap[] = {req->region_id, s_json_ids(call, added, nadded),
                        s_json_ids(call, removed, nremoved), mine, stays ? "true" : "false"};
    /* Added: the caller's own agency joins at once, others are invited and
     * must exist (a site of theirs is in identity's directory). Kept: the
     * caller's own agency, when invited, joins by being in the list. */
    res = bc_db_prepared(
        call->db, "rp_region_set",
        "WITH add AS (SELECT x::uuid AS agency_id FROM json_array_elements_text($2::json) x), "
        "gone AS (DELETE FROM reporting.region_agencies WHERE region_id = $1::uuid AND "
        "         agency_id IN (SELECT x::uuid FROM json_array_elements_text($3::json) x)), "
        "joined AS (UPDATE reporting.region_agencies SET accepted = true "
        "         WHERE region_id = $1::uuid AND agency_id = $4::uuid AND NOT accepted "
        "         AND $5::boolean), "
        "ins AS (INSERT INTO reporting.region_agencies (region_id, agency_id, accepted) "
        "        SELECT $1::uuid, w.agency_id, w.agency_id = $4::uuid FROM add w "
        "        WHERE EXISTS (SELECT FROM identity.site_directory d "
        "                      WHERE d.agency_id = w.agency_id) RETURNING agency_id) "
        "SELECT (SELECT count(*) FROM add) - (SELECT count(*) FROM ins)",
        5, ap, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool unknown = atoll(PQgetvalue(res, 0, 0)) > 0;
    PQclear(res);
    if (unknown)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "agency_ids",
                            "agency_ids names an agency that does not exist");
    char *detail = bc_arena_printf(call->arena, "{\"added\":%s,\"removed\":%s}", ap[1], ap[2]);
    return s_finish(call, req->region_id, !stays, BC_AUDIT_UPDATE, detail, out);
}
