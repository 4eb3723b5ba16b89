/*  assessments: standardized instruments (BARC-10 and whatever an agency
 *  adds as a definition file, see instrument.h) administered to a client
 *  over time, scored by the service, with the change since the client's
 *  first (baseline) assessment on the same instrument.
 *
 *  The registry is loaded once at start from the instruments_dir setting;
 *  a bad definition stops the service from starting rather than scoring
 *  wrongly. Recording needs the client in the caller's ordinary scope;
 *  reading follows the client's visibility (break-glass included). Reads and
 *  writes are audited like the client record itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bc_crypt.h"
#include "bc_mem.h"
#include "bc_util.h"
#include "instrument.h"
#include "intake.h"

#define S_MAX_ANSWERS 200

int intake_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    intake_state_t *st = bc_calloc(1, sizeof *st);
    st->instruments = instrument_registry_load(bc_config_str(config, "instruments_dir"), err);
    if (st->instruments)
        st->keys = bc_keyring_load(bc_config_str(config, "field_keys_file"), err);
    if (!st->instruments || !st->keys) {
        intake_stop(st);
        return -1;
    }
    *state = st;
    return 0;
}

void intake_stop(void *state)
{
    intake_state_t *st = state;
    if (!st)
        return;
    instrument_registry_destroy(&st->instruments);
    bc_keyring_destroy(&st->keys);
    free(st);
}

static const instrument_registry_t *s_registry(const bc_call_t *call)
{
    return ((const intake_state_t *)call->state)->instruments;
}

bc_code_t assessments_instruments(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out)
{
    (void)in;
    const instrument_registry_t *reg = s_registry(call);
    Beacon__Intake__ListInstrumentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_instruments_reply__init(r);
    r->n_instruments = instrument_registry_count(reg);
    r->instruments = bc_arena_alloc(call->arena, (r->n_instruments + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_instruments; i++) {
        const instrument_t *ins = instrument_registry_at(reg, i);
        Beacon__Intake__Instrument *m = bc_arena_alloc(call->arena, sizeof *m);
        beacon__intake__instrument__init(m);
        m->id = (char *)instrument_id(ins);
        m->version = (char *)instrument_version(ins);
        m->title = (char *)instrument_title(ins);
        m->citation = (char *)instrument_citation(ins);
        m->instructions = (char *)(instrument_instructions(ins) ? instrument_instructions(ins) : "");
        m->total_min = instrument_total_min(ins);
        m->total_max = instrument_total_max(ins);
        m->n_scale = instrument_scale_count(ins);
        m->scale = bc_arena_alloc(call->arena, (m->n_scale + 1) * sizeof(void *));
        for (size_t k = 0; k < m->n_scale; k++) {
            const instrument_scale_point_t *sp = instrument_scale_point(ins, k);
            Beacon__Intake__ScalePoint *p = bc_arena_alloc(call->arena, sizeof *p);
            beacon__intake__scale_point__init(p);
            p->value = sp->value;
            p->label = (char *)sp->label;
            m->scale[k] = p;
        }
        m->n_items = instrument_item_count(ins);
        m->items = bc_arena_alloc(call->arena, (m->n_items + 1) * sizeof(void *));
        for (size_t k = 0; k < m->n_items; k++) {
            const instrument_item_t *it = instrument_item(ins, k);
            Beacon__Intake__InstrumentItem *p = bc_arena_alloc(call->arena, sizeof *p);
            beacon__intake__instrument_item__init(p);
            p->id = (char *)it->id;
            p->text = (char *)it->text;
            p->reverse = it->reverse;
            m->items[k] = p;
        }
        r->instruments[i] = m;
    }
    *out = &r->base;
    return BC_OK;
}

#define S_ASSESSMENT_COLUMNS                                                                    \
    "a.id::text, a.client_id::text, a.instrument_id, a.instrument_version, "                    \
    "to_char(a.administered_on, 'YYYY-MM-DD'), a.answers::text, a.total, a.subscales::text, "   \
    "array_to_json(a.bands)::text, a.recorded_by::text, " INTAKE_TIME("a.created_at") ", "      \
    "a.total - first_value(a.total) OVER w, row_number() OVER w = 1, c.site_id::text"
#define S_ASSESSMENT_WINDOW                                                                     \
    " WINDOW w AS (PARTITION BY a.instrument_id ORDER BY a.administered_on, a.created_at, a.id)"

static Beacon__Intake__Assessment *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Assessment *a = bc_arena_alloc(call->arena, sizeof *a);
    beacon__intake__assessment__init(a);
    char **f[] = {&a->id, &a->client_id, &a->instrument_id, &a->instrument_version,
                  &a->administered_on};
    for (int i = 0; i < 5; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    json_t *answers = json_loads(PQgetvalue(res, row, 5), 0, NULL);
    a->answers = bc_arena_alloc(call->arena, (json_array_size(answers) + 1) * sizeof(void *));
    size_t i;
    json_t *v;
    json_array_foreach(answers, i, v)
    {
        Beacon__Intake__Answer *an = bc_arena_alloc(call->arena, sizeof *an);
        beacon__intake__answer__init(an);
        an->item_id = bc_arena_strdup(call->arena, json_string_value(json_object_get(v, "item_id"))
                                                       ?: "");
        an->value = (int32_t)json_integer_value(json_object_get(v, "value"));
        a->answers[a->n_answers++] = an;
    }
    json_decref(answers);
    a->total = atoi(PQgetvalue(res, row, 6));
    json_t *subs = json_loads(PQgetvalue(res, row, 7), 0, NULL);
    a->subscales = bc_arena_alloc(call->arena, (json_array_size(subs) + 1) * sizeof(void *));
    json_array_foreach(subs, i, v)
    {
        Beacon__Intake__SubscaleScore *s = bc_arena_alloc(call->arena, sizeof *s);
        beacon__intake__subscale_score__init(s);
        s->id = bc_arena_strdup(call->arena, json_string_value(json_object_get(v, "id")) ?: "");
        s->score = (int32_t)json_integer_value(json_object_get(v, "score"));
        a->subscales[a->n_subscales++] = s;
    }
    json_decref(subs);
    json_t *bands = json_loads(PQgetvalue(res, row, 8), 0, NULL);
    a->bands = bc_arena_alloc(call->arena, (json_array_size(bands) + 1) * sizeof(char *));
    json_array_foreach(bands, i, v)
    {
        a->bands[a->n_bands++] = bc_arena_strdup(call->arena, json_string_value(v) ?: "");
    }
    json_decref(bands);
    a->recorded_by = bc_arena_strdup(call->arena, PQgetvalue(res, row, 9));
    a->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 10));
    a->change_since_first = atoi(PQgetvalue(res, row, 11));
    a->first = PQgetvalue(res, row, 12)[0] == 't';
    return a;
}

/* YYYY-MM-DD, a real date, not in the future, not before 1900. */
static bool s_valid_day(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(s) != 10)
        return false;
    struct tm check = tm;
    time_t t = timegm(&check);
    return check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon &&
           tm.tm_year + 1900 >= 1900 && t <= time(NULL);
}

