"""Scheduling through the HTTPS API as specialists and supervisors use it:
booking one-on-one meetings (instants or the site's wall-clock time, across
both US daylight-saving changes), double bookings of a person or a room
refused with the conflict named (and a supervisor's reasoned override), time
off and working hours, the FHIR status workflow, rescheduling with history,
completion into an encounter, the day and week views, and every bad input
refused with nothing half-booked."""

import itertools
import uuid

from harness import StackTestCase, launch, new_client

# Each test books on days of its own, so tests never collide in time.
_DAYS = itertools.count(1)


def day(n=None):
    """A date in 2026-01 .. 2026-09 (the past: meetings there can be completed)."""
    n = next(_DAYS) if n is None else n
    return "2026-%02d-%02d" % (1 + n // 28, 1 + n % 28)


class SchedulingTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap(time_zone="America/New_York")
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.peer2 = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])
        cls.admin = cls.org.admin
        # Another site of the same agency, where the peers do not work.
        cls.far_site = cls.org.add_site(time_zone="America/Los_Angeles")
        cls.far_sup = cls.org.add_staff(["supervisor"], site_ids=[cls.far_site])

    def client(self, who=None):
        r = self.req("POST", "/api/v1/clients", new_client(allow_duplicate=True),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()["id"]

    def book(self, who=None, expect=201, **body):
        body.setdefault("mode", "in_person")
        r = self.req("POST", "/api/v1/appointments", body, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def at(self, date, start, end):
        return {"start": "%sT%s:00Z" % (date, start), "end": "%sT%s:00Z" % (date, end)}

    def count_for(self, client_id, who=None):
        r = self.req("GET", "/api/v1/appointments?client_id=%s&from=2025-01-01&to=2027-01-01"
                     % client_id, headers=(who or self.peer).auth)
        self.assertEqual(r.status, 200, r.body)
        return len(r.json().get("appointments", []))

    # -- booking --------------------------------------------------------------

    def test_book_read_and_list(self):
        c, d = self.client(), day()
        a = self.book(client_id=c, purpose="weekly check-in", **self.at(d, "14:00", "15:00"))
        self.assertEqual((a["client_id"], a["staff_id"], a["site_id"], a["status"], a["version"]),
                         (c, self.peer.id, self.site, "booked", 1))
        self.assertEqual((a["start"], a["end"], a["time_zone"]),
                         (d + "T14:00:00Z", d + "T15:00:00Z", "America/New_York"))
        got = self.req("GET", "/api/v1/appointments/" + a["id"], headers=self.peer.auth).json()
        self.assertEqual([h["kind"] for h in got["history"]], ["booked"])
        listed = self.req("GET", "/api/v1/appointments?staff_id=me&from=%s&view=day" % d,
                          headers=self.peer.auth).json()
        self.assertEqual([x["id"] for x in listed["appointments"]], [a["id"]])
        # The site's calendar shows it to a supervisor; another peer's own does not.
        site = self.req("GET", "/api/v1/appointments?site_id=%s&from=%s" % (self.site, d),
                        headers=self.sup.auth).json()
        self.assertIn(a["id"], [x["id"] for x in site["appointments"]])
        theirs = self.req("GET", "/api/v1/appointments?staff_id=me&from=%s" % d,
                          headers=self.peer2.auth).json()
        self.assertEqual(theirs.get("appointments", []), [])
        self.assertEqual(self.req("GET", "/api/v1/appointments/" + a["id"],
                                  headers=self.peer2.auth).status, 404)

    def test_bad_input_is_refused_and_nothing_booked(self):
        c, d = self.client(), day()
        cases = [
            (dict(self.at(d, "15:00", "14:00")), "end"),
            (dict(self.at(d, "15:00", "15:00")), "end"),
            ({"start": d + "T09:00:00Z", "end": day(200) + "T09:00:00Z"}, "end"),
            ({"start": d + "T09:00:00Z", "end": "tomorrow"}, "end"),
            ({"start": d + "T09:00", "end": d + "T10:00:00Z"}, "start"),
            ({"start": "2026-02-30T09:00:00Z", "end": "2026-02-30T10:00:00Z"}, "start"),
            ({"start_local": d + "T25:00", "end_local": d + "T26:00"}, "start_local"),
            (dict(self.at(d, "09:00", "10:00"), start_local=d + "T09:00"), "start"),
            (dict(self.at(d, "09:00", "10:00"), mode="carrier_pigeon"), "mode"),
            (dict(self.at(d, "09:00", "10:00"), status="fulfilled"), "status"),
            (dict(self.at(d, "09:00", "10:00"), purpose="x" * 501), "purpose"),
            (dict(self.at(d, "09:00", "10:00"), location_id=str(uuid.uuid4())), "location_id"),
            (dict(self.at(d, "09:00", "10:00"), staff_id="someone"), "staff_id"),
            (dict(self.at(d, "09:00", "10:00"), override_reason="because"), "override_reason"),
            (dict(self.at(d, "09:00", "10:00"), site_id=self.far_site), "site_id"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                r = self.req("POST", "/api/v1/appointments", dict(body, client_id=c),
                             headers=self.peer.auth)
                self.assertIn(r.status, (400, 403), r.body)
                self.assertEqual(r.json()["errors"][0]["field"], field, r.body)
        # A peer booking for someone else, an unknown client, and another
        # site's client (outside the caller's scope) read as refusals too.
        self.assertProblem(self.req("POST", "/api/v1/appointments",
                                    dict(self.at(d, "09:00", "10:00"), client_id=c,
                                         staff_id=self.peer2.id), headers=self.peer.auth), 403)
        self.assertProblem(self.req("POST", "/api/v1/appointments",
                                    dict(self.at(d, "09:00", "10:00"),
                                         client_id=str(uuid.uuid4())),
                                    headers=self.peer.auth), 404)
        far_client = self.client(self.far_sup)
        self.assertProblem(self.req("POST", "/api/v1/appointments",
                                    dict(self.at(d, "09:00", "10:00"), client_id=far_client),
                                    headers=self.peer.auth), 404)
        self.assertEqual(self.count_for(c), 0)

    def test_discharged_client_cannot_be_booked(self):
        c, d = self.client(), day()
        e = self.req("POST", "/api/v1/clients/%s/enrollments" % c,
                     {"program": "PRS", "pathway": "brief"}, headers=self.peer.auth).json()
        self.req("POST", "/api/v1/clients/%s/enrollments/%s/discharge" % (c, e["id"]),
                 {"reason": "moved"}, headers=self.peer.auth)
        r = self.req("POST", "/api/v1/appointments",
                     dict(self.at(d, "09:00", "10:00"), client_id=c), headers=self.peer.auth)
        self.assertProblem(r, 422, field="client_id")
        self.assertIn("discharged", r.json()["detail"])

    # -- double bookings --------------------------------------------------------

    def test_double_bookings_are_refused_naming_the_conflict(self):
        c1, c2, d = self.client(), self.client(), day()
        room = self.req("POST", "/api/v1/locations",
                        {"site_id": self.site, "name": "Room " + uuid.uuid4().hex[:6],
                         "kind": "office_room", "capacity": 4}, headers=self.sup.auth)
        self.assertEqual(room.status, 201, room.body)
        room = room.json()["id"]
        first = self.book(client_id=c1, location_id=room, **self.at(d, "14:00", "15:00"))
        # The same staff member, overlapping by a minute.
        r = self.req("POST", "/api/v1/appointments",
                     dict(self.at(d, "14:59", "15:30"), client_id=c2), headers=self.peer.auth)
        self.assertProblem(r, 409, field="override_conflicts")
        self.assertIn(first["id"], r.json()["detail"])
        self.assertIn("staff member is booked", r.json()["detail"])
        # Back to back is fine.
        self.book(client_id=c2, **self.at(d, "15:00", "15:30"))
        # The same client with another specialist, and the same room.
        r = self.req("POST", "/api/v1/appointments",
                     dict(self.at(d, "14:30", "14:45"), client_id=c1, staff_id=self.peer2.id),
                     headers=self.sup.auth)
        self.assertProblem(r, 409)
        self.assertIn("client is booked", r.json()["detail"])
        c3 = self.client(self.peer2)
        r = self.req("POST", "/api/v1/appointments",
                     dict(self.at(d, "14:30", "14:45"), client_id=c3, location_id=room),
                     headers=self.peer2.auth)
        self.assertProblem(r, 409)
        self.assertIn("room is booked", r.json()["detail"])
        # A peer cannot override; a supervisor can, with a reason, which is kept.
        self.assertProblem(self.req("POST", "/api/v1/appointments",
                                    dict(self.at(d, "14:30", "14:45"), client_id=c3,
                                         location_id=room, override_conflicts=True,
                                         override_reason="crisis drop-in"),
                                    headers=self.peer2.auth), 403)
        self.assertProblem(self.req("POST", "/api/v1/appointments",
                                    dict(self.at(d, "14:30", "14:45"), client_id=c3,
                                         staff_id=self.peer2.id, location_id=room,
                                         override_conflicts=True), headers=self.sup.auth),
                           400, field="override_reason")
        over = self.book(self.sup, client_id=c3, staff_id=self.peer2.id, location_id=room,
                         override_conflicts=True, override_reason="crisis drop-in",
                         **self.at(d, "14:30", "14:45"))
        self.assertEqual(over["override_reason"], "crisis drop-in")
        # Cancelling frees the time.
        self.req("POST", "/api/v1/appointments/%s/status" % first["id"],
                 {"status": "cancelled", "reason": "client asked"}, headers=self.peer.auth)
        self.book(client_id=self.client(), **self.at(d, "14:00", "14:30"))

    def test_time_off_and_working_hours_block_booking(self):
        d = day()
        staff = self.org.add_staff(["peer_specialist"])
        c = self.client(staff)
        r = self.req("POST", "/api/v1/staff/me/time-off",
                     {"start": d + "T00:00:00Z", "end": d + "T23:59:00Z", "kind": "leave"},
                     headers=staff.auth)
        self.assertEqual(r.status, 201, r.body)
        r = self.req("POST", "/api/v1/appointments",
                     dict(self.at(d, "14:00", "15:00"), client_id=c), headers=staff.auth)
        self.assertProblem(r, 409)
        self.assertIn("off", r.json()["detail"])
        # Hours on weekdays 09:00-17:00 New York time.
        hours = [{"weekday": w, "start": "09:00", "end": "17:00"}
                 for w in ("monday", "tuesday", "wednesday", "thursday", "friday")]
        r = self.req("PUT", "/api/v1/staff/me/working-hours",
                     {"site_id": self.site, "hours": hours}, headers=staff.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(r.json()["sites"][0]["hours"]), 5)
        # 2026-06-03 is a Wednesday: 13:00Z is 09:00 EDT, 22:00Z is 18:00 EDT.
        self.book(staff, client_id=c, start="2026-06-03T13:00:00Z", end="2026-06-03T14:00:00Z")
        r = self.req("POST", "/api/v1/appointments",
                     dict(client_id=c, start="2026-06-03T21:30:00Z",
                          end="2026-06-03T22:00:00Z", mode="in_person"), headers=staff.auth)
        self.assertProblem(r, 409)
        self.assertIn("working hours", r.json()["detail"])
        bad = self.req("PUT", "/api/v1/staff/me/working-hours",
                       {"site_id": self.site, "hours": [{"weekday": "funday", "start": "09:00",
                                                         "end": "17:00"}]}, headers=staff.auth)
        self.assertProblem(bad, 400, field="hours[0]")

    # -- time zones ---------------------------------------------------------------

    def test_wall_clock_times_across_both_us_transitions(self):
        c = self.client()
        # 2026-03-08: New York skips 02:00-03:00.
        gap = self.req("POST", "/api/v1/appointments",
                       {"client_id": c, "start_local": "2026-03-08T02:30",
                        "end_local": "2026-03-08T03:30", "mode": "telephone"},
                       headers=self.peer.auth)
        self.assertProblem(gap, 400, field="start_local")
        self.assertIn("does not exist", gap.json()["detail"])
        # 01:30 EST to 03:30 EDT is one hour.
        a = self.book(client_id=c, start_local="2026-03-08T01:30", end_local="2026-03-08T03:30")
        self.assertEqual((a["start"], a["end"], a["start_local"]),
                         ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", "2026-03-08T01:30"))
        # 2026-11-01: 01:00-02:00 happens twice; 01:30 means the first (EDT).
        b = self.book(client_id=c, start_local="2026-11-01T01:30", end_local="2026-11-01T02:30")
        self.assertEqual((b["start"], b["end"]), ("2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z"))
        # A week view spanning each change runs local midnight to local midnight.
        for monday, start, end in (("2026-03-02", "2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z"),
                                   ("2026-10-26", "2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z")):
            w = self.req("GET", "/api/v1/appointments?staff_id=me&view=week&from=" + monday,
                         headers=self.peer.auth).json()
            self.assertEqual((w["from"], w["to"]), (start, end))
        week = self.req("GET", "/api/v1/appointments?staff_id=me&view=week&from=2026-03-02",
                        headers=self.peer.auth).json()
        self.assertIn(a["id"], [x["id"] for x in week["appointments"]])

    # -- workflow ----------------------------------------------------------------

    def test_status_workflow_and_completion_records_an_encounter(self):
        c, d = self.client(), day()
        a = self.book(client_id=c, mode="telehealth_video", **self.at(d, "14:00", "15:00"))
        path = "/api/v1/appointments/" + a["id"]
        self.assertProblem(self.req("POST", path + "/status", {"status": "fulfilled"},
                                    headers=self.peer.auth), 400, field="status")
        self.assertProblem(self.req("POST", path + "/status", {"status": "cancelled"},
                                    headers=self.peer.auth), 400, field="reason")
        r = self.req("POST", path + "/status", {"status": "arrived"}, headers=self.peer.auth)
        self.assertEqual((r.status, r.json()["status"], r.json()["version"]), (200, "arrived", 2))
        self.assertProblem(self.req("POST", path + "/status", {"status": "booked"},
                                    headers=self.peer.auth), 422)
        e = self.req("POST", path + "/complete",
                     {"actual_start": d + "T14:05:00Z", "actual_end": d + "T14:50:00Z"},
                     headers=self.peer.auth)
        self.assertEqual(e.status, 201, e.body)
        e = e.json()
        self.assertEqual((e["minutes"], e["mode"], e["place_of_service"], e["client_id"],
                          e["appointment_id"]), (45, "telehealth_video", "02", c, a["id"]))
        self.assertFalse(e.get("is_group", False))
        got = self.req("GET", path, headers=self.peer.auth).json()
        self.assertEqual((got["status"], got["encounter_id"]), ("fulfilled", e["id"]))
        self.assertEqual([h["to_status"] for h in got["history"]], ["booked", "arrived",
                                                                      "fulfilled"])
        self.assertProblem(self.req("POST", path + "/complete", {}, headers=self.peer.auth), 422)
        enc = self.req("GET", "/api/v1/encounters?client_id=" + c, headers=self.peer.auth).json()
        self.assertEqual([x["id"] for x in enc["encounters"]], [e["id"]])
        # A meeting that has not happened yet cannot be completed or marked a no-show.
        future = self.book(client_id=c, start="2030-01-07T15:00:00Z", end="2030-01-07T16:00:00Z")
        fpath = "/api/v1/appointments/" + future["id"]
        self.assertProblem(self.req("POST", fpath + "/complete", {}, headers=self.peer.auth), 422)
        self.assertProblem(self.req("POST", fpath + "/status", {"status": "noshow"},
                                    headers=self.peer.auth), 422)

    def test_no_show_history(self):
        c = self.client()
        ids = []
        for _ in range(2):
            a = self.book(client_id=c, **self.at(day(), "16:00", "16:30"))
            r = self.req("POST", "/api/v1/appointments/%s/status" % a["id"],
                         {"status": "noshow"}, headers=self.peer.auth)
            self.assertEqual(r.status, 200, r.body)
            ids.append(a["id"])
        self.book(client_id=c, **self.at(day(), "16:00", "16:30"))
        r = self.req("GET", "/api/v1/appointments?client_id=%s&status=noshow&from=2025-01-01"
                     "&to=2026-12-31" % c, headers=self.peer.auth).json()
        self.assertEqual(sorted(x["id"] for x in r["appointments"]), sorted(ids))

    def test_reschedule_keeps_history_and_checks_conflicts(self):
        c1, c2, d = self.client(), self.client(), day()
        a = self.book(client_id=c1, **self.at(d, "13:00", "14:00"))
        b = self.book(client_id=c2, **self.at(d, "15:00", "16:00"))
        path = "/api/v1/appointments/%s/reschedule" % a["id"]
        clash = self.req("POST", path, dict(self.at(d, "15:30", "16:30"), reason="later"),
                         headers=self.peer.auth)
        self.assertProblem(clash, 409)
        self.assertIn(b["id"], clash.json()["detail"])
        # Moving within its own old time is not a conflict with itself.
        r = self.req("POST", path, dict(self.at(d, "13:30", "14:30"), reason="bus late"),
                     headers=dict(self.peer.auth, **{"If-Match": '"1"'}))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json()["start"], r.json()["version"]), (d + "T13:30:00Z", 2))
        stale = self.req("POST", path, dict(self.at(d, "17:00", "18:00"), reason="again"),
                         headers=dict(self.peer.auth, **{"If-Match": '"1"'}))
        self.assertProblem(stale, 412)
        hist = self.req("GET", "/api/v1/appointments/" + a["id"], headers=self.peer.auth).json()
        moved = hist["history"][-1]
        self.assertEqual((moved["kind"], moved["from_start"], moved["to_start"], moved["reason"]),
                         ("rescheduled", d + "T13:00:00Z", d + "T13:30:00Z", "bus late"))

    def test_roles_outside_the_care_team_see_nothing(self):
        r = self.req("GET", "/api/v1/appointments?staff_id=me", headers=self.admin.auth)
        self.assertProblem(r, 403)
