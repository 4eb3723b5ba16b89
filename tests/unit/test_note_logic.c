/*  test_note_logic: note templates, section checks, the stored body and
 *  content hashes (services/notes/note_logic.c), pure logic.
 *
 *  The content hash is checked against a value computed independently (the
 *  same length-prefixed SHA-256 the system tests recompute in Python), and
 *  for sensitivity to every input and to field boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/notes/note_logic.h" /* not on the include path */

static const char *s_girp =
    "{\"id\":\"girp\",\"name\":\"GIRP\",\"sections\":["
    "{\"key\":\"goal\",\"label\":\"Goal\",\"required\":true,\"help\":\"h\"},"
    "{\"key\":\"intervention\",\"label\":\"Intervention\",\"required\":true},"
    "{\"key\":\"response\",\"label\":\"Response\",\"required\":false},"
    "{\"key\":\"plan\",\"label\":\"Plan\",\"required\":true}]}";

static note_template_t s_parse_ok(bc_arena_t *arena, const char *json)
{
    note_template_t t;
    bc_error_t err;
    int rc = note_template_parse(json, strlen(json), arena, &t, &err);
    if (rc != 0)
        fail_msg("%s (%s)", err.message, err.field);
    return t;
}

static void s_parse_fails(const char *json, const char *field)
{
    bc_arena_t *arena = bc_arena_new(4096);
    note_template_t t;
    bc_error_t err;
    assert_int_equal(note_template_parse(json, strlen(json), arena, &t, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.field, field);
    bc_arena_destroy(&arena);
}

static void test_template_parse(void **state)
{
    (void)state;
    bc_arena_t *arena = bc_arena_new(4096);
    note_template_t t = s_parse_ok(arena, s_girp);
    assert_string_equal(t.id, "girp");
    assert_int_equal(t.nsections, 4);
    assert_string_equal(t.sections[1].key, "intervention");
    assert_true(t.sections[0].required);
    assert_false(t.sections[2].required);
    assert_string_equal(t.sections[0].help, "h");
    /* Round trip through the stored form. */
    char *json = note_template_json(&t);
    note_template_t again = s_parse_ok(arena, json);
    free(json);
    assert_int_equal(again.nsections, 4);
    assert_string_equal(again.sections[3].label, "Plan");
    bc_arena_destroy(&arena);
}

static void test_template_refusals(void **state)
{
    (void)state;
    s_parse_fails("[]", "");
    s_parse_fails("{\"id\":\"Bad\",\"name\":\"x\",\"sections\":[{\"key\":\"a\",\"label\":\"A\","
                  "\"required\":true}]}", "id");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"\",\"sections\":[{\"key\":\"a\",\"label\":\"A\","
                  "\"required\":true}]}", "name");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"x\",\"sections\":[]}", "sections");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"x\",\"sections\":[{\"key\":\"a\",\"label\":\"A\"}]}",
                  "sections");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"x\",\"sections\":[{\"key\":\"a\",\"label\":\"A\","
                  "\"required\":true},{\"key\":\"a\",\"label\":\"B\"}]}", "sections[1].key");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"x\",\"sections\":[{\"key\":\"A-b\",\"label\":\"A\","
                  "\"required\":true}]}", "sections[0].key");
    s_parse_fails("{\"id\":\"ok\",\"name\":\"x\",\"sections\":[{\"key\":\"a\",\"label\":\"\","
                  "\"required\":true}]}", "sections[0].label");
    /* Twenty-one sections. */
    char big[4096] = "{\"id\":\"ok\",\"name\":\"x\",\"sections\":[";
    for (int i = 0; i < 21; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big),
                 "%s{\"key\":\"s%d\",\"label\":\"L\",\"required\":true}", i ? "," : "", i);
    strcat(big, "]}");
    s_parse_fails(big, "sections");
}

