/*  routes: the gateway's route table. Adding an endpoint = a message and a
 *  method in proto/<service>.proto, a handler in the service's table, and a
 *  line here. Path parameters ({id}) and query parameters fill the request
 *  message's fields of the same name; the JSON body fills the rest.
 */
#include "gateway.h"
#include "identity.pb-c.h"
#include "intake.pb-c.h"

#define S_IDENTITY "identity", &beacon__identity__identity__descriptor

const gw_route_t gw_routes[] = {
    {{"POST", "/api/v1/clients"}, "intake", &beacon__intake__intake__descriptor, "CreateClient",
     201, "Register a new client", NULL, 0},
    {{"GET", "/api/v1/clients/{id}"}, "intake", &beacon__intake__intake__descriptor, "GetClient",
     200, "Read one client", NULL, 0},
    {{"POST", "/api/v1/sessions"}, S_IDENTITY, "Login", 201,
     "Sign in with email, password and (when enrolled) a TOTP code", NULL, 0},
    {{"DELETE", "/api/v1/sessions/current"}, S_IDENTITY, "Logout", 200,
     "Sign out: the session token stops working at once", "token", 0},
    {{"POST", "/api/v1/bootstrap"}, S_IDENTITY, "Bootstrap", 201,
     "First start: create the first agency, site and agency_admin", NULL, GW_ROUTE_BOOTSTRAP},
};

const size_t gw_nroutes = sizeof gw_routes / sizeof gw_routes[0];
