INSERT INTO @SCHEMA@.items (id, label) VALUES (1, 'one');
INSERT INTO @SCHEMA@.items (id, label) VALUES (2, 'two; with a semicolon');
CREATE FUNCTION @SCHEMA@.item_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM @SCHEMA@.items;
$$;
