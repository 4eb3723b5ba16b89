/*  The intake service's dispatch table. */
#include "intake.h"

static const bc_method_t s_methods[] = {
    {"CreateClient", clients_create},
    {"GetClient", clients_get},
    {NULL, NULL},
};

const bc_service_def_t intake_service = {
    .name = "intake",
    .descriptor = &beacon__intake__intake__descriptor,
    .methods = s_methods,
};
