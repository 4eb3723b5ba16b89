-- Reminders (reminders.c): which reminder.due events were emitted, so each
-- goes out once per meeting, offset and start time (a moved meeting is
-- reminded again for its new time). Ids and times only.
CREATE TABLE scheduling.reminders_sent (
    item_id   uuid NOT NULL, -- an appointment or a group occurrence
    minutes   integer NOT NULL CHECK (minutes BETWEEN 5 AND 10080),
    starts_at timestamptz NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('appointment', 'group_occurrence')),
    sent_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, minutes, starts_at)
);

-- The scanner reads meetings by start across agencies: the time of day is
-- all it needs, and its connection carries no caller's scope. These
-- policies admit it only under the reminder_scan purpose, which only the
-- scanner sets (handlers never do), and it selects ids and times alone.
CREATE INDEX appointments_booked_time ON scheduling.appointments (starts_at)
    WHERE status = 'booked';
CREATE POLICY appointments_reminders ON scheduling.appointments FOR SELECT
    USING (current_setting('beacon.purpose', true) = 'reminder_scan');
CREATE POLICY group_occurrences_reminders ON scheduling.group_occurrences FOR SELECT
    USING (current_setting('beacon.purpose', true) = 'reminder_scan');
CREATE POLICY groups_reminders ON scheduling.groups FOR SELECT
    USING (current_setting('beacon.purpose', true) = 'reminder_scan');

ALTER TABLE scheduling.reminders_sent ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.reminders_sent FORCE ROW LEVEL SECURITY;
CREATE POLICY reminders_sent_scanner ON scheduling.reminders_sent FOR ALL
    USING (current_setting('beacon.purpose', true) = 'reminder_scan')
    WITH CHECK (current_setting('beacon.purpose', true) = 'reminder_scan');

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON scheduling.reminders_sent TO beacon_service;
    END IF;
END $$;
