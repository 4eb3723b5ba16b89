-- Medicaid billing (README, "Billing"): per-payer configuration, claims
-- built from completed encounters, batches written as X12 837P files.
--
-- Exactly once: an encounter has at most one original claim (frequency 1),
-- enforced here by a unique index, not only by the service. A replacement
-- (7) or void (8) points at the original it corrects; at most one
-- correction of a claim waits to be sent at a time.
--
-- Who: the billing role reads and works claims and batches of its sites; an
-- agency_admin configures payers. Clinical staff see none of it. Every
-- billing table FORCEs row security.
CREATE SCHEMA IF NOT EXISTS billing;
COMMENT ON SCHEMA billing IS 'Beacon billing (served by the scheduling service)';

CREATE TABLE billing.configs (
    agency_id  uuid NOT NULL,
    payer_id   text NOT NULL CHECK (payer_id ~ '^[A-Za-z0-9-]{1,80}$'),
    config     jsonb NOT NULL,          -- beacon.billing.BillingConfig, checked by the service
    version    integer NOT NULL DEFAULT 1,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, payer_id)
);

-- Interchange control numbers (ISA13/GS06), unique per sender: one
-- sequence for every agency, so no two files ever share one.
CREATE SEQUENCE billing.interchange_control MINVALUE 1 MAXVALUE 999999999 NO CYCLE;

CREATE TABLE billing.batches (
    id                  uuid PRIMARY KEY,
    agency_id           uuid NOT NULL,
    payer_id            text NOT NULL,
    from_date           date NOT NULL,
    to_date             date NOT NULL CHECK (to_date >= from_date),
    control_number      bigint NOT NULL UNIQUE,
    claim_count         integer NOT NULL,
    total_cents         bigint NOT NULL,
    held_count          integer NOT NULL DEFAULT 0,
    replacement_count   integer NOT NULL DEFAULT 0,
    void_count          integer NOT NULL DEFAULT 0,
    parts               integer NOT NULL,
    csv_parts           integer NOT NULL,
    bytes               bigint NOT NULL,
    site_ids            uuid[] NOT NULL,  -- the sites whose claims it holds
    created_by          text NOT NULL,      -- staff or API key id
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_agency ON billing.batches (agency_id, payer_id, created_at DESC);

-- The files, in parts (each one reply): sealed with the field keys
-- (AES-256-GCM, associated data billing.batch_parts:<batch>:<kind>:<part>),
-- as they hold Medicaid IDs and names.
CREATE TABLE billing.batch_parts (
    batch_id  uuid NOT NULL REFERENCES billing.batches DEFERRABLE INITIALLY DEFERRED,
    agency_id uuid NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('837p', 'csv')),
    part      integer NOT NULL CHECK (part >= 1),
    body_enc  text NOT NULL,
    PRIMARY KEY (batch_id, kind, part)
);

CREATE TABLE billing.claims (
    id                 uuid PRIMARY KEY,
    agency_id          uuid NOT NULL,
    site_id            uuid NOT NULL,
    payer_id           text NOT NULL,
    -- No foreign key: encounters are never deleted (the service has no
    -- DELETE on them), and a key would lock every billed encounter's row.
    encounter_id       uuid NOT NULL,
    client_id          uuid NOT NULL,
    frequency          text NOT NULL DEFAULT '1' CHECK (frequency IN ('1', '7', '8')),
    original_claim_id  uuid REFERENCES billing.claims,
    original_ref       text NOT NULL DEFAULT '',  -- REF*F8 of a 7 or 8: what it corrects
    status             text NOT NULL CHECK (status IN ('held', 'ready', 'submitted', 'accepted',
                                                       'rejected', 'paid', 'denied', 'replaced',
                                                       'voided')),
    hold_reasons       text[] NOT NULL DEFAULT '{}',
    service_date       date NOT NULL,
    minutes            integer NOT NULL,
    place_of_service   text NOT NULL,
    procedure          text NOT NULL,
    modifiers          text[] NOT NULL DEFAULT '{}',
    units              integer NOT NULL CHECK (units >= 0),
    charge_cents       bigint NOT NULL CHECK (charge_cents >= 0),
    diagnoses          text[] NOT NULL DEFAULT '{}',
    -- What was billed, as billed (X12-safe, upper case); the Medicaid ID
    -- sealed (associated data billing.claims.medicaid_id:<claim id>).
    subscriber_last    text NOT NULL DEFAULT '',
    subscriber_first   text NOT NULL DEFAULT '',
    subscriber_dob     date,
    subscriber_sex     text NOT NULL DEFAULT 'U',
    subscriber_address text NOT NULL DEFAULT '',
    subscriber_city    text NOT NULL DEFAULT '',
    subscriber_state   text NOT NULL DEFAULT '',
    subscriber_postal  text NOT NULL DEFAULT '',
    medicaid_id_enc    text,
    medicaid_id_last4  text NOT NULL DEFAULT '',
    consent_id         uuid,
    batch_id           uuid REFERENCES billing.batches DEFERRABLE INITIALLY DEFERRED,
    paid_cents         bigint NOT NULL DEFAULT 0,
    payer_claim_number text NOT NULL DEFAULT '',
    status_reason      text NOT NULL DEFAULT '' CHECK (length(status_reason) <= 500),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((frequency = '1') = (original_claim_id IS NULL)),
    CHECK (status <> 'held' OR cardinality(hold_reasons) > 0)
);
-- The exactly-once rule: one original claim per encounter, whatever the payer.
CREATE UNIQUE INDEX claims_one_original ON billing.claims (encounter_id) WHERE frequency = '1';
-- One correction waiting at a time.
CREATE UNIQUE INDEX claims_one_pending_correction ON billing.claims (original_claim_id)
    WHERE frequency <> '1' AND status IN ('ready', 'held');
