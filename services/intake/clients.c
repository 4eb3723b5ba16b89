/*  clients: register and read client records.
 *
 *  Scope: a client belongs to an agency and a primary site, and may be on a
 *  peer specialist's caseload. Who sees what is decided twice: the handlers
 *  only ask for what the caller's principal allows, and PostgreSQL's
 *  row-level security (migrations/003_scope.sql, intake.in_scope) enforces
 *  the same rules on the session scope the dispatcher set. A record outside
 *  the caller's scope reads exactly like one that does not exist (404).
 *
 *  Audit: every read (found or not) goes to the group audit writer and the
 *  reply waits until the record is durable; every registration is audited
 *  in its own transaction. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "bc_crypt.h"
#include "bc_util.h"
#include "intake.h"

/* Builds a Client from row `row` of res (columns as INTAKE_CLIENT_COLUMNS),
 * copying every value into the call's arena. */
bc_code_t intake_not_found(bc_call_t *call, bc_audit_event_t *ev, const char *client_id)
{
    ev->outcome = BC_AUDIT_DENIED;
    if (bc_call_audit_read(call, ev) < 0)
        return call->err.code;
    return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", client_id);
}

bc_code_t intake_commit_change(bc_call_t *call, const char *action, const char *resource_type,
                               const char *resource_id, const char *client_id,
                               const char *site_id, const char *detail, ProtobufCMessage *msg,
                               ProtobufCMessage **out)
{
    bc_audit_event_t ev = {
        .site_id = site_id,
        .action = action,
        .resource_type = resource_type,
        .resource_id = resource_id,
        .client_id = client_id,
        .purpose = "treatment",
        .detail = detail,
    };
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = msg;
    return BC_OK;
}

bc_code_t intake_read_scope(bc_call_t *call, const char *client_id, const char *resource_type,
                            bc_audit_event_t *ev)
{
    *ev = (bc_audit_event_t){.action = BC_AUDIT_READ, .resource_type = resource_type,
                             .resource_id = client_id, .client_id = client_id,
                             .purpose = "treatment"};
    const char *params[] = {client_id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_client_site",
                                   "SELECT site_id::text FROM intake.clients "
                                   "WHERE id = $1 AND agency_id = $2",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return intake_not_found(call, ev, client_id);
    }
    ev->site_id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    PQclear(res);
    return BC_OK;
}

const bc_keyring_t *intake_keys(const bc_call_t *call)
{
    return ((const intake_state_t *)call->state)->keys;
}

Beacon__Intake__Client *intake_client_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Client *c = bc_arena_alloc(call->arena, sizeof *c);
    beacon__intake__client__init(c);
    Beacon__Intake__EmergencyContact *ec = bc_arena_alloc(call->arena, sizeof *ec);
    beacon__intake__emergency_contact__init(ec);
    c->emergency_contact = ec;
    char **fields[] = {&c->id,       &c->given_name,  &c->family_name, &c->preferred_name,
                       &c->pronouns, &c->date_of_birth, &c->preferred_language, &c->status,
                       &c->created_at, &c->updated_at, &c->site_id, &c->assigned_staff_id,
                       NULL /* version */, &c->phone, &c->email, &c->preferred_contact_method,
                       NULL /* do_not_contact */, NULL /* address_lines */, &c->city, &c->state,
                       &c->postal_code, &ec->name, &ec->relationship, &ec->phone};
    int n = (int)(sizeof fields / sizeof fields[0]);
    for (int i = 0; i < n; i++)
        if (fields[i])
            *fields[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    c->version = atoi(PQgetvalue(res, row, 12));
    c->do_not_contact = PQgetvalue(res, row, 16)[0] == 't';
    json_t *lines = json_loads(PQgetvalue(res, row, 17), 0, NULL);
    if (json_is_array(lines) && json_array_size(lines) > 0) {
        c->n_address_lines = json_array_size(lines);
        c->address_lines = bc_arena_alloc(call->arena, c->n_address_lines * sizeof(char *));
        for (size_t i = 0; i < c->n_address_lines; i++) {
            const char *v = json_string_value(json_array_get(lines, i));
            c->address_lines[i] = bc_arena_strdup(call->arena, v ? v : "");
        }
    }
    json_decref(lines);
    c->merged_into = bc_arena_strdup(call->arena, PQgetvalue(res, row, 25));
    const char *enc = PQgetvalue(res, row, 24);
    c->medicaid_id = "";
    if (*enc) {
        char aad[96], *plain = NULL;
        size_t len = 0;
        bc_error_t err;
        snprintf(aad, sizeof aad, "intake.clients.medicaid_id:%s", c->id);
        if (bc_field_decrypt(intake_keys(call), enc, aad, &plain, &len, &err) < 0) {
            bc_call_fail(call, BC_DATA_LOSS, "", "a stored identifier of client %s cannot be "
                                                 "read", c->id);
            bc_error_detail(&call->err, "%s", err.detail);
            return NULL;
        }
        c->medicaid_id = bc_arena_strdup(call->arena, plain);
        bc_field_plaintext_free(&plain, len);
    }
    return c;
}

