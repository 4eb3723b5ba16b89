-- Billing (the scheduling service's BillingNoteStatus call, notes/billing.c)
-- learns whether an encounter's note is signed and co-signed: the billing
-- role sees the notes of its sites only inside that call's transaction
-- (beacon.purpose = billing), and the call reads status columns only, never
-- the text.
CREATE POLICY notes_billing ON notes.notes FOR SELECT
    USING ((SELECT scope.has_role('billing'))
           AND (SELECT current_setting('beacon.purpose', true) = 'billing')
           AND agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));
