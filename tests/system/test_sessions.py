"""Sign-in over HTTPS: first-start bootstrap, login, wrong credentials,
logout, and the bootstrap route staying closed once used or when disabled.
Identity runs inside the gateway process; these tests drive it exactly as a
browser or integration would."""

import uuid

from harness import StackTestCase, launch

totp = launch.totp

PASSWORD = "correct horse battery staple"


class SessionTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.email = "admin-%s@example.org" % uuid.uuid4().hex[:8]
        r = cls.stack.request("POST", "/api/v1/bootstrap", body={
            "agency_name": "Harbor Recovery Network", "site_name": "Eastside Center",
            "time_zone": "America/New_York", "admin_email": cls.email,
            "admin_given_name": "Robin", "admin_family_name": "Admin",
            "admin_password": PASSWORD})
        if r.status != 201:
            raise AssertionError("bootstrap: %d %s" % (r.status, r.body[:300]))

    def login(self, email=None, password=PASSWORD):
        return self.req("POST", "/api/v1/sessions",
                        body={"email": email or self.email, "password": password})

    def test_bootstrap_works_only_once(self):
        r = self.req("POST", "/api/v1/bootstrap", body={
            "agency_name": "Second", "site_name": "Other", "time_zone": "UTC",
            "admin_email": "second-%s@example.org" % uuid.uuid4().hex[:8],
            "admin_given_name": "A", "admin_family_name": "B", "admin_password": PASSWORD})
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.content_type, "application/problem+json")

    def test_login_gives_a_session_token(self):
        r = self.login()
        self.assertEqual(r.status, 201, r.body)
        doc = r.json()
        self.assertTrue(doc["token"].startswith("bst_"), doc)
        # An agency_admin without a second factor must enrol one first.
        self.assertTrue(doc["totp_enrollment_required"], doc)
        self.assertNotIn("password", r.body.decode())
        self.assertEqual(r.header("Cache-Control"), "no-store")

    def test_wrong_password_and_unknown_email_look_the_same(self):
        wrong = self.login(password="not the password at all")
        unknown = self.login(email="nobody-%s@example.org" % uuid.uuid4().hex[:8])
        for r in (wrong, unknown):
            self.assertEqual(r.status, 401, r.body)
            self.assertEqual(r.content_type, "application/problem+json")
            self.assertIn("Bearer", r.header("WWW-Authenticate", ""))
        self.assertEqual(wrong.json()["detail"], unknown.json()["detail"])

    def test_logout_needs_a_token_and_revokes_it(self):
        r = self.req("DELETE", "/api/v1/sessions/current")
        self.assertEqual(r.status, 401, r.body)
        token = self.login().json()["token"]
        r = self.req("DELETE", "/api/v1/sessions/current",
                     headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["session_id"], r.body)
        # The same token again revokes nothing.
        r = self.req("DELETE", "/api/v1/sessions/current",
                     headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["session_id"], "", r.body)

    def test_malformed_login_bodies(self):
        r = self.req("POST", "/api/v1/sessions", body={"email": 5})
        self.assertEqual(r.status, 400, r.body)
        r = self.req("POST", "/api/v1/sessions", body={"email": "a@b.c", "role": "operator"})
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json()["errors"][0]["field"], "role")


class BootstrapClosedTests(StackTestCase):
    """Without allow_bootstrap the route does not exist."""

    def test_bootstrap_route_is_absent(self):
        r = self.req("POST", "/api/v1/bootstrap", body={"agency_name": "x"})
        self.assertEqual(r.status, 404, r.body)
        self.assertEqual(r.content_type, "application/problem+json")


