/*  test_instrument: assessment instruments as data (services/intake/
 *  instrument.c), without a database.
 *
 *  The shipped directory (services/intake/instruments, relative to the
 *  repository root where tests/run.sh runs every test) is loaded once for
 *  the BARC-10 tests. Every other test writes its own definitions into a
 *  fresh temporary directory and removes it afterwards: a valid instrument
 *  with a reverse-scored item, subscales and subscale bands, and one
 *  malformed file per refusal, each of which must be refused with a message
 *  naming the file, the field and the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "bc_error.h"
#include "../../services/intake/instrument.h" /* not on the include path */

#define SHIPPED_DIR "services/intake/instruments"

/* ---- Helpers ------------------------------------------------------------ */

/* A new empty temporary directory (caller frees the path, s_rmdir removes). */
static char *s_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/beacon-instrument.XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

/* Removes dir, its files and its empty subdirectories; frees *dir_p. */
static void s_rmdir(char **dir_p)
{
    DIR *d = opendir(*dir_p);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", *dir_p, de->d_name);
        if (unlink(path) != 0)
            assert_int_equal(rmdir(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(*dir_p), 0);
    free(*dir_p);
    *dir_p = NULL;
}

static void s_write(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A definition of two items on a 1..3 scale with parts replaced: NULL takes
 * the valid default. extra is appended to the top-level object (",..."). */
static char *s_def(const char *scale, const char *items, const char *scoring, const char *extra)
{
    char *out = NULL;
    int n = asprintf(
        &out,
        "{\"id\": \"t\", \"version\": \"1\", \"title\": \"Test\", \"citation\": \"Test "
        "citation\",\n \"scale\": %s,\n \"items\": %s,\n \"scoring\": %s%s}\n",
        scale ? scale
              : "[{\"value\": 1, \"label\": \"No\"}, {\"value\": 2, \"label\": \"Maybe\"}, "
                "{\"value\": 3, \"label\": \"Yes\"}]",
        items ? items : "[{\"id\": \"a\", \"text\": \"A\"}, {\"id\": \"b\", \"text\": \"B\"}]",
        scoring ? scoring : "{\"method\": \"sum\", \"min\": 2, \"max\": 6}", extra ? extra : "");
    assert_true(n > 0);
    return out;
}

/* Loads a directory holding just bad.json (text) and expects it refused with
 * code, the error field equal to field and the message containing "bad.json",
 * field (when not "") and problem. */
static void s_expect_refused(const char *text, bc_code_t code, const char *field,
                             const char *problem)
{
    char *dir = s_tmpdir();
    s_write(dir, "bad.json", text);
    bc_error_t err = {0};
    instrument_registry_t *reg = instrument_registry_load(dir, &err);
    if (reg)
        fail_msg("accepted a definition that should fail with: %s", problem);
    assert_int_equal(err.code, code);
    assert_string_equal(err.field, field);
    if (!strstr(err.message, "bad.json") || (*field && !strstr(err.message, field)) ||
        !strstr(err.message, problem))
        fail_msg("message \"%s\" does not name bad.json, %s and \"%s\"", err.message, field,
                 problem);
    assert_non_null(strstr(err.detail, dir));
    s_rmdir(&dir);
}

static instrument_registry_t *s_shipped;

static int s_setup(void **state)
{
    (void)state;
    bc_error_t err = {0};
    s_shipped = instrument_registry_load(SHIPPED_DIR, &err);
    if (!s_shipped)
        fprintf(stderr, "loading %s: %s (%s)\n", SHIPPED_DIR, err.message, err.detail);
    return s_shipped ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    instrument_registry_destroy(&s_shipped);
    assert_null(s_shipped);
    return 0;
}

static const instrument_t *s_barc10(void)
{
    const instrument_t *ins = instrument_find(s_shipped, "barc10");
    assert_non_null(ins);
    return ins;
}

/* Scores BARC-10 with values[i] for item q(i+1). */
static int s_score_barc10(const int values[10], instrument_score_t *out, bc_error_t *err)
{
    static const char *const ids[10] = {"q1", "q2", "q3", "q4", "q5",
                                        "q6", "q7", "q8", "q9", "q10"};
    instrument_answer_t answers[10];
    for (int i = 0; i < 10; i++)
        answers[i] = (instrument_answer_t){.item_id = ids[i], .value = values[i]};
    return instrument_score(s_barc10(), answers, 10, out, err);
}

/* The id of the only band in s, or "" when none applies. */
static const char *s_band(const instrument_score_t *s)
{
    assert_true(s->band_count <= 1);
    return s->band_count ? s->bands[0]->id : "";
}

/* ---- BARC-10 ------------------------------------------------------------ */

static void test_barc10_shape(void **state)
{
    (void)state;
    const instrument_t *b = s_barc10();
    assert_ptr_equal(instrument_registry_at(s_shipped, 0), instrument_find(s_shipped, "barc10"));
    assert_null(instrument_find(s_shipped, "nope"));
    assert_null(instrument_find(s_shipped, NULL));
    assert_null(instrument_registry_at(s_shipped, instrument_registry_count(s_shipped)));
    assert_string_equal(instrument_id(b), "barc10");
    assert_non_null(strstr(instrument_title(b), "BARC-10"));
    assert_non_null(strstr(instrument_citation(b), "Vilsaint"));
    assert_non_null(strstr(instrument_citation(b), "Drug and Alcohol Dependence"));
    assert_true(strlen(instrument_version(b)) > 0);
    assert_true(strlen(instrument_instructions(b)) > 0);

    assert_int_equal(instrument_item_count(b), 10);
    for (size_t i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof id, "q%zu", i + 1);
        const instrument_item_t *item = instrument_item(b, i);
        assert_string_equal(item->id, id);
        assert_true(strlen(item->text) > 10);
        assert_false(item->reverse);
    }
    assert_null(instrument_item(b, 10));
    assert_string_equal(instrument_item(b, 0)->text,
                        "There are more important things to me in life than using substances.");

    assert_int_equal(instrument_scale_count(b), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(instrument_scale_point(b, i)->value, (int)i + 1);
    assert_string_equal(instrument_scale_point(b, 0)->label, "Strongly disagree");
    assert_string_equal(instrument_scale_point(b, 5)->label, "Strongly agree");
    assert_null(instrument_scale_point(b, 6));

    assert_int_equal(instrument_total_min(b), 10);
    assert_int_equal(instrument_total_max(b), 60);
    assert_int_equal(instrument_subscale_count(b), 0);
    assert_null(instrument_subscale(b, 0));
    assert_int_equal(instrument_band_count(b), 2);
    const instrument_band_t *cut = instrument_band(b, 1);
    assert_string_equal(cut->score, "total");
    assert_int_equal(cut->subscale, -1);
    assert_int_equal(cut->min, 47);
    assert_int_equal(cut->max, 60);
    assert_null(instrument_band(b, 2));
}

static void test_barc10_extremes(void **state)
{
    (void)state;
    instrument_score_t s;
    bc_error_t err = {0};
    const int ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int sixes[10] = {6, 6, 6, 6, 6, 6, 6, 6, 6, 6};
    assert_int_equal(s_score_barc10(ones, &s, &err), 0);
    assert_int_equal(s.total, 10);
    assert_int_equal(s.subscale_count, 0);
    assert_string_equal(s_band(&s), "below_cutoff");
    assert_int_equal(s_score_barc10(sixes, &s, &err), 0);
    assert_int_equal(s.total, 60);
    assert_string_equal(s_band(&s), "sustained_remission_cutoff");
}

static void test_barc10_mixed(void **state)
{
    (void)state;
    instrument_score_t s;
    bc_error_t err = {0};
    const int values[10] = {4, 5, 3, 6, 2, 5, 4, 6, 5, 3}; /* 43 */
    assert_int_equal(s_score_barc10(values, &s, &err), 0);
    assert_int_equal(s.total, 43);
    assert_string_equal(s_band(&s), "below_cutoff");

    /* Order of the answers does not matter. */
    instrument_answer_t rev[10];
    for (int i = 0; i < 10; i++) {
        const instrument_item_t *item = instrument_item(s_barc10(), (size_t)(9 - i));
        rev[i] = (instrument_answer_t){.item_id = item->id, .value = values[9 - i]};
    }
    instrument_score_t s2;
    assert_int_equal(instrument_score(s_barc10(), rev, 10, &s2, &err), 0);
    assert_int_equal(s2.total, 43);
}

static void test_barc10_cutoff(void **state)
{
    (void)state;
    instrument_score_t s;
    bc_error_t err = {0};
    const int v46[10] = {5, 5, 5, 5, 5, 5, 4, 4, 4, 4};
    const int v47[10] = {5, 5, 5, 5, 5, 5, 5, 4, 4, 4};
    assert_int_equal(s_score_barc10(v46, &s, &err), 0);
    assert_int_equal(s.total, 46);
    assert_string_equal(s_band(&s), "below_cutoff");
    assert_int_equal(s_score_barc10(v47, &s, &err), 0);
    assert_int_equal(s.total, 47);
    assert_string_equal(s_band(&s), "sustained_remission_cutoff");
    assert_non_null(strstr(s.bands[0]->label, "47"));
}

/* ---- Response sets refused ---------------------------------------------- */

static void s_expect_answers_refused(const instrument_answer_t *answers, size_t n,
                                     const char *field, const char *problem)
{
    instrument_score_t s;
    bc_error_t err = {0};
    assert_int_equal(instrument_score(s_barc10(), answers, n, &s, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.field, field);
    if (!strstr(err.message, problem))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, problem);
}

static void test_score_refusals(void **state)
{
    (void)state;
    instrument_answer_t a[12];
    static const char *const ids[10] = {"q1", "q2", "q3", "q4", "q5",
                                        "q6", "q7", "q8", "q9", "q10"};
    for (int i = 0; i < 10; i++)
        a[i] = (instrument_answer_t){.item_id = ids[i], .value = 3};

    /* Missing item (q10 left out), and nothing at all. */
    s_expect_answers_refused(a, 9, "answers", "item \"q10\" has no answer");
    s_expect_answers_refused(NULL, 0, "answers", "item \"q1\" has no answer");

    /* Unknown item, and an answer without an item id. */
    a[10] = (instrument_answer_t){.item_id = "q11", .value = 3};
    s_expect_answers_refused(a, 11, "answers[10].item_id", "no item \"q11\"");
    a[10] = (instrument_answer_t){.item_id = NULL, .value = 3};
    s_expect_answers_refused(a, 11, "answers[10].item_id", "no item");

    /* Duplicated item, also with the same value. */
    a[10] = (instrument_answer_t){.item_id = "q4", .value = 3};
    s_expect_answers_refused(a, 11, "answers[10].item_id", "item \"q4\" is answered twice");

    /* Values outside the scale, on either side. */
    a[2].value = 0;
    s_expect_answers_refused(a, 10, "answers[2].value",
                             "value 0 for item \"q3\" is outside the scale 1..6");
    a[2].value = 7;
    s_expect_answers_refused(a, 10, "answers[2].value", "outside the scale 1..6");
    a[2].value = -2147483647 - 1;
    s_expect_answers_refused(a, 10, "answers[2].value", "outside the scale");
    a[2].value = 3;

    /* The same set is fine once corrected. */
    instrument_score_t s;
    bc_error_t err = {0};
    assert_int_equal(instrument_score(s_barc10(), a, 10, &s, &err), 0);
    assert_int_equal(s.total, 30);
}

/* ---- A second instrument: reverse scoring and subscales ----------------- */

static const char s_demo[] =
    "{\n"
    "  \"id\": \"demo-wellbeing\",\n"
    "  \"version\": \"0.1\",\n"
    "  \"title\": \"Demo wellbeing check\",\n"
    "  \"citation\": \"Made up for Beacon's tests.\",\n"
    "  \"scale\": [\n"
    "    {\"value\": 0, \"label\": \"Never\"}, {\"value\": 1, \"label\": \"Rarely\"},\n"
    "    {\"value\": 2, \"label\": \"Sometimes\"}, {\"value\": 3, \"label\": \"Often\"},\n"
    "    {\"value\": 4, \"label\": \"Always\"}\n"
    "  ],\n"
    "  \"items\": [\n"
    "    {\"id\": \"sleep\", \"text\": \"I sleep well.\"},\n"
    "    {\"id\": \"cravings\", \"text\": \"I have cravings.\", \"reverse\": true},\n"
    "    {\"id\": \"friends\", \"text\": \"I see friends.\", \"reverse\": false},\n"
    "    {\"id\": \"meetings\", \"text\": \"I go to mutual-help meetings.\"}\n"
    "  ],\n"
    "  \"subscales\": [\n"
    "    {\"id\": \"body\", \"title\": \"Body\", \"items\": [\"sleep\", \"cravings\"]},\n"
    "    {\"id\": \"social\", \"title\": \"Social\", \"items\": [\"friends\", \"meetings\", "
    "\"cravings\"]}\n"
    "  ],\n"
    "  \"scoring\": {\"method\": \"sum\", \"min\": 0, \"max\": 16},\n"
    "  \"bands\": [\n"
    "    {\"id\": \"low\", \"score\": \"total\", \"min\": 0, \"max\": 7, \"label\": \"Low\"},\n"
    "    {\"id\": \"high\", \"score\": \"total\", \"min\": 8, \"max\": 16, \"label\": \"High\"},\n"
    "    {\"id\": \"social-strong\", \"score\": \"social\", \"min\": 9, \"max\": 12, "
    "\"label\": \"Strong social ties\"}\n"
    "  ]\n"
    "}\n";

static void test_reverse_and_subscales(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    s_write(dir, "demo.json", s_demo);
    s_write(dir, "README.txt", "not a definition");
    s_write(dir, ".hidden.json", "not even JSON");
    char barc10[16384];
    FILE *f = fopen(SHIPPED_DIR "/barc10.json", "r");
    assert_non_null(f);
    size_t len = fread(barc10, 1, sizeof barc10 - 1, f);
    fclose(f);
    barc10[len] = '\0';
    s_write(dir, "a-barc10.json", barc10);

    bc_error_t err = {0};
    instrument_registry_t *reg = instrument_registry_load(dir, &err);
    if (!reg)
        fail_msg("%s", err.message);
    assert_int_equal(instrument_registry_count(reg), 2);
    /* Listed in id order. */
    assert_string_equal(instrument_id(instrument_registry_at(reg, 0)), "barc10");
    assert_string_equal(instrument_id(instrument_registry_at(reg, 1)), "demo-wellbeing");

    const instrument_t *d = instrument_find(reg, "demo-wellbeing");
    assert_non_null(d);
    assert_string_equal(instrument_instructions(d), "");
    assert_true(instrument_item(d, 1)->reverse);
    assert_false(instrument_item(d, 2)->reverse);
    assert_int_equal(instrument_subscale_count(d), 2);
    const instrument_subscale_t *social = instrument_subscale(d, 1);
    assert_string_equal(social->id, "social");
    assert_int_equal(social->item_count, 3);
    assert_int_equal(social->items[2], 1);
    assert_int_equal(social->min, 0);
    assert_int_equal(social->max, 12);
    assert_int_equal(instrument_band(d, 2)->subscale, 1);

    /* cravings 1 reverses to 3: body 2+3 = 5, social 4+2+3 = 9, total 11. */
    instrument_answer_t a[] = {{"meetings", 2}, {"cravings", 1}, {"sleep", 2}, {"friends", 4}};
    instrument_score_t s;
    assert_int_equal(instrument_score(d, a, 4, &s, &err), 0);
    assert_int_equal(s.total, 11);
    assert_int_equal(s.subscale_count, 2);
    assert_int_equal(s.subscales[0], 5);
    assert_int_equal(s.subscales[1], 9);
    assert_int_equal(s.band_count, 2);
    assert_string_equal(s.bands[0]->id, "high");
    assert_string_equal(s.bands[1]->id, "social-strong");

    /* cravings 4 reverses to 0: body 2, social 6, total 8; no social band. */
    a[1].value = 4;
    assert_int_equal(instrument_score(d, a, 4, &s, &err), 0);
    assert_int_equal(s.total, 8);
    assert_int_equal(s.subscales[0], 2);
    assert_int_equal(s.subscales[1], 6);
    assert_int_equal(s.band_count, 1);
    assert_string_equal(s.bands[0]->id, "high");

    /* All zero: the reversed item counts 4. */
    instrument_answer_t z[] = {{"sleep", 0}, {"cravings", 0}, {"friends", 0}, {"meetings", 0}};
    assert_int_equal(instrument_score(d, z, 4, &s, &err), 0);
    assert_int_equal(s.total, 4);
    assert_string_equal(s.bands[0]->id, "low");

    instrument_registry_destroy(&reg);
    assert_null(reg);
    instrument_registry_destroy(&reg); /* NULL is fine */
    s_rmdir(&dir);
}

static void test_empty_directory(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    bc_error_t err = {0};
    instrument_registry_t *reg = instrument_registry_load(dir, &err);
    assert_non_null(reg);
    assert_int_equal(instrument_registry_count(reg), 0);
    assert_null(instrument_find(reg, "barc10"));
    instrument_registry_destroy(&reg);
    s_rmdir(&dir);
}

/* ---- Malformed definitions ---------------------------------------------- */

static void test_refuses_bad_json(void **state)
{
    (void)state;
    s_expect_refused("{\"id\": \"t\",", BC_INVALID_ARGUMENT, "", "invalid JSON at line");
    s_expect_refused("", BC_INVALID_ARGUMENT, "", "invalid JSON");
    s_expect_refused("[1, 2]", BC_INVALID_ARGUMENT, "", "must be a JSON object");
    /* A key twice is refused by the parser, not silently overwritten. */
    s_expect_refused("{\"id\": \"t\", \"id\": \"u\"}", BC_INVALID_ARGUMENT, "", "duplicate");
}

static void test_refuses_unknown_keys(void **state)
{
    (void)state;
    char *t = s_def(NULL, NULL, NULL, ", \"author\": \"me\"");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "author", "unknown key \"author\"");
    free(t);
    t = s_def(NULL, "[{\"id\": \"a\", \"text\": \"A\", \"weight\": 2}]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[0].weight", "unknown key \"weight\"");
    free(t);
    t = s_def(NULL, NULL, "{\"method\": \"sum\", \"min\": 2, \"max\": 6, \"mean\": true}", NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scoring.mean", "unknown key");
    free(t);
}

static void test_refuses_missing_and_wrong_types(void **state)
{
    (void)state;
    s_expect_refused("{\"id\": \"t\"}", BC_INVALID_ARGUMENT, "version", "is required");
    char *t = s_def(NULL,
                    "[{\"id\": \"a\", \"text\": \"A\", \"reverse\": 1}, "
                    "{\"id\": \"b\", \"text\": \"B\"}]",
                    NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[0].reverse", "must be true or false");
    free(t);
    t = s_def(NULL, "[{\"id\": \"A B\", \"text\": \"A\"}]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[0].id", "a-z, 0-9");
    free(t);
    t = s_def(NULL, "[{\"id\": \"a\", \"text\": \"\"}]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[0].text", "is required");
    free(t);
    t = s_def(NULL, "[{\"id\": \"a\", \"text\": \"line\\nbreak\"}]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[0].text", "control characters");
    free(t);
    t = s_def(NULL, "[{\"id\": \"a\", \"text\": \"nul\\u0000byte\"}]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "", "invalid JSON"); /* jansson refuses \u0000 */
    free(t);
    t = s_def(NULL, "[]", NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items", "at least 1");
    free(t);
    t = s_def(NULL, NULL, "{\"method\": \"mean\", \"min\": 2, \"max\": 6}", NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scoring.method", "only \"sum\"");
    free(t);
}

static void test_refuses_duplicate_item_id(void **state)
{
    (void)state;
    char *t = s_def(NULL,
                    "[{\"id\": \"a\", \"text\": \"A\"}, {\"id\": \"b\", \"text\": \"B\"}, "
                    "{\"id\": \"a\", \"text\": \"A again\"}]",
                    "{\"method\": \"sum\", \"min\": 3, \"max\": 9}", NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items[2].id", "duplicate item id \"a\"");
    free(t);
}

static void test_refuses_bad_scale(void **state)
{
    (void)state;
    /* A gap. */
    char *t = s_def("[{\"value\": 1, \"label\": \"No\"}, {\"value\": 2, \"label\": \"Maybe\"}, "
                    "{\"value\": 4, \"label\": \"Yes\"}]",
                    NULL, NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale[2].value", "contiguous ascending integers");
    free(t);
    /* Descending. */
    t = s_def("[{\"value\": 2, \"label\": \"Yes\"}, {\"value\": 1, \"label\": \"No\"}]", NULL, NULL,
              NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale[1].value", "contiguous ascending");
    free(t);
    /* Not an integer. */
    t = s_def("[{\"value\": 1, \"label\": \"No\"}, {\"value\": 1.5, \"label\": \"Yes\"}]", NULL,
              NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale[1].value", "must be an integer");
    free(t);
    /* A single point, and a value beyond the limit. */
    t = s_def("[{\"value\": 1, \"label\": \"Only\"}]", NULL, NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale", "at least 2");
    free(t);
    t = s_def("[{\"value\": 99999999999, \"label\": \"No\"}, {\"value\": 1, \"label\": \"Y\"}]",
              NULL, NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale[0].value", "must be between");
    free(t);
    /* A label missing. */
    t = s_def("[{\"value\": 1}, {\"value\": 2, \"label\": \"Yes\"}]", NULL, NULL, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scale[0].label", "is required");
    free(t);
}

static void test_refuses_inconsistent_total(void **state)
{
    (void)state;
    char *t = s_def(NULL, NULL, "{\"method\": \"sum\", \"min\": 0, \"max\": 6}", NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scoring.min",
                     "must be 2 (2 items x scale minimum 1)");
    free(t);
    t = s_def(NULL, NULL, "{\"method\": \"sum\", \"min\": 2, \"max\": 60}", NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "scoring.max",
                     "must be 6 (2 items x scale maximum 3)");
    free(t);
}

static void test_refuses_bad_subscales(void **state)
{
    (void)state;
    char *t = s_def(NULL, NULL, NULL,
                    ", \"subscales\": [{\"id\": \"s\", \"title\": \"S\", \"items\": [\"a\", "
                    "\"zz\"]}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "subscales[0].items[1]", "unknown item \"zz\"");
    free(t);
    t = s_def(NULL, NULL, NULL,
              ", \"subscales\": [{\"id\": \"s\", \"title\": \"S\", \"items\": [\"a\", \"a\"]}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "subscales[0].items[1]", "listed twice");
    free(t);
    t = s_def(NULL, NULL, NULL,
              ", \"subscales\": [{\"id\": \"s\", \"title\": \"S\", \"items\": [\"a\"]}, "
              "{\"id\": \"s\", \"title\": \"T\", \"items\": [\"b\"]}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "subscales[1].id", "duplicate subscale id \"s\"");
    free(t);
    t = s_def(NULL, NULL, NULL,
              ", \"subscales\": [{\"id\": \"total\", \"title\": \"S\", \"items\": [\"a\"]}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "subscales[0].id", "reserved");
    free(t);
}

static void test_refuses_bad_bands(void **state)
{
    (void)state;
    char *t = s_def(NULL, NULL, NULL,
                    ", \"bands\": [{\"id\": \"hi\", \"label\": \"High\", \"score\": \"total\", "
                    "\"min\": 5, \"max\": 7}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "bands[0].max", "must be between 2 and 6");
    free(t);
    t = s_def(NULL, NULL, NULL,
              ", \"bands\": [{\"id\": \"hi\", \"label\": \"High\", \"score\": \"mood\", "
              "\"min\": 5, \"max\": 6}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "bands[0].score", "subscale id, not \"mood\"");
    free(t);
    t = s_def(NULL, NULL, NULL,
              ", \"bands\": [{\"id\": \"hi\", \"label\": \"High\", \"score\": \"total\", "
              "\"min\": 6, \"max\": 5}]");
    s_expect_refused(t, BC_INVALID_ARGUMENT, "bands[0].min", "greater than max");
    free(t);
}

static void test_refuses_too_many_items(void **state)
{
    (void)state;
    size_t n = INSTRUMENT_MAX_ITEMS + 1, cap = n * 48 + 16, used = 0;
    char *items = malloc(cap);
    used += (size_t)snprintf(items + used, cap - used, "[");
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(items + used, cap - used, "%s{\"id\": \"i%zu\", \"text\": \"T\"}",
                                 i ? ", " : "", i);
    snprintf(items + used, cap - used, "]");
    char scoring[96];
    snprintf(scoring, sizeof scoring, "{\"method\": \"sum\", \"min\": %zu, \"max\": %zu}", n,
             3 * n);
    char *t = s_def(NULL, items, scoring, NULL);
    s_expect_refused(t, BC_INVALID_ARGUMENT, "items", "has 201 entries; at most 200");
    free(t);
    free(items);
}

static void test_refuses_oversized_file(void **state)
{
    (void)state;
    size_t n = INSTRUMENT_MAX_FILE_BYTES + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    s_expect_refused(big, BC_PAYLOAD_TOO_LARGE, "", "is larger than");
    free(big);
}

static void test_refuses_duplicate_instrument(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    char *t = s_def(NULL, NULL, NULL, NULL);
    s_write(dir, "one.json", t);
    s_write(dir, "two.json", t);
    free(t);
    bc_error_t err = {0};
    assert_null(instrument_registry_load(dir, &err));
    assert_int_equal(err.code, BC_ALREADY_EXISTS);
    assert_string_equal(err.field, "id");
    assert_string_equal(err.message,
                        "two.json: id: instrument \"t\" is already defined in one.json");
    s_rmdir(&dir);
}

static void test_refuses_unreadable(void **state)
{
    (void)state;
    bc_error_t err = {0};
    assert_null(instrument_registry_load("/nonexistent/beacon-instruments", &err));
    assert_int_equal(err.code, BC_NOT_FOUND);
    assert_non_null(strstr(err.message, "/nonexistent/beacon-instruments"));

    /* A directory (or a FIFO) named like a definition is not read. */
    char *dir = s_tmpdir();
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/sub.json", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(instrument_registry_load(dir, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.message, "sub.json: is not a regular file");
    assert_int_equal(rmdir(sub), 0);
    snprintf(sub, sizeof sub, "%s/pipe.json", dir);
    assert_int_equal(mkfifo(sub, 0600), 0);
    assert_null(instrument_registry_load(dir, &err));
    assert_string_equal(err.message, "pipe.json: is not a regular file");
    s_rmdir(&dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barc10_shape),
        cmocka_unit_test(test_barc10_extremes),
        cmocka_unit_test(test_barc10_mixed),
        cmocka_unit_test(test_barc10_cutoff),
        cmocka_unit_test(test_score_refusals),
        cmocka_unit_test(test_reverse_and_subscales),
        cmocka_unit_test(test_empty_directory),
        cmocka_unit_test(test_refuses_bad_json),
        cmocka_unit_test(test_refuses_unknown_keys),
        cmocka_unit_test(test_refuses_missing_and_wrong_types),
        cmocka_unit_test(test_refuses_duplicate_item_id),
        cmocka_unit_test(test_refuses_bad_scale),
        cmocka_unit_test(test_refuses_inconsistent_total),
        cmocka_unit_test(test_refuses_bad_subscales),
        cmocka_unit_test(test_refuses_bad_bands),
        cmocka_unit_test(test_refuses_too_many_items),
        cmocka_unit_test(test_refuses_oversized_file),
        cmocka_unit_test(test_refuses_duplicate_instrument),
        cmocka_unit_test(test_refuses_unreadable),
    };
    return cmocka_run_group_tests_name("instrument", tests, s_setup, s_teardown);
}
