/*  The scheduling service's dispatch table and settings. */
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
    BC_SETTINGS_END,
};

static int s_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    sched_reminders_t *r = sched_reminders_start(config, err);
    *state = r;
    return r ? 0 : -1;
}

static void s_stop(void *state)
{
    sched_reminders_stop(state);
}

const bc_service_def_t scheduling_service = {
    .name = "scheduling",
    .descriptor = &beacon__scheduling__scheduling__descriptor,
    .methods = s_methods,
    .settings = s_settings,
    .start = s_start,
    .stop = s_stop,
};
