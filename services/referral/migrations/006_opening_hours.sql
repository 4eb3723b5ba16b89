-- "Open now": whether one HSDS schedule (RFC 5545 style) has its service open
-- at an instant, read in the schedule's own local time.
--
-- The zone: schedules.timezone, an IANA name ("America/Chicago") or, as
-- HSDS 3.0 defines it, a UTC offset in hours ("-5", "5.5"); when it is
-- missing or unreadable, fallback (the search passes the zone of the
-- caller's site), then UTC.
-- The day: valid_from..valid_to, dtstart..until; freq WEEKLY (the default)
-- with byday weekdays (MO..SU) and an interval counted in weeks from
-- dtstart's week; MONTHLY with byday weekdays carrying an ordinal (1MO
-- first Monday, -1FR last Friday; none: every such weekday) or bymonthday
-- days (-1: the last day). No byday and no bymonthday: every day.
-- The hours: opens_at..closes_at (closes_at excluded; closing before opening
-- means past midnight, read against the local time: the early hours count
-- for the day the schedule names, a simplification); either missing: the
-- whole day. count, byweekno and byyearday are not read.
CREATE FUNCTION referral.schedule_open(at timestamptz, zone text, fallback text,
                                       valid_from date, valid_to date, dtstart date, until date,
                                       freq text, every integer, byday text, bymonthday text,
                                       opens_at time, closes_at time)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    local timestamp;
    d date;
    t time;
    dow text;
    token text;
    n integer;
    day_ok boolean := false;
BEGIN
    IF zone ~ '^[+-]?[0-9]{1,2}(\.[0-9]{1,2})?$' AND abs(zone::numeric) <= 14 THEN
        local := at AT TIME ZONE make_interval(mins => round(zone::numeric * 60)::int);
    ELSE
        BEGIN
            local := at AT TIME ZONE coalesce(nullif(zone, ''), fallback, 'UTC');
        EXCEPTION WHEN invalid_parameter_value OR data_exception THEN
            local := at AT TIME ZONE coalesce(fallback, 'UTC');
        END;
    END IF;
    d := local::date;
    t := local::time;
    IF (valid_from IS NOT NULL AND d < valid_from) OR (valid_to IS NOT NULL AND d > valid_to)
       OR (dtstart IS NOT NULL AND d < dtstart) OR (until IS NOT NULL AND d > until) THEN
        RETURN false;
    END IF;
    dow := (ARRAY['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'])[extract(dow FROM d)::int + 1];
    IF coalesce(freq, 'WEEKLY') = 'WEEKLY' THEN
        IF byday IS NULL OR dow = ANY (string_to_array(regexp_replace(byday, '[+0-9-]', '', 'g'), ',')) THEN
            day_ok := coalesce(every, 1) <= 1 OR dtstart IS NULL
                OR ((d - (dtstart - (extract(isodow FROM dtstart)::int - 1))) / 7) % every = 0;
        END IF;
    ELSE
        IF byday IS NULL AND bymonthday IS NULL THEN
            day_ok := true;
        END IF;
        FOREACH token IN ARRAY coalesce(string_to_array(byday, ','), '{}') LOOP
            CONTINUE WHEN right(token, 2) <> dow;
            n := nullif(left(token, length(token) - 2), '')::int;
            IF n IS NULL OR n = 0
               OR (n > 0 AND (extract(day FROM d)::int - 1) / 7 + 1 = n)
               OR (n < 0 AND extract(month FROM d + 7 * (-n)) <> extract(month FROM d)
                         AND extract(month FROM d + 7 * (-n - 1)) = extract(month FROM d)) THEN
                day_ok := true;
            END IF;
        END LOOP;
        FOREACH token IN ARRAY coalesce(string_to_array(bymonthday, ','), '{}') LOOP
            CONTINUE WHEN trim(token) !~ '^-?[0-9]{1,2}$';
            n := trim(token)::int;
            IF (n > 0 AND extract(day FROM d) = n)
               OR (n < 0 AND extract(month FROM d + (-n)) <> extract(month FROM d)
                         AND extract(month FROM d + (-n - 1)) = extract(month FROM d)) THEN
                day_ok := true;
            END IF;
        END LOOP;
    END IF;
    IF NOT day_ok THEN
        RETURN false;
    END IF;
    IF opens_at IS NULL OR closes_at IS NULL THEN
        RETURN true;
    END IF;
    IF opens_at <= closes_at THEN
        RETURN t >= opens_at AND t < closes_at;
    END IF;
    RETURN t >= opens_at OR t < closes_at;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT EXECUTE ON FUNCTION referral.schedule_open(timestamptz, text, text, date, date,
            date, date, text, integer, text, text, time, time) TO beacon_service;
    END IF;
END $$;
