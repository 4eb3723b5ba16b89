/*  Unit tests for bc_json: the JSON <-> protobuf converter, driven by the
 *  beacon.test messages in testmsg.proto. Every conversion into protobuf goes
 *  through a counting allocator, so a test fails if anything is allocated
 *  outside it or left behind on an error path (on top of LeakSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "bc_json.h"
#include "testmsg.pb-c.h"

#define PERSON (&beacon__test__person__descriptor)
#define SCALARS (&beacon__test__scalars__descriptor)
#define NODE (&beacon__test__node__descriptor)

/* ---------------------------------------------------------------------------
 * Helpers */

static long s_live; /* allocations made through s_counting and not yet freed */

static void *s_count_alloc(void *data, size_t size)
{
    (void)data;
    s_live++;
    return malloc(size);
}

static void s_count_free(void *data, void *ptr)
{
    (void)data;
    if (ptr)
        s_live--;
    free(ptr);
}

static ProtobufCAllocator s_counting = {s_count_alloc, s_count_free, NULL};

static int s_setup(void **state)
{
    (void)state;
    s_live = 0;
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    assert_int_equal(s_live, 0);
    return 0;
}

static json_t *s_load(const char *text)
{
    json_error_t error;
    json_t *json = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (!json)
        fail_msg("bad test JSON %s: %s", text, error.text);
    return json;
}

/* Converts text; fails the test if the conversion fails. */
static ProtobufCMessage *s_parse(const ProtobufCMessageDescriptor *desc, int flags,
                                 const char *text)
{
    json_t *json = s_load(text);
    bc_error_t err = {0};
    ProtobufCMessage *msg = bc_json_to_pb(json, desc, &s_counting, flags, &err);
    json_decref(json);
    if (!msg)
        fail_msg("%s: field '%s': %s", text, err.field, err.message);
    return msg;
}

static void s_free_msg(void *msg)
{
    protobuf_c_message_free_unpacked(msg, &s_counting);
}

/* Conversion of text must fail with exactly this field and message, and
 * leave nothing allocated. */
static void s_expect_error(const ProtobufCMessageDescriptor *desc, int flags, const char *text,
                           const char *field, const char *message)
{
    json_t *json = s_load(text);
    bc_error_t err = {0};
    ProtobufCMessage *msg = bc_json_to_pb(json, desc, &s_counting, flags, &err);
    json_decref(json);
    if (msg) {
        s_free_msg(msg);
        fail_msg("%s: converted, expected error '%s'", text, message);
    }
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.field, field);
    assert_string_equal(err.message, message);
    assert_int_equal(s_live, 0);
}

/* JSON of msg must equal expected (compared as JSON values). */
static void s_expect_json(const void *msg, int flags, const char *expected)
{
    bc_error_t err = {0};
    json_t *out = bc_pb_to_json(msg, flags, &err);
    if (!out)
        fail_msg("to_json failed: field '%s': %s", err.field, err.message);
    json_t *want = s_load(expected);
    char *got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    int equal = json_equal(out, want);
    json_decref(out);
    json_decref(want);
    if (!equal) {
        print_error("got      %s\nexpected %s\n", got, expected);
        free(got);
        fail();
    }
    free(got);
}

/* text -> protobuf -> JSON must give expected (NULL: text itself). */
static void s_round_trip(const ProtobufCMessageDescriptor *desc, int flags, const char *text,
                         const char *expected)
{
    ProtobufCMessage *msg = s_parse(desc, flags, text);
    s_expect_json(msg, 0, expected ? expected : text);
    s_free_msg(msg);
}

/* ---------------------------------------------------------------------------
 * Values of every type */

static void test_scalars_all_types(void **state)
{
    (void)state;
    Beacon__Test__Scalars *s = (Beacon__Test__Scalars *)s_parse(
        SCALARS, 0,
        "{\"i32\": -5, \"i64\": -6000000000, \"u32\": 4000000000, \"u64\": 7, \"s32\": -8,"
        " \"s64\": \"-9\", \"f32\": 10, \"f64\": \"11\", \"sf32\": -12, \"sf64\": -13,"
        " \"fl\": 1.5, \"db\": -2.25, \"b\": true, \"str\": \"h\\u00e9llo\","
        " \"by\": \"AAH/\", \"status\": \"INACTIVE\"}");
    assert_int_equal(s->i32, -5);
    assert_true(s->i64 == INT64_C(-6000000000));
    assert_true(s->u32 == 4000000000u);
    assert_true(s->u64 == 7);
    assert_int_equal(s->s32, -8);
    assert_true(s->s64 == -9);
    assert_true(s->f32 == 10);
    assert_true(s->f64 == 11);
    assert_int_equal(s->sf32, -12);
    assert_true(s->sf64 == -13);
    assert_true(s->fl == 1.5f);
    assert_true(s->db == -2.25);
    assert_int_equal(s->b, 1);
    assert_string_equal(s->str, "h\xc3\xa9llo");
    assert_int_equal(s->by.len, 3);
    assert_memory_equal(s->by.data, "\x00\x01\xff", 3);
    assert_int_equal(s->status, BEACON__TEST__STATUS__INACTIVE);
    s_free_msg(s);
}

static void test_scalars_round_trip(void **state)
{
    (void)state;
    s_round_trip(SCALARS, 0,
                 "{\"i32\": -5, \"i64\": -6000000000, \"u32\": 4000000000, \"u64\": 7,"
                 " \"s32\": -8, \"s64\": -9, \"f32\": 10, \"f64\": 11, \"sf32\": -12,"
                 " \"sf64\": -13, \"fl\": 1.5, \"db\": -2.25, \"b\": true, \"str\": \"x\","
                 " \"by\": \"AAH/\", \"status\": \"ACTIVE\"}",
                 NULL);
}

static void test_int32_family_limits(void **state)
{
    (void)state;
    const char *names[] = {"i32", "s32", "sf32"};
    for (size_t i = 0; i < 3; i++) {
        char text[128], field[16], message[64];
        snprintf(text, sizeof text, "{\"%s\": 2147483647}", names[i]);
        s_round_trip(SCALARS, 0, text, NULL);
        snprintf(text, sizeof text, "{\"%s\": -2147483648}", names[i]);
        s_round_trip(SCALARS, 0, text, NULL);
        snprintf(field, sizeof field, "%s", names[i]);
        snprintf(message, sizeof message, "value out of range for %s",
                 i == 0   ? "int32"
                 : i == 1 ? "sint32"
                          : "sfixed32");
        snprintf(text, sizeof text, "{\"%s\": 2147483648}", names[i]);
        s_expect_error(SCALARS, 0, text, field, message);
        snprintf(text, sizeof text, "{\"%s\": -2147483649}", names[i]);
        s_expect_error(SCALARS, 0, text, field, message);
    }
}

