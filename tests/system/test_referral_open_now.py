"""The directory search's "open now" filter (open_at) over HTTPS: HSDS
schedules (RFC 5545 style: freq, byday with ordinals, bymonthday, interval,
opens_at/closes_at, validity) read in each schedule's own time zone (an IANA
name or an HSDS UTC offset), across daylight-saving time, overnight hours,
and schedules held by a service or by its location."""

import uuid

from harness import StackTestCase
from test_referral_import import file_entry

WEEKDAYS = "MO,TU,WE,TH,FR"


class OpenNowTests(StackTestCase):
    sign_in = "peer_specialist"  # the harness bootstraps cls.org and signs cls.user in

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        org_id = str(uuid.uuid4())
        cls.ids = {}

        def service(name, schedules=(), location_schedules=()):
            sid = cls.ids[name] = str(uuid.uuid4())
            loc = {"id": str(uuid.uuid4()), "name": name + " place", "latitude": 40.7,
                   "longitude": -74.0,
                   "schedules": [dict(s, id=str(uuid.uuid4())) for s in location_schedules]}
            return {"id": sid, "name": name, "status": "active",
                    "organization": {"id": org_id, "name": "Open Hours Org"},
                    "schedules": [dict(s, id=str(uuid.uuid4())) for s in schedules],
                    "service_at_locations": [{"id": str(uuid.uuid4()), "location": loc}]}

        services = [
            service("Day Centre NY", [{"freq": "WEEKLY", "byday": WEEKDAYS, "opens_at": "09:00",
                                       "closes_at": "17:00", "timezone": "America/New_York"}]),
            service("Pacific Line", [{"freq": "WEEKLY", "byday": WEEKDAYS, "opens_at": "09:00",
                                      "closes_at": "17:00", "timezone": "-8"}]),
            service("Night Shelter", [{"opens_at": "20:00", "closes_at": "08:00",
                                       "timezone": "America/Chicago"}]),
            service("First Monday Clinic", [{"freq": "MONTHLY", "byday": "1MO",
                                             "opens_at": "10:00", "closes_at": "12:00",
                                             "timezone": "UTC"}]),
            service("No Hours Given"),
            service("Saturday Pantry", location_schedules=[
                {"freq": "WEEKLY", "byday": "SA", "opens_at": "10:00", "closes_at": "14:00",
                 "timezone": "UTC"}]),
            service("Closed For Good", [{"valid_to": "2020-01-01", "timezone": "UTC"}]),
        ]
        r = cls.stack.request("POST", "/api/v1/directory/import", headers=cls.org.admin.auth,
                              body={"files": [file_entry("service_full.json", services)]})
        assert r.status == 200 and not r.json().get("refused"), r.body

    def open_at(self, instant):
        r = self.req("GET", "/api/v1/directory/services?limit=100&open_at=" + instant)
        self.assertEqual(r.status, 200, r.body)
        names = {s["name"] for s in r.json().get("services", [])}
        # Around a point (every place here is at 40.7, -74.0) the search
        # reads another table: the same services are open.
        near = self.req("GET", "/api/v1/directory/services?limit=100&latitude=40.7"
                        "&longitude=-74.0&radius_km=2&open_at=" + instant)
        self.assertEqual(near.status, 200, near.body)
        self.assertEqual({s["name"] for s in near.json().get("services", [])}, names)
        return names

    def test_weekday_hours_in_each_schedules_zone(self):
        # Monday 5 May 2031: 14:00Z is 10:00 in New York (EDT), 06:00 at -8.
        self.assertEqual(self.open_at("2031-05-05T14:00:00Z"), {"Day Centre NY"})
        self.assertEqual(self.open_at("2031-05-05T17:30:00Z"), {"Day Centre NY", "Pacific Line"})
        # The same instant written with an offset is the same instant.
        self.assertEqual(self.open_at("2031-05-05T13:30:00-04:00"),
                         {"Day Centre NY", "Pacific Line"})

    def test_overnight_hours_and_monthly_ordinals(self):
        # 11:00Z on the first Monday: 06:00 in Chicago (the shelter's night),
        # 11:00 UTC in the clinic's first-Monday hours.
        self.assertEqual(self.open_at("2031-05-05T11:00:00Z"),
                         {"Night Shelter", "First Monday Clinic"})
        self.assertEqual(self.open_at("2031-05-12T11:00:00Z"), {"Night Shelter"})

    def test_a_locations_schedule_opens_the_services_there(self):
        self.assertEqual(self.open_at("2031-05-10T12:00:00Z"), {"Saturday Pantry", "Night Shelter"})

    def test_daylight_saving_time_moves_the_utc_hours(self):
        # 13:30Z is 09:30 in New York in May (EDT) but 08:30 in January (EST).
        self.assertIn("Day Centre NY", self.open_at("2031-05-05T13:30:00Z"))
        self.assertNotIn("Day Centre NY", self.open_at("2031-01-06T13:30:00Z"))
        self.assertIn("Day Centre NY", self.open_at("2031-01-06T14:30:00Z"))

    def test_now_and_bad_instants(self):
        now = self.open_at("now")
        self.assertNotIn("No Hours Given", now)
        self.assertNotIn("Closed For Good", now)
        for bad in ("yesterday", "2031-05-05", "2031-13-01T10:00:00Z", "2031-05-05T10:00:00",
                    "2031-05-05T10:00:00Z%27%3B--"):
            r = self.req("GET", "/api/v1/directory/services?open_at=" + bad)
            self.assertProblem(r, 400, field="open_at")
