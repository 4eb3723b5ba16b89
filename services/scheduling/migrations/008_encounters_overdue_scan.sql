-- The notes service announces, once, each encounter left without a signed
-- note overdue_hours after it ended (note.overdue, services/notes/overdue.c).
-- Its scanner acts for no user: under the note_overdue_scan purpose, set for
-- its own transactions only, it may read encounters of every agency. It
-- reads those that ended in a bounded window, hence the index.
CREATE INDEX encounters_ended ON scheduling.encounters (ends_at);
CREATE POLICY encounters_overdue_scan ON scheduling.encounters FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_overdue_scan'));
