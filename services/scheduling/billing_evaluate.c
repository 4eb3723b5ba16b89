/*  billing_evaluate: whether an encounter is billable, and the claim it
 *  makes (billing_evaluate_rows), for batches and for replacements.
 *
 *  Encounters are evaluated a chunk at a time: intake is asked once per
 *  chunk (BillingSubjects: subscriber, Medicaid ID, episodes, diagnoses,
 *  consent to disclose to the payer for payment) and notes once
 *  (BillingNoteStatus: signed, co-signed), over ZeroMQ as the caller, and
 *  the units already billed to the chunk's clients are read, so a million
 *  encounters cost a few hundred calls, never one per encounter. Each
 *  encounter is billable or held with every reason that applies: an
 *  encounter crossing midnight, past timely filing, too short for a unit, no
 *  rate for its modifiers, no signed (co-signed where required) note, no
 *  active enrollment, Medicaid ID or consent, no qualifying diagnosis, under
 *  the minimum age, a name or address X12 cannot carry, over the daily or
 *  episode limit of units.
 *
 *  The service's billing state (the field keys, one DEALER per worker thread
 *  for intake and for notes) lives here too.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "bc_crypt.h"
#include "bc_log.h"
#include "bc_rpc.h"
#include "bc_util.h"
#include "billing.h"
#include "billing_internal.h"
#include "intake.pb-c.h"
#include "notes.pb-c.h"
#include "scheduling.h"

/* ---- state: keys and the callers of intake and notes --------------------------- */

struct billing_state {
    void *zctx;
    char *intake_endpoints, *notes_endpoints;
    int max_msg_bytes, heartbeat_ms;
    size_t part_bytes;
    bc_keyring_t *keys;
    pthread_mutex_t lock;
    bc_rpc_client_t **clients;
    size_t n_clients;
};

/* One DEALER per worker thread and service (a client belongs to one thread). */
static _Thread_local bc_rpc_client_t *s_intake, *s_notes;

billing_state_t *billing_start(const bc_config_t *config, bc_error_t *err)
{
    bc_keyring_t *keys = bc_keyring_load(bc_config_str(config, "field_keys_file"), err);
    if (!keys)
        return NULL;
    billing_state_t *st = bc_calloc(1, sizeof *st);
    st->keys = keys;
    st->zctx = zmq_ctx_new();
    st->intake_endpoints = bc_strdup(bc_config_str(config, "endpoint_intake"));
    st->notes_endpoints = bc_strdup(bc_config_str(config, "endpoint_notes"));
    st->max_msg_bytes = (int)bc_config_int(config, "rpc_max_message_bytes");
    st->heartbeat_ms = (int)bc_config_int(config, "rpc_heartbeat_ms");
    st->part_bytes = (size_t)bc_config_int(config, "billing_part_bytes");
    pthread_mutex_init(&st->lock, NULL);
    return st;
}

void billing_stop(billing_state_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_clients; i++)
        bc_rpc_client_destroy(&st->clients[i]);
    free(st->clients);
    zmq_ctx_term(st->zctx);
    pthread_mutex_destroy(&st->lock);
    free(st->intake_endpoints);
    free(st->notes_endpoints);
    bc_keyring_destroy(&st->keys);
    free(st);
}

billing_state_t *billing_state(const bc_call_t *call)
{
    return ((const sched_state_t *)call->state)->billing;
}

const bc_keyring_t *billing_keys(const bc_call_t *call)
{
    return billing_state(call)->keys;
}

size_t billing_part_bytes(const bc_call_t *call)
{
    return billing_state(call)->part_bytes;
}

static bc_rpc_client_t *s_client(billing_state_t *st, bool intake, bc_error_t *err)
{
    bc_rpc_client_t **slot = intake ? &s_intake : &s_notes;
    if (*slot)
        return *slot;
    bc_rpc_client_t *c =
        bc_rpc_client_new(st->zctx, intake ? "intake" : "notes",
                          intake ? st->intake_endpoints : st->notes_endpoints, st->max_msg_bytes,
                          st->heartbeat_ms, err);
    if (!c)
        return NULL;
    pthread_mutex_lock(&st->lock);
    st->clients = bc_realloc(st->clients, (st->n_clients + 1) * sizeof *st->clients);
    st->clients[st->n_clients++] = c;
    pthread_mutex_unlock(&st->lock);
    return *slot = c;
}

