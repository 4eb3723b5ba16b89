/*  note_logic: templates, section checks, stored body and content hashes
 *  (see note_logic.h). No database and no globals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "bc_util.h"
#include "note_logic.h"

static bool s_slug(const char *s, size_t max, bool dash)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (dash && c == '-')))
            return false;
    }
    return true;
}

bool note_blank(const char *text)
{
    for (const char *p = text; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

const char *note_text_problem(const char *text, size_t max_chars)
{
    size_t len = strlen(text);
    if (!bc_utf8_valid(text, len))
        return "is not valid UTF-8";
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return "contains a control character";
        if ((c & 0xc0) != 0x80)
            chars++;
    }
    if (chars > max_chars)
        return "is too long";
    return NULL;
}

int note_template_check(const note_template_t *t, bc_error_t *err)
{
    if (!t->id || !s_slug(t->id, 40, true))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "id",
                            "id must be 1 to 40 of a-z 0-9 _ - starting with a letter");
    const char *p = bc_text_problem(t->name ? t->name : "", true, 200);
    if (p)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "name", "name %s", p);
    if (t->nsections == 0 || t->nsections > NOTE_TEMPLATE_MAX_SECTIONS)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "sections",
                            "a template has 1 to %d sections", NOTE_TEMPLATE_MAX_SECTIONS);
    bool any_required = false;
    for (size_t i = 0; i < t->nsections; i++) {
        const note_section_def_t *s = &t->sections[i];
        char field[64];
        snprintf(field, sizeof field, "sections[%zu].key", i);
        if (!s->key || !s_slug(s->key, 40, false))
            return bc_error_set(err, BC_INVALID_ARGUMENT, field,
                                "a section key is 1 to 40 of a-z 0-9 _ starting with a letter");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->sections[j].key, s->key))
                return bc_error_set(err, BC_INVALID_ARGUMENT, field, "section key %s repeats",
                                    s->key);
        snprintf(field, sizeof field, "sections[%zu].label", i);
        if ((p = bc_text_problem(s->label ? s->label : "", true, 200)))
            return bc_error_set(err, BC_INVALID_ARGUMENT, field, "label %s", p);
        snprintf(field, sizeof field, "sections[%zu].help", i);
        if ((p = bc_text_problem(s->help ? s->help : "", false, 1000)))
            return bc_error_set(err, BC_INVALID_ARGUMENT, field, "help %s", p);
        any_required |= s->required;
    }
    if (!any_required)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "sections",
                            "at least one section must be required");
    return 0;
}

static const char *s_str(json_t *o, const char *name, bc_arena_t *arena)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? bc_arena_strdup(arena, json_string_value(v)) : NULL;
}

int note_template_parse(const char *text, size_t len, bc_arena_t *arena, note_template_t *out,
                        bc_error_t *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return bc_error_set(err, BC_INVALID_ARGUMENT, "", "a template is a JSON object (%s)",
                            jerr.text);
    }
    out->id = s_str(root, "id", arena);
    out->name = s_str(root, "name", arena);
    json_t *secs = json_object_get(root, "sections");
    int rc = 0;
    if (!json_is_array(secs) || json_array_size(secs) == 0 ||
        json_array_size(secs) > NOTE_TEMPLATE_MAX_SECTIONS) {
        rc = bc_error_set(err, BC_INVALID_ARGUMENT, "sections",
                          "sections must be an array of 1 to %d sections",
                          NOTE_TEMPLATE_MAX_SECTIONS);
    } else {
        for (size_t i = 0; i < json_array_size(secs); i++) {
            json_t *s = json_array_get(secs, i);
            if (!json_is_object(s)) {
                rc = bc_error_set(err, BC_INVALID_ARGUMENT, "sections",
                                  "each section is an object");
                break;
            }
            note_section_def_t *d = &out->sections[out->nsections++];
            d->key = s_str(s, "key", arena);
            d->label = s_str(s, "label", arena);
            d->help = s_str(s, "help", arena);
            d->required = json_is_true(json_object_get(s, "required"));
        }
    }
    json_decref(root);
    return rc < 0 ? rc : note_template_check(out, err);
}

char *note_template_json(const note_template_t *t)
{
    json_t *secs = json_array();
    for (size_t i = 0; i < t->nsections; i++)
        json_array_append_new(secs, json_pack("{s:s, s:s, s:b, s:s}", "key", t->sections[i].key,
                                              "label", t->sections[i].label, "required",
                                              t->sections[i].required, "help",
                                              t->sections[i].help ? t->sections[i].help : ""));
    json_t *root = json_pack("{s:s, s:s, s:o}", "id", t->id, "name", t->name, "sections", secs);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

int note_sections_check(const note_template_t *t, const note_section_t *in, size_t n,
                        size_t max_chars, size_t max_total, bool signing, note_section_t *out,
                        bc_error_t *err)
{
    for (size_t k = 0; k < t->nsections; k++)
        out[k] = (note_section_t){t->sections[k].key, ""};
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char field[64];
        snprintf(field, sizeof field, "sections[%zu].key", i);
        size_t k = 0;
        while (k < t->nsections && strcmp(t->sections[k].key, in[i].key))
            k++;
        if (k == t->nsections)
            return bc_error_set(err, BC_INVALID_ARGUMENT, field,
                                "template %s has no section %.40s", t->id, in[i].key);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(in[j].key, in[i].key))
                return bc_error_set(err, BC_INVALID_ARGUMENT, field,
                                    "section %s is given twice", in[i].key);
        snprintf(field, sizeof field, "sections[%zu].text", i);
        const char *p = note_text_problem(in[i].text, max_chars);
        if (p)
            return bc_error_set(err, BC_INVALID_ARGUMENT, field, "%s %s%s", in[i].key, p,
                                strcmp(p, "is too long") ? ""
                                                         : " (split it, or add an addendum later)");
        total += strlen(in[i].text);
        if (total > max_total)
            return bc_error_set(err, BC_INVALID_ARGUMENT, field,
                                "the note is too long: at most %zu bytes of text", max_total);
        out[k].text = in[i].text;
    }
    if (signing)
        for (size_t k = 0; k < t->nsections; k++)
            if (t->sections[k].required && note_blank(out[k].text)) {
                char field[64];
                snprintf(field, sizeof field, "sections.%s", t->sections[k].key);
                return bc_error_set(err, BC_FAILED_PRECONDITION, field,
                                    "section %s (%s) is required: fill it in before signing",
                                    t->sections[k].key, t->sections[k].label);
            }
    return 0;
}

char *note_body_json(const note_section_t *s, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (*s[i].text)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "key", s[i].key, "text", s[i].text));
    json_t *root = json_pack("{s:i, s:o}", "v", 1, "sections", arr);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

int note_body_parse(const char *text, size_t len, bc_arena_t *arena, note_section_t **out,
                    size_t *n)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    json_t *arr = json_object_get(root, "sections");
    if (!json_is_array(arr)) {
        json_decref(root);
        return -1;
    }
    size_t count = json_array_size(arr);
    note_section_t *s = bc_arena_calloc(arena, (count ? count : 1) * sizeof *s);
    for (size_t i = 0; i < count; i++) {
        json_t *o = json_array_get(arr, i);
        const char *k = json_string_value(json_object_get(o, "key"));
        const char *t = json_string_value(json_object_get(o, "text"));
        if (!k || !t) {
            json_decref(root);
            return -1;
        }
        s[i].key = bc_arena_strdup(arena, k);
        s[i].text = bc_arena_strdup(arena, t);
    }
    json_decref(root);
    *out = s;
    *n = count;
    return 0;
}

static void s_field(EVP_MD_CTX *md, const char *s)
{
    char len[24];
    int n = snprintf(len, sizeof len, "%zu:", strlen(s));
    EVP_DigestUpdate(md, len, (size_t)n);
    EVP_DigestUpdate(md, s, strlen(s));
}

static void s_finish(EVP_MD_CTX *md, char out[NOTE_HASH_HEX + 1])
{
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    bc_hex(digest, sizeof digest, out);
    out[NOTE_HASH_HEX] = '\0';
}

void note_content_hash(const char *note_id, const char *client_id, const char *template_id,
                       const note_section_t *s, size_t n, char out[NOTE_HASH_HEX + 1])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        abort();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    s_field(md, "beacon-note-v1");
    s_field(md, note_id);
    s_field(md, client_id);
    s_field(md, template_id);
    for (size_t i = 0; i < n; i++) {
        s_field(md, s[i].key);
        s_field(md, s[i].text);
    }
    s_finish(md, out);
}

void note_addendum_hash(const char *addendum_id, const char *note_hash, const char *text,
                        char out[NOTE_HASH_HEX + 1])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        abort();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    s_field(md, "beacon-addendum-v1");
    s_field(md, addendum_id);
    s_field(md, note_hash);
    s_field(md, text);
    s_finish(md, out);
}
