"""Reporting: regions through the API.

An agency admin creates a region (their agency owns it and is its first
member), invites another agency, whose admin joins it; only then does that
agency count in the region's dashboard and see it. Non-owners change only
their own membership; other roles are refused; every change is audited.
"""

import datetime
import time
import uuid

from harness import StackTestCase, launch


def other_agency(stack, admin):
    """A second agency with one site and an agency_admin, written straight
    into identity's tables (the API creates one agency per deployment); the
    admin reuses admin's password and enrols TOTP at first sign-in."""
    agency, site, staff = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    email = "admin-%s@other.beacon.test" % staff[:8]
    launch.psql(stack.database_url, ";\n".join([
        "BEGIN",
        "INSERT INTO identity.agencies (id, name) VALUES ('%s', 'Region Agency %s')"
        % (agency, agency[:8]),
        "INSERT INTO identity.sites (id, agency_id, name, time_zone) "
        "VALUES ('%s', '%s', 'Region Site', 'UTC')" % (site, agency),
        "INSERT INTO identity.staff (id, agency_id, given_name, family_name, email, "
        "password_hash) SELECT '%s', '%s', 'Olga', 'Other', '%s', password_hash "
        "FROM identity.staff WHERE id = '%s'" % (staff, agency, email, admin.id),
        "INSERT INTO identity.staff_roles VALUES ('%s', 'agency_admin')" % staff,
        "INSERT INTO identity.staff_sites VALUES ('%s', '%s', '%s')" % (staff, site, agency),
        "COMMIT"]) + ";")
    org = launch.Org(stack)
    org.site_id = site
    org.admin = org._sign_in_new(staff, email, admin.password, ["agency_admin"], [site])
    return agency, org


def enrol_someone(stack, org):
    """A client of org's site enrolled yesterday: activity in its rollups."""
    peer = org.add_staff(["peer_specialist"], [org.site_id])
    r = stack.request("POST", "/api/v1/clients", headers=peer.auth, body={
        "given_name": "Robin", "family_name": "G-" + uuid.uuid4().hex[:8],
        "date_of_birth": "1984-06-15"})
    assert r.status == 201, r.body
    day = (datetime.datetime.now(datetime.timezone.utc).date()
           - datetime.timedelta(days=1)).isoformat()
    r = stack.request("POST", "/api/v1/clients/%s/enrollments" % r.json()["id"],
                      headers=peer.auth,
                      body={"program": "Peer recovery", "pathway": "brief", "started_on": day})
    assert r.status == 201, r.body


class RegionTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.analyst = cls.org.add_staff(["analyst"], [cls.org.site_id])
        cls.supervisor = cls.org.add_staff(["supervisor"], [cls.org.site_id])
        cls.agency = launch.psql(cls.stack.database_url,
                                 "SELECT agency_id FROM identity.sites WHERE id = '%s'"
                                 % cls.org.site_id).strip()
        cls.agency_b, org_b = other_agency(cls.stack, cls.org.admin)
        cls.admin_b = org_b.admin
        enrol_someone(cls.stack, cls.org)
        enrol_someone(cls.stack, org_b)

    def req(self, who, method, path, body=None):
        return self.stack.request(method, path, body=body, headers=who.auth)

    def put(self, who, region, ids):
        return self.req(who, "PUT", "/api/v1/regions/%s/agencies" % region, {"agency_ids": ids})

    def dashboard(self, who, region):
        return self.req(who, "GET", "/api/v1/dashboards/region/%s?grain=month" % region)

    def agencies(self, who, region, want):
        """The agencies of the region's dashboard, once the consumer has
        applied the enrolments."""
        deadline = time.monotonic() + 20
        while True:
            r = self.dashboard(who, region)
            self.assertEqual(r.status, 200, r.body[:300])
            t = next(t for t in r.json()["tables"] if t["name"] == "agencies")
            keys = [x["key"] for x in t["rows"]]
            if keys == want or time.monotonic() > deadline:
                return keys
            time.sleep(0.2)

    def test_1_create_invite_join_leave(self):
        a, b = self.agency, self.agency_b
        name = "North %s" % uuid.uuid4().hex[:6]
        for who in (self.supervisor, self.analyst):
            self.assertProblem(self.req(who, "POST", "/api/v1/regions", {"name": name}), 403)
        for bad in ("", " ", "x" * 201):
            self.assertProblem(self.req(self.org.admin, "POST", "/api/v1/regions",
                                        {"name": bad}), 400, "name")
        self.assertProblem(self.req(self.org.admin, "POST", "/api/v1/regions",
                                    {"name": name, "agency_ids": [b]}), 400)
        r = self.req(self.org.admin, "POST", "/api/v1/regions", {"name": name})
        self.assertEqual(r.status, 201, r.body[:300])
        region = r.json()
        rid = region["id"]
        self.assertEqual((region["name"], region["owner_agency_id"], region["agency_ids"]),
                         (name, a, [a]))
        self.assertEqual(region.get("invited_agency_ids", []), [])
        self.assertProblem(self.req(self.org.admin, "POST", "/api/v1/regions", {"name": name}),
                           409, "name")
        # Agency B neither sees nor may touch it before it is invited.
        listed = self.req(self.admin_b, "GET", "/api/v1/regions").json().get("regions", [])
        self.assertNotIn(rid, [x["id"] for x in listed])
        self.assertProblem(self.put(self.admin_b, rid, [a, b]), 404, "region_id")
        self.assertProblem(self.dashboard(self.admin_b, rid), 404)
        # Bad lists.
        self.assertProblem(self.put(self.org.admin, rid, [a, "nope"]), 400, "agency_ids")
        self.assertProblem(self.put(self.org.admin, rid, [a, str(uuid.uuid4())]), 400,
                           "agency_ids")
        self.assertProblem(self.put(self.org.admin, rid, [b]), 422, "agency_ids")
        for bad in ("nope", str(uuid.uuid4())):
            self.assertProblem(self.put(self.org.admin, bad, [a]), 404, "region_id")
        # Invited: listed for B, not yet a member.
        r = self.put(self.org.admin, rid, [a, b])
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual((r.json()["agency_ids"], r.json()["invited_agency_ids"]), ([a], [b]))
        listed = self.req(self.admin_b, "GET", "/api/v1/regions").json()["regions"]
        self.assertEqual([x["invited_agency_ids"] for x in listed if x["id"] == rid], [[b]])
        self.assertEqual(self.agencies(self.analyst, rid, [a, "total"]), [a, "total"])
        self.assertProblem(self.dashboard(self.admin_b, rid), 404)
        # B may not remove A; B joins.
        self.assertProblem(self.put(self.admin_b, rid, [b]), 403, "agency_ids")
        r = self.put(self.admin_b, rid, [a, b])
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(sorted(r.json()["agency_ids"]), sorted([a, b]))
        self.assertEqual(r.json().get("invited_agency_ids", []), [])
        both = sorted([a, b]) + ["total"]
        self.assertEqual(self.agencies(self.analyst, rid, both), both)
        self.assertEqual(self.dashboard(self.admin_b, rid).status, 200)
        # B leaves: out of the dashboard again.
        r = self.put(self.admin_b, rid, [a])
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(r.json()["agency_ids"], [a])
        self.assertProblem(self.dashboard(self.admin_b, rid), 404)
        self.assertEqual(self.agencies(self.analyst, rid, [a, "total"]), [a, "total"])
        self.assertProblem(self.put(self.admin_b, rid, [a, b]), 404, "region_id")
        # The owner's list.
        listed = self.req(self.org.admin, "GET", "/api/v1/regions").json()["regions"]
        self.assertEqual([(x["name"], x["agency_ids"]) for x in listed if x["id"] == rid],
                         [(name, [a])])
        # Audited: the creation and each change.
        rows = launch.psql(self.stack.database_url, (
            "SELECT action FROM audit.events WHERE resource_type = 'region' "
            "AND resource_id = '%s' ORDER BY at, seq") % rid).split()
        self.assertEqual(rows, ["create", "update", "update", "update"])
