/*  identity: who may do what. Agencies, sites, staff, roles, sessions,
 *  second factors and API keys (issue 3).
 *
 *  A service definition (identity_service, name "identity", home "gateway")
 *  that the gateway hosts in-process with bc_service_new() on an inproc://
 *  endpoint and calls over the normal envelope: Login and Bootstrap without a
 *  principal, Authenticate for every request (its principal then goes into
 *  every envelope), the admin methods with the caller's principal.
 *
 *  Files: identity_service.c (the method table), identity_common.c (access
 *  rules, validation, audit, transactions), identity_org.c (Bootstrap,
 *  agencies, sites), identity_staff.c, identity_login.c (Login and
 *  throttling), identity_sessions.c (Authenticate, Logout, TOTP enrolment),
 *  identity_keys.c (API keys), identity_events.c (staff.changed events and
 *  their replay). Schema: services/gateway/migrations.
 *
 *  Access (deny by default): the "operator" role acts for the whole
 *  deployment (CreateAgency) and as agency_admin of principal.agency_id; it
 *  exists only in principals the gateway builds for its own command line,
 *  never in the database (the role CHECK excludes it), so Authenticate never
 *  returns it. agency_admin manages everything in its agency; site_admin
 *  manages staff whose sites are all among its own and whose roles are
 *  site-level (peer_specialist, supervisor, site_admin). Everything else is
 *  refused with PERMISSION_DENIED, and records outside the caller's reach
 *  are NOT_FOUND (their existence is not revealed).
 */
#ifndef IDENTITY_H
#define IDENTITY_H

#include <stdbool.h>

#include <jansson.h>

#include "bc_audit.h"
#include "bc_service.h"
#include "identity.pb-c.h"

extern const bc_service_def_t identity_service;
/* Answers ReplayEvents of identity's events, and nothing else, for the
 * gateway to serve on endpoint_identity (identity_events.c). */
extern const bc_service_def_t identity_events_service;

/* Writes staff.changed for staff_id (as it stands in the open transaction:
 * agency, status, sites, credential kinds and dates) to the outbox. -1 with
 * err: roll back. */
int identity_staff_emit(bc_call_t *call, const char *staff_id, bc_error_t *err);

/* Sessions: idle and absolute lifetimes, and how stale last_seen_at may get
 * before Authenticate writes it again (one write a minute per session, not
 * one per request). */
#define IDENTITY_SESSION_IDLE_S 1800
#define IDENTITY_SESSION_ABSOLUTE_S 43200
#define IDENTITY_SESSION_TOUCH_S 60
/* Throttling, over sliding windows of IDENTITY_LOGIN_WINDOW_S: an email
 * (known or not) with IDENTITY_ACCOUNT_MAX_FAILURES failures is locked for
 * IDENTITY_LOCK_S from the last of them; an address with
 * IDENTITY_ADDR_MAX_FAILURES failures is refused until they age out. The
 * attempt that would exceed a limit is refused without checking the
 * password, so no more failures than these are ever evaluated. */
#define IDENTITY_LOGIN_WINDOW_S 900
#define IDENTITY_ACCOUNT_MAX_FAILURES 5
#define IDENTITY_LOCK_S 900
#define IDENTITY_ADDR_MAX_FAILURES 20
/* TOTP steps of clock skew tolerated either way (30 s each). */
#define IDENTITY_TOTP_WINDOW 1

#define IDENTITY_ROLE_OPERATOR "operator"
#define IDENTITY_ROLE_AGENCY_ADMIN "agency_admin"
#define IDENTITY_ROLE_SITE_ADMIN "site_admin"

/* The one message for every failed login (wrong email, password or code,
 * disabled account): which part was wrong is never said. */
#define IDENTITY_BAD_CREDENTIALS "invalid email, password or code"
#define IDENTITY_BAD_TOKEN "invalid or expired token"

#define IDENTITY_STR_(x) #x
#define IDENTITY_STR(x) IDENTITY_STR_(x)

/* ---- Access rules (identity_common.c) ----------------------------------- */

typedef enum {
    IDENTITY_SCOPE_NONE = 0, /* no administrative reach */
    IDENTITY_SCOPE_SITES,    /* site_admin: the principal's sites */
    IDENTITY_SCOPE_AGENCY,   /* agency_admin (or operator): the whole agency */
} identity_scope_t;

bool identity_has_role(const Beacon__Principal *p, const char *role);
/* The caller's administrative reach within p->agency_id (NONE without one). */
identity_scope_t identity_admin_scope(const Beacon__Principal *p);
/* True when every one of ids[0..n) is among p's sites. */
bool identity_sites_within(const Beacon__Principal *p, char *const *ids, size_t n);
/* UNAUTHENTICATED without a caller (no staff, API key or operator),
 * PERMISSION_DENIED without an agency; else BC_OK. */
bc_code_t identity_require_caller(bc_call_t *call);
/* As identity_require_caller, and PERMISSION_DENIED without administrative
 * reach; sets *scope. */
bc_code_t identity_require_admin(bc_call_t *call, identity_scope_t *scope);
/* One of the eight roles of the schema. */
bool identity_role_valid(const char *role);
/* Roles a site_admin may grant. */
bool identity_role_site_level(const char *role);
/* Roles that need a second factor to be used at all. */
bool identity_role_needs_mfa(const char *role);

/* ---- Validation: NULL when valid, else the problem ---------------------- */

