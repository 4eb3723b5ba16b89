-- Disclosure to a referral's receiving partner. The referral service, having
-- found (under the partner's own row security) a referral sent to the
-- partner's organisation, calls CheckConsent with a principal it builds for
-- that one call: role referral_disclosure, the partner's agency, and the
-- referral's site as the only site. That role exists in no account (the
-- identity schema's role CHECK excludes it), so the gateway never puts it in
-- a principal. It lets intake read the clients of that one site, and only
-- inside the transaction in which CheckConsent (consents.c, which refuses
-- the role for anything but the purpose referral) sets beacon.purpose;
-- every other method sees nothing with it. Partners themselves read
-- nothing here.
CREATE POLICY clients_referral_disclosure ON intake.clients FOR SELECT
    USING (scope.has_role('referral_disclosure')
           AND current_setting('beacon.purpose', true) = 'referral_disclosure'
           AND agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids()));
