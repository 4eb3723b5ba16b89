-- The community resource directory, modelled on Open Referral HSDS 3.0
-- (https://docs.openreferral.org/en/latest/hsds/schema_reference.html):
-- organizations, services, locations, service_at_location, addresses,
-- phones, schedules, taxonomies and taxonomy terms (linked to any record
-- through attributes), languages and accessibility. Column names follow the
-- HSDS field names, so an import or export maps one to one.
--
-- Each agency keeps its own directory: every table carries agency_id and its
-- key is (agency_id, id), HSDS ids being UUIDs. Two agencies may import the
-- same dataset; a second import of it into the same agency matches the same
-- keys and changes nothing. References between records are composite
-- foreign keys within the agency, so a dangling reference is refused by the
-- database as well as by the importer.
--
-- Directory data is not PHI. Who sees what (row-level security, FORCEd; each
-- policy reads the caller's scope once per statement, see scheduling 006):
--   peer_specialist, supervisor, site_admin, agency_admin   read their agency's directory
--   agency_admin                                            writes it (and imports)
--   anyone else (billing, analyst, partner, auditor)        nothing

CREATE TABLE referral.organizations (
    agency_id              uuid NOT NULL,
    id                     uuid NOT NULL,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    alternate_name         text CHECK (length(alternate_name) <= 500),
    description            text CHECK (length(description) <= 10000),
    email                  text CHECK (length(email) <= 320),
    website                text CHECK (length(website) <= 2000),
    tax_status             text CHECK (length(tax_status) <= 200),
    tax_id                 text CHECK (length(tax_id) <= 200),
    year_incorporated      integer CHECK (year_incorporated BETWEEN 1000 AND 9999),
    legal_status           text CHECK (length(legal_status) <= 200),
    logo                   text CHECK (length(logo) <= 2000),
    uri                    text CHECK (length(uri) <= 2000),
    parent_organization_id uuid,
    updated_by             uuid NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, parent_organization_id) REFERENCES referral.organizations
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE referral.services (
    agency_id               uuid NOT NULL,
    id                      uuid NOT NULL,
    organization_id         uuid NOT NULL,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    alternate_name          text CHECK (length(alternate_name) <= 500),
    description             text CHECK (length(description) <= 10000),
    url                     text CHECK (length(url) <= 2000),
    email                   text CHECK (length(email) <= 320),
    status                  text NOT NULL CHECK (status IN ('active', 'inactive', 'defunct',
                                                            'temporarily closed')),
    interpretation_services text CHECK (length(interpretation_services) <= 2000),
    application_process     text CHECK (length(application_process) <= 5000),
    fees_description        text CHECK (length(fees_description) <= 5000),
    wait_time               text CHECK (length(wait_time) <= 500),
    accreditations          text CHECK (length(accreditations) <= 2000),
    eligibility_description text CHECK (length(eligibility_description) <= 5000),
    minimum_age             numeric CHECK (minimum_age BETWEEN 0 AND 150),
    maximum_age             numeric CHECK (maximum_age BETWEEN 0 AND 150),
    assured_date            date,
    assurer_email           text CHECK (length(assurer_email) <= 320),
    licenses                text CHECK (length(licenses) <= 2000),
    alert                   text CHECK (length(alert) <= 2000),
    last_modified           timestamptz,
    -- Keyword search: name, alternate name and description, weighted; the
    -- search reads it with websearch_to_tsquery('english', ...).
    search                  tsvector GENERATED ALWAYS AS (
                                setweight(to_tsvector('english', coalesce(name, '')), 'A')
                                || setweight(to_tsvector('english', coalesce(alternate_name, '')), 'B')
                                || setweight(to_tsvector('english', coalesce(description, '')), 'C')
                            ) STORED,
    updated_by              uuid NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, organization_id) REFERENCES referral.organizations
        DEFERRABLE INITIALLY DEFERRED,
    CHECK (minimum_age IS NULL OR maximum_age IS NULL OR minimum_age <= maximum_age)
);
CREATE INDEX services_organization ON referral.services (agency_id, organization_id);
CREATE INDEX services_search ON referral.services USING gin (search);
CREATE INDEX services_status ON referral.services (agency_id, status);

CREATE TABLE referral.locations (
    agency_id                uuid NOT NULL,
    id                       uuid NOT NULL,
    location_type            text NOT NULL DEFAULT 'physical'
                                 CHECK (location_type IN ('physical', 'postal', 'virtual')),
    url                      text CHECK (length(url) <= 2000),
    organization_id          uuid,
    name                     text CHECK (length(name) <= 500),
    alternate_name           text CHECK (length(alternate_name) <= 500),
    description              text CHECK (length(description) <= 10000),
    transportation           text CHECK (length(transportation) <= 2000),
    latitude                 double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude                double precision CHECK (longitude BETWEEN -180 AND 180),
    external_identifier      text CHECK (length(external_identifier) <= 200),
    external_identifier_type text CHECK (length(external_identifier_type) <= 200),
    updated_by               uuid NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, organization_id) REFERENCES referral.organizations
        DEFERRABLE INITIALLY DEFERRED,
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
-- Distance search narrows on a latitude/longitude box first.
CREATE INDEX locations_position ON referral.locations (agency_id, latitude, longitude)
    WHERE latitude IS NOT NULL;

CREATE TABLE referral.service_at_location (
    agency_id   uuid NOT NULL,
    id          uuid NOT NULL,
    service_id  uuid NOT NULL,
    location_id uuid NOT NULL,
    description text CHECK (length(description) <= 10000),
    updated_by  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, service_id) REFERENCES referral.services DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX service_at_location_service ON referral.service_at_location (agency_id, service_id);
CREATE INDEX service_at_location_location ON referral.service_at_location (agency_id, location_id);

CREATE TABLE referral.addresses (
    agency_id      uuid NOT NULL,
    id             uuid NOT NULL,
    location_id    uuid NOT NULL,
    attention      text CHECK (length(attention) <= 500),
    address_1      text NOT NULL CHECK (length(address_1) BETWEEN 1 AND 500),
    address_2      text CHECK (length(address_2) <= 500),
    city           text NOT NULL CHECK (length(city) BETWEEN 1 AND 200),
    region         text CHECK (length(region) <= 200),
    state_province text NOT NULL CHECK (length(state_province) BETWEEN 1 AND 200),
    postal_code    text NOT NULL CHECK (length(postal_code) BETWEEN 1 AND 50),
    country        text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    address_type   text NOT NULL CHECK (address_type IN ('physical', 'postal', 'virtual')),
    updated_by     uuid NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX addresses_location ON referral.addresses (agency_id, location_id);

CREATE TABLE referral.phones (
    agency_id              uuid NOT NULL,
    id                     uuid NOT NULL,
    location_id            uuid,
    service_id             uuid,
    organization_id        uuid,
    service_at_location_id uuid,
    number                 text NOT NULL CHECK (length(number) BETWEEN 1 AND 100),
    extension              text CHECK (length(extension) <= 20),
    type                   text CHECK (type IN ('text', 'voice', 'fax', 'cell', 'video',
                                                'pager', 'textphone')),
    description            text CHECK (length(description) <= 2000),
    updated_by             uuid NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, service_id) REFERENCES referral.services DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, organization_id) REFERENCES referral.organizations
        DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, service_at_location_id) REFERENCES referral.service_at_location
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX phones_service ON referral.phones (agency_id, service_id);
CREATE INDEX phones_location ON referral.phones (agency_id, location_id);

