"""Group sessions through the HTTPS API: recurring series laid out in the
site's local time (weekly and monthly rules, both US daylight-saving
changes), editing one occurrence or the whole series, rosters with
capacity, attendance per occurrence for clients on the roster only,
completion into an encounter per attending client, double bookings with
one-on-one meetings in both directions, and bad rules refused with nothing
created."""

import datetime
import time
import uuid

from harness import StackTestCase, launch, new_client


class GroupSessionTests(StackTestCase):
    settings = {"allow_bootstrap": True}
    process_settings = {"scheduling": {"reminder_scan_seconds": 1}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap(time_zone="America/New_York")
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.peer2 = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])

    def client(self, who=None):
        r = self.req("POST", "/api/v1/clients", new_client(allow_duplicate=True),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()["id"]

    def group(self, who=None, expect=201, **body):
        body.setdefault("topic", "relapse_prevention")
        body.setdefault("capacity", 12)
        body.setdefault("minutes", 90)
        body.setdefault("site_id", self.site)
        r = self.req("POST", "/api/v1/group-sessions", body, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def occurrences(self, group_id, who=None, frm="2026-01-01", to="2026-03-31"):
        r = self.req("GET", "/api/v1/group-occurrences?group_id=%s&from=%s&to=%s"
                     % (group_id, frm, to), headers=(who or self.peer).auth)
        self.assertEqual(r.status, 200, r.body)
        return r.json().get("occurrences", [])

    def enroll(self, group_id, client_id, who=None, expect=201):
        r = self.req("POST", "/api/v1/group-sessions/%s/roster" % group_id,
                     {"client_id": client_id}, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def if_match(self, who, version):
        return dict(who.auth, **{"If-Match": '"%d"' % version})

    # -- laying out ------------------------------------------------------------

    def test_weekly_series_keeps_local_time_across_both_dst_changes(self):
        # Monday 18:00 in New York: 22:00Z in EDT, 23:00Z after 2026-11-01.
        g = self.group(start_time="18:00", rule={"freq": "weekly", "by_day": ["MO"],
                                                 "start_date": "2026-10-19", "count": 4})
        self.assertEqual(g["rule"]["rrule"], "FREQ=WEEKLY;BYDAY=MO;COUNT=4")
        self.assertEqual((g["time_zone"], g["start_time"], g["facilitator_ids"]),
                         ("America/New_York", "18:00", [self.peer.id]))
        occ = self.occurrences(g["id"], frm="2026-10-01", to="2026-11-30")
        self.assertEqual([(o["date"], o["start"], o["end"], o["start_local"]) for o in occ], [
            ("2026-10-19", "2026-10-19T22:00:00Z", "2026-10-19T23:30:00Z", "2026-10-19T18:00"),
            ("2026-10-26", "2026-10-26T22:00:00Z", "2026-10-26T23:30:00Z", "2026-10-26T18:00"),
            ("2026-11-02", "2026-11-02T23:00:00Z", "2026-11-03T00:30:00Z", "2026-11-02T18:00"),
            ("2026-11-09", "2026-11-09T23:00:00Z", "2026-11-10T00:30:00Z", "2026-11-09T18:00"),
        ])
        # The repeated hour when daylight saving ends (01:30 happens twice
        # on 2026-11-01) means the first; the skipped hour when it starts
        # (02:30 on 2027-03-14 does not exist) moves forward by the gap.
        fall = self.group(start_time="01:30", minutes=60,
                          rule={"freq": "weekly", "start_date": "2026-10-25", "count": 3})
        self.assertEqual([o["start"] for o in self.occurrences(fall["id"], frm="2026-10-20",
                                                               to="2026-11-20")],
                         ["2026-10-25T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-08T06:30:00Z"])
        # The facilitator's calendar file carries each meeting in UTC.
        ics = self.req("GET", "/api/v1/staff/me/calendar.ics?from=2026-10-01&to=2026-12-01",
                       headers=self.peer.auth)
        self.assertEqual(ics.status, 200, ics.body)
        text = ics.body.decode()
        self.assertIn("UID:%s@beacon" % occ[2]["id"], text)
        self.assertIn("DTSTART:20261102T230000Z", text)
        self.assertIn("SUMMARY:Group: Relapse prevention", text)
        spring = self.group(start_time="02:30", minutes=60,
                            rule={"freq": "weekly", "start_date": "2027-03-07", "count": 3})
        occ = self.occurrences(spring["id"], frm="2027-03-01", to="2027-03-31")
        self.assertEqual([(o["start"], o["start_local"]) for o in occ], [
            ("2027-03-07T07:30:00Z", "2027-03-07T02:30"),
            ("2027-03-14T07:30:00Z", "2027-03-14T03:30"),
            ("2027-03-21T06:30:00Z", "2027-03-21T02:30"),
        ])

    def test_monthly_and_every_other_week_rules(self):
        last_thu = self.group(start_time="10:00", rule={
            "freq": "monthly", "month_week": -1, "start_date": "2027-01-28",
            "until": "2027-05-31"})
        self.assertEqual([o["date"] for o in self.occurrences(last_thu["id"], frm="2027-01-01",
                                                              to="2027-03-31")],
                         ["2027-01-28", "2027-02-25", "2027-03-25"])
        self.assertEqual(last_thu["occurrences"], 5)
        biweekly = self.group(start_time="12:00", rule={
            "freq": "weekly", "interval": 2, "by_day": ["TU", "TH"], "start_date": "2027-02-02",
            "count": 5})
        self.assertEqual([o["date"] for o in self.occurrences(biweekly["id"], frm="2027-02-01",
                                                              to="2027-04-01")],
                         ["2027-02-02", "2027-02-04", "2027-02-16", "2027-02-18", "2027-03-02"])

    def test_bad_series_are_refused_and_nothing_created(self):
        good = {"start_time": "18:00",
                "rule": {"freq": "weekly", "start_date": "2027-06-07", "count": 4}}
        cases = [
            ({"topic": "knitting"}, "topic"),
            ({"topic": "custom"}, "title"),
            ({"capacity": 0}, "capacity"),
            ({"capacity": 500}, "capacity"),
            ({"minutes": 0}, "minutes"),
            ({"minutes": 2000}, "minutes"),
            ({"start_time": "25:00"}, "start_time"),
            ({"start_time": "6pm"}, "start_time"),
            ({"mode": "telephone"}, "mode"),
            ({"rule": None}, "rule"),
            ({"rule": {"freq": "daily", "start_date": "2027-06-07", "count": 3}}, "rule.freq"),
            ({"rule": {"freq": "weekly", "start_date": "2027-02-30", "count": 3}},
             "rule.start_date"),
            ({"rule": {"freq": "weekly", "start_date": "2027-06-07"}}, "rule.until"),
            ({"rule": {"freq": "weekly", "start_date": "2027-06-07", "until": "2027-05-01"}},
             "rule.until"),
            ({"rule": {"freq": "weekly", "by_day": ["XX"], "start_date": "2027-06-07",
                       "count": 3}}, "rule.by_day[0]"),
            # Thousands of occurrences are refused, not expanded.
            ({"rule": {"freq": "weekly", "by_day": ["MO", "TU", "WE", "TH", "FR"],
                       "start_date": "2027-06-07", "until": "2037-06-07"}}, "rule.until"),
            ({"rule": {"freq": "weekly", "start_date": "2027-06-07", "count": 900}},
             "rule.count"),
            ({"facilitator_ids": ["nobody"]}, "facilitator_ids"),
            ({"facilitator_ids": [self.peer.id, str(uuid.uuid4())]}, "facilitator_ids"),
            ({"override_reason": "because"}, "override_reason"),
        ]
        before = len(self.req("GET", "/api/v1/group-sessions?site_id=%s&status=all" % self.site,
                              headers=self.sup.auth).json().get("groups", []))
        for extra, field in cases:
            with self.subTest(extra=extra):
                body = dict(good, **extra)
                if body.get("rule") is None:
                    del body["rule"]
                body.setdefault("topic", "relapse_prevention")
                body.setdefault("capacity", 12)
                body.setdefault("minutes", 90)
                r = self.req("POST", "/api/v1/group-sessions", dict(body, site_id=self.site),
                             headers=self.peer.auth)
                self.assertProblem(r, 400, field=field)
        # A peer cannot set up a group only others run.
        r = self.req("POST", "/api/v1/group-sessions",
                     dict(good, topic="self_care", capacity=5, minutes=60, site_id=self.site,
                          facilitator_ids=[self.peer2.id]), headers=self.peer.auth)
        self.assertProblem(r, 403, field="facilitator_ids")
        after = len(self.req("GET", "/api/v1/group-sessions?site_id=%s&status=all" % self.site,
                             headers=self.sup.auth).json().get("groups", []))
        self.assertEqual(after, before)

    # -- roster, attendance, encounters ------------------------------------------

    def test_roster_attendance_and_completion_record_encounters(self):
        g = self.group(capacity=3, start_time="17:00", minutes=90,
                       rule={"freq": "weekly", "start_date": "2026-06-02", "count": 3})
        c1, c2, c3, c4 = (self.client() for _ in range(4))
        for c in (c1, c2, c3):
            self.assertEqual(self.enroll(g["id"], c)["client_id"], c)
        self.assertProblem(self.req("POST", "/api/v1/group-sessions/%s/roster" % g["id"],
                                    {"client_id": c4}, headers=self.peer.auth), 422,
                           field="group_id")
        self.assertProblem(self.req("POST", "/api/v1/group-sessions/%s/roster" % g["id"],
                                    {"client_id": c1}, headers=self.peer.auth), 409)
        got = self.req("GET", "/api/v1/group-sessions/" + g["id"], headers=self.peer.auth).json()
        self.assertEqual((got["enrolled"], sorted(r["client_id"] for r in got["roster"])),
                         (3, sorted([c1, c2, c3])))
        # c3 leaves; c4 takes the place.
        left = self.req("POST", "/api/v1/group-sessions/%s/roster/%s/leave" % (g["id"], c3),
                        {"reason": "moved away"}, headers=self.peer.auth)
        self.assertEqual(left.status, 200, left.body)
        self.assertTrue(left.json()["left_at"])
        self.enroll(g["id"], c4)

        occ = self.occurrences(g["id"], frm="2026-06-01", to="2026-06-30")[0]
        url = "/api/v1/group-occurrences/" + occ["id"]
        # Someone not on the roster, a bad status, a time outside the session.
        for entry, status in [({"client_id": str(uuid.uuid4()), "status": "present"}, 422),
                              ({"client_id": c1, "status": "asleep"}, 400),
                              ({"client_id": c1, "status": "late",
                                "arrived": "2026-06-02T23:59:00Z"}, 400),
                              ({"client_id": c1, "status": "present",
                                "arrived": "2026-06-02T21:10:00Z"}, 400)]:
            with self.subTest(entry=entry):
                self.assertProblem(self.req("PUT", url + "/attendance",
                                            {"attendance": [entry]}, headers=self.peer.auth),
                                   status)
        # Completing before everyone on the roster has attendance is refused.
        r = self.req("PUT", url + "/attendance", {"attendance": [
            {"client_id": c1, "status": "present"},
            {"client_id": c2, "status": "late", "arrived": "2026-06-02T21:30:00Z"}]},
            headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.req("POST", url + "/complete", {}, headers=self.peer.auth), 422,
                           field="attendance")
        # c3 was still on the roster that day (they left later).
        r = self.req("PUT", url + "/attendance",
                     {"attendance": [{"client_id": c4, "status": "absent"},
                                     {"client_id": c3, "status": "excused"}]},
                     headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(sorted((a["client_id"], a["status"]) for a in r.json()["attendance"]),
                         sorted([(c1, "present"), (c2, "late"), (c4, "absent"),
                                 (c3, "excused")]))
        # Another peer does not run this group.
        self.assertProblem(self.req("POST", url + "/complete", {}, headers=self.peer2.auth), 403)
        done = self.req("POST", url + "/complete", {}, headers=self.peer.auth)
        self.assertEqual(done.status, 201, done.body)
        enc = {e["client_id"]: e for e in done.json()["encounters"]}
        self.assertEqual(set(enc), {c1, c2})
        self.assertEqual((enc[c1]["minutes"], enc[c2]["minutes"]), (90, 60))
        self.assertEqual((enc[c1]["is_group"], enc[c1]["place_of_service"], enc[c1]["staff_id"]),
                         (True, "11", self.peer.id))
        self.assertEqual(done.json()["occurrence"]["status"], "completed")
        self.assertEqual(enc[c2]["group_occurrence_id"], occ["id"])
        mine = self.req("GET", "/api/v1/encounters?client_id=%s&from=2026-06-01T00:00:00Z"
                        "&to=2026-07-01T00:00:00Z" % c2, headers=self.peer.auth)
        self.assertEqual(mine.status, 200, mine.body)
        self.assertEqual([e["id"] for e in mine.json()["encounters"]], [enc[c2]["id"]])
        # Once: a second completion or late attendance is refused.
        self.assertProblem(self.req("POST", url + "/complete", {}, headers=self.peer.auth), 422)
        self.assertProblem(self.req("PUT", url + "/attendance",
                                    {"attendance": [{"client_id": c4, "status": "present"}]},
                                    headers=self.peer.auth), 422)

    def test_attendance_ahead_is_only_an_excused_absence(self):
        g = self.group(start_time="09:00",
                       rule={"freq": "weekly", "start_date": "2027-08-02", "count": 2})
        c = self.client()
        self.enroll(g["id"], c)
        occ = self.occurrences(g["id"], frm="2027-08-01", to="2027-08-31")[0]
        url = "/api/v1/group-occurrences/%s/attendance" % occ["id"]
        self.assertProblem(self.req("PUT", url, {"attendance": [{"client_id": c,
                                                                 "status": "present"}]},
                                    headers=self.peer.auth), 422)
        r = self.req("PUT", url, {"attendance": [{"client_id": c, "status": "excused"}]},
                     headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)

    # -- editing ----------------------------------------------------------------

    def test_edit_one_occurrence_then_the_whole_series(self):
        g = self.group(start_time="18:00",
                       rule={"freq": "weekly", "by_day": ["WE"], "start_date": "2027-09-01",
                             "count": 4})
        occ = self.occurrences(g["id"], frm="2027-09-01", to="2027-10-01")
        self.assertEqual(len(occ), 4)
        second, third = occ[1], occ[2]
        # Moving one needs If-Match; a stale version is refused.
        url = "/api/v1/group-occurrences/" + second["id"]
        self.assertEqual(self.req("PATCH", url, {"start_local": "2027-09-08T19:00",
                                                 "end_local": "2027-09-08T20:30"},
                                  headers=self.peer.auth).status, 428)
        self.assertProblem(self.req("PATCH", url, {"start_local": "2027-09-08T19:00",
                                                   "end_local": "2027-09-08T20:30"},
                                    headers=self.if_match(self.peer, 7)), 412)
        moved = self.req("PATCH", url, {"start_local": "2027-09-08T19:00",
                                        "end_local": "2027-09-08T20:30"},
                         headers=self.if_match(self.peer, second["version"]))
        self.assertEqual(moved.status, 200, moved.body)
        self.assertEqual((moved.json()["start"], moved.json()["edited"]),
                         ("2027-09-08T23:00:00Z", True))
        cancelled = self.req("PATCH", "/api/v1/group-occurrences/" + third["id"],
                             {"status": "cancelled", "reason": "holiday"},
                             headers=self.if_match(self.peer, third["version"]))
        self.assertEqual((cancelled.json()["status"], cancelled.json()["status_reason"]),
                         ("cancelled", "holiday"))
        self.assertProblem(self.req("PATCH", "/api/v1/group-occurrences/" + third["id"],
                                    {"status": "cancelled"},
                                    headers=self.if_match(self.peer, cancelled.json()["version"])),
                           400, field="reason")
        # The series moves to 17:00 and gains a week: the edited ones stay.
        r = self.req("PATCH", "/api/v1/group-sessions/" + g["id"],
                     {"start_time": "17:00", "rule": {"freq": "weekly", "by_day": ["WE"],
                                                      "start_date": "2027-09-01", "count": 5}},
                     headers=self.if_match(self.peer, g["version"]))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json()["start_time"], r.json()["version"]), ("17:00", 2))
        after = {o["date"]: o for o in self.occurrences(g["id"], frm="2027-09-01",
                                                        to="2027-10-31")}
        self.assertEqual(sorted(after), ["2027-09-01", "2027-09-08", "2027-09-15", "2027-09-22",
                                         "2027-09-29"])
        self.assertEqual(after["2027-09-01"]["start_local"], "2027-09-01T17:00")
        self.assertEqual(after["2027-09-08"]["start_local"], "2027-09-08T19:00")
        self.assertEqual(after["2027-09-15"]["status"], "cancelled")
        self.assertEqual(after["2027-09-29"]["start_local"], "2027-09-29T17:00")
        # Another peer may read the series but not change it.
        self.assertEqual(self.req("GET", "/api/v1/group-sessions/" + g["id"],
                                  headers=self.peer2.auth).status, 200)
        self.assertProblem(self.req("PATCH", "/api/v1/group-sessions/" + g["id"],
                                    {"title": "Mine now"},
                                    headers=self.if_match(self.peer2, 2)), 403)
        # Cancelling the series cancels what is still to come.
        r = self.req("POST", "/api/v1/group-sessions/%s/cancel" % g["id"],
                     {"reason": "facilitator leaving"}, headers=self.peer.auth)
        self.assertEqual((r.status, r.json()["status"], r.json()["occurrences"]),
                         (200, "cancelled", 0), r.body)
        self.assertEqual({o["status"] for o in self.occurrences(g["id"], frm="2027-09-01",
                                                                to="2027-10-31")},
                         {"cancelled"})

    # -- double bookings --------------------------------------------------------

    def test_groups_and_meetings_conflict_both_ways(self):
        room = self.req("POST", "/api/v1/locations",
                        {"site_id": self.site, "name": "Group room %s" % uuid.uuid4().hex[:6],
                         "kind": "office_room", "capacity": 10}, headers=self.sup.auth).json()
        c = self.client()
        meeting = self.req("POST", "/api/v1/appointments",
                           {"client_id": c, "start": "2027-10-05T22:30:00Z",
                            "end": "2027-10-05T23:00:00Z", "mode": "in_person"},
                           headers=self.peer.auth)
        self.assertEqual(meeting.status, 201, meeting.body)
        body = {"start_time": "18:00", "location_id": room["id"],
                "rule": {"freq": "weekly", "by_day": ["TU"], "start_date": "2027-09-28",
                         "count": 3}}
        r = self.req("POST", "/api/v1/group-sessions",
                     dict(body, topic="coping_strategies", capacity=8, minutes=90,
                          site_id=self.site), headers=self.peer.auth)
        p = self.assertProblem(r, 409, field="override_conflicts")
        self.assertIn(meeting.json()["id"], p["detail"])
        # A room too small for the group is refused.
        self.assertProblem(self.req("POST", "/api/v1/group-sessions",
                                    dict(body, topic="coping_strategies", capacity=20,
                                         minutes=90, site_id=self.site),
                                    headers=self.sup.auth), 400, field="capacity")
        g = self.group(self.sup, facilitator_ids=[self.peer.id], topic="coping_strategies",
                       capacity=8, override_conflicts=True,
                       override_reason="meeting moves after the group starts", **body)
        self.assertEqual(g["override_reason"], "meeting moves after the group starts")
        # Enrolling the client whose meeting collides with the group's first
        # session is refused, naming the meeting, until a supervisor
        # overrides with a reason (kept on the roster entry).
        r = self.req("POST", "/api/v1/group-sessions/%s/roster" % g["id"], {"client_id": c},
                     headers=self.peer.auth)
        p = self.assertProblem(r, 409, field="override_conflicts")
        self.assertIn(meeting.json()["id"], p["detail"])
        self.assertProblem(self.req("POST", "/api/v1/group-sessions/%s/roster" % g["id"],
                                    {"client_id": c, "override_conflicts": True,
                                     "override_reason": "x"}, headers=self.peer.auth), 403)
        r = self.req("POST", "/api/v1/group-sessions/%s/roster" % g["id"],
                     {"client_id": c, "override_conflicts": True,
                      "override_reason": "meets the first week only"}, headers=self.sup.auth)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["override_reason"], "meets the first week only")
        # A second group meeting at the same hours cannot take a client who
        # is on the first one's roster.
        g2 = self.group(self.sup, facilitator_ids=[self.peer2.id], topic="goal_setting",
                        capacity=8, minutes=30, start_time="18:30",
                        rule={"freq": "weekly", "by_day": ["TU"], "start_date": "2027-10-12",
                              "count": 2})
        p = self.assertProblem(self.req("POST", "/api/v1/group-sessions/%s/roster" % g2["id"],
                                        {"client_id": c}, headers=self.sup.auth),
                               409, field="override_conflicts")
        self.assertIn("in another group", p["detail"])
        # Now one-on-one bookings collide with the group: the facilitator,
        # a client on the roster, the room.
        other = self.client(self.peer2)
        cases = [
            ({"client_id": other, "staff_id": self.peer.id}, self.sup, "runs a group"),
            ({"client_id": c, "staff_id": self.peer2.id}, self.sup, "group meets"),
            ({"client_id": other, "location_id": room["id"]}, self.peer2, "room holds a group"),
        ]
        for extra, who, words in cases:
            with self.subTest(extra=extra):
                r = self.req("POST", "/api/v1/appointments",
                             dict(extra, start="2027-10-12T22:15:00Z",
                                  end="2027-10-12T22:45:00Z", mode="in_person"),
                             headers=who.auth)
                p = self.assertProblem(r, 409, field="override_conflicts")
                self.assertIn(words, p["detail"])
        # A second group in the same room at the same time is refused.
        self.assertProblem(self.req("POST", "/api/v1/group-sessions",
                                    dict(body, topic="self_care", capacity=5, minutes=60,
                                         site_id=self.site, facilitator_ids=[self.peer2.id]),
                                    headers=self.sup.auth), 409)

    def test_a_facilitator_s_working_hours_bound_the_group(self):
        staff = self.org.add_staff(["peer_specialist"])
        hours = [{"weekday": w, "start": "09:00", "end": "17:00"}
                 for w in ("monday", "tuesday", "wednesday", "thursday", "friday")]
        r = self.req("PUT", "/api/v1/staff/me/working-hours",
                     {"site_id": self.site, "hours": hours}, headers=staff.auth)
        self.assertEqual(r.status, 200, r.body)
        rule = {"freq": "weekly", "by_day": ["WE"], "start_date": "2028-03-01", "count": 4}
        # 18:00 New York on Wednesdays: after hours, refused naming them.
        r = self.req("POST", "/api/v1/group-sessions",
                     {"site_id": self.site, "topic": "self_care", "capacity": 6, "minutes": 60,
                      "start_time": "18:00", "rule": rule}, headers=staff.auth)
        p = self.assertProblem(r, 409, field="override_conflicts")
        self.assertIn("working hours", p["detail"])
        self.assertIn(staff.id, p["detail"])
        # 10:00, within them, across the March change to daylight time.
        self.group(staff, topic="self_care", capacity=6, minutes=60, start_time="10:00",
                   rule=rule)

    # -- reminders ----------------------------------------------------------------

    def test_reminders_fall_due_once_before_meetings_and_group_meetings(self):
        def soon(seconds):
            t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
            return t.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        c = self.client()
        # Two hours and a few seconds ahead: the 2-hour reminder falls due
        # in a few seconds; the 24-hour one fell due before the booking and
        # never goes out.
        a = self.req("POST", "/api/v1/appointments",
                     {"client_id": c, "start": soon(7200 + 4), "end": soon(7200 + 1800),
                      "mode": "telephone"}, headers=self.peer.auth)
        self.assertEqual(a.status, 201, a.body)
        g = self.group(self.peer2, start_time="06:00",
                       rule={"freq": "weekly", "start_date": "2028-01-03", "count": 1})
        occ = self.occurrences(g["id"], frm="2028-01-01", to="2028-01-31")[0]
        moved = self.req("PATCH", "/api/v1/group-occurrences/" + occ["id"],
                         {"start": soon(7200 + 5), "end": soon(7200 + 3600)},
                         headers=self.if_match(self.peer2, occ["version"]))
        self.assertEqual(moved.status, 200, moved.body)

        def sent():
            # (row security shows the table to the scanner's purpose only)
            return self.psql("SELECT set_config('beacon.purpose', 'reminder_scan', false); "
                             "SELECT kind || ':' || minutes FROM scheduling.reminders_sent "
                             "WHERE item_id IN ('%s', '%s') ORDER BY kind"
                             % (a.json()["id"], occ["id"])).split()[1:]
        deadline = time.time() + 30
        while time.time() < deadline and len(sent()) < 2:
            time.sleep(0.5)
        self.assertEqual(sent(), ["appointment:120", "group_occurrence:120"])
        time.sleep(2)  # further scans add nothing
        self.assertEqual(sent(), ["appointment:120", "group_occurrence:120"])
        events = self.psql("SELECT count(*) FROM events.outbox WHERE producer = 'scheduling' "
                           "AND topic = 'reminder.due' AND created_at > now() - interval '1 minute'")
        self.assertEqual(events.split()[-1], "2")
