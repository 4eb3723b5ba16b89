"""Reporting: staff certifications expiring within 60 days, and staff load.

Identity emits staff.changed (the gateway relays it and answers its
ReplayEvents); the reporting service keeps each staff member's sites and
credentials and the dashboards count those that expire within 60 days or have
expired. Supervisors see which staff member holds each; analysts get counts
only, suppressed below 11. beacon-reporting-check compares what reporting
holds with identity's tables.

Staff load: intake's client.assigned (registration, reassignment, merge,
enrolment and discharge) gives each staff member's active clients;
note.overdue and note.signed the encounters whose note is overdue; the
follow-up date on referral.created the open referrals past it. Supervisors
see them per staff member, analysts the suppressed total only.
"""

import datetime
import os
import secrets
import signal
import time
import uuid

import test_reporting
from harness import SCALE, StackTestCase, launch

TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def day(offset):
    return (TODAY + datetime.timedelta(days=offset)).isoformat()


class StaffCertificationTests(StackTestCase):
    settings = {"allow_bootstrap": True, "request_timeout_ms": 10000}
    process_settings = {"reporting": {"consumer_poll_ms": 300},
                        "notes": {"overdue_scan_seconds": 1}}

    check = test_reporting.ReportingTests.check
    assertConsistent = test_reporting.ReportingTests.assertConsistent
    sql = test_reporting.ReportingTests.sql

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.site = cls.org.site_id
        cls.other_site = cls.org.add_site("Northside")
        cls.supervisor = cls.org.add_staff(["supervisor"], [cls.site])
        cls.analyst = cls.org.add_staff(["analyst"], [cls.site])

    def new_staff(self, credentials, sites=None):
        body = {"given_name": "Sam", "family_name": "Cert-" + secrets.token_hex(3),
                "email": "cert-%s@example.org" % secrets.token_hex(5),
                "roles": ["peer_specialist"], "site_ids": sites or [self.site],
                "password": secrets.token_urlsafe(12),
                "credentials": [{"kind": k, "number": "N-" + secrets.token_hex(3),
                                 "issued_on": day(-700), "expires_on": e}
                                for k, e in credentials]}
        r = self.stack.request("POST", "/api/v1/staff", body=body, headers=self.org.admin.auth)
        self.assertEqual(r.status, 201, r.body[:300])
        return r.json()["id"]

    def get(self, who, path, **query):
        qs = "&".join("%s=%s" % kv for kv in query.items())
        return self.stack.request("GET", path + ("?" + qs if qs else ""), headers=who.auth,
                                  timeout=20 * SCALE)

    def table(self, doc, name):
        return next((t for t in doc["tables"] if t["name"] == name), None)

    def by_kind(self, doc):
        t = self.table(doc, "certifications")
        return {r["key"]: [c["value"] if not c["suppressed"] else None for c in r["cells"]]
                for r in t["rows"]}

    def wait_applied(self, who, path, want, timeout=20):
        """The dashboard once the consumer has caught up (want(doc) true)."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            r = self.get(who, path)
            self.assertEqual(r.status, 200, r.body[:300])
            if want(r.json()) or time.monotonic() > deadline:
                return r.json()
            time.sleep(0.2)

    def test_1_expiring_certifications_for_supervisors_and_analysts(self):
        site_path = "/api/v1/dashboards/site/%s" % self.site
        soon = [self.new_staff([("certified_peer_specialist", day(10))]) for _ in range(3)]
        expired = self.new_staff([("certified_peer_specialist", day(-5)),
                                  ("cpr_first_aid", day(200))])
        later = self.new_staff([("certified_peer_specialist", day(90))])
        elsewhere = self.new_staff([("certified_peer_specialist", day(20))], [self.other_site])
        gone = self.new_staff([("certified_peer_specialist", day(15))])
        both = self.new_staff([("recovery_coach", day(60)), ("cpr_first_aid", day(3))],
                              [self.site, self.other_site])
        r = self.stack.request("POST", "/api/v1/staff/%s/disable" % gone,
                               body={"reason": "left the agency"}, headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body[:300])

        want = {"certified_peer_specialist": [3, 1], "cpr_first_aid": [1, 0],
                "recovery_coach": [1, 0], "total": [5, 1]}
        doc = self.wait_applied(self.supervisor, site_path, lambda d: self.by_kind(d) == want)
        self.assertEqual(self.by_kind(doc), want)
        rows = self.table(doc, "staff_certifications")
        self.assertEqual(rows["labels"], ["kind", "expires_on"])
        self.assertEqual(rows["measures"], ["days_left"])
        listed = sorted((r["key"], r["labels"][0], r["labels"][1], r["cells"][0]["value"])
                        for r in rows["rows"])
        self.assertEqual(listed, sorted(
            [(s, "certified_peer_specialist", day(10), 10) for s in soon] +
            [(expired, "certified_peer_specialist", day(-5), -5),
             (both, "recovery_coach", day(60), 60), (both, "cpr_first_aid", day(3), 3)]))
        for absent in (later, elsewhere, gone):
            self.assertNotIn(absent, str(rows))

        # A credential renewed: it leaves the list.
        r = self.stack.request("PATCH", "/api/v1/staff/%s" % soon[0], body={
            "set_credentials": True, "credentials": [
                {"kind": "certified_peer_specialist", "number": "N-1", "issued_on": day(0),
                 "expires_on": day(730)}]}, headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body[:300])
        want["certified_peer_specialist"] = [2, 1]
        want["total"] = [4, 1]
        doc = self.wait_applied(self.supervisor, site_path, lambda d: self.by_kind(d) == want)
        self.assertEqual(self.by_kind(doc), want)

        # The agency admin's agency dashboard counts every site, identified.
        doc = self.get(self.org.admin, "/api/v1/dashboards/agency").json()
        self.assertEqual(self.by_kind(doc)["total"], [5, 1])
        self.assertIn(elsewhere, str(self.table(doc, "staff_certifications")))

        # CSV: the labels after the key.
        r = self.get(self.supervisor, site_path + "/export", table="staff_certifications")
        self.assertEqual(r.status, 200, r.body[:300])
        lines = r.body.decode().splitlines()
        self.assertEqual(lines[0], "staff_id,kind,expires_on,days_left")
        self.assertIn("%s,certified_peer_specialist,%s,-5" % (expired, day(-5)), lines)

        # Analysts: counts only, every count under 11 suppressed, no staff ids.
        r = self.get(self.analyst, site_path)
        self.assertEqual(r.status, 200, r.body[:300])
        doc = r.json()
        self.assertTrue(doc["deidentified"])
        self.assertIsNone(self.table(doc, "staff_certifications"))
        for staff in soon + [expired, both, self.supervisor.id]:
            self.assertNotIn(staff, r.body.decode())
        for row in self.table(doc, "certifications")["rows"]:
            for cell in row["cells"]:
                self.assertTrue(cell["suppressed"] or cell["value"] == 0, row)
        r = self.get(self.analyst, site_path + "/export", table="staff_certifications")
        self.assertProblem(r, 400, "table")

        # Eleven more with one kind: the total is shown to analysts, the small
        # cells stay hidden and cannot be recovered from it.
        for _ in range(11):
            self.new_staff([("recovery_coach", day(30))])
        want_sup = {"certified_peer_specialist": [2, 1], "cpr_first_aid": [1, 0],
                    "recovery_coach": [12, 0], "total": [15, 1]}
        self.wait_applied(self.supervisor, site_path, lambda d: self.by_kind(d) == want_sup)
        doc = self.get(self.analyst, site_path).json()
        t = self.table(doc, "certifications")
        self.assertEqual(self.by_kind(doc)["total"][0], 15)
        rows = [x for x in t["rows"] if x["key"] != "total"]
        total = next(x for x in t["rows"] if x["key"] == "total")
        for i in range(2):
            hidden = [x for x in rows if x["cells"][i]["suppressed"]]
            for x in rows:
                v = x["cells"][i]
                self.assertFalse(not v["suppressed"] and 0 < v["value"] < 11, x)
            if hidden and not total["cells"][i]["suppressed"]:
                shown = sum(x["cells"][i]["value"] for x in rows if not x["cells"][i]["suppressed"])
                self.assertGreaterEqual(total["cells"][i]["value"] - shown, 11, t)
        self.assertConsistent()

    def test_2_events_missed_while_reporting_was_down_are_replayed(self):
        site_path = "/api/v1/dashboards/site/%s" % self.site
        self.stack.stop_process("reporting", sig=signal.SIGKILL)
        made = [self.new_staff([("naloxone_trainer", day(7))]) for _ in range(2)]
        # The relay published them to nobody: reporting asks identity's
        # ReplayEvents (endpoint_identity) when it starts.
        time.sleep(0.5)
        self.stack.start_process("reporting", wait=True)
        doc = self.wait_applied(self.supervisor, site_path,
                                lambda d: self.by_kind(d).get("naloxone_trainer") == [2, 0])
        self.assertEqual(self.by_kind(doc).get("naloxone_trainer"), [2, 0])
        self.assertTrue(all(m in str(self.table(doc, "staff_certifications")) for m in made))
        # Killing the gateway (identity's relay) loses nothing either.
        self.stack.stop_process("gateway", sig=signal.SIGKILL)
        self.stack.start_process("gateway", wait=True)
        self.new_staff([("naloxone_trainer", day(8))])
        doc = self.wait_applied(self.supervisor, site_path,
                                lambda d: self.by_kind(d).get("naloxone_trainer") == [3, 0])
        self.assertEqual(self.by_kind(doc).get("naloxone_trainer"), [3, 0])
        self.assertConsistent()

    def test_3_bad_staff_events_are_rejected_and_the_check_sees_a_difference(self):
        # A staff.changed whose staff id is not a UUID: rejected, never applied.
        self.sql("INSERT INTO events.outbox (producer, topic, payload) "
                 "VALUES ('identity', 'staff.changed', '\\x0a03616263'::bytea)")
        deadline = time.monotonic() + 20 * SCALE
        while self.sql("SELECT count(*) FROM reporting.rejects WHERE producer = 'identity'") \
                == "0" and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.sql("SELECT topic FROM reporting.rejects "
                                  "WHERE producer = 'identity'"), "staff.changed")
        self.assertConsistent()
        # A credential reporting lost: the check names it.
        staff = self.new_staff([("wrap_facilitator", day(40))])
        deadline = time.monotonic() + 20 * SCALE
        while self.sql("SELECT count(*) FROM reporting.staff_credentials WHERE staff_id = '%s'"
                       % staff) == "0" and time.monotonic() < deadline:
            time.sleep(0.2)
        self.sql("DELETE FROM reporting.staff_credentials WHERE staff_id = '%s'" % staff)
        try:
            p = self.check()
            self.assertEqual(p.returncode, 1, p.stdout[-2000:] + p.stderr[-2000:])
            self.assertIn("staff_credentials %s: expected wrap_facilitator" % staff, p.stdout)
        finally:
            self.sql("INSERT INTO reporting.staff_credentials VALUES ('%s', 'wrap_facilitator', "
                     "'%s', '%s')" % (staff, day(-700), day(40)))
        self.assertConsistent()

    def test_4_staff_load_for_supervisors_totals_for_analysts(self):
        site_path = "/api/v1/dashboards/site/%s" % self.site
        peer = self.org.add_staff(["peer_specialist"], [self.site])
        peer2 = self.org.add_staff(["peer_specialist"], [self.site])

        def call(who, method, path, body=None, expect=200):
            r = self.stack.request(method, path, body=body, headers=who.auth, timeout=20 * SCALE)
            self.assertEqual(r.status, expect, (path, r.body[:300]))
            return r.json() if r.body else None

        clients = [call(peer, "POST", "/api/v1/clients", {
            "given_name": "Robin", "family_name": "L-" + uuid.uuid4().hex[:8],
            "date_of_birth": "1984-06-15"}, 201)["id"] for _ in range(4)]
        # One moves to peer2's caseload, one is merged away, one is
        # enrolled then discharged (no longer active).
        call(self.supervisor, "POST", "/api/v1/clients/%s/assignment" % clients[1],
             {"staff_id": peer2.id, "reason": "closer to where the client lives"})
        call(self.supervisor, "POST", "/api/v1/clients/%s/merge" % clients[0],
             {"duplicate_id": clients[2], "reason": "registered twice at intake"})
        ep = call(peer, "POST", "/api/v1/clients/%s/enrollments" % clients[3],
                  {"program": "Peer recovery", "pathway": "brief", "started_on": day(-30)},
                  201)["id"]
        call(peer, "POST", "/api/v1/clients/%s/enrollments/%s/discharge" % (clients[3], ep),
             {"reason": "goals_met", "discharged_on": day(-1)})
        # Two meetings with clients[0] five days ago (past overdue_hours, 72,
        # within the scan's window); the second one's note is signed.
        encounters = []
        for hour in (14, 16):
            appt = call(peer, "POST", "/api/v1/appointments", {
                "client_id": clients[0], "staff_id": peer.id,
                "start": "%sT%02d:00:00Z" % (day(-5), hour),
                "end": "%sT%02d:45:00Z" % (day(-5), hour), "mode": "in_person"}, 201)["id"]
            encounters.append(call(peer, "POST", "/api/v1/appointments/%s/complete" % appt,
                                   {}, 201)["id"])
        note = call(peer, "POST", "/api/v1/notes", {
            "client_id": clients[0], "encounter_id": encounters[1], "template_id": "girp",
            "sections": [{"key": k, "text": v} for k, v in test_reporting.GIRP.items()]}, 201)
        call(peer, "POST", "/api/v1/notes/%s/sign" % note["id"], {"attest": True})
        # Referrals: one past its follow-up date, one not yet, one closed.
        refs = [call(peer, "POST", "/api/v1/referrals", {
            "client_id": clients[0], "external_resource": "County food bank",
            "reason": "Food insecurity", "follow_up_on": d}, 201)["id"]
            for d in (day(-2), day(5), day(-3))]
        call(peer, "POST", "/api/v1/referrals/%s/status" % refs[2],
             {"status": "cancelled", "outcome": "no_longer_interested"})

        def load(doc):
            t = self.table(doc, "staff_load")
            return {r["key"]: [c["value"] if not c["suppressed"] else None for c in r["cells"]]
                    for r in t["rows"]}
        want = {peer.id: [1, 1, 1], peer2.id: [1, 0, 0]}
        doc = self.wait_applied(self.supervisor, site_path,
                                lambda d: {k: v for k, v in load(d).items()
                                           if k in want} == want, timeout=30)
        got = load(doc)
        self.assertEqual({k: v for k, v in got.items() if k in want}, want, got)
        self.assertEqual(self.table(doc, "staff_load")["measures"],
                         ["active_clients", "notes_overdue", "referrals_past_follow_up"])
        self.assertEqual(got["total"], [sum(v[i] for k, v in got.items() if k != "total")
                                        for i in range(3)])
        # Analysts: the total row alone, each figure under 11 suppressed.
        r = self.get(self.analyst, site_path)
        t = self.table(r.json(), "staff_load")
        self.assertEqual([x["key"] for x in t["rows"]], ["total"])
        for cell in t["rows"][0]["cells"]:
            self.assertTrue(cell["suppressed"] and cell["value"] == 0, t)
        for staff in (peer.id, peer2.id):
            self.assertNotIn(staff, r.body.decode())
        self.assertConsistent()


    def test_5_backfill_migrations_announce_what_existed(self):
        """The migrations that announce existing staff (gateway 004) and
        clients (intake 020) write payloads the consumer applies: run again
        (their events are snapshots, so applying one twice changes nothing),
        they restore rows reporting lost."""
        staff = self.new_staff([("cpr_first_aid", day(45))])
        peer = self.org.add_staff(["peer_specialist"], [self.site])
        r = self.stack.request("POST", "/api/v1/clients", headers=peer.auth, body={
            "given_name": "Robin", "family_name": "B-" + uuid.uuid4().hex[:8],
            "date_of_birth": "1984-06-15"})
        self.assertEqual(r.status, 201, r.body[:300])
        client = r.json()["id"]
        self.assertConsistent()
        rejects = self.sql("SELECT count(*) FROM reporting.rejects")
        self.sql("DELETE FROM reporting.staff_credentials WHERE staff_id = '%s'; "
                 "DELETE FROM reporting.client_assignments WHERE client_id = '%s'"
                 % (staff, client))
        self.assertEqual(self.check().returncode, 1)
        root = launch.REPO_ROOT
        for path in ("services/gateway/migrations/004_staff_events.sql",
                     "services/intake/migrations/020_assignment_events.sql"):
            with open(os.path.join(root, path)) as f:
                self.sql(f.read())
        self.assertConsistent()
        self.assertEqual(self.sql("SELECT count(*) FROM reporting.rejects"), rejects)
        # The row policies are in force again.
        self.assertEqual(self.sql("SELECT relforcerowsecurity FROM pg_class "
                                  "WHERE oid = 'intake.clients'::regclass"), "t")
