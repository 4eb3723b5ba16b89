"""The HSDS 3.0 tabular data package (one CSV file per table plus
datapackage.json) into and out of the resource directory, over HTTPS: the
real Open Referral samples (../shared/data/hsds-3.0/csv), idempotence, bad
rows (bad UTF-8, wrong number of fields, dangling references, coordinates
off the globe, broken quoting) reported with file, line and field while the
valid rows are still taken, and the export read back in."""

import csv
import io
import json
import os
import uuid
import zipfile

from harness import launch
from test_referral_import import SAMPLES, ImportBase, file_entry

CSV_DIR = os.path.join(SAMPLES, "csv")


def sample_package():
    return [file_entry(n, open(os.path.join(CSV_DIR, n), "rb").read())
            for n in sorted(os.listdir(CSV_DIR))]


def table(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def problems_of(reply, name):
    return [p for p in reply.get("problems", []) if p["file"] == name]


def read_table(text):
    return list(csv.reader(io.StringIO(text)))


def mended_package():
    """The samples with their placeholders mended (as the JSON import test
    does): every reference then points at a record of the package."""
    files = {n: open(os.path.join(CSV_DIR, n), "rb").read() for n in sorted(os.listdir(CSV_DIR))}
    rows = {n: read_table(b.decode("utf-8")) for n, b in files.items() if n.endswith(".csv")}
    first = {n: dict(zip(r[0], r[1])) for n, r in rows.items()}
    fixes = {
        "organizations.csv": {"parent_organization_id": ""},
        "locations.csv": {"latitude": "40.7128", "longitude": "-74.0060",
                          "organization_id": first["organizations.csv"]["id"]},
        "taxonomy_terms.csv": {"parent_id": "", "taxonomy_id": first["taxonomies.csv"]["id"]},
        "attributes.csv": {"link_entity": "service", "link_id": first["services.csv"]["id"]},
    }
    for name, fix in fixes.items():
        header = rows[name][0]
        for k, v in fix.items():
            rows[name][1][header.index(k)] = v
        files[name] = table(rows[name]).encode("utf-8")
    return [file_entry(n, b) for n, b in files.items()]


class CsvImportTests(ImportBase):

    def test_the_shared_samples_as_they_are_report_each_bad_row_and_stay_idempotent(self):
        first = self.imp(sample_package())
        self.assertIn("contacts.csv", first["passed_over"])
        self.assertIn("datapackage.json", first["passed_over"])
        self.assertNotIn("services.csv", first["passed_over"])
        # Upstream placeholders: a latitude of 100, references to records the
        # package does not hold; each reported with file, line and field.
        where = {(p["file"], p["line"], p["field"]) for p in first["problems"]}
        self.assertIn(("locations.csv", 2, "latitude"), where)
        self.assertIn(("organizations.csv", 2, "parent_organization_id"), where)
        self.assertIn(("taxonomy_terms.csv", 2, "parent_id"), where)
        self.assertIn(("attributes.csv", 2, "link_entity"), where)
        self.assertEqual(first["refused"], len(first["problems"]))
        self.assertEqual(first["taken"], first.get("created", 0) + first.get("updated", 0)
                         + first.get("unchanged", 0))
        counts = self.counts()
        second = self.imp(sample_package())
        self.assertEqual((second.get("created", 0), second.get("updated", 0)), (0, 0), second)
        self.assertEqual(second.get("unchanged", 0), first["taken"])
        self.assertEqual(second["refused"], first["refused"])
        self.assertEqual(self.counts(), counts)

    def test_the_samples_mended_are_taken_whole_and_twice_change_nothing(self):
        report = self.imp(mended_package())
        self.assertEqual(report.get("problems", []), [], report)
        self.assertEqual(report.get("refused", 0), 0)
        counts = self.counts()
        for t in ("organizations", "services", "locations", "service_at_location", "addresses",
                  "phones", "schedules", "taxonomies", "taxonomy_terms", "attributes",
                  "languages", "accessibility"):
            self.assertGreater(counts[t], 0, t)
        again = self.imp(mended_package())
        self.assertEqual((again.get("created", 0), again.get("updated", 0)), (0, 0), again)
        self.assertEqual(again["unchanged"], report["taken"])
        self.assertEqual(self.counts(), counts)
        r = self.req("GET", "/api/v1/directory/services?q=counselling", headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertIn("Community Counselling", [s["name"] for s in r.json()["services"]])

    def test_bad_rows_are_reported_with_file_line_and_field_and_the_rest_taken(self):
        ids = [str(uuid.uuid4()) for _ in range(8)]
        orgs = table([["id", "name", "description"],
                      [ids[0], "Good Org One", "fine"],
                      [ids[1], "Too", "many", "fields"],
                      [ids[2], "Good Org Two", "multi\nline description"],
                      [ids[3], "Short"],
                      [ids[4], "Good Org Three", ""]]).encode()
        # Bad UTF-8 in one row only (line 3), the rows around it are taken.
        latin = (b"id,name\r\n" + ids[5].encode() + b",Caf\xe9 Latin-1\r\n"
                 + ids[6].encode() + b",Fine Org\r\n")
        locs = table([["id", "name", "latitude", "longitude", "organization_id"],
                      [str(uuid.uuid4()), "Off the globe", "100", "10", ids[0]],
                      [str(uuid.uuid4()), "Half a pair", "40", "", ids[0]],
                      [str(uuid.uuid4()), "Nowhere org", "40", "-74", str(uuid.uuid4())],
                      [str(uuid.uuid4()), "Fine place", "40.5", "-73.9", ids[0]]]).encode()
        broken = b'id,name,description\n' + ids[7].encode() + b',"never closed,x\n'
        no_name = table([["id", "description"], [str(uuid.uuid4()), "no name column"]]).encode()
        twice = table([["id", "name", "name", "description"],
                       [str(uuid.uuid4()), "a", "b", "c"]]).encode()
        report = self.imp([file_entry("organizations.csv", orgs),
                           file_entry("more/organizations.csv", latin),
                           file_entry("locations.csv", locs),
                           file_entry("taxonomies.csv", broken),
                           file_entry("services.csv", no_name),
                           file_entry("taxonomy_terms.csv", twice),
                           file_entry("languages.csv", b"")])
        where = sorted((p["file"], p["line"], p["field"]) for p in report["problems"])
        self.assertEqual(where, sorted([
            ("organizations.csv", 3, ""), ("organizations.csv", 6, ""),
            ("more/organizations.csv", 2, "name"),
            ("locations.csv", 2, "latitude"), ("locations.csv", 3, "longitude"),
            ("locations.csv", 4, "organization_id"),
            ("taxonomies.csv", 2, ""),
            ("services.csv", 1, "organization_id"),
            ("taxonomy_terms.csv", 1, "name"),
            ("languages.csv", 1, ""),
        ]), report)
        self.assertEqual(report["taken"], 5, report)  # three + one organisations, one location
        self.assertEqual(self.count("organizations"), 4)
        self.assertEqual(self.count("locations"), 1)
        self.assertEqual(launch.psql(self.superuser, "SELECT description FROM "
                                     "referral.organizations WHERE id = '%s'" % ids[2]).strip(),
                         "multi\nline description")

    def test_only_agency_admins_import(self):
        self.imp([file_entry("organizations.csv", table([["id", "name"],
                                                          [str(uuid.uuid4()), "x"]]))],
                 who=self.peer, expect=403)


class CsvExportTests(ImportBase):

    def export(self, who=None):
        r = self.req("GET", "/api/v1/directory/export", headers=(who or self.admin).auth)
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(r.content_type, "application/zip")
        self.assertIn("hsds-directory.zip", r.header("Content-Disposition") or "")
        return zipfile.ZipFile(io.BytesIO(r.body))

    def test_export_is_a_tabular_package_that_imports_back_unchanged(self):
        report = self.imp(mended_package())
        self.assertEqual(report.get("refused", 0), 0, report)
        z = self.export()
        names = set(z.namelist())
        self.assertIn("datapackage.json", names)
        for t in ("organizations", "services", "locations", "service_at_location", "addresses",
                  "phones", "schedules", "taxonomies", "taxonomy_terms", "attributes",
                  "languages", "accessibility"):
            self.assertIn(t + ".csv", names)
        package = json.loads(z.read("datapackage.json"))
        paths = {res["path"]: res for res in package["resources"]}
        services = read_table(z.read("services.csv").decode("utf-8"))
        self.assertEqual(services[0], [f["name"] for f in paths["services.csv"]["schema"]["fields"]])
        self.assertEqual(len(services), 2)
        row = dict(zip(services[0], services[1]))
        self.assertEqual(row["name"], "Community Counselling")
        # A description with commas and quotes survives the round trip.
        samples = {n: read_table(open(os.path.join(CSV_DIR, n), encoding="utf-8").read())
                   for n in ("services.csv",)}
        original = dict(zip(samples["services.csv"][0], samples["services.csv"][1]))
        self.assertEqual(row["description"], original["description"])
        # Imported back (file by file, as exported), nothing changes.
        files = [file_entry(n, z.read(n)) for n in sorted(names)]
        again = self.imp(files)
        self.assertEqual(again.get("problems", []), [], again)
        self.assertEqual((again.get("created", 0), again.get("updated", 0)), (0, 0), again)
        self.assertEqual(again["unchanged"], report["taken"])
        self.assertEqual(again["passed_over"], ["datapackage.json"])
        # The zip itself, as it came, imports the same way.
        body = self.req("GET", "/api/v1/directory/export", headers=self.admin.auth).body
        whole = self.imp([file_entry("hsds-directory.zip", body)])
        self.assertEqual(whole.get("problems", []), [], whole)
        self.assertEqual(whole["unchanged"], report["taken"])
        self.assertEqual(whole["passed_over"], ["hsds-directory.zip/datapackage.json"])
        audit = launch.psql(self.superuser, "SELECT count(*) FROM audit.events WHERE "
                            "action = 'export' AND resource_type = 'directory'").strip()
        self.assertEqual(audit, "2")

    def test_only_agency_admins_export(self):
        r = self.req("GET", "/api/v1/directory/export", headers=self.peer.auth)
        self.assertProblem(r, 403)

    def test_hostile_zips_are_refused_whole(self):
        before = self.counts()
        r = self.req("POST", "/api/v1/directory/import",
                     {"files": [file_entry("package.zip", b"PK\x03\x04 not really a zip")]},
                     headers=self.admin.auth)
        self.assertProblem(r, 400, field="files.content")
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("organizations.csv", b"id,name\n" + b"0" * (70 << 20))
        r = self.req("POST", "/api/v1/directory/import",
                     {"files": [file_entry("bomb.zip", bomb.getvalue())]},
                     headers=self.admin.auth)
        self.assertProblem(r, 413, field="files.content")
        self.assertEqual(self.counts(), before)
