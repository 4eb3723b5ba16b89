/*  hsds: the HSDS 3.0 model of the directory tables (migration 003) and the
 *  writing of one record, shared by the JSON and CSV importers.
 *
 *  Every table is described once (s_tables): its HSDS entity name, its
 *  columns with their types, which are required and which values are
 *  allowed. A record arrives as text values by column (hsds_row_t); it is
 *  checked here, then written with an upsert that changes nothing when the
 *  stored row already holds the same values, inside its own savepoint, so a
 *  record the database refuses (a dangling reference, a bound) is reported
 *  and the rest of the import goes on. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

static const char *const s_status[] = {"active", "inactive", "defunct", "temporarily closed",
                                       NULL};
static const char *const s_place[] = {"physical", "postal", "virtual", NULL};
static const char *const s_phone[] = {"text", "voice", "fax", "cell", "video", "pager",
                                      "textphone", NULL};
static const char *const s_days[] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU", NULL};
static const char *const s_freq[] = {"WEEKLY", "MONTHLY", NULL};

#define T(n) {n, HSDS_TEXT, false, NULL, NULL}
#define R(n) {n, HSDS_TEXT, true, NULL, NULL}
#define U(n) {n, HSDS_UUID, false, NULL, NULL}
#define RU(n) {n, HSDS_UUID, true, NULL, NULL}
#define ID {"id", HSDS_UUID, true, NULL, NULL}

static const hsds_col_t s_organizations[] = {
    ID, R("name"), T("alternate_name"), T("description"), T("email"), T("website"),
    T("tax_status"), T("tax_id"), {"year_incorporated", HSDS_INT, false, NULL, NULL},
    T("legal_status"), T("logo"), T("uri"), U("parent_organization_id")};
static const hsds_col_t s_services[] = {
    ID, RU("organization_id"), R("name"), T("alternate_name"), T("description"), T("url"),
    T("email"), {"status", HSDS_TEXT, true, NULL, s_status}, T("interpretation_services"),
    T("application_process"), T("fees_description"), T("wait_time"), T("accreditations"),
    T("eligibility_description"), {"minimum_age", HSDS_NUM, false, NULL, NULL},
    {"maximum_age", HSDS_NUM, false, NULL, NULL}, {"assured_date", HSDS_DATE, false, NULL, NULL},
    T("assurer_email"), T("licenses"), T("alert"),
    {"last_modified", HSDS_TIMESTAMP, false, NULL, NULL}};
static const hsds_col_t s_locations[] = {
    ID, {"location_type", HSDS_TEXT, false, "physical", s_place}, T("url"), U("organization_id"),
    T("name"), T("alternate_name"), T("description"), T("transportation"),
    {"latitude", HSDS_LATITUDE, false, NULL, NULL}, {"longitude", HSDS_LONGITUDE, false, NULL, NULL},
    T("external_identifier"), T("external_identifier_type")};
static const hsds_col_t s_service_at_location[] = {ID, RU("service_id"), RU("location_id"),
                                                   T("description")};
static const hsds_col_t s_addresses[] = {
    ID, RU("location_id"), T("attention"), R("address_1"), T("address_2"), R("city"), T("region"),
    R("state_province"), R("postal_code"), R("country"),
    {"address_type", HSDS_TEXT, true, NULL, s_place}};
static const hsds_col_t s_phones[] = {
    ID, U("location_id"), U("service_id"), U("organization_id"), U("service_at_location_id"),
    R("number"), T("extension"), {"type", HSDS_TEXT, false, NULL, s_phone}, T("description")};
static const hsds_col_t s_schedules[] = {
    ID, U("service_id"), U("location_id"), U("service_at_location_id"),
    {"valid_from", HSDS_DATE, false, NULL, NULL}, {"valid_to", HSDS_DATE, false, NULL, NULL},
    {"dtstart", HSDS_DATE, false, NULL, NULL}, T("timezone"),
    {"until", HSDS_DATE, false, NULL, NULL}, {"count", HSDS_INT, false, NULL, NULL},
    {"wkst", HSDS_TEXT, false, NULL, s_days}, {"freq", HSDS_TEXT, false, NULL, s_freq},
    {"interval", HSDS_INT, false, NULL, NULL}, T("byday"), T("byweekno"), T("bymonthday"),
    T("byyearday"), T("description"), {"opens_at", HSDS_TIME, false, NULL, NULL},
    {"closes_at", HSDS_TIME, false, NULL, NULL}, T("schedule_link"), T("attending_type"),
    T("notes")};
static const hsds_col_t s_taxonomies[] = {ID, R("name"), R("description"), T("uri"),
                                          T("version")};
static const hsds_col_t s_taxonomy_terms[] = {
    ID, T("code"), R("name"), R("description"), U("parent_id"), T("taxonomy"), T("language"),
    U("taxonomy_id"), T("term_uri")};
static const hsds_col_t s_attributes[] = {ID, RU("link_id"), RU("taxonomy_term_id"),
                                          T("link_type"), R("link_entity"), T("value")};
static const hsds_col_t s_languages[] = {ID, U("service_id"), U("location_id"), U("phone_id"),
                                         T("name"), T("code"), T("note")};
static const hsds_col_t s_accessibility[] = {ID, U("location_id"), T("description"),
                                             T("details"), T("url")};

#define N(a) (sizeof a / sizeof a[0])
/* In the order a dataset is best written: what is referred to first. */
const hsds_table_t hsds_tables[HSDS_NTABLES] = {
    {"taxonomy", "taxonomies", s_taxonomies, N(s_taxonomies)},
    {"taxonomy_term", "taxonomy_terms", s_taxonomy_terms, N(s_taxonomy_terms)},
    {"organization", "organizations", s_organizations, N(s_organizations)},
    {"location", "locations", s_locations, N(s_locations)},
    {"service", "services", s_services, N(s_services)},
    {"service_at_location", "service_at_location", s_service_at_location,
     N(s_service_at_location)},
    {"address", "addresses", s_addresses, N(s_addresses)},
    {"phone", "phones", s_phones, N(s_phones)},
    {"schedule", "schedules", s_schedules, N(s_schedules)},
    {"attribute", "attributes", s_attributes, N(s_attributes)},
    {"language", "languages", s_languages, N(s_languages)},
    {"accessibility", "accessibility", s_accessibility, N(s_accessibility)},
};

