-- Identity and access: agencies, sites, staff, roles, sessions, API keys and
-- login throttling. Owned by the gateway, which hosts the identity service
-- in-process (services/gateway/identity_service.c); recorded as "gateway".
--
-- Secrets are never stored in the clear: passwords as Argon2id PHC strings,
-- session tokens and API keys as the hex SHA-256 of the token
-- (common/bc_auth.h). TOTP secrets are bytea (to be encrypted at rest with the
-- field-encryption work).
--
-- No row-level security here: no service but identity gets any privilege on
-- this schema, and identity's handlers scope every query by the caller's
-- agency (login has to find an account by email before any scope exists).
CREATE SCHEMA IF NOT EXISTS identity;
COMMENT ON SCHEMA identity IS 'Beacon identity and access (hosted by the gateway)';

-- Times leave the service as RFC 3339 UTC text with milliseconds; NULL as ''.
CREATE FUNCTION identity.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT coalesce(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), '')
$$;

CREATE TABLE identity.agencies (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agencies_name ON identity.agencies (lower(name));

-- time_zone is an IANA name, checked against pg_timezone_names on insert
-- (a CHECK cannot consult a catalog view).
CREATE TABLE identity.sites (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id           uuid NOT NULL REFERENCES identity.agencies,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    time_zone           text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    address_lines       text[] NOT NULL DEFAULT '{}'
                        CHECK (cardinality(address_lines) <= 4),
    city                text NOT NULL DEFAULT '' CHECK (length(city) <= 100),
    state               text NOT NULL DEFAULT '' CHECK (length(state) <= 100),
    postal_code         text NOT NULL DEFAULT '' CHECK (length(postal_code) <= 20),
    allow_site_caseload boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency_id, id)
);
CREATE UNIQUE INDEX sites_agency_name ON identity.sites (agency_id, lower(name));

-- email is unique without regard to case (no citext: lower(email) index).
-- failed_logins and locked_until mirror what identity.login_attempts says
-- (that log decides; these are for admins to see).
CREATE TABLE identity.staff (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id           uuid NOT NULL REFERENCES identity.agencies,
    given_name          text NOT NULL CHECK (length(given_name) BETWEEN 1 AND 200),
    family_name         text NOT NULL CHECK (length(family_name) BETWEEN 1 AND 200),
    email               text NOT NULL CHECK (octet_length(email) BETWEEN 3 AND 254),
    npi                 text CHECK (npi ~ '^[0-9]{10}$'),
    password_hash       text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    totp_secret         bytea CHECK (octet_length(totp_secret) BETWEEN 10 AND 64),
    totp_pending_secret bytea CHECK (octet_length(totp_pending_secret) BETWEEN 10 AND 64),
    totp_last_step      bigint NOT NULL DEFAULT -1,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    failed_logins       integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency_id, id)
);
CREATE UNIQUE INDEX staff_email ON identity.staff (lower(email));
CREATE UNIQUE INDEX staff_npi ON identity.staff (npi) WHERE npi IS NOT NULL;

-- A staff member's sites belong to the staff member's agency (composite keys).
CREATE TABLE identity.staff_sites (
    staff_id  uuid NOT NULL,
    site_id   uuid NOT NULL,
    agency_id uuid NOT NULL,
    PRIMARY KEY (staff_id, site_id),
    FOREIGN KEY (agency_id, staff_id) REFERENCES identity.staff (agency_id, id),
    FOREIGN KEY (agency_id, site_id) REFERENCES identity.sites (agency_id, id)
);
CREATE INDEX staff_sites_site ON identity.staff_sites (site_id);

CREATE TABLE identity.staff_roles (
    staff_id uuid NOT NULL REFERENCES identity.staff,
    role     text NOT NULL CHECK (role IN ('peer_specialist', 'supervisor', 'site_admin',
                                           'agency_admin', 'billing', 'analyst', 'partner',
                                           'auditor')),
    PRIMARY KEY (staff_id, role)
);

