/*  bc_config: typed settings from defaults, a file, the environment and the
 *  command line (Redis config.c, PostgreSQL GUC).
 *
 *  Each process declares its settings once in tables of bc_setting_t. A value
 *  comes from, in rising precedence: the default, the file named by --config
 *  (or BEACON_CONFIG), the environment variable BEACON_<NAME> (upper case),
 *  and --name=value on the command line. Every value is checked against its
 *  type and bounds; an unknown name in the file or on the command line is an
 *  error. --help prints the table.
 */
#ifndef BC_CONFIG_H
#define BC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "bc_error.h"

typedef enum { BC_CFG_STRING, BC_CFG_INT, BC_CFG_BOOL } bc_cfg_type_t;

typedef struct {
    const char *name;          /* lower_snake_case */
    bc_cfg_type_t type;
    const char *default_value; /* as text; NULL = required (no default) */
    int64_t min, max;          /* bounds for BC_CFG_INT (ignored if min == max == 0) */
    const char *doc;
} bc_setting_t;

/* A table ends with an entry whose name is NULL. */
#define BC_SETTINGS_END {NULL, BC_CFG_STRING, NULL, 0, 0, NULL}

typedef struct bc_config bc_config_t;

bc_config_t *bc_config_new(const char *program);
void bc_config_destroy(bc_config_t **self);
/* Adds a table (not copied: must outlive the config). */
void bc_config_add(bc_config_t *self, const bc_setting_t *table);
/* Loads file, environment and argv. Returns 0, 1 when --help was printed
 * (the caller should exit 0), or -1 with err set. */
int bc_config_load(bc_config_t *self, int argc, char **argv, bc_error_t *err);
/* Sets one value as if from the command line (tests). */
int bc_config_set(bc_config_t *self, const char *name, const char *value, bc_error_t *err);
/* Typed getters; asking for an undeclared name or the wrong type aborts
 * (programmer error). Strings are owned by the config. */
const char *bc_config_str(const bc_config_t *self, const char *name);
int64_t bc_config_int(const bc_config_t *self, const char *name);
bool bc_config_bool(const bc_config_t *self, const char *name);
void bc_config_print_help(const bc_config_t *self, FILE *out);

#endif
