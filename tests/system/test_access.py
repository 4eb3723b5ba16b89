"""Who may do what, over HTTPS against the real processes.

AccessMatrixTests is generated from the gateway's own route table
(`beacon-gateway --routes`): every route x every principal (no token, each of
the eight staff roles, each API-key role) x a target at the caller's own
site, at another site of the agency and in another agency. It asserts the
status each combination must get, and above all that no combination outside
README's "Who may do what" matrix ever gets a 2xx. A route added to the
gateway without a line in SPEC below fails the test, so the matrix cannot
silently fall behind the routes.

The other classes cover break-glass, the session cache's immediate
revocation, hostile input (SQL metacharacters, oversized headers) and the
audit trail of all this, including tampering with it.
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

from harness import BUILD_DIR, SCALE, StackTestCase, launch, new_client, run_binary

STAFF_ROLES = ("peer_specialist", "supervisor", "site_admin", "agency_admin", "billing",
               "analyst", "partner", "auditor")
KEY_ROLES = ("billing", "analyst", "partner", "auditor")
CARE = "peer_specialist,supervisor"
ADMINS = "agency_admin,site_admin"

# (method, path) -> roles the route admits ("*": anyone signed in; None: no
# sign-in). Must equal the gateway's table: see test_spec_matches_routes.
SPEC = {
    ("POST", "/api/v1/clients"): CARE,
    ("GET", "/api/v1/clients/{id}"): CARE,
    ("GET", "/api/v1/clients"): CARE,
    ("PUT", "/api/v1/clients/{id}"): CARE,
    ("POST", "/api/v1/clients/{id}/assignment"): "supervisor",
    ("GET", "/api/v1/clients/{id}/assignments"): CARE,
    ("POST", "/api/v1/clients/{id}/merge"): "supervisor",
    ("GET", "/api/v1/instruments"): CARE,
    ("POST", "/api/v1/clients/{client_id}/goals"): CARE,
    ("POST", "/api/v1/clients/{client_id}/goals/{id}/progress"): CARE,
    ("GET", "/api/v1/clients/{client_id}/goals"): CARE,
    ("POST", "/api/v1/clients/{client_id}/consents"): CARE,
    ("POST", "/api/v1/clients/{client_id}/consents/{id}/revoke"): CARE,
    ("GET", "/api/v1/clients/{client_id}/consents"): CARE,
    ("GET", "/api/v1/clients/{client_id}/consent-check"): CARE,
    ("POST", "/api/v1/clients/{client_id}/enrollments"): CARE,
    ("POST", "/api/v1/clients/{client_id}/enrollments/{id}/discharge"): CARE,
    ("GET", "/api/v1/clients/{client_id}/enrollments"): CARE,
    ("POST", "/api/v1/clients/{client_id}/assessments"): CARE,
    ("GET", "/api/v1/clients/{client_id}/assessments"): CARE,
    ("POST", "/api/v1/clients/{client_id}/break-glass"): CARE,
    ("GET", "/api/v1/break-glass"): CARE,
    ("POST", "/api/v1/sessions"): None,
    ("DELETE", "/api/v1/sessions/current"): None,
    ("POST", "/api/v1/bootstrap"): None,
    ("POST", "/api/v1/me/totp"): "*",
    ("POST", "/api/v1/me/totp/confirm"): "*",
    ("POST", "/api/v1/me/password"): "*",
    ("POST", "/api/v1/staff/{id}/password"): ADMINS,
    ("GET", "/api/v1/sites"): "agency_admin,site_admin,supervisor,peer_specialist",
    ("POST", "/api/v1/sites"): "agency_admin",
    ("POST", "/api/v1/staff"): ADMINS,
    ("GET", "/api/v1/staff/{id}"): ADMINS,
    ("PATCH", "/api/v1/staff/{id}"): ADMINS,
    ("POST", "/api/v1/staff/{id}/disable"): ADMINS,
    ("POST", "/api/v1/api-keys"): "agency_admin",
    ("POST", "/api/v1/api-keys/{id}/revoke"): "agency_admin",
    ("POST", "/api/v1/locations"): "supervisor,site_admin",
    ("GET", "/api/v1/locations"): "peer_specialist,supervisor,site_admin",
    ("PUT", "/api/v1/staff/{staff_id}/working-hours"): CARE,
    ("POST", "/api/v1/staff/{staff_id}/time-off"): CARE,
    ("GET", "/api/v1/staff/{staff_id}/availability"): CARE,
    ("POST", "/api/v1/appointments"): CARE,
    ("GET", "/api/v1/appointments/{id}"): CARE,
    ("GET", "/api/v1/appointments"): CARE,
    ("POST", "/api/v1/appointments/{id}/reschedule"): CARE,
    ("POST", "/api/v1/appointments/{id}/status"): CARE,
    ("POST", "/api/v1/appointments/{id}/complete"): CARE,
    ("GET", "/api/v1/encounters"): CARE,
    ("GET", "/api/v1/staff/{staff_id}/calendar.ics"): CARE,
    ("POST", "/api/v1/group-sessions"): CARE,
    ("GET", "/api/v1/group-sessions"): CARE,
    ("GET", "/api/v1/group-sessions/{id}"): CARE,
    ("PATCH", "/api/v1/group-sessions/{id}"): CARE,
    ("POST", "/api/v1/group-sessions/{id}/cancel"): CARE,
    ("POST", "/api/v1/group-sessions/{group_id}/roster"): CARE,
    ("POST", "/api/v1/group-sessions/{group_id}/roster/{client_id}/leave"): CARE,
    ("GET", "/api/v1/group-occurrences"): CARE,
    ("GET", "/api/v1/group-occurrences/{id}"): CARE,
    ("PATCH", "/api/v1/group-occurrences/{id}"): CARE,
    ("PUT", "/api/v1/group-occurrences/{id}/attendance"): CARE,
    ("POST", "/api/v1/group-occurrences/{id}/complete"): CARE,
    ("GET", "/api/v1/note-templates"): CARE,
    ("POST", "/api/v1/note-templates"): "supervisor",
    ("POST", "/api/v1/notes"): CARE,
    ("GET", "/api/v1/notes"): CARE,
    ("GET", "/api/v1/notes/{id}"): CARE,
    ("PUT", "/api/v1/notes/{id}/draft"): CARE,
    ("POST", "/api/v1/notes/{id}/sign"): CARE,
    ("POST", "/api/v1/notes/{note_id}/addenda"): CARE,
    ("POST", "/api/v1/group-occurrences/{group_occurrence_id}/notes"): CARE,
    ("GET", "/api/v1/note-reviews"): "supervisor",
    ("POST", "/api/v1/notes/{id}/review"): "supervisor",
    ("PUT", "/api/v1/staff/{staff_id}/supervision"): "supervisor",
    ("GET", "/api/v1/overdue-notes"): CARE,
    # The resource directory is not PHI: the care team and admins search it.
    ("GET", "/api/v1/directory/services"): "peer_specialist,supervisor,site_admin,agency_admin",
    ("POST", "/api/v1/directory/import"): "agency_admin",
    ("GET", "/api/v1/directory/export"): "agency_admin",
    ("POST", "/api/v1/referrals"): CARE,
    ("GET", "/api/v1/referrals"): CARE,
    ("GET", "/api/v1/referrals/{id}"): CARE,
    ("POST", "/api/v1/referrals/{id}/status"): CARE,
    ("GET", "/api/v1/referral-follow-ups"): CARE,
    # A partner works the referrals sent to its organisation, and only those.
    ("GET", "/api/v1/partner/referrals"): "partner",
    ("GET", "/api/v1/partner/referrals/{id}"): "partner",
    ("POST", "/api/v1/partner/referrals/{id}/status"): "partner",
    # Dashboards: aggregates; analysts see them de-identified.
    ("GET", "/api/v1/dashboards/site/{site_id}"): "supervisor,agency_admin,analyst",
    ("GET", "/api/v1/dashboards/site/{site_id}/export"): "supervisor,agency_admin,analyst",
    ("GET", "/api/v1/dashboards/agency"): "agency_admin,analyst",
    ("GET", "/api/v1/dashboards/agency/export"): "agency_admin,analyst",
    ("GET", "/api/v1/dashboards/region/{region_id}"): "agency_admin,analyst",
    ("GET", "/api/v1/dashboards/region/{region_id}/export"): "agency_admin,analyst",
    ("POST", "/api/v1/regions"): "agency_admin",
    ("GET", "/api/v1/regions"): "agency_admin",
    ("PUT", "/api/v1/regions/{region_id}/agencies"): "agency_admin",
    # Diagnoses are part of the client's record.
    ("POST", "/api/v1/clients/{client_id}/diagnoses"): CARE,
    ("GET", "/api/v1/clients/{client_id}/diagnoses"): CARE,
    # Billing: agency admins configure payers; billing staff see claims,
    # holds and batches (never note text); nobody else.
    ("GET", "/api/v1/billing/payers"): "agency_admin,billing",
    ("PUT", "/api/v1/billing/payers/{payer_id}"): "agency_admin",
    ("GET", "/api/v1/billing/payers/{payer_id}"): "agency_admin,billing",
    ("POST", "/api/v1/billing/batches"): "billing",
    ("GET", "/api/v1/billing/batches"): "billing",
    ("GET", "/api/v1/billing/batches/{id}"): "billing",
    ("GET", "/api/v1/billing/batches/{id}/837p"): "billing",
    ("GET", "/api/v1/billing/batches/{id}/claims.csv"): "billing",
    ("GET", "/api/v1/billing/claims"): "billing",
    ("GET", "/api/v1/billing/claims/{id}"): "billing",
    ("POST", "/api/v1/billing/claims/{id}/status"): "billing",
    ("POST", "/api/v1/billing/claims/{id}/replace"): "billing",
    ("POST", "/api/v1/billing/claims/{id}/void"): "billing",
    ("POST", "/api/v1/billing/remittances"): "billing",
}

MATRIX_PAYER = {
    "payer_name": "Matrix Medicaid", "submitter_id": "MATRIX1", "submitter_name": "Matrix",
    "submitter_contact_name": "Matrix Biller", "submitter_contact_phone": "6145550100",
    "receiver_id": "MATRIXRCV", "receiver_name": "Matrix Receiver",
    "billing_provider_name": "Matrix Agency", "billing_provider_npi": "1234567893",
    "billing_provider_taxonomy": "261QR0405X", "billing_provider_tax_id": "311234567",
    "billing_provider_address": {"line1": "1 Main St", "city": "Columbus", "state": "OH",
                                 "postal_code": "432150001"},
    "rates": [{"modifiers": "", "cents": 1000}]}

NOTE_SECTIONS = [{"key": k, "text": "matrix " + k}
                 for k in ("goal", "intervention", "response", "plan")]

_SLOTS = iter(range(1, 10000))


def group_body(site_id):
    """A one-meeting group series at a time no other matrix request uses: in
    2032, as its start is a local time and one-on-one slots are 2031 UTC."""
    start = slot()["start"].replace("2031-", "2032-", 1)
    return {"site_id": site_id, "topic": "self_care", "capacity": 12, "minutes": 30,
            "start_time": start[11:16],
            "rule": {"freq": "weekly", "start_date": start[:10], "count": 1}}


def slot():
    """A one-hour meeting at a time no other matrix request uses."""
    n = next(_SLOTS)
    return {"start": "2031-%02d-%02dT%02d:00:00Z" % (1 + n // 600, 1 + n // 24 % 25, n % 24),
            "end": "2031-%02d-%02dT%02d:59:00Z" % (1 + n // 600, 1 + n // 24 % 25, n % 24)}

TARGETS = ("own", "other_site", "other_agency")


def gateway_routes():
    out = subprocess.run([os.path.join(BUILD_DIR, "bin", "beacon-gateway"), "--routes"],
                         stdout=subprocess.PIPE, check=True, text=True, timeout=10).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Principal:
    def __init__(self, name, role, auth, agency_wide=False):
        self.name, self.role, self.auth, self.agency_wide = name, role, auth, agency_wide


def add_other_agency(test_cls, password_of):
    """A second agency with one site, a peer specialist and a supervisor,
    written straight into identity's tables as the schema owner (the API
    creates one agency per deployment). The accounts reuse password_of's
    Argon2id hash, so they sign in with its password."""
    agency, site = str(uuid.uuid4()), str(uuid.uuid4())
    people = {"peer_specialist": str(uuid.uuid4()), "supervisor": str(uuid.uuid4())}
    sql = ["BEGIN",
           "INSERT INTO identity.agencies (id, name) VALUES ('%s', 'Other Agency %s')"
           % (agency, agency[:8]),
           "INSERT INTO identity.sites (id, agency_id, name, time_zone) "
           "VALUES ('%s', '%s', 'Other Site', 'UTC')" % (site, agency)]
    emails = {}
    for role, sid in people.items():
        emails[role] = "%s-%s@other.beacon.test" % (role.replace("_", "-"), sid[:8])
        sql += ["INSERT INTO identity.staff (id, agency_id, given_name, family_name, email, "
                "password_hash) SELECT '%s', '%s', 'Olga', 'Other', '%s', password_hash "
                "FROM identity.staff WHERE id = '%s'" % (sid, agency, emails[role],
                                                         password_of.id),
                "INSERT INTO identity.staff_roles VALUES ('%s', '%s')" % (sid, role),
                "INSERT INTO identity.staff_sites VALUES ('%s', '%s', '%s')" % (sid, site, agency)]
    sql.append("COMMIT")
    launch.psql(test_cls.stack.database_url, ";\n".join(sql) + ";")
    out = {}
    for role, sid in people.items():
        r = test_cls.stack.request("POST", "/api/v1/sessions", body={
            "email": emails[role], "password": password_of.password})
        assert r.status == 201, r.body
        out[role] = launch.Org.Staff(sid, emails[role], password_of.password, [role], [site],
                                     r.json()["token"])
    return agency, site, out


class AccessMatrixTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        req = cls.stack.request
        org = cls.org = launch.Org(cls.stack).bootstrap()
        cls.site_a = org.site_id
        cls.site_b = org.add_site("Westside")
        cls.org_agency = launch.psql(cls.stack.database_url,
                                     "SELECT agency_id FROM identity.sites WHERE id = '%s'"
                                     % cls.site_a).strip()
        # The partner accounts (staff and key) act for one organisation of
        # the directory; another partner organisation receives referrals too.
        cls.partner_org = org.add_directory_organization("Matrix Partner",
                                                         services=["Matrix Housing"])
        org.add_directory_organization("Matrix Other Partner", services=["Other Housing"])
        # One staff member per role at site A; the care roles also at B.
        cls.staff = {role: org.add_staff([role], [cls.site_a], organization_id=cls.partner_org)
                     for role in STAFF_ROLES}
        cls.staff["agency_admin"] = org.admin
        cls.peer_b = org.add_staff(["peer_specialist"], [cls.site_b])
        _, cls.site_x, cls.other = add_other_agency(cls, cls.staff["peer_specialist"])
        # API keys, one per integration role, scoped to site A.
        cls.keys = {}
        for role in KEY_ROLES:
            body = {"name": "%s integration" % role, "role": role, "site_ids": [cls.site_a]}
            if role == "partner":
                body["organization_id"] = cls.partner_org
            r = req("POST", "/api/v1/api-keys", headers=org.admin.auth, body=body)
            assert r.status == 201, r.body
            cls.keys[role] = r.json()["token"]
        # Clients: A on the matrix peer's caseload, B at the other site, X
        # in the other agency.
        def client(who):
            r = req("POST", "/api/v1/clients", body=new_client(), headers=who.auth)
            assert r.status == 201, r.body
            return r.json()["id"]
        cls.client = {"own": client(cls.staff["peer_specialist"]),
                      "other_site": client(cls.peer_b),
                      "other_agency": client(cls.other["peer_specialist"])}
        # Appointments: A's by the matrix peer, B's and X's by their own peers.
        def appointment(who, client_id):
            r = req("POST", "/api/v1/appointments", headers=who.auth,
                    body=dict(slot(), client_id=client_id, mode="in_person"))
            assert r.status == 201, r.body
            return r.json()["id"]
        cls.appointment = {
            "own": appointment(cls.staff["peer_specialist"], cls.client["own"]),
            "other_site": appointment(cls.peer_b, cls.client["other_site"]),
            "other_agency": appointment(cls.other["peer_specialist"], cls.client["other_agency"])}
        # Group series, one meeting each, run by each target's peer.
        def group(who, site_id):
            r = req("POST", "/api/v1/group-sessions", headers=who.auth, body=group_body(site_id))
            assert r.status == 201, r.body
            g = r.json()["id"]
            r = req("GET", "/api/v1/group-occurrences?group_id=%s&from=2032-01-01&to=2032-03-31"
                    % g, headers=who.auth)
            assert r.status == 200, r.body
            return g, r.json()["occurrences"][0]["id"]
        made = {"own": group(cls.staff["peer_specialist"], cls.site_a),
                "other_site": group(cls.peer_b, cls.site_b),
                "other_agency": group(cls.other["peer_specialist"], cls.site_x)}
        cls.group = {t: g for t, (g, _) in made.items()}
        cls.occurrence = {t: o for t, (_, o) in made.items()}
        # Notes: a draft and a signed note per target, by the target's peer.
        def note(who, client_id, signed=False):
            r = req("POST", "/api/v1/notes", headers=who.auth,
                    body={"client_id": client_id, "contact_kind": "phone_call",
                          "template_id": "girp", "sections": NOTE_SECTIONS})
            assert r.status == 201, r.body
            if signed:
                s = req("POST", "/api/v1/notes/%s/sign" % r.json()["id"], headers=who.auth,
                        body={"attest": True})
                assert s.status == 200, s.body
            return r.json()["id"]
        owners = {"own": cls.staff["peer_specialist"], "other_site": cls.peer_b,
                  "other_agency": cls.other["peer_specialist"]}
        cls.note = {t: note(w, cls.client[t]) for t, w in owners.items()}
        cls.signed_note = {t: note(w, cls.client[t], True) for t, w in owners.items()}
        cls.note_owner = owners
        # Referrals: one per target, by the target's peer, to a resource
        # outside the directory.
        def referral(who, client_id):
            r = req("POST", "/api/v1/referrals", headers=who.auth,
                    body={"client_id": client_id, "external_resource": "Matrix Food Bank",
                          "reason": "matrix"})
            assert r.status == 201, r.body
            return r.json()["id"]
        cls.referral = {t: referral(w, cls.client[t]) for t, w in owners.items()}
        # Referrals to directory services: to the matrix partner ("own"), to
        # another partner organisation ("other_site"); "other_agency" is the
        # other agency's referral above (its directory is its own).
        def to_service(service):
            r = req("POST", "/api/v1/referrals", headers=cls.staff["peer_specialist"].auth,
                    body={"client_id": cls.client["own"], "reason": "matrix",
                          "service_id": org.directory_services[service]})
            assert r.status == 201, r.body
            return r.json()["id"]
        cls.partner_referral = {"own": to_service("Matrix Housing"),
                                "other_site": to_service("Other Housing"),
                                "other_agency": cls.referral["other_agency"]}
        # Staff accounts to read, change and disable.
        cls.target_staff = {"own": org.add_staff(["peer_specialist"], [cls.site_a]).id,
                            "other_site": org.add_staff(["peer_specialist"], [cls.site_b]).id,
                            "other_agency": cls.other["supervisor"].id}
        cls.principals = [Principal("anonymous", None, {})]
        for role in STAFF_ROLES:
            cls.principals.append(Principal("staff:" + role, role, cls.staff[role].auth,
                                            agency_wide=(role == "agency_admin")))
        for role in KEY_ROLES:
            cls.principals.append(Principal("key:" + role, role,
                                            {"Authorization": "Bearer " + cls.keys[role]}))

    def site(self, target):
        return {"own": self.site_a, "other_site": self.site_b, "other_agency": self.site_x}[target]

    # -- the requests, per route and target --------------------------------

    def request_for(self, method, path, target):
        """(path, body) for one route aimed at target, or None when the
        route has no such target."""
        key = (method, path)
        site = self.site(target)
        if key == ("POST", "/api/v1/clients"):
            return path, new_client(site_id=site)
        if key in (("GET", "/api/v1/clients/{id}"), ("GET", "/api/v1/clients/{id}/assignments")):
            return path.replace("{id}", self.client[target]), None
        if key == ("POST", "/api/v1/clients/{client_id}/enrollments"):
            # Programs differ per call; a second open episode is refused (409).
            return (path.replace("{client_id}", self.client[target]),
                    {"program": "Matrix", "pathway": "brief"})
        if key == ("POST", "/api/v1/clients/{client_id}/enrollments/{id}/discharge"):
            return (path.replace("{client_id}", self.client[target])
                        .replace("{id}", str(uuid.uuid4())), {"reason": "other"})
        if key == ("GET", "/api/v1/clients/{client_id}/enrollments"):
            return path.replace("{client_id}", self.client[target]), None
        if key == ("POST", "/api/v1/clients/{client_id}/consents"):
            return (path.replace("{client_id}", self.client[target]), {
                "disclosing_party": "Agency", "information_description": "attendance records",
                "recipients": ["Partner"], "purposes": ["referral"],
                "right_to_revoke_explained": True, "revocation_instructions": "in writing",
                "expiry_event": "end of treatment", "signed_by": "Client",
                "signer_relationship": "self", "signature_method": "wet",
                "signed_on": "2026-01-01"})
        if key == ("POST", "/api/v1/clients/{client_id}/consents/{id}/revoke"):
            return (path.replace("{client_id}", self.client[target])
                        .replace("{id}", str(uuid.uuid4())), {})
        if key in (("GET", "/api/v1/clients/{client_id}/consents"),):
            return path.replace("{client_id}", self.client[target]), None
        if key == ("GET", "/api/v1/clients/{client_id}/consent-check"):
            return (path.replace("{client_id}", self.client[target])
                    + "?recipient=Partner&purpose=referral"), None
        if key == ("POST", "/api/v1/clients/{client_id}/goals"):
            return (path.replace("{client_id}", self.client[target]),
                    {"domain": "recovery", "description": "matrix goal"})
        if key == ("POST", "/api/v1/clients/{client_id}/goals/{id}/progress"):
            return (path.replace("{client_id}", self.client[target])
                        .replace("{id}", str(uuid.uuid4())), {"note": "matrix"})
        if key == ("GET", "/api/v1/clients/{client_id}/goals"):
            return path.replace("{client_id}", self.client[target]), None
        if key == ("POST", "/api/v1/clients/{id}/merge"):
            # Into itself: refused whoever asks (400) once the role is right.
            return (path.replace("{id}", self.client[target]),
                    {"duplicate_id": self.client[target], "reason": "matrix"})
        if key == ("GET", "/api/v1/instruments"):
            return (path, None) if target == "own" else None
        if key == ("POST", "/api/v1/clients/{client_id}/assessments"):
            return (path.replace("{client_id}", self.client[target]),
                    {"instrument_id": "barc10",
                     "answers": [{"item_id": "q%d" % i, "value": 3} for i in range(1, 11)]})
        if key == ("GET", "/api/v1/clients/{client_id}/assessments"):
            return path.replace("{client_id}", self.client[target]), None
        if key == ("GET", "/api/v1/clients"):
            return (path + "?limit=5", None) if target == "own" else None
        if key == ("PUT", "/api/v1/clients/{id}"):
            # The whole record back, with the ETag read just now (the
            # matrix peer can read its own client; others get "1").
            etag = '"1"'
            body = new_client(status="active")
            if target == "own":
                r = self.req("GET", path.replace("{id}", self.client["own"]),
                             headers=self.staff["peer_specialist"].auth)
                self.assertEqual(r.status, 200, r.body)
                etag = r.header("ETag")
            return path.replace("{id}", self.client[target]), body, {"If-Match": etag}
        if key == ("POST", "/api/v1/clients/{id}/assignment"):
            # Already on that caseload: refused as a no-op, never a change.
            return (path.replace("{id}", self.client[target]),
                    {"staff_id": self.staff["peer_specialist"].id, "reason": "matrix"})
        if key == ("POST", "/api/v1/clients/{client_id}/break-glass"):
            return (path.replace("{client_id}", self.client[target]),
                    {"reason": "client in crisis at the front desk", "minutes": 5})
        if key in (("GET", "/api/v1/break-glass"), ("GET", "/api/v1/sites")):
            return (path, None) if target == "own" else None
        if key == ("POST", "/api/v1/me/totp"):
            return (path, {}) if target == "own" else None
        if key == ("POST", "/api/v1/me/totp/confirm"):
            return (path, {"code": "000000"}) if target == "own" else None
        if key == ("POST", "/api/v1/me/password"):
            return (path, {"current_password": "not the password at all",
                           "new_password": "another long password 2"}) if target == "own" else None
        if key == ("POST", "/api/v1/sites"):
            return (path, {"name": "Site " + uuid.uuid4().hex[:6], "time_zone": "UTC"}) \
                if target == "own" else None
        if key == ("POST", "/api/v1/staff"):
            return path, {"given_name": "New", "family_name": "Hire",
                          "email": "hire-%s@example.org" % uuid.uuid4().hex[:10],
                          "roles": ["peer_specialist"], "site_ids": [site],
                          "password": "a long enough password 1"}
        if key in (("GET", "/api/v1/staff/{id}"), ("PATCH", "/api/v1/staff/{id}"),
                   ("POST", "/api/v1/staff/{id}/disable"),
                   ("POST", "/api/v1/staff/{id}/password")):
            body = None
            if method == "PATCH":
                body = {"given_name": "Renamed"}
            elif path.endswith("/disable"):
                body = {"reason": "left the agency"}
            elif path.endswith("/password"):
                body = {"new_password": "a reset password 42 long"}
            return path.replace("{id}", self.target_staff[target]), body
        if key == ("POST", "/api/v1/api-keys"):
            return path, {"name": "dashboard", "role": "analyst", "site_ids": [site]}
        if key == ("POST", "/api/v1/api-keys/{id}/revoke"):
            if target == "other_site":
                return None
            if target == "other_agency":
                return path.replace("{id}", str(uuid.uuid4())), {}
            r = self.stack.request("POST", "/api/v1/api-keys", headers=self.org.admin.auth,
                                   body={"name": "to revoke", "role": "partner",
                                         "site_ids": [self.site_a],
                                         "organization_id": self.partner_org})
            self.assertEqual(r.status, 201, r.body)
            return path.replace("{id}", r.json()["api_key"]["id"]), {}
        if key == ("POST", "/api/v1/locations"):
            return path, {"site_id": site, "name": "Room " + uuid.uuid4().hex[:6],
                          "kind": "office_room"}
        if key == ("GET", "/api/v1/locations"):
            return (path + "?site_id=" + site, None) if target == "own" else None
        if key == ("PUT", "/api/v1/staff/{staff_id}/working-hours"):
            return (path.replace("{staff_id}", "me"),
                    {"site_id": site, "hours": [{"weekday": d, "start": "00:00", "end": "24:00"}
                                                for d in ("monday", "tuesday", "wednesday",
                                                          "thursday", "friday", "saturday",
                                                          "sunday")]})
        if key == ("POST", "/api/v1/staff/{staff_id}/time-off"):
            return (path.replace("{staff_id}", "me"),
                    {"start": "2035-01-01T00:00:00Z", "end": "2035-01-02T00:00:00Z"}) \
                if target == "own" else None
        if key == ("GET", "/api/v1/staff/{staff_id}/availability"):
            return (path.replace("{staff_id}", "me"), None) if target == "own" else None
        if key == ("POST", "/api/v1/appointments"):
            return path, dict(slot(), client_id=self.client[target], mode="telephone")
        if key == ("GET", "/api/v1/appointments/{id}"):
            return path.replace("{id}", self.appointment[target]), None
        if key == ("GET", "/api/v1/appointments"):
            return (path + "?staff_id=me&view=week", None) if target == "own" else None
        if key == ("POST", "/api/v1/appointments/{id}/reschedule"):
            return path.replace("{id}", self.appointment[target]), dict(slot(), reason="matrix")
        if key == ("POST", "/api/v1/appointments/{id}/status"):
            return path.replace("{id}", self.appointment[target]), {"status": "checked_in"}
        if key == ("POST", "/api/v1/appointments/{id}/complete"):
            return path.replace("{id}", self.appointment[target]), {}
        if key == ("GET", "/api/v1/encounters"):
            return (path + "?client_id=" + self.client[target], None) \
                if target == "own" else None
        if key == ("GET", "/api/v1/staff/{staff_id}/calendar.ics"):
            # One's own feed; a specialist at the other site; one in the
            # other agency (only a supervisor of their site may have theirs).
            staff = {"own": "me", "other_site": self.peer_b.id,
                     "other_agency": self.other["peer_specialist"].id}[target]
            return path.replace("{staff_id}", staff) + "?from=2031-01-01&to=2031-03-01", None
        peer = self.staff["peer_specialist"]
        if key == ("POST", "/api/v1/group-sessions"):
            return path, group_body(site)
        if key == ("GET", "/api/v1/group-sessions"):
            return (path + "?site_id=" + site, None) if target == "own" else None
        if key == ("GET", "/api/v1/group-sessions/{id}"):
            return path.replace("{id}", self.group[target]), None
        if key == ("PATCH", "/api/v1/group-sessions/{id}"):
            url = path.replace("{id}", self.group[target])
            return url, {"title": "Renamed"}, {"If-Match": self.etag(url, target)}
        if key == ("POST", "/api/v1/group-sessions/{id}/cancel"):
            # A series of its own to end, each time.
            gid = self.group[target]
            if target == "own":
                r = self.stack.request("POST", "/api/v1/group-sessions", headers=peer.auth,
                                       body=group_body(site))
                self.assertEqual(r.status, 201, r.body)
                gid = r.json()["id"]
            return path.replace("{id}", gid), {"reason": "matrix"}
        if key == ("POST", "/api/v1/group-sessions/{group_id}/roster"):
            return (path.replace("{group_id}", self.group[target]),
                    {"client_id": self.client[target]})
        if key == ("POST", "/api/v1/group-sessions/{group_id}/roster/{client_id}/leave"):
            return (path.replace("{group_id}", self.group[target])
                    .replace("{client_id}", self.client[target]), {"reason": "matrix"})
        if key == ("GET", "/api/v1/group-occurrences"):
            return (path + "?site_id=%s&from=2032-01-01&to=2032-03-31" % site, None) \
                if target == "own" else None
        if key == ("GET", "/api/v1/group-occurrences/{id}"):
            return path.replace("{id}", self.occurrence[target]), None
        if key == ("PATCH", "/api/v1/group-occurrences/{id}"):
            url = path.replace("{id}", self.occurrence[target])
            return url, slot(), {"If-Match": self.etag(url, target)}
        if key == ("PUT", "/api/v1/group-occurrences/{id}/attendance"):
            return (path.replace("{id}", self.occurrence[target]),
                    {"attendance": [{"client_id": self.client[target], "status": "excused"}]})
        if key == ("POST", "/api/v1/group-occurrences/{id}/complete"):
            return path.replace("{id}", self.occurrence[target]), {}
        if key == ("POST", "/api/v1/referrals"):
            return path, {"client_id": self.client[target], "external_resource": "Matrix Clinic",
                          "reason": "matrix"}
        if key == ("GET", "/api/v1/referrals"):
            return (path + "?client_id=" + self.client[target], None) \
                if target == "own" else None
        if key == ("GET", "/api/v1/referrals/{id}"):
            return path.replace("{id}", self.referral[target]), None
        if key == ("POST", "/api/v1/referrals/{id}/status"):
            return path.replace("{id}", self.referral[target]), {"status": "received"}
        if key == ("GET", "/api/v1/referral-follow-ups"):
            return (path, None) if target == "own" else None
        if key == ("GET", "/api/v1/partner/referrals"):
            return (path, None) if target == "own" else None
        if key == ("GET", "/api/v1/partner/referrals/{id}"):
            return path.replace("{id}", self.partner_referral[target]), None
        if key == ("POST", "/api/v1/partner/referrals/{id}/status"):
            return path.replace("{id}", self.partner_referral[target]), {"status": "received"}
        if key == ("POST", "/api/v1/directory/import"):
            doc = json.dumps({"id": str(uuid.uuid4()), "name": "Matrix", "description": "m"})
            return (path, {"files": [{"name": "taxonomy.json", "content": base64.b64encode(
                doc.encode()).decode()}]}) if target == "own" else None
        if key == ("GET", "/api/v1/directory/export"):
            return (path, None) if target == "own" else None
        if key == ("GET", "/api/v1/directory/services"):
            return (path + "?q=housing&latitude=40.7&longitude=-74&radius_km=10", None) \
                if target == "own" else None
        if key == ("GET", "/api/v1/note-templates"):
            return (path, None) if target == "own" else None
        if key == ("POST", "/api/v1/note-templates"):
            return (path, {"id": "m-" + uuid.uuid4().hex[:8], "name": "Matrix",
                           "sections": [{"key": "a", "label": "A", "required": True}]}) \
                if target == "own" else None
        if key == ("POST", "/api/v1/notes"):
            return path, {"client_id": self.client[target], "contact_kind": "outreach",
                          "template_id": "girp"}
        if key == ("GET", "/api/v1/notes"):
            return (path + "?client_id=" + self.client[target], None) \
                if target == "own" else None
        if key == ("GET", "/api/v1/notes/{id}"):
            return path.replace("{id}", self.note[target]), None
        if key == ("PUT", "/api/v1/notes/{id}/draft"):
            url = path.replace("{id}", self.note[target])
            return url, {"sections": NOTE_SECTIONS}, \
                {"If-Match": self.etag(url.replace("/draft", ""), target)}
        if key == ("POST", "/api/v1/notes/{id}/sign"):
            # A fresh complete draft each time, by the target's peer.
            nid = self.note[target]
            if target == "own":
                r = self.stack.request("POST", "/api/v1/notes", headers=peer.auth,
                                       body={"client_id": self.client["own"],
                                             "contact_kind": "other", "template_id": "girp",
                                             "sections": NOTE_SECTIONS})
                self.assertEqual(r.status, 201, r.body)
                nid = r.json()["id"]
            return path.replace("{id}", nid), {"attest": True}
        if key == ("POST", "/api/v1/notes/{note_id}/addenda"):
            return (path.replace("{note_id}", self.signed_note[target]),
                    {"text": "matrix addendum", "attest": True})
        if key == ("POST", "/api/v1/group-occurrences/{group_occurrence_id}/notes"):
            return (path.replace("{group_occurrence_id}", self.occurrence[target]),
                    {"template_id": "girp"})
        if key in (("GET", "/api/v1/note-reviews"), ("GET", "/api/v1/overdue-notes")):
            return (path, None) if target == "own" else None
        if key == ("POST", "/api/v1/notes/{id}/review"):
            return path.replace("{id}", self.signed_note[target]), {"outcome": "approved"}
        if key == ("PUT", "/api/v1/staff/{staff_id}/supervision"):
            return (path.replace("{staff_id}", self.target_staff[target]),
                    {"requires_cosign": False})
        if key[1].startswith("/api/v1/dashboards/"):
            query = "?from=2026-01-01&to=2026-03-31&grain=week"
            if "{site_id}" in path:
                return path.replace("{site_id}", site) + query, None
            if "{region_id}" in path:
                if target == "other_site":
                    return None
                return path.replace("{region_id}", self.region(target)) + query, None
            return (path + query, None) if target == "own" else None
        if key == ("POST", "/api/v1/regions"):
            return (path, {"name": "Matrix region %s" % uuid.uuid4().hex[:8]}) \
                if target == "own" else None
        if key == ("GET", "/api/v1/regions"):
            return (path, None) if target == "own" else None
        if key == ("PUT", "/api/v1/regions/{region_id}/agencies"):
            # Its own membership as it is (own), or removing the other
            # agency from the other agency's region (not the caller's to see).
            if target == "other_site":
                return None
            return (path.replace("{region_id}", self.region(target)),
                    {"agency_ids": [self.org_agency] if target == "own" else []})
        if key in (("POST", "/api/v1/clients/{client_id}/diagnoses"),
                   ("GET", "/api/v1/clients/{client_id}/diagnoses")):
            return (path.replace("{client_id}", self.client[target]),
                    {"code": "F11.20"} if method == "POST" else None)
        if key[1].startswith("/api/v1/billing/"):
            return self.billing_request_for(key, target)
        raise AssertionError("no request written for %s %s: add one" % key)

    def region(self, target):
        """A region of the caller's agency (own) or of the other agency only."""
        regions = type(self).__dict__.get("regions")
        if regions is None:
            regions = type(self).regions = {}
            for name, site in (("own", self.site_a), ("other_agency", self.site_x)):
                regions[name] = launch.psql(self.stack.database_url, (
                    "WITH r AS (INSERT INTO reporting.regions (name) VALUES ('Matrix %s %s') "
                    "RETURNING id), a AS (INSERT INTO reporting.region_agencies SELECT r.id, "
                    "s.agency_id FROM r, identity.sites s WHERE s.id = '%s') SELECT id FROM r")
                    % (name, uuid.uuid4().hex[:6], site)).strip()
        return regions[target]

    def billing_request_for(self, key, target):
        """Billing routes: the caller's own agency only (payers, batches and
        claims of another agency are not addressable by anything but an id,
        tried with a random one)."""
        method, path = key
        random_id = str(uuid.uuid4())
        if target == "other_site":
            return None
        if target == "other_agency":
            if "{id}" not in path:
                return None
            return path.replace("{id}", random_id), {} if method == "POST" else None
        if path == "/api/v1/billing/payers/{payer_id}":
            return (path.replace("{payer_id}", "MATRIX"),
                    MATRIX_PAYER if method == "PUT" else None)
        if key == ("POST", "/api/v1/billing/batches"):
            return path, {"payer_id": "MATRIX", "from": "2020-01-01", "to": "2020-01-31"}
        if key == ("POST", "/api/v1/billing/remittances"):
            return path, {"content": "claim_id,status,paid_amount,payer_claim_number,reason\n"}
        if "{id}" in path:
            body = {"status": "paid"} if path.endswith("/status") else {}
            return path.replace("{id}", random_id), body if method == "POST" else None
        return path, None

    def etag(self, url, target):
        """The current version of an own record, as its creator reads it."""
        if target != "own":
            return '"1"'
        r = self.stack.request("GET", url, headers=self.staff["peer_specialist"].auth)
        self.assertEqual(r.status, 200, r.body)
        return '"%d"' % r.json()["version"]

    def expected(self, method, path, who, target):
        """The statuses allowed for this combination."""
        roles = SPEC[(method, path)]
        if who.role is None:
            return {401}
        if roles != "*" and who.role not in roles.split(","):
            return {403}
        key = (method, path)
        if roles == "*":
            # Anyone signed in reaches the handler; what it says depends on
            # the account (a bad TOTP code is 400/401/422, never 2xx).
            if not who.name.startswith("staff:"):
                return {403}  # an API key has no second factor to manage
            if key == ("POST", "/api/v1/me/totp/confirm"):
                return {400, 401, 409, 422}
            if key == ("POST", "/api/v1/me/password"):
                return {403}  # the current password sent is wrong
            return {201, 409, 422}
        if target == "other_agency":
            # Another agency's sites and records do not exist for the caller:
            # a site named in a body is an invalid argument, an id in the
            # path is not found.
            return {400, 403, 404}
        if key == ("POST", "/api/v1/clients/{id}/assignment"):
            return {422} if target == "own" else {404}
        if key == ("POST", "/api/v1/clients/{id}/merge"):
            return {400}
        if key == ("POST", "/api/v1/clients/{client_id}/enrollments"):
            return {201, 409} if target == "own" else {404}
        if key == ("POST", "/api/v1/clients/{client_id}/enrollments/{id}/discharge"):
            return {404}  # no such episode, whoever asks
        if key in (("POST", "/api/v1/clients/{client_id}/consents/{id}/revoke"),
                   ("POST", "/api/v1/clients/{client_id}/goals/{id}/progress")):
            return {404}
        if key == ("POST", "/api/v1/clients/{client_id}/break-glass"):
            # Breaking the glass to a client outside one's scope is the
            # point; a client already in scope needs none.
            return {422} if target == "own" else {201}
        if target == "own" and key in (("POST", "/api/v1/appointments/{id}/status"),
                                       ("POST", "/api/v1/appointments/{id}/complete")):
            # The first caller checks the client in; after that the step is
            # refused as out of order, and a future meeting cannot be completed.
            return {200, 422} if key[1].endswith("/status") else {422}
        if target == "own" and key in (("PUT", "/api/v1/notes/{id}/draft"),
                                       ("POST", "/api/v1/notes/{id}/sign")):
            return {200, 403}  # the author saves and signs; a supervisor may not
        if target == "own" and key in (("POST", "/api/v1/referrals/{id}/status"),
                                       ("POST", "/api/v1/partner/referrals/{id}/status")):
            return {200, 422}  # the first caller marks it received; again is out of order
        if target == "own" and key == ("POST", "/api/v1/notes/{id}/review"):
            return {422}  # signed without needing a review: nothing to review
        if key == ("POST", "/api/v1/group-occurrences/{group_occurrence_id}/notes"):
            return {404} if target == "own" else {403, 404}  # not completed: nothing to document
        if key[1].startswith("/api/v1/dashboards/"):
            # Analysts read de-identified aggregates of any site of their
            # agency; supervisors only their own sites' dashboards.
            if target == "other_site" and who.role == "supervisor":
                return {404}
            return {200}
        if key[1].startswith("/api/v1/regions"):
            return {201} if method == "POST" else {200}
        if key[1].startswith("/api/v1/billing/"):
            if "{id}" in key[1]:
                return {404}  # no such batch or claim (a random id)
            if key == ("POST", "/api/v1/billing/batches"):
                return {422}  # nothing to bill in 2020
            if key == ("GET", "/api/v1/billing/payers/{payer_id}"):
                return {200, 404}  # once an agency_admin has set it
            return {200}
        if target == "other_site" and not who.agency_wide:
            return {403, 404}
        if key == ("POST", "/api/v1/group-sessions/{group_id}/roster"):
            return {201, 409}  # the first puts the client on, the rest find them there
        if key == ("POST", "/api/v1/group-sessions/{group_id}/roster/{client_id}/leave"):
            return {200, 404}  # the first takes them off, the rest find them gone
        if key in (("PUT", "/api/v1/group-occurrences/{id}/attendance"),
                   ("POST", "/api/v1/group-occurrences/{id}/complete")):
            # The client has left the roster by now, and the meeting is in
            # the future: refused as out of order, whoever asks.
            return {422}
        return {200, 201}

    # -- tests ---------------------------------------------------------------

    def test_spec_matches_routes(self):
        routes = {(r["method"], r["path"]): (r.get("roles") if r["auth"] else None)
                  for r in gateway_routes()}
        self.assertEqual(set(routes), set(SPEC),
                         "routes and this test's SPEC differ: add the new route to SPEC "
                         "(and README's matrix)")
        for key, roles in routes.items():
            self.assertEqual(roles, SPEC[key], key)

    def test_matrix(self):
        checked, unauthorised_2xx, wrong = 0, [], []
        for r in gateway_routes():
            method, path = r["method"], r["path"]
            if SPEC[(method, path)] is None:
                continue  # sign-in routes: SessionTests and the login tests
            for who in self.principals:
                for target in TARGETS:
                    made = self.request_for(method, path, target)
                    if made is None:
                        continue
                    url, body = made[0], made[1]
                    headers = dict(who.auth, **(made[2] if len(made) > 2 else {}))
                    resp = self.req(method, url, body, headers=headers)
                    allowed = self.expected(method, path, who, target)
                    checked += 1
                    label = "%s %s as %s on %s: %d" % (method, url, who.name, target,
                                                       resp.status)
                    if 200 <= resp.status < 300 and not (allowed & {200, 201}):
                        unauthorised_2xx.append(label)
                    elif resp.status not in allowed:
                        wrong.append("%s (expected %s) %s" % (
                            label, sorted(allowed), resp.body[:160].decode("utf-8", "replace")))
        print("\n  access matrix: %d route x principal x target combinations" % checked,
              file=sys.stderr)
        self.assertEqual(unauthorised_2xx, [], "UNAUTHORISED 2xx")
        self.maxDiff = None
        self.assertEqual(wrong, [], "unexpected statuses")
        self.assertGreater(checked, 300)

    def test_metrics_needs_its_own_token(self):
        # GET /metrics sits outside the route table (like /healthz) and no
        # session or API key opens it: without the metrics_token setting,
        # as here, it does not exist for anyone (test_metrics.py: with it).
        for who in self.principals:
            resp = self.req("GET", "/metrics", headers=who.auth)
            self.assertProblem(resp, 404)
            self.assertNotIn(b"beacon_", resp.body)

    def test_denied_reads_are_audited(self):
        peer = self.staff["peer_specialist"]
        r = self.req("GET", "/api/v1/clients/" + self.client["other_site"], headers=peer.auth)
        self.assertProblem(r, 404)
        rid = r.header("X-Request-Id")
        rows = self.psql("SELECT actor_staff_id, outcome, resource_id FROM audit.events "
                         "WHERE request_id = '%s'" % rid).split()
        self.assertEqual(rows, ["%s|denied|%s" % (peer.id, self.client["other_site"])])

    def test_row_security_holds_without_the_handlers(self):
        # Straight to PostgreSQL as the services' role, with a scope set as
        # the dispatcher would: the policies alone decide.
        app = self.stack.app_database_url()

        def visible(staff, roles, sites, caseload=""):
            sql = ("SELECT set_config('beacon.staff_id', '%s', false), "
                   "set_config('beacon.agency_id', '%s', false), "
                   "set_config('beacon.site_ids', '%s', false), "
                   "set_config('beacon.roles', '%s', false), "
                   "set_config('beacon.caseload_site_ids', '%s', false); "
                   "SELECT id FROM intake.clients ORDER BY id" % (
                       staff, self.org_agency, ",".join(sites), roles, caseload))
            return set(launch.psql(app, sql).split()[1:])

        peer = self.staff["peer_specialist"]
        a, b, x = self.client["own"], self.client["other_site"], self.client["other_agency"]

        def sees(got, yes, no):
            self.assertTrue(set(yes) <= got, (yes, got))
            self.assertFalse(set(no) & got, (no, got))

        sees(visible("", "", []), [], [a, b, x])
        # (b too: test_matrix broke the glass to it as this peer.)
        sees(visible(peer.id, "peer_specialist", [self.site_a]), [a], [x])
        sees(visible(peer.id, "billing", [self.site_a]), [], [a, b, x])
        sees(visible(str(uuid.uuid4()), "peer_specialist", [self.site_a]), [], [a, b, x])
        sees(visible(str(uuid.uuid4()), "peer_specialist", [self.site_a], caseload=self.site_a),
             [a], [b, x])
        sees(visible(str(uuid.uuid4()), "supervisor", [self.site_b]), [b], [a, x])
        sees(visible(str(uuid.uuid4()), "supervisor", [self.site_a, self.site_b]), [a, b], [x])
        # The application role cannot switch row security off.
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "ALTER TABLE intake.clients NO FORCE ROW LEVEL SECURITY")
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "SET row_security = off; SELECT count(*) FROM intake.clients")

    def test_sites_list_shows_only_own_agency(self):
        r = self.req("GET", "/api/v1/sites", headers=self.staff["supervisor"].auth)
        self.assertEqual(r.status, 200, r.body)
        ids = {s["id"] for s in r.json()["sites"]}
        self.assertIn(self.site_a, ids)
        self.assertNotIn(self.site_x, ids)


class BreakGlassTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        org = cls.org = launch.Org(cls.stack).bootstrap()
        cls.site_a, cls.site_b = org.site_id, org.add_site("Northside")
        cls.peer = org.add_staff(["peer_specialist"], [cls.site_a])
        cls.colleague = org.add_staff(["peer_specialist"], [cls.site_a])
        cls.sup_a = org.add_staff(["supervisor"], [cls.site_a])
        cls.sup_b = org.add_staff(["supervisor"], [cls.site_b])
        r = cls.stack.request("POST", "/api/v1/clients", body=new_client(),
                              headers=cls.peer.auth)
        assert r.status == 201, r.body
        cls.client = r.json()

    def grant(self, who, reason="covering for a colleague: client in crisis", **extra):
        return self.req("POST", "/api/v1/clients/%s/break-glass" % self.client["id"],
                        dict(reason=reason, **extra), headers=who.auth)

    def test_colleague_breaks_the_glass_and_supervisor_sees_it(self):
        path = "/api/v1/clients/" + self.client["id"]
        self.assertProblem(self.req("GET", path, headers=self.colleague.auth), 404)
        self.assertProblem(self.grant(self.colleague, reason="because"), 400, field="reason")
        self.assertProblem(self.grant(self.colleague, minutes=100000), 400, field="minutes")
        r = self.grant(self.colleague, minutes=30)
        self.assertEqual(r.status, 201, r.body)
        g = r.json()
        self.assertEqual((g["client_id"], g["staff_id"], g["site_id"]),
                         (self.client["id"], self.colleague.id, self.site_a))
        got = self.req("GET", path, headers=self.colleague.auth)
        self.assertEqual(got.status, 200, got.body)
        self.assertEqual(got.json(), self.client)
        # The grant and the read through it are on record with the reason.
        rows = self.psql("SELECT action, purpose FROM audit.events WHERE actor_staff_id = '%s' "
                         "AND client_id = '%s' AND outcome = 'ok' ORDER BY at"
                         % (self.colleague.id, self.client["id"])).split("\n")
        self.assertEqual(rows[:2], ["break_glass|covering for a colleague: client in crisis",
                                    "read|break_glass"])
        # Supervisors of the client's site see it; those of another do not.
        seen = self.req("GET", "/api/v1/break-glass", headers=self.sup_a.auth).json()["grants"]
        self.assertIn(g["id"], [x["id"] for x in seen])
        seen = self.req("GET", "/api/v1/break-glass", headers=self.sup_b.auth).json()["grants"]
        self.assertNotIn(g["id"], [x["id"] for x in seen])
        # Expired: the access ends with it.
        self.psql("ALTER TABLE intake.break_glass NO FORCE ROW LEVEL SECURITY; "
                  "UPDATE intake.break_glass SET granted_at = now() - interval '2 hours', "
                  "expires_at = now() - interval '1 hour' WHERE id = '%s'; "
                  "ALTER TABLE intake.break_glass FORCE ROW LEVEL SECURITY" % g["id"])
        self.assertProblem(self.req("GET", path, headers=self.colleague.auth), 404)

    def test_break_glass_to_unknown_client_is_404_and_audited(self):
        missing = str(uuid.uuid4())
        r = self.req("POST", "/api/v1/clients/%s/break-glass" % missing,
                     {"reason": "client in crisis at the desk"}, headers=self.sup_b.auth)
        self.assertProblem(r, 404)
        rows = self.psql("SELECT outcome FROM audit.events WHERE request_id = '%s'"
                         % r.header("X-Request-Id")).split()
        self.assertEqual(rows, ["denied"])

    def test_in_scope_needs_no_glass(self):
        self.assertProblem(self.grant(self.peer), 422)


