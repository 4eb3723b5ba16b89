/*  beacon-referral: the referral service. Until the referral issue adds its methods it
 *  answers Health (built into the dispatcher) and owns its schema. */
#include "bc_service.h"
#include "referral.pb-c.h"

static const bc_method_t s_methods[] = {{NULL, NULL}};

static const bc_service_def_t s_service = {
    .name = "referral",
    .descriptor = &beacon__referral__referral__descriptor,
    .methods = s_methods,
};

int main(int argc, char **argv)
{
    return bc_service_main(&s_service, argc, argv);
}
