"""Reporting: the event consumer, the rollups, the dashboards.

A randomized workload through the HTTPS API, then beacon-reporting-check
recomputes every rollup from the source tables and must find no difference;
the dashboards' totals must equal what the workload did. The relay's process
(scheduling) and the reporting service are killed with SIGKILL mid-stream and
restarted: nothing is lost or counted twice. Events injected on a PUB socket
of our own (a minimal ZMTP 3.0 publisher) or written straight to an outbox
test duplicates, gaps, unknown producers, unknown schema versions and
unreadable payloads. Analysts get de-identified dashboards with small cells
suppressed.
"""

import datetime
import os
import random
import signal
import socket
import struct
import threading
import time
import uuid

from harness import SCALE, StackTestCase, launch, run_binary

GIRP = {"goal": "Keep stable housing", "intervention": "Shared my own experience of renting",
        "response": "Engaged, asked for the tenants' rights leaflet",
        "plan": "Visit the housing office together next week"}
NY = datetime.timezone(datetime.timedelta(hours=-5))  # the bootstrap site's zone in winter
FROM = "2025-01-01"
MEASURES = ("encounters", "encounter_minutes", "units", "noshows", "enrollments", "discharges",
            "active_caseload", "notes_signed", "referrals_made", "referrals_closed",
            "group_attendance", "group_sessions")


def units(minutes):
    return minutes // 15 + (1 if minutes % 15 >= 8 else 0)


# ---- protobuf and ZMTP by hand (the tests use the standard library only) ----

def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_string(field, value):
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def pb_int(field, value):
    return _varint(field << 3) + _varint(value)


def event(producer, seq, topic, payload, version=1,
          occurred_at="2026-03-02T15:00:00.000000Z"):
    """A packed beacon.Event."""
    return (pb_string(1, producer) + pb_int(2, seq) + pb_string(3, topic) +
            pb_string(4, occurred_at) + pb_string(5, payload) + pb_int(7, version))


