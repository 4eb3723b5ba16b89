-- The overdue scanner (services/notes/overdue.c) acts for no user: under the
-- note_overdue_scan purpose, set for its own transactions only, it sees
-- whether an encounter has a note and which encounters were announced, and
-- records the announcements. It reads no note text.
CREATE POLICY notes_overdue_scan ON notes.notes FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_overdue_scan'));
CREATE POLICY overdue_notices_scan_read ON notes.overdue_notices FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_overdue_scan'));
CREATE POLICY overdue_notices_scan_add ON notes.overdue_notices FOR INSERT
    WITH CHECK ((SELECT current_setting('beacon.purpose', true) = 'note_overdue_scan'));
