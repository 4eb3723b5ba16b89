/*  beacon-reporting: the reporting service. Its consumer (consumer.c)
 *  applies every service's events to the rollups; its methods (service.c)
 *  serve the site, agency and region dashboards and their CSV export. */
#include "reporting.h"

int main(int argc, char **argv)
{
    return bc_service_main(&reporting_service, argc, argv);
}
