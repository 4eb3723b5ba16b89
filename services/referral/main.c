/*  beacon-referral: the referral service. It owns the resource directory
 *  (HSDS 3.0, migration 003) and answers its search (directory.c); referrals
 *  themselves come later. The method table is in service.c. */
#include "referral.h"

int main(int argc, char **argv)
{
    return bc_service_main(&referral_service, argc, argv);
}
