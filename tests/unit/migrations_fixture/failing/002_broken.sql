CREATE TABLE @SCHEMA@.half_done (id integer PRIMARY KEY);
INSERT INTO @SCHEMA@.half_done VALUES (1);
INSERT INTO @SCHEMA@.no_such_table VALUES (1);
CREATE TABLE @SCHEMA@.never_reached (id integer);