static void test_uint32_family_limits(void **state)
{
    (void)state;
    s_round_trip(SCALARS, 0, "{\"u32\": 4294967295, \"f32\": 4294967295}", NULL);
    s_expect_error(SCALARS, 0, "{\"u32\": 4294967296}", "u32", "value out of range for uint32");
    s_expect_error(SCALARS, 0, "{\"f32\": 4294967296}", "f32", "value out of range for fixed32");
}

static void test_uint_rejects_negative(void **state)
{
    (void)state;
    s_expect_error(SCALARS, 0, "{\"u32\": -1}", "u32", "value out of range for uint32");
    s_expect_error(SCALARS, 0, "{\"f32\": -1}", "f32", "value out of range for fixed32");
    s_expect_error(SCALARS, 0, "{\"u64\": -1}", "u64", "value out of range for uint64");
    s_expect_error(SCALARS, 0, "{\"u64\": \"-1\"}", "u64", "value out of range for uint64");
    s_expect_error(SCALARS, 0, "{\"f64\": \"-18446744073709551615\"}", "f64",
                   "value out of range for fixed64");
    /* minus zero is zero */
    Beacon__Test__Scalars *s = (Beacon__Test__Scalars *)s_parse(SCALARS, 0, "{\"u64\": \"-0\"}");
    assert_true(s->u64 == 0);
    s_free_msg(s);
}

static void test_int64_strings(void **state)
{
    (void)state;
    Beacon__Test__Scalars *s = (Beacon__Test__Scalars *)s_parse(
        SCALARS, 0,
        "{\"i64\": \"-9223372036854775808\", \"s64\": \"9223372036854775807\","
        " \"sf64\": -9223372036854775808, \"u64\": \"18446744073709551615\","
        " \"f64\": \"00012\"}");
    assert_true(s->i64 == INT64_MIN);
    assert_true(s->s64 == INT64_MAX);
    assert_true(s->sf64 == INT64_MIN);
    assert_true(s->u64 == UINT64_MAX);
    assert_true(s->f64 == 12);
    s_free_msg(s);
    s_expect_error(SCALARS, 0, "{\"i64\": \"9223372036854775808\"}", "i64",
                   "value out of range for int64");
    s_expect_error(SCALARS, 0, "{\"i64\": \"-9223372036854775809\"}", "i64",
                   "value out of range for int64");
    s_expect_error(SCALARS, 0, "{\"u64\": \"18446744073709551616\"}", "u64",
                   "value out of range for uint64");
    s_expect_error(SCALARS, 0, "{\"u64\": \"99999999999999999999999\"}", "u64",
                   "value out of range for uint64");
}

static void test_int64_string_syntax(void **state)
{
    (void)state;
    const char *bad[] = {"\"\"",   "\"-\"",   "\"12a\"", "\" 1\"",   "\"1 \"",
                         "\"+1\"", "\"1.0\"", "\"1e3\"", "\"0x10\"", "\"1\\u00002\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"i64\": %s}", bad[i]);
        s_expect_error(SCALARS, 0, text, "i64", "expected an integer");
    }
}

static void test_int64_output_beyond_2_53_is_string(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.i64 = INT64_C(9007199254740992);
    s.s64 = -INT64_C(9007199254740992);
    s.sf64 = INT64_C(9007199254740993);
    s.u64 = UINT64_C(9007199254740992);
    s.f64 = UINT64_MAX;
    s_expect_json(&s, 0,
                  "{\"i64\": 9007199254740992, \"s64\": -9007199254740992,"
                  " \"sf64\": \"9007199254740993\", \"u64\": 9007199254740992,"
                  " \"f64\": \"18446744073709551615\"}");
    s.i64 = INT64_MIN;
    s.s64 = -INT64_C(9007199254740993);
    s_expect_json(&s, 0,
                  "{\"i64\": \"-9223372036854775808\", \"s64\": \"-9007199254740993\","
                  " \"sf64\": \"9007199254740993\", \"u64\": 9007199254740992,"
                  " \"f64\": \"18446744073709551615\"}");
}

static void test_int_rejects_real(void **state)
{
    (void)state;
    s_expect_error(SCALARS, 0, "{\"i32\": 1.5}", "i32", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"i32\": 1.0}", "i32", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"u64\": 1e3}", "u64", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"i64\": 2.5}", "i64", "expected an integer");
}

static void test_int_wrong_types(void **state)
{
    (void)state;
    s_expect_error(SCALARS, 0, "{\"i32\": \"42\"}", "i32", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"u32\": true}", "u32", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"s32\": [1]}", "s32", "expected an integer");
    s_expect_error(SCALARS, 0, "{\"sf64\": {}}", "sf64", "expected an integer");
}

static void test_float_and_double(void **state)
{
    (void)state;
    Beacon__Test__Scalars *s =
        (Beacon__Test__Scalars *)s_parse(SCALARS, 0, "{\"fl\": 3, \"db\": 1e308}");
    assert_true(s->fl == 3.0f);
    assert_true(s->db == 1e308);
    s_free_msg(s);
    s_expect_error(SCALARS, 0, "{\"fl\": 1e39}", "fl", "value out of range for float");
    s_expect_error(SCALARS, 0, "{\"fl\": \"1.5\"}", "fl", "expected a number");
    s_expect_error(SCALARS, 0, "{\"db\": true}", "db", "expected a number");
    s_expect_error(SCALARS, 0, "{\"db\": \"NaN\"}", "db", "expected a number");
}

