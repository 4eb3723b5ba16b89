-- The service's first migration creates its schema.
CREATE SCHEMA @SCHEMA@;
CREATE TABLE @SCHEMA@.items (
    id integer PRIMARY KEY,
    label text NOT NULL
);