const hsds_table_t *hsds_table(const char *entity)
{
    for (size_t i = 0; i < HSDS_NTABLES; i++)
        if (!strcmp(hsds_tables[i].entity, entity) || !strcmp(hsds_tables[i].table, entity))
            return &hsds_tables[i];
    return NULL;
}

int hsds_column(const hsds_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name))
            return (int)i;
    return -1;
}

/* The references between records (migration 003's foreign keys; since migration 010
 * the import checks those between tables, import_write.c). */
static const struct {
    const char *entity, *column, *target;
} s_references[] = {
    {"organization", "parent_organization_id", "organization"},
    {"service", "organization_id", "organization"},
    {"location", "organization_id", "organization"},
    {"service_at_location", "service_id", "service"},
    {"service_at_location", "location_id", "location"},
    {"address", "location_id", "location"},
    {"phone", "location_id", "location"},
    {"phone", "service_id", "service"},
    {"phone", "organization_id", "organization"},
    {"phone", "service_at_location_id", "service_at_location"},
    {"schedule", "service_id", "service"},
    {"schedule", "location_id", "location"},
    {"schedule", "service_at_location_id", "service_at_location"},
    {"taxonomy_term", "parent_id", "taxonomy_term"},
    {"taxonomy_term", "taxonomy_id", "taxonomy"},
    {"attribute", "taxonomy_term_id", "taxonomy_term"},
    {"language", "service_id", "service"},
    {"language", "location_id", "location"},
    {"language", "phone_id", "phone"},
    {"accessibility", "location_id", "location"},
};

static const hsds_table_t *s_refers[HSDS_NTABLES][HSDS_MAX_COLS];
static pthread_once_t s_refers_once = PTHREAD_ONCE_INIT;

static void s_refers_build(void)
{
    for (size_t r = 0; r < sizeof s_references / sizeof s_references[0]; r++) {
        const hsds_table_t *t = hsds_table(s_references[r].entity);
        int c = hsds_column(t, s_references[r].column);
        if (c < 0)
            abort(); /* the list above names a column the model lacks: a programmer error */
        s_refers[t - hsds_tables][c] = hsds_table(s_references[r].target);
    }
}

const hsds_table_t *hsds_refers(const hsds_table_t *t, size_t c)
{
    pthread_once(&s_refers_once, s_refers_build);
    return c < HSDS_MAX_COLS ? s_refers[t - hsds_tables][c] : NULL;
}

/* ---- the upsert of each table, built once ----------------------------------- */

static char *s_sql[HSDS_NTABLES];
static char s_names[HSDS_NTABLES][48];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

const char *hsds_sql_type(hsds_type_t type)
{
    switch (type) {
    case HSDS_UUID: return "uuid";
    case HSDS_INT: return "integer";
    case HSDS_NUM: return "numeric";
    case HSDS_DATE: return "date";
    case HSDS_TIME: return "time";
    case HSDS_TIMESTAMP: return "timestamptz";
    case HSDS_LATITUDE:
    case HSDS_LONGITUDE: return "double precision";
    default: return "text";
    }
}

