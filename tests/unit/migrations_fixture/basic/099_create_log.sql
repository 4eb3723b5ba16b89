CREATE TABLE @SCHEMA@.log (id bigserial PRIMARY KEY, message text NOT NULL);