class FakePublisher:
    """A ZMTP 3.0 PUB socket (NULL mechanism) on a free loopback port, enough
    to send two-frame messages to one libzmq SUB that connects to it."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.conn = None

    @property
    def endpoint(self):
        return "tcp://127.0.0.1:%d" % self.port

    def _recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("subscriber went away")
            data += chunk
        return data

    @staticmethod
    def _frame(data, more=False, command=False):
        flags = (1 if more else 0) | (4 if command else 0)
        if len(data) > 255:
            return bytes([flags | 2]) + struct.pack(">Q", len(data)) + data
        return bytes([flags, len(data)]) + data

    def accept(self, timeout):
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(timeout)
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00")
                    + b"\x00" + b"\x00" * 31)
        self.conn.sendall(greeting)
        self._recv(64)
        name, value = b"Socket-Type", b"PUB"
        ready = (bytes([5]) + b"READY" + bytes([len(name)]) + name +
                 struct.pack(">I", len(value)) + value)
        self.conn.sendall(self._frame(ready, command=True))
        flags = self._recv(1)[0]
        size = struct.unpack(">Q", self._recv(8))[0] if flags & 2 else self._recv(1)[0]
        self._recv(size)  # the subscriber's READY

    def send(self, topic, body):
        self.conn.sendall(self._frame(topic.encode(), more=True) + self._frame(body))

    def close(self):
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()


class ReportingTests(StackTestCase):
    settings = {"allow_bootstrap": True, "request_timeout_ms": 10000}
    process_settings = {"reporting": {"consumer_poll_ms": 500}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"], [cls.site])
        cls.peer2 = cls.org.add_staff(["peer_specialist"], [cls.site])
        cls.supervisor = cls.org.add_staff(["supervisor"], [cls.site])
        cls.analyst = cls.org.add_staff(["analyst"], [cls.site])
        cls.other_site = cls.org.add_site("Northside")
        cls.far_supervisor = cls.org.add_staff(["supervisor"], [cls.other_site])
        cls.slot = 0
        cls.group_day = 0
        cls.slot_lock = threading.Lock()
        cls.expected = dict.fromkeys(MEASURES, 0)
        cls.expected_lock = threading.Lock()

    # ---- the workload ----------------------------------------------------------

    def call(self, who, method, path, body=None, expect=None):
        r = self.stack.request(method, path, body=body, headers=who.auth, timeout=20 * SCALE)
        if expect is not None:
            self.assertEqual(r.status, expect, r.body[:300])
        return r

    def next_slot(self, minutes):
        """A meeting in the past no other in the class overlaps."""
        with self.slot_lock:
            type(self).slot += 1
            n = self.slot
        start = datetime.datetime(2025, 2, 1, 14, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(hours=n * 7)
        end = start + datetime.timedelta(minutes=minutes)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return start.strftime(fmt), end.strftime(fmt)

    def add(self, **counts):
        with self.expected_lock:
            for k, v in counts.items():
                self.expected[k] += v

    def workload(self, steps, seed, strict=True):
        """Random care work by two specialists; counts what succeeded. With
        strict off (processes being killed), failures are tolerated."""
        rng = random.Random(seed)
        clients = []
        for _ in range(steps):
            who = rng.choice([self.peer, self.peer2])
            action = rng.choice(["client", "encounter", "encounter", "noshow", "enroll",
                                 "discharge", "barc", "note", "referral", "close", "group"])
            try:
                self.step(who, action, rng, clients)
            except (AssertionError, OSError, ValueError, KeyError):
                if strict:
                    raise

    def group_meeting(self, who, rng):
        """A one-meeting group in late 2025 (after every one-on-one slot) with
        three new clients on the roster, some attending; completed."""
        with self.slot_lock:
            type(self).group_day += 1
            day = datetime.date(2025, 10, 1) + datetime.timedelta(days=self.group_day)
        g = self.call(who, "POST", "/api/v1/group-sessions", {
            "site_id": self.site, "topic": "relapse_prevention", "capacity": 10, "minutes": 60,
            "start_time": "07:00", "rule": {"freq": "weekly", "start_date": day.isoformat(),
                                            "count": 1}}, expect=201).json()["id"]
        members = []
        for _ in range(3):
            c = self.call(who, "POST", "/api/v1/clients",
                          {"given_name": "Robin", "family_name": "G-" + uuid.uuid4().hex[:8],
                           "date_of_birth": "1984-06-15"}, expect=201).json()["id"]
            self.call(who, "POST", "/api/v1/group-sessions/%s/roster" % g, {"client_id": c},
                      expect=201)
            members.append(c)
        occ = self.call(who, "GET", "/api/v1/group-occurrences?group_id=%s&from=%s&to=%s"
                        % (g, day.isoformat(), (day + datetime.timedelta(days=1)).isoformat())
                        ).json()["occurrences"][0]
        present = [True] + [rng.random() < 0.6 for _ in members[1:]]
        url = "/api/v1/group-occurrences/" + occ["id"]
        self.call(who, "PUT", url + "/attendance", {"attendance": [
            {"client_id": c, "status": "present" if here else "absent"}
            for c, here in zip(members, present)]}, expect=200)
        self.call(who, "POST", url + "/complete", {}, expect=201)
        n = sum(present)
        self.add(encounters=n, encounter_minutes=60 * n, units=4 * n, group_attendance=n,
                 group_sessions=1 if n else 0)

    def step(self, who, action, rng, clients):
        if action == "group":
            self.group_meeting(who, rng)
            return
        mine = [c for c in clients if c["who"] is who]
        if action == "client" or not mine:
            r = self.call(who, "POST", "/api/v1/clients",
                          {"given_name": "Robin", "family_name": "R-" + uuid.uuid4().hex[:8],
                           "date_of_birth": "1984-06-15"}, expect=201)
            clients.append({"id": r.json()["id"], "who": who, "episode": None,
                            "referrals": []})
            return
        c = rng.choice(mine)
        if c.get("discharged") and action not in ("enroll", "barc"):
            action = "enroll"  # a discharged client is seen again once re-enrolled
        if action in ("encounter", "noshow"):
            minutes = rng.choice([20, 38, 50, 60, 83])
            start, end = self.next_slot(minutes)
            r = self.call(who, "POST", "/api/v1/appointments",
                          {"client_id": c["id"], "staff_id": who.id,
                           "start": start, "end": end, "mode": "in_person"}, expect=201)
            appt = r.json()["id"]
            if action == "encounter":
                self.call(who, "POST", "/api/v1/appointments/%s/complete" % appt, {}, expect=201)
                self.add(encounters=1, encounter_minutes=minutes, units=units(minutes))
            else:
                self.call(who, "POST", "/api/v1/appointments/%s/status" % appt,
                          {"status": "noshow"}, expect=200)
                self.add(noshows=1)
        elif action == "enroll" and not c["episode"]:
            day = datetime.date(2025, 3, 1) + datetime.timedelta(days=rng.randrange(300))
            r = self.call(who, "POST", "/api/v1/clients/%s/enrollments" % c["id"],
                          {"program": "Peer recovery", "pathway": "brief",
                           "started_on": day.isoformat()}, expect=201)
            c["episode"] = (r.json()["id"], day)
            c["discharged"] = False
            self.add(enrollments=1, active_caseload=1)
        elif action == "discharge" and c["episode"]:
            eid, day = c["episode"]
            out = day + datetime.timedelta(days=rng.randrange(1, 200))
            self.call(who, "POST", "/api/v1/clients/%s/enrollments/%s/discharge" % (c["id"], eid),
                      {"reason": "goals_met", "discharged_on": out.isoformat()}, expect=200)
            c["episode"] = None
            c["discharged"] = True
            self.add(discharges=1, active_caseload=-1)
        elif action == "barc":
            answers = [{"item_id": "q%d" % (i + 1), "value": rng.randint(1, 6)}
                       for i in range(10)]
            self.call(who, "POST", "/api/v1/clients/%s/assessments" % c["id"],
                      {"instrument_id": "barc10", "administered_on": "2025-06-01",
                       "answers": answers}, expect=201)
        elif action == "note":
            r = self.call(who, "POST", "/api/v1/notes",
                          {"client_id": c["id"], "contact_kind": "phone_call",
                           "template_id": "girp",
                           "sections": [{"key": k, "text": v} for k, v in GIRP.items()]},
                          expect=201)
            self.call(who, "POST", "/api/v1/notes/%s/sign" % r.json()["id"], {"attest": True},
                      expect=200)
            self.add(notes_signed=1)
        elif action == "referral":
            r = self.call(who, "POST", "/api/v1/referrals",
                          {"client_id": c["id"], "external_resource": "County food bank",
                           "reason": "Food insecurity"}, expect=201)
            c["referrals"].append(r.json()["id"])
            self.add(referrals_made=1)
        elif action == "close" and c["referrals"]:
            rid = c["referrals"].pop()
            if rng.random() < 0.5:
                self.call(who, "POST", "/api/v1/referrals/%s/status" % rid,
                          {"status": "cancelled", "outcome": "no_longer_interested"},
                          expect=200)
            else:
                self.call(who, "POST", "/api/v1/referrals/%s/status" % rid,
                          {"status": "accepted"}, expect=200)
                self.call(who, "POST", "/api/v1/referrals/%s/status" % rid,
                          {"status": "completed", "outcome": "got_help"}, expect=200)
            self.add(referrals_closed=1)

    # ---- checks --------------------------------------------------------------

    def check(self, wait=30):
        """beacon-reporting-check against the stack's database, as the
        read-only role that reads past row policies (deploy/pg-cluster.sh)."""
        url = launch.conninfo_format(dict(launch.conninfo_parse(self.stack.database_url),
                                          user="beacon_check"))
        return run_binary("reporting-check",
                          ["--check_database_url=" + url,
                           "--wait_seconds=%d" % int(wait * SCALE)],
                          timeout=wait + 120)

    def assertConsistent(self):
        p = self.check()
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-2000:])
        self.assertIn("0 difference(s)", p.stdout)
        return p

    def dashboard(self, who, path="/api/v1/dashboards/site/%s", scope=None, **query):
        query.setdefault("from", FROM)
        query.setdefault("to", datetime.date.today().isoformat())
        query.setdefault("grain", "month")
        qs = "&".join("%s=%s" % kv for kv in query.items())
        return self.stack.request("GET", (path % (self.site if scope is None else scope)) + "?" + qs,
                                  headers=who.auth)

    def totals(self, doc, table="activity"):
        t = next(t for t in doc["tables"] if t["name"] == table)
        total = next(r for r in t["rows"] if r["key"] == "total")
        return {m: c["value"] for m, c in zip(t["measures"], total["cells"])}

    def source_totals(self):
        """The dashboard's totals for the site, counted in the source tables."""
        q = ("SELECT (SELECT count(*) FROM scheduling.encounters WHERE site_id = '{s}'), "
             "(SELECT coalesce(sum(minutes), 0) FROM scheduling.encounters WHERE site_id = '{s}'), "
             "(SELECT coalesce(sum(reporting.units(minutes)), 0) FROM scheduling.encounters "
             " WHERE site_id = '{s}'), "
             "(SELECT count(*) FROM scheduling.appointment_changes WHERE site_id = '{s}' "
             " AND to_status = 'noshow'), "
             "(SELECT count(*) FROM intake.enrollments e JOIN intake.clients c "
             " ON c.id = e.client_id WHERE c.site_id = '{s}'), "
             "(SELECT count(discharged_on) FROM intake.enrollments e JOIN intake.clients c "
             " ON c.id = e.client_id WHERE c.site_id = '{s}'), "
             "(SELECT count(*) - count(discharged_on) FROM intake.enrollments e "
             " JOIN intake.clients c ON c.id = e.client_id WHERE c.site_id = '{s}'), "
             "(SELECT count(*) FROM notes.notes WHERE site_id = '{s}' AND status = 'signed'), "
             "(SELECT count(*) FROM referral.referrals WHERE site_id = '{s}'), "
             "(SELECT count(closed_at) FROM referral.referrals WHERE site_id = '{s}'), "
             "(SELECT count(*) FROM scheduling.encounters WHERE site_id = '{s}' AND is_group), "
             "(SELECT count(DISTINCT group_occurrence_id) FROM scheduling.encounters "
             " WHERE site_id = '{s}' AND is_group)"
             ).format(s=self.site)
        url = launch.conninfo_format(dict(launch.conninfo_parse(self.stack.database_url),
                                          user="beacon_check"))
        values = launch.psql(url, q).strip().split("|")
        return dict(zip(MEASURES, (float(v) for v in values)))

    def sql(self, query):
        return launch.psql(self.stack.database_url, query).strip()

    # ---- tests ---------------------------------------------------------------

    def test_1_randomized_workload_gives_exact_rollups(self):
        self.workload(60, seed=7)
        self.assertConsistent()
        # The check does see a wrong number (then it is put back).
        change = ("UPDATE reporting.site_rollup SET encounters = encounters %s 1 WHERE site_id = "
                  "'%s' AND grain = 'm' AND period = (SELECT min(period) FROM "
                  "reporting.site_rollup WHERE site_id = '%s' AND encounters > 0 AND grain = 'm')")
        self.sql(change % ("+", self.site, self.site))
        try:
            p = self.check()
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("2 difference(s)", p.stdout)
        finally:
            self.sql(change % ("-", self.site, self.site))
        r = self.dashboard(self.supervisor)
        self.assertEqual(r.status, 200, r.body[:500])
        doc = r.json()
        self.assertFalse(doc["deidentified"])
        got = self.totals(doc)
        for m in MEASURES:
            self.assertEqual(got[m], self.expected[m], (m, got, self.expected))
        names = [t["name"] for t in doc["tables"]]
        self.assertEqual(names, ["activity", "staff", "referral_outcomes", "barc10",
                                 "people_served", "certifications", "staff_load",
                                 "staff_certifications"])
        staff = next(t for t in doc["tables"] if t["name"] == "staff")
        self.assertLessEqual({r["key"] for r in staff["rows"]}, {self.peer.id, self.peer2.id})
        # The staff breakdown covers the same periods: every encounter has its staff member.
        for grain, start, end in (("month", FROM, None), ("week", "2025-02-05", None),
                                  ("day", "2025-02-10", "2025-07-15")):
            rng = {"from": start, "to": end or datetime.date.today().isoformat()}
            r = self.dashboard(self.supervisor, grain=grain, **rng)
            self.assertEqual(r.status, 200, r.body[:300])
            d = r.json()
            st = next(t for t in d["tables"] if t["name"] == "staff")
            i = st["measures"].index("encounters")
            self.assertEqual(sum(r["cells"][i]["value"] for r in st["rows"]),
                             self.totals(d)["encounters"], (grain, start, end))
        # Week and day grains add up to the same totals.
        for grain, start in (("week", "2025-06-01"), ("day", "2026-01-01")):
            r = self.dashboard(self.supervisor, grain=grain, **{"from": start})
            self.assertEqual(r.status, 200, r.body[:300])
        # Every read of a dashboard is audited.
        n = int(self.sql("SELECT count(*) FROM audit.events WHERE resource_type = 'dashboard' "
                         "AND action = 'read' AND resource_id = '%s'" % self.site))
        self.assertGreaterEqual(n, 3)

    def test_2_killing_the_relay_and_reporting_mid_stream_loses_and_doubles_nothing(self):
        stop = threading.Event()
        errors = []

        def run(seed):
            try:
                while not stop.is_set():
                    self.workload(5, seed=seed, strict=False)
                    seed += 100
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        workers = [threading.Thread(target=run, args=(s,)) for s in (11, 12)]
        for w in workers:
            w.start()
        try:
            time.sleep(3 * SCALE)
            self.stack.stop_process("reporting", sig=signal.SIGKILL)
            time.sleep(1 * SCALE)
            self.stack.stop_process("scheduling", sig=signal.SIGKILL)
            time.sleep(1 * SCALE)
            self.stack.start_process("reporting", wait=False)
            self.stack.start_process("scheduling", wait=True)
            time.sleep(2 * SCALE)
            self.stack.stop_process("reporting", sig=signal.SIGKILL)
            self.stack.start_process("reporting", wait=True)
            time.sleep(2 * SCALE)
        finally:
            stop.set()
            for w in workers:
                w.join(120)
        self.assertFalse(errors, errors)
        self.assertConsistent()
        behind = self.sql("SELECT count(*) FROM events.outbox o JOIN reporting.positions p "
                          "USING (producer) WHERE o.published_seq > p.last_seq "
                          "OR o.published_seq IS NULL")
        self.assertEqual(behind, "0")
        self.assertEqual(self.sql("SELECT count(*) FROM reporting.rejects"), "0")

    def test_3_bad_events_are_rejected_and_never_counted(self):
        before = self.sql("SELECT last_seq FROM reporting.positions WHERE producer = 'intake'")
        agency = self.sql("SELECT agency_id FROM identity.site_directory WHERE site_id = '%s'"
                          % self.site)
        # Written to intake's outbox as if intake had: the relay publishes them.
        lacks_site = pb_string(1, str(uuid.uuid4())).hex()
        complete = (pb_string(1, str(uuid.uuid4())) + pb_string(2, agency) +
                    pb_string(3, self.site) + pb_string(14, "2025-05-05")).hex()
        self.sql("INSERT INTO events.outbox (producer, topic, payload, schema_version) VALUES "
                 "('intake', 'client.enrolled', '\\x%s', 2), "
                 "('intake', 'client.enrolled', '\\x0aff', 1), "
                 "('intake', 'client.discharged', '\\x%s', 1); NOTIFY beacon_events, 'intake'"
                 % (complete, lacks_site))
        deadline = time.time() + 20 * SCALE
        while time.time() < deadline and self.sql(
                "SELECT count(*) FROM reporting.rejects WHERE producer = 'intake'") != "3":
            time.sleep(0.2)
        rows = self.sql("SELECT reason FROM reporting.rejects WHERE producer = 'intake' "
                        "ORDER BY seq").splitlines()
        self.assertEqual(rows, ["unknown schema version", "payload does not decode",
                                "payload lacks agency, site or date"])
        after = self.sql("SELECT last_seq FROM reporting.positions WHERE producer = 'intake'")
        self.assertEqual(int(after), int(before) + 3)  # the stream goes on past them
        # Duplicates, a gap and an unknown producer on a PUB socket of our own.
        fake = FakePublisher()
        try:
            self.stack.stop_process("reporting")
            settings = self.stack.process_settings.setdefault("reporting", {})
            settings["events_endpoint_intake"] = (self.stack.event_endpoints["intake"] + "," +
                                                  fake.endpoint)
            del self.stack.procs["reporting"]
            self.stack.start_process("reporting", wait=True)
            fake.accept(20 * SCALE)
            pos = int(self.sql("SELECT last_seq FROM reporting.positions "
                               "WHERE producer = 'intake'"))
            # An already applied seq, with a payload that would count if applied.
            fake.send("client.enrolled", event("intake", pos, "client.enrolled",
                                               bytes.fromhex(complete)))
            fake.send("client.enrolled", event("intake", 1, "client.enrolled",
                                               bytes.fromhex(complete)))
            # Far ahead: a gap; the consumer replays from intake, which has nothing
            # that far, so it is not applied.
            fake.send("client.enrolled", event("intake", pos + 50, "client.enrolled",
                                               bytes.fromhex(complete)))
            fake.send("claim.paid", event("billing", 1, "claim.paid", b"\x0a\x01x"))
            deadline = time.time() + 20 * SCALE
            while time.time() < deadline and self.sql(
                    "SELECT count(*) FROM reporting.rejects WHERE producer = 'billing'") != "1":
                time.sleep(0.2)
            self.assertEqual(self.sql("SELECT reason FROM reporting.rejects "
                                      "WHERE producer = 'billing'"), "unknown producer")
        finally:
            fake.close()
            self.stack.process_settings["reporting"].pop("events_endpoint_intake", None)
        self.assertEqual(int(self.sql("SELECT last_seq FROM reporting.positions "
                                      "WHERE producer = 'intake'")), pos)
        # Real events after all that still apply, and nothing was counted twice.
        self.workload(10, seed=3)
        self.assertConsistent()
        r = self.dashboard(self.supervisor)
        self.assertEqual(self.totals(r.json()), dict(self.totals(r.json()),
                                                     **self.source_totals()))

    def test_4_analysts_see_de_identified_suppressed_dashboards(self):
        r = self.dashboard(self.analyst)
        self.assertEqual(r.status, 200, r.body[:300])
        doc = r.json()
        self.assertTrue(doc["deidentified"])
        names = [t["name"] for t in doc["tables"]]
        self.assertNotIn("staff", names)
        text = r.body.decode()
        for staff in (self.peer, self.peer2, self.supervisor):
            self.assertNotIn(staff.id, text)
        for t in doc["tables"]:
            for row in t["rows"]:
                for cell in row["cells"]:
                    if cell["suppressed"]:
                        self.assertEqual(cell["value"], 0)
                    else:
                        v = cell["value"]
                        self.assertFalse(0 < v < 11 and t["measures"][row["cells"].index(cell)]
                                         not in ("encounter_minutes", "units",
                                                 "loop_closure_days_avg", "mean_change"),
                                         (t["name"], row))
            # No suppressed cell of an additive column can be recovered from the
            # total: what is hidden adds up to 11 or more, or the total is hidden.
            if t["name"] == "activity":
                rows = [x for x in t["rows"] if x["key"] != "total"]
                total = next(x for x in t["rows"] if x["key"] == "total")
                for i, m in enumerate(t["measures"]):
                    if m in ("active_caseload", "loop_closure_days_avg"):
                        continue
                    hidden = [x for x in rows if x["cells"][i]["suppressed"]]
                    if hidden and not total["cells"][i]["suppressed"]:
                        shown = sum(x["cells"][i]["value"] for x in rows
                                    if not x["cells"][i]["suppressed"])
                        self.assertTrue(len(hidden) >= 2 and
                                        total["cells"][i]["value"] - shown >= 11,
                                        (m, hidden, total))
        # The supervisor sees the same figures unsuppressed.
        sup = self.totals(self.dashboard(self.supervisor).json())
        self.assertEqual(sup["encounters"], self.source_totals()["encounters"])
        # CSV export of any table, audited.
        r = self.dashboard(self.analyst, path="/api/v1/dashboards/site/%s/export",
                           table="activity")
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertTrue(r.header("Content-Type").startswith("text/csv"), r)
        lines = r.body.decode().splitlines()
        self.assertEqual(lines[0].split(",")[0], "period")
        self.assertEqual(lines[-1].split(",")[0], "total")
        for line in lines[1:]:
            for v in line.split(",")[1:]:
                self.assertTrue(v == "suppressed" or float(v) == 0 or float(v) >= 1, line)
        r = self.dashboard(self.supervisor, path="/api/v1/dashboards/site/%s/export",
                           table="staff")
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(r.body.decode().splitlines()[0].split(",")[0], "staff_id")
        r = self.dashboard(self.analyst, path="/api/v1/dashboards/site/%s/export", table="staff")
        self.assertProblem(r, 400, "table")
        n = self.sql("SELECT count(*) FROM audit.events WHERE resource_type = 'dashboard' "
                     "AND action = 'export'")
        self.assertGreaterEqual(int(n), 2)

    def test_5_agency_and_region_dashboards(self):
        r = self.dashboard(self.org.admin, path="/api/v1/dashboards/agency%s", scope="")
        self.assertEqual(r.status, 200, r.body[:300])
        doc = r.json()
        self.assertFalse(doc["deidentified"])
        sites = next(t for t in doc["tables"] if t["name"] == "sites")
        self.assertIn(self.site, [x["key"] for x in sites["rows"]])
        self.assertEqual(self.totals(doc)["encounters"], self.source_totals()["encounters"])
        r = self.dashboard(self.analyst, path="/api/v1/dashboards/agency%s", scope="")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json()["deidentified"])
        agency = self.sql("SELECT agency_id FROM identity.site_directory WHERE site_id = '%s'"
                          % self.site)
        region = self.sql("INSERT INTO reporting.regions (name) VALUES ('North %s') "
                          "RETURNING id" % uuid.uuid4().hex[:6]).splitlines()[0]
        other = str(uuid.uuid4())
        self.sql("INSERT INTO reporting.region_agencies VALUES ('%s', '%s'), ('%s', '%s')"
                 % (region, agency, region, other))
        for who in (self.org.admin, self.analyst):
            r = self.dashboard(who, path="/api/v1/dashboards/region/%s", scope=region)
            self.assertEqual(r.status, 200, r.body[:300])
            self.assertTrue(r.json()["deidentified"])
            agencies = next(t for t in r.json()["tables"] if t["name"] == "agencies")
            self.assertEqual([x["key"] for x in agencies["rows"]], [agency, "total"])
            self.assertNotIn(self.peer.id, r.body.decode())
        # A region the agency is not part of, or none at all: 404.
        lone = self.sql("INSERT INTO reporting.regions (name) VALUES ('Lone %s') RETURNING id"
                        % uuid.uuid4().hex[:6]).splitlines()[0]
        for rid in (lone, str(uuid.uuid4()), "nope"):
            r = self.dashboard(self.analyst, path="/api/v1/dashboards/region/%s", scope=rid)
            self.assertProblem(r, 404)

    def test_6_scope_and_bad_ranges(self):
        # Another site's supervisor: 404, like a site that does not exist.
        r = self.dashboard(self.far_supervisor)
        self.assertProblem(r, 404, "site_id")
        r = self.dashboard(self.supervisor, scope=str(uuid.uuid4()))
        self.assertProblem(r, 404, "site_id")
        # Specialists have no dashboard; supervisors no agency dashboard.
        self.assertProblem(self.dashboard(self.peer), 403)
        self.assertProblem(self.dashboard(self.supervisor, path="/api/v1/dashboards/agency%s",
                                          scope=""), 403)
        for query, field in ((dict(grain="year"), "grain"),
                             ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
                             ({"from": "2019-01-01", "to": "2026-01-01"}, "to"),
                             ({"from": "2026-02-30"}, "from"),
                             ({"to": "yesterday"}, "to"),
                             ({"from": "2024-01-01", "to": "2026-01-01", "grain": "day"},
                              "grain")):
            r = self.dashboard(self.supervisor, **query)
            self.assertProblem(r, 400, field)

    def test_7_people_served_counts_each_person_once(self):
        # One client seen in two weeks of September 2026 (after every other
        # test's meetings: the workload's one-on-one slots and groups run
        # from February 2025 onwards): one person in each week and one in
        # the month, not two.
        c = self.call(self.peer, "POST", "/api/v1/clients",
                      {"given_name": "Robin", "family_name": "P-" + uuid.uuid4().hex[:8],
                       "date_of_birth": "1984-06-15"}, expect=201).json()["id"]
        for start in ("2026-09-08T15:00:00Z", "2026-09-16T15:00:00Z"):
            end = start.replace("T15:00", "T15:40")
            appt = self.call(self.peer, "POST", "/api/v1/appointments",
                             {"client_id": c, "staff_id": self.peer.id, "start": start,
                              "end": end, "mode": "in_person"}, expect=201).json()["id"]
            self.call(self.peer, "POST", "/api/v1/appointments/%s/complete" % appt, {},
                      expect=201)
            self.add(encounters=1, encounter_minutes=40, units=units(40))

        def served(who, **query):
            r = self.dashboard(who, **query)
            self.assertEqual(r.status, 200, r.body[:300])
            t = next(t for t in r.json()["tables"] if t["name"] == "people_served")
            self.assertEqual((t["key"], t["measures"]), ("period", ["people_served"]))
            return {x["key"]: None if x["cells"][0]["suppressed"] else x["cells"][0]["value"]
                    for x in t["rows"]}
        deadline = time.monotonic() + 20 * SCALE
        while True:
            weeks = served(self.supervisor, grain="week", **{"from": "2026-09-07",
                                                               "to": "2026-09-20"})
            if weeks.get("2026-09-14") == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(weeks, {"2026-09-07": 1, "2026-09-14": 1})
        month = served(self.supervisor, grain="month", **{"from": "2026-09-01",
                                                           "to": "2026-09-30"})
        self.assertEqual(month, {"2026-09-01": 1})
        # Over the whole history: each period's count is the distinct clients
        # of its encounters, counted in the source tables. No total row: the
        # people of a range are not the sum of its periods (served.c).
        self.assertConsistent()
        url = launch.conninfo_format(dict(launch.conninfo_parse(self.stack.database_url),
                                          user="beacon_check"))
        rows = launch.psql(url, (
            "SELECT to_char(date_trunc('month', reporting.local_day(site_id, starts_at)), "
            "'YYYY-MM-DD'), count(DISTINCT client_id) FROM scheduling.encounters "
            "WHERE site_id = '%s' GROUP BY 1") % self.site).strip().splitlines()
        want = {k: float(v) for k, v in (r.split("|") for r in rows)}
        got = {k: v for k, v in served(self.supervisor).items() if v}
        self.assertEqual(got, want)
        # Analysts: periods of 1 to 10 people hidden.
        for k, v in served(self.analyst).items():
            self.assertTrue(v is None or v == 0 or v >= 11, (k, v))
