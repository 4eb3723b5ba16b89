/*  directory: searching the agency's resource directory (HSDS 3.0 tables,
 *  migration 003). Directory data is not PHI: reads are not audited, and row
 *  security limits them to the agency's care team and admins. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

#define S_LIMIT_MAX 100
#define S_OFFSET_MAX 10000
#define S_SEP "\x1f" /* between the languages or terms of one service */

/* Kilometres between two points on a sphere of the Earth's mean radius. */
#define S_KM(lat, lon)                                                                             \
    "(2 * 6371.0088 * asin(least(1, sqrt(power(sin(radians(" lat " - $3) / 2), 2) + "            \
    "cos(radians($3)) * cos(radians(" lat ")) * power(sin(radians(" lon " - $4) / 2), 2)))))"

/* The columns of a result: the service, its organization (s, o), the place
 * (near: id, name, latitude, longitude, km) and its languages and terms. */
#define S_RESULT_SELECT                                                                            \
    "SELECT s.id, s.name, coalesce(s.alternate_name, ''), coalesce(s.description, ''), "          \
    "s.status, s.organization_id, o.name, coalesce(s.url, ''), coalesce(s.email, ''), "           \
    "coalesce(s.minimum_age::text, ''), coalesce(s.maximum_age::text, ''), "                      \
    "coalesce(near.id::text, ''), coalesce(near.name, ''), coalesce(near.latitude, 0), "          \
    "coalesce(near.longitude, 0), coalesce(near.km, 0), "                                         \
    "coalesce((SELECT string_agg(coalesce(g.code, g.name), E'\\x1f' ORDER BY g.code, g.name) "    \
    "          FROM referral.languages g WHERE g.agency_id = s.agency_id AND g.service_id = s.id), ''), " \
    "coalesce((SELECT string_agg(t.name, E'\\x1f' ORDER BY t.name) "                              \
    "          FROM referral.attributes a JOIN referral.taxonomy_terms t "                        \
    "            ON t.agency_id = a.agency_id AND t.id = a.taxonomy_term_id "                     \
    "          WHERE a.agency_id = s.agency_id AND a.link_entity = 'service' "                    \
    "            AND a.link_id = s.id), '') "
#define S_RESULT_COLUMNS                                                                           \
    S_RESULT_SELECT                                                                                \
    "FROM referral.services s "                                                                    \
    "JOIN referral.organizations o ON o.agency_id = s.agency_id AND o.id = s.organization_id "

/* Nearest first, then the better keyword match, then by name. */
#define S_RESULT_ORDER                                                                             \
    "ORDER BY near.km NULLS LAST, "                                                                \
    "  CASE WHEN $2::text IS NULL THEN 0 "                                                         \
    "  ELSE ts_rank(s.search, websearch_to_tsquery('english', $2)) END DESC, s.name, s.id "       \
    "LIMIT $10::int OFFSET $11::int"

/* Open at $12 (an instant), by the service's schedules, its places' or its
 * locations'; a schedule without a zone read in the zone of site $13. */
#define S_OPEN_AT \
    "($12::timestamptz IS NULL OR EXISTS (SELECT 1 FROM referral.schedules sc " \
    "       WHERE sc.agency_id = s.agency_id " \
    "         AND (sc.service_id = s.id " \
    "              OR sc.service_at_location_id IN (SELECT x.id FROM referral.service_at_location x " \
    "                 WHERE x.agency_id = s.agency_id AND x.service_id = s.id) " \
    "              OR (sc.service_id IS NULL AND sc.service_at_location_id IS NULL " \
    "                  AND sc.location_id IN (SELECT x.location_id FROM referral.service_at_location x " \
    "                 WHERE x.agency_id = s.agency_id AND x.service_id = s.id))) " \
    "         AND referral.schedule_open($12::timestamptz, sc.timezone, " \
    "             (SELECT z.time_zone FROM identity.site_directory z WHERE z.site_id = $13::uuid), " \
    "             sc.valid_from, sc.valid_to, sc.dtstart, sc.until, sc.freq, sc.\"interval\", " \
    "             sc.byday, sc.bymonthday, sc.opens_at, sc.closes_at))) "

