/*  The identity service's dispatch table. The gateway hosts it in-process
 *  (bc_service_new on an inproc:// endpoint); its migrations live in
 *  services/gateway/migrations and are recorded under "gateway". */
#include "identity.h"

static const bc_method_t s_methods[] = {
    {"Bootstrap", identity_bootstrap},
    {"CreateAgency", identity_agency_create},
    {"CreateSite", identity_site_create},
    {"ListSites", identity_sites_list},
    {"CreateStaff", identity_staff_create},
    {"GetStaff", identity_staff_get},
    {"UpdateStaff", identity_staff_update},
    {"DisableStaff", identity_staff_disable},
    {"Login", identity_login},
    {"Authenticate", identity_authenticate},
    {"Logout", identity_logout},
    {"EnrollTotp", identity_totp_enroll},
    {"ConfirmTotp", identity_totp_confirm},
    {"CreateApiKey", identity_api_key_create},
    {"RevokeApiKey", identity_api_key_revoke},
    {"ChangePassword", identity_password_change},
    {"ResetPassword", identity_password_reset},
    {NULL, NULL},
};

const bc_service_def_t identity_service = {
    .name = "identity",
    .home = "gateway",
    .descriptor = &beacon__identity__identity__descriptor,
    .methods = s_methods,
};
