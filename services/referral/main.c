/*  beacon-referral: the referral service. It owns the resource directory
 *  (HSDS 3.0, migration 003: search, JSON and CSV import, package export)
 *  and the referrals (FHIR Task lifecycle), including their receiving
 *  partners, whose reads go through intake's consent check. The method
 *  table is in service.c. */
#include "referral.h"

int main(int argc, char **argv)
{
    return bc_service_main(&referral_service, argc, argv);
}