class RevocationTests(StackTestCase):
    """The gateway caches sessions; a revocation must still bite at once."""
    settings = {"allow_bootstrap": True, "session_cache_ttl_ms": 60000}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.path = "/api/v1/sites"

    def fresh_peer(self):
        peer = self.org.add_staff(["peer_specialist"])
        for _ in range(3):  # cached after the first
            self.assertEqual(self.req("GET", self.path, headers=peer.auth).status, 200)
        return peer

    def test_logout_is_immediate(self):
        peer = self.fresh_peer()
        r = self.req("DELETE", "/api/v1/sessions/current", headers=peer.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.req("GET", self.path, headers=peer.auth), 401)

    def test_disable_is_immediate(self):
        peer = self.fresh_peer()
        r = self.req("POST", "/api/v1/staff/%s/disable" % peer.id, {"reason": "left"},
                     headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.req("GET", self.path, headers=peer.auth), 401)

    def test_role_change_is_immediate(self):
        peer = self.fresh_peer()
        r = self.req("PATCH", "/api/v1/staff/" + peer.id,
                     {"set_roles": True, "roles": ["analyst"]}, headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.req("GET", self.path, headers=peer.auth), 403)

    def test_revoked_api_key_is_refused_at_once(self):
        r = self.req("POST", "/api/v1/api-keys", {"name": "x", "role": "analyst",
                                                  "site_ids": [self.org.site_id]},
                     headers=self.org.admin.auth)
        self.assertEqual(r.status, 201, r.body)
        key, kid = r.json()["token"], r.json()["api_key"]["id"]
        auth = {"Authorization": "Bearer " + key}
        for _ in range(2):
            self.assertProblem(self.req("GET", self.path, headers=auth), 403)  # known, not allowed
        r = self.req("POST", "/api/v1/api-keys/%s/revoke" % kid, {}, headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.req("GET", self.path, headers=auth), 401)

    def test_cached_session_still_expires_on_time(self):
        peer = self.org.add_staff(["peer_specialist"])
        self.psql("UPDATE identity.sessions SET absolute_expires_at = now() + interval '2 seconds',"
                  " idle_expires_at = now() + interval '2 seconds' WHERE staff_id = '%s'" % peer.id)
        self.assertEqual(self.req("GET", self.path, headers=peer.auth).status, 200)  # cached
        time.sleep(2.5)
        self.assertProblem(self.req("GET", self.path, headers=peer.auth), 401)

    def test_revocation_from_elsewhere_arrives_by_notification(self):
        # As another gateway (or an administrator's script) would: revoke in
        # the database and notify; this gateway must stop serving the cached
        # session well within the cache's 60 s.
        peer = self.fresh_peer()
        sid = self.psql("SELECT id FROM identity.sessions WHERE staff_id = '%s' "
                        "AND revoked_at IS NULL" % peer.id).strip()
        self.psql("BEGIN; UPDATE identity.sessions SET revoked_at = now() WHERE id = '%s'; "
                  "SELECT pg_notify('beacon_identity', 'session:%s'); COMMIT" % (sid, sid))
        deadline = time.monotonic() + 2 * SCALE
        while time.monotonic() < deadline:
            status = self.req("GET", self.path, headers=peer.auth).status
            if status == 401:
                break
            time.sleep(0.05)
        self.assertEqual(status, 401)


class PasswordTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()

    def login(self, staff, password):
        return self.req("POST", "/api/v1/sessions",
                        {"email": staff.email, "password": password})

    def test_change_own_password_ends_other_sessions(self):
        peer = self.org.add_staff(["peer_specialist"])
        other = self.login(peer, peer.password).json()["token"]
        new = "a brand new passphrase 7"
        r = self.req("POST", "/api/v1/me/password",
                     {"current_password": "wrong wrong wrong", "new_password": new},
                     headers=peer.auth)
        self.assertProblem(r, 403, field="current_password")
        r = self.req("POST", "/api/v1/me/password",
                     {"current_password": peer.password, "new_password": "short"},
                     headers=peer.auth)
        self.assertProblem(r, 400, field="new_password")
        r = self.req("POST", "/api/v1/me/password",
                     {"current_password": peer.password, "new_password": new},
                     headers=peer.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["other_sessions_revoked"], 1)
        self.assertEqual(self.req("GET", "/api/v1/sites", headers=peer.auth).status, 200)
        self.assertProblem(self.req("GET", "/api/v1/sites",
                                    headers={"Authorization": "Bearer " + other}), 401)
        self.assertProblem(self.login(peer, peer.password), 401)
        self.assertEqual(self.login(peer, new).status, 201)
        rows = self.psql("SELECT outcome FROM audit.events WHERE action = 'password_change' "
                         "AND resource_id = '%s' ORDER BY at" % peer.id).split()
        self.assertEqual(rows, ["denied", "ok"])

    def test_admin_reset_ends_every_session(self):
        peer = self.org.add_staff(["peer_specialist"])
        new = "reset by the administrator 9"
        r = self.req("POST", "/api/v1/staff/%s/password" % peer.id, {"new_password": new},
                     headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn("password", json.dumps(r.json()))
        self.assertProblem(self.req("GET", "/api/v1/sites", headers=peer.auth), 401)
        self.assertProblem(self.login(peer, peer.password), 401)
        self.assertEqual(self.login(peer, new).status, 201)
        # Not one's own: that is a change, with the current password.
        r = self.req("POST", "/api/v1/staff/%s/password" % self.org.admin.id,
                     {"new_password": new}, headers=self.org.admin.auth)
        self.assertProblem(r, 422)


class HostileInputTests(StackTestCase):
    sign_in = "peer_specialist"

    def test_sql_metacharacters_are_data(self):
        nasty = "O'Brien\"; DROP TABLE intake.clients; --"
        _, made = self.create_client(family_name=nasty, preferred_name="x' OR '1'='1")
        got = self.req("GET", "/api/v1/clients/" + made["id"])
        self.assertEqual(got.status, 200, got.body)
        self.assertEqual(got.json()["family_name"], nasty)
        for bad in ("1' OR '1'='1", "00000000-0000-0000-0000-000000000000' --", "' OR 1=1"):
            r = self.req("GET", "/api/v1/clients/" + urllib.parse.quote(bad))
            self.assertIn(r.status, (400, 404), r.body)
        r = self.req("POST", "/api/v1/sessions", {"email": "' OR 1=1 --", "password": "x' OR '1"},
                     auth=False)
        self.assertProblem(r, 401)

    def test_oversized_headers_are_refused_and_the_gateway_survives(self):
        for headers in ({"X-Padding": "a" * 70000},
                        {"Authorization": "Bearer bst_" + "a" * 5000}):
            try:
                r = self.req("GET", "/api/v1/sites", headers=headers)
            except (ConnectionError, OSError):
                continue  # the connection closed: also a refusal
            self.assertGreaterEqual(r.status, 400, r.body)
            self.assertLess(r.status, 500, r.body)
        self.assertHealthy()

    def test_token_shapes(self):
        for value in ("Bearer", "Bearer ", "bearer bak_" + "x" * 40, "Token abc",
                      "Bearer bst_' OR '1'='1"):
            r = self.req("GET", "/api/v1/sites", headers={"Authorization": value})
            self.assertProblem(r, 401)


class AuditTamperTests(StackTestCase):
    """After real traffic the verifier finds the log intact; an edited, a
    deleted and a reordered row are each reported as the first broken link
    of their chain."""
    sign_in = "peer_specialist"

    def verify(self):
        return run_binary("audit-verify", env_extra={
            "BEACON_DATABASE_URL": self.stack.database_url, "BEACON_LOG_LEVEL": "error"},
            timeout=60)

    def tamper(self, sql):
        self.psql("ALTER TABLE audit.events DISABLE TRIGGER events_append_only; %s; "
                  "ALTER TABLE audit.events ENABLE TRIGGER events_append_only" % sql)

    def traffic(self):
        ids = [self.create_client()[1]["id"] for _ in range(3)]
        for cid in ids:
            self.assertEqual(self.req("GET", "/api/v1/clients/" + cid).status, 200)
        return ids

    def test_intact_then_each_tampering_detected(self):
        ids = self.traffic()
        ok = self.verify()
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        # Pick a chain with at least three rows (an intake worker's or the
        # read writer's) and tamper with its second row in three ways.
        chain = self.psql("SELECT chain FROM audit.events WHERE client_id = '%s' "
                          "ORDER BY seq DESC LIMIT 1" % ids[0]).strip()
        n = int(self.psql("SELECT max(seq) FROM audit.events WHERE chain = '%s'" % chain))
        self.assertGreaterEqual(n, 2)
        where = "chain = '%s' AND seq = %d" % (chain, n - 1)

        self.tamper("UPDATE audit.events SET purpose = 'payment' WHERE " + where)
        bad = self.verify()
        self.assertNotEqual(bad.returncode, 0, bad.stdout)
        self.assertIn(chain, bad.stdout + bad.stderr)
        self.tamper("UPDATE audit.events SET purpose = 'treatment' WHERE " + where)
        self.assertEqual(self.verify().returncode, 0)

        # Reorder: the two rows swap places (seq values).
        swap = ("UPDATE audit.events SET seq = {t} WHERE chain = '{c}' AND seq = {a}; "
                "UPDATE audit.events SET seq = {a} WHERE chain = '{c}' AND seq = {b}; "
                "UPDATE audit.events SET seq = {b} WHERE chain = '{c}' AND seq = {t}").format(
                    t=n + 1000, c=chain, a=n - 1, b=n)
        self.tamper(swap)
        bad = self.verify()
        self.assertNotEqual(bad.returncode, 0, bad.stdout)
        self.tamper(swap)
        self.assertEqual(self.verify().returncode, 0)

        self.tamper("DELETE FROM audit.events WHERE " + where)
        bad = self.verify()
        self.assertNotEqual(bad.returncode, 0, bad.stdout)
        self.assertIn(chain, bad.stdout + bad.stderr)
