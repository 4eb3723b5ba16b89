/*  The intake service's dispatch table. */
#include "intake.h"

static const bc_method_t s_methods[] = {
    {"CreateClient", clients_create},
    {"GetClient", clients_get},
    {"UpdateClient", clients_update},
    {"ListClients", caseload_list},
    {"AssignClient", caseload_assign},
    {"ListAssignments", caseload_history},
    {"ListInstruments", assessments_instruments},
    {"RecordAssessment", assessments_record},
    {"ListAssessments", assessments_list},
    {"Enroll", enrollments_enroll},
    {"Discharge", enrollments_discharge},
    {"ListEnrollments", enrollments_list},
    {"RecordConsent", consents_record},
    {"RevokeConsent", consents_revoke},
    {"ListConsents", consents_list},
    {"CheckConsent", consents_check},
    {"RecordDiagnosis", diagnoses_record},
    {"ListDiagnoses", diagnoses_list},
    {"BillingSubjects", diagnoses_billing_subjects},
    {"CreateGoal", goals_create},
    {"RecordProgress", goals_progress},
    {"ListGoals", goals_list},
    {"MergeClients", caseload_merge},
    {"ReplayEvents", bc_replay_events},
    {"OpenBreakGlass", break_glass_open},
    {"ListBreakGlass", break_glass_list},
    {NULL, NULL},
};

static const bc_setting_t s_settings[] = {
    {"break_glass_default_minutes", BC_CFG_INT, "60", 1, 480,
     "how long a break-glass grant lasts when the caller does not say"},
    {"break_glass_max_minutes", BC_CFG_INT, "240", 1, 480,
     "the longest break-glass grant anyone may ask for"},
    {"comprehensive_requirements_days", BC_CFG_INT, "30", 1, 365,
     "days after a comprehensive enrollment starts by which the intake assessment is due "
     "(reported as overdue after)"},
    {"instruments_dir", BC_CFG_STRING, "services/intake/instruments", 0, 0,
     "folder of assessment instrument definitions (*.json, format in "
     "services/intake/instrument.h); a bad file stops the service from starting"},
    BC_SETTINGS_END,
};

const bc_service_def_t intake_service = {
    .name = "intake",
    .descriptor = &beacon__intake__intake__descriptor,
    .methods = s_methods,
    .settings = s_settings,
    .start = intake_start,
    .stop = intake_stop,
};
