/*  bc_migrate: the schema migrations runner.
 *
 *  Each service keeps services/<name>/migrations/NNN_description.sql. At start
 *  the service applies the files it has not applied yet, in numeric order,
 *  each in its own transaction together with its row in
 *  public.beacon_schema_migrations(service, version, name, checksum,
 *  applied_at). A session advisory lock lets several instances start at once.
 *  A file whose checksum differs from the recorded one is an error (applied
 *  migrations are never edited); a recorded version with no file is reported.
 */
#ifndef BC_MIGRATE_H
#define BC_MIGRATE_H

#include <stddef.h>
#include "bc_db.h"
#include "bc_error.h"

typedef struct {
    int version;
    char name[128];      /* file name without directory */
    char path[1024];
} bc_migration_t;

/* Lists dir's migration files sorted by version into a new array (*out, freed
 * by the caller with free()). Rejects names not matching NNN_name.sql and
 * duplicate versions. Returns the count or -1. */
int bc_migrate_list(const char *dir, bc_migration_t **out, bc_error_t *err);
/* Applies pending migrations of service from dir. Returns the number applied
 * (0 when up to date) or -1 with err set; nothing is half-applied. */
int bc_migrate_apply(bc_db_t *db, const char *service, const char *dir, bc_error_t *err);

#endif
