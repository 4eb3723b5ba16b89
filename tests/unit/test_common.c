/*  Unit tests for the small common modules: error codes, arenas, utilities,
 *  route matching and configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <cmocka.h>

#include "bc_config.h"
#include "bc_error.h"
#include "bc_mem.h"
#include "bc_route.h"
#include "bc_util.h"
#include "beacon.pb-c.h"

/* The C enum and the proto enum must agree name for name. */
static void test_codes_match_proto(void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &beacon__code__descriptor;
    assert_int_equal(d->n_values, BC_CODE_COUNT);
    for (unsigned i = 0; i < d->n_values; i++)
        assert_string_equal(bc_code_name((bc_code_t)d->values[i].value), d->values[i].name);
}

static void test_code_http_mapping(void **state)
{
    (void)state;
    assert_int_equal(bc_code_http_status(BC_OK), 200);
    assert_int_equal(bc_code_http_status(BC_INVALID_ARGUMENT), 400);
    assert_int_equal(bc_code_http_status(BC_NOT_FOUND), 404);
    assert_int_equal(bc_code_http_status(BC_PAYLOAD_TOO_LARGE), 413);
    assert_int_equal(bc_code_http_status(BC_UNAVAILABLE), 503);
    assert_int_equal(bc_code_http_status(BC_DEADLINE_EXCEEDED), 503);
    assert_int_equal(bc_code_http_status((bc_code_t)999), 500);
    assert_string_equal(bc_code_slug(BC_ALREADY_EXISTS), "already-exists");
    assert_string_equal(bc_code_name((bc_code_t)-1), "UNKNOWN");
}

static void test_sqlstate_mapping(void **state)
{
    (void)state;
    assert_int_equal(bc_code_from_sqlstate("23505"), BC_ALREADY_EXISTS);
    assert_int_equal(bc_code_from_sqlstate("22P02"), BC_INVALID_ARGUMENT);
    assert_int_equal(bc_code_from_sqlstate("23503"), BC_FAILED_PRECONDITION);
    assert_int_equal(bc_code_from_sqlstate("40001"), BC_CONFLICT);
    assert_int_equal(bc_code_from_sqlstate("42501"), BC_PERMISSION_DENIED);
    assert_int_equal(bc_code_from_sqlstate("08006"), BC_UNAVAILABLE);
    assert_int_equal(bc_code_from_sqlstate("57P01"), BC_UNAVAILABLE);
    assert_int_equal(bc_code_from_sqlstate("42P01"), BC_INTERNAL);
    assert_int_equal(bc_code_from_sqlstate(NULL), BC_INTERNAL);
    assert_int_equal(bc_code_from_sqlstate("123"), BC_INTERNAL);
}

static void test_error_set_and_detail(void **state)
{
    (void)state;
    bc_error_t err;
    assert_int_equal(bc_error_set(&err, BC_NOT_FOUND, "id", "no client %d", 7), -1);
    assert_int_equal(err.code, BC_NOT_FOUND);
    assert_string_equal(err.message, "no client 7");
    assert_string_equal(err.field, "id");
    bc_error_detail(&err, "first");
    bc_error_detail(&err, "second %s", "x");
    assert_string_equal(err.detail, "first; second x");
    assert_int_equal(bc_error_set(NULL, BC_INTERNAL, NULL, "ignored"), -1);
}

static void test_arena(void **state)
{
    (void)state;
    bc_arena_t *a = bc_arena_new(256);
    char *s = bc_arena_strdup(a, "hello");
    assert_string_equal(s, "hello");
    assert_int_equal((uintptr_t)bc_arena_alloc(a, 3) % _Alignof(max_align_t), 0);
    /* Larger than a block, then many small ones: all usable, all distinct. */
    char *big = bc_arena_alloc(a, 10000);
    memset(big, 'x', 10000);
    char *ptrs[200];
    for (int i = 0; i < 200; i++) {
        ptrs[i] = bc_arena_printf(a, "item-%d", i);
    }
    for (int i = 0; i < 200; i++) {
        char want[32];
        snprintf(want, sizeof want, "item-%d", i);
        assert_string_equal(ptrs[i], want);
    }
    assert_true(bc_arena_used(a) >= 10000);
    bc_arena_reset(a);
    assert_int_equal(bc_arena_used(a), 0);
    char *z = bc_arena_calloc(a, 64);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    ProtobufCAllocator *pa = bc_arena_allocator(a);
    void *p = pa->alloc(pa->allocator_data, 40);
    assert_non_null(p);
    pa->free(pa->allocator_data, p);
    bc_arena_destroy(&a);
    assert_null(a);
    bc_arena_destroy(&a); /* NULL is fine */
}