bool hsds_col_merged(const hsds_col_t *col)
{
    return col->type == HSDS_UUID && !col->required && strcmp(col->name, "id");
}

static void s_build(void)
{
    for (size_t i = 0; i < HSDS_NTABLES; i++) {
        const hsds_table_t *t = &hsds_tables[i];
        size_t cap = 8192, len = 0;
        char *sql = malloc(cap);
        if (!sql)
            abort();
#define S_ADD(...) (len += (size_t)snprintf(sql + len, cap - len, __VA_ARGS__))
        S_ADD("INSERT INTO referral.%s AS t (agency_id, updated_by", t->table);
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD(", \"%s\"", t->cols[c].name);
        S_ADD(") VALUES ($1, $2");
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD(", $%zu::%s", c + 3, hsds_sql_type(t->cols[c].type));
        S_ADD(") ON CONFLICT (agency_id, id) DO UPDATE SET (updated_by, updated_at");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(", \"%s\"", t->cols[c].name);
        /* An optional reference the record arrives without keeps the one
         * stored: HSDS documents repeat a record under each record that holds
         * it (one language under a service, its location and a phone), each
         * time with only that holder's link. */
        S_ADD(") = ROW(EXCLUDED.updated_by, now()");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(hsds_col_merged(&t->cols[c]) ? ", coalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : ", EXCLUDED.\"%s\"",
                  t->cols[c].name, t->cols[c].name);
        S_ADD(") WHERE ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD("%st.\"%s\"", c > 1 ? ", " : "", t->cols[c].name);
        S_ADD(") IS DISTINCT FROM ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(hsds_col_merged(&t->cols[c]) ? "%scoalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : "%sEXCLUDED.\"%s\"",
                  c > 1 ? ", " : "", t->cols[c].name, t->cols[c].name);
        S_ADD(") RETURNING (xmax = 0)");
#undef S_ADD
        if (len >= cap)
            abort(); /* the table above outgrew the buffer: a programmer error */
        s_sql[i] = sql;
        snprintf(s_names[i], sizeof s_names[i], "hsds_upsert_%s", t->table);
    }
}

/* ---- checking values ----------------------------------------------------------- */

static bool s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* s begins with YYYY-MM-DD (the database checks the calendar). */
static bool s_date_prefix(const char *s)
{
    return strlen(s) >= 10 && s_digits(s, 4) && s[4] == '-' && s_digits(s + 5, 2) &&
           s[7] == '-' && s_digits(s + 8, 2);
}

static bool s_date(const char *s)
{
    return strlen(s) == 10 && s_date_prefix(s);
}

static bool s_time(const char *s)
{
    size_t n = strlen(s);
    return (n == 5 || n == 8) && s_digits(s, 2) && s[2] == ':' && s_digits(s + 3, 2) &&
           (n == 5 || (s[5] == ':' && s_digits(s + 6, 2)));
}

static bool s_number(const char *s, double lo, double hi)
{
    char *end = NULL;
    double v = strtod(s, &end);
    return end != s && !*end && isfinite(v) && v >= lo && v <= hi;
}

static bool s_integer(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return end != s && !*end && v >= -2147483647L && v <= 2147483647L;
}

