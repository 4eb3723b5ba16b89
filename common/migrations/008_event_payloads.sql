-- Protocol-buffers wire format of length-delimited fields (strings, bytes
-- and embedded messages), so that a service's migration can write events
-- describing rows that existed before the service announced them (a
-- backfill: identity's staff.changed, intake's client.assigned). Empty and
-- NULL values are left out, as proto3 leaves out empty fields.
CREATE FUNCTION events.pb_varint(n bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    out bytea := ''::bytea;
BEGIN
    LOOP
        IF n < 128 THEN
            RETURN out || set_byte('\x00'::bytea, 0, n::int);
        END IF;
        out := out || set_byte('\x00'::bytea, 0, ((n & 127) | 128)::int);
        n := n >> 7;
    END LOOP;
END $$;

-- Field `tag` holding v (bytes or an embedded message).
CREATE FUNCTION events.pb_bytes(tag integer, v bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL OR octet_length(v) = 0 THEN ''::bytea
                ELSE events.pb_varint(tag::bigint << 3 | 2) || events.pb_varint(octet_length(v)) || v
           END
$$;

-- Field `tag` holding the string v (UTF-8).
CREATE FUNCTION events.pb_string(tag integer, v text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT events.pb_bytes(tag, convert_to(v, 'UTF8'))
$$;
