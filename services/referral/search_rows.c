/*  search_rows: keeping referral.service_search (migration 007) in step with
 *  the directory. An import notes every record it creates or changes that a
 *  service's search rows are made of (the service, a place it is offered at,
 *  its link to a place, a category term or its attribution, a language),
 *  and before it commits writes the rows of every service concerned:
 *
 *  - a service it created has no rows yet, and everything linked to it is
 *    in the import (its places, terms and languages): its rows are inserted
 *    from those links in one statement, which reads only the service (its
 *    keyword vector, status and ages), the places (coordinates) and the
 *    terms (code and name) by key;
 *  - the stored services it touched (directly, through a stored place or
 *    term it changed, or by linking something to them) are rewritten by
 *    referral.refresh_service_search (migration 009), which looks up all
 *    their links.
 *
 *  Profile of a 100,000-service import before the split (perf, pg_stat_
 *  statements): rewriting every touched service through the lookups took a
 *  fifth of the database's time, most of it five index probes per service. */
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "referral.h"

static const char s_created_sql[] =
    "INSERT INTO referral.service_search (agency_id, service_id, location_id, latitude, "
    "longitude, status, search, term_keys, language_keys, minimum_age, maximum_age, "
    "updated_by) "
    /* A place linked twice to the same service gives one row. The services
     * are new in this transaction (their keys would have stopped another
     * import creating them too), so no row of theirs can be stored: a
     * plain INSERT, not the upsert's speculative insertion of each row. */
    "SELECT DISTINCT ON (s.id, l.id) $1::uuid, s.id, l.id, l.latitude, l.longitude, s.status, "
    "s.search, coalesce(tk.keys, '{}'), coalesce(lk.keys, '{}'), s.minimum_age, s.maximum_age, "
    "$2::uuid "
    "FROM unnest($3::uuid[], $4::uuid[]) AS r(service_id, location_id) "
    /* One probe per key (LATERAL ... OFFSET 0), never a hash of a directory table. */
    "CROSS JOIN LATERAL (SELECT s.id, s.status, s.search, s.minimum_age, s.maximum_age "
    "                    FROM referral.services s "
    "                    WHERE s.agency_id = $1::uuid AND s.id = r.service_id OFFSET 0) s "
    "CROSS JOIN LATERAL (SELECT l.id, l.latitude, l.longitude FROM referral.locations l "
    "                    WHERE l.agency_id = $1::uuid AND l.id = r.location_id "
    "                      AND l.latitude IS NOT NULL AND l.longitude IS NOT NULL "
    "                    OFFSET 0) l "
    /* Each term read once, however many services it is attributed to (a
     * probe per attribution read the few terms of an import hundreds of
     * times over). */
    "LEFT JOIN (SELECT a.service_id, array_agg(tk.k) AS keys "
    "           FROM unnest($5::uuid[], $6::uuid[]) AS a(service_id, term_id) "
    "           JOIN (SELECT tt.id, k FROM (SELECT DISTINCT u.id FROM unnest($6::uuid[]) AS u(id)) d "
    "                 CROSS JOIN LATERAL (SELECT tt.id, tt.code, tt.name "
    "                                     FROM referral.taxonomy_terms tt "
    "                                     WHERE tt.agency_id = $1::uuid AND tt.id = d.id "
    "                                     OFFSET 0) tt, "
    "                 LATERAL unnest(ARRAY['id:' || tt.id::text, 'code:' || tt.code, "
    "                                      'name:' || lower(tt.name)]) k "
    "                 WHERE k IS NOT NULL) tk ON tk.id = a.term_id "
    "           GROUP BY a.service_id) tk ON tk.service_id = s.id "
    "LEFT JOIN (SELECT g.service_id, array_agg(DISTINCT lower(g.key)) AS keys "
    "           FROM unnest($7::uuid[], $8::text[]) AS g(service_id, key) "
    "           WHERE g.key IS NOT NULL GROUP BY g.service_id) lk ON lk.service_id = s.id "
    "ORDER BY s.id, l.id";

/* Adds id to list (one of the first three) unless it is there already. */
static void s_add(search_touched_t *self, int list, const char *id)
{
    if (!id || !*id || import_map_get(&self->seen[list], id) >= 0)
        return;
    import_map_put(&self->seen[list], id, 0);
    hsds_array_add(&self->lists[list], id);
}

