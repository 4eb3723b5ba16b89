/*  beacon-scheduling: staff availability, locations, appointments and the
 *  encounters they record. Thin: the table is in service.c. */
#include "scheduling.h"

int main(int argc, char **argv)
{
    return bc_service_main(&scheduling_service, argc, argv);
}
