-- The tamper-evident audit log (common/bc_audit.h has the design).
--
-- Every service applies this file at start as pseudo-service "common"; the
-- runner's advisory lock makes concurrent starts apply it once.
--
--   audit.chains   one row per writer (a worker thread's chain), registered
--                  before the chain's first event
--   audit.events   one row per audited action; (chain, seq) numbers each
--                  chain 1, 2, 3, ...; hash = SHA-256 over prev_hash and the
--                  row's canonical encoding, computed in C (bc_audit.c)
--   audit.anchors  (chain, seq, hash) copies of a chain's head written every
--                  N events or T seconds, so a deleted tail is detected
--
-- Append-only: triggers refuse UPDATE, DELETE and TRUNCATE on all three
-- tables for every role, owners included (an owner can still disable the
-- triggers; the hash chains are what detect that). The application role
-- gets SELECT and INSERT only.
--
-- chain is COLLATE "C" so that ORDER BY chain is byte order: the verifier
-- merges three streams ordered by chain and compares them with strcmp.
CREATE SCHEMA IF NOT EXISTS audit;
COMMENT ON SCHEMA audit IS 'Beacon tamper-evident audit log (append-only, hash-chained)';

CREATE TABLE audit.chains (
    chain      text COLLATE "C" PRIMARY KEY CHECK (length(chain) BETWEEN 1 AND 200),
    service    text NOT NULL CHECK (length(service) BETWEEN 1 AND 64),
    worker     integer NOT NULL CHECK (worker >= 0),
    host       text NOT NULL DEFAULT '',
    pid        integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Ids are text: they are stored exactly as given (the hash covers the exact
-- bytes), whatever form the owning service uses. Empty values are NULL.
CREATE TABLE audit.events (
    chain            text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL CHECK (seq >= 1),
    at               timestamptz NOT NULL,
    request_id       text CHECK (octet_length(request_id) <= 128),
    actor_staff_id   text CHECK (octet_length(actor_staff_id) <= 128),
    actor_api_key_id text CHECK (octet_length(actor_api_key_id) <= 128),
    agency_id        text CHECK (octet_length(agency_id) <= 128),
    site_id          text CHECK (octet_length(site_id) <= 128),
    action           text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]{0,31}$'),
    resource_type    text CHECK (octet_length(resource_type) <= 64),
    resource_id      text CHECK (octet_length(resource_id) <= 128),
    client_id        text CHECK (octet_length(client_id) <= 128),
    purpose          text CHECK (octet_length(purpose) <= 512),
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    -- json, not jsonb: json keeps the exact text, which the hash covers.
    detail           json CHECK (octet_length(detail::text) <= 8192),
    prev_hash        bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash             bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (chain, seq)
);

-- "Who accessed this client" and "what did this person do".
CREATE INDEX events_client_at ON audit.events (client_id, at) WHERE client_id IS NOT NULL;
CREATE INDEX events_staff_at ON audit.events (actor_staff_id, at)
    WHERE actor_staff_id IS NOT NULL;

CREATE TABLE audit.anchors (
    chain text COLLATE "C" NOT NULL,
    seq   bigint NOT NULL CHECK (seq >= 1),
    hash  bytea NOT NULL CHECK (octet_length(hash) = 32),
    at    timestamptz NOT NULL,
    PRIMARY KEY (chain, seq)
);

COMMENT ON TABLE audit.events IS
    'Append-only audit events, one hash chain per writer; beacon-audit-verify checks them';
COMMENT ON TABLE audit.anchors IS
    'Periodic copies of each chain''s head hash; a deleted tail shows as an anchor past the end';

CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'audit.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER chains_append_only BEFORE UPDATE OR DELETE ON audit.chains
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER chains_no_truncate BEFORE TRUNCATE ON audit.chains
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER anchors_append_only BEFORE UPDATE OR DELETE ON audit.anchors
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER anchors_no_truncate BEFORE TRUNCATE ON audit.anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Privileges. Nobody but the owner gets anything by default; the services'
-- role may read and append, never change. Guarded: the roles exist in
-- deployments made by deploy/pg-cluster.sh and docker-compose.yml, not
-- necessarily elsewhere.
REVOKE ALL ON audit.events, audit.chains, audit.anchors FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA audit TO beacon_service;
        GRANT SELECT, INSERT ON audit.events, audit.chains, audit.anchors TO beacon_service;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON audit.events, audit.chains, audit.anchors FROM beacon_service;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON audit.events, audit.chains, audit.anchors FROM beacon_app;
    END IF;
END $$;
