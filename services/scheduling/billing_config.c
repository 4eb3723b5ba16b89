/*  billing_config: per-agency, per-payer billing configuration
 *  (PUT/GET /api/v1/billing/payers/{payer_id}).
 *
 *  Everything that varies by state and payer is here, not in code: the
 *  billing provider (name, NPI, taxonomy, tax id, address), the payer,
 *  submitter and receiver ids, the rendering/supervising provider rule,
 *  rates per procedure and modifiers, unit rules, limits, modifiers and
 *  places of service, required diagnoses, the timely-filing window. A
 *  configuration is checked whole when it is set (every problem of the first
 *  bad field named), defaults filled in, and stored as the message's JSON
 *  (billing.configs.config); agency_admin sets it, billing and agency_admin
 *  read it (row security as well as the routes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bc_json.h"
#include "bc_util.h"
#include "billing.h"
#include "billing_internal.h"
#include "scheduling.h"

static const char *const s_places[] = {"02", "10", "11", "12", "53", "57", "99", NULL};

static bool s_alnum(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static bool s_digits(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool billing_payer_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 80)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* A required name as X12 text: non-empty once cleaned, at most max. */
static bc_code_t s_name(bc_call_t *call, char **value, const char *field, size_t max,
                        bool required)
{
    const char *problem = bc_text_problem(*value, required, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s %s", field, problem);
    char *clean = bc_arena_alloc(call->arena, strlen(*value) + 1);
    billing_x12_text(*value, clean, strlen(*value) + 1);
    if (required && !*clean)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, field,
                            "%s has no letters or digits X12 can carry", field);
    if (strlen(clean) > max)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s must be at most %zu characters",
                            field, max);
    /* Kept as given (a consent names the payer as people write it); the
     * X12 form is made when a file is written. */
    return BC_OK;
}

static bool s_modifier(const char *m)
{
    return s_alnum(m, 2, 2);
}

