-- Referrals: a client sent to a service of the directory (or to a resource
-- outside it, named in free text), followed through the FHIR Task
-- lifecycle until the loop is closed with an outcome.
--
--   requested -> received -> accepted -> in-progress <-> on-hold -> completed
--   with rejected, cancelled and failed as the other ends.
-- The handler (referrals.c) enforces the order; the table holds the rules
-- that must never break: a terminal status has an outcome, a live one none.
-- Every change is kept in referral_changes (who, when, from, to, outcome).
--
-- Who sees what (row-level security, FORCEd; scope read once per statement):
--   supervisor        every referral at their sites
--   peer_specialist   referrals they made, and those of clients they may read
--                     in intake (intake.client_ref, with their scope)
--   anyone else       nothing (partners come with the partner issue step)

CREATE TABLE referral.referrals (
    id                 uuid PRIMARY KEY,
    agency_id          uuid NOT NULL,
    site_id            uuid NOT NULL,   -- the client's site when referred
    client_id          uuid NOT NULL,
    service_id         uuid,
    external_resource  text CHECK (length(external_resource) BETWEEN 1 AND 500),
    reason             text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    urgency            text NOT NULL CHECK (urgency IN ('routine', 'urgent', 'asap', 'stat')),
    notes_for_receiver text CHECK (length(notes_for_receiver) <= 4000),
    referred_by        uuid NOT NULL,
    follow_up_on       date,
    status             text NOT NULL DEFAULT 'requested'
                           CHECK (status IN ('requested', 'received', 'accepted', 'rejected',
                                             'in-progress', 'on-hold', 'completed',
                                             'cancelled', 'failed')),
    outcome            text CHECK (outcome IN ('got_help', 'not_eligible', 'no_capacity',
                                               'could_not_contact', 'no_longer_interested',
                                               'referred_elsewhere')),
    outcome_note       text CHECK (length(outcome_note) <= 2000),
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         uuid NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    FOREIGN KEY (agency_id, service_id) REFERENCES referral.services,
    CHECK ((service_id IS NULL) <> (external_resource IS NULL)),
    CHECK ((status IN ('rejected', 'completed', 'cancelled', 'failed'))
           = (outcome IS NOT NULL AND closed_at IS NOT NULL))
);
CREATE INDEX referrals_client ON referral.referrals (client_id, created_at);
CREATE INDEX referrals_referrer ON referral.referrals (referred_by, created_at);
-- The follow-up list: live referrals by date.
CREATE INDEX referrals_follow_up ON referral.referrals (agency_id, follow_up_on)
    WHERE status NOT IN ('rejected', 'completed', 'cancelled', 'failed');

CREATE TABLE referral.referral_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id uuid NOT NULL REFERENCES referral.referrals,
    agency_id   uuid NOT NULL,
    site_id     uuid NOT NULL,
    client_id   uuid NOT NULL,
    referred_by uuid NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    outcome     text,
    note        text CHECK (length(note) <= 2000),
    changed_by  uuid NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_changes_referral ON referral.referral_changes (referral_id, id);

ALTER TABLE referral.referrals ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral.referrals FORCE ROW LEVEL SECURITY;
CREATE POLICY referrals_read ON referral.referrals FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor'))
                OR ((SELECT scope.has_role('peer_specialist'))
                    AND (referred_by = (SELECT scope.staff_id())
                         OR EXISTS (SELECT FROM intake.client_ref(client_id))))));
CREATE POLICY referrals_add ON referral.referrals FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
                AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist'))
                AND referred_by = (SELECT scope.staff_id())
                AND updated_by = (SELECT scope.staff_id()));
CREATE POLICY referrals_change ON referral.referrals FOR UPDATE
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist')))
    WITH CHECK (updated_by = (SELECT scope.staff_id()));

ALTER TABLE referral.referral_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral.referral_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY referral_changes_read ON referral.referral_changes FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor'))
                OR ((SELECT scope.has_role('peer_specialist'))
                    AND (referred_by = (SELECT scope.staff_id())
                         OR EXISTS (SELECT FROM intake.client_ref(client_id))))));
CREATE POLICY referral_changes_add ON referral.referral_changes FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
                AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist'))
                AND changed_by = (SELECT scope.staff_id()));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON referral.referrals, referral.referral_changes TO beacon_service;
        GRANT UPDATE (status, outcome, outcome_note, version, updated_by, updated_at, closed_at)
            ON referral.referrals TO beacon_service;
    END IF;
END $$;