/* intake.in_scope (migrations/003_scope.sql) for a client the caller's
 * agency holds: true when the caller's ordinary scope covers it, false when
 * only a break-glass grant let the row through. */
bool intake_in_scope(const bc_call_t *call, const Beacon__Intake__Client *c)
{
    const Beacon__Principal *p = call->principal;
    if (!bc_call_has_site(call, c->site_id))
        return false;
    if (bc_call_has_role(call, "supervisor"))
        return true;
    if (!bc_call_has_role(call, "peer_specialist"))
        return false;
    if (*c->assigned_staff_id && !strcmp(c->assigned_staff_id, p->staff_id))
        return true;
    for (size_t i = 0; i < p->n_caseload_site_ids; i++)
        if (!strcmp(p->caseload_site_ids[i], c->site_id))
            return true;
    return false;
}

/* YYYY-MM-DD, a real calendar date, not before 1900 and not in the future. */
static const char *s_check_birth_date(const char *value)
{
    if (!*value)
        return "is required";
    struct tm tm = {0};
    const char *end = strptime(value, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(value) != 10)
        return "must be a date as YYYY-MM-DD";
    struct tm check = tm;
    time_t t = timegm(&check);
    if (check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
        return "is not a valid calendar date";
    if (tm.tm_year + 1900 < 1900)
        return "must not be before 1900-01-01";
    if (t > time(NULL))
        return "must not be in the future";
    return NULL;
}

/* A BCP 47 language tag: letters, digits and hyphens, 2 to 35 characters. */
static const char *s_check_language(const char *value)
{
    size_t len = strlen(value);
    if (len == 0)
        return NULL;
    if (len < 2 || len > 35)
        return "must be a BCP 47 language tag such as \"en\" or \"es-MX\"";
    for (const char *p = value; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return "must be a BCP 47 language tag such as \"en\" or \"es-MX\"";
    return NULL;
}

/* The details a caller sends on registration and on update. */
typedef struct {
    const char *given_name, *family_name, *preferred_name, *pronouns, *date_of_birth,
        *preferred_language, *phone, *email, *contact_method, *city, *state, *postal_code,
        *ec_name, *ec_relationship, *ec_phone;
    bool do_not_contact;
    char *const *address_lines;
    size_t n_address_lines;
    const char *medicaid_id;
    char address_json[4096]; /* address_lines as a JSON array, for the text[] parameter */
    char medicaid_norm[72];  /* medicaid_id normalized (bc_field_normalize_id), or "" */
} s_details_t;

#define S_DETAILS(req)                                                                         \
    {.given_name = (req)->given_name,                                                          \
     .family_name = (req)->family_name,                                                        \
     .preferred_name = (req)->preferred_name,                                                  \
     .pronouns = (req)->pronouns,                                                              \
     .date_of_birth = (req)->date_of_birth,                                                    \
     .preferred_language = (req)->preferred_language,                                          \
     .phone = (req)->phone,                                                                    \
     .email = (req)->email,                                                                    \
     .contact_method = (req)->preferred_contact_method,                                        \
     .city = (req)->city,                                                                      \
     .state = (req)->state,                                                                    \
     .postal_code = (req)->postal_code,                                                        \
     .ec_name = (req)->emergency_contact ? (req)->emergency_contact->name : "",                 \
     .ec_relationship = (req)->emergency_contact ? (req)->emergency_contact->relationship : "", \
     .ec_phone = (req)->emergency_contact ? (req)->emergency_contact->phone : "",               \
     .do_not_contact = (req)->do_not_contact,                                                  \
     .address_lines = (req)->address_lines,                                                    \
     .n_address_lines = (req)->n_address_lines,                                                \
     .medicaid_id = (req)->medicaid_id}

/* A phone number as people write it: digits, spaces and + ( ) - . only. */
static const char *s_check_phone(const char *value)
{
    const char *p = bc_text_problem(value, false, 40);
    if (p)
        return p;
    int digits = 0;
    for (const char *c = value; *c; c++) {
        if (isdigit((unsigned char)*c))
            digits++;
        else if (!strchr(" +()-.", *c))
            return "must be a phone number (digits, spaces and + ( ) - . only)";
    }
    if (*value && (digits < 7 || digits > 15))
        return "must have 7 to 15 digits";
    return NULL;
}

static const char *s_check_email(const char *value)
{
    const char *p = bc_text_problem(value, false, 254);
    if (p || !*value)
        return p;
    const char *at = strchr(value, '@');
    if (!at || at == value || !strchr(at + 1, '.') || strchr(at + 1, '@') || strchr(value, ' '))
        return "must be an email address";
    return NULL;
}

static const char *s_check_contact_method(const char *value)
{
    static const char *const methods[] = {"phone", "sms", "email", "mail", "in_person", NULL};
    if (!*value)
        return NULL; /* default: phone */
    for (int i = 0; methods[i]; i++)
        if (!strcmp(value, methods[i]))
            return NULL;
    return "must be one of phone, sms, email, mail, in_person";
}

/* Checks d; fills d->address_json. BC_OK or the failure recorded in call. */
static bc_code_t s_check_details(bc_call_t *call, s_details_t *d)
{
    struct {
        const char *field, *problem;
    } checks[] = {
        {"given_name", bc_text_problem(d->given_name, true, 200)},
        {"family_name", bc_text_problem(d->family_name, true, 200)},
        {"date_of_birth", s_check_birth_date(d->date_of_birth)},
        {"preferred_name", bc_text_problem(d->preferred_name, false, 200)},
        {"pronouns", bc_text_problem(d->pronouns, false, 50)},
        {"preferred_language", s_check_language(d->preferred_language)},
        {"phone", s_check_phone(d->phone)},
        {"email", s_check_email(d->email)},
        {"preferred_contact_method", s_check_contact_method(d->contact_method)},
        {"city", bc_text_problem(d->city, false, 100)},
        {"state", bc_text_problem(d->state, false, 100)},
        {"postal_code", bc_text_problem(d->postal_code, false, 20)},
        {"emergency_contact.name", bc_text_problem(d->ec_name, false, 200)},
        {"emergency_contact.relationship", bc_text_problem(d->ec_relationship, false, 100)},
        {"emergency_contact.phone", s_check_phone(d->ec_phone)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);
    d->medicaid_norm[0] = '\0';
    if (*d->medicaid_id) {
        bc_error_t err;
        if (bc_field_normalize_id(d->medicaid_id, d->medicaid_norm, sizeof d->medicaid_norm,
                                  &err) < 0 ||
            strlen(d->medicaid_norm) < 4)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "medicaid_id",
                                "medicaid_id must be 4 to 64 letters and digits (spaces, dashes "
                                "and dots are ignored)");
    }
    if (d->n_address_lines > 4)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "address_lines",
                            "address_lines has at most 4 lines");
    json_t *a = json_array();
    for (size_t i = 0; i < d->n_address_lines; i++) {
        const char *p = bc_text_problem(d->address_lines[i], true, 200);
        if (p) {
            json_decref(a);
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "address_lines",
                                "address_lines[%zu] %s", i, p);
        }
        json_array_append_new(a, json_string(d->address_lines[i]));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    snprintf(d->address_json, sizeof d->address_json, "%s", text);
    free(text);
    if (!strcmp(d->contact_method, "email") && !*d->email)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "email",
                            "email is needed when the preferred contact method is email");
    if ((!strcmp(d->contact_method, "phone") || !strcmp(d->contact_method, "sms")) &&
        !*d->phone && *d->contact_method)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "phone",
                            "phone is needed when the preferred contact method is %s",
                            d->contact_method);
    return BC_OK;
}

