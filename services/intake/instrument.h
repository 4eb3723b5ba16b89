/*  instrument: standardized assessment instruments (BARC-10 and the like),
 *  defined as data and scored in C.
 *
 *  An agency adds an instrument by dropping a JSON file into the
 *  instruments directory (services/intake/instruments/ ships barc10.json);
 *  no code changes. instrument_registry_load() reads every *.json file of
 *  the directory, validates each strictly and refuses the whole directory if
 *  any file is wrong, so a bad definition is found when the service starts,
 *  never halfway through an assessment. A loaded registry is immutable: any
 *  number of threads may read and score with it at once.
 *
 *  Scoring is pure logic (no database, no allocation): a response set is a
 *  list of (item id, value) pairs; every item must be answered exactly once
 *  with a value of the response scale. The result is the total, each
 *  subscale's total and the interpretation bands the scores fall in.
 *
 *  ---- Definition format (one instrument per file, UTF-8 JSON) --------------
 *
 *  {
 *    "id": "barc10",                  identifier: 1-64 of [a-z0-9_-], unique
 *                                     across the directory
 *    "version": "2017",               free text, 1-32 characters
 *    "title": "Brief Assessment of Recovery Capital (BARC-10)",
 *    "citation": "Vilsaint CL, ...",  where the instrument comes from
 *    "instructions": "...",           optional text shown before the items
 *    "scale": [                       response scale, 2-101 points, values
 *      {"value": 1, "label": "Strongly disagree"},   contiguous ascending
 *      ...                                            integers in -1000..1000
 *      {"value": 6, "label": "Strongly agree"}
 *    ],
 *    "items": [                       1-200 items, in the order asked
 *      {"id": "q1", "text": "...", "reverse": false}
 *    ],                               "reverse" (optional, default false):
 *                                     scored as scale min + scale max - value
 *    "subscales": [                   optional, 0-32: each the sum of the
 *      {"id": "social", "title": "...", "items": ["q4", "q5"]}
 *    ],                               (scored) values of the items it lists;
 *                                     ids unique among subscales and "total"
 *    "scoring": {"method": "sum", "min": 10, "max": 60},
 *                                     the total is the sum of every item's
 *                                     scored value; min and max must equal
 *                                     items x scale min and items x scale max
 *    "bands": [                       optional, 0-32 interpretation bands
 *      {"id": "at_or_above_cutoff", "score": "total", "min": 47, "max": 60,
 *       "label": "..."}               score: "total" or a subscale id; the
 *    ]                                band applies when min <= score <= max
 *  }                                  (inclusive; within the score's range)
 *
 *  Every key above is either required or marked optional; any other key, a
 *  duplicated key, a wrong type, a non-integer number, an empty or overlong
 *  text or a control character is refused. Texts (title, text, labels) are
 *  at most 1,000 characters; the citation and instructions 2,000. A file is
 *  at most INSTRUMENT_MAX_FILE_BYTES; a directory holds at most
 *  INSTRUMENT_MAX_FILES definitions. Files whose name starts with "." are
 *  ignored.
 *
 *  Errors name the file and the field: the bc_error_t message reads
 *  "barc10.json: items[3].id: duplicate item id \"q2\"", its field is
 *  "items[3].id" and its detail the full path.
 */
#ifndef INSTRUMENT_H
#define INSTRUMENT_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_error.h"

#define INSTRUMENT_MAX_FILE_BYTES (256 * 1024)
#define INSTRUMENT_MAX_FILES 256
#define INSTRUMENT_MAX_ITEMS 200
#define INSTRUMENT_MAX_SCALE_POINTS 101
#define INSTRUMENT_MAX_SUBSCALES 32
#define INSTRUMENT_MAX_BANDS 32
#define INSTRUMENT_MAX_ID_CHARS 64

typedef struct instrument_registry instrument_registry_t;
typedef struct instrument instrument_t;

/* Read-only views into a loaded instrument; every pointer is owned by the
 * registry and valid until instrument_registry_destroy(). */
