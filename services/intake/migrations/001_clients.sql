-- Intake owns the client record. The full intake issue adds identifiers
-- (encrypted), contacts, enrollment, consent and assessments.
CREATE SCHEMA IF NOT EXISTS intake;
COMMENT ON SCHEMA intake IS 'Beacon intake service';

CREATE TABLE intake.clients (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    given_name         text NOT NULL CHECK (length(given_name) BETWEEN 1 AND 200),
    family_name        text NOT NULL CHECK (length(family_name) BETWEEN 1 AND 200),
    preferred_name     text CHECK (length(preferred_name) <= 200),
    pronouns           text CHECK (length(pronouns) <= 50),
    date_of_birth      date NOT NULL CHECK (date_of_birth >= DATE '1900-01-01'),
    preferred_language text CHECK (length(preferred_language) <= 35),
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'inactive', 'discharged')),
    created_by         text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX clients_name_dob ON intake.clients (lower(family_name), date_of_birth);