#define S_NULLIF(s) (*(s) ? (s) : NULL)
#define S_CREATE_NPARAMS 26 /* the 23 fields, then allow_duplicate and the two match keys */

/* What a client's identifiers become before they reach the database: the
 * Medicaid ID encrypted for row id, and blind indexes of name + date of
 * birth and of the Medicaid ID for duplicate detection. */
typedef struct {
    char *medicaid_enc; /* malloc'd envelope, or NULL */
    char name_dob[BC_FIELD_INDEX_HEX_LEN + 1];
    char medicaid[BC_FIELD_INDEX_HEX_LEN + 1]; /* "" without a Medicaid ID */
} s_protected_t;

static bc_code_t s_protect(bc_call_t *call, const s_details_t *d, const char *id,
                           s_protected_t *p)
{
    memset(p, 0, sizeof *p);
    const bc_keyring_t *keys = intake_keys(call);
    bc_error_t err;
    char key[700];
    size_t n = 0;
    /* Case and surrounding space do not make a different person. */
    const char *parts[] = {d->given_name, d->family_name, d->date_of_birth};
    for (int i = 0; i < 3; i++) {
        const char *v = parts[i];
        while (*v == ' ')
            v++;
        size_t len = strlen(v);
        while (len && v[len - 1] == ' ')
            len--;
        for (size_t k = 0; k < len && n < sizeof key - 2; k++)
            key[n++] = (char)tolower((unsigned char)v[k]);
        key[n++] = '|';
    }
    key[n] = '\0';
    if (bc_field_blind_index(keys, "name_dob", key, p->name_dob, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (*d->medicaid_norm) {
        char aad[96];
        snprintf(aad, sizeof aad, "intake.clients.medicaid_id:%s", id);
        if (bc_field_blind_index(keys, "medicaid_id", d->medicaid_norm, p->medicaid, &err) < 0 ||
            bc_field_encrypt(keys, d->medicaid_norm, strlen(d->medicaid_norm), aad,
                             &p->medicaid_enc, &err) < 0)
            return bc_call_fail_err(call, &err);
    }
    return BC_OK;
}

/* Before registering: clients of the agency with the same name and date of
 * birth, or the same Medicaid ID. Refuses with 409 naming those the caller
 * may see (and counting the others) unless allow_duplicate. */
static bc_code_t s_check_duplicates(bc_call_t *call, const s_protected_t *p)
{
    const char *params[] = {call->principal->agency_id, p->name_dob,
                            *p->medicaid ? p->medicaid : NULL};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "intake_duplicates",
        "WITH m AS (SELECT client_id, medicaid_index FROM intake.client_match_keys "
        "           WHERE agency_id = $1 AND name_dob_index = $2 "
        "           UNION SELECT client_id, medicaid_index FROM intake.client_match_keys "
        "           WHERE agency_id = $1 AND medicaid_index = $3) "
        "SELECT m.client_id::text, c.id IS NOT NULL, "
        "       (m.medicaid_index IS NOT DISTINCT FROM $3) AS same_medicaid "
        "FROM m LEFT JOIN intake.clients c ON c.id = m.client_id "
        "ORDER BY 2 DESC, 1 LIMIT 20",
        3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return BC_OK;
    }
    char seen[400] = "";
    size_t used = 0;
    int hidden = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetvalue(res, i, 1)[0] != 't') {
            hidden++;
            continue;
        }
        int w = snprintf(seen + used, sizeof seen - used, "%s%s%s", used ? ", " : "",
                         PQgetvalue(res, i, 0),
                         PQgetvalue(res, i, 2)[0] == 't' ? " (same Medicaid ID)" : "");
        if (w > 0 && (size_t)w < sizeof seen - used)
            used += (size_t)w;
    }
    PQclear(res);
    char others[96] = "";
    if (hidden)
        snprintf(others, sizeof others, "%s%d at sites outside your scope", used ? "; " : "",
                 hidden);
    return bc_call_fail(call, BC_CONFLICT, "allow_duplicate",
                        "possible duplicate of an existing client (same name and date of birth, "
                        "or same Medicaid ID): %s%s. Open the existing record, or send "
                        "allow_duplicate: true to register a new one",
                        seen, others);
}

