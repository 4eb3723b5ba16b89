-- Idempotency keys (the Idempotency-Key header): the first successful
-- change made with a key stores its reply in the same transaction as the
-- change; a repeat of the same request with the same key gets that reply
-- again instead of a second change, for 24 hours. A key reused for a
-- different request is refused. Keys belong to a caller (staff member or
-- API key): row security keeps each caller to their own.
CREATE SCHEMA IF NOT EXISTS rpc;
COMMENT ON SCHEMA rpc IS 'Beacon: what the services remember about requests (idempotency)';

CREATE TABLE rpc.idempotency (
    service      text NOT NULL CHECK (length(service) BETWEEN 1 AND 64),
    caller       text NOT NULL CHECK (length(caller) BETWEEN 1 AND 128),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method       text NOT NULL CHECK (length(method) BETWEEN 1 AND 128),
    request_hash bytea NOT NULL CHECK (octet_length(request_hash) = 32),
    reply        bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, caller, key)
);
CREATE INDEX idempotency_created ON rpc.idempotency (created_at);

CREATE FUNCTION rpc.caller() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('beacon.staff_id', true), ''),
                    nullif(current_setting('beacon.api_key_id', true), ''))
$$;

ALTER TABLE rpc.idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE rpc.idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_own ON rpc.idempotency
    USING (caller = rpc.caller()) WITH CHECK (caller = rpc.caller());

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA rpc TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON rpc.idempotency TO beacon_service;
    END IF;
END $$;
