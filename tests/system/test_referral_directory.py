"""The referral service's resource directory (HSDS 3.0 tables): its row
security and its constraints, checked in the database of a real stack, as the
application role with each caller's scope (the handlers come later)."""

import uuid

from harness import StackTestCase, launch

TABLES = ("accessibility", "addresses", "attributes", "languages", "locations",
          "organizations", "phones", "schedules", "service_at_location", "services",
          "taxonomies", "taxonomy_terms")


class DirectorySchemaTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.site = cls.org.site_id
        cls.admin = cls.org.add_staff(["agency_admin"])
        cls.peer = cls.org.add_staff(["peer_specialist"])

    def admin_psql(self, sql):
        parts = launch.conninfo_parse(self.stack.database_url)
        return launch.psql(launch.conninfo_format(dict(parts, user="postgres")), sql)

    def agency(self):
        return self.admin_psql("SELECT agency_id FROM identity.sites WHERE id = '%s'"
                               % self.site).strip()

    def as_app(self, sql, staff, roles, agency=None):
        scope = ("SELECT set_config('beacon.staff_id', '%s', false), "
                 "set_config('beacon.agency_id', '%s', false), "
                 "set_config('beacon.site_ids', '%s', false), "
                 "set_config('beacon.roles', '%s', false); "
                 % (staff, agency or self.agency(), self.site, roles))
        return launch.psql(self.stack.app_database_url(), scope + sql)

    def add_org_and_service(self, staff, roles, **service):
        org, svc = str(uuid.uuid4()), str(uuid.uuid4())
        s = dict(name="Recovery Housing Navigation", status="active")
        s.update(service)
        cols = ", ".join(s)
        vals = ", ".join("'%s'" % v for v in s.values())
        self.as_app("BEGIN; "
                    "INSERT INTO referral.organizations (agency_id, id, name, updated_by) "
                    "VALUES ('%s', '%s', 'Harbor Recovery Org', '%s'); "
                    "INSERT INTO referral.services (agency_id, id, organization_id, %s, "
                    "updated_by) VALUES ('%s', '%s', '%s', %s, '%s'); COMMIT"
                    % (self.agency(), org, staff, cols, self.agency(), svc, org, vals, staff),
                    staff, roles)
        return org, svc

    def visible_services(self, staff, roles, agency=None):
        out = self.as_app("SELECT id FROM referral.services", staff, roles, agency)
        return set(out.split()[1:])

    def test_row_security_is_forced_on_every_directory_table(self):
        rows = self.admin_psql("SELECT relname || ':' || relrowsecurity || relforcerowsecurity "
                               "FROM pg_class WHERE relnamespace = 'referral'::regnamespace "
                               "AND relkind = 'r' ORDER BY relname").split()
        self.assertEqual([r.split(":")[0] for r in rows], list(TABLES))
        for row in rows:
            self.assertTrue(row.endswith(":truetrue"), row)
        owners = self.admin_psql("SELECT DISTINCT tableowner FROM pg_tables "
                                 "WHERE schemaname = 'referral'").split()
        self.assertNotIn("beacon_app", owners)
        with self.assertRaises(launch.LaunchError):
            launch.psql(self.stack.app_database_url(),
                        "ALTER TABLE referral.services NO FORCE ROW LEVEL SECURITY")

    def test_care_team_and_admins_read_the_agencys_directory_only_admins_write(self):
        _, svc = self.add_org_and_service(self.admin.id, "agency_admin")
        for roles in ("peer_specialist", "supervisor", "site_admin", "agency_admin"):
            self.assertIn(svc, self.visible_services(self.peer.id, roles), roles)
        for roles in ("billing", "analyst", "partner", "auditor", ""):
            self.assertEqual(self.visible_services(self.peer.id, roles), set(), roles)
        # Another agency sees none of it.
        self.assertNotIn(svc, self.visible_services(self.admin.id, "agency_admin",
                                                    str(uuid.uuid4())))
        # A peer specialist, a site admin or a supervisor cannot write.
        for roles in ("peer_specialist", "supervisor", "site_admin"):
            with self.assertRaises(launch.LaunchError):
                self.add_org_and_service(self.peer.id, roles)
        # Nor can an admin write as someone else.
        with self.assertRaises(launch.LaunchError):
            self.as_app("INSERT INTO referral.taxonomies (agency_id, id, name, description, "
                        "updated_by) VALUES ('%s', gen_random_uuid(), 'x', 'x', '%s')"
                        % (self.agency(), self.peer.id), self.admin.id, "agency_admin")
        # A peer's update or delete reaches no row.
        out = self.as_app("UPDATE referral.services SET name = 'changed', updated_by = '%s' "
                          "WHERE id = '%s' RETURNING id; "
                          "DELETE FROM referral.services WHERE id = '%s' RETURNING id"
                          % (self.peer.id, svc, svc), self.peer.id, "peer_specialist")
        self.assertEqual(out.split()[1:], [])
        self.assertEqual(self.admin_psql("SELECT name FROM referral.services WHERE id = '%s'"
                                         % svc).strip(), "Recovery Housing Navigation")

    def test_bad_directory_rows_are_refused(self):
        admin = self.admin.id
        # Unknown status, inverted ages.
        for bad in ({"status": "closed"}, {"minimum_age": "30", "maximum_age": "12"}):
            with self.assertRaises(launch.LaunchError):
                self.add_org_and_service(admin, "agency_admin", **bad)
        # A service whose organization does not exist (checked at commit).
        with self.assertRaises(launch.LaunchError):
            self.as_app("INSERT INTO referral.services (agency_id, id, organization_id, name, "
                        "status, updated_by) VALUES ('%s', gen_random_uuid(), "
                        "gen_random_uuid(), 'x', 'active', '%s')" % (self.agency(), admin),
                        admin, "agency_admin")
        # Coordinates off the globe, or half a position.
        for lat, lon in (("91", "0"), ("0", "-181"), ("45", "NULL")):
            with self.assertRaises(launch.LaunchError):
                self.as_app("INSERT INTO referral.locations (agency_id, id, latitude, "
                            "longitude, updated_by) VALUES ('%s', gen_random_uuid(), %s, %s, "
                            "'%s')" % (self.agency(), lat, lon, admin), admin, "agency_admin")
        # A taxonomy link to a term that does not exist.
        with self.assertRaises(launch.LaunchError):
            self.as_app("INSERT INTO referral.attributes (agency_id, id, link_id, "
                        "taxonomy_term_id, link_entity, updated_by) VALUES ('%s', "
                        "gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'service', "
                        "'%s')" % (self.agency(), admin), admin, "agency_admin")
        # A valid location and its service link are taken.
        org, svc = self.add_org_and_service(admin, "agency_admin")
        loc = str(uuid.uuid4())
        self.as_app("BEGIN; INSERT INTO referral.locations (agency_id, id, organization_id, "
                    "latitude, longitude, updated_by) VALUES ('%s', '%s', '%s', 40.7128, "
                    "-74.006, '%s'); INSERT INTO referral.service_at_location (agency_id, id, "
                    "service_id, location_id, updated_by) VALUES ('%s', gen_random_uuid(), "
                    "'%s', '%s', '%s'); COMMIT"
                    % (self.agency(), loc, org, admin, self.agency(), svc, loc, admin),
                    admin, "agency_admin")
        self.assertEqual(self.admin_psql("SELECT count(*) FROM referral.service_at_location "
                                         "WHERE location_id = '%s'" % loc).strip(), "1")

    def test_keyword_search_column_finds_the_service(self):
        _, svc = self.add_org_and_service(self.admin.id, "agency_admin",
                                          name="Naloxone Distribution",
                                          description="Free overdose reversal kits")
        out = self.as_app("SELECT id FROM referral.services "
                          "WHERE search @@ plainto_tsquery('english', 'overdose kits')",
                          self.peer.id, "peer_specialist")
        self.assertIn(svc, out)