-- Opening hours, one row per RFC 5545 recurrence as HSDS 3.0 has them; the
-- times are wall-clock times in the schedule's time zone.
CREATE TABLE referral.schedules (
    agency_id              uuid NOT NULL,
    id                     uuid NOT NULL,
    service_id             uuid,
    location_id            uuid,
    service_at_location_id uuid,
    valid_from             date,
    valid_to               date,
    dtstart                date,
    timezone               text CHECK (length(timezone) <= 64),
    until                  date,
    count                  integer CHECK (count >= 0),
    wkst                   text CHECK (wkst IN ('MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU')),
    freq                   text CHECK (freq IN ('WEEKLY', 'MONTHLY')),
    "interval"             integer CHECK ("interval" >= 1),
    byday                  text CHECK (byday ~ '^([+-]?[0-9]{0,2}(MO|TU|WE|TH|FR|SA|SU))(,[+-]?[0-9]{0,2}(MO|TU|WE|TH|FR|SA|SU))*$'),
    byweekno               text CHECK (length(byweekno) <= 200),
    bymonthday             text CHECK (length(bymonthday) <= 200),
    byyearday              text CHECK (length(byyearday) <= 200),
    description            text CHECK (length(description) <= 2000),
    opens_at               time,
    closes_at              time,
    schedule_link          text CHECK (length(schedule_link) <= 2000),
    attending_type         text CHECK (length(attending_type) <= 200),
    notes                  text CHECK (length(notes) <= 2000),
    updated_by             uuid NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, service_id) REFERENCES referral.services DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, service_at_location_id) REFERENCES referral.service_at_location
        DEFERRABLE INITIALLY DEFERRED,
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from <= valid_to)
);
CREATE INDEX schedules_service ON referral.schedules (agency_id, service_id);

