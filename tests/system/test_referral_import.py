"""Importing HSDS 3.0 JSON into the resource directory, over HTTPS: the real
Open Referral samples (../shared/data/hsds-3.0/json), idempotence, and bad
input (bad UTF-8, broken JSON, wrong types, dangling references, invalid
coordinates) reported with file, place and field while valid records are
still taken."""

import base64
import json
import os
import uuid

from harness import StackTestCase, launch

SAMPLES = os.environ.get("BEACON_HSDS_SAMPLES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "hsds-3.0")
if not os.path.isdir(SAMPLES):
    SAMPLES = "/work/shared/data/hsds-3.0"
JSON_DIR = os.path.join(SAMPLES, "json")


def file_entry(name, content):
    if isinstance(content, (dict, list)):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    return {"name": name, "content": base64.b64encode(content).decode("ascii")}


def sample_files():
    return [file_entry(n, open(os.path.join(JSON_DIR, n), "rb").read())
            for n in sorted(os.listdir(JSON_DIR)) if n.endswith(".json")]


class ImportBase(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.admin = cls.org.admin
        cls.peer = cls.org.add_staff(["peer_specialist"])
        parts = launch.conninfo_parse(cls.stack.database_url)
        cls.superuser = launch.conninfo_format(dict(parts, user="postgres"))

    def imp(self, files, who=None, expect=200):
        r = self.req("POST", "/api/v1/directory/import", {"files": files},
                     headers=(who or self.admin).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def count(self, table):
        return int(launch.psql(self.superuser, "SELECT count(*) FROM referral.%s" % table))

    def counts(self):
        return {t: self.count(t) for t in ("organizations", "services", "locations",
                                           "service_at_location", "addresses", "phones",
                                           "schedules", "taxonomies", "taxonomy_terms",
                                           "attributes", "languages", "accessibility")}

    def problems(self, report):
        return {(p["file"], p.get("at", ""), p.get("field", "")) for p in report.get("problems", [])}


class ImportTests(ImportBase):
    def test_samples_with_their_placeholders_mended_are_taken_whole(self):
        def mend(node):
            if isinstance(node, dict):
                for k in list(node):
                    if k in ("parent_organization_id", "parent_id"):
                        node[k] = None
                    elif k == "latitude":
                        node[k] = 40.7128
                    elif k == "longitude":
                        node[k] = -74.0060
                    else:
                        mend(node[k])
            elif isinstance(node, list):
                for item in node:
                    mend(item)
            return node

        files = [file_entry(n, mend(json.load(open(os.path.join(JSON_DIR, n)))))
                 for n in sorted(os.listdir(JSON_DIR)) if n.endswith(".json")]
        report = self.imp(files)
        # One real conflict remains: location.json gives the location that the
        # full documents also hold another external identifier. The first met
        # (organization_full.json) is kept and the repeat reported.
        self.assertEqual([(p["file"], p["at"], p["field"]) for p in report["problems"]],
                         [("location.json", "", "external_identifier")], report)
        self.assertIn("organization_full.json", report["problems"][0]["message"])
        self.assertEqual(report["refused"], 1)
        self.assertEqual(report.get("skipped", 0), 0)
        self.assertGreater(report["created"], 10, report)
        counts = self.counts()
        for table in ("organizations", "services", "locations", "service_at_location",
                      "addresses", "phones", "schedules", "taxonomies", "taxonomy_terms",
                      "attributes", "languages", "accessibility"):
            self.assertGreater(counts[table], 0, table)
        again = self.imp(files)
        self.assertEqual((again.get("created", 0), again.get("updated", 0)), (0, 0), again)
        self.assertEqual(again["unchanged"], report["taken"])
        # The imported service is found by the care team.
        r = self.req("GET", "/api/v1/directory/services?q=counselling&latitude=40.71"
                            "&longitude=-74.0&radius_km=5", headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        found = {s["name"]: s for s in r.json().get("services", [])}
        self.assertIn("Community Counselling", found, r.body)
        self.assertIn("ur", found["Community Counselling"]["languages"])
        # A changed field updates that record only.
        svc = json.load(open(os.path.join(JSON_DIR, "service_full.json")))
        mend(svc)
        svc["name"] = "Community Counselling and Support"
        changed = self.imp([file_entry("service_full.json", svc)])
        self.assertEqual(changed["updated"], 1, changed)
        self.assertEqual(changed.get("created", 0), 0, changed)
        self.assertEqual(launch.psql(self.superuser, "SELECT name FROM referral.services "
                                     "WHERE id = '%s'" % svc["id"]).strip(),
                         "Community Counselling and Support")
        # The import is audited, with its counts.
        rows = launch.psql(self.superuser, "SELECT count(*) FROM audit.events WHERE "
                           "resource_type = 'directory' AND actor_staff_id = '%s'"
                           % self.admin.id)
        self.assertGreaterEqual(int(rows), 3)

    def test_bad_input_is_reported_and_valid_records_still_taken(self):
        org = str(uuid.uuid4())
        good = {"id": org, "name": "Good Org"}
        bad_utf8 = b'[{"id": "%s", "name": "Caf\xe9"}]' % str(uuid.uuid4()).encode()
        bad_utf8 = bad_utf8.replace(b"\\xe9", b"\xe9")
        ok_svc, dangling = str(uuid.uuid4()), str(uuid.uuid4())
        services = [
            {"id": ok_svc, "organization_id": org, "name": "Good Service", "status": "active"},
            {"id": dangling, "organization_id": str(uuid.uuid4()), "name": "Orphan",
             "status": "active"},
            {"id": str(uuid.uuid4()), "organization_id": org, "name": {"en": "x"},
             "status": "active"},
            {"id": "not-a-uuid", "organization_id": org, "name": "Bad id", "status": "active"},
            {"id": str(uuid.uuid4()), "organization_id": org, "name": "Bad status",
             "status": "closed"},
            {"id": str(uuid.uuid4()), "organization_id": org, "name": "Ages",
             "status": "active", "minimum_age": 30, "maximum_age": 12},
            {"id": str(uuid.uuid4()), "organization_id": org, "status": "active"},
            "not an object",
        ]
        locations = [
            {"id": str(uuid.uuid4()), "organization_id": org, "latitude": 91, "longitude": 0},
            {"id": str(uuid.uuid4()), "organization_id": org, "latitude": 40,
             "longitude": "east"},
            {"id": str(uuid.uuid4()), "organization_id": org, "latitude": 40},
            {"id": str(uuid.uuid4()), "organization_id": org, "latitude": 40.7,
             "longitude": -74.0,
             "addresses": [{"id": str(uuid.uuid4()), "address_1": "1 Main St",
                            "city": "New York", "state_province": "NY", "postal_code": "10001",
                            "country": "US", "address_type": "physical"}]},
            # Refused, with the records it holds skipped.
            {"id": str(uuid.uuid4()), "organization_id": org, "latitude": -91, "longitude": 0,
             "phones": [{"id": str(uuid.uuid4()), "number": "555-0100"}]},
        ]
        report = self.imp([
            file_entry("organizations.json", [good]),
            file_entry("services.json", services),
            file_entry("locations.json", locations),
            file_entry("organization.json", bad_utf8),
            file_entry("taxonomy.json", '{"id": "%s", "name": ' % uuid.uuid4()),
        ])
        problems = self.problems(report)
        expected = {("services.json", "/1", "organization_id"),
                    ("services.json", "/2", "name"),
                    ("services.json", "/3", "id"),
                    ("services.json", "/4", "status"),
                    ("services.json", "/6", "name"),
                    ("services.json", "/7", ""),
                    ("locations.json", "/0", "latitude"),
                    ("locations.json", "/1", "longitude"),
                    ("locations.json", "/4", "latitude"),
                    ("organization.json", "", ""),
                    ("taxonomy.json", "", "")}
        self.assertTrue(expected <= problems, sorted(problems - expected))
        # The inverted ages: the database's bound, named by field.
        ages = [p for p in report["problems"] if p["at"] == "/5" and p["file"] == "services.json"]
        self.assertEqual(len(ages), 1, report)
        self.assertIn(ages[0]["field"], ("", "minimum_age", "maximum_age"))
        # Half a position.
        half = [p for p in report["problems"] if p["at"] == "/2" and p["file"] == "locations.json"]
        self.assertEqual(len(half), 1, report)
        by = {(p["file"], p["at"]): p for p in report["problems"]}
        self.assertIn("UTF-8", by[("organization.json", "")]["message"])
        self.assertEqual(by[("organization.json", "")]["line"], 1)
        self.assertIn("JSON", by[("taxonomy.json", "")]["message"])
        self.assertEqual(by[("taxonomy.json", "")]["line"], 1)
        self.assertEqual(report["refused"], 13, report)
        self.assertEqual(report["skipped"], 1, report)
        # Taken: the organization, the good service, the good location and its address.
        self.assertEqual(report["taken"], 4, report)
        ids = launch.psql(self.superuser, "SELECT id FROM referral.services WHERE "
                          "organization_id = '%s'" % org).split()
        self.assertEqual(ids, [ok_svc])

    def test_requests_that_are_not_an_import(self):
        self.assertProblem(self.req("POST", "/api/v1/directory/import", {"files": []},
                                    headers=self.admin.auth), 400, "files")
        self.assertProblem(self.req("POST", "/api/v1/directory/import",
                                    {"files": [file_entry("clients.json", [])]},
                                    headers=self.admin.auth), 400, "files.name")
        self.assertProblem(self.req("POST", "/api/v1/directory/import",
                                    {"files": [{"name": "services.json",
                                                "content": "not base64!"}]},
                                    headers=self.admin.auth), 400)
        r = self.req("POST", "/api/v1/directory/import",
                     {"files": [file_entry("services.json", [])]}, headers=self.peer.auth)
        self.assertProblem(r, 403)


class SearchRowsTests(ImportBase):
    """The distance search reads a table derived from the directory: every
    import that changes what it holds (a service, a place, the link between
    them, a category term, a language) rewrites it in the same transaction."""

    def near(self, query):
        r = self.req("GET", "/api/v1/directory/services?latitude=40.7&longitude=-74.0"
                     "&radius_km=5&" + query, headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        return [(s["name"], s["location_name"]) for s in r.json()["services"]]

    def test_imports_keep_the_distance_search_in_step(self):
        org, svc, loc, sal, tax, term, attr, lang = (str(uuid.uuid4()) for _ in range(8))
        far = str(uuid.uuid4())

        def dataset(lat, term_name, lang_code, place=loc):
            return [
                file_entry("taxonomy.json", [{"id": tax, "name": "Local", "description": "x"}]),
                file_entry("taxonomy_term.json", [{"id": term, "name": term_name, "code": "LC-1",
                                                   "description": "x", "taxonomy_id": tax}]),
                file_entry("organization.json", [{"id": org, "name": "Pier Org",
                                                  "description": "x"}]),
                file_entry("location.json", [
                    {"id": loc, "organization_id": org, "name": "Pier site",
                     "location_type": "physical", "latitude": lat, "longitude": -74.0},
                    {"id": far, "organization_id": org, "name": "Far site",
                     "location_type": "physical", "latitude": 41.5, "longitude": -74.0}]),
                file_entry("service.json", [{
                    "id": svc, "organization_id": org, "name": "Pier Meals",
                    "description": "hot meals", "status": "active",
                    "languages": [{"id": lang, "code": lang_code, "name": "x"}],
                    "attributes": [{"id": attr, "taxonomy_term_id": term}]}]),
                file_entry("service_at_location.json", [{"id": sal, "service_id": svc,
                                                         "location_id": place}]),
            ]

        report = self.imp(dataset(40.7, "Food", "en"))
        self.assertEqual(report["refused"], 0, report)
        self.assertEqual(self.near("q=meals&taxonomy_term=food&language=en"),
                         [("Pier Meals", "Pier site")])
        # The place moves out of the radius: the service is no longer near.
        self.imp(dataset(40.9, "Food", "en"))
        self.assertEqual(self.near("q=meals"), [])
        # Back, with the term renamed and another language.
        self.imp(dataset(40.7, "Groceries", "es"))
        self.assertEqual(self.near("taxonomy_term=groceries&language=es"),
                         [("Pier Meals", "Pier site")])
        self.assertEqual(self.near("taxonomy_term=food"), [])
        self.assertEqual(self.near("language=en"), [])
        # The link now points at the far place.
        self.imp(dataset(40.7, "Groceries", "es", place=far))
        self.assertEqual(self.near(""), [])
        rows = launch.psql(self.superuser, "SELECT count(*) FROM referral.service_search "
                           "WHERE service_id = '%s'" % svc).strip()
        self.assertEqual(rows, "1")

    def test_new_and_stored_records_linked_across_imports_are_found(self):
        # Services an import creates are refreshed without a lookup through
        # the places and terms it creates; these are the links that cross
        # from one import to the next.
        org, tax, term, home, other = (str(uuid.uuid4()) for _ in range(5))
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        self.imp([
            file_entry("taxonomy.json", [{"id": tax, "name": "Cross", "description": "x"}]),
            file_entry("taxonomy_term.json", [{"id": term, "name": "Crossing", "code": "CR-1",
                                               "description": "x", "taxonomy_id": tax}]),
            file_entry("organization.json", [{"id": org, "name": "Cross Org",
                                              "description": "x"}]),
            file_entry("location.json", [{"id": home, "organization_id": org,
                                          "name": "Cross home", "location_type": "physical",
                                          "latitude": 40.71, "longitude": -74.0}]),
            file_entry("service.json", [{"id": first, "organization_id": org,
                                         "name": "Cross first", "description": "x",
                                         "status": "active"}]),
        ])
        self.assertEqual(self.near("taxonomy_term=CR-1"), [])  # no place yet
        # A new service at the stored place, attributed the stored term.
        self.imp([
            file_entry("service.json", [{"id": second, "organization_id": org,
                                         "name": "Cross second", "description": "x",
                                         "status": "active",
                                         "attributes": [{"id": str(uuid.uuid4()),
                                                         "taxonomy_term_id": term}]}]),
            file_entry("service_at_location.json", [{"id": str(uuid.uuid4()),
                                                     "service_id": second,
                                                     "location_id": home}]),
        ])
        self.assertEqual(self.near("taxonomy_term=CR-1"), [("Cross second", "Cross home")])
        # The stored first service at a new place, and in a language.
        self.imp([
            file_entry("location.json", [{"id": other, "organization_id": org,
                                          "name": "Cross other", "location_type": "physical",
                                          "latitude": 40.72, "longitude": -74.0}]),
            file_entry("service_at_location.json", [{"id": str(uuid.uuid4()),
                                                     "service_id": first,
                                                     "location_id": other}]),
            file_entry("language.json", [{"id": str(uuid.uuid4()), "service_id": first,
                                          "code": "fr", "name": "French"}]),
        ])
        self.assertEqual(self.near("q=cross&language=fr"), [("Cross first", "Cross other")])
        self.assertEqual(sorted(self.near("q=cross")),
                         [("Cross first", "Cross other"), ("Cross second", "Cross home")])


class RealSampleTests(ImportBase):
    """The samples as they are, into an empty directory (a stack of its own)."""

    def test_real_samples_bad_records_reported_the_rest_taken_twice_the_same(self):
        # The upstream samples carry placeholders: a latitude of 100 and parent
        # ids that point nowhere. Those records are refused, named by file,
        # place and field; what does not depend on them is taken.
        before = self.counts()
        report = self.imp(sample_files())
        problems = self.problems(report)
        for want in (("location.json", "", "latitude"),
                     ("taxonomy_term.json", "", "parent_id"),
                     ("organization_full.json", "", "parent_organization_id"),
                     ("service_full.json", "", "organization_id"),
                     ("service_at_location_full.json", "/location", "latitude")):
            self.assertIn(want, problems, report)
        for p in report["problems"]:
            self.assertTrue(p["message"], p)
        self.assertEqual(report["refused"], len(report["problems"]))
        self.assertGreater(report["taken"], 0)
        self.assertGreater(report["skipped"], 0)
        self.assertEqual(report["taken"],
                         report.get("created", 0) + report.get("updated", 0)
                         + report.get("unchanged", 0))
        after = self.counts()
        # The taxonomy is taken although a term of it is refused.
        self.assertEqual(after["taxonomies"] - before["taxonomies"], 1)
        # The same files again change nothing and say the same.
        again = self.imp(sample_files())
        self.assertEqual(again.get("created", 0), 0, again)
        self.assertEqual(again.get("updated", 0), 0, again)
        self.assertEqual(again["unchanged"], report["taken"])
        self.assertEqual(again["problems"], report["problems"])
        self.assertEqual(self.counts(), after)