/* Without a point: every filter on the directory tables (keyword through
 * the services' GIN index), the service's first place shown. */
static const char s_search_sql[] =
    S_RESULT_COLUMNS
    "LEFT JOIN LATERAL ("
    "  SELECT l.id, l.name, l.latitude, l.longitude, NULL::float8 AS km "
    "  FROM referral.service_at_location sal JOIN referral.locations l "
    "    ON l.agency_id = sal.agency_id AND l.id = sal.location_id "
    "  WHERE sal.agency_id = s.agency_id AND sal.service_id = s.id "
    "  ORDER BY l.id LIMIT 1) near ON true "
    "WHERE s.agency_id = $1 "
    "  AND ($2::text IS NULL OR s.search @@ websearch_to_tsquery('english', $2)) "
    "  AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM referral.attributes a "
    "       JOIN referral.taxonomy_terms t ON t.agency_id = a.agency_id AND t.id = a.taxonomy_term_id "
    "       WHERE a.agency_id = s.agency_id AND a.link_entity = 'service' AND a.link_id = s.id "
    "         AND (t.id::text = lower($6) OR t.code = $6 OR lower(t.name) = lower($6)))) "
    "  AND ($7::numeric IS NULL OR ((s.minimum_age IS NULL OR s.minimum_age <= $7::numeric) "
    "       AND (s.maximum_age IS NULL OR s.maximum_age >= $7::numeric))) "
    "  AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM referral.languages g "
    "       WHERE g.agency_id = s.agency_id AND g.service_id = s.id "
    "         AND (lower(g.code) = lower($8) OR lower(g.name) = lower($8)))) "
    "  AND ($9::text = 'any' OR s.status = $9) "
    "  AND num_nulls($3::float8, $4::float8, $5::float8) >= 0 " /* types the point's, unused */
    "  AND " S_OPEN_AT
    S_RESULT_ORDER;

/* Kilometres from the point ($3, $4) of a row with latitude and longitude. */
#define S_KM_FROM_POINT S_KM("x.latitude", "x.longitude")

/* Around a point: the places inside the radius come from the search table
 * (migration 007) through its position index, which holds every filtered
 * column: an index-only scan of each latitude band the radius spans, over
 * the box's longitudes; each service is shown at its nearest place.
 *
 * Every step is a probe by key whatever the planner estimates: each band
 * ($14, the bands' numbers, floor(latitude * 100) as the table has them
 * (migration 013), from the radius's southern to its northern edge, with
 * $15 and $16 the longitudes the circle spans within the band, s_bands: an
 * array, which a generic plan takes for ten rows where a series of
 * parameters is taken for a thousand) is its own scan (a LATERAL subquery,
 * OFFSET 0 so that it is not flattened), bounded by the band and its
 * longitudes, so that what is read is close to the circle itself (bands of
 * 0.05 degrees over the whole box's longitudes read 5,000 index entries for
 * a 10 km radius over 100,000 services, 1.4 to 2.6 us each, most of the
 * query's time), and the place's name, the service
 * and its organization are read by key only for the services as near as
 * the page's last one (ties included; each found service when the search
 * also asks what is open now). Before, they were read for every service
 * found: 526 of them in EXPLAIN over 234,000 services, 15 of the query's
 * 41 ms, for a page of 20. A generic
 * plan (a prepared statement's, after five runs) knows neither the point
 * nor the radius: it took the bands for a thousand and joined the places
 * found to a hash of every location of the agency (EXPLAIN over 100,000
 * services: 390 ms where the probes take 20); and right after an import,
 * without statistics, one scan with `lat_cell = ANY (...)` was planned
 * with the band as a filter, reading every place of the agency. */
