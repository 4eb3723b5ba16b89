/*  identity_events: identity's events and the endpoint that replays them.
 *
 *  Identity writes staff.changed (beacon.identity.StaffEvent) to the outbox
 *  in the transaction that creates a staff member or changes their sites,
 *  credentials or status, like every producer (DESIGN.md, transactional
 *  outbox). The gateway's identity host relays them on events_bind_endpoint
 *  when that is set. Subscribers that missed some ask ReplayEvents: identity
 *  itself is reachable only in-process, so the gateway hosts a second,
 *  one-method service (IdentityEvents, name "identity") on endpoint_identity
 *  that answers ReplayEvents and nothing else. */
#include <string.h>

#include "identity.h"

int identity_staff_emit(bc_call_t *call, const char *staff_id, bc_error_t *err)
{
    const char *params[] = {staff_id};
    PGresult *res = bc_db_prepared(
        call->db, "identity_staff_event",
        "SELECT st.agency_id, st.status, "
        "coalesce((SELECT string_agg(site_id::text, ',' ORDER BY site_id) "
        "          FROM identity.staff_sites WHERE staff_id = st.id), ''), "
        "c.kind, coalesce(to_char(c.issued_on, 'YYYY-MM-DD'), ''), "
        "coalesce(to_char(c.expires_on, 'YYYY-MM-DD'), '') "
        "FROM identity.staff st LEFT JOIN identity.credentials c ON c.staff_id = st.id "
        "WHERE st.id = $1 ORDER BY c.kind, c.expires_on NULLS LAST",
        1, params, err);
    if (!res)
        return -1;
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        bc_error_set(err, BC_INTERNAL, "", "staff member %s vanished before its event", staff_id);
        return -1;
    }
    Beacon__Identity__StaffEvent ev = BEACON__IDENTITY__STAFF_EVENT__INIT;
    ev.staff_id = (char *)staff_id;
    ev.agency_id = identity_col(call, res, 0);
    ev.status = identity_col(call, res, 1);
    ev.site_ids = identity_split(call, PQgetvalue(res, 0, 2), &ev.n_site_ids);
    ev.credentials = bc_arena_alloc(call->arena, sizeof *ev.credentials * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 3))
            continue; /* no credentials: the one row of the outer join */
        Beacon__Identity__Credential *c = bc_arena_alloc(call->arena, sizeof *c);
        beacon__identity__credential__init(c);
        c->kind = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        c->issued_on = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        c->expires_on = bc_arena_strdup(call->arena, PQgetvalue(res, i, 5));
        ev.credentials[ev.n_credentials++] = c;
    }
    PQclear(res);
    return bc_outbox_emit(call->db, call->request->service, "staff.changed", &ev.base,
                          call->request->request_id, err);
}

static const bc_method_t s_methods[] = {
    {"ReplayEvents", bc_replay_events},
    {NULL, NULL},
};

const bc_service_def_t identity_events_service = {
    .name = "identity",
    .home = "gateway",
    .descriptor = &beacon__identity__identity_events__descriptor,
    .methods = s_methods,
    .no_relay = true,
    .workers = 1,
};
