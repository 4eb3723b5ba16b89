-- Agency and region dashboards read the referral outcome mix by agency.
CREATE INDEX outcome_rollup_agency ON reporting.outcome_rollup (agency_id, grain, period)
    INCLUDE (outcome, referrals);