static void test_float_output_is_shortest(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.fl = 0.1f;
    s.db = 0.1;
    json_t *out = bc_pb_to_json(&s.base, 0, NULL);
    assert_non_null(out);
    assert_true(json_real_value(json_object_get(out, "fl")) == 0.1);
    assert_true(json_real_value(json_object_get(out, "db")) == 0.1);
    json_decref(out);
    /* FLT_MAX comes out as its shortest form, which reads back as FLT_MAX */
    s_round_trip(SCALARS, 0, "{\"fl\": 3.4028234663852886e38, \"db\": 5e-324}",
                 "{\"fl\": 3.4028235e38, \"db\": 5e-324}");
    s_round_trip(SCALARS, 0, "{\"fl\": 3.4028235e38}", NULL);
    s_round_trip(SCALARS, 0, "{\"fl\": -1e-45}", "{\"fl\": -1e-45}");
    s_expect_error(SCALARS, 0, "{\"fl\": 3.4028236e38}", "fl", "value out of range for float");
    /* exactly halfway between FLT_MAX and the next power: rounds to infinity */
    s_expect_error(SCALARS, 0, "{\"fl\": 3.4028235677973366e38}", "fl",
                   "value out of range for float");
    s_round_trip(SCALARS, 0, "{\"fl\": -3.4028235677973362e38}", "{\"fl\": -3.4028235e38}");
}

static void test_negative_zero_is_not_default(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.fl = -0.0f;
    s.db = -0.0;
    json_t *out = bc_pb_to_json(&s.base, 0, NULL);
    assert_non_null(out);
    assert_int_equal(json_object_size(out), 2);
    assert_true(signbit(json_real_value(json_object_get(out, "fl"))));
    assert_true(signbit(json_real_value(json_object_get(out, "db"))));
    json_decref(out);
}

static void test_non_finite_output(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.fl = NAN;
    s.db = -INFINITY;
    s_expect_json(&s, 0, "{\"fl\": \"NaN\", \"db\": \"-Infinity\"}");
    s.db = INFINITY;
    s_expect_json(&s, 0, "{\"fl\": \"NaN\", \"db\": \"Infinity\"}");
}

static void test_bool(void **state)
{
    (void)state;
    s_round_trip(SCALARS, 0, "{\"b\": true}", NULL);
    s_round_trip(SCALARS, 0, "{\"b\": false}", "{}");
    s_expect_error(SCALARS, 0, "{\"b\": 1}", "b", "expected true or false");
    s_expect_error(SCALARS, 0, "{\"b\": \"true\"}", "b", "expected true or false");
}

static void test_enum(void **state)
{
    (void)state;
    s_round_trip(SCALARS, 0, "{\"status\": \"ACTIVE\"}", NULL);
    s_round_trip(SCALARS, 0, "{\"status\": \"STATUS_UNSPECIFIED\"}", "{}");
    const char *message = "expected one of STATUS_UNSPECIFIED, ACTIVE, INACTIVE";
    s_expect_error(SCALARS, 0, "{\"status\": \"active\"}", "status", message);
    s_expect_error(SCALARS, 0, "{\"status\": \"BOGUS\"}", "status", message);
    s_expect_error(SCALARS, 0, "{\"status\": 1}", "status", message);
    s_expect_error(SCALARS, BC_JSON_STRINGS, "{\"status\": \"1\"}", "status", message);
    s_expect_error(SCALARS, 0, "{\"status\": \"ACTIVE\\u0000X\"}", "status", message);
}

static void test_enum_long_list_truncated(void **state)
{
    (void)state;
    s_expect_error(SCALARS, 0, "{\"long_name\": \"X\"}", "long_name",
                   "expected one of LONG_NAMES_UNSPECIFIED, LONG_NAMES_VALUE_NUMBER_ONE,"
                   " LONG_NAMES_VALUE_NUMBER_TWO, LONG_NAMES_VALUE_NUMBER_THREE,"
                   " LONG_NAMES_VALUE_NUMBER_FOUR, LONG_NAMES_VALUE_NUMBER_FIVE, ...");
    s_round_trip(SCALARS, 0, "{\"long_name\": \"LONG_NAMES_VALUE_NUMBER_EIGHT\"}", NULL);
}

static void test_enum_unknown_value_written_as_number(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.status = 7;
    s_expect_json(&s, 0, "{\"status\": 7}");
}

static void test_string(void **state)
{
    (void)state;
    s_round_trip(SCALARS, 0, "{\"str\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\"}", NULL);
    s_expect_error(SCALARS, 0, "{\"str\": 5}", "str", "expected a string");
    s_expect_error(SCALARS, 0, "{\"str\": false}", "str", "expected a string");
    s_expect_error(SCALARS, 0, "{\"str\": \"a\\u0000b\"}", "str",
                   "must not contain NUL characters");
}

