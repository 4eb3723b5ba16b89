/*  bc_config: typed settings declared in tables; values from defaults, a
 *  file, BEACON_* environment variables and --name=value arguments. */
#include "bc_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"

#define S_MAX_TABLES 8

typedef struct {
    const bc_setting_t *def;
    char *value;        /* current text value, owned */
    const char *source; /* "default", "file", "env", "argv" */
    int64_t ival;
    bool bval;
} s_entry_t;

struct bc_config {
    char *program;
    const bc_setting_t *tables[S_MAX_TABLES];
    size_t ntables;
    s_entry_t *entries;
    size_t nentries;
};

bc_config_t *bc_config_new(const char *program)
{
    bc_config_t *self = bc_calloc(1, sizeof *self);
    self->program = bc_strdup(program ? program : "beacon");
    return self;
}

void bc_config_destroy(bc_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_config_t *self = *self_p;
    for (size_t i = 0; i < self->nentries; i++)
        free(self->entries[i].value);
    free(self->entries);
    free(self->program);
    free(self);
    *self_p = NULL;
}

void bc_config_add(bc_config_t *self, const bc_setting_t *table)
{
    if (self->ntables == S_MAX_TABLES)
        abort(); /* programmer error: too many tables */
    self->tables[self->ntables++] = table;
    size_t n = 0;
    while (table[n].name)
        n++;
    self->entries = bc_realloc(self->entries, (self->nentries + n) * sizeof *self->entries);
    for (size_t i = 0; i < n; i++) {
        s_entry_t *e = &self->entries[self->nentries++];
        memset(e, 0, sizeof *e);
        e->def = &table[i];
    }
}

static s_entry_t *s_find(const bc_config_t *self, const char *name)
{
    /* Later tables override earlier ones with the same name. */
    for (size_t i = self->nentries; i-- > 0;)
        if (!strcmp(self->entries[i].def->name, name))
            return &self->entries[i];
    return NULL;
}

static int s_assign(s_entry_t *e, const char *value, const char *source, bc_error_t *err)
{
    const bc_setting_t *d = e->def;
    if (d->type == BC_CFG_INT) {
        errno = 0;
        char *end = NULL;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return bc_error_set(err, BC_INVALID_ARGUMENT, d->name,
                                "setting %s (%s): '%s' is not an integer", d->name, source, value);
        if ((d->min || d->max) && (v < d->min || v > d->max))
            return bc_error_set(err, BC_INVALID_ARGUMENT, d->name,
                                "setting %s (%s): %lld is outside %lld..%lld", d->name, source, v,
                                (long long)d->min, (long long)d->max);
        e->ival = v;
    } else if (d->type == BC_CFG_BOOL) {
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") ||
            !strcasecmp(value, "on"))
            e->bval = true;
        else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no") ||
                 !strcasecmp(value, "off"))
            e->bval = false;
        else
            return bc_error_set(err, BC_INVALID_ARGUMENT, d->name,
                                "setting %s (%s): '%s' is not a boolean", d->name, source, value);
    }
    free(e->value);
    e->value = bc_strdup(value);
    e->source = source;
    return 0;
}

int bc_config_set(bc_config_t *self, const char *name, const char *value, bc_error_t *err)
{
    s_entry_t *e = s_find(self, name);
    if (!e)
        return bc_error_set(err, BC_INVALID_ARGUMENT, name, "unknown setting '%s'", name);
    return s_assign(e, value, "argv", err);
}

static char *s_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int s_load_file(bc_config_t *self, const char *path, bc_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "config", "cannot open config file %s: %s",
                            path, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = s_trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = bc_error_set(err, BC_INVALID_ARGUMENT, "config", "%s:%d: expected name = value",
                              path, lineno);
            break;
        }
        *eq = '\0';
        char *name = s_trim(s), *value = s_trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        s_entry_t *e = s_find(self, name);
        if (!e) {
            rc = bc_error_set(err, BC_INVALID_ARGUMENT, name, "%s:%d: unknown setting '%s'", path,
                              lineno, name);
            break;
        }
        rc = s_assign(e, value, "file", err);
    }
    fclose(f);
    return rc;
}

int bc_config_load(bc_config_t *self, int argc, char **argv, bc_error_t *err)
{
    const char *file = getenv("BEACON_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            bc_config_print_help(self, stdout);
            return 1;
        }
        if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[++i];
    }
    for (size_t i = 0; i < self->nentries; i++) {
        s_entry_t *e = &self->entries[i];
        if (e->def->default_value && s_assign(e, e->def->default_value, "default", err) < 0)
            return -1;
    }
    if (file && *file && s_load_file(self, file, err) < 0)
        return -1;
    for (size_t i = 0; i < self->nentries; i++) {
        s_entry_t *e = &self->entries[i];
        char env[160] = "BEACON_";
        size_t k = 7;
        for (const char *p = e->def->name; *p && k < sizeof env - 1; p++)
            env[k++] = (char)toupper((unsigned char)*p);
        env[k] = '\0';
        const char *v = getenv(env);
        if (v && s_assign(e, v, "env", err) < 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0)
            return bc_error_set(err, BC_INVALID_ARGUMENT, a, "unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        if (!eq)
            return bc_error_set(err, BC_INVALID_ARGUMENT, a, "expected --name=value, got '%s'", a);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        if (bc_config_set(self, name, eq + 1, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < self->nentries; i++) {
        s_entry_t *e = &self->entries[i];
        if (!e->value && s_find(self, e->def->name) == e)
            return bc_error_set(err, BC_INVALID_ARGUMENT, e->def->name,
                                "setting %s is required (BEACON_%s or --%s=...)", e->def->name,
                                e->def->name, e->def->name);
    }
    return 0;
}

static const s_entry_t *s_get(const bc_config_t *self, const char *name, bc_cfg_type_t type)
{
    const s_entry_t *e = s_find(self, name);
    if (!e || e->def->type != type) {
        fprintf(stderr, "bc_config: setting '%s' not declared with that type\n", name);
        abort();
    }
    return e;
}

const char *bc_config_str(const bc_config_t *self, const char *name)
{
    const s_entry_t *e = s_get(self, name, BC_CFG_STRING);
    return e->value ? e->value : "";
}

int64_t bc_config_int(const bc_config_t *self, const char *name)
{
    return s_get(self, name, BC_CFG_INT)->ival;
}

bool bc_config_bool(const bc_config_t *self, const char *name)
{
    return s_get(self, name, BC_CFG_BOOL)->bval;
}

void bc_config_print_help(const bc_config_t *self, FILE *out)
{
    static const char *const types[] = {"string", "int", "bool"};
    fprintf(out, "usage: %s [--config FILE] [--name=value ...]\n\n", self->program);
    fprintf(out, "Settings (also from BEACON_<NAME> environment variables and the config file):\n");
    for (size_t i = 0; i < self->nentries; i++) {
        const bc_setting_t *d = self->entries[i].def;
        if (s_find(self, d->name) != &self->entries[i])
            continue;
        fprintf(out, "  %-24s %-6s default: %s", d->name, types[d->type],
                d->default_value ? (*d->default_value ? d->default_value : "\"\"") : "(required)");
        if (d->type == BC_CFG_INT && (d->min || d->max))
            fprintf(out, "  range: %lld..%lld", (long long)d->min, (long long)d->max);
        fprintf(out, "\n      %s\n", d->doc ? d->doc : "");
    }
}