static char *s_upper(bc_call_t *call, const char *s)
{
    char *u = bc_arena_strdup(call->arena, s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

/* Checks c and fills defaults in place. */
static bc_code_t s_check(bc_call_t *call, Beacon__Billing__BillingConfig *c)
{
    bc_code_t code;
#define S_NAME(f, max, req)                                                                        \
    if ((code = s_name(call, &c->f, #f, max, req)) != BC_OK)                                      \
        return code;
    S_NAME(payer_name, 60, true);
    S_NAME(submitter_name, 60, true);
    S_NAME(submitter_contact_name, 60, true);
    S_NAME(receiver_name, 60, true);
    S_NAME(billing_provider_name, 60, true);
    if (!s_alnum(c->submitter_id, 2, 15))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "submitter_id",
                            "submitter_id must be 2 to 15 letters and digits");
    if (!s_alnum(c->receiver_id, 2, 15))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "receiver_id",
                            "receiver_id must be 2 to 15 letters and digits");
    c->submitter_id = s_upper(call, c->submitter_id);
    c->receiver_id = s_upper(call, c->receiver_id);
    if (!s_digits(c->submitter_contact_phone, 10, 10))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "submitter_contact_phone",
                            "submitter_contact_phone must be 10 digits");
    if (!billing_npi_valid(c->billing_provider_npi))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_npi",
                            "billing_provider_npi must be a 10-digit NPI with a valid check "
                            "digit");
    if (!s_alnum(c->billing_provider_taxonomy, 10, 10))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_taxonomy",
                            "billing_provider_taxonomy must be a 10-character taxonomy code");
    c->billing_provider_taxonomy = s_upper(call, c->billing_provider_taxonomy);
    if (!s_digits(c->billing_provider_tax_id, 9, 9))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_tax_id",
                            "billing_provider_tax_id must be a 9-digit EIN");
    Beacon__Billing__ProviderAddress *a = c->billing_provider_address;
    if (!a)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_address",
                            "billing_provider_address is required");
    if ((code = s_name(call, &a->line1, "billing_provider_address.line1", 55, true)) != BC_OK ||
        (code = s_name(call, &a->line2, "billing_provider_address.line2", 55, false)) != BC_OK ||
        (code = s_name(call, &a->city, "billing_provider_address.city", 30, true)) != BC_OK)
        return code;
    if (strlen(a->state) != 2 || !s_alnum(a->state, 2, 2))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_address.state",
                            "state must be a two-letter code");
    a->state = s_upper(call, a->state);
    if (!s_digits(a->postal_code, 9, 9))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "billing_provider_address.postal_code",
                            "the billing provider's postal_code must be the 9-digit ZIP+4");
    if (!*c->rendering_rule)
        c->rendering_rule = "billing_provider";
    if (!strcmp(c->rendering_rule, "supervising")) {
        S_NAME(supervising_last_name, 60, true);
        S_NAME(supervising_first_name, 35, true);
        if (!billing_npi_valid(c->supervising_npi))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "supervising_npi",
                                "supervising_npi must be a 10-digit NPI with a valid check "
                                "digit");
    } else if (strcmp(c->rendering_rule, "billing_provider") != 0) {
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "rendering_rule",
                            "rendering_rule must be billing_provider or supervising");
    }
    if (!*c->procedure_code)
        c->procedure_code = "H0038";
    if (!s_alnum(c->procedure_code, 5, 5))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "procedure_code",
                            "procedure_code must be a 5-character HCPCS code");
    c->procedure_code = s_upper(call, c->procedure_code);
    if (c->n_rates < 1 || c->n_rates > 50)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "rates", "rates must hold 1 to 50 rates");
    for (size_t i = 0; i < c->n_rates; i++) {
        Beacon__Billing__Rate *r = c->rates[i];
        if (!*r->procedure)
            r->procedure = c->procedure_code;
        if (!s_alnum(r->procedure, 5, 5))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "rates",
                                "rates[%zu].procedure must be a 5-character HCPCS code", i);
        r->procedure = s_upper(call, r->procedure);
        r->modifiers = s_upper(call, r->modifiers);
        size_t len = strlen(r->modifiers);
        bool ok = len == 0 || (len % 3 == 2 && len <= 11);
        for (size_t k = 0; ok && k < len; k++)
            ok = (k % 3 == 2) ? r->modifiers[k] == ':'
                              : ((r->modifiers[k] >= 'A' && r->modifiers[k] <= 'Z') ||
                                 (r->modifiers[k] >= '0' && r->modifiers[k] <= '9'));
        if (!ok)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "rates",
                                "rates[%zu].modifiers must be up to four two-character "
                                "modifiers joined by ':' (\"HQ:95\")",
                                i);
        if (r->cents < 0 || r->cents > 10000000)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "rates",
                                "rates[%zu].cents must be 0 to 10000000", i);
    }
    if (!c->unit_minutes)
        c->unit_minutes = 15;
    if (c->unit_minutes < 1 || c->unit_minutes > 60)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "unit_minutes",
                            "unit_minutes must be 1 to 60");
    if (!c->first_unit_min_minutes)
        c->first_unit_min_minutes = (c->unit_minutes + 1) / 2;
    if (c->first_unit_min_minutes < 1 || c->first_unit_min_minutes > c->unit_minutes)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "first_unit_min_minutes",
                            "first_unit_min_minutes must be 1 to unit_minutes");
    if (!*c->rounding)
        c->rounding = "nearest";
    if (strcmp(c->rounding, "nearest") && strcmp(c->rounding, "down") && strcmp(c->rounding, "up"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "rounding",
                            "rounding must be nearest, down or up");
    if (c->max_units_per_day < 0 || c->max_units_per_day > 96)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "max_units_per_day",
                            "max_units_per_day must be 0 (none) to 96");
    if (c->max_units_per_authorization < 0 || c->max_units_per_authorization > 100000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "max_units_per_authorization",
                            "max_units_per_authorization must be 0 (none) to 100000");
    if (!*c->group_modifier)
        c->group_modifier = "HQ";
    if (!*c->telehealth_modifier)
        c->telehealth_modifier = "95";
    const char *mods[] = {c->group_modifier, c->telehealth_modifier};
    const char *mod_names[] = {"group_modifier", "telehealth_modifier"};
    for (int i = 0; i < 2; i++)
        if (strcmp(mods[i], "none") && !s_modifier(mods[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, mod_names[i],
                                "%s must be a two-character modifier or none", mod_names[i]);
    c->group_modifier = s_upper(call, c->group_modifier);
    c->telehealth_modifier = s_upper(call, c->telehealth_modifier);
    if (!strcmp(c->group_modifier, "NONE"))
        c->group_modifier = "none";
    if (!strcmp(c->telehealth_modifier, "NONE"))
        c->telehealth_modifier = "none";
    if (c->n_telehealth_places == 0) {
        static char *defaults[] = {"02", "10"};
        c->telehealth_places = defaults;
        c->n_telehealth_places = 2;
    }
    for (size_t i = 0; i < c->n_telehealth_places; i++)
        if (!sched_one_of(c->telehealth_places[i], s_places))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "telehealth_places",
                                "telehealth_places[%zu] is not a place of service Beacon knows",
                                i);
    if (c->n_extra_modifiers > 2)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "extra_modifiers",
                            "at most two extra_modifiers (a line carries four)");
    for (size_t i = 0; i < c->n_extra_modifiers; i++) {
        if (!s_modifier(c->extra_modifiers[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "extra_modifiers",
                                "extra_modifiers[%zu] must be a two-character modifier", i);
        c->extra_modifiers[i] = s_upper(call, c->extra_modifiers[i]);
    }
    if (c->n_diagnosis_prefixes == 0) {
        static char *sud[] = {"F10", "F11", "F12", "F13", "F14",
                              "F15", "F16", "F17", "F18", "F19"};
        c->diagnosis_prefixes = sud;
        c->n_diagnosis_prefixes = 10;
    }
    if (c->n_diagnosis_prefixes > 100)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "diagnosis_prefixes",
                            "at most 100 diagnosis_prefixes");
    for (size_t i = 0; i < c->n_diagnosis_prefixes; i++) {
        char undot[16];
        if (!s_alnum(c->diagnosis_prefixes[i], 1, 8) &&
            !billing_icd10_undot(c->diagnosis_prefixes[i], undot))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "diagnosis_prefixes",
                                "diagnosis_prefixes[%zu] must be the start of an ICD-10 code "
                                "(F10, F11.2)",
                                i);
        billing_x12_id(c->diagnosis_prefixes[i], undot, sizeof undot);
        c->diagnosis_prefixes[i] = bc_arena_strdup(call->arena, undot);
    }
    if (!c->timely_filing_days)
        c->timely_filing_days = 365;
    if (c->timely_filing_days < 1 || c->timely_filing_days > 3650)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "timely_filing_days",
                            "timely_filing_days must be 1 to 3650");
    if (c->minimum_age < 0 || c->minimum_age > 120)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "minimum_age",
                            "minimum_age must be 0 (none) to 120");
    return BC_OK;
