/*  beacon-intake: where a person enters the program (clients, enrollment,
 *  consent, assessments, recovery plans). Thin: the table is in service.c. */
#include "intake.h"

int main(int argc, char **argv)
{
    return bc_service_main(&intake_service, argc, argv);
}