static const char s_search_near_sql[] =
    "WITH d AS MATERIALIZED ("
    "  SELECT DISTINCT ON (x.service_id) x.service_id, x.location_id AS id, "
    "         x.latitude, x.longitude, x.km "
    "  FROM unnest($14::int[], $15::float8[], $16::float8[]) AS band(cell, west, east) "
    "  CROSS JOIN LATERAL ("
    "    SELECT x.service_id, x.location_id, x.latitude, x.longitude, "
    "           " S_KM_FROM_POINT " AS km "
    "    FROM referral.service_search x "
    "    WHERE x.agency_id = $1 AND x.lat_cell = band.cell "
    "      AND x.longitude BETWEEN band.west AND band.east "
    "      AND x.latitude BETWEEN $3::float8 - $5::float8 / 111.0 AND $3::float8 + $5::float8 / 111.0 "
    "      AND ($9::text = 'any' OR x.status = $9) "
    "      AND ($6::text IS NULL OR x.term_keys && (SELECT "
    "           ARRAY['id:' || lower($6), 'code:' || $6, 'name:' || lower($6)])) "
    "      AND ($8::text IS NULL OR x.language_keys @> (SELECT ARRAY[lower($8)])) "
    "      AND ($7::numeric IS NULL OR ((x.minimum_age IS NULL OR x.minimum_age <= $7::numeric) "
    "           AND (x.maximum_age IS NULL OR x.maximum_age >= $7::numeric))) "
    "      AND " S_KM_FROM_POINT " <= $5::float8 "
    "      AND ($2::text IS NULL OR x.search @@ (SELECT websearch_to_tsquery('english', $2))) "
    "    OFFSET 0) x "
    "  ORDER BY x.service_id, x.km, x.location_id), "
    /* The distance of the page's last service: those further away cannot
     * be on the page (distance orders it first), so only the nearer ones
     * and the ties are read. Unless the page also asks what is open now:
     * that filter comes after, from the schedules. */
    "page_km AS (SELECT max(k.km) AS km FROM (SELECT d.km FROM d ORDER BY d.km "
    "                                         LIMIT $10::int + $11::int) k) "
    S_RESULT_SELECT
    "FROM ("
    "  SELECT d.service_id, d.id, ln.name, d.latitude, d.longitude, d.km FROM d "
    "  CROSS JOIN LATERAL (SELECT l.name FROM referral.locations l "
    "                      WHERE l.agency_id = $1 AND l.id = d.id OFFSET 0) ln "
    "  WHERE $12::timestamptz IS NOT NULL OR d.km <= (SELECT km FROM page_km)) near "
    "CROSS JOIN LATERAL (SELECT * FROM referral.services s "
    "                    WHERE s.agency_id = $1 AND s.id = near.service_id OFFSET 0) s "
    "CROSS JOIN LATERAL (SELECT o.name FROM referral.organizations o "
    "                    WHERE o.agency_id = $1 AND o.id = s.organization_id OFFSET 0) o "
    "WHERE " S_OPEN_AT
    S_RESULT_ORDER;

