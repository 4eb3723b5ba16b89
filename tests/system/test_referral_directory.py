"""The referral service's resource directory (HSDS 3.0 tables): its row
security and its constraints, checked in the database of a real stack, as the
application role with each caller's scope (the handlers come later)."""

import math
import uuid

from harness import StackTestCase, launch

TABLES = ("accessibility", "addresses", "attributes", "languages", "locations",
          "organizations", "phones", "referral_changes", "referrals", "schedules",
          "service_at_location", "service_search", "services", "taxonomies", "taxonomy_terms")


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

    def test_row_security_is_forced_on_every_referral_table(self):
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
        # A peer's update reaches no row.
        out = self.as_app("UPDATE referral.services SET name = 'changed', updated_by = '%s' "
                          "WHERE id = '%s' RETURNING id" % (self.peer.id, svc),
                          self.peer.id, "peer_specialist")
        self.assertEqual(out.split()[1:], [])
        # Nobody deletes from the directory (a record is retired by its
        # status), not even an admin: the references the import checked
        # hold for good (migration 010).
        for who, roles in ((self.peer.id, "peer_specialist"), (self.admin.id, "agency_admin")):
            with self.assertRaises(launch.LaunchError):
                self.as_app("DELETE FROM referral.services WHERE id = '%s'" % svc, who, roles)
        self.assertEqual(self.admin_psql("SELECT name FROM referral.services WHERE id = '%s'"
                                         % svc).strip(), "Recovery Housing Navigation")

    def test_bad_directory_rows_are_refused(self):
        admin = self.admin.id
        # Unknown status, inverted ages.
        for bad in ({"status": "closed"}, {"minimum_age": "30", "maximum_age": "12"}):
            with self.assertRaises(launch.LaunchError):
                self.add_org_and_service(admin, "agency_admin", **bad)
        # (A reference between the directory's tables to a record that does
        # not exist is the import's to refuse, migration 010: see
        # test_referral_import_sets.py. Within organizations the database
        # still checks it.)
        with self.assertRaises(launch.LaunchError):
            self.as_app("INSERT INTO referral.organizations (agency_id, id, name, "
                        "parent_organization_id, updated_by) VALUES ('%s', gen_random_uuid(), "
                        "'x', gen_random_uuid(), '%s')" % (self.agency(), admin),
                        admin, "agency_admin")
        # Coordinates off the globe, or half a position.
        for lat, lon in (("91", "0"), ("0", "-181"), ("45", "NULL")):
            with self.assertRaises(launch.LaunchError):
                self.as_app("INSERT INTO referral.locations (agency_id, id, latitude, "
                            "longitude, updated_by) VALUES ('%s', gen_random_uuid(), %s, %s, "
                            "'%s')" % (self.agency(), lat, lon, admin), admin, "agency_admin")
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


# A small directory: three services around lower Manhattan, one in Boston,
# one inactive. (name, description, lat, lon, min_age, max_age, languages,
# term code, status)
SEED = (
    ("Harbor Naloxone Distribution", "Free overdose reversal kits and training",
     40.7128, -74.0060, None, None, ("en", "es"), "HR-1", "active"),
    ("Bowery Recovery Housing", "Sober living beds for adults in recovery",
     40.7250, -73.9920, 18, None, ("en",), "HS-1", "active"),
    ("Youth Harm Reduction Drop-in", "Harm reduction supplies and counselling for youth",
     40.7306, -73.9866, 12, 24, ("en", "es"), "HR-1", "active"),
    ("Boston Overdose Prevention", "Naloxone kits and overdose prevention",
     42.3601, -71.0589, None, None, ("en",), "HR-1", "active"),
    ("Closed Food Pantry", "Food pantry, overdose kits no longer stocked",
     40.7130, -74.0050, None, None, ("en",), "FD-1", "inactive"),
)


def destination(start, bearing, km):
    """The point km away from start (latitude, longitude) along bearing
    (degrees from north), on the sphere the search measures with."""
    r = 6371.0088
    lat1, lon1, b, d = (math.radians(start[0]), math.radians(start[1]),
                        math.radians(bearing), km / r)
    lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(b))
    lon2 = lon1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(lat1),
                             math.cos(d) - math.sin(lat1) * math.sin(lat2))
    return math.degrees(lat2), math.degrees(lon2)


class DirectorySearchTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.billing = cls.org.add_staff(["billing"])
        cls.partner = cls.org.add_staff(["partner"])
        parts = launch.conninfo_parse(cls.stack.database_url)
        cls.superuser = launch.conninfo_format(dict(parts, user="postgres"))
        agency = launch.psql(cls.superuser, "SELECT agency_id FROM identity.sites WHERE id = '%s'"
                             % cls.org.site_id).strip()
        cls.ids = cls.seed(agency, cls.peer.id)
        # Another agency's directory holds a service every query would match.
        cls.foreign = cls.seed(str(uuid.uuid4()), cls.peer.id)

    @classmethod
    def seed(cls, agency, by):
        terms = {}
        sql = ["BEGIN"]
        tax = str(uuid.uuid4())
        sql.append("INSERT INTO referral.taxonomies VALUES ('%s', '%s', 'Beacon', 'Test "
                   "taxonomy', NULL, NULL, '%s')" % (agency, tax, by))
        for code, name in (("HR-1", "Harm Reduction"), ("HS-1", "Housing"), ("FD-1", "Food")):
            terms[code] = str(uuid.uuid4())
            sql.append("INSERT INTO referral.taxonomy_terms (agency_id, id, code, name, "
                       "description, taxonomy_id, updated_by) VALUES ('%s', '%s', '%s', '%s', "
                       "'', '%s', '%s')" % (agency, terms[code], code, name, tax, by))
        org = str(uuid.uuid4())
        sql.append("INSERT INTO referral.organizations (agency_id, id, name, updated_by) "
                   "VALUES ('%s', '%s', 'Harbor Partners', '%s')" % (agency, org, by))
        ids = {}
        for name, desc, lat, lon, lo, hi, langs, code, status in SEED:
            svc, loc = str(uuid.uuid4()), str(uuid.uuid4())
            ids[name] = svc
            sql.append("INSERT INTO referral.services (agency_id, id, organization_id, name, "
                       "description, status, minimum_age, maximum_age, updated_by) VALUES "
                       "('%s', '%s', '%s', '%s', '%s', '%s', %s, %s, '%s')"
                       % (agency, svc, org, name, desc, status,
                          "NULL" if lo is None else lo, "NULL" if hi is None else hi, by))
            sql.append("INSERT INTO referral.locations (agency_id, id, organization_id, name, "
                       "latitude, longitude, updated_by) VALUES ('%s', '%s', '%s', '%s', %s, "
                       "%s, '%s')" % (agency, loc, org, name + " site", lat, lon, by))
            sql.append("INSERT INTO referral.service_at_location (agency_id, id, service_id, "
                       "location_id, updated_by) VALUES ('%s', gen_random_uuid(), '%s', '%s', "
                       "'%s')" % (agency, svc, loc, by))
            for lang in langs:
                sql.append("INSERT INTO referral.languages (agency_id, id, service_id, code, "
                           "updated_by) VALUES ('%s', gen_random_uuid(), '%s', '%s', '%s')"
                           % (agency, svc, lang, by))
            sql.append("INSERT INTO referral.attributes (agency_id, id, link_id, "
                       "taxonomy_term_id, link_entity, updated_by) VALUES ('%s', "
                       "gen_random_uuid(), '%s', '%s', 'service', '%s')"
                       % (agency, svc, terms[code], by))
        # The distance search's rows are derived: written as an import does.
        sql.append("SELECT referral.refresh_service_search('%s', ARRAY(SELECT id FROM "
                   "referral.services WHERE agency_id = '%s'), '{}', '{}', '%s')"
                   % (agency, agency, by))
        sql.append("COMMIT")
        launch.psql(cls.superuser, "; ".join(sql))
        return ids

    def search(self, query="", who=None, expect=200):
        r = self.req("GET", "/api/v1/directory/services" + ("?" + query if query else ""),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def names(self, query="", who=None):
        return [s["name"] for s in self.search(query, who).get("services", [])]

    def test_keyword_search_ranks_active_services_of_the_agency_only(self):
        found = self.names("q=overdose+kits")
        self.assertEqual(set(found), {"Harbor Naloxone Distribution",
                                      "Boston Overdose Prevention"})
        body = self.search("q=naloxone")
        for s in body["services"]:
            self.assertIn(s["id"], self.ids.values())
            self.assertNotIn(s["id"], self.foreign.values())
            self.assertEqual(s["organization_name"], "Harbor Partners")
        self.assertIn("Closed Food Pantry", self.names("q=pantry&status=any"))
        self.assertEqual(self.names("q=pantry"), [])
        self.assertEqual(self.names("q=no-such-word-anywhere"), [])

    def test_distance_from_a_point_nearest_first(self):
        body = self.search("latitude=40.7128&longitude=-74.0060&radius_km=5")
        names = [s["name"] for s in body["services"]]
        self.assertEqual(names, ["Harbor Naloxone Distribution", "Bowery Recovery Housing",
                                 "Youth Harm Reduction Drop-in"])
        km = [s.get("distance_km", 0) for s in body["services"]]
        self.assertEqual(km, sorted(km))
        self.assertLess(km[0], 0.01)
        self.assertTrue(1.5 < km[1] < 2.5, km)  # about 1.9 km up to the Bowery
        self.assertEqual(self.names("latitude=40.7128&longitude=-74.0060&radius_km=1"),
                         ["Harbor Naloxone Distribution"])
        # Boston is about 306 km away.
        self.assertNotIn("Boston Overdose Prevention",
                         self.names("latitude=40.7128&longitude=-74.0060&radius_km=300"))
        self.assertIn("Boston Overdose Prevention",
                      self.names("latitude=40.7128&longitude=-74.0060&radius_km=320"))

    def test_taxonomy_age_and_language_filters(self):
        for term in ("HR-1", "Harm+Reduction", "harm+reduction"):
            self.assertEqual(set(self.names("taxonomy_term=" + term)),
                             {"Harbor Naloxone Distribution", "Youth Harm Reduction Drop-in",
                              "Boston Overdose Prevention"}, term)
        self.assertEqual(self.names("taxonomy_term=HS-1"), ["Bowery Recovery Housing"])
        self.assertEqual(set(self.names("age=16")),
                         {"Harbor Naloxone Distribution", "Youth Harm Reduction Drop-in",
                          "Boston Overdose Prevention"})
        self.assertNotIn("Youth Harm Reduction Drop-in", self.names("age=30"))
        self.assertEqual(set(self.names("language=ES")),
                         {"Harbor Naloxone Distribution", "Youth Harm Reduction Drop-in"})
        body = self.search("q=naloxone&taxonomy_term=HR-1&latitude=40.7128"
                           "&longitude=-74.0060&radius_km=10&language=es&age=40")
        self.assertEqual([s["name"] for s in body["services"]],
                         ["Harbor Naloxone Distribution"])
        self.assertEqual(sorted(body["services"][0]["languages"]), ["en", "es"])
        self.assertEqual(body["services"][0]["taxonomy_terms"], ["Harm Reduction"])

    def test_pages(self):
        first = self.search("limit=2")
        self.assertEqual(len(first["services"]), 2)
        self.assertEqual(first.get("next_offset"), 2)
        second = self.search("limit=2&offset=2")
        self.assertEqual(len(second["services"]), 2)
        self.assertFalse(second.get("next_offset"))
        seen = [s["id"] for s in first["services"] + second["services"]]
        self.assertEqual(len(set(seen)), 4)

    def test_pages_around_a_point_with_services_at_one_place(self):
        # Services sharing a place are equally near: the page's cut (only
        # the services as near as its last one are read) must keep ties, so
        # that the pages laid end to end are the whole list in its order.
        # Retired services far from the others, so no other test meets them.
        agency = launch.psql(self.superuser, "SELECT agency_id FROM identity.sites WHERE id = "
                             "'%s'" % self.org.site_id).strip()
        by, org, shared = self.peer.id, str(uuid.uuid4()), str(uuid.uuid4())
        sql = ["BEGIN", "INSERT INTO referral.organizations (agency_id, id, name, updated_by) "
               "VALUES ('%s', '%s', 'Lakeside', '%s')" % (agency, org, by)]
        places = [(shared, 41.8781, -87.6298)]
        services = []
        for i, (name, place) in enumerate((("Tie D", 0), ("Tie B", 0), ("Tie C", 0),
                                           ("Tie A", 0), ("Near", 1), ("Far", 2))):
            if place and len(places) <= place:
                places.append((str(uuid.uuid4()), 41.8781 + 0.0045 * place, -87.6298))
            svc = str(uuid.uuid4())
            services.append(svc)
            sql.append("INSERT INTO referral.services (agency_id, id, organization_id, name, "
                       "status, updated_by) VALUES ('%s', '%s', '%s', '%s', 'inactive', '%s')"
                       % (agency, svc, org, name, by))
            sql.append("INSERT INTO referral.service_at_location (agency_id, id, service_id, "
                       "location_id, updated_by) VALUES ('%s', gen_random_uuid(), '%s', '%s', "
                       "'%s')" % (agency, svc, places[place][0], by))
        for loc, lat, lon in places:
            sql.append("INSERT INTO referral.locations (agency_id, id, organization_id, name, "
                       "latitude, longitude, updated_by) VALUES ('%s', '%s', '%s', 'Lake', %s, "
                       "%s, '%s')" % (agency, loc, org, lat, lon, by))
        sql.append("SELECT referral.refresh_service_search('%s', ARRAY['%s']::uuid[], '{}', "
                   "'{}', '%s')" % (agency, "','".join(services), by))
        sql.append("COMMIT")
        launch.psql(self.superuser, "; ".join(sql))
        point = "status=any&latitude=41.8781&longitude=-87.6298&radius_km=5"
        whole = self.names(point + "&limit=100")
        self.assertEqual(whole, ["Tie A", "Tie B", "Tie C", "Tie D", "Near", "Far"])
        for size in (1, 2, 3, 4):
            pages = []
            for offset in range(0, 6, size):
                pages += self.names(point + "&limit=%d&offset=%d" % (size, offset))
            self.assertEqual(pages, whole, size)
        self.assertEqual(self.names(point + "&limit=2&offset=3"), ["Tie D", "Near"])

    def test_the_radius_is_a_circle_in_every_direction(self):
        # The search reads each 0.01-degree latitude band only over the
        # longitudes the circle spans there (directory.c, s_bands): places
        # just inside the radius in every direction are found, those just
        # outside are not, also far from the equator. Retired services, so
        # that no other test meets them.
        agency = launch.psql(self.superuser, "SELECT agency_id FROM identity.sites WHERE id = "
                             "'%s'" % self.org.site_id).strip()
        by, org = self.peer.id, str(uuid.uuid4())
        sql = ["BEGIN", "INSERT INTO referral.organizations (agency_id, id, name, updated_by) "
               "VALUES ('%s', '%s', 'Ring', '%s')" % (agency, org, by)]
        services, rows, want = [], [], {}
        for center, km in (((39.7392, -104.9903), 10.0), ((69.6492, 18.9553), 50.0)):
            want[center] = set()
            for bearing in range(0, 360, 10):
                for factor, inside in ((0.995, True), (1.005, False)):
                    lat, lon = destination(center, bearing, km * factor)
                    name = "Ring %s %d %s" % (center[0], bearing, "in" if inside else "out")
                    if inside:
                        want[center].add(name)
                    svc, loc = str(uuid.uuid4()), str(uuid.uuid4())
                    services.append(svc)
                    rows.append("('%s', '%s', '%s', %.7f, %.7f)" % (svc, loc, name, lat, lon))
        sql.append("CREATE TEMP TABLE ring (svc uuid, loc uuid, name text, lat float8, "
                   "lon float8)")
        sql.append("INSERT INTO ring VALUES " + ", ".join(rows))
        sql.append("INSERT INTO referral.services (agency_id, id, organization_id, name, status, "
                   "updated_by) SELECT '%s', svc, '%s', name, 'inactive', '%s' FROM ring"
                   % (agency, org, by))
        sql.append("INSERT INTO referral.locations (agency_id, id, organization_id, name, "
                   "latitude, longitude, updated_by) SELECT '%s', loc, '%s', 'Ring', lat, lon, "
                   "'%s' FROM ring" % (agency, org, by))
        sql.append("INSERT INTO referral.service_at_location (agency_id, id, service_id, "
                   "location_id, updated_by) SELECT '%s', gen_random_uuid(), svc, loc, '%s' "
                   "FROM ring" % (agency, by))
        sql.append("SELECT referral.refresh_service_search('%s', ARRAY['%s']::uuid[], '{}', "
                   "'{}', '%s')" % (agency, "','".join(services), by))
        sql.append("COMMIT")
        launch.psql(self.superuser, "; ".join(sql))
        for (lat, lon), km in (((39.7392, -104.9903), 10.0), ((69.6492, 18.9553), 50.0)):
            found = self.names("status=any&latitude=%s&longitude=%s&radius_km=%s&limit=100"
                               % (lat, lon, km))
            self.assertEqual(set(found), want[(lat, lon)], (lat, lon))

    def test_roles_without_the_directory_are_refused(self):
        for who in (self.billing, self.partner):
            r = self.req("GET", "/api/v1/directory/services", headers=who.auth)
            self.assertProblem(r, 403)
        self.assertProblem(self.req("GET", "/api/v1/directory/services", auth=False), 401)

    def test_bad_search_input_is_refused_with_the_field(self):
        for query, field in (("latitude=91&longitude=0", "latitude"),
                             ("latitude=40&longitude=-181", "longitude"),
                             ("latitude=abc&longitude=1", "latitude"),
                             ("latitude=NaN&longitude=1", "latitude"),
                             ("latitude=40", "longitude"),
                             ("radius_km=5", "radius_km"),
                             ("latitude=40&longitude=-74&radius_km=0", "radius_km"),
                             ("latitude=40&longitude=-74&radius_km=501", "radius_km"),
                             ("age=-1", "age"),
                             ("age=twelve", "age"),
                             ("status=closed", "status"),
                             ("limit=101", "limit"),
                             ("offset=-1", "offset"),
                             ("q=" + "x" * 201, "q")):
            r = self.req("GET", "/api/v1/directory/services?" + query, headers=self.peer.auth)
            self.assertProblem(r, 400, field)
        # SQL metacharacters are only text.
        self.assertEqual(self.names("q=%27%3B+DROP+TABLE+referral.services%3B--"), [])
        self.assertEqual(self.names("taxonomy_term=%27+OR+1%3D1--"), [])
        self.assertTrue(self.names())
