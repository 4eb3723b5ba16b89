"""The iCalendar export of a specialist's schedule
(GET /api/v1/staff/{staff_id}/calendar.ics) through the real HTTPS gateway:
a text/calendar download with CRLF lines, one VEVENT per meeting in the
window with UTC times (wall-clock bookings across New York's November
change included), statuses mapped (proposed TENTATIVE, cancelled CANCELLED,
no-shows and records entered in error left out), clients named by initials
only, one audit record per client exported, who may fetch whose feed, the
default and bounded window, and errors still problem+json."""

import uuid

from harness import StackTestCase, launch, new_client

FEED = "/api/v1/staff/%s/calendar.ics"
WINDOW = "?from=2026-10-25&to=2026-11-10"   # New York dates


def unfold(body):
    """Content lines of an iCalendar body (folding undone)."""
    return body.decode("utf-8").replace("\r\n ", "").split("\r\n")[:-1]


def events(body):
    """{UID: {NAME: value}} of the VEVENTs."""
    out, cur = {}, None
    for line in unfold(body):
        if line == "BEGIN:VEVENT":
            cur = {}
        elif line == "END:VEVENT":
            out[cur["UID"]] = cur
            cur = None
        elif cur is not None:
            name, _, value = line.partition(":")
            cur[name] = value
    return out


class CalendarFeedTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        org = cls.org = launch.Org(cls.stack).bootstrap(time_zone="America/New_York")
        cls.peer = org.add_staff(["peer_specialist"])
        cls.peer2 = org.add_staff(["peer_specialist"])
        cls.sup = org.add_staff(["supervisor"])
        cls.far_site = org.add_site(time_zone="America/Los_Angeles")
        cls.far_sup = org.add_staff(["supervisor"], site_ids=[cls.far_site])
        req = cls.stack.request
        suffix = uuid.uuid4().hex[:8]
        cls.names = {"jordan": ("Jordan", "Dawson" + suffix, None),
                     "lee": ("Avery", "Morgan" + suffix, "Lee")}
        cls.clients = {}
        for key, (given, family, preferred) in cls.names.items():
            body = new_client(given_name=given, family_name=family, allow_duplicate=True)
            if preferred:
                body["preferred_name"] = preferred
            r = req("POST", "/api/v1/clients", body=body, headers=cls.peer.auth)
            assert r.status == 201, r.body
            cls.clients[key] = r.json()["id"]
        r = req("POST", "/api/v1/locations", headers=cls.sup.auth, body={
            "site_id": org.site_id, "name": "Harbor Room " + suffix, "kind": "office_room"})
        assert r.status == 201, r.body
        cls.room = r.json()

        def book(client, change=None, reason=None, **body):
            """Books for the peer, then changes the status when told to."""
            body.update(client_id=cls.clients[client])
            body.setdefault("mode", "in_person")
            body.setdefault("purpose", "talk about the relapse at home")
            r = req("POST", "/api/v1/appointments", body=body, headers=cls.peer.auth)
            assert r.status == 201, r.body
            a = r.json()
            if change:
                r = req("POST", "/api/v1/appointments/%s/status" % a["id"],
                        body=dict({"status": change}, **({"reason": reason} if reason else {})),
                        headers=cls.peer.auth)
                assert r.status == 200, r.body
                a = r.json()
            return a

        cls.appt = {
            # 01:30 EDT to 02:30 EST: the hour repeats, so two hours long.
            "dst": book("jordan", start_local="2026-11-01T01:30", end_local="2026-11-01T02:30",
                        mode="telephone", location_id=cls.room["id"]),
            "edt": book("jordan", start_local="2026-10-30T10:00", end_local="2026-10-30T11:00"),
            "est": book("lee", start_local="2026-11-03T10:00", end_local="2026-11-03T11:00",
                        mode="telehealth_video"),
            "proposed": book("lee", start="2026-11-04T15:00:00Z", end="2026-11-04T16:00:00Z",
                             mode="community", status="proposed"),
            "checked_in": book("jordan", start="2026-11-05T15:00:00Z",
                               end="2026-11-05T16:00:00Z", change="checked_in"),
            "cancelled": book("jordan", start="2026-11-06T15:00:00Z", end="2026-11-06T16:00:00Z",
                              change="cancelled", reason="client asked to move it"),
            "error": book("jordan", start="2026-11-07T15:00:00Z", end="2026-11-07T16:00:00Z",
                          change="entered_in_error", reason="booked for the wrong client"),
            "noshow": book("lee", start="2026-11-08T15:00:00Z", end="2026-11-08T16:00:00Z",
                           change="noshow"),
            "later": book("jordan", start="2026-11-20T15:00:00Z", end="2026-11-20T16:00:00Z"),
            "next_year": book("lee", start="2027-01-15T15:00:00Z", end="2027-01-15T16:00:00Z"),
            "long_ago": book("lee", start="2026-09-01T15:00:00Z", end="2026-09-01T16:00:00Z"),
        }

    def feed(self, who, staff="me", query=WINDOW, **kw):
        return self.req("GET", FEED % staff + query, headers=who.auth if who else {}, **kw)

    def uid(self, key):
        return self.appt[key]["id"] + "@beacon"

    def test_feed_is_a_calendar_download(self):
        r = self.feed(self.peer)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("Content-Type"), "text/calendar; charset=utf-8")
        self.assertEqual(r.header("Content-Disposition"),
                         'attachment; filename="beacon-schedule-20261025-20261110.ics"')
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        self.assertTrue(r.header("Strict-Transport-Security"))
        self.assertRequestId(r)
        self.assertIsNone(r.header("ETag"))
        body = r.body
        self.assertTrue(body.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"), body[:80])
        self.assertTrue(body.endswith(b"\r\nEND:VCALENDAR\r\n"), body[-80:])
        self.assertEqual(body.count(b"\n"), body.count(b"\r\n"), "bare LF in the feed")
        lines = unfold(body)
        self.assertIn("X-WR-CALNAME:Beacon schedule", lines)
        self.assertEqual(lines.count("BEGIN:VEVENT"), lines.count("END:VEVENT"))

    def test_one_event_per_meeting_with_utc_times_and_statuses(self):
        got = events(self.feed(self.peer).body)
        want = {self.uid(k) for k in ("dst", "edt", "est", "proposed", "checked_in",
                                      "cancelled")}
        self.assertEqual(set(got), want)
        times = {k: (got[self.uid(k)]["DTSTART"], got[self.uid(k)]["DTEND"])
                 for k in ("dst", "edt", "est")}
        self.assertEqual(times, {"dst": ("20261101T053000Z", "20261101T073000Z"),
                                 "edt": ("20261030T140000Z", "20261030T150000Z"),
                                 "est": ("20261103T150000Z", "20261103T160000Z")})
        status = {k: got[self.uid(k)]["STATUS"] for k in ("dst", "proposed", "checked_in",
                                                             "cancelled")}
        self.assertEqual(status, {"dst": "CONFIRMED", "proposed": "TENTATIVE",
                                  "checked_in": "CONFIRMED", "cancelled": "CANCELLED"})
        self.assertEqual(got[self.uid("dst")]["SEQUENCE"], "0")
        self.assertEqual(got[self.uid("cancelled")]["SEQUENCE"], "1")
        self.assertEqual(got[self.uid("dst")]["LOCATION"], self.room["name"])
        self.assertNotIn("LOCATION", got[self.uid("edt")])
        self.assertRegex(got[self.uid("dst")]["DTSTAMP"], r"^\d{8}T\d{6}Z$")

    def test_summary_names_the_client_by_initials_only(self):
        body = self.feed(self.peer).body
        got = events(body)
        self.assertEqual(got[self.uid("dst")]["SUMMARY"], "Meeting with J.D. (telephone)")
        self.assertEqual(got[self.uid("est")]["SUMMARY"], "Meeting with L.M. (video)")
        text = body.decode("utf-8")
        for given, family, preferred in self.names.values():
            for name in filter(None, (given, family, preferred)):
                self.assertNotIn(name, text)
        self.assertNotIn("relapse", text)
        self.assertNotIn("wrong client", text)
        self.assertNotIn("DESCRIPTION", text)

    def test_export_is_audited_once_per_client(self):
        r = self.feed(self.peer)
        self.assertEqual(r.status, 200, r.body)
        rows = self.psql("SELECT client_id, action, resource_type, resource_id, purpose, "
                         "outcome, detail::json->>'appointments' FROM audit.events "
                         "WHERE request_id = '%s' ORDER BY client_id"
                         % r.header("X-Request-Id")).split()
        want = sorted(["%s|export|calendar|%s|treatment|ok|%d" % (self.clients["jordan"],
                                                                   self.peer.id, 4),
                       "%s|export|calendar|%s|treatment|ok|%d" % (self.clients["lee"],
                                                                   self.peer.id, 2)])
        self.assertEqual(rows, want)

    def test_default_window_is_thirty_days_back_to_half_a_year_ahead(self):
        r = self.feed(self.peer, query="")
        self.assertEqual(r.status, 200, r.body)
        got = set(events(r.body))
        self.assertIn(self.uid("later"), got)
        self.assertIn(self.uid("next_year"), got)
        self.assertNotIn(self.uid("long_ago"), got)
        # A from alone runs the default window's length after it.
        r = self.feed(self.peer, query="?from=2026-08-30")
        self.assertEqual(r.status, 200, r.body)
        got = set(events(r.body))
        self.assertIn(self.uid("long_ago"), got)
        self.assertIn(self.uid("next_year"), got)

    def test_who_may_fetch_whose_feed(self):
        mine = set(events(self.feed(self.peer).body))
        # Another specialist: not someone else's feed; their own is empty.
        self.assertProblem(self.feed(self.peer2, self.peer.id), 403, field="staff_id")
        own = self.feed(self.peer2)
        self.assertEqual(own.status, 200, own.body)
        self.assertEqual(events(own.body), {})
        # A supervisor of the specialist's site: yes; of another site: no.
        r = self.feed(self.sup, self.peer.id)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(set(events(r.body)), mine)
        self.assertProblem(self.feed(self.far_sup, self.peer.id), 404, field="staff_id")
        self.assertProblem(self.feed(self.far_sup, str(uuid.uuid4())), 404, field="staff_id")
        # Outside the care team, and without a token.
        self.assertProblem(self.feed(self.org.admin), 403)
        r = self.feed(None)
        self.assertProblem(r, 401)
        self.assertTrue(r.header("WWW-Authenticate"))

    def test_bad_windows_are_problems(self):
        for query, field in (("?from=yesterday", "from"),
                             ("?from=2026-02-30", "from"),
                             ("?to=2026-13-01", "to"),
                             ("?from=2026-11-10&to=2026-11-01", "to"),
                             ("?from=2026-01-01&to=2027-03-01", "to"),
                             ("?from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
                             ("?staff_id=me", None),
                             ("?colour=blue", None)):
            with self.subTest(query=query):
                self.assertProblem(self.feed(self.peer, query=query), 400, field=field)
        self.assertProblem(self.feed(self.peer, "not-a-uuid"), 400, field="staff_id")

    def test_too_many_meetings_ask_for_a_shorter_window(self):
        staff = self.org.add_staff(["peer_specialist"])
        agency = self.psql("SELECT agency_id FROM identity.sites WHERE id = '%s'"
                           % self.org.site_id).strip()
        # 2010 half-hour meetings, one an hour from 2026-12-02, written
        # straight into the table (booking them one by one would take a
        # while) under the staff member's own scope, as row security wants.
        self.psql("SELECT set_config('beacon.staff_id', '{p}', false), "
                  "set_config('beacon.agency_id', '{a}', false), "
                  "set_config('beacon.site_ids', '{s}', false), "
                  "set_config('beacon.roles', 'peer_specialist', false); "
                  "INSERT INTO scheduling.appointments (agency_id, site_id, client_id, staff_id, "
                  "starts_at, ends_at, mode, status, created_by, updated_by) "
                  "SELECT '{a}', '{s}', '{c}', '{p}', t, t + interval '30 minutes', 'in_person', "
                  "'booked', '{p}', '{p}' FROM generate_series(timestamptz '2026-12-02 00:00Z', "
                  "timestamptz '2026-12-02 00:00Z' + interval '2009 hours', interval '1 hour') t"
                  .format(a=agency, s=self.org.site_id, c=self.clients["jordan"], p=staff.id))
        r = self.feed(staff, query="?from=2026-12-01&to=2027-04-01")
        body = self.assertProblem(r, 400, field="to")
        self.assertIn("2000", body["detail"])
        self.assertIn("shorter window", body["detail"])
        r = self.feed(staff, query="?from=2026-12-08&to=2026-12-15")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(events(r.body)), 7 * 24)