typedef struct {
    const char *id;
    const char *text;
    bool reverse; /* scored as scale min + scale max - value */
} instrument_item_t;

typedef struct {
    int value;
    const char *label;
} instrument_scale_point_t;

typedef struct {
    const char *id;
    const char *title;
    size_t item_count;
    const size_t *items; /* indexes into the instrument's items */
    int min, max;        /* range of the subscale's total */
} instrument_subscale_t;

typedef struct {
    const char *id;
    const char *label;
    const char *score; /* "total" or a subscale id */
    int subscale;      /* index of that subscale, -1 for the total */
    int min, max;      /* inclusive */
} instrument_band_t;

/* One answer of a response set: the item's id and the value chosen. */
typedef struct {
    const char *item_id;
    int value;
} instrument_answer_t;

/* The result of scoring one response set. Band pointers point into the
 * instrument (owned by the registry). */
typedef struct {
    int total;
    size_t subscale_count;
    int subscales[INSTRUMENT_MAX_SUBSCALES]; /* in the instrument's order */
    size_t band_count;
    const instrument_band_t *bands[INSTRUMENT_MAX_BANDS]; /* that apply, in order */
} instrument_score_t;

/* Loads every *.json file of dir (in name order). Returns a new registry
 * owned by the caller, or NULL with err filled: BC_NOT_FOUND when dir cannot
 * be opened, BC_PAYLOAD_TOO_LARGE for a file over INSTRUMENT_MAX_FILE_BYTES,
 * BC_RESOURCE_EXHAUSTED for more than INSTRUMENT_MAX_FILES files,
 * BC_ALREADY_EXISTS for two files with the same instrument id and
 * BC_INVALID_ARGUMENT for anything else wrong in a definition. */
instrument_registry_t *instrument_registry_load(const char *dir, bc_error_t *err);
/* Frees the registry and everything in it; *self_p is set to NULL. NULL
 * allowed. */
void instrument_registry_destroy(instrument_registry_t **self_p);
/* Number of instruments, and the i-th in id order (NULL when i is out of
 * range), for listing them. */
size_t instrument_registry_count(const instrument_registry_t *self);
const instrument_t *instrument_registry_at(const instrument_registry_t *self, size_t i);
/* The instrument with that id, or NULL. */
const instrument_t *instrument_find(const instrument_registry_t *self, const char *id);

/* Accessors for an API reply; strings are owned by the registry. Citation
 * and title are never NULL; instructions is "" when the file had none. */
const char *instrument_id(const instrument_t *self);
const char *instrument_version(const instrument_t *self);
const char *instrument_title(const instrument_t *self);
const char *instrument_citation(const instrument_t *self);
const char *instrument_instructions(const instrument_t *self);
/* Range of the total score (scoring.min .. scoring.max). */
int instrument_total_min(const instrument_t *self);
int instrument_total_max(const instrument_t *self);
/* The i-th item, scale point, subscale or band in file order; NULL when i
 * is out of range. */
size_t instrument_item_count(const instrument_t *self);
const instrument_item_t *instrument_item(const instrument_t *self, size_t i);
size_t instrument_scale_count(const instrument_t *self);
const instrument_scale_point_t *instrument_scale_point(const instrument_t *self, size_t i);
size_t instrument_subscale_count(const instrument_t *self);
const instrument_subscale_t *instrument_subscale(const instrument_t *self, size_t i);
size_t instrument_band_count(const instrument_t *self);
const instrument_band_t *instrument_band(const instrument_t *self, size_t i);

/* Scores a response set of n answers (answers may be NULL when n is 0).
 * Every item must be answered exactly once with a value of the scale.
 * Returns 0 and fills *out, or -1 with err filled (BC_INVALID_ARGUMENT):
 * field "answers[i].item_id" for an unknown or repeated item,
 * "answers[i].value" for a value outside the scale, "answers" naming the
 * first unanswered item. *out is left unspecified on error. */
int instrument_score(const instrument_t *self, const instrument_answer_t *answers, size_t n,
                     instrument_score_t *out, bc_error_t *err);

#endif