static void test_string_invalid_utf8_output(void **state)
{
    (void)state;
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    p.name = "bad \xff";
    bc_error_t err = {0};
    assert_null(bc_pb_to_json(&p.base, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(err.field, "name");
    assert_string_equal(err.message, "string is not valid UTF-8");
}

/* The text writer against jansson's own encoder: the same escapes, UTF-8
 * passed through, and every ill-formed sequence refused (overlong forms,
 * surrogates, beyond U+10FFFF, truncated, stray continuation bytes). */
static void test_text_strings_match_jansson(void **state)
{
    (void)state;
    static const char *const good[] = {
        "", "plain", "q\"uote", "back\\slash", "\b\f\n\r\t", "\x01\x1f\x7f", "caf\xc3\xa9",
        "\xe2\x82\xac 20", "\xf0\x9f\x98\x80", "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "a/b</script>"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
        p.name = (char *)good[i];
        size_t len = 0;
        char *text = bc_pb_to_json_text(&p.base, BC_JSON_EMIT_DEFAULTS, &len, NULL);
        assert_non_null(text);
        assert_int_equal(len, strlen(text));
        json_t *name = json_string(good[i]);
        char *want = json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT);
        char prefix[600];
        snprintf(prefix, sizeof prefix, "{\"name\":%s,", want);
        if (strncmp(text, prefix, strlen(prefix)) != 0)
            fail_msg("case %zu: got %s, expected it to start with %s", i, text, prefix);
        free(want);
        json_decref(name);
        free(text);
    }
    static const char *const bad[] = {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                                      "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                      "\xe2\x82", "ok\x80", "\xc3(", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
        p.name = (char *)bad[i];
        bc_error_t err = {0};
        char *text = bc_pb_to_json_text(&p.base, 0, NULL, &err);
        if (text)
            fail_msg("case %zu: written as %s", i, text);
        assert_string_equal(err.field, "name");
        assert_string_equal(err.message, "string is not valid UTF-8");
        assert_null(json_string(bad[i])); /* jansson agrees */
    }
}

/* Numbers as text: integers beyond 2^53 as strings, reals always with a
 * '.' or an exponent (so they read back as reals), non-finite as strings. */
static void test_text_numbers(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s.db = 3.0;
    s.fl = -0.0f;
    char *text = bc_pb_to_json_text(&s.base, 0, NULL, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"db\":3.0"));
    assert_non_null(strstr(text, "\"fl\":-0.0"));
    free(text);
    s.db = 1e300;
    s.fl = NAN;
    text = bc_pb_to_json_text(&s.base, 0, NULL, NULL);
    assert_non_null(strstr(text, "\"db\":1e+300"));
    assert_non_null(strstr(text, "\"fl\":\"NaN\""));
    free(text);
    Beacon__Test__Scalars n = BEACON__TEST__SCALARS__INIT;
    n.i32 = INT32_MIN;
    n.i64 = INT64_MIN;
    n.u32 = UINT32_MAX;
    n.u64 = UINT64_MAX;
    n.s64 = -(INT64_C(1) << 53);
    n.sf64 = (INT64_C(1) << 53) + 1;
    text = bc_pb_to_json_text(&n.base, 0, NULL, NULL);
    assert_non_null(text);
    assert_string_equal(text, "{\"i32\":-2147483648,\"i64\":\"-9223372036854775808\","
                              "\"u32\":4294967295,\"u64\":\"18446744073709551615\","
                              "\"s64\":-9007199254740992,\"sf64\":\"9007199254740993\"}");
    free(text);
}

static void test_bytes(void **state)
{
    (void)state;
    Beacon__Test__Scalars *s =
        (Beacon__Test__Scalars *)s_parse(SCALARS, 0, "{\"by\": \"aGVsbG8=\"}");
    assert_int_equal(s->by.len, 5);
    assert_memory_equal(s->by.data, "hello", 5);
    s_free_msg(s);
    s = (Beacon__Test__Scalars *)s_parse(SCALARS, 0, "{\"by\": \"\"}");
    assert_int_equal(s->by.len, 0);
    s_free_msg(s);
    s_round_trip(PERSON, 0, "{\"blobs\": [\"/w==\", \"//8=\", \"////\", \"AAAAAA==\", \"+/+/\"]}",
                 NULL);
}

static void test_bytes_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "aGVsbG8", "aGVsbG8==",   "aGVs bG8=", "aGVsbG9=", "====", "aG=s", "a===",
        "-_-_",    "aGVsbG8=\\n", "QR==",      "AAC=",     "AI==", "QQ=A", "\\u0000AAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"by\": \"%s\"}", bad[i]);
        s_expect_error(SCALARS, 0, text, "by", "invalid base64 (standard alphabet, padded)");
    }
    s_expect_error(SCALARS, 0, "{\"by\": 5}", "by", "expected a base64 string");
    s_expect_error(PERSON, 0, "{\"blobs\": [\"AA==\", \"A\"]}", "blobs[1]",
                   "invalid base64 (standard alphabet, padded)");
}

/* ---------------------------------------------------------------------------
 * Messages, repeated fields, oneofs, null */

static void test_nested_and_repeated_round_trip(void **state)
{
    (void)state;
    s_round_trip(PERSON, 0,
                 "{\"name\": \"Ann\", \"address\": {\"city\": \"Oslo\", \"lines\": [\"a\", \"b\"],"
                 " \"zip\": 150}, \"addresses\": [{\"city\": \"X\"}, {}, {\"zip\": 1}],"
                 " \"scores\": [1, -2, 3], \"tags\": [\"t\", \"\"],"
                 " \"statuses\": [\"ACTIVE\", \"STATUS_UNSPECIFIED\"],"
                 " \"weights\": [0.5, -1.5], \"flags\": [true, false],"
                 " \"big\": [1, \"9223372036854775807\"], \"email\": \"a@b.c\","
                 " \"scalars\": {\"i32\": 1}}",
                 NULL);
}

static void test_repeated_values_in_c(void **state)
{
    (void)state;
    Beacon__Test__Person *p = (Beacon__Test__Person *)s_parse(
        PERSON, 0, "{\"scores\": [7, 8], \"tags\": [\"x\"], \"addresses\": [{\"city\": \"Y\"}]}");
    assert_int_equal(p->n_scores, 2);
    assert_int_equal(p->scores[0], 7);
    assert_int_equal(p->scores[1], 8);
    assert_int_equal(p->n_tags, 1);
    assert_string_equal(p->tags[0], "x");
    assert_int_equal(p->n_addresses, 1);
    assert_string_equal(p->addresses[0]->city, "Y");
    assert_null(p->address);
    s_free_msg(p);
}

static void test_empty_arrays(void **state)
{
    (void)state;
    Beacon__Test__Person *p =
        (Beacon__Test__Person *)s_parse(PERSON, 0, "{\"scores\": [], \"addresses\": []}");
    assert_int_equal(p->n_scores, 0);
    assert_null(p->scores);
    assert_int_equal(p->n_addresses, 0);
    s_expect_json(p, 0, "{}");
    s_free_msg(p);
}

static void test_unknown_field(void **state)
{
    (void)state;
    s_expect_error(PERSON, 0, "{\"name\": \"a\", \"nope\": 1}", "nope", "unknown field");
    s_expect_error(PERSON, 0, "{\"address\": {\"town\": \"x\"}}", "address.town", "unknown field");
    s_expect_error(PERSON, 0, "{\"Name\": \"a\"}", "Name", "unknown field");
    s_expect_error(PERSON, 0, "{\"nope\": null}", "nope", "unknown field");
    /* the parser refuses NUL in keys, but a key built by code may hold one */
    json_t *json = json_object();
    json_object_setn_new(json, "name\0x", 6, json_string("a"));
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(json, PERSON, &s_counting, 0, &err));
    assert_string_equal(err.field, "name");
    assert_string_equal(err.message, "unknown field");
    json_decref(json);
}

static void test_top_level_must_be_object(void **state)
{
    (void)state;
    const char *bad[] = {"[]", "\"x\"", "1", "null", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_expect_error(PERSON, 0, bad[i], "", "expected a JSON object");
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(NULL, PERSON, NULL, 0, &err));
    assert_string_equal(err.message, "expected a JSON object");
}