#undef S_NAME
}

static Beacon__Billing__BillingConfig *s_from_row(bc_call_t *call, PGresult *res, int row,
                                                  ProtobufCAllocator *alloc)
{
    json_error_t jerr;
    json_t *j = json_loads(PQgetvalue(res, row, 0), 0, &jerr);
    bc_error_t err;
    Beacon__Billing__BillingConfig *c =
        j ? (Beacon__Billing__BillingConfig *)bc_json_to_pb(
                j, &beacon__billing__billing_config__descriptor, alloc, 0, &err)
          : NULL;
    json_decref(j);
    if (!c) {
        bc_call_fail(call, BC_DATA_LOSS, "", "the stored billing configuration cannot be read");
        return NULL;
    }
    c->version = atoi(PQgetvalue(res, row, 1));
    c->updated_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 2));
    return c;
}

#define S_CONFIG_COLUMNS                                                                           \
    "config::text, version, to_char(updated_at AT TIME ZONE 'UTC', "                            \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

Beacon__Billing__BillingConfig *billing_config_load(bc_call_t *call, const char *payer_id)
{
    const char *params[] = {call->principal->agency_id, payer_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "billing_config_get",
                                   "SELECT " S_CONFIG_COLUMNS " FROM billing.configs "
                                   "WHERE agency_id = $1 AND payer_id = $2",
                                   2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_call_fail(call, BC_NOT_FOUND, "payer_id",
                     "no billing configuration for payer %s: an agency_admin sets it with PUT "
                     "/api/v1/billing/payers/%s",
                     payer_id, payer_id);
        return NULL;
    }
    Beacon__Billing__BillingConfig *c = s_from_row(call, res, 0, call->alloc);
    PQclear(res);
    return c;
}