bc_code_t assessments_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__RecordAssessmentRequest *req =
        (const Beacon__Intake__RecordAssessmentRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    const instrument_t *ins = instrument_find(s_registry(call), req->instrument_id);
    if (!ins)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "instrument_id",
                            "no instrument \"%.64s\" (GET /api/v1/instruments lists them)",
                            req->instrument_id);
    if (*req->administered_on && !s_valid_day(req->administered_on))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "administered_on",
                            "administered_on must be a date as YYYY-MM-DD, not in the future");
    if (req->n_answers > S_MAX_ANSWERS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "answers", "too many answers");
    if (!bc_is_uuid(call->principal->staff_id) || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff record assessments");
    instrument_answer_t answers[S_MAX_ANSWERS];
    for (size_t i = 0; i < req->n_answers; i++) {
        answers[i].item_id = req->answers[i]->item_id;
        answers[i].value = req->answers[i]->value;
    }
    instrument_score_t score;
    bc_error_t err;
    if (instrument_score(ins, answers, req->n_answers, &score, &err) < 0)
        return bc_call_fail_err(call, &err);

    json_t *ja = json_array(), *js = json_array(), *jb = json_array();
    for (size_t i = 0; i < req->n_answers; i++)
        json_array_append_new(ja, json_pack("{s:s, s:i}", "item_id", answers[i].item_id, "value",
                                            answers[i].value));
    for (size_t i = 0; i < score.subscale_count; i++)
        json_array_append_new(js, json_pack("{s:s, s:i}", "id", instrument_subscale(ins, i)->id,
                                            "score", score.subscales[i]));
    for (size_t i = 0; i < score.band_count; i++)
        json_array_append_new(jb, json_string(score.bands[i]->id));
    char *answers_text = json_dumps(ja, JSON_COMPACT), *subs_text = json_dumps(js, JSON_COMPACT),
         *bands_text = json_dumps(jb, JSON_COMPACT);
    json_decref(ja);
    json_decref(js);
    json_decref(jb);
    char total[16];
    snprintf(total, sizeof total, "%d", score.total);
    const char *params[] = {req->client_id,
                            call->principal->agency_id,
                            instrument_id(ins),
                            instrument_version(ins),
                            *req->administered_on ? req->administered_on : NULL,
                            answers_text,
                            total,
                            subs_text,
                            bands_text,
                            call->principal->staff_id};
    bc_code_t code = BC_OK;
    PGresult *res = NULL;
    if (bc_db_begin(call->db, &err) < 0)
        code = bc_call_fail_err(call, &err);
    else
        res = bc_db_prepared(
            call->db, "intake_assessment_insert",
            "INSERT INTO intake.assessments (client_id, instrument_id, instrument_version, "
            "administered_on, answers, total, subscales, bands, recorded_by) "
            "SELECT c.id, $3, $4, coalesce($5::date, (now() AT TIME ZONE 'UTC')::date), "
            "$6::jsonb, $7::int, $8::jsonb, "
            "ARRAY(SELECT json_array_elements_text($9::json)), $10::uuid "
            "FROM intake.clients c WHERE c.id = $1 AND c.agency_id = $2 "
            "AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) "
            "RETURNING id::text",
            10, params, &err);
    free(answers_text);
    free(subs_text);
    free(bands_text);
    if (code != BC_OK)
        return code;
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s in your scope",
                            req->client_id);
    }
    char *id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    PQclear(res);
    /* Read it back with its change since the first on this instrument. */
    const char *rp[] = {req->client_id, instrument_id(ins)};
    res = bc_db_prepared(call->db, "intake_assessment_series",
                         "SELECT " S_ASSESSMENT_COLUMNS " FROM intake.assessments a "
                         "JOIN intake.clients c ON c.id = a.client_id "
                         "WHERE a.client_id = $1 AND ($2::text IS NULL OR a.instrument_id = $2)"
                         S_ASSESSMENT_WINDOW " ORDER BY a.administered_on, a.created_at, a.id",
                         2, rp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__Assessment *a = NULL;
    char site[40] = "";
    for (int i = 0; i < PQntuples(res) && !a; i++)
        if (!strcmp(PQgetvalue(res, i, 0), id)) {
            a = s_from_row(call, res, i);
            snprintf(site, sizeof site, "%s", PQgetvalue(res, i, 13));
        }
    PQclear(res);
    if (!a)
        return bc_call_fail(call, BC_INTERNAL, "", "the assessment vanished after recording");
    Beacon__Intake__IntakeEvent e = BEACON__INTAKE__INTAKE_EVENT__INIT;
    e.client_id = a->client_id;
    e.site_id = site;
    e.assessment_id = a->id;
    e.instrument_id = a->instrument_id;
    e.total = a->total;
    e.on_date = a->administered_on;
    if (intake_emit(call, "assessment.completed", &e) < 0)
        return call->err.code;
    char detail[160];
    snprintf(detail, sizeof detail, "{\"instrument\":\"%s\",\"total\":%d}", a->instrument_id,
             a->total);
    return intake_commit_change(call, BC_AUDIT_CREATE, "assessment", a->id, a->client_id, site,
                                detail, &a->base, out);
}

bc_code_t assessments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListAssessmentsRequest *req =
        (const Beacon__Intake__ListAssessmentsRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (*req->instrument_id && !instrument_find(s_registry(call), req->instrument_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "instrument_id", "no such instrument");
    bc_audit_event_t ev;
    bc_code_t code = intake_read_scope(call, req->client_id, "assessment", &ev);
    if (code != BC_OK)
        return code;
    bc_error_t err;
    PGresult *res;
    const char *rp[] = {req->client_id, *req->instrument_id ? req->instrument_id : NULL};
    res = bc_db_prepared(call->db, "intake_assessment_series",
                         "SELECT " S_ASSESSMENT_COLUMNS " FROM intake.assessments a "
                         "JOIN intake.clients c ON c.id = a.client_id "
                         "WHERE a.client_id = $1 AND ($2::text IS NULL OR a.instrument_id = $2)"
                         S_ASSESSMENT_WINDOW " ORDER BY a.administered_on, a.created_at, a.id",
                         2, rp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__ListAssessmentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_assessments_reply__init(r);
    r->n_assessments = (size_t)PQntuples(res);
    r->assessments = bc_arena_alloc(call->arena, (r->n_assessments + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_assessments; i++)
        r->assessments[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