bool hsds_check(bc_arena_t *arena, const hsds_table_t *t, hsds_row_t *row, const char **field,
                char *message, size_t size)
{
    for (size_t c = 0; c < t->ncols; c++) {
        const hsds_col_t *col = &t->cols[c];
        char *v = row->values[c];
        *field = col->name;
        if (v && !bc_utf8_valid(v, strlen(v))) {
            snprintf(message, size, "%s is not valid UTF-8", col->name);
            return false;
        }
        if (v && !*v && col->type != HSDS_TEXT)
            v = row->values[c] = NULL; /* an empty cell is no value */
        if (!v && col->fallback)
            v = row->values[c] = (char *)col->fallback;
        if (!v || (col->type == HSDS_TEXT && !*v)) {
            if (col->required) {
                snprintf(message, size, "%s is required", col->name);
                return false;
            }
            row->values[c] = NULL;
            continue;
        }
        bool ok = true;
        const char *want = "";
        switch (col->type) {
        case HSDS_UUID:
            for (char *p = v; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            ok = bc_is_uuid(v), want = "a UUID";
            break;
        case HSDS_INT: ok = s_integer(v), want = "a whole number"; break;
        case HSDS_NUM: ok = s_number(v, -1e15, 1e15), want = "a number"; break;
        case HSDS_DATE: ok = s_date(v), want = "a date (YYYY-MM-DD)"; break;
        case HSDS_TIME:
            ok = s_time(v), want = "a time (HH:MM or HH:MM:SS)";
            if (ok && strlen(v) == 5) /* one spelling, so that repeats compare equal */
                v = row->values[c] = bc_arena_printf(arena, "%s:00", v);
            break;
        case HSDS_TIMESTAMP:
            ok = s_date_prefix(v) && (!v[10] || v[10] == 'T' || v[10] == ' ');
            want = "a date and time (RFC 3339)";
            break;
        case HSDS_LATITUDE: ok = s_number(v, -90, 90), want = "a latitude from -90 to 90"; break;
        case HSDS_LONGITUDE:
            ok = s_number(v, -180, 180), want = "a longitude from -180 to 180";
            break;
        default: break;
        }
        if (ok && col->allowed) {
            ok = false;
            for (const char *const *a = col->allowed; *a && !ok; a++)
                ok = !strcmp(*a, v);
            want = "one of the values HSDS 3.0 lists";
        }
        if (!ok) {
            snprintf(message, size, "%s must be %s (got \"%.40s\")", col->name, want, v);
            return false;
        }
    }
    /* A coordinate alone places nothing: they come in pairs. */
    int lat = hsds_column(t, "latitude"), lon = hsds_column(t, "longitude");
    if (lat >= 0 && lon >= 0 && !row->values[lat] != !row->values[lon]) {
        *field = row->values[lat] ? "longitude" : "latitude";
        snprintf(message, size, "latitude and longitude come together: %s is missing", *field);
        return false;
    }
    return true;
}

/* The column named by a constraint the database reported ("services_name_check",
 * "locations_agency_id_organization_id_fkey"), or NULL. */
static const char *s_constraint_column(const hsds_table_t *t, const char *detail, bool *fkey)
{
    const char *end = strrchr(detail, '"');
    if (!end)
        return NULL;
    const char *start = end - 1;
    while (start > detail && *start != '"')
        start--;
    if (start == detail)
        return NULL;
    char name[160];
    snprintf(name, sizeof name, "%.*s", (int)(end - start - 1), start + 1);
    size_t n = strlen(name);
    *fkey = n > 5 && !strcmp(name + n - 5, "_fkey");
    for (size_t c = 0; c < t->ncols; c++) {
        char want[160];
        snprintf(want, sizeof want, *fkey ? "%s_agency_id_%s_fkey" : "%s_%s_check", t->table,
                 t->cols[c].name);
        if (!strcmp(name, want))
            return t->cols[c].name;
    }
    return NULL;
}

hsds_outcome_t hsds_write(bc_call_t *call, const hsds_table_t *t, hsds_row_t *row,
                          const char **field, char *message, size_t size)
{
    pthread_once(&s_once, s_build);
    size_t i = (size_t)(t - hsds_tables);
    const char *params[2 + HSDS_MAX_COLS];
    params[0] = call->principal->agency_id;
    params[1] = call->principal->staff_id;
    for (size_t c = 0; c < t->ncols; c++)
        params[2 + c] = row->values[c];
    bc_error_t err;
    if (bc_db_command(call->db, "SAVEPOINT hsds_row", 0, NULL, &err) < 0)
        return bc_call_fail_err(call, &err), HSDS_FAILED;
    PGresult *res = bc_db_prepared(call->db, s_names[i], s_sql[i], (int)(2 + t->ncols), params, &err);
    if (!res) {
        if (!bc_db_ok(call->db) || err.code == BC_UNAVAILABLE)
            return bc_call_fail_err(call, &err), HSDS_FAILED;
        bc_error_t err2;
        if (bc_db_command(call->db, "ROLLBACK TO SAVEPOINT hsds_row", 0, NULL, &err2) < 0)
            return bc_call_fail_err(call, &err2), HSDS_FAILED;
        bool fkey = false;
        const char *col = s_constraint_column(t, err.detail, &fkey);
        *field = col ? col : "";
        if (col && fkey)
            snprintf(message, size, "%s refers to a record that is neither in the directory nor "
                     "taken from this import", col);
        else if (col)
            snprintf(message, size, "%s is out of bounds or malformed", col);
        else
            snprintf(message, size, "refused by the database (%.200s)",
                     strncmp(err.detail, "SQLSTATE ", 9) ? err.message : err.detail + 9);
        return HSDS_REFUSED;
    }
    hsds_outcome_t out = PQntuples(res) == 0 ? HSDS_UNCHANGED
                         : !strcmp(PQgetvalue(res, 0, 0), "t") ? HSDS_CREATED
                                                               : HSDS_UPDATED;
    PQclear(res);
    if (bc_db_command(call->db, "RELEASE SAVEPOINT hsds_row", 0, NULL, &err) < 0)
        return bc_call_fail_err(call, &err), HSDS_FAILED;
    return out;
}
