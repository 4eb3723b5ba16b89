/*  locations: where meetings happen at a site (office rooms, community
 *  places, virtual rooms). Supervisors and site admins add them; everyone at
 *  the site lists them. A room that is booked cannot be double-booked
 *  (appointments.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "scheduling.h"

#define S_LOCATION_COLUMNS                                                                        \
    "id::text, site_id::text, name, kind, coalesce(address, ''), coalesce(capacity, 0), "         \
    "active, " SCHED_US("created_at")

static Beacon__Scheduling__Location *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Scheduling__Location *l = bc_arena_alloc(call->arena, sizeof *l);
    beacon__scheduling__location__init(l);
    char **text[] = {&l->id, &l->site_id, &l->name, &l->kind, &l->address};
    for (int c = 0; c < 5; c++)
        *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    l->capacity = atoi(PQgetvalue(res, row, 5));
    l->active = PQgetvalue(res, row, 6)[0] == 't';
    l->created_at = sched_time_value(call, res, row, 7);
    return l;
}

bc_code_t locations_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__CreateLocationRequest *req =
        (const Beacon__Scheduling__CreateLocationRequest *)in;
    if (!bc_call_has_role(call, "supervisor") && !bc_call_has_role(call, "site_admin"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "supervisors and site admins add locations");
    if (!bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (!bc_call_has_site(call, req->site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id", "not one of your sites");
    const char *problem = bc_text_problem(req->name, true, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "name", "name %s", problem);
    if ((problem = bc_text_problem(req->address, false, 500)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "address", "address %s", problem);
    if (strcmp(req->kind, "office_room") && strcmp(req->kind, "community") &&
        strcmp(req->kind, "virtual"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "kind",
                            "kind must be one of office_room, community, virtual");
    if (req->capacity < 0 || req->capacity > 1000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "capacity", "capacity must be 1 to 1000");
    char capacity[16];
    snprintf(capacity, sizeof capacity, "%d", req->capacity);
    const char *params[] = {call->principal->agency_id, req->site_id, req->name, req->kind,
                            *req->address ? req->address : NULL,
                            req->capacity ? capacity : NULL, call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "sched_location_insert",
        "INSERT INTO scheduling.locations (agency_id, site_id, name, kind, address, capacity, "
        "created_by) VALUES ($1, $2, $3, $4, $5, $6::int, $7) RETURNING " S_LOCATION_COLUMNS,
        7, params, &err);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_ALREADY_EXISTS, "name",
                                "the site already has a location called that");
        return bc_call_fail_err(call, &err);
    }
    Beacon__Scheduling__Location *l = s_from_row(call, res, 0);
    PQclear(res);
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &l->base;
    return BC_OK;
}

bc_code_t locations_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__ListLocationsRequest *req =
        (const Beacon__Scheduling__ListLocationsRequest *)in;
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    const char *params[] = {call->principal->agency_id, *req->site_id ? req->site_id : NULL};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_location_list",
                                   "SELECT " S_LOCATION_COLUMNS " FROM scheduling.locations "
                                   "WHERE agency_id = $1 AND ($2::uuid IS NULL OR site_id = $2) "
                                   "ORDER BY site_id, lower(name) LIMIT 1000",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__ListLocationsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__list_locations_reply__init(r);
    r->n_locations = (size_t)PQntuples(res);
    r->locations =
        bc_arena_alloc(call->arena, (r->n_locations ? r->n_locations : 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_locations; i++)
        r->locations[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}