bc_code_t clients_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__CreateClientRequest *req =
        (const Beacon__Intake__CreateClientRequest *)in;
    s_details_t d = S_DETAILS(req);
    bc_code_t code = s_check_details(call, &d);
    if (code != BC_OK)
        return code;
    if (!*call->principal->staff_id)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff register clients");
    const char *site = req->site_id;
    if (!*site) {
        if (call->principal->n_site_ids != 1)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id",
                                "site_id is required: say which of your sites the client "
                                "attends");
        site = call->principal->site_ids[0];
    } else if (!bc_is_uuid(site)) {
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    } else if (!bc_call_has_site(call, site)) {
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id",
                            "you can register clients only at your own sites");
    }
    /* A peer specialist's new client starts on their own caseload. */
    const char *assigned =
        bc_call_has_role(call, "peer_specialist") ? call->principal->staff_id : NULL;
    char id[37];
    bc_uuid_v4(id);
    s_protected_t prot;
    if ((code = s_protect(call, &d, id, &prot)) != BC_OK)
        return code;
    char *enc = bc_arena_strdup(call->arena, prot.medicaid_enc ? prot.medicaid_enc : "");
    free(prot.medicaid_enc);
    const char *fields[] = {
        d.given_name,       d.family_name,  S_NULLIF(d.preferred_name),
        S_NULLIF(d.pronouns), d.date_of_birth, S_NULLIF(d.preferred_language),
        call->principal->staff_id, call->principal->agency_id, site,
        assigned,           S_NULLIF(d.phone), S_NULLIF(d.email),
        *d.contact_method ? d.contact_method : "phone",
        d.do_not_contact ? "true" : "false", d.address_json, d.city,
        d.state,            d.postal_code,  d.ec_name,
        d.ec_relationship,  d.ec_phone,     id,
        S_NULLIF(enc),
    };
    const char *keys[] = {req->allow_duplicate ? "true" : "false", prot.name_dob,
                          S_NULLIF(prot.medicaid)};
    _Static_assert(sizeof fields / sizeof *fields + sizeof keys / sizeof *keys ==
                       S_CREATE_NPARAMS,
                   "intake_client_register takes the fields and the keys");
    const char *params[S_CREATE_NPARAMS];
    memcpy(params, fields, sizeof fields);
    memcpy(params + sizeof fields / sizeof *fields, keys, sizeof keys);
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* One statement registers the client and its match keys unless a match
     * key already exists (the common case costs two index probes); only when
     * nothing was inserted does the fuller duplicate query run, to name them. */
    PGresult *res = bc_db_prepared(
        call->db, "intake_client_register",
        "WITH ins AS (INSERT INTO intake.clients (given_name, family_name, preferred_name, "
        "pronouns, date_of_birth, preferred_language, created_by, updated_by, agency_id, "
        "site_id, assigned_staff_id, phone, email, preferred_contact_method, do_not_contact, "
        "address_lines, city, state, postal_code, emergency_contact_name, "
        "emergency_contact_relationship, emergency_contact_phone, id, medicaid_id_enc) "
        "SELECT $1::text, $2::text, $3::text, $4::text, $5::date, $6::text, $7::text, "
        "$7::text, $8::uuid, $9::uuid, $10::uuid, $11::text, $12::text, $13::text, "
        "$14::boolean, ARRAY(SELECT json_array_elements_text($15::json)), $16::text, "
        "$17::text, $18::text, $19::text, $20::text, $21::text, $22::uuid, $23::text "
        "WHERE $24::boolean OR (NOT EXISTS (SELECT FROM intake.client_match_keys "
        "  WHERE agency_id = $8::uuid AND name_dob_index = $25::text) "
        " AND ($26::text IS NULL OR NOT EXISTS (SELECT FROM intake.client_match_keys "
        "  WHERE agency_id = $8::uuid AND medicaid_index = $26::text))) "
        "RETURNING *), "
        "k AS (INSERT INTO intake.client_match_keys (client_id, agency_id, name_dob_index, "
        "      medicaid_index) SELECT id, agency_id, $25::text, $26::text FROM ins) "
        "SELECT " INTAKE_CLIENT_COLUMNS " FROM ins",
        S_CREATE_NPARAMS, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err); /* the dispatcher rolls back */
    if (PQntuples(res) == 0) {
        PQclear(res);
        if ((code = s_check_duplicates(call, &prot)) != BC_OK)
            return code;
        /* The match went away between the two statements (a merge): ask again. */
        return bc_call_fail(call, BC_CONFLICT, "",
                            "a possible duplicate changed while registering: try again");
    }
    Beacon__Intake__Client *c = intake_client_from_row(call, res, 0);
    PQclear(res);
    if (!c)
        return call->err.code;
    /* The first assignment is not written to the history: the client row
     * holds it (migration 014 and caseload.c say how the history keeps it). */
    if (intake_emit_assignment(call, c->id, c->site_id, c->assigned_staff_id, c->status) < 0)
        return call->err.code;
    return intake_commit_change(call, BC_AUDIT_CREATE, "client", c->id, c->id, c->site_id, NULL,
                                &c->base, out);
}

