/*  The reporting service's dispatch table, settings, and the event consumer
 *  started with it. */
#include "reporting.h"

static const bc_method_t s_methods[] = {
    {"SiteDashboard", dashboard_site},
    {"AgencyDashboard", dashboard_agency},
    {"RegionDashboard", dashboard_region},
    {"ExportDashboard", dashboard_export},
    {"CreateRegion", regions_create},
    {"ListRegions", regions_list},
    {"SetRegionAgencies", regions_set_agencies},
    {NULL, NULL},
};

static const bc_setting_t s_settings[] = {
    {"events_endpoint_intake", BC_CFG_STRING, "", 0, 0,
     "intake's event endpoint(s) (each instance's events_bind_endpoint, comma-separated) to "
     "subscribe to; empty: its events are fetched with ReplayEvents every consumer_poll_ms only"},
    {"events_endpoint_scheduling", BC_CFG_STRING, "", 0, 0, "scheduling's event endpoint"},
    {"events_endpoint_notes", BC_CFG_STRING, "", 0, 0, "the notes service's event endpoint"},
    {"events_endpoint_referral", BC_CFG_STRING, "", 0, 0, "referral's event endpoint"},
    {"events_endpoint_identity", BC_CFG_STRING, "", 0, 0,
     "identity's event endpoint (the gateway's events_bind_endpoint; its ReplayEvents at "
     "endpoint_identity)"},
    {"consumer", BC_CFG_BOOL, "true", 0, 0,
     "apply every producer's events to the rollups (one instance applies at a time; others "
     "wait as standbys)"},
    {"consumer_poll_ms", BC_CFG_INT, "1000", 50, 600000,
     "how often the consumer asks each producer (ReplayEvents) for events it has not seen, "
     "besides asking whenever it sees a gap"},
    {"dashboard_max_days", BC_CFG_INT, "1100", 1, 3700,
     "longest date range of a dashboard, in days (a longer one is refused with 400)"},
    {"dashboard_max_periods", BC_CFG_INT, "400", 1, 5000,
     "most periods (rows) of a dashboard's time series; a longer one needs a longer grain"},
    BC_SETTINGS_END,
};

static int s_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    *state = NULL;
    if (!bc_config_bool(config, "consumer"))
        return 0;
    rp_consumer_t *consumer = rp_consumer_start(config, err);
    if (!consumer)
        return -1;
    *state = consumer;
    return 0;
}

static void s_stop(void *state)
{
    rp_consumer_t *consumer = state;
    rp_consumer_stop(&consumer);
}

const bc_service_def_t reporting_service = {
    .name = "reporting",
    .descriptor = &beacon__reporting__reporting__descriptor,
    .methods = s_methods,
    .settings = s_settings,
    .start = s_start,
    .stop = s_stop,
};
