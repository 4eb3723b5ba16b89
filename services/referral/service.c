/*  The referral service's dispatch table. */
#include "referral.h"

static const bc_method_t s_methods[] = {
    {"SearchServices", directory_search},
    {"ImportDirectory", directory_import},
    {NULL, NULL},
};

const bc_service_def_t referral_service = {
    .name = "referral",
    .descriptor = &beacon__referral__referral__descriptor,
    .methods = s_methods,
};
