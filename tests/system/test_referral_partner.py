"""Partner organisations over HTTPS: a partner account (staff or API key)
linked to one organisation of the directory works the referrals sent to it
(accept, decline, in progress, complete), sees nothing else, and learns who
the client is only while the client's consent names it: intake's consent
check is asked on every read (a real ZeroMQ call from referral to intake), a
revocation counts from the next read, every disclosure carries the Part 2
notice and leaves an audit record, and when intake cannot answer nothing is
disclosed (503)."""

import json
import uuid

from harness import SCALE, StackTestCase, launch, new_client

ORG_P = "Harbor Housing Partners"
ORG_Q = "Quay Employment Services"


class PartnerReferralTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        org = cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = org.add_staff(["peer_specialist"])
        cls.org_p = org.add_directory_organization(ORG_P, services=["Harbor Beds"])
        cls.org_q = org.add_directory_organization(ORG_Q, services=["Quay Jobs"])
        cls.partner = org.add_staff(["partner"], organization_id=cls.org_p)
        cls.partner_q = org.add_staff(["partner"], organization_id=cls.org_q)
        r = cls.stack.request("POST", "/api/v1/api-keys", headers=org.admin.auth,
                              body={"name": "Harbor intake system", "role": "partner",
                                    "site_ids": [], "organization_id": cls.org_p})
        assert r.status == 201, r.body
        cls.key = {"Authorization": "Bearer " + r.json()["token"]}
        cls.key_id = r.json()["api_key"]["id"]
        assert r.json()["api_key"]["organization_id"] == cls.org_p
        parts = launch.conninfo_parse(cls.stack.database_url)
        cls.superuser = launch.conninfo_format(dict(parts, user="postgres"))

    # -- helpers --------------------------------------------------------------

    def client(self, **overrides):
        body = new_client(allow_duplicate=True, phone="+1 555 0100", email="robin@example.org",
                          preferred_language="es", date_of_birth="1990-03-04", **overrides)
        r = self.req("POST", "/api/v1/clients", body, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def refer(self, client_id, service="Harbor Beds", **body):
        body.update(client_id=client_id, service_id=self.org.directory_services[service],
                    reason="Needs a bed after detox on Friday", urgency="urgent",
                    notes_for_receiver="Call after 3 pm", reason_category="housing")
        r = self.req("POST", "/api/v1/referrals", body, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def consent(self, client_id, recipients=(ORG_P,)):
        r = self.req("POST", "/api/v1/clients/%s/consents" % client_id, {
            "disclosing_party": "Harbor Recovery Network",
            "information_description": "name, contact details and the reason for referral",
            "recipients": list(recipients), "purposes": ["referral"],
            "right_to_revoke_explained": True, "revocation_instructions": "in writing",
            "expiry_event": "end of treatment", "signed_by": "Robin", "signer_relationship": "self",
            "signature_method": "wet", "signed_on": "2026-01-05"}, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()["id"]

    def partner_get(self, rid, who=None):
        return self.req("GET", "/api/v1/partner/referrals/" + rid,
                        headers=who if isinstance(who, dict) else (who or self.partner).auth)

    def move(self, rid, status, who=None, **body):
        body["status"] = status
        return self.req("POST", "/api/v1/partner/referrals/%s/status" % rid, body,
                        headers=who if isinstance(who, dict) else (who or self.partner).auth)

    def su(self, sql):
        return launch.psql(self.superuser, sql).strip()

    # -- the loop ---------------------------------------------------------------

    def test_full_loop_accept_in_progress_complete_attributed_and_audited(self):
        c = self.client()
        rid = self.refer(c["id"])["id"]
        r = self.req("GET", "/api/v1/partner/referrals", headers=self.partner.auth)
        self.assertEqual(r.status, 200, r.body)
        listed = [x for x in r.json()["referrals"] if x["id"] == rid]
        self.assertEqual(len(listed), 1)
        self.assertTrue(listed[0]["contact_withheld"])
        for hidden in ("client", "reason", "notes_for_receiver", "age_band"):
            self.assertFalse(listed[0].get(hidden), hidden)
        self.assertEqual(listed[0]["reason_category"], "housing")
        self.assertEqual(listed[0]["organization_name"], ORG_P)
        for status in ("accepted", "in-progress"):
            r = self.move(rid, status)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["status"], status)
        r = self.move(rid, "completed", outcome="got_help", note="Moved in")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["outcome"], "got_help")
        # The care team sees every step and who took it.
        r = self.req("GET", "/api/v1/referrals/" + rid, headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        changes = r.json()["changes"]
        self.assertEqual([x["to_status"] for x in changes],
                         ["requested", "accepted", "in-progress", "completed"])
        self.assertEqual({x["changed_by"] for x in changes[1:]}, {self.partner.id})
        self.assertEqual(self.su("SELECT count(*) FROM referral.referral_changes WHERE "
                                 "referral_id = '%s' AND organization_id = '%s'"
                                 % (rid, self.org_p)), "3")
        audited = self.su("SELECT count(*) FROM audit.events WHERE resource_id = '%s' AND "
                          "action = 'update' AND actor_staff_id = '%s'" % (rid, self.partner.id))
        self.assertEqual(audited, "3")
        self.assertEqual(self.su("SELECT count(*) FROM events.outbox WHERE producer = 'referral' "
                                 "AND topic = 'referral.closed' AND position('%s' in "
                                 "encode(payload, 'escape')) > 0" % rid), "1")

    def test_decline_needs_an_outcome_and_partners_cannot_cancel(self):
        rid = self.refer(self.client()["id"])["id"]
        r = self.move(rid, "completed", outcome="got_help")
        self.assertProblem(r, 422)  # not accepted yet
        self.assertProblem(self.move(rid, "cancelled", outcome="no_longer_interested"), 400,
                           field="status")
        self.assertProblem(self.move(rid, "rejected"), 400, field="outcome")
        r = self.move(rid, "rejected", outcome="no_capacity", note="Full until March")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "rejected")
        self.assertProblem(self.move(rid, "accepted"), 422)

    def test_an_api_key_partner_works_its_referrals_attributed_to_the_key(self):
        rid = self.refer(self.client()["id"])["id"]
        r = self.move(rid, "received", who=self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.su("SELECT changed_by FROM referral.referral_changes WHERE "
                                 "referral_id = '%s' AND to_status = 'received'" % rid),
                         self.key_id)
        self.assertEqual(self.su("SELECT count(*) FROM audit.events WHERE resource_id = '%s' "
                                 "AND action = 'update' AND actor_api_key_id = '%s'"
                                 % (rid, self.key_id)), "1")
        r = self.partner_get(rid, who=self.key)
        self.assertEqual(r.status, 200, r.body)

    # -- deny by default ----------------------------------------------------------

    def test_another_partner_and_everything_else_is_denied(self):
        c = self.client()
        rid = self.refer(c["id"])["id"]
        self.consent(c["id"], recipients=(ORG_P, ORG_Q))
        self.assertProblem(self.partner_get(rid, who=self.partner_q), 404)
        self.assertProblem(self.move(rid, "accepted", who=self.partner_q), 404)
        r = self.req("GET", "/api/v1/partner/referrals", headers=self.partner_q.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn(rid, [x["id"] for x in r.json()["referrals"]])
        for method, path in (("GET", "/api/v1/clients/" + c["id"]), ("GET", "/api/v1/clients"),
                             ("GET", "/api/v1/referrals/" + rid), ("GET", "/api/v1/notes"),
                             ("GET", "/api/v1/directory/services"),
                             ("POST", "/api/v1/referrals/%s/status" % rid),
                             ("GET", "/api/v1/clients/%s/consents" % c["id"])):
            for who in (self.partner.auth, self.key):
                self.assertProblem(self.req(method, path, {"status": "accepted"}
                                            if method == "POST" else None, headers=who), 403)
        # The care team's own routes stay theirs: a peer has no partner route.
        self.assertProblem(self.partner_get(rid, who=self.peer), 403)
        # Row security holds without the handlers: as the services' role with
        # another organisation in scope, the referral is not there.
        app = launch.conninfo_format(dict(launch.conninfo_parse(self.stack.database_url),
                                          user="beacon_app"))
        agency = self.su("SELECT agency_id FROM referral.referrals WHERE id = '%s'" % rid)
        out = launch.psql(app, "SELECT set_config('beacon.agency_id', '%s', false), "
                          "set_config('beacon.roles', 'partner', false), "
                          "set_config('beacon.organization_id', '%s', false); "
                          "SELECT count(*) FROM referral.referrals WHERE id = '%s'"
                          % (agency, self.org_q, rid))
        self.assertEqual(out.split()[-1], "0")

    def test_partner_accounts_need_a_directory_organisation(self):
        admin = self.org.admin.auth
        base = {"given_name": "Pat", "family_name": "Partner", "site_ids": [],
                "password": "a partner password 42"}
        cases = ((dict(base, email="p1@x.test", roles=["partner"]), "organization_id"),
                 (dict(base, email="p2@x.test", roles=["partner"],
                       organization_id="00000000-0000-4000-8000-000000000000"), "organization_id"),
                 (dict(base, email="p3@x.test", roles=["peer_specialist"],
                       site_ids=[self.org.site_id], organization_id=self.org_p),
                  "organization_id"))
        for body, field in cases:
            self.assertProblem(self.req("POST", "/api/v1/staff", body, headers=admin), 400,
                               field=field)
        for body in ({"name": "k", "role": "partner"},
                     {"name": "k", "role": "billing", "organization_id": self.org_p}):
            self.assertProblem(self.req("POST", "/api/v1/api-keys", body, headers=admin), 400,
                               field="organization_id")
        r = self.req("GET", "/api/v1/staff/" + self.partner.id, headers=admin)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["organization_id"], self.org_p)
        # An account made without an organisation cannot become a partner.
        peer = self.org.add_staff(["peer_specialist"])
        self.assertProblem(self.req("PATCH", "/api/v1/staff/" + peer.id,
                                    {"set_roles": True, "roles": ["partner"]}, headers=admin),
                           400, field="roles")

    def test_a_partner_account_without_an_organisation_sees_nothing(self):
        # As an account made before organisations were required would be.
        sid = str(uuid.uuid4())
        email = "legacy-partner-%s@x.test" % sid[:8]
        self.su("BEGIN; INSERT INTO identity.staff (id, agency_id, given_name, family_name, "
                "email, password_hash) SELECT '%s', agency_id, 'Old', 'Partner', '%s', "
                "password_hash FROM identity.staff WHERE id = '%s'; "
                "INSERT INTO identity.staff_roles VALUES ('%s', 'partner'); COMMIT"
                % (sid, email, self.partner.id, sid))
        r = self.req("POST", "/api/v1/sessions", {"email": email,
                                                   "password": self.partner.password})
        self.assertEqual(r.status, 201, r.body)
        auth = {"Authorization": "Bearer " + r.json()["token"]}
        rid = self.refer(self.client()["id"])["id"]
        self.assertProblem(self.req("GET", "/api/v1/partner/referrals", headers=auth), 403)
        self.assertProblem(self.partner_get(rid, who=auth), 403)
        self.assertProblem(self.move(rid, "accepted", who=auth), 403)

    # -- the consent gate -----------------------------------------------------------

    def test_consent_gate_identified_with_consent_de_identified_after_revocation(self):
        c = self.client()
        rid = self.refer(c["id"])["id"]
        r = self.partner_get(rid)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertTrue(doc["contact_withheld"])
        for hidden in ("client", "reason", "notes_for_receiver", "consent_id"):
            self.assertFalse(doc.get(hidden), hidden)
        self.assertEqual(doc["age_band"], "35-44")
        self.assertEqual(doc["language"], "es")
        self.assertEqual(doc["urgency"], "urgent")
        self.assertEqual(doc["reason_category"], "housing")
        self.assertIn("42 CFR part 2", doc["part2_notice"])
        self.assertNotIn(c["family_name"], r.body.decode())

        consent = self.consent(c["id"])
        r = self.partner_get(rid)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertFalse(doc.get("contact_withheld", False))
        self.assertEqual(doc["client"]["family_name"], c["family_name"])
        self.assertEqual(doc["client"]["phone"], "+1 555 0100")
        self.assertEqual(doc["client"]["email"], "robin@example.org")
        self.assertEqual(doc["reason"], "Needs a bed after detox on Friday")
        self.assertEqual(doc["notes_for_receiver"], "Call after 3 pm")
        self.assertEqual(doc["consent_id"], consent)
        self.assertIn("reason for referral", doc["consent_scope"])
        self.assertIn("42 CFR part 2", doc["part2_notice"])
        rows = self.su("SELECT actor_staff_id, client_id, detail::text FROM audit.events WHERE "
                       "request_id = '%s' AND action = 'disclose'" % r.header("X-Request-Id"))
        actor, client_id, detail = rows.split("|", 2)
        self.assertEqual((actor, client_id), (self.partner.id, c["id"]))
        detail = json.loads(detail)
        self.assertEqual(detail["consent_id"], consent)
        self.assertTrue(detail["identified"])
        self.assertEqual(detail["organization_id"], self.org_p)
        # intake recorded the check it answered, for the same actor.
        self.assertEqual(self.su("SELECT count(*) FROM audit.events WHERE request_id = '%s' "
                                 "AND action = 'consent_check' AND actor_staff_id = '%s'"
                                 % (r.header("X-Request-Id"), self.partner.id)), "1")

        r = self.req("POST", "/api/v1/clients/%s/consents/%s/revoke" % (c["id"], consent), {},
                     headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        r = self.partner_get(rid)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertTrue(doc["contact_withheld"])
        self.assertFalse(doc.get("client"))
        self.assertFalse(doc.get("reason"))
        self.assertNotIn(c["family_name"], r.body.decode())
        self.assertIn("42 CFR part 2", doc["part2_notice"])
        detail = json.loads(self.su("SELECT detail::text FROM audit.events WHERE request_id = "
                                    "'%s' AND action = 'disclose'" % r.header("X-Request-Id")))
        self.assertFalse(detail["identified"])
        self.assertIsNone(detail["consent_id"])

    def test_a_consent_for_another_recipient_discloses_nothing(self):
        c = self.client()
        rid = self.refer(c["id"])["id"]
        self.consent(c["id"], recipients=(ORG_Q,))
        doc = self.partner_get(rid).json()
        self.assertTrue(doc["contact_withheld"])
        self.assertFalse(doc.get("client"))

    def test_zz_intake_down_fails_closed(self):
        c = self.client()
        rid = self.refer(c["id"])["id"]
        self.consent(c["id"])
        self.assertEqual(self.stack.stop_process("intake", timeout=5 * SCALE), 0)
        try:
            r = self.partner_get(rid)
            body = self.assertProblem(r, 503)
            self.assertNotIn(c["family_name"], r.body.decode())
            self.assertNotIn("client", body)
            self.assertEqual(self.su("SELECT outcome FROM audit.events WHERE request_id = '%s' "
                                     "AND action = 'disclose'" % r.header("X-Request-Id")),
                             "error")
        finally:
            self.stack.start_process("intake", wait=True, timeout=45 * SCALE)
        r = self.partner_get(rid)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["client"]["family_name"], c["family_name"])