const char *identity_check_text(const char *value, bool required, size_t max_chars);
const char *identity_check_email(const char *value);
/* Empty is valid (optional); else 10 digits, Luhn-valid with prefix 80840. */
const char *identity_check_npi(const char *value);
/* Empty is valid; else a real YYYY-MM-DD date. */
const char *identity_check_date(const char *value);
/* A new password: bc_password_policy, and not the email or its local part. */
const char *identity_check_password(const char *password, const char *email, bc_error_t *err);
/* Fails call with INVALID_ARGUMENT naming field[i] unless each is a UUID,
 * and refuses more than max of them. */
bc_code_t identity_check_uuids(bc_call_t *call, const char *field, char *const *ids, size_t n,
                               size_t max);
/* Fails call with INVALID_ARGUMENT (field site_ids) unless every one of the
 * (already valid) UUIDs names a site of the caller's agency. */
bc_code_t identity_check_sites_exist(bc_call_t *call, char *const *sites, size_t n);
/* The partner rule for an account holding roles[0..n) (a key: one role):
 * with the partner role, organization_id must name an organisation of the
 * caller's agency's resource directory (referral.organizations); without it,
 * organization_id must be empty. INVALID_ARGUMENT (field organization_id). */
bc_code_t identity_check_partner_organization(bc_call_t *call, char *const *roles, size_t n,
                                              const char *organization_id);
/* Validates credentials (field "credentials[i].x" on failure). */
bc_code_t identity_check_credentials(bc_call_t *call, Beacon__Identity__Credential *const *c,
                                     size_t n);

/* ---- Text helpers ------------------------------------------------------- */

/* A PostgreSQL array literal of the strings (each quoted and escaped), in
 * the call's arena. */
char *identity_pg_array(bc_call_t *call, char *const *items, size_t n);
/* Splits comma-separated text into an arena array of *n strings. */
char **identity_split(bc_call_t *call, const char *csv, size_t *n);
/* Compact JSON text of obj (reference stolen) in the arena, for audit detail. */
char *identity_json(bc_call_t *call, json_t *obj);
/* Copies column col of row 0 into the arena. */
char *identity_col(bc_call_t *call, PGresult *res, int col);

/* ---- Transactions and audit --------------------------------------------- */

/* The audit chain of the worker handling call (NULL when the worker could
 * not open one: identity_audit then refuses, and the change is rolled back). */
bc_audit_chain_t *identity_audit_chain(const bc_call_t *call);
/* Appends ev inside the current transaction. request_id, the actor and
 * agency_id default to the call's envelope and principal. 0 or -1 (err). */
int identity_audit(bc_call_t *call, bc_audit_event_t *ev, bc_error_t *err);
/* BEGIN. */
int identity_begin(bc_call_t *call, bc_error_t *err);
/* COMMIT, telling the audit chain; on failure the chain rolls back. */
int identity_commit(bc_call_t *call, bc_error_t *err);
/* ROLLBACK, telling the audit chain. */
void identity_rollback(bc_call_t *call);
/* Rolls back and fails call with err. */
bc_code_t identity_fail(bc_call_t *call, const bc_error_t *err);
/* NOTIFY beacon_identity with "<kind>:<id>" at commit, so gateways caching
 * sessions drop what changed (kind: session, staff, api_key). */
int identity_notify(bc_call_t *call, const char *kind, const char *id, bc_error_t *err);

/* ---- Shared between resources ------------------------------------------- */

typedef struct {
    const char *given_name, *family_name, *email, *npi, *password_hash;
    char *const *roles;
    size_t n_roles;
    char *const *site_ids;
    size_t n_site_ids;
    Beacon__Identity__Credential *const *credentials;
    size_t n_credentials;
    const char *organization_id; /* partners: their directory organisation, else "" */
} identity_new_staff_t;

/* identity_staff.c: inserts a staff member with roles, sites and
 * credentials inside the current transaction; writes the new id. */
int identity_staff_insert(bc_call_t *call, const char *agency_id, const identity_new_staff_t *s,
                          char id[37], bc_error_t *err);
/* Loads staff id of agency_id (NULL *out when there is none). */
int identity_staff_load(bc_call_t *call, const char *agency_id, const char *id,
                        Beacon__Identity__Staff **out, bc_error_t *err);
/* identity_org.c: inserts a site inside the current transaction. */
int identity_site_insert(bc_call_t *call, const char *agency_id,
                         const Beacon__Identity__CreateSiteRequest *req,
                         Beacon__Identity__Site **out, bc_error_t *err);
/* identity_sessions.c: the principal of a live session or API key whose
 * token hashes to token_hash (refreshing the idle expiry at most once a
 * minute). BC_OK, BC_UNAUTHENTICATED (call failed) or a database error. */
bc_code_t identity_principal_for(bc_call_t *call, const char *token, const char *token_hash,
                                 Beacon__Identity__AuthenticateReply **out);

/* ---- Handlers ----------------------------------------------------------- */

#define IDENTITY_HANDLER(name)                                                                     \
    bc_code_t name(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
IDENTITY_HANDLER(identity_bootstrap);
IDENTITY_HANDLER(identity_agency_create);
IDENTITY_HANDLER(identity_site_create);
IDENTITY_HANDLER(identity_sites_list);
IDENTITY_HANDLER(identity_staff_create);
IDENTITY_HANDLER(identity_staff_get);
IDENTITY_HANDLER(identity_staff_update);
IDENTITY_HANDLER(identity_staff_disable);
IDENTITY_HANDLER(identity_login);
IDENTITY_HANDLER(identity_authenticate);
IDENTITY_HANDLER(identity_logout);
IDENTITY_HANDLER(identity_totp_enroll);
IDENTITY_HANDLER(identity_totp_confirm);
IDENTITY_HANDLER(identity_api_key_create);
IDENTITY_HANDLER(identity_api_key_revoke);
IDENTITY_HANDLER(identity_password_change);
IDENTITY_HANDLER(identity_password_reset);

#endif