static void test_container_wrong_types(void **state)
{
    (void)state;
    s_expect_error(PERSON, 0, "{\"address\": \"x\"}", "address", "expected an object");
    s_expect_error(PERSON, 0, "{\"address\": []}", "address", "expected an object");
    s_expect_error(PERSON, 0, "{\"scores\": 5}", "scores", "expected an array");
    s_expect_error(PERSON, 0, "{\"tags\": {}}", "tags", "expected an array");
    s_expect_error(PERSON, 0, "{\"addresses\": [5]}", "addresses[0]", "expected an object");
    s_expect_error(PERSON, 0, "{\"statuses\": [\"ACTIVE\", \"NO\"]}", "statuses[1]",
                   "expected one of STATUS_UNSPECIFIED, ACTIVE, INACTIVE");
    s_expect_error(PERSON, 0, "{\"flags\": [true, 0]}", "flags[1]", "expected true or false");
    s_expect_error(PERSON, 0, "{\"weights\": [\"1\"]}", "weights[0]", "expected a number");
    s_expect_error(PERSON, 0, "{\"big\": [1, 2.5]}", "big[1]", "expected an integer");
}

static void test_nested_error_path(void **state)
{
    (void)state;
    s_expect_error(PERSON, 0,
                   "{\"name\": \"a\", \"addresses\": [{\"city\": \"a\"},"
                   " {\"lines\": [\"x\", 5]}]}",
                   "addresses[1].lines[1]", "expected a string");
    s_expect_error(PERSON, 0, "{\"address\": {\"city\": 3}}", "address.city", "expected a string");
    s_expect_error(PERSON, 0, "{\"scalars\": {\"i32\": 2147483648}}", "scalars.i32",
                   "value out of range for int32");
    s_expect_error(PERSON, 0, "{\"postal\": {\"zip\": \"1\"}}", "postal.zip",
                   "expected an integer");
}

static void test_null_means_absent(void **state)
{
    (void)state;
    Beacon__Test__Person *p = (Beacon__Test__Person *)s_parse(
        PERSON, 0,
        "{\"name\": null, \"address\": null, \"scores\": null, \"email\": null,"
        " \"phone\": \"123\"}");
    assert_string_equal(p->name, "");
    assert_null(p->address);
    assert_int_equal(p->n_scores, 0);
    assert_int_equal(p->contact_case, BEACON__TEST__PERSON__CONTACT_PHONE);
    assert_string_equal(p->phone, "123");
    s_free_msg(p);
    s_expect_error(PERSON, 0, "{\"scores\": [1, null]}", "scores[1]", "expected an integer");
    s_expect_error(PERSON, 0, "{\"addresses\": [null]}", "addresses[0]", "expected an object");
}

static void test_oneof(void **state)
{
    (void)state;
    Beacon__Test__Person *p =
        (Beacon__Test__Person *)s_parse(PERSON, 0, "{\"postal\": {\"city\": \"Rome\"}}");
    assert_int_equal(p->contact_case, BEACON__TEST__PERSON__CONTACT_POSTAL);
    assert_string_equal(p->postal->city, "Rome");
    s_expect_json(p, 0, "{\"postal\": {\"city\": \"Rome\"}}");
    s_free_msg(p);
    /* a set member is written even at its default value */
    s_round_trip(PERSON, 0, "{\"email\": \"\"}", NULL);
}

static void test_oneof_two_members(void **state)
{
    (void)state;
    const char *message = "only one of email, phone, postal may be set";
    s_expect_error(PERSON, 0, "{\"email\": \"a\", \"phone\": \"b\"}", "phone", message);
    s_expect_error(PERSON, 0, "{\"postal\": {\"city\": \"c\"}, \"email\": \"a\"}", "email",
                   message);
    s_expect_error(PERSON, 0, "{\"email\": \"a\", \"postal\": {}}", "postal", message);
}

/* ---------------------------------------------------------------------------
 * Depth */

/* {"child": {"child": ... {"name": "leaf"}}} with levels objects. */
static char *s_chain(int levels, const char *key, int in_array)
{
    size_t size = (size_t)levels * 20 + 32;
    char *text = malloc(size);
    assert_non_null(text);
    text[0] = '\0';
    for (int i = 1; i < levels; i++) {
        strcat(text, "{\"");
        strcat(text, key);
        strcat(text, in_array ? "\": [" : "\": ");
    }
    strcat(text, "{\"name\": \"leaf\"}");
    for (int i = 1; i < levels; i++)
        strcat(text, in_array ? "]}" : "}");
    return text;
}

static void test_depth_limit_objects(void **state)
{
    (void)state;
    char *text = s_chain(BC_JSON_MAX_DEPTH, "child", 0);
    Beacon__Test__Node *n = (Beacon__Test__Node *)s_parse(NODE, 0, text);
    s_expect_json(n, 0, text);
    s_free_msg(n);
    free(text);

    text = s_chain(BC_JSON_MAX_DEPTH + 1, "child", 0);
    json_t *json = s_load(text);
    assert_int_equal(bc_json_depth(json, BC_JSON_MAX_DEPTH), BC_JSON_MAX_DEPTH + 1);
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(json, NODE, &s_counting, 0, &err));
    assert_int_equal(s_live, 0);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.message, "nesting deeper than 32 levels");
    /* "child.child...": 32 names, truncated to the field buffer */
    assert_int_equal(strlen(err.field), sizeof err.field - 1);
    assert_memory_equal(err.field, "child.child.child.", 18);
    json_decref(json);
    free(text);
}

static void test_depth_limit_arrays(void **state)
{
    (void)state;
    /* each level adds an array and an object: 1 + 2 * 15 = 31 levels */
    char *text = s_chain(16, "children", 1);
    s_round_trip(NODE, 0, text, NULL);
    free(text);
    text = s_chain(17, "children", 1);
    json_t *json = s_load(text);
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(json, NODE, &s_counting, 0, &err));
    assert_int_equal(s_live, 0);
    assert_string_equal(err.message, "nesting deeper than 32 levels");
    assert_memory_equal(err.field, "children[0].children[0].", 24);
    json_decref(json);
    free(text);
}

