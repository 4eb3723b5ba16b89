-- Partner organisations work the referrals sent to them.
--
-- A partner account (role partner, staff or API key) acts for one
-- organisation of the agency's directory: identity puts its id into the
-- principal, and the dispatcher into the setting beacon.organization_id.
-- Each referral to a service of the directory records the service's
-- organisation when it is made (organization_id), so a later change to the
-- directory does not hand a referral to somebody else.
--
-- What a partner sees (row-level security, FORCEd as before):
--   referrals              those sent to its organisation, of its agency
--   referral_changes       their history; it adds changes to them
--   organizations          its own organisation
--   services               its organisation's services
-- A partner never reads intake: the client's details reach it only through
-- the referral service, after intake's consent check (referrals.c,
-- partner.c). reason_category is the coarse, de-identified why of a
-- referral that a partner without the client's consent is shown.

-- The partner organisation of the caller, or NULL.
CREATE FUNCTION referral.partner_organization_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN scope.has_role('partner')
                THEN nullif(current_setting('beacon.organization_id', true), '')::uuid END
$$;

-- Who acts: a staff member, or an integration's API key.
CREATE FUNCTION referral.actor_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT coalesce(scope.staff_id(),
                    nullif(current_setting('beacon.api_key_id', true), '')::uuid)
$$;

ALTER TABLE referral.referrals
    ADD COLUMN organization_id uuid,
    ADD COLUMN reason_category text NOT NULL DEFAULT 'other'
        CHECK (reason_category IN ('housing', 'employment', 'treatment', 'mental_health',
                                   'harm_reduction', 'benefits', 'food', 'legal',
                                   'transportation', 'health_care', 'other'));
-- Referrals made before this migration: their organisation, from the
-- directory (row security is lifted for this statement only, inside the
-- migration's transaction).
ALTER TABLE referral.referrals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.services NO FORCE ROW LEVEL SECURITY;
UPDATE referral.referrals r SET organization_id = s.organization_id
FROM referral.services s WHERE s.agency_id = r.agency_id AND s.id = r.service_id;
ALTER TABLE referral.referrals FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.services FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.referrals
    ADD CONSTRAINT referrals_organization CHECK ((service_id IS NULL) = (organization_id IS NULL));
CREATE INDEX referrals_organization ON referral.referrals (agency_id, organization_id, created_at)
    WHERE organization_id IS NOT NULL;

-- A partner's change is marked with its organisation.
ALTER TABLE referral.referral_changes ADD COLUMN organization_id uuid;

CREATE POLICY referrals_partner_read ON referral.referrals FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND organization_id = (SELECT referral.partner_organization_id()));
CREATE POLICY referrals_partner_change ON referral.referrals FOR UPDATE
    USING (agency_id = (SELECT scope.agency_id())
           AND organization_id = (SELECT referral.partner_organization_id()))
    WITH CHECK (organization_id = (SELECT referral.partner_organization_id())
                AND updated_by = (SELECT referral.actor_id()));

CREATE POLICY referral_changes_partner_read ON referral.referral_changes FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND (SELECT referral.partner_organization_id()) IS NOT NULL
           AND EXISTS (SELECT FROM referral.referrals r WHERE r.id = referral_id));
CREATE POLICY referral_changes_partner_add ON referral.referral_changes FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND organization_id = (SELECT referral.partner_organization_id())
                AND changed_by = (SELECT referral.actor_id()));

CREATE POLICY organizations_partner_read ON referral.organizations FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND id = (SELECT referral.partner_organization_id()));
CREATE POLICY services_partner_read ON referral.services FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND organization_id = (SELECT referral.partner_organization_id()));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT EXECUTE ON FUNCTION referral.partner_organization_id(), referral.actor_id()
            TO beacon_service;
    END IF;
END $$;
