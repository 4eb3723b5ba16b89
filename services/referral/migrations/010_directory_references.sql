-- References between the directory's large tables are checked by the
-- import, not by foreign keys.
--
-- The import (services/referral/import_write.c) is the only writer of the
-- directory. Before it writes, it decides every reference of every record:
-- to a record taken earlier in the same import, or to a stored one (asked
-- for in one statement per table); a record whose reference holds neither
-- way is refused and reported with its file, line and field. While it
-- writes, a record whose referenced record the database then refused is
-- refused in turn, unless that record was stored before. Rows are never
-- deleted (a record leaves service through its status: inactive, defunct),
-- and from here on the service cannot delete them (below), so a reference
-- that held when it was written holds for good.
--
-- Each foreign key checked each row again, one probe and one row lock of
-- the referenced row per reference: six per service of a typical dataset
-- (its organization, its place link's service and location, its language,
-- its category term). perf over 20,000 services: 24% of PostgreSQL's time
-- in the import was these checks; the import wrote 17% faster without them
-- (the phases of 40 imports of 500 services, alternating with and without).
--
-- Kept: the keys within organizations (parent) and taxonomy terms (parent,
-- taxonomy), small tables whose rows can refer to rows of the same
-- statement, and the referral's key to its service.
ALTER TABLE referral.services DROP CONSTRAINT services_agency_id_organization_id_fkey;
ALTER TABLE referral.locations DROP CONSTRAINT locations_agency_id_organization_id_fkey;
ALTER TABLE referral.service_at_location
    DROP CONSTRAINT service_at_location_agency_id_service_id_fkey,
    DROP CONSTRAINT service_at_location_agency_id_location_id_fkey;
ALTER TABLE referral.addresses DROP CONSTRAINT addresses_agency_id_location_id_fkey;
ALTER TABLE referral.phones
    DROP CONSTRAINT phones_agency_id_location_id_fkey,
    DROP CONSTRAINT phones_agency_id_service_id_fkey,
    DROP CONSTRAINT phones_agency_id_organization_id_fkey,
    DROP CONSTRAINT phones_agency_id_service_at_location_id_fkey;
ALTER TABLE referral.schedules
    DROP CONSTRAINT schedules_agency_id_service_id_fkey,
    DROP CONSTRAINT schedules_agency_id_location_id_fkey,
    DROP CONSTRAINT schedules_agency_id_service_at_location_id_fkey;
ALTER TABLE referral.attributes DROP CONSTRAINT attributes_agency_id_taxonomy_term_id_fkey;
ALTER TABLE referral.languages
    DROP CONSTRAINT languages_agency_id_service_id_fkey,
    DROP CONSTRAINT languages_agency_id_location_id_fkey,
    DROP CONSTRAINT languages_agency_id_phone_id_fkey;
ALTER TABLE referral.accessibility DROP CONSTRAINT accessibility_agency_id_location_id_fkey;

-- No deletes from the directory: the policies that allowed them go, and so
-- does the grant.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'services', 'locations', 'service_at_location',
                             'addresses', 'phones', 'schedules', 'taxonomies',
                             'taxonomy_terms', 'attributes', 'languages', 'accessibility']
    LOOP
        EXECUTE format('DROP POLICY %I ON referral.%I', t || '_remove', t);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
            EXECUTE format('REVOKE DELETE, TRUNCATE ON referral.%I FROM beacon_service', t);
        END IF;
    END LOOP;
END $$;
