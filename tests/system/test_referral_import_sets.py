"""The directory import writes each table in chunks of one statement
(services/referral/import_write.c). These tests hold it to the record-by-
record behaviour: a record only the database refuses, in the middle of a
large chunk, is reported with its file, line and field while the rest of the
chunk goes in; what is nested in a record the database refuses is skipped;
a dangling reference among many is refused alone; importing the same
package twice changes nothing, not even the search rows; and right after an
import the distance search's table is in step and has statistics."""

import io
import time
import uuid
import zipfile

from harness import launch
from test_referral_csv import table
from test_referral_import import ImportBase, file_entry

# More records than one chunk (import_write.c S_CHUNK, 1000), so that a bad
# one sits in a chunk of many and others come in a chunk of their own.
N = 1500


def dataset(n, org, lat=40.70, tag="Shelter"):
    """n services of org, each at its own located place, with a language and a
    category term: the CSV package of an import."""
    tax, term = str(uuid.uuid4()), str(uuid.uuid4())
    services = [["id", "organization_id", "name", "description", "status"]]
    locations = [["id", "organization_id", "name", "latitude", "longitude"]]
    links = [["id", "service_id", "location_id"]]
    languages = [["id", "service_id", "code", "name"]]
    attributes = [["id", "link_id", "link_entity", "taxonomy_term_id"]]
    for i in range(n):
        s, loc = str(uuid.uuid4()), str(uuid.uuid4())
        services.append([s, org, "%s %d" % (tag, i), "beds for the night %d" % i, "active"])
        locations.append([loc, org, "%s site %d" % (tag, i), "%.6f" % (lat + i * 1e-5),
                          "%.6f" % (-74.0 + i * 1e-5)])
        links.append([str(uuid.uuid4()), s, loc])
        languages.append([str(uuid.uuid4()), s, "en", "English"])
        attributes.append([str(uuid.uuid4()), s, "service", term])
    return {
        "organizations.csv": [["id", "name"], [org, "%s Org" % tag]],
        "taxonomies.csv": [["id", "name", "description"], [tax, "Local", "x"]],
        "taxonomy_terms.csv": [["id", "code", "name", "description", "taxonomy_id"],
                               [term, "SH-%s" % tag, tag, "x", tax]],
        "services.csv": services,
        "locations.csv": locations,
        "service_at_location.csv": links,
        "languages.csv": languages,
        "attributes.csv": attributes,
    }