static const char *s_service_name(bool intake)
{
    return intake ? "intake" : "notes";
}

/* Sends one call to intake or notes as the caller, without waiting; the
 * reply will be unpacked into alloc. NULL with call->err set (UNAVAILABLE
 * when the service cannot be reached). */
static bc_rpc_wait_t *s_rpc_start(bc_call_t *call, bool intake, const char *method,
                                  const ProtobufCMessage *req,
                                  const ProtobufCMessageDescriptor *out, ProtobufCAllocator *alloc)
{
    bc_error_t err;
    bc_rpc_client_t *client = s_client(billing_state(call), intake, &err);
    if (!client) {
        bc_call_fail(call, BC_UNAVAILABLE, "", "%s is unavailable: try again",
                     s_service_name(intake));
        return NULL;
    }
    int64_t deadline = call->request->deadline_unix_ms ? (int64_t)call->request->deadline_unix_ms
                                                       : bc_now_ms() + 60000;
    bc_rpc_call_t rpc = {.method = method,
                         .principal = call->principal,
                         .payload = req,
                         .deadline_ms = deadline,
                         .request_id = call->request->request_id};
    bc_rpc_wait_t *wait = bc_rpc_client_start(client, &rpc, out, alloc, &err);
    if (!wait) {
        bc_warn("billing: %s.%s could not be sent: %s", s_service_name(intake), method,
                err.message);
        bc_call_fail(call, BC_UNAVAILABLE, "", "%s is unavailable: try again",
                     s_service_name(intake));
    }
    return wait;
}

/* The reply of a call s_rpc_start sent (taking *wait); NULL with call->err
 * set. */
static ProtobufCMessage *s_rpc_finish(bc_call_t *call, bool intake, const char *method,
                                      bc_rpc_wait_t **wait)
{
    bc_error_t err;
    bc_rpc_client_t *client = intake ? s_intake : s_notes;
    ProtobufCMessage *reply = bc_rpc_client_finish(client, wait, &err);
    if (!reply) {
        bc_warn("billing: %s.%s failed: %s", s_service_name(intake), method, err.message);
        if (err.code == BC_UNAVAILABLE || err.code == BC_DEADLINE_EXCEEDED)
            bc_call_fail(call, BC_UNAVAILABLE, "", "%s did not answer: try again",
                         s_service_name(intake));
        else
            bc_call_fail_err(call, &err);
    }
    return reply;
}

/* ---- dates ------------------------------------------------------------------------- */

