/*  beacon-reporting: the reporting service. Until the reporting issue adds its methods it
 *  answers Health (built into the dispatcher) and owns its schema. */
#include "bc_service.h"
#include "reporting.pb-c.h"

static const bc_method_t s_methods[] = {{NULL, NULL}};

static const bc_service_def_t s_service = {
    .name = "reporting",
    .descriptor = &beacon__reporting__reporting__descriptor,
    .methods = s_methods,
};

int main(int argc, char **argv)
{
    return bc_service_main(&s_service, argc, argv);
}
