-- Regions through the API (services/reporting/regions.c): an agency admin
-- creates a region (owner_agency_id: their agency, its first member); the
-- owner invites other agencies (accepted false) and each joins through its
-- own admins (accepted true). Dashboards count accepted members only.
-- Regions set up by the operator before (no owner) keep their members.
ALTER TABLE reporting.regions
    ADD COLUMN owner_agency_id uuid,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE reporting.region_agencies
    ADD COLUMN accepted boolean NOT NULL DEFAULT true;
CREATE INDEX regions_owner ON reporting.regions (owner_agency_id);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT INSERT ON reporting.regions TO beacon_service;
        -- (the row lock that orders changes to one region's members)
        GRANT UPDATE (owner_agency_id) ON reporting.regions TO beacon_service;
        GRANT INSERT, DELETE ON reporting.region_agencies TO beacon_service;
        GRANT UPDATE (accepted) ON reporting.region_agencies TO beacon_service;
    END IF;
END $$;
