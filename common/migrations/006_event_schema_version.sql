-- Events carry the version of their layout (beacon.Event schema_version,
-- BC_EVENT_SCHEMA_VERSION in common/bc_service.h), written with the event in
-- its transaction, so a consumer can refuse a version it does not know
-- instead of misreading a payload. Events written before this migration had
-- the layout of version 1.
ALTER TABLE events.outbox
    ADD COLUMN schema_version integer NOT NULL DEFAULT 1 CHECK (schema_version BETWEEN 1 AND 1000);