static void test_sections_check(void **state)
{
    (void)state;
    bc_arena_t *arena = bc_arena_new(4096);
    note_template_t t = s_parse_ok(arena, s_girp);
    note_section_t out[4];
    bc_error_t err;
    /* Given out of order: put in template order, missing ones "". */
    note_section_t in[] = {{"plan", "next week"}, {"goal", "housing"}};
    assert_int_equal(note_sections_check(&t, in, 2, 100, 1000, false, out, &err), 0);
    assert_string_equal(out[0].key, "goal");
    assert_string_equal(out[0].text, "housing");
    assert_string_equal(out[1].text, "");
    assert_string_equal(out[3].text, "next week");
    /* Signing needs every required section non-blank. */
    assert_int_equal(note_sections_check(&t, in, 2, 100, 1000, true, out, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_string_equal(err.field, "sections.intervention");
    note_section_t blank[] = {{"goal", "g"}, {"intervention", " \n\t "}, {"plan", "p"}};
    assert_int_equal(note_sections_check(&t, blank, 3, 100, 1000, true, out, &err), -1);
    assert_string_equal(err.field, "sections.intervention");
    note_section_t full[] = {{"goal", "g"}, {"intervention", "i"}, {"plan", "p"}};
    assert_int_equal(note_sections_check(&t, full, 3, 100, 1000, true, out, &err), 0);
    /* Unknown and repeated keys, bad text, too long. */
    note_section_t unknown[] = {{"mood", "x"}};
    assert_int_equal(note_sections_check(&t, unknown, 1, 100, 1000, false, out, &err), -1);
    assert_string_equal(err.field, "sections[0].key");
    note_section_t twice[] = {{"goal", "a"}, {"goal", "b"}};
    assert_int_equal(note_sections_check(&t, twice, 2, 100, 1000, false, out, &err), -1);
    assert_string_equal(err.field, "sections[1].key");
    note_section_t bad_utf8[] = {{"goal", "caf\xc3\x28"}};
    assert_int_equal(note_sections_check(&t, bad_utf8, 1, 100, 1000, false, out, &err), -1);
    assert_string_equal(err.field, "sections[0].text");
    note_section_t control[] = {{"goal", "bell\x07"}};
    assert_int_equal(note_sections_check(&t, control, 1, 100, 1000, false, out, &err), -1);
    note_section_t lines[] = {{"goal", "line one\r\nline two\ttabbed"}};
    assert_int_equal(note_sections_check(&t, lines, 1, 100, 1000, false, out, &err), 0);
    /* Characters, not bytes: five two-byte characters fit a limit of five. */
    note_section_t accents[] = {{"goal", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"}};
    assert_int_equal(note_sections_check(&t, accents, 1, 5, 1000, false, out, &err), 0);
    assert_int_equal(note_sections_check(&t, accents, 1, 4, 1000, false, out, &err), -1);
    note_section_t total[] = {{"goal", "aaaaaa"}, {"plan", "bbbbbb"}};
    assert_int_equal(note_sections_check(&t, total, 2, 100, 10, false, out, &err), -1);
    assert_string_equal(err.field, "sections[1].text");
    bc_arena_destroy(&arena);
}

static void test_body_round_trip(void **state)
{
    (void)state;
    bc_arena_t *arena = bc_arena_new(4096);
    note_section_t s[] = {{"goal", "quote \" and \\ and \xc3\xa9"}, {"intervention", ""},
                          {"plan", "p"}};
    char *json = note_body_json(s, 3);
    note_section_t *back = NULL;
    size_t n = 0;
    assert_int_equal(note_body_parse(json, strlen(json), arena, &back, &n), 0);
    free(json);
    assert_int_equal(n, 2); /* empty sections are not stored */
    assert_string_equal(back[0].text, s[0].text);
    assert_string_equal(back[1].key, "plan");
    assert_int_equal(note_body_parse("garbage", 7, arena, &back, &n), -1);
    assert_int_equal(note_body_parse("{\"sections\":[{\"key\":1}]}", 24, arena, &back, &n), -1);
    bc_arena_destroy(&arena);
}

static void test_content_hash(void **state)
{
    (void)state;
    note_section_t s[] = {{"goal", "Keep housing"}, {"plan", "Call Tuesday"}};
    char h1[NOTE_HASH_HEX + 1], h2[NOTE_HASH_HEX + 1];
    note_content_hash("n1", "c1", "girp", s, 2, h1);
    /* sha256 of "14:beacon-note-v12:n12:c14:girp4:goal12:Keep housing4:plan12:Call Tuesday",
     * computed with Python's hashlib. */
    assert_string_equal(h1, "2d63e416f29d64b41b7a67718556dfc89c91ea62a4fb810ef9513203a7f94f36");
    note_content_hash("n1", "c1", "girp", s, 2, h2);
    assert_string_equal(h1, h2); /* deterministic */
    /* Every input counts. */
    const char *others[][3] = {{"n2", "c1", "girp"}, {"n1", "c2", "girp"}, {"n1", "c1", "dap"}};
    for (size_t i = 0; i < 3; i++) {
        note_content_hash(others[i][0], others[i][1], others[i][2], s, 2, h2);
        assert_string_not_equal(h1, h2);
    }
    note_section_t changed[] = {{"goal", "Keep housing."}, {"plan", "Call Tuesday"}};
    note_content_hash("n1", "c1", "girp", changed, 2, h2);
    assert_string_not_equal(h1, h2);
    note_section_t swapped[] = {{"plan", "Call Tuesday"}, {"goal", "Keep housing"}};
    note_content_hash("n1", "c1", "girp", swapped, 2, h2);
    assert_string_not_equal(h1, h2);
    /* Field boundaries are part of the encoding: moving text across them differs. */
    note_section_t a[] = {{"goal", "ab"}, {"plan", "c"}};
    note_section_t b[] = {{"goal", "a"}, {"plan", "bc"}};
    note_content_hash("n1", "c1", "girp", a, 2, h1);
    note_content_hash("n1", "c1", "girp", b, 2, h2);
    assert_string_not_equal(h1, h2);
    /* Addenda are bound to the note's hash. */
    note_addendum_hash("a1", "HASH", "text", h1);
    assert_string_equal(h1, "268f8b909492d1659f6f0280ec629fd483da7aeec7b9b4bb49b757581d38983a");
    note_addendum_hash("a1", "HASH2", "text", h2);
    assert_string_not_equal(h1, h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_parse), cmocka_unit_test(test_template_refusals),
        cmocka_unit_test(test_sections_check), cmocka_unit_test(test_body_round_trip),
        cmocka_unit_test(test_content_hash),
    };
    return cmocka_run_group_tests_name("note_logic", tests, NULL, NULL);
}
