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
-- Only a partner key names an organisation. That a new partner key names
-- one is the handler's rule (identity_keys.c), not a CHECK: partner keys made
-- before this migration have none, and a CHECK would also refuse the
-- updates every key receives (last use, revocation). Such a key sees
-- nothing until it is replaced.
ALTER TABLE identity.api_keys ADD CONSTRAINT api_keys_partner_organization
    CHECK (organization_id IS NULL OR role = 'partner');