def package(tables):
    """The tables as one zip (a request body holds at most 1 MiB; the zip
    unpacks to several)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, rows in tables.items():
            z.writestr(name, table(rows))
    return [file_entry("pkg.zip", out.getvalue())]


class ImportSetTests(ImportBase):
    def psql(self, sql):
        return launch.psql(self.superuser, sql).strip()

    def test_a_bad_row_in_a_large_chunk_is_reported_alone(self):
        org = str(uuid.uuid4())
        tables = dataset(N, org, tag="Chunk")
        services = tables["services.csv"]
        # Row 700 (line 701 of the file): a name over the column's bound,
        # which only the database checks; the record of the row after it
        # refers to an organisation that is nowhere.
        bad, dangling = services[700][0], services[701][0]
        services[700][2] = "x" * 501
        services[701][1] = str(uuid.uuid4())
        report = self.imp(package(tables))
        got = {(p["file"], p["line"], p["field"]) for p in report["problems"]}
        # The place links, languages and attributes of the two refused
        # services point at services that are not there: refused too.
        want = {("pkg.zip/services.csv", 701, "name"),
                ("pkg.zip/services.csv", 702, "organization_id"),
                ("pkg.zip/service_at_location.csv", 701, "service_id"),
                ("pkg.zip/service_at_location.csv", 702, "service_id"),
                ("pkg.zip/languages.csv", 701, "service_id"),
                ("pkg.zip/languages.csv", 702, "service_id")}
        self.assertTrue(want <= got, sorted(got - want))
        by = {(p["file"], p["line"]): p for p in report["problems"]}
        self.assertIn("out of bounds", by[("pkg.zip/services.csv", 701)]["message"])
        self.assertIn("neither in the directory", by[("pkg.zip/services.csv", 702)]["message"])
        self.assertEqual(report["refused"], 6, report["problems"])
        total = 1 + 1 + 1 + 5 * N  # organization, taxonomy, term, five rows per service
        self.assertEqual(report["taken"], total - 6, report)
        self.assertEqual(report["created"], total - 6, report)
        self.assertEqual(int(self.psql("SELECT count(*) FROM referral.services "
                                       "WHERE organization_id = '%s'" % org)), N - 2)
        self.assertEqual(self.psql("SELECT count(*) FROM referral.services WHERE id IN "
                                   "('%s', '%s')" % (bad, dangling)), "0")
        # Attributes hold no reference the database checks (link_id names any
        # table): the two of the refused services are taken, and the search
        # rows of the others are all there.
        self.assertEqual(int(self.psql("SELECT count(*) FROM referral.service_search "
                                       "WHERE service_id IN (SELECT id FROM referral.services "
                                       "WHERE organization_id = '%s')" % org)), N - 2)

    def test_records_nested_in_one_the_database_refuses_are_skipped(self):
        org = str(uuid.uuid4())
        services = []
        for i in range(5):
            services.append({
                "id": str(uuid.uuid4()), "organization_id": org, "name": "Nested %d" % i,
                "status": "active",
                "phones": [{"id": str(uuid.uuid4()), "number": "555-010%d" % i}],
                "languages": [{"id": str(uuid.uuid4()), "code": "en"}]})
        services[2]["name"] = "y" * 600  # the database's bound
        report = self.imp([file_entry("organizations.json", [{"id": org, "name": "N Org"}]),
                           file_entry("services.json", services)])
        self.assertEqual([(p["file"], p["at"], p["field"]) for p in report["problems"]],
                         [("services.json", "/2", "name")], report)
        self.assertEqual((report["refused"], report["skipped"]), (1, 2), report)
        self.assertEqual(report["taken"], 1 + 4 * 3, report)
        self.assertEqual(self.psql("SELECT count(*) FROM referral.phones WHERE service_id IN "
                                   "(SELECT id FROM referral.services WHERE organization_id "
                                   "= '%s')" % org), "4")

    def test_a_refused_record_stored_before_still_holds_its_references(self):
        # The import checks the references between tables (migration 010): a
        # record the database refuses on a later import is still stored, so
        # what refers to it is taken; one never stored takes its referrers
        # down with it.
        org = str(uuid.uuid4())
        stored, new = str(uuid.uuid4()), str(uuid.uuid4())
        first = self.imp([file_entry("organizations.json", [{"id": org, "name": "Held Org"}]),
                          file_entry("services.json", [{"id": stored, "organization_id": org,
                                                        "name": "Held 1", "status": "active"}])])
        self.assertEqual((first["created"], first["refused"]), (2, 0), first)
        links = [{"id": str(uuid.uuid4()), "service_id": s, "code": "es"}
                 for s in (stored, new)]
        report = self.imp([
            file_entry("services.json", [
                {"id": stored, "organization_id": org, "name": "z" * 600, "status": "active"},
                {"id": new, "organization_id": org, "name": "q" * 600, "status": "active"}]),
            file_entry("languages.json", links)])
        got = sorted((p["file"], p["at"], p["field"]) for p in report["problems"])
        self.assertEqual(got, [("languages.json", "/1", "service_id"),
                               ("services.json", "/0", "name"),
                               ("services.json", "/1", "name")], report)
        self.assertIn("neither in the directory",
                      [p for p in report["problems"]
                       if p["file"] == "languages.json"][0]["message"])
        self.assertEqual((report["created"], report["refused"]), (1, 3), report)
        self.assertEqual(self.psql("SELECT service_id FROM referral.languages WHERE id IN "
                                   "('%s', '%s')" % (links[0]["id"], links[1]["id"])), stored)
        self.assertEqual(self.psql("SELECT name FROM referral.services WHERE id = '%s'"
                                   % stored), "Held 1")

    def test_the_service_cannot_delete_from_the_directory(self):
        # Nothing deletes a directory record (its status retires it): the
        # references the import checked hold for good.
        app = self.stack.app_database_url()
        for t in ("organizations", "services", "locations", "service_at_location"):
            with self.assertRaises(launch.LaunchError):
                launch.psql(app, "DELETE FROM referral.%s WHERE false" % t)

    def test_the_same_package_twice_changes_nothing(self):
        org = str(uuid.uuid4())
        files = package(dataset(N, org, lat=40.75, tag="Again"))
        first = self.imp(files)
        self.assertEqual(first["refused"], 0, first["problems"])
        rows = ("SELECT count(*), coalesce(sum(xmin::text::bigint), 0) FROM referral.%s "
                "WHERE agency_id = (SELECT agency_id FROM referral.organizations WHERE id = '%s')")
        before = {t: self.psql(rows % (t, org)) for t in ("services", "locations",
                                                        "service_at_location", "languages",
                                                        "attributes", "service_search")}
        again = self.imp(files)
        self.assertEqual((again.get("created", 0), again.get("updated", 0)), (0, 0), again)
        self.assertEqual(again["unchanged"], first["taken"])
        self.assertEqual(again.get("problems", []), [])
        # Not a row rewritten: the same row versions (xmin) as before.
        after = {t: self.psql(rows % (t, org)) for t in before}
        self.assertEqual(after, before)
        # One changed row updates that record only.
        svc_rows = [["id", "organization_id", "name", "description", "status"]]
        sid = self.psql("SELECT id FROM referral.services WHERE organization_id = '%s' "
                        "ORDER BY name LIMIT 1" % org)
        svc_rows.append([sid, org, "Again renamed", "beds", "active"])
        tables = {"services.csv": svc_rows}
        report = self.imp(package(tables))
        self.assertEqual((report.get("created", 0), report["updated"]), (0, 1), report)

    def test_rows_of_created_services_match_a_full_rewrite(self):
        # The rows of services an import creates are written from the
        # import's own links (search_rows.c); rewriting them through the
        # directory's lookups (refresh_service_search) gives the same rows.
        org = str(uuid.uuid4())
        tables = dataset(60, org, lat=41.6, tag="Match")
        # A second place for one service, and the first one linked twice;
        # a second language (mixed case) and a second term for another.
        extra = str(uuid.uuid4())
        first, second = tables["services.csv"][1][0], tables["services.csv"][2][0]
        tables["locations.csv"].append([extra, org, "Match extra", "41.61", "-74.01"])
        tables["service_at_location.csv"] += [[str(uuid.uuid4()), first, extra],
                                              [str(uuid.uuid4()), first,
                                               tables["locations.csv"][1][0]]]
        tables["languages.csv"].append([str(uuid.uuid4()), second, "ES", "Español"])
        term2 = str(uuid.uuid4())
        tables["taxonomy_terms.csv"].append([term2, "SH-Match-2", "Second Kind", "x",
                                             tables["taxonomies.csv"][1][0]])
        tables["attributes.csv"].append([str(uuid.uuid4()), second, "service", term2])
        report = self.imp(package(tables))
        self.assertEqual(report["refused"], 0, report["problems"])
        rows = ("SELECT service_id, location_id, latitude, longitude, status, search, "
                "(SELECT array_agg(k ORDER BY k) FROM unnest(term_keys) k), "
                "(SELECT array_agg(k ORDER BY k) FROM unnest(language_keys) k), "
                "minimum_age, maximum_age FROM referral.service_search "
                "WHERE service_id IN (SELECT id FROM referral.services "
                "WHERE organization_id = '%s') ORDER BY 1, 2" % org)
        written = self.psql(rows)
        self.assertEqual(len(written.splitlines()), 61)
        self.assertTrue("{en,english,es,español}" in written)  # lower case, each once
        self.assertTrue("code:SH-Match-2" in written)
        self.psql("SELECT referral.refresh_service_search(s.agency_id, array_agg(s.id), '{}', "
                  "'{}', (SELECT updated_by FROM referral.services LIMIT 1)) "
                  "FROM referral.services s WHERE s.organization_id = '%s' "
                  "GROUP BY s.agency_id" % org)
        self.assertEqual(self.psql(rows), written)

    def test_right_after_an_import_the_search_rows_are_in_step_with_statistics(self):
        org = str(uuid.uuid4())
        tables = dataset(N, org, lat=41.30, tag="Respite")
        report = self.imp(package(tables))
        self.assertEqual(report["refused"], 0, report["problems"])
        # One search row per service and place, with its category and language keys.
        self.assertEqual(int(self.psql(
            "SELECT count(*) FROM referral.service_search x JOIN referral.services s "
            "ON s.agency_id = x.agency_id AND s.id = x.service_id "
            "WHERE s.organization_id = '%s' AND 'code:SH-Respite' = ANY (x.term_keys) "
            "AND 'en' = ANY (x.language_keys)" % org)), N)
        # Statistics are taken as soon as the import commits (the referral
        # service's upkeep thread, beside the next request), not a minute
        # later by autovacuum: the planner knows the table's size.
        deadline = time.monotonic() + 10
        while True:
            tuples = float(self.psql("SELECT reltuples FROM pg_class "
                                     "WHERE oid = 'referral.service_search'::regclass"))
            if tuples >= N * 0.5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(tuples, N * 0.5)
        r = self.req("GET", "/api/v1/directory/services?q=beds&taxonomy_term=SH-Respite"
                     "&language=en&latitude=41.30&longitude=-74.0&radius_km=1&limit=100",
                     headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        names = [s["name"] for s in r.json()["services"]]
        self.assertEqual(len(names), 100)
        self.assertEqual(names[0], "Respite 0")  # the nearest place first
        self.assertEqual(r.json()["next_offset"], 100)
