/*  search_rows: keeping referral.service_search (migration 007) in step with
 *  the directory. An import notes every record it creates or changes that a
 *  service's search rows are made of (the service, a place it is offered at,
 *  its link to a place, a category term or its attribution, a language),
 *  and before it commits rewrites the rows of every service concerned in
 *  one call of referral.refresh_service_search (migration 009). Services the
 *  import created are passed apart: they have no rows to delete, and what
 *  links to them (places, terms) needs no lookup. */
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "referral.h"

enum { S_SERVICES, S_LOCATIONS, S_TERMS, S_NEW };

static void s_add(search_touched_t *self, int list, const char *id)
{
    if (!id || !*id || import_map_get(&self->seen[list], id) >= 0)
        return;
    import_map_put(&self->seen[list], id, 0);
    size_t n = strlen(id);
    if (self->len[list] + n + 2 > self->cap[list]) {
        self->cap[list] = (self->cap[list] + n + 2) * 2;
        self->ids[list] = bc_realloc(self->ids[list], self->cap[list]);
    }
    char *at = self->ids[list] + self->len[list];
    if (self->len[list])
        *at++ = ',';
    memcpy(at, id, n + 1);
    self->len[list] = (size_t)(at - self->ids[list]) + n;
}

static const char *s_value(const hsds_table_t *t, const hsds_row_t *row, const char *column)
{
    int c = hsds_column(t, column);
    return c >= 0 ? row->values[c] : NULL;
}

/* A stored service (one the import did not create) whose rows change. */
static void s_add_service(search_touched_t *self, const char *id)
{
    if (id && import_map_get(&self->seen[S_NEW], id) < 0)
        s_add(self, S_SERVICES, id);
}

void search_rows_note(search_touched_t *self, const hsds_table_t *t, const hsds_row_t *row,
                      bool created)
{
    const char *e = t->entity;
    if (!strcmp(e, "service"))
        s_add(self, created ? S_NEW : S_SERVICES, row->values[0]);
    else if (!strcmp(e, "location") && !created)
        s_add(self, S_LOCATIONS, row->values[0]);
    else if (!strcmp(e, "taxonomy_term") && !created)
        s_add(self, S_TERMS, row->values[0]);
    else if (!strcmp(e, "service_at_location") || !strcmp(e, "language"))
        s_add_service(self, s_value(t, row, "service_id"));
    else if (!strcmp(e, "attribute")) {
        const char *entity = s_value(t, row, "link_entity");
        if (entity && !strcmp(entity, "service"))
            s_add_service(self, s_value(t, row, "link_id"));
    }
}

void search_rows_forget(search_touched_t *self)
{
    for (int i = 0; i < 4; i++) {
        free(self->ids[i]);
        import_map_clear(&self->seen[i]);
    }
    memset(self, 0, sizeof *self);
}

int search_rows_refresh(bc_call_t *call, search_touched_t *self, bc_error_t *err)
{
    if (!self->len[S_SERVICES] && !self->len[S_LOCATIONS] && !self->len[S_TERMS] &&
        !self->len[S_NEW]) {
        search_rows_forget(self);
        return 0;
    }
    char *lists[4];
    for (int i = 0; i < 4; i++)
        lists[i] = bc_arena_printf(call->arena, "{%s}", self->ids[i] ? self->ids[i] : "");
    search_rows_forget(self);
    const char *params[] = {call->principal->agency_id, lists[S_SERVICES], lists[S_LOCATIONS],
                            lists[S_TERMS], call->principal->staff_id, lists[S_NEW]};
    return bc_db_command(call->db,
                         "SELECT referral.refresh_service_search($1, $2::uuid[], $3::uuid[], "
                         "$4::uuid[], $5, $6::uuid[])",
                         6, params, err);
}
