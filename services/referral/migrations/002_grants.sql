-- The service connects as beacon_app (a member of beacon_service), which owns
-- nothing: it gets exactly the privileges granted here, and row-level
-- security applies to it. Deployments create the roles (deploy/pg-cluster.sh,
-- docker-compose.yml).
GRANT USAGE ON SCHEMA referral TO beacon_service;
