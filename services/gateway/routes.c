/*  routes: the gateway's route table. Adding an endpoint = a message and a
 *  method in proto/<service>.proto, a handler in the service's table, and a
 *  line here. Path parameters ({id}) and query parameters fill the request
 *  message's fields of the same name; the JSON body fills the rest.
 */
#include "gateway.h"
#include "identity.pb-c.h"
#include "intake.pb-c.h"

#define S_IDENTITY "identity", &beacon__identity__identity__descriptor
#define S_INTAKE "intake", &beacon__intake__intake__descriptor
/* Who works with client records (README, "Who may do what"). Admins manage
 * accounts, not care: they see no client data. */
#define S_CARE_TEAM "peer_specialist,supervisor"

/* One route per entry, read as a table. */
// clang-format off
const gw_route_t gw_routes[] = {
    {{"POST", "/api/v1/clients"}, S_INTAKE, "CreateClient", 201,
     "Register a new client at one of the caller's sites",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/clients/{id}"}, S_INTAKE, "GetClient", 200,
     "Read one client in the caller's scope (audited)",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/clients"}, S_INTAKE, "ListClients", 200,
     "The caller's caseload, newest first (filters: site_id, assigned_staff_id, status; cursor)",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"PUT", "/api/v1/clients/{id}"}, S_INTAKE, "UpdateClient", 200,
     "Replace a client's details (If-Match: the ETag read)",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_IF_MATCH, S_CARE_TEAM, "expected_version"},
    {{"POST", "/api/v1/clients/{id}/assignment"}, S_INTAKE, "AssignClient", 200,
     "Put a client on a peer specialist's caseload, or none (supervisors)",
     NULL, GW_ROUTE_AUTH, "supervisor", "expected_version"},
    {{"GET", "/api/v1/clients/{id}/assignments"}, S_INTAKE, "ListAssignments", 200,
     "Who has held the client on their caseload",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/instruments"}, S_INTAKE, "ListInstruments", 200,
     "Assessment instruments (BARC-10 and those the agency added)",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"POST", "/api/v1/clients/{client_id}/assessments"}, S_INTAKE, "RecordAssessment", 201,
     "Record an assessment; the service scores it",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/clients/{client_id}/assessments"}, S_INTAKE, "ListAssessments", 200,
     "A client's assessments, oldest first, with the change since the first",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"POST", "/api/v1/clients/{client_id}/enrollments"}, S_INTAKE, "Enroll", 201,
     "Enroll a client in a program (brief or comprehensive pathway)",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"POST", "/api/v1/clients/{client_id}/enrollments/{id}/discharge"}, S_INTAKE, "Discharge",
     200, "Discharge: close the open episode with a reason",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/clients/{client_id}/enrollments"}, S_INTAKE, "ListEnrollments", 200,
     "A client's episodes, with the comprehensive pathway's assessment due and overdue",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"POST", "/api/v1/clients/{client_id}/break-glass"}, S_INTAKE, "OpenBreakGlass", 201,
     "Break the glass: time-limited, reasoned, audited access to a client outside your scope",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"GET", "/api/v1/break-glass"}, S_INTAKE, "ListBreakGlass", 200,
     "Break-glass grants: your own, and to supervisors those for their sites' clients",
     NULL, GW_ROUTE_AUTH, S_CARE_TEAM},
    {{"POST", "/api/v1/sessions"}, S_IDENTITY, "Login", 201,
     "Sign in with email, password and (when enrolled) a TOTP code",
     NULL, 0},
    {{"DELETE", "/api/v1/sessions/current"}, S_IDENTITY, "Logout", 200,
     "Sign out: the session token stops working at once",
     "token", GW_ROUTE_REVOKES},
    {{"POST", "/api/v1/bootstrap"}, S_IDENTITY, "Bootstrap", 201,
     "First start: create the first agency, site and agency_admin",
     NULL, GW_ROUTE_BOOTSTRAP},
    {{"POST", "/api/v1/me/totp"}, S_IDENTITY, "EnrollTotp", 201,
     "Start enrolling a TOTP second factor (returns the otpauth URI once)",
     NULL, GW_ROUTE_AUTH, "*"},
    {{"POST", "/api/v1/me/totp/confirm"}, S_IDENTITY, "ConfirmTotp", 200,
     "Confirm the second factor with a first code",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "*"},
    {{"POST", "/api/v1/me/password"}, S_IDENTITY, "ChangePassword", 200,
     "Change your password (your other sessions end)",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "*"},
    {{"GET", "/api/v1/sites"}, S_IDENTITY, "ListSites", 200,
     "Sites of the caller's agency",
     NULL, GW_ROUTE_AUTH, "agency_admin,site_admin,supervisor,peer_specialist"},
    {{"POST", "/api/v1/sites"}, S_IDENTITY, "CreateSite", 201,
     "Add a site",
     NULL, GW_ROUTE_AUTH, "agency_admin"},
    {{"POST", "/api/v1/staff"}, S_IDENTITY, "CreateStaff", 201,
     "Add a staff account",
     NULL, GW_ROUTE_AUTH, "agency_admin,site_admin"},
    {{"GET", "/api/v1/staff/{id}"}, S_IDENTITY, "GetStaff", 200,
     "Read a staff account",
     NULL, GW_ROUTE_AUTH, "agency_admin,site_admin"},
    {{"PATCH", "/api/v1/staff/{id}"}, S_IDENTITY, "UpdateStaff", 200,
     "Change a staff account's name, roles, sites or credentials",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "agency_admin,site_admin"},
    {{"POST", "/api/v1/staff/{id}/disable"}, S_IDENTITY, "DisableStaff", 200,
     "Disable a staff account: its sessions stop working at once",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "agency_admin,site_admin"},
    {{"POST", "/api/v1/staff/{id}/password"}, S_IDENTITY, "ResetPassword", 200,
     "Set a new password for an account you manage (all its sessions end)",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "agency_admin,site_admin"},
    {{"POST", "/api/v1/api-keys"}, S_IDENTITY, "CreateApiKey", 201,
     "Create an API key for an integration (the token is shown once)",
     NULL, GW_ROUTE_AUTH, "agency_admin"},
    {{"POST", "/api/v1/api-keys/{id}/revoke"}, S_IDENTITY, "RevokeApiKey", 200,
     "Revoke an API key at once",
     NULL, GW_ROUTE_AUTH | GW_ROUTE_REVOKES, "agency_admin"},
};
// clang-format on

const size_t gw_nroutes = sizeof gw_routes / sizeof gw_routes[0];