/* Days since 1970-01-01 of YYYY-MM-DD, or INT32_MIN when it is no date. */
int32_t billing_day(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (!end || *end || strlen(s) != 10)
        return INT32_MIN;
    struct tm check = tm;
    time_t t = timegm(&check);
    if (check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
        return INT32_MIN;
    return (int32_t)(t / 86400);
}

/* "2027-03-14" -> "20270314" */
static void s_date8(const char *iso, char out[9])
{
    snprintf(out, 9, "%.4s%.2s%.2s", iso, iso + 5, iso + 8);
}

/* ---- evaluation of one chunk -------------------------------------------------------- */

/* The cursor's columns (BILLING_ENCOUNTER_COLUMNS). */
enum { E_ID, E_CLIENT, E_SITE, E_DATE, E_END_DATE, E_MINUTES, E_POS, E_MODE, E_GROUP, E_CLAIM };

static int s_cmp_subject(const void *a, const void *b)
{
    return strcmp((*(Beacon__Intake__BillingSubject *const *)a)->client_id,
                  (*(Beacon__Intake__BillingSubject *const *)b)->client_id);
}

static int s_cmp_note(const void *a, const void *b)
{
    return strcmp((*(Beacon__Notes__BillingNoteStatus *const *)a)->encounter_id,
                  (*(Beacon__Notes__BillingNoteStatus *const *)b)->encounter_id);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static Beacon__Intake__BillingSubject *s_find_subject(Beacon__Intake__BillingSubjectsReply *r,
                                                      const char *client_id)
{
    Beacon__Intake__BillingSubject key = {.client_id = (char *)client_id}, *kp = &key;
    Beacon__Intake__BillingSubject **hit =
        bsearch(&kp, r->subjects, r->n_subjects, sizeof *r->subjects, s_cmp_subject);
    return hit ? *hit : NULL;
}

static Beacon__Notes__BillingNoteStatus *s_find_note(Beacon__Notes__BillingNoteStatusReply *r,
                                                     const char *encounter_id)
{
    Beacon__Notes__BillingNoteStatus key = {.encounter_id = (char *)encounter_id}, *kp = &key;
    Beacon__Notes__BillingNoteStatus **hit =
        bsearch(&kp, r->notes, r->n_notes, sizeof *r->notes, s_cmp_note);
    return hit ? *hit : NULL;
}

/* The episode open on day (YYYY-MM-DD), or NULL. */
static const Beacon__Intake__BillingEpisode *s_episode(const Beacon__Intake__BillingSubject *s,
                                                       const char *day)
{
    for (size_t i = s->n_episodes; i-- > 0;) {
        const Beacon__Intake__BillingEpisode *e = s->episodes[i];
        if (strcmp(e->started_on, day) <= 0 &&
            (!*e->discharged_on || strcmp(day, e->discharged_on) <= 0))
            return e;
    }
    return NULL;
}

static void s_hold(billing_reasons_t *r, const char *why)
{
    if (r->n < BILLING_MAX_REASONS)
        r->reasons[r->n++] = why;
}

/* The rate for procedure with modifiers "HQ:95": the exact entry, else the
 * procedure's entry without modifiers; -1 when there is none. */
static int64_t s_rate(const Beacon__Billing__BillingConfig *cfg, const char *procedure,
                      const char *mods)
{
    int64_t base = -1;
    for (size_t i = 0; i < cfg->n_rates; i++) {
        const Beacon__Billing__Rate *r = cfg->rates[i];
        if (strcmp(r->procedure, procedure))
            continue;
        if (!strcmp(r->modifiers, mods))
            return r->cents;
        if (!*r->modifiers)
            base = r->cents;
    }
    return base;
}

/* Decides one encounter: fills c (a claim, status submitted or held with
 * reasons). Strings in arena. */
static void s_evaluate(bc_call_t *call, bc_arena_t *arena, const Beacon__Billing__BillingConfig *cfg,
                       PGresult *res, int row, Beacon__Intake__BillingSubject *s,
                       Beacon__Notes__BillingNoteStatus *note, billing_units_t *units, int32_t today,
                       billing_claim_t *c, billing_reasons_t *why)
{
    memset(c, 0, sizeof *c);
    why->n = 0;
    const char *existing = PQgetvalue(res, row, E_CLAIM);
    if (*existing) {
        c->id = bc_arena_strdup(arena, existing);
        c->stored = true;
    } else {
        /* Time-ordered: a batch's claims go in at the right edge of the
         * indexes keyed by id, not all over them. */
        char id[37];
        bc_uuid_v7(id);
        c->id = bc_arena_strdup(arena, id);
    }
    c->encounter_id = bc_arena_strdup(arena, PQgetvalue(res, row, E_ID));
    c->client_id = bc_arena_strdup(arena, PQgetvalue(res, row, E_CLIENT));
    c->site_id = bc_arena_strdup(arena, PQgetvalue(res, row, E_SITE));
    c->service_date = bc_arena_strdup(arena, PQgetvalue(res, row, E_DATE));
    c->minutes = atoi(PQgetvalue(res, row, E_MINUTES));
    c->place_of_service = bc_arena_strdup(arena, PQgetvalue(res, row, E_POS));
    c->frequency = "1";
    c->medicaid_id = "";
    c->procedure = cfg->procedure_code;
    c->sex = "U";
    billing_claim_finish_ids(arena, c);
    bool is_group = PQgetvalue(res, row, E_GROUP)[0] == 't';
    const char *mode = PQgetvalue(res, row, E_MODE);
    int32_t day = billing_day(c->service_date);

    if (strcmp(c->service_date, PQgetvalue(res, row, E_END_DATE)) != 0)
        s_hold(why, "the encounter crosses midnight: a claim line has one service date "
                    "(record it as one encounter per day)");
    if (today - day > cfg->timely_filing_days)
        s_hold(why, "past the payer's timely-filing window");
    /* Units by the configured rule, within the limits. */
    billing_unit_rule_t rule = {cfg->unit_minutes, cfg->first_unit_min_minutes, cfg->rounding};
    c->units = billing_units(&rule, c->minutes);
    if (c->units == 0)
        s_hold(why, "too short for a unit under the payer's unit rule");
    /* Modifiers: group, telehealth, the state's own. */
    if (is_group && strcmp(cfg->group_modifier, "none"))
        c->modifiers[c->n_modifiers++] = cfg->group_modifier;
    bool tele = !strcmp(mode, "telehealth_video");
    for (size_t i = 0; i < cfg->n_telehealth_places; i++)
        tele |= !strcmp(c->place_of_service, cfg->telehealth_places[i]);
    if (tele && strcmp(cfg->telehealth_modifier, "none"))
        c->modifiers[c->n_modifiers++] = cfg->telehealth_modifier;
    for (size_t i = 0; i < cfg->n_extra_modifiers && c->n_modifiers < 4; i++)
        c->modifiers[c->n_modifiers++] = cfg->extra_modifiers[i];
    char mods[16] = "";
    for (int i = 0; i < c->n_modifiers; i++)
        snprintf(mods + strlen(mods), sizeof mods - strlen(mods), "%s%s", i ? ":" : "",
                 c->modifiers[i]);
    int64_t rate = s_rate(cfg, c->procedure, mods);
    if (rate < 0)
        s_hold(why, "no rate is configured for the procedure with these modifiers");
    c->charge_cents = rate < 0 ? 0 : rate * c->units;

    /* The note (signed, and co-signed where required). */
    if (!note)
        s_hold(why, "no note documents the encounter");
    else if (!strcmp(note->status, "draft"))
        s_hold(why, "the note is not signed");
    else if (!strcmp(note->status, "awaiting_review"))
        s_hold(why, "the note awaits a supervisor's co-signature");
    else if (cfg->cosign_required && !note->cosigned)
        s_hold(why, "the note has no co-signature and the payer requires one");

    if (!s) {
        s_hold(why, "the client's record cannot be read for billing");
        return;
    }
    if (!strcmp(s->status, "merged"))
        s_hold(why, "the client's record was merged into another");
    const Beacon__Intake__BillingEpisode *ep = s_episode(s, c->service_date);
    if (!ep)
        s_hold(why, "no active enrollment on the service date");
    if (!*s->medicaid_id)
        s_hold(why, "no Medicaid ID on file");
    if (!s->consent_allowed)
        s_hold(why, "no active 42 CFR Part 2 consent names the payer for payment");
    c->consent_id = *s->consent_id ? s->consent_id : NULL;
    /* Diagnoses on file on the service date: a qualifying one first. */
    int qualifying = 0;
    for (size_t i = 0; i < s->n_diagnoses && c->n_diagnoses < 12; i++) {
        const Beacon__Intake__Diagnosis *d = s->diagnoses[i];
        char code[8];
        if (!billing_icd10_undot(d->code, code))
            continue;
        if (*d->onset_on && strcmp(d->onset_on, c->service_date) > 0)
            continue;
        if (*d->resolved_on && strcmp(d->resolved_on, c->service_date) < 0)
            continue;
        bool fits = billing_dx_matches(code, cfg->diagnosis_prefixes, cfg->n_diagnosis_prefixes);
        char *dup = bc_arena_strdup(arena, code);
        if (fits && qualifying == 0) {
            /* The principal diagnosis goes first. */
            memmove(&c->diagnoses[1], &c->diagnoses[0], (size_t)c->n_diagnoses * sizeof(char *));
            c->diagnoses[0] = dup;
        } else {
            c->diagnoses[c->n_diagnoses] = dup;
        }
        c->n_diagnoses++;
        qualifying += fits;
    }
    if (qualifying == 0)
        s_hold(why, "no qualifying diagnosis on file for the service date");
    if (cfg->minimum_age > 0) {
        int32_t born = billing_day(s->date_of_birth);
        /* Whole years at the service date, by calendar. */
        int years = atoi(c->service_date) - atoi(s->date_of_birth);
        if (strcmp(c->service_date + 5, s->date_of_birth + 5) < 0)
            years--;
        if (born == INT32_MIN || years < cfg->minimum_age)
            s_hold(why, "under the payer's minimum age on the service date");
    }
    /* The subscriber as billed: X12-safe, upper case, never empty. */
    c->last = billing_x12_dup(arena, s->family_name, 60);
    c->first = billing_x12_dup(arena, s->given_name, 35);
    if (!*c->last || !*c->first)
        s_hold(why, "the client's name has no characters an X12 file can carry");
    char line[256] = "";
    for (size_t i = 0; i < s->n_address_lines && i < 2; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s", i ? " " : "",
                 s->address_lines[i]);
    c->address = billing_x12_dup(arena, line, 55);
    c->city = billing_x12_dup(arena, s->city, 30);
    c->state = billing_x12_dup(arena, s->state, 2);
    char postal[16];
    billing_x12_id(s->postal_code, postal, sizeof postal);
    c->postal = bc_arena_strdup(arena, postal);
    if (!*c->address || !*c->city || strlen(c->state) != 2 ||
        (strlen(postal) != 5 && strlen(postal) != 9))
        s_hold(why, "no complete address on file (street, city, two-letter state, ZIP)");
    char mid[81];
    billing_x12_id(s->medicaid_id, mid, sizeof mid);
    c->medicaid_id = bc_arena_strdup(arena, mid);
    if (*s->medicaid_id && strlen(mid) < 2)
        s_hold(why, "the Medicaid ID has no characters an X12 file can carry");
    c->dob = s->date_of_birth;
    c->dob8 = bc_arena_alloc(arena, 9);
    s_date8(c->dob, c->dob8);
    c->sex = *s->sex ? s->sex : "U";

    /* Limits last: only a claim that would otherwise go counts against them. */
    if (why->n == 0 && c->units > 0) {
        int *per_day = billing_units_at(units, c->client_id, c->service_date);
        if (cfg->max_units_per_day > 0 && *per_day + c->units > cfg->max_units_per_day)
            s_hold(why, "over the payer's daily maximum of units for the client");
        int *per_auth = ep ? billing_units_at(units, c->client_id, ep->started_on) : NULL;
        if (per_auth && cfg->max_units_per_authorization > 0 &&
            *per_auth + c->units > cfg->max_units_per_authorization)
            s_hold(why, "over the payer's maximum of units for the enrollment episode");
        if (why->n == 0) {
            *per_day += c->units;
            if (per_auth)
                *per_auth += c->units;
        }
    }
    (void)call;
}

/* Counts n units billed to client on day (YYYY-MM-DD): on the day, and in
 * the client's episode open that day. */
typedef struct {
    billing_units_t *units;
    Beacon__Intake__BillingSubjectsReply *subjects;
} s_counting_t;

static void s_count_prior(void *arg, const char *client, const char *day, int n)
{
    s_counting_t *c = arg;
    *billing_units_at(c->units, client, day) += n;
    Beacon__Intake__BillingSubject *s = s_find_subject(c->subjects, client);
    const Beacon__Intake__BillingEpisode *ep = s ? s_episode(s, day) : NULL;
    if (ep)
        *billing_units_at(c->units, client, ep->started_on) += n;
}

/* Adds the units already billed for the chunk's clients (ids, a uuid[]
 * literal; claims sent or about to be) to the table: per day, and per
 * episode of the client's. Only the chunk's service dates (first to last)
 * matter for the daily limit; the whole history is read only when an
 * episode limit is configured. (A batch reads them through
 * billing_prior_take instead.) */
static int s_prior_units(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                         PGresult *res, const char *ids, s_counting_t *counting)
{
    const char *first = PQgetvalue(res, 0, E_DATE), *last = first;
    for (int i = 1; i < PQntuples(res); i++) {
        const char *d = PQgetvalue(res, i, E_DATE);
        if (strcmp(d, first) < 0)
            first = d;
        if (strcmp(d, last) > 0)
            last = d;
    }
    bool whole_history = cfg->max_units_per_authorization > 0;
    const char *params[] = {ids, whole_history ? NULL : first, whole_history ? NULL : last};
    bc_error_t err;
    PGresult *units = bc_db_prepared(
        call->db, "billing_prior_units",
        "SELECT client_id::text, to_char(service_date, 'YYYY-MM-DD'), sum(units)::int "
        "FROM billing.claims WHERE client_id = ANY ($1::uuid[]) AND frequency IN ('1', '7') "
        "AND status IN ('ready', 'submitted', 'accepted', 'paid') "
        "AND ($2::date IS NULL OR service_date BETWEEN $2::date AND $3::date) GROUP BY 1, 2",
        3, params, &err);
    if (!units) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    for (int i = 0; i < PQntuples(units); i++)
        s_count_prior(counting, PQgetvalue(units, i, 0), PQgetvalue(units, i, 1),
                      atoi(PQgetvalue(units, i, 2)));
    PQclear(units);
    return 0;
}

struct billing_ask {
    PGresult *res;  /* the chunk's encounters (the caller's) */
    char **clients; /* its distinct clients, sorted */
    int n_clients;
    char *ids;      /* the same as a uuid[] literal */
    bc_arena_t *arena;
    bc_rpc_wait_t *subjects, *notes;
};

billing_ask_t *billing_ask(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                           bc_arena_t *arena, PGresult *res)
{
    int n = PQntuples(res);
    billing_ask_t *ask = bc_arena_calloc(arena, sizeof *ask);
    ask->res = res;
    ask->arena = arena;
    ProtobufCAllocator *alloc = bc_arena_allocator(arena);
    /* Distinct clients, as the intake request and a uuid[] literal. */
    char **clients = bc_arena_alloc(arena, (size_t)n * sizeof(char *) + 1);
    char **encounters = bc_arena_alloc(arena, (size_t)n * sizeof(char *) + 1);
    for (int i = 0; i < n; i++) {
        clients[i] = PQgetvalue(res, i, E_CLIENT);
        encounters[i] = PQgetvalue(res, i, E_ID);
    }
    qsort(clients, (size_t)n, sizeof *clients, s_cmp_str);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        if (distinct == 0 || strcmp(clients[distinct - 1], clients[i]))
            clients[distinct++] = clients[i];
    ask->clients = clients;
    ask->n_clients = distinct;
    char *p = ask->ids = bc_arena_alloc(arena, (size_t)distinct * 37 + 3);
    *p++ = '{';
    for (int i = 0; i < distinct; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, clients[i], 36);
        p += 36;
    }
    *p++ = '}';
    *p = '\0';
    /* Both questions go out before either answer is awaited: intake and
     * notes work at the same time, and meanwhile the caller too. The
     * requests are packed when sent, so they may live on the stack. */
    Beacon__Intake__BillingSubjectsRequest sreq = BEACON__INTAKE__BILLING_SUBJECTS_REQUEST__INIT;
    sreq.client_ids = clients;
    sreq.n_client_ids = (size_t)distinct;
    sreq.payer_name = cfg->payer_name;
    ask->subjects = s_rpc_start(call, true, "BillingSubjects", &sreq.base,
                                &beacon__intake__billing_subjects_reply__descriptor, alloc);
    if (!ask->subjects)
        return NULL;
    Beacon__Notes__BillingNoteStatusRequest nreq = BEACON__NOTES__BILLING_NOTE_STATUS_REQUEST__INIT;
    nreq.encounter_ids = encounters;
    nreq.n_encounter_ids = (size_t)n;
    ask->notes = s_rpc_start(call, false, "BillingNoteStatus", &nreq.base,
                             &beacon__notes__billing_note_status_reply__descriptor, alloc);
    if (!ask->notes) {
        billing_ask_abandon(&ask);
        return NULL;
    }
    return ask;
}

void billing_ask_abandon(billing_ask_t **ask)
{
    if (!ask || !*ask)
        return;
    if ((*ask)->subjects)
        bc_rpc_client_abandon(s_intake, &(*ask)->subjects);
    if ((*ask)->notes)
        bc_rpc_client_abandon(s_notes, &(*ask)->notes);
    *ask = NULL; /* the rest lives in its arena */
}

int billing_evaluate_answers(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                             billing_ask_t **ask_p, billing_prior_t *prior, int32_t today,
                             billing_claim_t **claims_out, billing_reasons_t **why_out,
                             billing_timing_t *timing)
{
    billing_timing_t unused;
    if (!timing)
        timing = &unused;
    int64_t t0 = bc_mono_us();
    billing_ask_t *ask = *ask_p;
    bc_arena_t *arena = ask->arena;
    PGresult *res = ask->res;
    int n = PQntuples(res);
    Beacon__Intake__BillingSubjectsReply *subjects =
        (Beacon__Intake__BillingSubjectsReply *)s_rpc_finish(call, true, "BillingSubjects",
                                                             &ask->subjects);
    Beacon__Notes__BillingNoteStatusReply *notes =
        subjects ? (Beacon__Notes__BillingNoteStatusReply *)s_rpc_finish(
                       call, false, "BillingNoteStatus", &ask->notes)
                 : NULL;
    billing_ask_abandon(ask_p);
    int64_t t1 = bc_mono_us();
    timing->answers += t1 - t0;
    if (!subjects || !notes)
        return -1;
    qsort(subjects->subjects, subjects->n_subjects, sizeof *subjects->subjects, s_cmp_subject);
    qsort(notes->notes, notes->n_notes, sizeof *notes->notes, s_cmp_note);

    billing_units_t *units = billing_units_new(arena, (size_t)n * 2);
    s_counting_t counting = {units, subjects};
    int rc = prior ? billing_prior_take(prior, call, ask->clients, ask->n_clients, units,
                                        s_count_prior, &counting)
                   : s_prior_units(call, cfg, res, ask->ids, &counting);
    if (rc < 0)
        return -1;
    int64_t t2 = bc_mono_us();
    timing->prior += t2 - t1;

    billing_claim_t *claims = bc_arena_alloc(arena, (size_t)n * sizeof *claims + 1);
    billing_reasons_t *why = bc_arena_alloc(arena, (size_t)n * sizeof *why + 1);
    for (int i = 0; i < n; i++) {
        Beacon__Intake__BillingSubject *s = s_find_subject(subjects, PQgetvalue(res, i, E_CLIENT));
        Beacon__Notes__BillingNoteStatus *note = s_find_note(notes, PQgetvalue(res, i, E_ID));
        s_evaluate(call, arena, cfg, res, i, s, note, units, today, &claims[i], &why[i]);
    }
    if (prior)
        billing_prior_carry(prior, units, ask->clients[ask->n_clients - 1]);
    *claims_out = claims;
    *why_out = why;
    timing->evaluate += bc_mono_us() - t2;
    return 0;
}

int billing_evaluate_rows(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                          bc_arena_t *arena, PGresult *res, int32_t today,
                          billing_claim_t **claims_out, billing_reasons_t **why_out)
{
    *claims_out = NULL;
    *why_out = NULL;
    if (PQntuples(res) == 0)
        return 0;
    billing_ask_t *ask = billing_ask(call, cfg, arena, res);
    if (!ask)
        return -1;
    return billing_evaluate_answers(call, cfg, &ask, NULL, today, claims_out, why_out, NULL);
}
