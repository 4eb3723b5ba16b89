-- Partner accounts act for one organisation of the agency's resource
-- directory (an HSDS organization, referral.organizations): they see and
-- work the referrals sent to that organisation's services, nothing else.
-- A staff account or API key holding the partner role names it here; the
-- handlers require it with the role and refuse it without (staff roles live
-- in their own table, so that rule cannot be a CHECK for staff). The
-- organisation is checked against the directory when the account is made;
-- no foreign key reaches into the referral schema (another service's,
-- migrated on its own), so a partner whose organisation later leaves the
-- directory simply sees no referral.
ALTER TABLE identity.staff ADD COLUMN organization_id uuid;
ALTER TABLE identity.api_keys ADD COLUMN organization_id uuid;
-- Keys made before this migration have none: NOT VALID keeps them as they
-- are (a partner key without an organisation sees nothing), every new or
-- changed key must follow the rule.
ALTER TABLE identity.api_keys ADD CONSTRAINT api_keys_partner_organization
    CHECK ((role = 'partner') = (organization_id IS NOT NULL)) NOT VALID;