bc_code_t clients_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__UpdateClientRequest *req =
        (const Beacon__Intake__UpdateClientRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    if (req->expected_version < 1)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "expected_version",
                            "send the version you read as If-Match");
    s_details_t d = S_DETAILS(req);
    bc_code_t code = s_check_details(call, &d);
    if (code != BC_OK)
        return code;
    if (strcmp(req->status, "active") && strcmp(req->status, "inactive") &&
        strcmp(req->status, "discharged"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be one of active, inactive, discharged");
    if (!bc_is_uuid(call->principal->staff_id) || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff change client records");
    s_protected_t prot;
    if ((code = s_protect(call, &d, req->id, &prot)) != BC_OK)
        return code;
    char *enc = bc_arena_strdup(call->arena, prot.medicaid_enc ? prot.medicaid_enc : "");
    free(prot.medicaid_enc);
    char version[16];
    snprintf(version, sizeof version, "%d", req->expected_version);
    const char *params[] = {
        req->id,          call->principal->agency_id, version,
        d.given_name,     d.family_name,      S_NULLIF(d.preferred_name),
        S_NULLIF(d.pronouns), d.date_of_birth, S_NULLIF(d.preferred_language),
        req->status,      S_NULLIF(d.phone),  S_NULLIF(d.email),
        *d.contact_method ? d.contact_method : "phone",
        d.do_not_contact ? "true" : "false", d.address_json, d.city,
        d.state,          d.postal_code,      d.ec_name,
        d.ec_relationship, d.ec_phone,        call->principal->staff_id,
        S_NULLIF(enc),
    };
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_client_update",
        "UPDATE intake.clients SET given_name = $4, family_name = $5, preferred_name = $6, "
        "pronouns = $7, date_of_birth = $8, preferred_language = $9, status = $10, "
        "phone = $11, email = $12, preferred_contact_method = $13, do_not_contact = $14::boolean, "
        "address_lines = ARRAY(SELECT json_array_elements_text($15::json)), city = $16, "
        "state = $17, postal_code = $18, emergency_contact_name = $19, "
        "emergency_contact_relationship = $20, emergency_contact_phone = $21, updated_by = $22, "
        "medicaid_id_enc = $23, version = version + 1, updated_at = now() "
        "WHERE id = $1 AND agency_id = $2 AND version = $3::int "
        "RETURNING " INTAKE_CLIENT_COLUMNS,
        23, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        /* Gone, out of scope, or changed meanwhile: only the last says so. */
        res = bc_db_prepared(call->db, "intake_client_version",
                             "SELECT version FROM intake.clients WHERE id = $1 AND agency_id = $2",
                             2, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        bool exists = PQntuples(res) > 0;
        int current = exists ? atoi(PQgetvalue(res, 0, 0)) : 0;
        PQclear(res);
        bc_db_rollback(call->db);
        if (!exists)
            return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", req->id);
        if (current == req->expected_version) /* readable, not changeable: break-glass */
            return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                                "break-glass access reads a record; it does not change it");
        return bc_call_fail(call, BC_STALE, "expected_version",
                            "the client was changed since you read it (now version %d): read "
                            "it again and reapply your change",
                            current);
    }
    Beacon__Intake__Client *c = intake_client_from_row(call, res, 0);
    PQclear(res);
    if (!c)
        return call->err.code;
    const char *kp[] = {c->id, call->principal->agency_id, prot.name_dob,
                        S_NULLIF(prot.medicaid)};
    if (bc_db_defer(call->db, "intake_match_keys_upsert",
                    "INSERT INTO intake.client_match_keys (client_id, agency_id, "
                    "name_dob_index, medicaid_index) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (client_id) DO UPDATE SET name_dob_index = $3, "
                    "medicaid_index = $4",
                    4, kp, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (intake_emit_assignment(call, c->id, c->site_id, c->assigned_staff_id, c->status) < 0)
        return call->err.code;
    char detail[64];
    snprintf(detail, sizeof detail, "{\"version\":%d}", c->version);
    bc_audit_event_t ev = {
        .site_id = c->site_id,
        .action = BC_AUDIT_UPDATE,
        .resource_type = "client",
        .resource_id = c->id,
        .client_id = c->id,
        .purpose = intake_in_scope(call, c) ? "treatment" : "break_glass",
        .detail = detail,
    };
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}

bc_code_t clients_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__GetClientRequest *req = (const Beacon__Intake__GetClientRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    /* A row the policy lets through only by a break-glass grant is read,
     * and audited, for that reason (intake_in_scope). */
    if (!bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "no agency in the caller's scope");
    /* The agency filter is the handler's own; sites, caseloads and
     * break-glass grants are the row policy's (clients_read). */
    const char *params[] = {req->id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "intake_client_get",
        "SELECT " INTAKE_CLIENT_COLUMNS " FROM intake.clients WHERE id = $1 AND agency_id = $2",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_READ,
        .resource_type = "client",
        .resource_id = req->id,
        .client_id = req->id,
    };
    if (PQntuples(res) == 0) {
        PQclear(res);
        /* Not there, or not the caller's to see: the same answer either
         * way, and the attempt is on record. */
        return intake_not_found(call, &ev, req->id);
    }
    Beacon__Intake__Client *c = intake_client_from_row(call, res, 0);
    PQclear(res);
    if (!c)
        return call->err.code;
    bool break_glass = !intake_in_scope(call, c);
    ev.site_id = c->site_id;
    ev.purpose = break_glass ? "break_glass" : "treatment";
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}