static void test_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    bc_uuid_v4(a);
    bc_uuid_v4(b);
    assert_true(bc_is_uuid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_true(bc_is_uuid("95C4839D-F206-45E5-9A1C-60A7682EC8FA"));
    assert_false(bc_is_uuid("95c4839d-f206-45e5-9a1c-60a7682ec8f"));
    assert_false(bc_is_uuid("95c4839d-f206-45e5-9a1c-60a7682ec8fz"));
    assert_false(bc_is_uuid("95c4839df206-45e5-9a1c-60a7682ec8fa0"));
    assert_false(bc_is_uuid(NULL));
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(bc_utf8_valid("plain", 5));
    assert_true(bc_utf8_valid("caf\xc3\xa9", 5));
    assert_true(bc_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_false(bc_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(bc_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(bc_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(bc_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(bc_utf8_valid("a\0b", 3));
    assert_false(bc_utf8_valid("\xff", 1));
}

static void test_text_problem(void **state)
{
    (void)state;
    assert_null(bc_text_problem("Ada", true, 200));
    assert_null(bc_text_problem("", false, 200));
    assert_string_equal(bc_text_problem("", true, 200), "is required");
    assert_string_equal(bc_text_problem("   ", true, 200), "is required");
    assert_string_equal(bc_text_problem("  ", false, 200), "must not be blank");
    assert_string_equal(bc_text_problem("a\tb", true, 200), "must not contain control characters");
    assert_string_equal(bc_text_problem("abcdef", true, 5), "is too long");
    assert_null(bc_text_problem("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", true, 5)); /* 5 code points */
    assert_string_equal(bc_text_problem("\xc3\x28", true, 5), "is too long or not valid UTF-8");
}

static void test_time_format(void **state)
{
    (void)state;
    char out[32];
    bc_format_time_ms(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    bc_format_time_ms(1767225600123LL, out);
    assert_string_equal(out, "2026-01-01T00:00:00.123Z");
    bc_format_time_ms(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

typedef struct {
    bc_route_key_t key;
    int id;
} s_route_t;

static const s_route_t s_routes[] = {
    {{"POST", "/api/v1/clients"}, 1},
    {{"GET", "/api/v1/clients/{id}"}, 2},
    {{"PATCH", "/api/v1/clients/{id}"}, 3},
    {{"GET", "/api/v1/clients/{id}/consents/{consent_id}"}, 4},
};

static int s_match(const char *method, const char *path, bc_route_param_t *params, int *np,
                   int *known, char *allow)
{
    return bc_route_match(s_routes, 4, sizeof s_routes[0], method, strlen(method), path,
                          strlen(path), params, np, known, allow, 64);
}

static void test_route_match(void **state)
{
    (void)state;
    bc_route_param_t p[BC_ROUTE_MAX_PARAMS];
    int np, known;
    char allow[64];
    assert_int_equal(s_match("POST", "/api/v1/clients", p, &np, &known, allow), 0);
    assert_int_equal(np, 0);
    assert_int_equal(s_match("GET", "/api/v1/clients/abc", p, &np, &known, allow), 1);
    assert_int_equal(np, 1);
    assert_int_equal(p[0].name_len, 2);
    assert_memory_equal(p[0].name, "id", 2);
    assert_int_equal(p[0].value_len, 3);
    assert_memory_equal(p[0].value, "abc", 3);
    assert_int_equal(s_match("GET", "/api/v1/clients/a/consents/b", p, &np, &known, allow), 3);
    assert_int_equal(np, 2);
    assert_memory_equal(p[1].value, "b", 1);
}

static void test_route_misses(void **state)
{
    (void)state;
    bc_route_param_t p[BC_ROUTE_MAX_PARAMS];
    int np, known;
    char allow[64];
    assert_int_equal(s_match("GET", "/api/v1/clients/", p, &np, &known, allow), -1);
    assert_int_equal(known, 0);
    assert_int_equal(s_match("GET", "/api/v1/clients/a/b", p, &np, &known, allow), -1);
    assert_int_equal(s_match("GET", "/api/v1/client", p, &np, &known, allow), -1);
    assert_int_equal(s_match("GET", "", p, &np, &known, allow), -1);
    assert_int_equal(s_match("DELETE", "/api/v1/clients/x", p, &np, &known, allow), -1);
    assert_int_equal(known, 1);
    assert_string_equal(allow, "GET, PATCH");
    assert_int_equal(s_match("GET", "/api/v1/clients", p, &np, &known, allow), -1);
    assert_int_equal(known, 1);
    assert_string_equal(allow, "POST");
}

static const bc_setting_t s_settings[] = {
    {"name", BC_CFG_STRING, "beacon", 0, 0, "a name"},
    {"count", BC_CFG_INT, "4", 1, 10, "a count"},
    {"flag", BC_CFG_BOOL, "false", 0, 0, "a flag"},
    {"needed", BC_CFG_STRING, NULL, 0, 0, "required"},
    BC_SETTINGS_END,
};

static bc_config_t *s_config(void)
{
    bc_config_t *c = bc_config_new("test");
    bc_config_add(c, s_settings);
    return c;
}

static void test_config_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/bc-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# comment\nname = from-file\ncount = 5\nneeded = \"quoted\"\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    setenv("BEACON_COUNT", "6", 1);
    unsetenv("BEACON_NAME");
    char *argv[] = {"test", "--config", path, "--flag=yes", NULL};
    bc_config_t *c = s_config();
    bc_error_t err;
    assert_int_equal(bc_config_load(c, 4, argv, &err), 0);
    assert_string_equal(bc_config_str(c, "name"), "from-file");
    assert_int_equal(bc_config_int(c, "count"), 6); /* env beats file */
    assert_true(bc_config_bool(c, "flag"));
    assert_string_equal(bc_config_str(c, "needed"), "quoted");
    bc_config_destroy(&c);
    assert_null(c);
    unsetenv("BEACON_COUNT");
    unlink(path);
}

static void test_config_errors(void **state)
{
    (void)state;
    bc_error_t err;
    bc_config_t *c = s_config();
    char *missing[] = {"test", NULL};
    assert_int_equal(bc_config_load(c, 1, missing, &err), -1);
    assert_string_equal(err.field, "needed");
    bc_config_destroy(&c);

    c = s_config();
    char *range[] = {"test", "--needed=x", "--count=11", NULL};
    assert_int_equal(bc_config_load(c, 3, range, &err), -1);
    assert_string_equal(err.field, "count");
    bc_config_destroy(&c);

    c = s_config();
    char *notint[] = {"test", "--needed=x", "--count=4x", NULL};
    assert_int_equal(bc_config_load(c, 3, notint, &err), -1);
    bc_config_destroy(&c);

    c = s_config();
    char *unknown[] = {"test", "--needed=x", "--colour=red", NULL};
    assert_int_equal(bc_config_load(c, 3, unknown, &err), -1);
    assert_non_null(strstr(err.message, "unknown setting"));
    bc_config_destroy(&c);

    c = s_config();
    char *badbool[] = {"test", "--needed=x", "--flag=maybe", NULL};
    assert_int_equal(bc_config_load(c, 3, badbool, &err), -1);
    bc_config_destroy(&c);

    c = s_config();
    char *nofile[] = {"test", "--config=/nonexistent/beacon.conf", NULL};
    assert_int_equal(bc_config_load(c, 2, nofile, &err), -1);
    bc_config_destroy(&c);
}

static void test_config_help(void **state)
{
    (void)state;
    bc_config_t *c = s_config();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bc_config_print_help(c, f);
    fclose(f);
    assert_non_null(strstr(buf, "count"));
    assert_non_null(strstr(buf, "range: 1..10"));
    assert_non_null(strstr(buf, "(required)"));
    free(buf);
    bc_config_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_match_proto), cmocka_unit_test(test_code_http_mapping),
        cmocka_unit_test(test_sqlstate_mapping),  cmocka_unit_test(test_error_set_and_detail),
        cmocka_unit_test(test_arena),             cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_utf8),              cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_text_problem),
        cmocka_unit_test(test_route_match),       cmocka_unit_test(test_route_misses),
        cmocka_unit_test(test_config_precedence), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_help),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
