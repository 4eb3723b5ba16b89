"""Intake through the HTTPS API as a peer specialist and a supervisor use it:
registering a client with their details, bad input of every kind, changing
the record under optimistic concurrency (ETag / If-Match), the caseload list
with filters and cursor pages, and caseload assignment with its history."""

import json
import os
import subprocess
import time
import urllib.parse
import uuid

from harness import BUILD_DIR, StackTestCase, launch, new_client


def full_client(**overrides):
    body = new_client(
        preferred_name="Robbie", pronouns="she/her", preferred_language="es-MX",
        phone="+1 (555) 010-2030", email="robin@example.org",
        preferred_contact_method="sms", do_not_contact=False,
        address_lines=["12 Harbor St", "Apt 3"], city="Portland", state="ME",
        postal_code="04101",
        emergency_contact={"name": "Alex Test", "relationship": "sibling",
                           "phone": "555-010-9999"})
    body.update(overrides)
    return body


class IntakeTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.peer2 = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])

    def create(self, who=None, **overrides):
        r = self.req("POST", "/api/v1/clients", full_client(**overrides),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    # -- registering ---------------------------------------------------------

    def test_register_with_full_details(self):
        sent = full_client()
        r = self.req("POST", "/api/v1/clients", sent, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        c = r.json()
        for key, value in sent.items():
            self.assertEqual(c[key], value, key)
        self.assertEqual((c["site_id"], c["assigned_staff_id"], c["version"], c["status"]),
                         (self.site, self.peer.id, 1, "active"))
        self.assertEqual(r.header("ETag"), '"1"')
        got = self.req("GET", "/api/v1/clients/" + c["id"], headers=self.peer.auth)
        self.assertEqual(got.json(), c)
        self.assertEqual(got.header("ETag"), '"1"')

    def test_bad_input_is_refused_and_nothing_written(self):
        before = self.caseload_size(self.peer)
        cases = [
            ({"date_of_birth": "2024-02-30"}, "date_of_birth"),
            ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
            ({"date_of_birth": "1899-12-31"}, "date_of_birth"),
            ({"date_of_birth": "15/06/1984"}, "date_of_birth"),
            ({"preferred_contact_method": "carrier_pigeon"}, "preferred_contact_method"),
            ({"given_name": "x" * 201}, "given_name"),
            ({"given_name": ""}, "given_name"),
            ({"phone": "call me maybe"}, "phone"),
            ({"phone": "12"}, "phone"),
            ({"email": "not-an-email"}, "email"),
            ({"preferred_contact_method": "email", "email": ""}, "email"),
            ({"address_lines": ["1", "2", "3", "4", "5"]}, "address_lines"),
            ({"preferred_language": "english please"}, "preferred_language"),
            ({"emergency_contact": {"name": "y" * 300}}, "emergency_contact.name"),
            ({"do_not_contact": "yes"}, "do_not_contact"),
            ({"status": "active"}, "status"),  # not a field of registration
            ({"site_id": str(uuid.uuid4())}, "site_id"),
        ]
        for overrides, field in cases:
            with self.subTest(overrides=overrides):
                r = self.req("POST", "/api/v1/clients", full_client(**overrides),
                             headers=self.peer.auth)
                self.assertIn(r.status, (400, 403), r.body)
                self.assertEqual(r.json()["errors"][0]["field"], field, r.body)
        self.assertEqual(self.caseload_size(self.peer), before)

    # -- changing -------------------------------------------------------------

    def put(self, c, etag, who=None, **changes):
        body = {k: c[k] for k in full_client() if k in c}
        body["status"] = c["status"]
        body.update(changes)
        headers = dict((who or self.peer).auth)
        if etag is not None:
            headers["If-Match"] = etag
        return self.req("PUT", "/api/v1/clients/" + c["id"], body, headers=headers)

    def test_update_needs_the_current_version(self):
        c = self.create()
        self.assertProblem(self.put(c, None, city="Bangor"), 428)
        self.assertProblem(self.put(c, "3 or so", city="Bangor"), 400, field="If-Match")
        r = self.put(c, '"1"', city="Bangor", do_not_contact=True)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json()["city"], r.json()["do_not_contact"], r.json()["version"]),
                         ("Bangor", True, 2))
        self.assertEqual(r.header("ETag"), '"2"')
        # A second writer who read version 1 is refused, and told so.
        stale = self.put(c, '"1"', city="Augusta")
        self.assertProblem(stale, 412)
        self.assertEqual(self.req("GET", "/api/v1/clients/" + c["id"],
                                  headers=self.peer.auth).json()["city"], "Bangor")
        self.assertEqual(self.put(c, 'W/"2"', city="Augusta").status, 200)
        self.assertProblem(self.put(c, '"3"', status="gone"), 400, field="status")
        self.assertProblem(self.put(c, '"3"', date_of_birth="2024-02-30"), 400,
                           field="date_of_birth")

    def test_concurrent_updates_one_wins(self):
        import threading
        c = self.create()
        results = []

        def writer(city):
            results.append(self.put(c, '"1"', city=city).status)

        threads = [threading.Thread(target=writer, args=("City %d" % i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(results), [200, 412, 412, 412])
        self.assertEqual(self.req("GET", "/api/v1/clients/" + c["id"],
                                  headers=self.peer.auth).json()["version"], 2)

    def test_others_cannot_change_what_they_cannot_see(self):
        c = self.create()
        self.assertProblem(self.put(c, '"1"', who=self.peer2, city="X"), 404)

    # -- the caseload ----------------------------------------------------------

    def caseload_size(self, who, query=""):
        n, cursor = 0, None
        while True:
            q = "?limit=200" + query + ("&cursor=" + cursor if cursor else "")
            r = self.req("GET", "/api/v1/clients" + q, headers=who.auth)
            self.assertEqual(r.status, 200, r.body)
            doc = r.json()
            n += len(doc["clients"])
            cursor = doc["next_cursor"]
            if not cursor:
                return n

    def test_caseload_pages_and_filters(self):
        peer = self.org.add_staff(["peer_specialist"])
        made = [self.create(who=peer)["id"] for _ in range(7)]
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/clients?limit=3&assigned_staff_id=me"
            if cursor:
                path += "&cursor=" + cursor
            doc = self.req("GET", path, headers=peer.auth).json()
            seen += [c["id"] for c in doc["clients"]]
            pages += 1
            cursor = doc["next_cursor"]
            if not cursor:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(seen, list(reversed(made)))  # newest first, no repeats
        # Another peer's caseload is not theirs to list; the supervisor sees all.
        self.assertEqual(self.caseload_size(self.peer2, "&assigned_staff_id=" + peer.id), 0)
        self.assertEqual(self.caseload_size(self.sup, "&assigned_staff_id=" + peer.id), 7)
        self.assertEqual(self.caseload_size(self.sup, "&status=discharged"), 0)
        for bad, field in (("cursor=abc", "cursor"), ("limit=0x", "limit"),
                           ("limit=1000", "limit"), ("status=gone", "status"),
                           ("assigned_staff_id=someone", "assigned_staff_id"),
                           ("site_id=" + str(uuid.uuid4()), "site_id")):
            with self.subTest(bad=bad):
                r = self.req("GET", "/api/v1/clients?" + bad, headers=peer.auth)
                self.assertIn(r.status, (400, 403), r.body)
                self.assertEqual(r.json()["errors"][0]["field"], field)
        # Every client listed was audited as read.
        n = int(self.psql("SELECT count(*) FROM audit.events WHERE actor_staff_id = '%s' "
                          "AND action = 'read' AND detail::text LIKE '%%caseload_list%%'"
                          % peer.id))
        self.assertGreaterEqual(n, 7)

    def test_assignment_and_history(self):
        c = self.create()
        path = "/api/v1/clients/%s/assignment" % c["id"]
        # Before any reassignment the history is the registration, read
        # from the client row (no history row is written at registration).
        hist = self.req("GET", "/api/v1/clients/%s/assignments" % c["id"],
                        headers=self.sup.auth).json()["assignments"]
        self.assertEqual([(a["staff_id"], a["assigned_by"], a["reason"], a["ended_at"])
                          for a in hist],
                         [(self.peer.id, self.peer.id, "registered the client", "")])
        self.assertEqual(hist[0]["assigned_at"], c["created_at"])
        self.assertEqual(self.psql("SELECT count(*) FROM intake.client_assignments "
                                   "WHERE client_id = '%s'" % c["id"]).strip(), "0")
        r = self.req("POST", path, {"staff_id": self.peer2.id, "reason": "x"},
                     headers=self.peer.auth)
        self.assertProblem(r, 403)
        r = self.req("POST", path, {"staff_id": self.peer2.id, "reason": "caseload balance"},
                     headers=dict(self.sup.auth, **{"If-Match": '"7"'}))
        self.assertProblem(r, 412)
        r = self.req("POST", path, {"staff_id": self.peer2.id, "reason": "caseload balance"},
                     headers=self.sup.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json()["assigned_staff_id"], r.json()["version"]), (self.peer2.id, 2))
        # The first peer no longer sees the client; the second does.
        self.assertProblem(self.req("GET", "/api/v1/clients/" + c["id"],
                                    headers=self.peer.auth), 404)
        self.assertEqual(self.req("GET", "/api/v1/clients/" + c["id"],
                                  headers=self.peer2.auth).status, 200)
        self.assertProblem(self.req("POST", path, {"staff_id": self.peer2.id},
                                    headers=self.sup.auth), 422)
        hist = self.req("GET", "/api/v1/clients/%s/assignments" % c["id"],
                        headers=self.sup.auth)
        self.assertEqual(hist.status, 200, hist.body)
        rows = hist.json()["assignments"]
        self.assertEqual([(a["staff_id"], a["reason"]) for a in rows],
                         [(self.peer.id, "registered the client"),
                          (self.peer2.id, "caseload balance")])
        self.assertTrue(rows[0]["ended_at"])
        self.assertEqual(rows[1]["ended_at"], "")


class IdempotencyTests(StackTestCase):
    """Idempotency-Key: a repeated registration is answered with the first
    answer and makes one record; a key reused for something else is
    refused; keys are per caller."""
    sign_in = "peer_specialist"

    def test_repeat_gives_the_same_answer_and_one_record(self):
        key = str(uuid.uuid4())
        body = full_client()
        first = self.req("POST", "/api/v1/clients", body, headers={"Idempotency-Key": key})
        self.assertEqual(first.status, 201, first.body)
        again = self.req("POST", "/api/v1/clients", body, headers={"Idempotency-Key": key})
        self.assertEqual(again.status, 201, again.body)
        self.assertEqual(again.json(), first.json())
        n = self.psql("SELECT count(*) FROM audit.events WHERE action = 'create' "
                      "AND actor_staff_id = '%s' AND request_id = '%s'"
                      % (self.user.id, first.header("X-Request-Id")))
        self.assertEqual(int(n), 1)
        listed = self.req("GET", "/api/v1/clients?limit=200").json()["clients"]
        self.assertEqual(sum(1 for c in listed if c["family_name"] == body["family_name"]), 1)
        other = self.req("POST", "/api/v1/clients", full_client(),
                         headers={"Idempotency-Key": key})
        self.assertProblem(other, 422, field="Idempotency-Key")

    def test_concurrent_repeats_make_one_record(self):
        import threading
        key, body, out = str(uuid.uuid4()), full_client(), []

        def send():
            out.append(self.req("POST", "/api/v1/clients", body,
                                headers={"Idempotency-Key": key}))

        threads = [threading.Thread(target=send) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r.status for r in out)
        self.assertTrue(all(s in (201, 409) for s in statuses), statuses)
        ids = {r.json()["id"] for r in out if r.status == 201}
        self.assertEqual(len(ids), 1, statuses)
        listed = self.req("GET", "/api/v1/clients?limit=200").json()["clients"]
        self.assertEqual(sum(1 for c in listed if c["family_name"] == body["family_name"]), 1)

    def test_bad_keys_are_refused(self):
        for key in ("x" * 256, "has space"):
            r = self.req("POST", "/api/v1/clients", full_client(),
                         headers={"Idempotency-Key": key})
            self.assertProblem(r, 400, field="Idempotency-Key")

    def test_keys_belong_to_their_caller(self):
        key = str(uuid.uuid4())
        mine = self.req("POST", "/api/v1/clients", full_client(),
                        headers={"Idempotency-Key": key})
        self.assertEqual(mine.status, 201)
        other = self.org.add_staff(["peer_specialist"])
        theirs = self.req("POST", "/api/v1/clients", full_client(),
                          headers={"Idempotency-Key": key, **other.auth})
        self.assertEqual(theirs.status, 201, theirs.body)
        self.assertNotEqual(theirs.json()["id"], mine.json()["id"])


class AssessmentTests(StackTestCase):
    """BARC-10 from its definition file, scored by the service, repeated over
    time with the change since the first."""
    sign_in = "peer_specialist"

    def answers(self, values):
        return [{"item_id": "q%d" % (i + 1), "value": v} for i, v in enumerate(values)]

    def test_barc10_recorded_scored_and_compared(self):
        r = self.req("GET", "/api/v1/instruments")
        self.assertEqual(r.status, 200, r.body)
        barc = {i["id"]: i for i in r.json()["instruments"]}["barc10"]
        self.assertEqual((len(barc["items"]), barc["total_min"], barc["total_max"]), (10, 10, 60))
        self.assertEqual([p["value"] for p in barc["scale"]], [1, 2, 3, 4, 5, 6])
        _, c = self.create_client()
        path = "/api/v1/clients/%s/assessments" % c["id"]
        first = self.req("POST", path, {"instrument_id": "barc10",
                                        "administered_on": "2026-01-05",
                                        "answers": self.answers([4] * 10)})
        self.assertEqual(first.status, 201, first.body)
        a = first.json()
        self.assertEqual((a["total"], a["first"], a["change_since_first"], a["bands"]),
                         (40, True, 0, ["below_cutoff"]))
        later = self.req("POST", path, {"instrument_id": "barc10",
                                        "administered_on": "2026-04-05",
                                        "answers": self.answers([5] * 9 + [2])})
        self.assertEqual(later.status, 201, later.body)
        b = later.json()
        self.assertEqual((b["total"], b["first"], b["change_since_first"], b["bands"]),
                         (47, False, 7, ["sustained_remission_cutoff"]))
        series = self.req("GET", path).json()["assessments"]
        self.assertEqual([s["total"] for s in series], [40, 47])
        self.assertEqual(series[1]["answers"], self.answers([5] * 9 + [2]))

    def test_bad_assessments_refused(self):
        _, c = self.create_client()
        path = "/api/v1/clients/%s/assessments" % c["id"]
        cases = [
            ({"instrument_id": "phq9", "answers": self.answers([1] * 10)}, "instrument_id"),
            ({"instrument_id": "barc10", "answers": self.answers([1] * 9)}, "answers"),
            ({"instrument_id": "barc10", "answers": self.answers([7] + [1] * 9)}, "answers[0].value"),
            ({"instrument_id": "barc10", "answers": self.answers([1] * 10) + [{"item_id": "q1", "value": 2}]},
             "answers[10].item_id"),
            ({"instrument_id": "barc10", "answers": self.answers([1] * 10),
              "administered_on": "2024-02-30"}, "administered_on"),
            ({"instrument_id": "barc10", "answers": self.answers([1] * 10),
              "administered_on": "2999-01-01"}, "administered_on"),
        ]
        for body, field in cases:
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", path, body), 400, field=field)
        self.assertEqual(self.req("GET", path).json()["assessments"], [])
        other = self.org.add_staff(["peer_specialist"])
        r = self.req("POST", path, {"instrument_id": "barc10", "answers": self.answers([1] * 10)},
                     headers=other.auth)
        self.assertProblem(r, 404)
        self.assertProblem(self.req("GET", path, headers=other.auth), 404)


class IdentifierTests(StackTestCase):
    """The Medicaid ID is encrypted at rest and bound to its row; duplicates
    are caught across the agency without revealing clients outside the
    caller's scope."""
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.site_b = cls.org.add_site("Northside")
        cls.peer_b = cls.org.add_staff(["peer_specialist"], [cls.site_b])

    def create(self, who, **body):
        return self.req("POST", "/api/v1/clients", full_client(**body), headers=who.auth)

    def owner_sql(self, sql):
        return self.psql("ALTER TABLE intake.clients NO FORCE ROW LEVEL SECURITY; %s; "
                         "ALTER TABLE intake.clients FORCE ROW LEVEL SECURITY" % sql)

    def test_medicaid_id_encrypted_and_bound_to_its_row(self):
        a = self.create(self.peer, medicaid_id="ab-1234-5678")
        self.assertEqual(a.status, 201, a.body)
        a = a.json()
        self.assertEqual(a["medicaid_id"], "AB12345678")
        b = self.create(self.peer, medicaid_id="ZZ99887766").json()
        stored = self.owner_sql("SELECT medicaid_id_enc FROM intake.clients WHERE id = '%s'"
                                % a["id"]).split()
        stored = [x for x in stored if x.startswith("v1:")]
        self.assertEqual(len(stored), 1, stored)
        self.assertNotIn("12345678", stored[0])
        self.assertEqual(self.req("GET", "/api/v1/clients/" + a["id"],
                                  headers=self.peer.auth).json()["medicaid_id"], "AB12345678")
        # A ciphertext moved to another row does not decrypt there.
        self.owner_sql("UPDATE intake.clients SET medicaid_id_enc = (SELECT medicaid_id_enc "
                       "FROM intake.clients WHERE id = '%s') WHERE id = '%s'" % (a["id"], b["id"]))
        r = self.req("GET", "/api/v1/clients/" + b["id"], headers=self.peer.auth)
        self.assertProblem(r, 500)
        self.assertNotIn("AB12345678", r.body.decode())
        self.assertProblem(self.create(self.peer, medicaid_id="x!"), 400, field="medicaid_id")

    def test_duplicates_reported_and_overridable(self):
        first = self.create(self.peer, medicaid_id="MD-555-0001").json()
        same = full_client(given_name=" robin ", family_name=first["family_name"].upper())
        r = self.req("POST", "/api/v1/clients", same, headers=self.peer.auth)
        doc = self.assertProblem(r, 409, field="allow_duplicate")
        self.assertIn(first["id"], doc["detail"])
        r = self.create(self.peer, medicaid_id="md5550001")
        doc = self.assertProblem(r, 409, field="allow_duplicate")
        self.assertIn("same Medicaid ID", doc["detail"])
        # At another site: the match is reported, the record is not named.
        r = self.req("POST", "/api/v1/clients", same, headers=self.peer_b.auth)
        doc = self.assertProblem(r, 409, field="allow_duplicate")
        self.assertNotIn(first["id"], doc["detail"])
        self.assertIn("1 at sites outside your scope", doc["detail"])
        r = self.req("POST", "/api/v1/clients", dict(same, allow_duplicate=True),
                     headers=self.peer_b.auth)
        self.assertEqual(r.status, 201, r.body)


class EnrollmentTests(StackTestCase):
    """Episodes: enroll, discharge with a reason, re-enroll; the
    comprehensive pathway's intake assessment due date and overdue flag."""
    sign_in = "peer_specialist"
    process_settings = {"intake": {"comprehensive_requirements_days": 30}}

    def test_enroll_discharge_reenroll(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/enrollments" % c["id"]
        r = self.req("POST", base, {"program": "Peer Recovery Support", "pathway": "brief",
                                    "started_on": "2026-01-10"})
        self.assertEqual(r.status, 201, r.body)
        first = r.json()
        self.assertEqual((first["pathway"], first["assessment_due_on"], first["discharged_on"]),
                         ("brief", "", ""))
        again = self.req("POST", base, {"program": "Peer Recovery Support", "pathway": "brief"})
        self.assertProblem(again, 409, field="client_id")
        d = self.req("POST", "%s/%s/discharge" % (base, first["id"]),
                     {"discharged_on": "2026-03-01", "reason": "goals_met"})
        self.assertEqual(d.status, 200, d.body)
        self.assertEqual((d.json()["discharged_on"], d.json()["discharge_reason"]),
                         ("2026-03-01", "goals_met"))
        self.assertEqual(self.req("GET", "/api/v1/clients/" + c["id"]).json()["status"],
                         "discharged")
        self.assertProblem(self.req("POST", "%s/%s/discharge" % (base, first["id"]),
                                    {"reason": "other"}), 404)
        r = self.req("POST", base, {"program": "Peer Recovery Support",
                                    "pathway": "comprehensive", "started_on": "2026-04-01"})
        self.assertEqual(r.status, 201, r.body)
        second = r.json()
        self.assertEqual(second["assessment_due_on"], "2026-05-01")
        self.assertTrue(second["assessment_overdue"])  # today is past the due date
        self.assertEqual(self.req("GET", "/api/v1/clients/" + c["id"]).json()["status"],
                         "active")
        a = self.req("POST", "/api/v1/clients/%s/assessments" % c["id"],
                     {"instrument_id": "barc10", "administered_on": "2026-04-10",
                      "answers": [{"item_id": "q%d" % i, "value": 4} for i in range(1, 11)]})
        self.assertEqual(a.status, 201, a.body)
        eps = self.req("GET", base).json()["enrollments"]
        self.assertEqual([e["id"] for e in eps], [first["id"], second["id"]])
        self.assertTrue(eps[1]["assessment_done"])
        self.assertFalse(eps[1]["assessment_overdue"])

    def test_bad_enrollments(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/enrollments" % c["id"]
        for body, field in (({"program": "P", "pathway": "intensive"}, "pathway"),
                            ({"program": "", "pathway": "brief"}, "program"),
                            ({"program": "P", "pathway": "brief", "started_on": "2024-02-30"},
                             "started_on"),
                            ({"program": "P", "pathway": "brief", "started_on": "2999-01-01"},
                             "started_on")):
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", base, body), 400, field=field)
        r = self.req("POST", base, {"program": "P", "pathway": "brief",
                                    "started_on": "2026-02-01"})
        self.assertEqual(r.status, 201, r.body)
        e = r.json()
        for body, field in (({"reason": "bored"}, "reason"),
                            ({"reason": "moved", "discharged_on": "2026-01-01"}, "discharged_on")):
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", "%s/%s/discharge" % (base, e["id"]), body),
                                   400, field=field)
        self.assertEqual(self.req("GET", base).json()["enrollments"][0]["discharged_on"], "")


def consent(**overrides):
    body = {
        "disclosing_party": "Harbor Recovery Network",
        "information_description": "Dates of service, attendance and progress in peer "
                                   "recovery support; no counseling notes",
        "recipients": ["Northside Housing Partners"],
        "purposes": ["referral", "care_coordination"],
        "purpose_description": "to arrange supportive housing",
        "right_to_revoke_explained": True,
        "revocation_instructions": "In writing to the program director at any time",
        "expires_on": "2027-06-30",
        "signed_by": "Robin Test",
        "signer_relationship": "self",
        "signature_method": "wet",
        "signed_on": "2026-11-01",
    }
    body.update(overrides)
    return body


class ConsentTests(StackTestCase):
    """42 CFR Part 2 consents: every required element, derived status,
    revocation effective at once, and consent.check never answering from a
    cache."""
    sign_in = "peer_specialist"

    def check(self, cid, recipient, purpose):
        r = self.req("GET", "/api/v1/clients/%s/consent-check?recipient=%s&purpose=%s"
                     % (cid, urllib.parse.quote(recipient), purpose))
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def test_give_check_revoke(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/consents" % c["id"]
        self.assertFalse(self.check(c["id"], "Northside Housing Partners", "referral")["allowed"])
        r = self.req("POST", base, consent())
        self.assertEqual(r.status, 201, r.body)
        k = r.json()
        self.assertEqual(k["status"], "active")
        ok = self.check(c["id"], "Northside Housing Partners", "referral")
        self.assertEqual((ok["allowed"], ok["consent_id"]), (True, k["id"]))
        self.assertFalse(self.check(c["id"], "Northside Housing Partners", "payment")["allowed"])
        self.assertFalse(self.check(c["id"], "Someone Else", "referral")["allowed"])
        r = self.req("POST", "%s/%s/revoke" % (base, k["id"]),
                     {"received_on": "2026-11-20", "note": "letter received"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "revoked")
        # Effective at once: the very next check says no.
        self.assertFalse(self.check(c["id"], "Northside Housing Partners", "referral")["allowed"])
        self.assertProblem(self.req("POST", "%s/%s/revoke" % (base, k["id"]), {}), 404)
        listed = self.req("GET", base).json()["consents"]
        self.assertEqual([x["status"] for x in listed], ["revoked"])
        n = self.psql("SELECT count(*) FROM audit.events WHERE client_id = '%s' AND action IN "
                      "('consent_given', 'consent_revoked', 'consent_check')" % c["id"])
        self.assertGreaterEqual(int(n), 7)

    def test_general_designation_only_for_tpo_and_expiry(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/consents" % c["id"]
        self.assertProblem(self.req("POST", base, consent(recipients=["*"])), 400,
                           field="recipients")
        r = self.req("POST", base, consent(recipients=["*"], purposes=["treatment", "payment"],
                                           expires_on="", expiry_event="end of treatment"))
        self.assertEqual(r.status, 201, r.body)
        self.assertTrue(self.check(c["id"], "Any Clinic", "treatment")["allowed"])
        self.assertFalse(self.check(c["id"], "Any Clinic", "referral")["allowed"])
        r = self.req("POST", base, consent(expires_on="2026-11-02", signed_on="2026-11-01"))
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["status"], "expired")
        self.assertFalse(self.check(c["id"], "Northside Housing Partners", "referral")["allowed"])

    def test_incomplete_consents_refused(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/consents" % c["id"]
        cases = [
            ({"disclosing_party": ""}, "disclosing_party"),
            ({"information_description": "records"}, "information_description"),
            ({"recipients": []}, "recipients"),
            ({"purposes": []}, "purposes"),
            ({"purposes": ["marketing"]}, "purposes"),
            ({"right_to_revoke_explained": False}, "right_to_revoke_explained"),
            ({"revocation_instructions": ""}, "revocation_instructions"),
            ({"expires_on": "", "expiry_event": ""}, "expires_on"),
            ({"expires_on": "2026-02-30"}, "expires_on"),
            ({"expires_on": "2026-10-01"}, "expires_on"),
            ({"signed_by": ""}, "signed_by"),
            ({"signer_relationship": "friend"}, "signer_relationship"),
            ({"signature_method": "verbal"}, "signature_method"),
            ({"signed_on": "2999-01-01"}, "signed_on"),
        ]
        for overrides, field in cases:
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", base, consent(**overrides)), 400,
                                   field=field)
        self.assertEqual(self.req("GET", base).json()["consents"], [])


class RecoveryPlanTests(StackTestCase):
    """Goals with steps, lifecycle and progress; the comprehensive pathway's
    initial plan requirement."""
    sign_in = "peer_specialist"

    def test_goal_lifecycle_and_progress(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s/goals" % c["id"]
        r = self.req("POST", base, {"domain": "housing", "description": "Stable housing",
                                    "target_date": "2027-03-01",
                                    "steps": [{"description": "Apply for voucher",
                                               "target_date": "2026-12-15"},
                                              {"description": "Visit two apartments"}]})
        self.assertEqual(r.status, 201, r.body)
        g = r.json()
        self.assertEqual((g["status"], [s["position"] for s in g["steps"]]), ("proposed", [1, 2]))
        prog = "%s/%s/progress" % (base, g["id"])
        self.assertProblem(self.req("POST", prog, {"note": "x", "status": "completed"}), 422,
                           field="status")
        r = self.req("POST", prog, {"note": "Agreed together", "status": "active"})
        self.assertEqual(r.json()["status"], "active", r.body)
        r = self.req("POST", prog, {"note": "Voucher application sent", "step_done": 1})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["steps"][0]["done_on"])
        self.assertProblem(self.req("POST", prog, {"note": "again", "step_done": 1}), 422,
                           field="step_done")
        self.assertProblem(self.req("POST", prog, {"note": "no", "step_done": 9}), 422,
                           field="step_done")
        r = self.req("POST", prog, {"note": "Moved in", "status": "completed"})
        self.assertEqual(r.json()["status"], "completed")
        self.assertProblem(self.req("POST", prog, {"note": "reopen", "status": "active"}), 422,
                           field="status")
        goals = self.req("GET", base).json()["goals"]
        self.assertEqual([(p["from_status"], p["to_status"]) for p in goals[0]["progress"]],
                         [("proposed", "active"), ("", ""), ("active", "completed")])
        for body, field in (({"domain": "space", "description": "x"}, "domain"),
                            ({"domain": "health", "description": ""}, "description"),
                            ({"domain": "health", "description": "x",
                              "target_date": "2026-13-01"}, "target_date"),
                            ({"domain": "health", "description": "x", "status": "completed"},
                             "status")):
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", base, body), 400, field=field)

    def test_comprehensive_needs_an_initial_plan(self):
        _, c = self.create_client()
        e = self.req("POST", "/api/v1/clients/%s/enrollments" % c["id"],
                     {"program": "PRS", "pathway": "comprehensive"}).json()
        self.assertFalse(e["plan_done"])
        self.assertFalse(e["plan_overdue"])  # due in 30 days
        self.req("POST", "/api/v1/clients/%s/goals" % c["id"],
                 {"domain": "recovery", "description": "Daily meeting attendance"})
        eps = self.req("GET", "/api/v1/clients/%s/enrollments" % c["id"]).json()["enrollments"]
        self.assertTrue(eps[0]["plan_done"])


class MergeTests(StackTestCase):
    """A duplicate registration merged into the record that stays: history
    moves, the duplicate remains as a pointer, supervisors only."""
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])

    def test_merge_moves_history_and_keeps_the_duplicate(self):
        r = self.req("POST", "/api/v1/clients", full_client(), headers=self.peer.auth)
        keep = r.json()
        dup = self.req("POST", "/api/v1/clients",
                       full_client(family_name=keep["family_name"], allow_duplicate=True),
                       headers=self.peer.auth).json()
        answers = [{"item_id": "q%d" % i, "value": 3} for i in range(1, 11)]
        self.req("POST", "/api/v1/clients/%s/assessments" % dup["id"],
                 {"instrument_id": "barc10", "answers": answers}, headers=self.peer.auth)
        self.req("POST", "/api/v1/clients/%s/goals" % dup["id"],
                 {"domain": "housing", "description": "Keep the flat"}, headers=self.peer.auth)
        path = "/api/v1/clients/%s/merge" % keep["id"]
        body = {"duplicate_id": dup["id"], "reason": "registered twice at intake"}
        self.assertProblem(self.req("POST", path, body, headers=self.peer.auth), 403)
        r = self.req("POST", path, body, headers=self.sup.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["id"], keep["id"])
        got = self.req("GET", "/api/v1/clients/" + dup["id"], headers=self.sup.auth).json()
        self.assertEqual((got["status"], got["merged_into"]), ("merged", keep["id"]))
        a = self.req("GET", "/api/v1/clients/%s/assessments" % keep["id"],
                     headers=self.sup.auth).json()["assessments"]
        self.assertEqual(len(a), 1)
        g = self.req("GET", "/api/v1/clients/%s/goals" % keep["id"],
                     headers=self.sup.auth).json()["goals"]
        self.assertEqual(len(g), 1)
        # Merged records leave the caseload list and duplicate detection.
        listed = self.req("GET", "/api/v1/clients?limit=200", headers=self.sup.auth).json()
        self.assertNotIn(dup["id"], [c["id"] for c in listed["clients"]])
        again = self.req("POST", path, body, headers=self.sup.auth)
        self.assertProblem(again, 422, field="duplicate_id")
        self.assertProblem(self.req("POST", path, {"duplicate_id": keep["id"], "reason": "x"},
                                    headers=self.sup.auth), 400, field="duplicate_id")
        # Both registration assignments are history of the record that stays.
        hist = self.req("GET", "/api/v1/clients/%s/assignments" % keep["id"],
                        headers=self.sup.auth).json()["assignments"]
        self.assertEqual([(a["staff_id"], a["reason"]) for a in hist],
                         [(self.peer.id, "registered the client")] * 2)
        self.assertEqual(sorted(a["assigned_at"] for a in hist),
                         sorted([keep["created_at"], dup["created_at"]]))
        rows = self.psql("SELECT count(*) FROM audit.events WHERE action = 'merge' AND "
                         "client_id IN ('%s', '%s')" % (keep["id"], dup["id"]))
        self.assertEqual(int(rows), 2)

    def test_both_open_enrollments_refused(self):
        a = self.req("POST", "/api/v1/clients", full_client(), headers=self.peer.auth).json()
        b = self.req("POST", "/api/v1/clients", full_client(family_name=a["family_name"],
                                                            allow_duplicate=True),
                     headers=self.peer.auth).json()
        for c in (a, b):
            self.req("POST", "/api/v1/clients/%s/enrollments" % c["id"],
                     {"program": "PRS", "pathway": "brief"}, headers=self.peer.auth)
        r = self.req("POST", "/api/v1/clients/%s/merge" % a["id"],
                     {"duplicate_id": b["id"], "reason": "duplicate"}, headers=self.sup.auth)
        self.assertProblem(r, 422, field="duplicate_id")
        self.assertEqual(self.req("GET", "/api/v1/clients/" + b["id"],
                                  headers=self.sup.auth).json()["status"], "active")


class OutboxTests(StackTestCase):
    """Intake's events are written in the transaction of their change: one
    per change that committed, none for a change that was refused."""
    sign_in = "peer_specialist"

    def events(self, client_id):
        rows = self.psql("SELECT topic FROM events.outbox WHERE producer = 'intake' AND "
                         "position(convert_to('%s', 'UTF8') IN payload) > 0 "
                         "ORDER BY id" % client_id)
        return rows.split()

    def test_events_follow_committed_changes(self):
        _, c = self.create_client()
        base = "/api/v1/clients/%s" % c["id"]
        e = self.req("POST", base + "/enrollments", {"program": "PRS", "pathway": "brief"})
        self.assertEqual(e.status, 201, e.body)
        refused = self.req("POST", base + "/enrollments", {"program": "PRS", "pathway": "brief"})
        self.assertEqual(refused.status, 409)
        self.req("POST", base + "/assessments", {"instrument_id": "barc10", "answers": [
            {"item_id": "q%d" % i, "value": 5} for i in range(1, 11)]})
        g = self.req("POST", base + "/goals", {"domain": "health", "description": "Sleep"}).json()
        self.req("POST", "%s/goals/%s/progress" % (base, g["id"]), {"note": "go", "status": "active"})
        self.req("POST", "%s/enrollments/%s/discharge" % (base, e.json()["id"]),
                 {"reason": "goals_met"})
        self.assertEqual(self.events(c["id"]), ["client.assigned", "client.enrolled",
                                               "assessment.completed", "goal.status_changed",
                                               "client.assigned", "client.discharged"])


class EventBusTests(StackTestCase):
    """The relay publishes intake's events on its PUB socket in sequence,
    and a consumer that starts late gets the earlier ones by replay."""
    sign_in = "peer_specialist"

    def tail(self, *args):
        return subprocess.Popen(
            [os.path.join(BUILD_DIR, "bin", "beacon-events-tail"),
             "--events_endpoint=" + self.stack.event_endpoints["intake"],
             "--endpoint_intake=" + self.stack.endpoints["intake"], "--log_level=error"]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_live_and_replayed_events(self):
        live = self.tail("--count=4")
        time.sleep(0.5)  # the subscription reaches the publisher
        _, c = self.create_client()
        e = self.req("POST", "/api/v1/clients/%s/enrollments" % c["id"],
                     {"program": "PRS", "pathway": "comprehensive"}).json()
        self.req("POST", "/api/v1/clients/%s/enrollments/%s/discharge" % (c["id"], e["id"]),
                 {"reason": "moved"})
        out, err = live.communicate(timeout=30)
        self.assertEqual(live.returncode, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        # Registration and the discharge (a change of the client's status)
        # also announce the client's assignment.
        self.assertEqual([ev["topic"] for ev in events],
                         ["client.assigned", "client.enrolled", "client.assigned",
                          "client.discharged"])
        self.assertEqual([ev["seq"] for ev in events],
                         list(range(events[0]["seq"], events[0]["seq"] + 4)))
        self.assertEqual(events[1]["payload"]["client_id"], c["id"])
        self.assertEqual(events[1]["payload"]["pathway"], "comprehensive")
        self.assertEqual(events[3]["payload"]["discharge_reason"], "moved")
        self.assertEqual((events[0]["payload"]["to_status"], events[2]["payload"]["to_status"]),
                         ("active", "discharged"))
        # A consumer starting now replays from the start and sees the same.
        late = self.tail("--replay_after=0", "--count=4")
        out, err = late.communicate(timeout=30)
        self.assertEqual(late.returncode, 0, err)
        self.assertEqual([json.loads(line)["seq"] for line in out.splitlines()],
                         [ev["seq"] for ev in events])
