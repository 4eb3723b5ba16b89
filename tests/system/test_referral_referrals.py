"""Referrals over HTTPS: a client sent to a directory service or an outside
resource, the closed loop through the FHIR Task lifecycle (every change
timestamped and attributed, an outcome on every terminal status), the events
and audit records it leaves, scope, and the bad input it refuses."""

import uuid

from harness import StackTestCase, launch, new_client


class ReferralTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.peer2 = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])
        cls.far_site = cls.org.add_site()
        cls.far_peer = cls.org.add_staff(["peer_specialist"], site_ids=[cls.far_site])
        parts = launch.conninfo_parse(cls.stack.database_url)
        cls.superuser = launch.conninfo_format(dict(parts, user="postgres"))
        agency = launch.psql(cls.superuser, "SELECT agency_id FROM identity.sites WHERE id = '%s'"
                             % cls.site).strip()
        cls.org_id, cls.service, cls.closed_service = (str(uuid.uuid4()) for _ in range(3))
        launch.psql(cls.superuser, (
            "BEGIN; INSERT INTO referral.organizations (agency_id, id, name, updated_by) VALUES "
            "('{a}', '{o}', 'Northside Housing Partners', '{b}'); "
            "INSERT INTO referral.services (agency_id, id, organization_id, name, status, "
            "updated_by) VALUES ('{a}', '{s}', '{o}', 'Recovery Housing', 'active', '{b}'), "
            "('{a}', '{c}', '{o}', 'Old Shelter', 'defunct', '{b}'); COMMIT").format(
                a=agency, o=cls.org_id, s=cls.service, c=cls.closed_service, b=cls.peer.id))

    def client(self, who=None):
        r = self.req("POST", "/api/v1/clients", new_client(allow_duplicate=True),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()["id"]

    def refer(self, who=None, expect=201, **body):
        body.setdefault("reason", "Needs stable housing after discharge")
        if "external_resource" not in body:
            body.setdefault("service_id", self.service)
        r = self.req("POST", "/api/v1/referrals", body, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def move(self, rid, status, who=None, **body):
        body["status"] = status
        return self.req("POST", "/api/v1/referrals/%s/status" % rid, body,
                        headers=(who or self.peer).auth)

    def outbox(self, topic, rid):
        return int(launch.psql(self.superuser, "SELECT count(*) FROM events.outbox WHERE "
                               "producer = 'referral' AND topic = '%s' AND payload IS NOT NULL "
                               "AND position('%s' in encode(payload, 'escape')) > 0"
                               % (topic, rid)).strip())

    def test_the_full_loop_closes_with_an_outcome_every_step_attributed(self):
        c = self.client()
        ref = self.refer(client_id=c, urgency="urgent", follow_up_on="2031-05-01",
                         notes_for_receiver="Prefers afternoon calls")
        self.assertEqual(ref["status"], "requested")
        self.assertEqual(ref["service_name"], "Recovery Housing")
        self.assertEqual(ref["organization_name"], "Northside Housing Partners")
        self.assertEqual(ref["referred_by"], self.peer.id)
        self.assertEqual(ref["urgency"], "urgent")
        self.assertEqual(ref["follow_up_on"], "2031-05-01")
        rid = ref["id"]
        for status, who in (("received", self.peer), ("accepted", self.sup),
                            ("in-progress", self.peer), ("on-hold", self.peer),
                            ("in-progress", self.sup)):
            r = self.move(rid, status, who=who)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["status"], status)
        r = self.move(rid, "completed", outcome="got_help", note="Moved in on the 3rd")
        self.assertEqual(r.status, 200, r.body)
        done = r.json()
        self.assertEqual((done["status"], done["outcome"], done["outcome_note"]),
                         ("completed", "got_help", "Moved in on the 3rd"))
        self.assertTrue(done["closed_at"])
        got = self.req("GET", "/api/v1/referrals/" + rid, headers=self.peer.auth).json()
        steps = [(ch.get("from_status", ""), ch["to_status"], ch["changed_by"])
                 for ch in got["changes"]]
        self.assertEqual(steps, [
            ("", "requested", self.peer.id), ("requested", "received", self.peer.id),
            ("received", "accepted", self.sup.id), ("accepted", "in-progress", self.peer.id),
            ("in-progress", "on-hold", self.peer.id), ("on-hold", "in-progress", self.sup.id),
            ("in-progress", "completed", self.peer.id)])
        for ch in got["changes"]:
            self.assertTrue(ch["changed_at"].endswith("Z"), ch)
        self.assertEqual(got["changes"][-1]["outcome"], "got_help")
        # Closed is final.
        r = self.move(rid, "in-progress")
        self.assertProblem(r, 422, "status")
        # Events and audit.
        self.assertEqual(self.outbox("referral.created", rid), 1)
        self.assertEqual(self.outbox("referral.status_changed", rid), 6)
        self.assertEqual(self.outbox("referral.closed", rid), 1)
        audit = launch.psql(self.superuser, "SELECT action, count(*) FROM audit.events WHERE "
                            "resource_type = 'referral' AND resource_id = '%s' "
                            "GROUP BY action ORDER BY action" % rid).split()
        self.assertEqual(audit, ["create|1", "read|1", "update|6"])

    def test_an_external_resource_and_every_terminal_status_needs_an_outcome(self):
        c = self.client()
        for terminal, start in (("rejected", []), ("cancelled", ["received"]),
                                ("failed", ["received", "accepted"]),
                                ("completed", ["received", "accepted"])):
            ref = self.refer(client_id=c, external_resource="St. Anne's Food Pantry")
            self.assertEqual(ref["external_resource"], "St. Anne's Food Pantry")
            self.assertFalse(ref.get("service_id"))
            for s in start:
                self.assertEqual(self.move(ref["id"], s).status, 200)
            self.assertProblem(self.move(ref["id"], terminal), 400, "outcome")
            self.assertProblem(self.move(ref["id"], terminal, outcome="felt_better"), 400,
                               "outcome")
            r = self.move(ref["id"], terminal, outcome="could_not_contact")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["outcome"], "could_not_contact")
        # A live status takes no outcome.
        ref = self.refer(client_id=c)
        self.assertProblem(self.move(ref["id"], "received", outcome="got_help"), 400, "outcome")

    def test_steps_out_of_order_are_refused_and_nothing_changes(self):
        c = self.client()
        ref = self.refer(client_id=c)
        rid = ref["id"]
        # Completed before accepted; on hold before accepted; back to requested.
        body = self.assertProblem(self.move(rid, "completed", outcome="got_help"), 422, "status")
        self.assertIn("requested", body["detail"])
        self.assertProblem(self.move(rid, "on-hold"), 422, "status")
        self.assertProblem(self.move(rid, "in-progress"), 422, "status")
        self.assertProblem(self.move(rid, "requested"), 422, "status")
        self.assertProblem(self.move(rid, "done"), 400, "status")
        # A stale version is refused.
        r = self.move(rid, "received", expected_version=7)
        self.assertEqual(r.status, 412, r.body)
        got = self.req("GET", "/api/v1/referrals/" + rid, headers=self.peer.auth).json()
        self.assertEqual(got["status"], "requested")
        self.assertEqual(len(got["changes"]), 1)
        self.assertEqual(got["version"], 1)

    def test_scope_clients_and_referrals_outside_it_are_not_found(self):
        c = self.client()
        far = self.client(self.far_peer)
        # A client at a site the caller does not work at: not found.
        r = self.req("POST", "/api/v1/referrals",
                     {"client_id": far, "service_id": self.service, "reason": "x"},
                     headers=self.peer.auth)
        self.assertProblem(r, 404, "client_id")
        r = self.req("POST", "/api/v1/referrals",
                     {"client_id": str(uuid.uuid4()), "service_id": self.service, "reason": "x"},
                     headers=self.peer.auth)
        self.assertProblem(r, 404, "client_id")
        ref = self.refer(client_id=c)
        far_ref = self.refer(who=self.far_peer, client_id=far)
        for who in (self.far_peer,):
            self.assertProblem(self.req("GET", "/api/v1/referrals/" + ref["id"],
                                        headers=who.auth), 404)
            self.assertProblem(self.move(ref["id"], "received", who=who), 404)
        self.assertProblem(self.req("GET", "/api/v1/referrals/" + far_ref["id"],
                                    headers=self.peer.auth), 404)
        # A colleague at the site without the client on their caseload sees
        # neither the referral nor the client's list; the supervisor sees both.
        self.assertProblem(self.req("GET", "/api/v1/referrals/" + ref["id"],
                                    headers=self.peer2.auth), 404)
        listed = self.req("GET", "/api/v1/referrals?client_id=" + c, headers=self.peer2.auth)
        self.assertEqual(listed.json().get("referrals", []), [])
        listed = self.req("GET", "/api/v1/referrals?client_id=" + c, headers=self.sup.auth)
        self.assertEqual([x["id"] for x in listed.json()["referrals"]], [ref["id"]])
        mine = self.req("GET", "/api/v1/referrals?referred_by=me&status=requested",
                        headers=self.peer.auth).json()["referrals"]
        self.assertIn(ref["id"], [x["id"] for x in mine])
        self.assertNotIn(far_ref["id"], [x["id"] for x in mine])

    def test_bad_input_is_refused_with_the_field_and_nothing_stored(self):
        c = self.client()
        before = launch.psql(self.superuser, "SELECT count(*) FROM referral.referrals").strip()
        for body, field, status in (
                ({"service_id": self.service}, "reason", 400),
                ({"service_id": self.service, "reason": "x" * 2001}, "reason", 400),
                ({"reason": "x"}, "service_id", 400),
                ({"reason": "x", "service_id": self.service,
                  "external_resource": "Both"}, "external_resource", 400),
                ({"reason": "x", "service_id": "nope"}, "service_id", 400),
                ({"reason": "x", "service_id": str(uuid.uuid4())}, "service_id", 400),
                ({"reason": "x", "service_id": self.closed_service}, "service_id", 422),
                ({"reason": "x", "service_id": self.service, "urgency": "whenever"},
                 "urgency", 400),
                ({"reason": "x", "service_id": self.service, "follow_up_on": "05/01/2031"},
                 "follow_up_on", 400),
                ({"reason": "x", "external_resource": "y" * 501}, "external_resource", 400)):
            r = self.req("POST", "/api/v1/referrals", dict(body, client_id=c),
                         headers=self.peer.auth)
            self.assertProblem(r, status, field)
        self.assertProblem(self.req("POST", "/api/v1/referrals",
                                    {"client_id": "1; DROP TABLE x", "reason": "x",
                                     "service_id": self.service}, headers=self.peer.auth),
                           400, "client_id")
        self.assertProblem(self.req("GET", "/api/v1/referrals?status=done",
                                    headers=self.peer.auth), 400, "status")
        self.assertProblem(self.req("GET", "/api/v1/referrals/not-a-uuid",
                                    headers=self.peer.auth), 404)
        after = launch.psql(self.superuser, "SELECT count(*) FROM referral.referrals").strip()
        self.assertEqual(before, after)

    def test_row_security_holds_without_the_handlers(self):
        c = self.client()
        ref = self.refer(client_id=c)
        agency = launch.psql(self.superuser, "SELECT agency_id FROM identity.sites WHERE id = "
                             "'%s'" % self.site).strip()
        app = self.stack.app_database_url()

        def visible(staff, roles, sites):
            out = launch.psql(app, "SELECT set_config('beacon.staff_id', '%s', false), "
                              "set_config('beacon.agency_id', '%s', false), "
                              "set_config('beacon.site_ids', '%s', false), "
                              "set_config('beacon.roles', '%s', false); "
                              "SELECT id FROM referral.referrals WHERE id = '%s'"
                              % (staff, agency, ",".join(sites), roles, ref["id"]))
            return out.split()[1:]

        self.assertEqual(visible(self.peer.id, "peer_specialist", [self.site]), [ref["id"]])
        self.assertEqual(visible(self.sup.id, "supervisor", [self.site]), [ref["id"]])
        self.assertEqual(visible(self.peer2.id, "peer_specialist", [self.site]), [])
        self.assertEqual(visible(self.far_peer.id, "supervisor", [self.far_site]), [])
        for role in ("billing", "analyst", "partner", "auditor", "agency_admin"):
            self.assertEqual(visible(self.peer.id, role, [self.site]), [], role)
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "UPDATE referral.referrals SET reason = 'changed'")

    def test_follow_up_list_and_loop_closure_times(self):
        c = self.client()
        due = self.refer(client_id=c, follow_up_on="2031-05-01")
        later = self.refer(client_id=c, follow_up_on="2031-06-01")
        closed = self.refer(client_id=c, follow_up_on="2031-04-01")
        self.assertEqual(self.move(closed["id"], "rejected", outcome="no_capacity").status, 200)
        c2 = self.client(self.peer2)
        theirs = self.refer(who=self.peer2, client_id=c2, follow_up_on="2031-04-15")

        def listed(who, query):
            r = self.req("GET", "/api/v1/referral-follow-ups?" + query, headers=who.auth)
            self.assertEqual(r.status, 200, r.body)
            return r.json()

        body = listed(self.peer, "on=2031-05-10")
        mine = {x["id"]: x for x in body.get("referrals", [])}
        self.assertIn(due["id"], mine)
        self.assertEqual(mine[due["id"]]["days_past_follow_up"], 9)
        for absent in (later["id"], closed["id"], theirs["id"]):
            self.assertNotIn(absent, mine)
        self.assertGreaterEqual(body["closed_last_90_days"], 1)
        self.assertIn("median_days_to_close", body)
        # A supervisor sees everyone's at their sites, or one person's.
        every = {x["id"] for x in listed(self.sup, "staff_id=all&on=2031-05-10")["referrals"]}
        self.assertTrue({due["id"], theirs["id"]} <= every)
        one = {x["id"] for x in listed(self.sup, "staff_id=%s&on=2031-05-10"
                                       % self.peer2.id)["referrals"]}
        self.assertIn(theirs["id"], one)
        self.assertNotIn(due["id"], one)
        # A specialist sees only their own; bad input is refused.
        self.assertProblem(self.req("GET", "/api/v1/referral-follow-ups?staff_id=all",
                                    headers=self.peer.auth), 403)
        self.assertProblem(self.req("GET", "/api/v1/referral-follow-ups?on=tomorrow",
                                    headers=self.peer.auth), 400, "on")
        self.assertProblem(self.req("GET", "/api/v1/referral-follow-ups?site_id=%s"
                                    % self.far_site, headers=self.peer.auth), 400, "site_id")
