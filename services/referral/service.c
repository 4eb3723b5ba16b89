/*  The referral service's dispatch table. */
#include "referral.h"

static const bc_method_t s_methods[] = {
    {"SearchServices", directory_search},
    {"ImportDirectory", directory_import},
    {"ExportDirectory", directory_export},
    {"CreateReferral", referrals_create},
    {"GetReferral", referrals_get},
    {"ListReferrals", referrals_list},
    {"ChangeReferralStatus", referrals_change_status},
    {"FollowUps", referrals_follow_ups},
    {"ReplayEvents", bc_replay_events},
    {"PartnerListReferrals", partner_list},
    {"PartnerGetReferral", partner_get},
    {"PartnerChangeReferralStatus", partner_change_status},
    {NULL, NULL},
};

const bc_service_def_t referral_service = {
    .name = "referral",
    .descriptor = &beacon__referral__referral__descriptor,
    .methods = s_methods,
    .settings = referral_settings,
    .start = referral_start,
    .stop = referral_stop,
};
