/*  test_billing: billing's pure rules (services/scheduling/billing_rules.c)
 *  and the X12 837P writer (billing_x12.c), without a database.
 *
 *  Units: the CMS 8-minute rule (unit 15, first unit at 8, nearest) at every
 *  boundary, and the other roundings and unit lengths a state may choose.
 *  Text: every X12 separator and control character removed, case folded,
 *  spaces collapsed. NPI check digits against known NPIs. The writer's
 *  envelope: segment counts, HL numbering, a new ST after the configured
 *  number of claims, trailers that agree with what was written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/scheduling/billing.h" /* not on the include path */

static int s_units(int unit, int first, const char *rounding, int minutes)
{
    billing_unit_rule_t r = {unit, first, rounding};
    return billing_units(&r, minutes);
}

static void test_eight_minute_rule(void **state)
{
    (void)state;
    /* minutes -> units, CMS table: 8-22 one, 23-37 two, 38-52 three, 53-67 four. */
    static const int table[][2] = {{0, 0},  {1, 0},  {7, 0},  {8, 1},  {14, 1}, {15, 1},
                                   {22, 1}, {23, 2}, {30, 2}, {37, 2}, {38, 3}, {50, 3},
                                   {52, 3}, {53, 4}, {60, 4}, {67, 4}, {68, 5}, {480, 32}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int got = s_units(15, 8, "nearest", table[i][0]);
        if (got != table[i][1])
            fail_msg("%d minutes: %d units, expected %d", table[i][0], got, table[i][1]);
    }
    assert_int_equal(s_units(15, 8, "nearest", -5), 0);
}

static void test_other_unit_rules(void **state)
{
    (void)state;
    /* Whole units only ("down"), the first at 15 minutes. */
    assert_int_equal(s_units(15, 15, "down", 14), 0);
    assert_int_equal(s_units(15, 15, "down", 15), 1);
    assert_int_equal(s_units(15, 15, "down", 29), 1);
    assert_int_equal(s_units(15, 15, "down", 30), 2);
    /* Any part counts ("up"), a first unit at one minute. */
    assert_int_equal(s_units(15, 1, "up", 1), 1);
    assert_int_equal(s_units(15, 1, "up", 16), 2);
    assert_int_equal(s_units(15, 1, "up", 30), 2);
    /* The first unit at 8 even when rounding down would give none. */
    assert_int_equal(s_units(15, 8, "down", 8), 1);
    assert_int_equal(s_units(15, 8, "down", 44), 2);
    /* Hour units, half an hour or more counts. */
    assert_int_equal(s_units(60, 30, "nearest", 29), 0);
    assert_int_equal(s_units(60, 30, "nearest", 30), 1);
    assert_int_equal(s_units(60, 30, "nearest", 89), 1);
    assert_int_equal(s_units(60, 30, "nearest", 90), 2);
}

static void test_x12_text(void **state)
{
    (void)state;
    char out[64];
    billing_x12_text("O*Brien:Smith^Jr~", out, sizeof out);
    assert_string_equal(out, "O BRIEN SMITH JR");
    billing_x12_text("  ann\tmarie\r\n  ", out, sizeof out);
    assert_string_equal(out, "ANN MARIE");
    billing_x12_text("Zoë Ångström", out, sizeof out);
    assert_string_equal(out, "ZO NGSTR M");
    billing_x12_text("12 Main St, Apt #3 (rear) & 1/2", out, sizeof out);
    assert_string_equal(out, "12 MAIN ST, APT #3 (REAR) & 1/2");
    assert_int_equal(billing_x12_text("*~:^\\|", out, sizeof out), 0);
    assert_string_equal(out, "");
    /* Truncated at the buffer, still terminated. */
    assert_int_equal(billing_x12_text("abcdefgh", out, 5), 4);
    assert_string_equal(out, "ABCD");
    billing_x12_id("oh-12.34*5", out, sizeof out);
    assert_string_equal(out, "OH12345");
}

static void test_npi(void **state)
{
    (void)state;
    assert_true(billing_npi_valid("1234567893")); /* the CMS example */
    assert_true(billing_npi_valid("1245319599"));
    assert_false(billing_npi_valid("1234567890"));
    assert_false(billing_npi_valid("123456789"));
    assert_false(billing_npi_valid("12345678931"));
    assert_false(billing_npi_valid("12345A7893"));
    assert_false(billing_npi_valid(""));
    assert_false(billing_npi_valid(NULL));
}