static void test_depth_limit_scalar_array(void **state)
{
    (void)state;
    char *text = s_chain(BC_JSON_MAX_DEPTH, "child", 0);
    /* the innermost object at level 32 gets an array: level 33 */
    char *leaf = strstr(text, "{\"name\": \"leaf\"}");
    char *deep = malloc(strlen(text) + 32);
    assert_non_null(deep);
    snprintf(deep, strlen(text) + 32, "%.*s{\"children\": []}%s", (int)(leaf - text), text,
             leaf + strlen("{\"name\": \"leaf\"}"));
    json_t *json = s_load(deep);
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(json, NODE, &s_counting, 0, &err));
    assert_string_equal(err.message, "nesting deeper than 32 levels");
    json_decref(json);
    free(deep);
    free(text);
}

static void test_depth_output_limit(void **state)
{
    (void)state;
    Beacon__Test__Node nodes[BC_JSON_MAX_DEPTH + 1];
    for (int i = 0; i <= BC_JSON_MAX_DEPTH; i++) {
        beacon__test__node__init(&nodes[i]);
        nodes[i].child = i < BC_JSON_MAX_DEPTH ? &nodes[i + 1] : NULL;
    }
    bc_error_t err = {0};
    assert_null(bc_pb_to_json(&nodes[0].base, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(err.message, "nesting deeper than 32 levels");
    json_t *out = bc_pb_to_json(&nodes[1].base, 0, &err);
    assert_non_null(out);
    assert_int_equal(bc_json_depth(out, 100), BC_JSON_MAX_DEPTH);
    json_decref(out);
}

static void test_depth_output_limit_array(void **state)
{
    (void)state;
    /* 32 nested objects, the last holding an array: level 33 */
    Beacon__Test__Node nodes[BC_JSON_MAX_DEPTH + 1];
    for (int i = 0; i <= BC_JSON_MAX_DEPTH; i++) {
        beacon__test__node__init(&nodes[i]);
        nodes[i].child = i < BC_JSON_MAX_DEPTH - 1 ? &nodes[i + 1] : NULL;
    }
    Beacon__Test__Node *leaf = &nodes[BC_JSON_MAX_DEPTH];
    nodes[BC_JSON_MAX_DEPTH - 1].n_children = 1;
    nodes[BC_JSON_MAX_DEPTH - 1].children = &leaf;
    bc_error_t err = {0};
    assert_null(bc_pb_to_json(&nodes[0].base, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(err.message, "nesting deeper than 32 levels");
    /* from the third node: 30 objects, the array, the leaf: 32 levels */
    json_t *out = bc_pb_to_json(&nodes[2].base, 0, &err);
    assert_non_null(out);
    assert_int_equal(bc_json_depth(out, 100), BC_JSON_MAX_DEPTH);
    json_decref(out);
}

static void test_json_depth(void **state)
{
    (void)state;
    const struct {
        const char *text;
        int depth;
    } cases[] = {
        {"1", 0},
        {"\"x\"", 0},
        {"null", 0},
        {"{}", 1},
        {"[]", 1},
        {"[1, 2]", 1},
        {"{\"a\": {}}", 2},
        {"[[[]]]", 3},
        {"[{}, [[{}]], 1]", 4},
        {"{\"a\": 1, \"b\": [[]]}", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *json = s_load(cases[i].text);
        assert_int_equal(bc_json_depth(json, 10), cases[i].depth);
        json_decref(json);
    }
    json_t *json = s_load("[[[[[[]]]]]]");
    assert_int_equal(bc_json_depth(json, 3), 4);
    assert_int_equal(bc_json_depth(json, 6), 6);
    assert_int_equal(bc_json_depth(json, 0), 1);
    json_decref(json);
}

static void test_json_depth_hostile(void **state)
{
    (void)state;
    /* 100000 nested arrays built directly (the parser stops at 2048) */
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < 100000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(bc_json_depth(root, BC_JSON_MAX_DEPTH), BC_JSON_MAX_DEPTH + 1);
    assert_int_equal(bc_json_depth(root, 1000000), 100001);
    /* jansson frees nested arrays recursively; unwind by hand */
    while (json_array_size(root) > 0) {
        json_t *child = json_incref(json_array_get(root, 0));
        json_decref(root);
        root = child;
    }
    json_decref(root);
}

/* ---------------------------------------------------------------------------
 * BC_JSON_STRINGS */

static void test_strings_flag_numbers(void **state)
{
    (void)state;
    Beacon__Test__Scalars *s = (Beacon__Test__Scalars *)s_parse(
        SCALARS, BC_JSON_STRINGS,
        "{\"i32\": \"42\", \"u32\": \"4294967295\", \"s32\": \"-7\", \"sf32\": \"-2147483648\","
        " \"i64\": \"-5\", \"fl\": \"1.5\", \"db\": \"-1e3\", \"b\": \"true\","
        " \"status\": \"ACTIVE\", \"str\": \"12\"}");
    assert_int_equal(s->i32, 42);
    assert_true(s->u32 == 4294967295u);
    assert_int_equal(s->s32, -7);
    assert_int_equal(s->sf32, INT32_MIN);
    assert_true(s->i64 == -5);
    assert_true(s->fl == 1.5f);
    assert_true(s->db == -1000.0);
    assert_int_equal(s->b, 1);
    assert_int_equal(s->status, BEACON__TEST__STATUS__ACTIVE);
    assert_string_equal(s->str, "12");
    s_free_msg(s);
    s = (Beacon__Test__Scalars *)s_parse(SCALARS, BC_JSON_STRINGS,
                                         "{\"b\": \"false\", \"i32\": 5, \"db\": 2}");
    assert_int_equal(s->b, 0);
    assert_int_equal(s->i32, 5);
    assert_true(s->db == 2.0);
    s_free_msg(s);
}

static void test_strings_flag_errors(void **state)
{
    (void)state;
    const struct {
        const char *text, *field, *message;
    } cases[] = {
        {"{\"i32\": \"4.5\"}", "i32", "expected an integer"},
        {"{\"i32\": \"\"}", "i32", "expected an integer"},
        {"{\"i32\": \" 42\"}", "i32", "expected an integer"},
        {"{\"i32\": \"42x\"}", "i32", "expected an integer"},
        {"{\"i32\": \"2147483648\"}", "i32", "value out of range for int32"},
        {"{\"u32\": \"-1\"}", "u32", "value out of range for uint32"},
        {"{\"f32\": \"4294967296\"}", "f32", "value out of range for fixed32"},
        {"{\"b\": \"TRUE\"}", "b", "expected true or false"},
        {"{\"b\": \"1\"}", "b", "expected true or false"},
        {"{\"b\": \"true \"}", "b", "expected true or false"},
        {"{\"db\": \"nan\"}", "db", "expected a number"},
        {"{\"db\": \"inf\"}", "db", "expected a number"},
        {"{\"db\": \" 1\"}", "db", "expected a number"},
        {"{\"db\": \"1.5x\"}", "db", "expected a number"},
        {"{\"db\": \"0x10\"}", "db", "expected a number"},
        {"{\"db\": \"\"}", "db", "expected a number"},
        {"{\"db\": \"+1\"}", "db", "expected a number"},
        {"{\"db\": \"1e999\"}", "db", "value out of range for double"},
        {"{\"fl\": \"1e39\"}", "fl", "value out of range for float"},
        {"{\"str\": 12}", "str", "expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_expect_error(SCALARS, BC_JSON_STRINGS, cases[i].text, cases[i].field, cases[i].message);
}

static void test_strings_flag_nested_and_repeated(void **state)
{
    (void)state;
    Beacon__Test__Person *p = (Beacon__Test__Person *)s_parse(
        PERSON, BC_JSON_STRINGS, "{\"scores\": [\"1\", 2], \"address\": {\"zip\": \"9\"}}");
    assert_int_equal(p->n_scores, 2);
    assert_int_equal(p->scores[0], 1);
    assert_int_equal(p->scores[1], 2);
    assert_int_equal(p->address->zip, 9);
    s_free_msg(p);
    s_expect_error(PERSON, BC_JSON_STRINGS, "{\"scores\": \"1\"}", "scores", "expected an array");
}

/* ---------------------------------------------------------------------------
 * Output */

static void test_output_omits_defaults(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s_expect_json(&s, 0, "{}");
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    s_expect_json(&p, 0, "{}");
    p.name = NULL; /* treated as "" */
    s_expect_json(&p, 0, "{}");
}

static void test_emit_defaults(void **state)
{
    (void)state;
    Beacon__Test__Scalars s = BEACON__TEST__SCALARS__INIT;
    s_expect_json(
        &s, BC_JSON_EMIT_DEFAULTS,
        "{\"i32\": 0, \"i64\": 0, \"u32\": 0, \"u64\": 0, \"s32\": 0, \"s64\": 0,"
        " \"f32\": 0, \"f64\": 0, \"sf32\": 0, \"sf64\": 0, \"fl\": 0.0, \"db\": 0.0,"
        " \"b\": false, \"str\": \"\", \"by\": \"\","
        " \"status\": \"STATUS_UNSPECIFIED\", \"long_name\": \"LONG_NAMES_UNSPECIFIED\"}");
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    s_expect_json(&p, BC_JSON_EMIT_DEFAULTS,
                  "{\"name\": \"\", \"address\": null, \"addresses\": [], \"scores\": [],"
                  " \"tags\": [], \"statuses\": [], \"blobs\": [], \"weights\": [],"
                  " \"flags\": [], \"big\": [], \"scalars\": null}");
    p.contact_case = BEACON__TEST__PERSON__CONTACT_PHONE;
    p.phone = "1";
    s_expect_json(&p, BC_JSON_EMIT_DEFAULTS,
                  "{\"name\": \"\", \"address\": null, \"addresses\": [], \"scores\": [],"
                  " \"tags\": [], \"statuses\": [], \"blobs\": [], \"weights\": [],"
                  " \"flags\": [], \"big\": [], \"phone\": \"1\", \"scalars\": null}");
}

static void test_emit_defaults_round_trip(void **state)
{
    (void)state;
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    json_t *out = bc_pb_to_json(&p.base, BC_JSON_EMIT_DEFAULTS, NULL);
    assert_non_null(out);
    bc_error_t err = {0};
    ProtobufCMessage *back = bc_json_to_pb(out, PERSON, &s_counting, 0, &err);
    assert_non_null(back);
    assert_int_equal(protobuf_c_message_get_packed_size(back), 0);
    s_free_msg(back);
    json_decref(out);
}

static void test_output_oneof_only_set_member(void **state)
{
    (void)state;
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    Beacon__Test__Address a = BEACON__TEST__ADDRESS__INIT;
    a.city = "Lyon";
    p.contact_case = BEACON__TEST__PERSON__CONTACT_POSTAL;
    p.postal = &a;
    s_expect_json(&p, 0, "{\"postal\": {\"city\": \"Lyon\"}}");
}

static void test_output_malformed_repeated(void **state)
{
    (void)state;
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    char *tags[] = {"a", NULL};
    p.n_tags = 2;
    p.tags = tags;
    bc_error_t err = {0};
    assert_null(bc_pb_to_json(&p.base, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(err.field, "tags[1]");
    assert_string_equal(err.message, "malformed message: NULL element");
}

static void test_output_malformed_array(void **state)
{
    (void)state;
    Beacon__Test__Person p = BEACON__TEST__PERSON__INIT;
    p.n_scores = 2;
    bc_error_t err = {0};
    assert_null(bc_pb_to_json(&p.base, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    assert_string_equal(err.field, "scores");
    assert_string_equal(err.message, "malformed message: 2 elements but no array");
}

/* ---------------------------------------------------------------------------
 * Labels protoc-c 1.4 does not generate for proto3 (proto2 optional with a
 * has_ flag, required), through a hand-written descriptor. */

typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean has_count;
    int32_t count;
    char *label; /* optional string: present when not NULL */
    char *id;    /* required */
} s_legacy_t;

static const ProtobufCMessageDescriptor s_legacy_descriptor;

static void s_legacy_init(ProtobufCMessage *msg)
{
    static const s_legacy_t init = {PROTOBUF_C_MESSAGE_INIT(&s_legacy_descriptor), 0, 0, NULL,
                                    NULL};
    *(s_legacy_t *)msg = init;
}

static const ProtobufCFieldDescriptor s_legacy_fields[] = {
    {"count", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_INT32, offsetof(s_legacy_t, has_count),
     offsetof(s_legacy_t, count), NULL, NULL, 0, 0, NULL, NULL},
    {"label", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(s_legacy_t, label),
     NULL, NULL, 0, 0, NULL, NULL},
    {"id", 3, PROTOBUF_C_LABEL_REQUIRED, PROTOBUF_C_TYPE_STRING, 0, offsetof(s_legacy_t, id), NULL,
     NULL, 0, 0, NULL, NULL},
};
static const unsigned s_legacy_by_name[] = {0, 2, 1}; /* count, id, label */
static const ProtobufCIntRange s_legacy_ranges[] = {{1, 0}, {0, 3}};

static const ProtobufCMessageDescriptor s_legacy_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "beacon.test.Legacy",
    "Legacy",
    "Beacon__Test__Legacy",
    "beacon.test",
    sizeof(s_legacy_t),
    3,
    s_legacy_fields,
    s_legacy_by_name,
    1,
    s_legacy_ranges,
    s_legacy_init,
    NULL,
    NULL,
    NULL,
};

static void test_optional_and_required_labels(void **state)
{
    (void)state;
    s_legacy_t *m = (s_legacy_t *)s_parse(&s_legacy_descriptor, 0, "{\"count\": 0, \"id\": \"x\"}");
    assert_int_equal(m->has_count, 1);
    assert_int_equal(m->count, 0);
    assert_null(m->label);
    /* an optional set to zero is still written; a required one always */
    s_expect_json(m, 0, "{\"count\": 0, \"id\": \"x\"}");
    s_free_msg(m);
    s_round_trip(&s_legacy_descriptor, 0, "{\"label\": \"\"}", "{\"label\": \"\", \"id\": \"\"}");
    s_legacy_t empty;
    s_legacy_init(&empty.base);
    s_expect_json(&empty, BC_JSON_EMIT_DEFAULTS, "{\"id\": \"\"}");
}

/* ---------------------------------------------------------------------------
 * Allocation and errors */

static void test_allocator_owns_everything(void **state)
{
    (void)state;
    ProtobufCMessage *msg =
        s_parse(PERSON, 0,
                "{\"name\": \"a\", \"address\": {\"city\": \"b\", \"lines\": [\"c\"]},"
                " \"addresses\": [{}], \"tags\": [\"d\"], \"blobs\": [\"AA==\"], \"postal\": {}}");
    /* person, name, address, city, lines array, line, addresses array,
       address, tags array, tag, blobs array, blob, postal */
    assert_int_equal(s_live, 13);
    s_free_msg(msg);
    assert_int_equal(s_live, 0);
}

static void test_default_allocator(void **state)
{
    (void)state;
    json_t *json = s_load("{\"name\": \"a\", \"tags\": [\"b\"], \"postal\": {\"city\": \"c\"}}");
    ProtobufCMessage *msg = bc_json_to_pb(json, PERSON, NULL, 0, NULL);
    assert_non_null(msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    json_decref(json);
}

static void test_no_leak_on_late_error(void **state)
{
    (void)state;
    /* the error comes after many allocations, deep inside arrays and oneofs */
    s_expect_error(PERSON, 0,
                   "{\"name\": \"a\", \"tags\": [\"x\", \"y\"], \"blobs\": [\"AA==\"],"
                   " \"postal\": {\"city\": \"c\", \"lines\": [\"l\"]},"
                   " \"addresses\": [{\"city\": \"a\", \"lines\": [\"1\", \"2\"]},"
                   " {\"city\": \"b\", \"lines\": [\"3\", 4]}]}",
                   "addresses[1].lines[1]", "expected a string");
    s_expect_error(PERSON, 0,
                   "{\"scalars\": {\"str\": \"s\", \"by\": \"AA==\"}, \"email\": \"e\","
                   " \"phone\": \"p\"}",
                   "phone", "only one of email, phone, postal may be set");
    s_expect_error(PERSON, 0, "{\"postal\": {\"lines\": [\"a\", \"b\"], \"zip\": 1.5}}",
                   "postal.zip", "expected an integer");
}

static void test_null_err_allowed(void **state)
{
    (void)state;
    json_t *json = s_load("{\"nope\": 1}");
    assert_null(bc_json_to_pb(json, PERSON, NULL, 0, NULL));
    json_decref(json);
}

static void test_long_unknown_key_truncated(void **state)
{
    (void)state;
    char key[400], text[500];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(text, sizeof text, "{\"%s\": 1}", key);
    json_t *json = s_load(text);
    bc_error_t err = {0};
    assert_null(bc_json_to_pb(json, PERSON, NULL, 0, &err));
    assert_string_equal(err.message, "unknown field");
    assert_int_equal(strlen(err.field), sizeof err.field - 1);
    json_decref(json);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_scalars_all_types),
        T(test_scalars_round_trip),
        T(test_int32_family_limits),
        T(test_uint32_family_limits),
        T(test_uint_rejects_negative),
        T(test_int64_strings),
        T(test_int64_string_syntax),
        T(test_int64_output_beyond_2_53_is_string),
        T(test_int_rejects_real),
        T(test_int_wrong_types),
        T(test_float_and_double),
        T(test_float_output_is_shortest),
        T(test_negative_zero_is_not_default),
        T(test_non_finite_output),
        T(test_bool),
        T(test_enum),
        T(test_enum_long_list_truncated),
        T(test_enum_unknown_value_written_as_number),
        T(test_string),
        T(test_string_invalid_utf8_output),
        T(test_text_strings_match_jansson),
        T(test_text_numbers),
        T(test_bytes),
        T(test_bytes_invalid),
        T(test_nested_and_repeated_round_trip),
        T(test_repeated_values_in_c),
        T(test_empty_arrays),
        T(test_unknown_field),
        T(test_top_level_must_be_object),
        T(test_container_wrong_types),
        T(test_nested_error_path),
        T(test_null_means_absent),
        T(test_oneof),
        T(test_oneof_two_members),
        T(test_depth_limit_objects),
        T(test_depth_limit_arrays),
        T(test_depth_limit_scalar_array),
        T(test_depth_output_limit),
        T(test_depth_output_limit_array),
        T(test_json_depth),
        T(test_json_depth_hostile),
        T(test_strings_flag_numbers),
        T(test_strings_flag_errors),
        T(test_strings_flag_nested_and_repeated),
        T(test_output_omits_defaults),
        T(test_emit_defaults),
        T(test_emit_defaults_round_trip),
        T(test_output_oneof_only_set_member),
        T(test_output_malformed_repeated),
        T(test_output_malformed_array),
        T(test_optional_and_required_labels),
        T(test_allocator_owns_everything),
        T(test_default_allocator),
        T(test_no_leak_on_late_error),
        T(test_null_err_allowed),
        T(test_long_unknown_key_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
