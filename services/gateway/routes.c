/*  routes: the gateway's route table. Adding an endpoint = a message and a
 *  method in proto/<service>.proto, a handler in the service's table, and a
 *  line here. Path parameters ({id}) and query parameters fill the request
 *  message's fields of the same name; the JSON body fills the rest.
 */
#include "gateway.h"
#include "intake.pb-c.h"

const gw_route_t gw_routes[] = {
    {{"POST", "/api/v1/clients"}, "intake", &beacon__intake__intake__descriptor, "CreateClient",
     201, "Register a new client"},
    {{"GET", "/api/v1/clients/{id}"}, "intake", &beacon__intake__intake__descriptor, "GetClient",
     200, "Read one client"},
};

const size_t gw_nroutes = sizeof gw_routes / sizeof gw_routes[0];