CREATE TABLE identity.credentials (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    staff_id   uuid NOT NULL REFERENCES identity.staff,
    kind       text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{1,63}$'),
    number     text NOT NULL DEFAULT '' CHECK (length(number) <= 100),
    issued_on  date,
    expires_on date CHECK (expires_on >= issued_on)
);
CREATE INDEX credentials_staff ON identity.credentials (staff_id);
CREATE INDEX credentials_expiry ON identity.credentials (expires_on) WHERE expires_on IS NOT NULL;

-- Sessions are revoked (revoked_at), never deleted: the rows are the record
-- of who was signed in from where. mfa: a second factor was presented;
-- roles that require one are withheld from sessions without it.
CREATE TABLE identity.sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash          text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    staff_id            uuid NOT NULL REFERENCES identity.staff,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    remote_addr         text CHECK (length(remote_addr) <= 64),
    mfa                 boolean NOT NULL DEFAULT false
);
CREATE INDEX sessions_staff_live ON identity.sessions (staff_id) WHERE revoked_at IS NULL;

-- API keys act for the agency (not for the staff member who made them): one
-- role, a set of sites.
CREATE TABLE identity.api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_hash     text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    agency_id    uuid NOT NULL REFERENCES identity.agencies,
    role         text NOT NULL CHECK (role IN ('billing', 'analyst', 'partner', 'auditor')),
    created_by   uuid NOT NULL REFERENCES identity.staff,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz,
    UNIQUE (agency_id, id)
);

CREATE TABLE identity.api_key_sites (
    api_key_id uuid NOT NULL,
    site_id    uuid NOT NULL,
    agency_id  uuid NOT NULL,
    PRIMARY KEY (api_key_id, site_id),
    FOREIGN KEY (agency_id, api_key_id) REFERENCES identity.api_keys (agency_id, id),
    FOREIGN KEY (agency_id, site_id) REFERENCES identity.sites (agency_id, id)
);

-- Every login attempt, for throttling (sliding 15-minute windows per email
-- and per remote address) and for the record. An attempt is written as
-- 'pending' before the password is checked (it counts as a failure until it
-- is settled), so concurrent guesses cannot overrun the limits.
-- email_key is lower(email) as typed, whether or not such an account exists,
-- so that locking treats unknown emails exactly like real ones.
CREATE TABLE identity.login_attempts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    email_key   text NOT NULL CHECK (octet_length(email_key) <= 1024),
    remote_addr text CHECK (length(remote_addr) <= 64),
    staff_id    uuid REFERENCES identity.staff,
    outcome     text NOT NULL CHECK (outcome IN ('pending', 'ok', 'failed', 'locked',
                                                 'mfa_required'))
);
CREATE INDEX login_attempts_email ON identity.login_attempts (email_key, at);
CREATE INDEX login_attempts_addr ON identity.login_attempts (remote_addr, at)
    WHERE remote_addr IS NOT NULL;

-- The service's role (beacon_app logs in as a member of beacon_service and
-- owns nothing) gets exactly what the handlers do: no DELETE except on the
-- join tables an update replaces, UPDATE only on the columns that change.
REVOKE ALL ON ALL TABLES IN SCHEMA identity FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA identity TO beacon_service;
        GRANT SELECT, INSERT ON identity.agencies, identity.sites, identity.api_key_sites,
            identity.staff, identity.sessions, identity.api_keys, identity.login_attempts
            TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON identity.staff_sites, identity.staff_roles,
            identity.credentials TO beacon_service;
        GRANT UPDATE (given_name, family_name, password_hash, totp_secret, totp_pending_secret,
                      totp_last_step, status, failed_logins, locked_until, updated_at)
            ON identity.staff TO beacon_service;
        GRANT UPDATE (last_seen_at, idle_expires_at, revoked_at)
            ON identity.sessions TO beacon_service;
        GRANT UPDATE (revoked_at, last_used_at) ON identity.api_keys TO beacon_service;
        GRANT UPDATE (outcome) ON identity.login_attempts TO beacon_service;
    END IF;
END $$;
