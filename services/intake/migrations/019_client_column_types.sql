-- Client columns bounded by their type instead of by CHECK constraints, for
-- the reason common/migrations/007 gives: PostgreSQL prepares every CHECK
-- constraint of a table afresh for each statement that writes a row, and
-- the fifteen length checks were most of that cost on a registration. A
-- varchar(n) enforces the same bound (in characters, as length() counted)
-- through the statement's own plan. The handlers check every length first
-- and answer with the field's name; these bounds are the database's own
-- guarantee behind them. The table is rewritten once.
ALTER TABLE intake.clients
    DROP CONSTRAINT clients_given_name_check,
    DROP CONSTRAINT clients_family_name_check,
    DROP CONSTRAINT clients_preferred_name_check,
    DROP CONSTRAINT clients_pronouns_check,
    DROP CONSTRAINT clients_preferred_language_check,
    DROP CONSTRAINT clients_phone_check,
    DROP CONSTRAINT clients_email_check,
    DROP CONSTRAINT clients_city_check,
    DROP CONSTRAINT clients_state_check,
    DROP CONSTRAINT clients_postal_code_check,
    DROP CONSTRAINT clients_emergency_contact_name_check,
    DROP CONSTRAINT clients_emergency_contact_relationship_check,
    DROP CONSTRAINT clients_emergency_contact_phone_check,
    ALTER COLUMN given_name TYPE varchar(200),
    ALTER COLUMN family_name TYPE varchar(200),
    ALTER COLUMN preferred_name TYPE varchar(200),
    ALTER COLUMN pronouns TYPE varchar(50),
    ALTER COLUMN preferred_language TYPE varchar(35),
    ALTER COLUMN phone TYPE varchar(40),
    ALTER COLUMN email TYPE varchar(254),
    ALTER COLUMN city TYPE varchar(100),
    ALTER COLUMN state TYPE varchar(100),
    ALTER COLUMN postal_code TYPE varchar(20),
    ALTER COLUMN emergency_contact_name TYPE varchar(200),
    ALTER COLUMN emergency_contact_relationship TYPE varchar(100),
    ALTER COLUMN emergency_contact_phone TYPE varchar(40),
    ADD CONSTRAINT clients_names_present CHECK (given_name <> '' AND family_name <> '');

-- The match keys' form, checked without a regular expression: PostgreSQL's
-- engine runs '^[0-9a-f]{64}$' as a 64-step counted repetition, which was
-- more than the rest of the row's checks together.
ALTER TABLE intake.client_match_keys
    DROP CONSTRAINT client_match_keys_medicaid_index_check,
    DROP CONSTRAINT client_match_keys_name_dob_index_check,
    ADD CONSTRAINT client_match_keys_form
        CHECK (length(name_dob_index) = 64 AND ltrim(name_dob_index, '0123456789abcdef') = ''
               AND (medicaid_index IS NULL
                    OR (length(medicaid_index) = 64
                        AND ltrim(medicaid_index, '0123456789abcdef') = '')));