bc_code_t billing_config_set(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    Beacon__Billing__BillingConfig *c = (Beacon__Billing__BillingConfig *)in;
    if (!bc_call_has_role(call, "agency_admin") || !bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "an agency_admin configures billing");
    if (!billing_payer_id_valid(c->payer_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_id",
                            "payer_id must be 1 to 80 letters, digits and dashes");
    bc_code_t code = s_check(call, c);
    if (code != BC_OK)
        return code;
    c->version = 0;
    c->updated_at = "";
    bc_error_t err;
    char *json = bc_pb_to_json_text(&c->base, 0, NULL, &err);
    if (!json)
        return bc_call_fail_err(call, &err);
    const char *params[] = {call->principal->agency_id, c->payer_id, json,
                            call->principal->staff_id};
    if (bc_db_begin(call->db, &err) < 0) {
        free(json);
        return bc_call_fail_err(call, &err);
    }
    PGresult *res = bc_db_prepared(
        call->db, "billing_config_set",
        "INSERT INTO billing.configs AS k (agency_id, payer_id, config, updated_by) "
        "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (agency_id, payer_id) DO UPDATE "
        "SET config = excluded.config, version = k.version + 1, updated_by = excluded.updated_by, "
        "updated_at = now() RETURNING " S_CONFIG_COLUMNS,
        4, params, &err);
    free(json);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Billing__BillingConfig *saved = s_from_row(call, res, 0, call->alloc);
    PQclear(res);
    if (!saved)
        return call->err.code;
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE, .resource_type = "billing_config",
                           .resource_id = saved->payer_id, .purpose = "payment"};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &saved->base;
    return BC_OK;
}

bc_code_t billing_config_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__GetBillingConfigRequest *req =
        (const Beacon__Billing__GetBillingConfigRequest *)in;
    if (!billing_payer_id_valid(req->payer_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_id",
                            "payer_id must be 1 to 80 letters, digits and dashes");
    Beacon__Billing__BillingConfig *c = billing_config_load(call, req->payer_id);
    if (!c)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}

bc_code_t billing_config_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    const char *params[] = {call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "billing_config_list",
                                   "SELECT " S_CONFIG_COLUMNS " FROM billing.configs "
                                   "WHERE agency_id = $1 ORDER BY payer_id",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Billing__ListBillingConfigsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__billing__list_billing_configs_reply__init(r);
    int rows = PQntuples(res);
    r->configs = bc_arena_alloc(call->arena, ((size_t)rows + 1) * sizeof *r->configs);
    for (int i = 0; i < rows; i++) {
        Beacon__Billing__BillingConfig *c = s_from_row(call, res, i, call->alloc);
        if (!c) {
            PQclear(res);
            return call->err.code;
        }
        r->configs[r->n_configs++] = c;
    }
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

char *billing_x12_dup(bc_arena_t *arena, const char *in, size_t max)
{
    size_t n = strlen(in ? in : "") + 1;
    char *out = bc_arena_alloc(arena, n);
    billing_x12_text(in ? in : "", out, n);
    if (strlen(out) > max) {
        out[max] = '\0';
        while (max > 0 && out[max - 1] == ' ')
            out[--max] = '\0';
    }
    return out;
}

void billing_envelope_prepare(bc_arena_t *arena, const Beacon__Billing__BillingConfig *cfg,
                              billing_envelope_strings_t *out)
{
    const Beacon__Billing__ProviderAddress *a = cfg->billing_provider_address;
    out->submitter_name = billing_x12_dup(arena, cfg->submitter_name, 60);
    out->contact_name = billing_x12_dup(arena, cfg->submitter_contact_name, 60);
    out->receiver_name = billing_x12_dup(arena, cfg->receiver_name, 60);
    out->provider_name = billing_x12_dup(arena, cfg->billing_provider_name, 60);
    out->line1 = billing_x12_dup(arena, a ? a->line1 : "", 55);
    out->line2 = billing_x12_dup(arena, a ? a->line2 : "", 55);
    out->city = billing_x12_dup(arena, a ? a->city : "", 30);
    out->payer_name = billing_x12_dup(arena, cfg->payer_name, 60);
    out->payer_id = billing_x12_dup(arena, cfg->payer_id, 80);
    bool supervising = !strcmp(cfg->rendering_rule, "supervising");
    out->supervising_last =
        supervising ? billing_x12_dup(arena, cfg->supervising_last_name, 60) : NULL;
    out->supervising_first =
        supervising ? billing_x12_dup(arena, cfg->supervising_first_name, 35) : NULL;
}