class AccessTests(StackTestCase):
    """Signed-in routes: an admin enrols a second factor, then manages staff;
    tokens and roles are checked by the gateway through identity."""
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        req = cls.stack.request
        cls.admin_email = "admin-%s@example.org" % uuid.uuid4().hex[:8]
        r = req("POST", "/api/v1/bootstrap", body={
            "agency_name": "Harbor Recovery Network", "site_name": "Eastside Center",
            "time_zone": "America/New_York", "admin_email": cls.admin_email,
            "admin_given_name": "Robin", "admin_family_name": "Admin",
            "admin_password": PASSWORD})
        assert r.status == 201, r.body
        cls.site_id = r.json()["site"]["id"]
        # First login: no roles until a second factor is enrolled.
        cls.enrolling = req("POST", "/api/v1/sessions", body={
            "email": cls.admin_email, "password": PASSWORD}).json()["token"]
        r = req("POST", "/api/v1/me/totp", body={},
                headers={"Authorization": "Bearer " + cls.enrolling})
        assert r.status == 201, r.body
        cls.otpauth = r.json()["otpauth_uri"]
        r = req("POST", "/api/v1/me/totp/confirm", body={"code": totp(cls.otpauth)},
                headers={"Authorization": "Bearer " + cls.enrolling})
        assert r.status == 200, r.body
        # A code is good once: sign in with the next step's code.
        r = req("POST", "/api/v1/sessions", body={
            "email": cls.admin_email, "password": PASSWORD, "totp_code": totp(cls.otpauth, 1)})
        assert r.status == 201, r.body
        cls.admin = {"Authorization": "Bearer " + r.json()["token"]}
        cls.peer_email = "peer-%s@example.org" % uuid.uuid4().hex[:8]
        r = req("POST", "/api/v1/staff", headers=cls.admin, body={
            "given_name": "Sam", "family_name": "Peer", "email": cls.peer_email,
            "roles": ["peer_specialist"], "site_ids": [cls.site_id], "password": PASSWORD})
        assert r.status == 201, r.body
        cls.peer_id = r.json()["id"]
        r = req("POST", "/api/v1/sessions", body={"email": cls.peer_email, "password": PASSWORD})
        assert r.status == 201, r.body
        cls.peer = {"Authorization": "Bearer " + r.json()["token"]}

    def test_no_token_or_a_bad_one_is_401(self):
        for headers in ({}, {"Authorization": "Bearer bst_not-a-real-token"},
                        {"Authorization": "Basic dXNlcjpwYXNz"}):
            r = self.req("GET", "/api/v1/sites", headers=headers)
            self.assertEqual(r.status, 401, (headers, r.body))
            self.assertEqual(r.content_type, "application/problem+json")
            self.assertIn("Bearer", r.header("WWW-Authenticate", ""))

    def test_session_awaiting_second_factor_has_no_roles(self):
        r = self.req("GET", "/api/v1/sites",
                     headers={"Authorization": "Bearer " + self.enrolling})
        self.assertEqual(r.status, 403, r.body)

    def test_admin_manages_and_peer_reads(self):
        r = self.req("GET", "/api/v1/sites", headers=self.admin)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual([s["id"] for s in r.json()["sites"]], [self.site_id])
        r = self.req("GET", "/api/v1/staff/" + self.peer_id, headers=self.admin)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["email"], self.peer_email)
        self.assertNotIn("password", r.body.decode())
        # A peer specialist may list sites but not add one or read staff.
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=self.peer).status, 200)
        r = self.req("POST", "/api/v1/sites", headers=self.peer,
                     body={"name": "Westside", "time_zone": "America/New_York"})
        self.assertEqual(r.status, 403, r.body)
        r = self.req("GET", "/api/v1/staff/" + self.peer_id, headers=self.peer)
        self.assertEqual(r.status, 403, r.body)

    def test_logout_revokes_at_once(self):
        token = self.req("POST", "/api/v1/sessions", body={
            "email": self.peer_email, "password": PASSWORD}).json()["token"]
        headers = {"Authorization": "Bearer " + token}
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=headers).status, 200)
        self.assertEqual(self.req("DELETE", "/api/v1/sessions/current", headers=headers).status,
                         200)
        r = self.req("GET", "/api/v1/sites", headers=headers)
        self.assertEqual(r.status, 401, r.body)

    def test_disabled_staff_lose_their_sessions(self):
        email = "leaver-%s@example.org" % uuid.uuid4().hex[:8]
        r = self.req("POST", "/api/v1/staff", headers=self.admin, body={
            "given_name": "Lee", "family_name": "Leaver", "email": email,
            "roles": ["peer_specialist"], "site_ids": [self.site_id], "password": PASSWORD})
        self.assertEqual(r.status, 201, r.body)
        staff_id = r.json()["id"]
        token = self.req("POST", "/api/v1/sessions",
                         body={"email": email, "password": PASSWORD}).json()["token"]
        headers = {"Authorization": "Bearer " + token}
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=headers).status, 200)
        # A peer may not disable anyone; an admin may.
        r = self.req("POST", "/api/v1/staff/%s/disable" % staff_id, headers=self.peer,
                     body={"reason": "left"})
        self.assertEqual(r.status, 403, r.body)
        r = self.req("POST", "/api/v1/staff/%s/disable" % staff_id, headers=self.admin,
                     body={"reason": "left the agency"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=headers).status, 401)
        r = self.req("POST", "/api/v1/sessions", body={"email": email, "password": PASSWORD})
        self.assertEqual(r.status, 401, r.body)

    def test_api_keys_are_scoped_and_revocable(self):
        r = self.req("POST", "/api/v1/api-keys", headers=self.admin, body={
            "name": "billing export", "role": "billing", "site_ids": [self.site_id]})
        self.assertEqual(r.status, 201, r.body)
        doc = r.json()
        self.assertTrue(doc["token"].startswith("bak_"), doc)
        key = {"Authorization": "Bearer " + doc["token"]}
        # The key signs in, but billing is not a role that lists sites.
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=key).status, 403)
        r = self.req("POST", "/api/v1/api-keys", headers=self.peer, body={
            "name": "x", "role": "billing", "site_ids": [self.site_id]})
        self.assertEqual(r.status, 403, r.body)
        r = self.req("POST", "/api/v1/api-keys/%s/revoke" % doc["api_key"]["id"],
                     headers=self.admin, body={})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["revoked_at"], r.body)
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=key).status, 401)