static void test_icd10_and_amounts(void **state)
{
    (void)state;
    char code[8], amount[32];
    assert_true(billing_icd10_undot("F11.20", code));
    assert_string_equal(code, "F1120");
    assert_true(billing_icd10_undot("f10.239", code));
    assert_string_equal(code, "F10239");
    assert_true(billing_icd10_undot("Z71", code));
    assert_false(billing_icd10_undot("F1.120", code));
    assert_false(billing_icd10_undot("11.20", code));
    assert_false(billing_icd10_undot("F11*20", code));
    char *sud[] = {"F10", "F11", "F19"};
    assert_true(billing_dx_matches("F1120", sud, 3));
    assert_false(billing_dx_matches("F3210", sud, 3));
    assert_true(billing_dx_matches("F3210", NULL, 0));
    billing_amount(4575, amount);
    assert_string_equal(amount, "45.75");
    billing_amount(4570, amount);
    assert_string_equal(amount, "45.7");
    billing_amount(4500, amount);
    assert_string_equal(amount, "45");
    billing_amount(5, amount);
    assert_string_equal(amount, "0.05");
}

/* Splits text into segments (terminator ~, newlines ignored). */
static int s_segments(const char *text, char segs[][256], int max)
{
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        while (*p == '\n')
            p++;
        const char *end = strchr(p, '~');
        if (!end)
            break;
        snprintf(segs[n++], 256, "%.*s", (int)(end - p), p);
        p = end + 1;
    }
    return n;
}

static void test_x12_envelope(void **state)
{
    (void)state;
    billing_x12_envelope_t env = {
        .control_number = 42, .date8 = "20261207", .time4 = "1930", .reference = "ABC",
        .submitter_id = "SUB", .submitter_name = "AGENCY", .contact_name = "PAT",
        .contact_phone = "6145550100", .receiver_id = "RCV", .receiver_name = "PAYER",
        .provider_name = "AGENCY", .provider_npi = "1234567893", .provider_taxonomy = "261QR0405X",
        .provider_tax_id = "311234567", .provider_line1 = "1 MAIN", .provider_city = "COLUMBUS",
        .provider_state = "OH", .provider_postal = "432150001", .payer_name = "MEDICAID",
        .payer_id = "OHMCD", .claims_per_transaction = 2};
    billing_x12_t *w = billing_x12_new(&env);
    billing_x12_claim_t c = {.claim_id = "C1", .frequency = "1", .last = "DOE", .first = "JO",
                             .medicaid_id = "M1", .address = "2 ELM", .city = "COLUMBUS",
                             .state = "OH", .postal = "43215", .dob = "19800101", .sex = "U",
                             .place_of_service = "11", .diagnoses = {"F1120"}, .n_diagnoses = 1,
                             .procedure = "H0038", .modifiers = {"HQ"}, .n_modifiers = 1,
                             .units = 3, .charge_cents = 4575, .service_date = "20261102"};
    for (int i = 0; i < 3; i++)
        billing_x12_claim(w, &c);
    billing_x12_finish(w);
    size_t len;
    const char *text = billing_x12_pending(w, &len);
    static char segs[200][256];
    int n = s_segments(text, segs, 200);
    /* ISA is fixed width: 106 characters with its terminator. */
    assert_int_equal(strchr(text, '~') - text, 105);
    assert_string_equal(segs[n - 1], "IEA*1*000000042");
    assert_string_equal(segs[n - 2], "GE*2*42");
    /* Two transaction sets (2 claims, then 1), each SE counting ST..SE. */
    int st = -1, sets = 0, hl = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(segs[i], "ST*", 3)) {
            st = i;
            sets++;
            hl = 0;
        } else if (!strncmp(segs[i], "HL*", 3)) {
            int id = atoi(segs[i] + 3);
            assert_int_equal(id, ++hl);
        } else if (!strncmp(segs[i], "SE*", 3)) {
            char want[32];
            snprintf(want, sizeof want, "SE*%d*%04d", i - st + 1, sets);
            assert_string_equal(segs[i], want);
        }
    }
    assert_int_equal(sets, 2);
    assert_non_null(strstr(text, "SV1*HC:H0038:HQ*45.75*UN*3***1~"));
    assert_non_null(strstr(text, "CLM*C1*45.75***11:B:1*Y*A*Y*Y~"));
    assert_non_null(strstr(text, "HI*ABK:F1120~"));
    assert_int_equal(billing_x12_claims(w), 3);
    /* Taking the text empties the buffer; nothing is written twice. */
    billing_x12_take(w);
    billing_x12_pending(w, &len);
    assert_int_equal(len, 0);
    billing_x12_destroy(&w);
    assert_null(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_minute_rule), cmocka_unit_test(test_other_unit_rules),
        cmocka_unit_test(test_x12_text),          cmocka_unit_test(test_npi),
        cmocka_unit_test(test_icd10_and_amounts), cmocka_unit_test(test_x12_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
