/*  The notes service's dispatch table and settings. */
#include "notes.h"

static const bc_method_t s_methods[] = {
    {"ListTemplates", templates_list},
    {"CreateTemplate", templates_create},
    {"CreateNote", notes_create},
    {"GetNote", notes_get},
    {"SaveDraft", notes_save_draft},
    {"SignNote", notes_sign},
    {"AddAddendum", notes_add_addendum},
    {"ListNotes", notes_list},
    {"CreateGroupNotes", notes_create_group},
    {"ReviewQueue", review_queue},
    {"ReviewNote", review_note},
    {"SetSupervision", review_set_supervision},
    {"ListOverdue", review_overdue},
    {"BillingNoteStatus", billing_note_status},
    {"ReplayEvents", bc_replay_events},
    {NULL, NULL},
};

static const bc_setting_t s_settings[] = {
    {"templates_dir", BC_CFG_STRING, "services/notes/templates", 0, 0,
     "folder of the note templates shipped with Beacon (GIRP, DAP, SOAP: one JSON file each); "
     "agencies add their own through the API"},
    {"overdue_hours", BC_CFG_INT, "72", 1, 2160,
     "an encounter with no signed note this many hours after it ended is overdue (shown to "
     "the specialist and their supervisors, announced once as note.overdue)"},
    {"overdue_scan_seconds", BC_CFG_INT, "60", 0, 86400,
     "how often the service looks for encounters that became overdue and announces each once "
     "as note.overdue; 0 turns the scan off (the overdue list still announces what it shows)"},
    {"late_entry_hours", BC_CFG_INT, "24", 1, 2160,
     "a note signed more than this many hours after the contact is marked a late entry"},
    {"max_section_chars", BC_CFG_INT, "20000", 100, 200000,
     "the longest text of one note section or addendum, in characters"},
    {"max_note_bytes", BC_CFG_INT, "65536", 1024, 1048576,
     "the most text one note may hold, all sections together, in bytes"},
    {"rewrap_scan_seconds", BC_CFG_INT, "300", 0, 86400,
     "how often the service looks for note text sealed under a key that is no longer the "
     "active one (after a rotation) and seals it again under the active key; 0 turns it off"},
    {"bench_plaintext_notes", BC_CFG_BOOL, "false", 0, 0,
     "BENCHMARKS ONLY: store note text unencrypted to measure what encryption costs. Refused "
     "unless BENCH_NOTES_PLAINTEXT_OK=notes-encryption-cost is also set; notes so stored are "
     "refused as damaged by a service running without it"},
    BC_SETTINGS_END,
};

const bc_service_def_t notes_service = {
    .name = "notes",
    .descriptor = &beacon__notes__notes__descriptor,
    .methods = s_methods,
    .settings = s_settings,
    .start = notes_start,
    .stop = notes_stop,
};
