/*  beacon-audit-verify: checks the audit log's hash chains.
 *
 *      beacon-audit-verify [--database_url=...] [--chain_prefix=...]
 *
 *  Settings as for every Beacon process (bc_common_settings: a --config
 *  file, BEACON_* environment variables, --name=value; --help lists them);
 *  only database_url, db_connect_timeout_ms and log_level matter here. The
 *  role needs SELECT on the audit schema and nothing else.
 *
 *  Prints one JSON line per broken chain (its first broken link) and then a
 *  one-line JSON summary, on stdout:
 *
 *      {"chain":"intake:9f..:2","seq":41,"reason":"hash","detail":"..."}
 *      {"intact":false,"chains":24,"events":1200345,"anchors":1210,"broken":1,...}
 *
 *  Exit status: 0 intact, 1 tampering found, 2 bad usage or the database
 *  could not be read. bc_audit.h explains the reasons.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "bc_audit.h"
#include "bc_log.h"
#include "bc_service.h"
#include "bc_util.h"

static const bc_setting_t s_settings[] = {
    {"chain_prefix", BC_CFG_STRING, "", 0, 0,
     "verify only the chains whose id starts with this (e.g. \"intake:\"); empty = all"},
    BC_SETTINGS_END,
};

static void s_on_signal(int sig)
{
    (void)sig;
    _exit(2); /* nothing to clean up: the verifier only reads */
}

static void s_print(json_t *line)
{
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text)
        puts(text);
    free(text);
    json_decref(line);
}

int main(int argc, char **argv)
{
    int exit_code = 0;
    bc_config_t *config =
        bc_process_start("audit-verify", s_settings, argc, argv, s_on_signal, &exit_code);
    if (!config)
        return exit_code;
    bc_db_t *db = bc_db_new(bc_config_str(config, "database_url"), "beacon-audit-verify");
    bc_error_t err = {0};
    bc_audit_report_t report = {0};
    int64_t t0 = bc_mono_ms();
    int rc = bc_db_connect(db, (int)bc_config_int(config, "db_connect_timeout_ms"), &err);
    if (rc == 0)
        rc = bc_audit_verify(db, bc_config_str(config, "chain_prefix"), &report, &err);
    if (rc < 0) {
        bc_err("audit verification failed: %s (%s)", err.message, err.detail);
        s_print(json_pack("{s:s, s:s}", "error", err.message, "detail", err.detail));
        exit_code = 2;
    } else {
        for (size_t i = 0; i < report.nbreaks; i++) {
            const bc_audit_break_t *b = &report.breaks[i];
            s_print(json_pack("{s:s, s:I, s:s, s:s}", "chain", b->chain, "seq", (json_int_t)b->seq,
                              "reason", bc_audit_break_name(b->kind), "detail", b->detail));
        }
        s_print(json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "intact", report.broken == 0,
                          "chains", (json_int_t)report.chains, "events", (json_int_t)report.events,
                          "anchors", (json_int_t)report.anchors, "broken",
                          (json_int_t)report.broken, "listed", (json_int_t)report.nbreaks,
                          "elapsed_ms", (json_int_t)(bc_mono_ms() - t0)));
        exit_code = report.broken ? 1 : 0;
    }
    fflush(stdout);
    bc_audit_report_clear(&report);
    bc_db_destroy(&db);
    bc_config_destroy(&config);
    return exit_code;
}