/* Adds the pair (service, value) to the lists pair, pair + 1. */
static void s_pair(search_touched_t *self, int pair, const char *service, const char *value)
{
    hsds_array_add(&self->lists[pair], service);
    hsds_array_add(&self->lists[pair + 1], value);
}

static const char *s_value(const hsds_table_t *t, const hsds_row_t *row, const char *column)
{
    int c = hsds_column(t, column);
    return c >= 0 ? row->values[c] : NULL;
}

static bool s_created(const search_touched_t *self, const char *service)
{
    return service && import_map_get(&self->created, service) >= 0;
}

void search_rows_note(search_touched_t *self, const hsds_table_t *t, const hsds_row_t *row,
                      bool created)
{
    const char *e = t->entity;
    if (!strcmp(e, "service")) {
        if (created)
            import_map_put(&self->created, row->values[0], 0);
        else
            s_add(self, SEARCH_STORED, row->values[0]);
    } else if (!strcmp(e, "location")) {
        if (!created)
            s_add(self, SEARCH_PLACES, row->values[0]);
    } else if (!strcmp(e, "taxonomy_term")) {
        if (!created)
            s_add(self, SEARCH_TERMS, row->values[0]);
    } else if (!strcmp(e, "service_at_location")) {
        const char *service = s_value(t, row, "service_id");
        if (s_created(self, service))
            s_pair(self, SEARCH_AT_SERVICE, service, s_value(t, row, "location_id"));
        else
            s_add(self, SEARCH_STORED, service);
    } else if (!strcmp(e, "language")) {
        const char *service = s_value(t, row, "service_id");
        if (s_created(self, service)) {
            s_pair(self, SEARCH_LANG_SERVICE, service, s_value(t, row, "code"));
            s_pair(self, SEARCH_LANG_SERVICE, service, s_value(t, row, "name"));
        } else {
            s_add(self, SEARCH_STORED, service);
        }
    } else if (!strcmp(e, "attribute")) {
        const char *entity = s_value(t, row, "link_entity");
        const char *service = s_value(t, row, "link_id");
        if (!entity || strcmp(entity, "service"))
            return;
        if (s_created(self, service))
            s_pair(self, SEARCH_TERM_SERVICE, service, s_value(t, row, "taxonomy_term_id"));
        else
            s_add(self, SEARCH_STORED, service);
    }
}

void search_rows_forget(search_touched_t *self)
{
    for (int i = 0; i < SEARCH_LISTS; i++)
        hsds_array_free(&self->lists[i]);
    for (int i = 0; i < 3; i++)
        import_map_clear(&self->seen[i]);
    import_map_clear(&self->created);
    memset(self, 0, sizeof *self);
}

int search_rows_refresh(bc_call_t *call, search_touched_t *self, bc_error_t *err)
{
    bc_arena_t *arena = call->arena;
    const char *agency = call->principal->agency_id, *staff = call->principal->staff_id;
    char *lists[SEARCH_LISTS];
    for (int i = 0; i < SEARCH_LISTS; i++)
        lists[i] = hsds_array_text(arena, &self->lists[i]);
    bool stored = self->lists[SEARCH_STORED].len || self->lists[SEARCH_PLACES].len ||
                  self->lists[SEARCH_TERMS].len;
    bool created = self->lists[SEARCH_AT_SERVICE].len;
    search_rows_forget(self);
    if (created) {
        const char *params[] = {agency,
                                staff,
                                lists[SEARCH_AT_SERVICE],
                                lists[SEARCH_AT_PLACE],
                                lists[SEARCH_TERM_SERVICE],
                                lists[SEARCH_TERM],
                                lists[SEARCH_LANG_SERVICE],
                                lists[SEARCH_LANG]};
        PGresult *res = bc_db_prepared(call->db, "search_rows_created", s_created_sql, 8, params,
                                       err);
        if (!res)
            return -1;
        PQclear(res);
    }
    if (!stored)
        return 0;
    const char *params[] = {agency, lists[SEARCH_STORED], lists[SEARCH_PLACES],
                            lists[SEARCH_TERMS], staff};
    return bc_db_command(call->db,
                         "SELECT referral.refresh_service_search($1, $2::uuid[], $3::uuid[], "
                         "$4::uuid[], $5)",
                         5, params, err);
}