/* A finite number within [lo, hi], or false. */
static bool s_number(const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* An RFC 3339 instant: YYYY-MM-DDTHH:MM[:SS[.frac]] then Z or +HH:MM. */
static bool s_instant(const char *v)
{
    int y, mo, d, h, mi, n = 0;
    if (sscanf(v, "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n != 16 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || y < 1900 || y > 2200)
        return false;
    const char *p = v + 16;
    if (*p == ':') {
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[1] > '5')
            return false;
        p += 3;
        if (*p == '.')
            for (p++; isdigit((unsigned char)*p); p++)
                ;
    }
    if (!strcmp(p, "Z"))
        return true;
    return (p[0] == '+' || p[0] == '-') && isdigit((unsigned char)p[1]) &&
           isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
           isdigit((unsigned char)p[5]) && !p[6];
}

/* Splits "a\x1fb" into a repeated string field. */
static char **s_split(bc_call_t *call, const char *joined, size_t *n)
{
    *n = 0;
    if (!*joined)
        return NULL;
    size_t count = 1;
    for (const char *p = joined; *p; p++)
        count += *p == S_SEP[0];
    char **out = bc_arena_alloc(call->arena, count * sizeof *out);
    char *copy = bc_arena_strdup(call->arena, joined);
    for (char *p = copy;;) {
        char *sep = strchr(p, S_SEP[0]);
        out[(*n)++] = p;
        if (!sep)
            break;
        *sep = '\0';
        p = sep + 1;
    }
    return out;
}

/* The latitude bands (floor(latitude * 100), migration 013) a circle of
 * radius km around (lat, lon) reaches, each with the longitudes the circle
 * spans within it: three array literals (cells, western and eastern
 * bounds). The bounds hold every point within the radius as the query
 * measures it (the haversine formula on a sphere of radius S_EARTH_KM):
 * for a point at latitude p and one at q in the band, the distance is at
 * most the radius only when
 *   cos p cos q sin^2(dlon / 2) <= sin^2(km / 2R) - sin^2(dlat / 2),
 * so dlon is at most the value for the band's latitude nearest the point
 * (smallest dlat) and furthest from the equator (smallest cos q). The
 * bands span the same latitudes as the query's bound (radius / 111 degrees
 * either side, slightly more than the circle's). A band the circle misses
 * is left out. Longitudes are not wrapped at the antimeridian. */
#define S_EARTH_KM 6371.0088
#define S_RAD(d) ((d) * M_PI / 180.0)
static void s_bands(bc_arena_t *arena, double lat, double lon, double km, char *out[3])
{
    int lo = (int)floor((lat - km / 111.0) * 100), hi = (int)floor((lat + km / 111.0) * 100);
    size_t cap = (size_t)(hi - lo + 1) * 32 + 8;
    char *cells = bc_arena_alloc(arena, cap), *west = bc_arena_alloc(arena, cap),
         *east = bc_arena_alloc(arena, cap);
    size_t nc = 0, nw = 0, ne = 0;
    double reach = pow(sin(km / (2 * S_EARTH_KM)), 2);
    for (int c = lo; c <= hi; c++) {
        double south = c / 100.0, north = (c + 1) / 100.0;
        double dlat = lat < south ? south - lat : lat > north ? lat - north : 0;
        double room = reach - pow(sin(S_RAD(dlat) / 2), 2);
        if (room <= 0)
            continue; /* the circle does not reach this band */
        double far = fmin(89.999, fmax(fabs(south), fabs(north)));
        double sin_half = sqrt(room / (cos(S_RAD(lat)) * cos(S_RAD(far))));
        double span = sin_half >= 1 ? 360 : 2 * asin(sin_half) * 180 / M_PI;
        span = span * (1 + 1e-9) + 1e-9; /* rounding: never narrower than the circle */
        const char *sep = nc ? "," : "{";
        nc += (size_t)snprintf(cells + nc, cap - nc, "%s%d", sep, c);
        nw += (size_t)snprintf(west + nw, cap - nw, "%s%.9f", sep, lon - span);
        ne += (size_t)snprintf(east + ne, cap - ne, "%s%.9f", sep, lon + span);
    }
    if (!nc) {
        out[0] = out[1] = out[2] = "{}";
        return;
    }
    snprintf(cells + nc, cap - nc, "}");
    snprintf(west + nw, cap - nw, "}");
    snprintf(east + ne, cap - ne, "}");
    out[0] = cells;
    out[1] = west;
    out[2] = east;
}

bc_code_t directory_search(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__SearchServicesRequest *req =
        (const Beacon__Referral__SearchServicesRequest *)in;
    double lat = 0, lon = 0, radius = 10, age = 0;
    bool has_lat = *req->latitude, has_lon = *req->longitude;
    if (has_lat != has_lon)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, has_lat ? "longitude" : "latitude",
                            "latitude and longitude go together");
    if (has_lat && !s_number(req->latitude, -90, 90, &lat))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "latitude",
                            "latitude is a number from -90 to 90");
    if (has_lon && !s_number(req->longitude, -180, 180, &lon))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "longitude",
                            "longitude is a number from -180 to 180");
    if (*req->radius_km && !has_lat)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "radius_km",
                            "radius_km needs latitude and longitude");
    if (*req->radius_km && !s_number(req->radius_km, 0.1, 500, &radius))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "radius_km",
                            "radius_km is a number from 0.1 to 500");
    if (*req->age && !s_number(req->age, 0, 150, &age))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "age", "age is a number from 0 to 150");
    const char *status = *req->status ? req->status : "active";
    if (strcmp(status, "active") && strcmp(status, "inactive") && strcmp(status, "defunct") &&
        strcmp(status, "temporarily closed") && strcmp(status, "any"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status is active, inactive, defunct, temporarily closed or any");
    struct {
        const char *value, *field;
        size_t max;
    } texts[] = {{req->q, "q", 200}, {req->taxonomy_term, "taxonomy_term", 200},
                 {req->language, "language", 100}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (strlen(texts[i].value) > texts[i].max)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, texts[i].field,
                                "%s is at most %zu characters", texts[i].field, texts[i].max);
    if (req->limit < 0 || req->limit > S_LIMIT_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit is 1 to %d", S_LIMIT_MAX);
    if (req->offset < 0 || req->offset > S_OFFSET_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "offset", "offset is 0 to %d",
                            S_OFFSET_MAX);
    int limit = req->limit ? req->limit : 20;
    if (*req->open_at && strcmp(req->open_at, "now") && !s_instant(req->open_at))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "open_at",
                            "open_at is now or an RFC 3339 instant (2031-05-01T14:30:00Z)");

    char lat_s[32], lon_s[32], radius_s[32], limit_s[16], offset_s[16];
    snprintf(lat_s, sizeof lat_s, "%.8f", lat);
    snprintf(lon_s, sizeof lon_s, "%.8f", lon);
    snprintf(radius_s, sizeof radius_s, "%.6f", radius);
    snprintf(limit_s, sizeof limit_s, "%d", limit + 1); /* one more: is there a next page? */
    snprintf(offset_s, sizeof offset_s, "%d", req->offset);
    char *bands[3] = {"{}", "{}", "{}"};
    if (has_lat)
        s_bands(call->arena, strtod(lat_s, NULL), strtod(lon_s, NULL), strtod(radius_s, NULL),
                bands);
#define S_OPT(v) (*(v) ? (v) : NULL)
    const char *params[16] = {call->principal->agency_id,
                              S_OPT(req->q),
                              has_lat ? lat_s : NULL,
                              has_lat ? lon_s : NULL,
                              radius_s,
                              S_OPT(req->taxonomy_term),
                              S_OPT(req->age),
                              S_OPT(req->language),
                              status,
                              limit_s,
                              offset_s,
                              S_OPT(req->open_at),
                              /* schedules without a zone: the caller's site's */
                              call->principal->n_site_ids ? call->principal->site_ids[0] : NULL,
                              bands[0],
                              bands[1],
                              bands[2]};
#undef S_OPT
    bc_error_t err;
    PGresult *res = has_lat ? bc_db_prepared(call->db, "directory_search_near",
                                             s_search_near_sql, 16, params, &err)
                            : bc_db_prepared(call->db, "directory_search", s_search_sql, 13,
                                             params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Referral__SearchServicesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__referral__search_services_reply__init(r);
    r->services = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *r->services);
    for (int i = 0; i < rows && i < limit; i++) {
        Beacon__Referral__DirectoryService *s = bc_arena_alloc(call->arena, sizeof *s);
        beacon__referral__directory_service__init(s);
        char **text[] = {&s->id,          &s->name,        &s->alternate_name,
                         &s->description, &s->status,      &s->organization_id,
                         &s->organization_name, &s->url,   &s->email,
                         &s->minimum_age, &s->maximum_age, &s->location_id,
                         &s->location_name};
        for (int c = 0; c < (int)(sizeof text / sizeof text[0]); c++)
            *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, i, c));
        s->latitude = strtod(PQgetvalue(res, i, 13), NULL);
        s->longitude = strtod(PQgetvalue(res, i, 14), NULL);
        s->distance_km = round(strtod(PQgetvalue(res, i, 15), NULL) * 1000) / 1000;
        s->languages = s_split(call, PQgetvalue(res, i, 16), &s->n_languages);
        s->taxonomy_terms = s_split(call, PQgetvalue(res, i, 17), &s->n_taxonomy_terms);
        r->services[r->n_services++] = s;
    }
    if (rows > limit)
        r->next_offset = req->offset + limit;
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}
