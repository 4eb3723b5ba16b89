/*  note_logic: the pure parts of the notes service, without a database:
 *  note templates (parsing a definition and checking it), checking a note's
 *  sections against its template, the stored form of a note's body and the
 *  content hash recorded when a note or addendum is signed. Unit tested in
 *  tests/unit/test_note_logic.c.
 */
#ifndef NOTE_LOGIC_H
#define NOTE_LOGIC_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_error.h"
#include "bc_mem.h"

#define NOTE_TEMPLATE_MAX_SECTIONS 20
#define NOTE_HASH_HEX 64

typedef struct {
    const char *key;
    const char *label;
    const char *help;
    bool required;
} note_section_def_t;

typedef struct {
    const char *id;
    const char *name;
    size_t nsections;
    note_section_def_t sections[NOTE_TEMPLATE_MAX_SECTIONS];
    bool shipped;
} note_template_t;

/* One section of a note as entered: key and text (borrowed). */
typedef struct {
    const char *key;
    const char *text;
} note_section_t;

/* Checks a template: id 1-40 of a-z 0-9 _ - starting with a letter; name 1-200
 * characters; 1 to NOTE_TEMPLATE_MAX_SECTIONS sections with unique keys (1-40
 * of a-z 0-9 _), labels 1-200 characters, help up to 1000, at least one
 * required section. 0, or -1 with err (INVALID_ARGUMENT, field named). */
int note_template_check(const note_template_t *t, bc_error_t *err);

/* Parses a template definition (JSON: id, name, sections [{key, label,
 * required, help}]) into *out, strings copied into arena, and checks it.
 * 0, or -1 with err set. */
int note_template_parse(const char *json, size_t len, bc_arena_t *arena, note_template_t *out,
                        bc_error_t *err);

/* The definition as JSON text (malloc'd; caller frees). */
char *note_template_json(const note_template_t *t);

/* Checks sections against template t and puts them in template order into
 * out (t->nsections entries; a section not given is ""): every key one of
 * the template's and given at most once, every text valid UTF-8 without NUL
 * or control characters other than tab and newlines, at most max_chars code
 * points each and max_total bytes together; with signing, every required
 * section non-blank. 0, or -1 with err (field "sections[i].text" etc.;
 * FAILED_PRECONDITION for a required section left empty at signing). */
int note_sections_check(const note_template_t *t, const note_section_t *in, size_t n,
                        size_t max_chars, size_t max_total, bool signing, note_section_t *out,
                        bc_error_t *err);

/* The stored body of sections (in template order, empty ones left out) as
 * JSON text: {"v":1,"sections":[{"key":..,"text":..},..]}. malloc'd. */
char *note_body_json(const note_section_t *s, size_t n);
/* Parses a body back: *out (arena) holds *n sections. 0 or -1. */
int note_body_parse(const char *json, size_t len, bc_arena_t *arena, note_section_t **out,
                    size_t *n);

/* The content hash of a note: SHA-256, as 64 lowercase hex digits, of
 * "beacon-note-v1", note id, client id, template id and each section's key
 * and text, every field length-prefixed so no two contents share an
 * encoding. Sections in the order given (template order). */
void note_content_hash(const char *note_id, const char *client_id, const char *template_id,
                       const note_section_t *s, size_t n, char out[NOTE_HASH_HEX + 1]);
/* The content hash of an addendum: bound to its note's signed hash. */
void note_addendum_hash(const char *addendum_id, const char *note_hash, const char *text,
                        char out[NOTE_HASH_HEX + 1]);

/* True when text is empty or only whitespace. */
bool note_blank(const char *text);
/* Problem with free text (valid UTF-8, no NUL, no control characters but
 * tab, CR and LF, at most max_chars code points) as a phrase, or NULL. */
const char *note_text_problem(const char *text, size_t max_chars);

#endif
