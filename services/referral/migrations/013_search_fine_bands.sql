-- The distance search's latitude bands are 0.01 degree (about 1.1 km)
-- instead of 0.05, and the search reads each band only over the longitudes
-- the circle spans within it (services/referral/directory.c, s_bands), not
-- over the whole box's.
--
-- With 0.05-degree bands over the box's longitudes, a 10 km radius read the
-- index entries of an area 0.25 degree high (the bands it touches) and
-- 20 km wide: about 1.8 times the circle. Over 100,000 services around New
-- York that was 5,000 entries per search, 1.4 to 2.6 us each on this
-- machine, most of the search's time in the database. Narrower bands cost
-- one index descent each (19 or 20 for 10 km).
--
-- The table is derived data; dropping the generated column drops its
-- index, which is built again over the new bands.
ALTER TABLE referral.service_search DROP COLUMN lat_cell;
ALTER TABLE referral.service_search
    ADD COLUMN lat_cell integer GENERATED ALWAYS AS (floor(latitude * 100)::integer) STORED;
CREATE INDEX service_search_position ON referral.service_search (agency_id, lat_cell, longitude)
    INCLUDE (latitude, service_id, location_id, status, minimum_age, maximum_age, term_keys,
             language_keys, search);