CREATE INDEX claims_status ON billing.claims (agency_id, status, created_at, id);
CREATE INDEX claims_batch ON billing.claims (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX claims_client_day ON billing.claims (client_id, service_date);

-- Encounters, for billing: the billing role reads those of its sites, only
-- inside a transaction of the billing service (beacon.purpose = billing).
CREATE POLICY encounters_billing ON scheduling.encounters FOR SELECT
    USING ((SELECT scope.has_role('billing'))
           AND (SELECT current_setting('beacon.purpose', true) = 'billing')
           AND agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));

ALTER TABLE billing.configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.configs FORCE ROW LEVEL SECURITY;
CREATE POLICY configs_read ON billing.configs FOR SELECT
    USING (agency_id = scope.agency_id()
           AND (scope.has_role('agency_admin') OR scope.has_role('billing')));
CREATE POLICY configs_write ON billing.configs FOR INSERT
    WITH CHECK (agency_id = scope.agency_id() AND scope.has_role('agency_admin'));
CREATE POLICY configs_change ON billing.configs FOR UPDATE
    USING (agency_id = scope.agency_id() AND scope.has_role('agency_admin'))
    WITH CHECK (agency_id = scope.agency_id() AND scope.has_role('agency_admin'));

ALTER TABLE billing.claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.claims FORCE ROW LEVEL SECURITY;
CREATE POLICY claims_billing ON billing.claims FOR ALL
    USING ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[]))
    WITH CHECK ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));

-- A batch is visible to billing staff holding every site it covers.
ALTER TABLE billing.batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.batches FORCE ROW LEVEL SECURITY;
CREATE POLICY batches_billing ON billing.batches FOR ALL
    USING ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id())
           AND site_ids <@ (SELECT scope.site_ids()))
    WITH CHECK ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id())
                AND site_ids <@ (SELECT scope.site_ids()));
ALTER TABLE billing.batch_parts ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.batch_parts FORCE ROW LEVEL SECURITY;
-- Parts are written before their batch row (which carries the totals) and
-- read only after the batch itself was found under its policy.
CREATE POLICY batch_parts_billing ON billing.batch_parts FOR ALL
    USING ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id()))
    WITH CHECK ((SELECT scope.has_role('billing')) AND agency_id = (SELECT scope.agency_id()));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA billing TO beacon_service;
        GRANT SELECT, INSERT, UPDATE ON billing.configs TO beacon_service;
        GRANT SELECT, INSERT ON billing.batches, billing.batch_parts TO beacon_service;
        GRANT SELECT, INSERT ON billing.claims TO beacon_service;
        GRANT UPDATE (status, hold_reasons, service_date, minutes, place_of_service, procedure,
                      modifiers, units, charge_cents, diagnoses, subscriber_last,
                      subscriber_first, subscriber_dob, subscriber_sex, subscriber_address,
                      subscriber_city, subscriber_state, subscriber_postal, medicaid_id_enc,
                      medicaid_id_last4, consent_id, batch_id, paid_cents, payer_claim_number,
                      status_reason, updated_at, payer_id)
            ON billing.claims TO beacon_service;
        GRANT USAGE ON SEQUENCE billing.interchange_control TO beacon_service;
    END IF;
END $$;

-- Parts are sealed (random bytes as base64): compressing them is wasted work.
ALTER TABLE billing.batch_parts ALTER COLUMN body_enc SET STORAGE EXTERNAL;
