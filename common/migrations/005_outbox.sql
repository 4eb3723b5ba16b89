-- The transactional outbox (DESIGN.md, "Events via transactional outbox").
-- A service writes its change and the event describing it in the same
-- transaction (bc_call_emit), so an event exists exactly when its change
-- committed. The service's relay then gives each event of a producer the
-- next publication number (published_seq: 1, 2, 3... without gaps, in the
-- order it publishes them), publishes it on the producer's PUB socket and
-- keeps the row, so subscribers that missed some ask for them again
-- (ReplayEvents). Payloads carry ids and codes, never names or notes.
CREATE SCHEMA IF NOT EXISTS events;
COMMENT ON SCHEMA events IS 'Beacon: events each service emits, in the transaction of their change';

CREATE TABLE events.outbox (
    id            bigserial PRIMARY KEY,
    producer      text NOT NULL CHECK (producer ~ '^[a-z][a-z0-9_]{0,31}$'),
    topic         text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9_.]{0,63}$'),
    payload       bytea NOT NULL CHECK (octet_length(payload) <= 65536),
    request_id    text CHECK (length(request_id) <= 128),
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_seq bigint CHECK (published_seq >= 1),
    published_at  timestamptz,
    UNIQUE (producer, published_seq)
);
CREATE INDEX outbox_unpublished ON events.outbox (producer, id) WHERE published_seq IS NULL;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA events TO beacon_service;
        GRANT SELECT, INSERT ON events.outbox TO beacon_service;
        GRANT UPDATE (published_seq, published_at) ON events.outbox TO beacon_service;
        GRANT USAGE ON SEQUENCE events.outbox_id_seq TO beacon_service;
    END IF;
END $$;