CREATE TABLE referral.taxonomies (
    agency_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    description text NOT NULL CHECK (length(description) <= 5000),
    uri         text CHECK (length(uri) <= 2000),
    version     text CHECK (length(version) <= 100),
    updated_by  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id)
);

CREATE TABLE referral.taxonomy_terms (
    agency_id   uuid NOT NULL,
    id          uuid NOT NULL,
    code        text CHECK (length(code) <= 200),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    description text NOT NULL CHECK (length(description) <= 5000),
    parent_id   uuid,
    taxonomy    text CHECK (length(taxonomy) <= 500),
    language    text CHECK (length(language) <= 35),
    taxonomy_id uuid,
    term_uri    text CHECK (length(term_uri) <= 2000),
    updated_by  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, parent_id) REFERENCES referral.taxonomy_terms
        DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, taxonomy_id) REFERENCES referral.taxonomies
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX taxonomy_terms_code ON referral.taxonomy_terms (agency_id, code);

-- HSDS 3.0 links a taxonomy term to any record through an attribute
-- (link_entity names the table, link_id the row); the search's category
-- filter reads the service links.
CREATE TABLE referral.attributes (
    agency_id        uuid NOT NULL,
    id               uuid NOT NULL,
    link_id          uuid NOT NULL,
    taxonomy_term_id uuid NOT NULL,
    link_type        text CHECK (length(link_type) <= 200),
    link_entity      text NOT NULL CHECK (link_entity IN ('organization', 'service', 'location',
                                                          'service_at_location', 'address',
                                                          'phone', 'schedule', 'language',
                                                          'accessibility', 'taxonomy_term')),
    value            text CHECK (length(value) <= 2000),
    updated_by       uuid NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, taxonomy_term_id) REFERENCES referral.taxonomy_terms
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX attributes_term ON referral.attributes (agency_id, taxonomy_term_id, link_entity);
CREATE INDEX attributes_link ON referral.attributes (agency_id, link_id);

CREATE TABLE referral.languages (
    agency_id   uuid NOT NULL,
    id          uuid NOT NULL,
    service_id  uuid,
    location_id uuid,
    phone_id    uuid,
    name        text CHECK (length(name) <= 200),
    code        text CHECK (code ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$'),
    note        text CHECK (length(note) <= 2000),
    updated_by  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, service_id) REFERENCES referral.services DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (agency_id, phone_id) REFERENCES referral.phones DEFERRABLE INITIALLY DEFERRED,
    CHECK (name IS NOT NULL OR code IS NOT NULL)
);
CREATE INDEX languages_service ON referral.languages (agency_id, service_id);
CREATE INDEX languages_code ON referral.languages (agency_id, lower(code));

CREATE TABLE referral.accessibility (
    agency_id   uuid NOT NULL,
    id          uuid NOT NULL,
    location_id uuid,
    description text CHECK (length(description) <= 5000),
    details     text CHECK (length(details) <= 5000),
    url         text CHECK (length(url) <= 2000),
    updated_by  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id),
    FOREIGN KEY (agency_id, location_id) REFERENCES referral.locations DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX accessibility_location ON referral.accessibility (agency_id, location_id);

-- ---- Row security ----------------------------------------------------------
-- The same four policies on every directory table, written inline with
-- (SELECT scope.x()) so each is an init plan computed once per statement.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'services', 'locations', 'service_at_location',
                             'addresses', 'phones', 'schedules', 'taxonomies',
                             'taxonomy_terms', 'attributes', 'languages', 'accessibility']
    LOOP
        EXECUTE format('ALTER TABLE referral.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE referral.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON referral.%I FOR SELECT
            USING (agency_id = (SELECT scope.agency_id())
                   AND (SELECT scope.has_role('peer_specialist') OR scope.has_role('supervisor')
                            OR scope.has_role('site_admin') OR scope.has_role('agency_admin')))$p$,
            t || '_read', t);
        EXECUTE format($p$CREATE POLICY %I ON referral.%I FOR INSERT
            WITH CHECK (agency_id = (SELECT scope.agency_id())
                        AND (SELECT scope.has_role('agency_admin'))
                        AND updated_by = (SELECT scope.staff_id()))$p$,
            t || '_add', t);
        EXECUTE format($p$CREATE POLICY %I ON referral.%I FOR UPDATE
            USING (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('agency_admin')))
            WITH CHECK (agency_id = (SELECT scope.agency_id())
                        AND updated_by = (SELECT scope.staff_id()))$p$,
            t || '_change', t);
        EXECUTE format($p$CREATE POLICY %I ON referral.%I FOR DELETE
            USING (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('agency_admin')))$p$,
            t || '_remove', t);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON referral.%I TO beacon_service', t);
        END IF;
    END LOOP;
END $$;
