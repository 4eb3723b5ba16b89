/*  The scheduling service's dispatch table and settings (billing included:
 *  it lives here, beside the encounters it bills). */
#include <stdlib.h>

#include "billing_internal.h"
#include "scheduling.h"

static const bc_method_t s_methods[] = {
    {"CreateLocation", locations_create},
    {"ListLocations", locations_list},
    {"SetWorkingHours", availability_set_hours},
    {"AddTimeOff", availability_add_time_off},
    {"GetAvailability", availability_get},
    {"BookAppointment", appointments_book},
    {"GetAppointment", appointments_get},
    {"RescheduleAppointment", appointments_reschedule},
    {"ChangeAppointmentStatus", appointments_change_status},
    {"CompleteAppointment", appointments_complete},
    {"ListAppointments", appointments_list},
    {"ListEncounters", encounters_list},
    {"CreateGroupSession", groups_create},
    {"UpdateGroupSession", groups_update},
    {"CancelGroupSession", groups_cancel},
    {"GetGroupSession", groups_get},
    {"ListGroupSessions", groups_list},
    {"EnrollInGroup", groups_enroll},
    {"LeaveGroup", groups_leave},
    {"GetGroupOccurrence", occurrences_get},
    {"UpdateGroupOccurrence", occurrences_update},
    {"RecordAttendance", occurrences_attendance},
    {"CompleteGroupOccurrence", occurrences_complete},
    {"ListGroupOccurrences", occurrences_list},
    {"GetCalendarFeed", feed_get},
    {"SetBillingConfig", billing_config_set},
    {"GetBillingConfig", billing_config_get},
    {"ListBillingConfigs", billing_config_list},
    {"CreateBillingBatch", billing_batch_create},
    {"GetBillingBatch", billing_batch_get},
    {"ListBillingBatches", billing_batch_list},
    {"GetBillingBatchFile", billing_batch_file},
    {"GetBillingBatchCsv", billing_batch_csv},
    {"ListClaims", billing_claims_list},
    {"GetClaim", billing_claim_get},
    {"SetClaimStatus", billing_claim_status},
    {"ReplaceClaim", billing_claim_replace},
    {"VoidClaim", billing_claim_void},
    {"ImportRemittance", billing_remittance_import},
    {"ReplayEvents", bc_replay_events},
    {NULL, NULL},
};

static const bc_setting_t s_settings[] = {
    {"max_appointment_minutes", BC_CFG_INT, "480", 15, 1439,
     "the longest one-on-one meeting that can be booked or recorded, in minutes (meetings "
     "last under 24 hours whatever this says)"},
    {"max_group_occurrences", BC_CFG_INT, "260", 1, 1000,
     "the most occurrences one group series may have (weekly for five years by default); a "
     "longer programme is a new series"},
    {"reminder_minutes", BC_CFG_STRING, "1440,120", 0, 0,
     "when reminder.due events go out before a booked meeting or group meeting: minutes "
     "before the start, comma-separated (up to four; empty for none)"},
    {"reminder_scan_seconds", BC_CFG_INT, "30", 1, 3600,
     "how often the service looks for reminders that are due"},
    {"billing_part_bytes", BC_CFG_INT, "1048576", 4096, 3145728,
     "the size of each stored part of a billing batch's 837P file and CSV (each part is one "
     "download: it must fit in rpc_max_message_bytes)"},
    BC_SETTINGS_END,
};

static int s_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    sched_state_t *st = bc_calloc(1, sizeof *st);
    st->reminders = sched_reminders_start(config, err);
    if (st->reminders)
        st->billing = billing_start(config, err);
    if (!st->reminders || !st->billing) {
        sched_reminders_stop(st->reminders);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static void s_stop(void *state)
{
    sched_state_t *st = state;
    if (!st)
        return;
    sched_reminders_stop(st->reminders);
    billing_stop(st->billing);
    free(st);
}

const bc_service_def_t scheduling_service = {
    .name = "scheduling",
    .descriptor = &beacon__scheduling__scheduling__descriptor,
    .methods = s_methods,
    .settings = s_settings,
    .start = s_start,
    .stop = s_stop,
};
