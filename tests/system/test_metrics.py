"""Prometheus metrics over the real TLS gateway: GET /metrics parses as strict
text exposition format 0.0.4, counters move by exactly the requests made,
histograms are cumulative, a killed service shows beacon_up 0 while the
scrape still answers, the token is required, and no identifier, name or
token of a person ever appears in the text."""

import math
import re
import secrets
import signal
import socket
import time
import uuid

import test_transport  # (module import: its test class stays in its own module)
from harness import SCALE, SERVICES, StackTestCase, new_client

TOKEN = "mt-" + secrets.token_hex(16)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SOURCES = tuple(SERVICES) + ("identity",)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_SAMPLE = re.compile(r"^(%s)(\{.*\})? (\S+)$" % _NAME)
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_labels(text, line):
    """'{a="x",b="y"}' -> {'a': 'x', 'b': 'y'}, strictly (escapes \\\\, \\" and
    \\n only, no duplicate names)."""
    labels = {}
    i, n = 1, len(text)
    if text[-1] != "}":
        raise AssertionError("labels not closed: %r" % line)
    while i < n - 1:
        m = re.match(_LABEL, text[i:])
        if not m or text[i + m.end():i + m.end() + 2] != '="':
            raise AssertionError("bad label at %d: %r" % (i, line))
        name = m.group(0)
        i += m.end() + 2
        value = []
        while True:
            if i >= n - 1:
                raise AssertionError("unterminated label value: %r" % line)
            ch = text[i]
            if ch == "\\":
                esc = text[i + 1]
                if esc not in '\\"n':
                    raise AssertionError("bad escape \\%s: %r" % (esc, line))
                value.append("\n" if esc == "n" else esc)
                i += 2
            elif ch == '"':
                i += 1
                break
            elif ch == "\n":
                raise AssertionError("raw line feed in a label: %r" % line)
            else:
                value.append(ch)
                i += 1
        if name in labels:
            raise AssertionError("label %s twice: %r" % (name, line))
        labels[name] = "".join(value)
        if text[i] == ",":
            i += 1
        elif i != n - 1:
            raise AssertionError("expected , or } at %d: %r" % (i, line))
    return labels


def _value(s, line):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", s):
        raise AssertionError("bad value %r: %r" % (s, line))
    return float(s)


class Exposition:
    """A strictly parsed scrape: families {name: type}, samples
    {(name, frozenset(labels)): value}. Raises AssertionError on anything
    the 0.0.4 text format does not allow."""

    def __init__(self, text):
        if text and not text.endswith("\n"):
            raise AssertionError("text does not end with a line feed")
        self.types, self.helps, self.samples = {}, {}, {}
        self.text = text
        closed = set()          # families whose lines are behind us
        current = None
        for line in text.split("\n")[:-1]:
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not re.match("^%s$" % _NAME, name):
                        raise AssertionError("bad metric name: %r" % line)
                    if name != current:
                        if name in closed or name in self.types or name in self.helps:
                            raise AssertionError("family %s split: %r" % (name, line))
                        if current:
                            closed.add(current)
                        current = name
                    if parts[1] == "TYPE":
                        if name in self.types or len(parts) != 4 or parts[3] not in _TYPES:
                            raise AssertionError("bad or second TYPE: %r" % line)
                        if any(s[0] in self._names(name, parts[3]) for s in self.samples):
                            raise AssertionError("TYPE after samples: %r" % line)
                        self.types[name] = parts[3]
                    else:
                        if name in self.helps:
                            raise AssertionError("second HELP: %r" % line)
                        self.helps[name] = parts[3] if len(parts) == 4 else ""
                continue
            if not line.strip():
                raise AssertionError("blank line inside the text")
            m = _SAMPLE.match(line)
            if not m:
                raise AssertionError("not a sample line: %r" % line)
            name, labels, value = m.group(1), m.group(2), m.group(3)
            fam = self._family_of(name)
            if fam != current:
                raise AssertionError("sample outside its family block: %r" % line)
            lab = _parse_labels(labels, line) if labels else {}
            key = (name, frozenset(lab.items()))
            if key in self.samples:
                raise AssertionError("duplicate sample: %r" % line)
            self.samples[key] = _value(value, line)
        self._check_histograms()

    @staticmethod
    def _names(name, typ):
        if typ == "histogram":
            return {name + "_bucket", name + "_sum", name + "_count"}
        return {name}

    def _family_of(self, name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return name

    def _check_histograms(self):
        for fam, typ in self.types.items():
            if typ == "counter":
                for (name, lab), v in self.samples.items():
                    if name == fam and (v < 0 or math.isnan(v)):
                        raise AssertionError("negative counter %s %r" % (name, dict(lab)))
            if typ != "histogram":
                continue
            series = {}
            for (name, lab), v in self.samples.items():
                if name == fam + "_bucket":
                    d = dict(lab)
                    le = d.pop("le")
                    series.setdefault(frozenset(d.items()), []).append((float(le), v))
            for lab, buckets in series.items():
                buckets.sort()
                if buckets[-1][0] != math.inf:
                    raise AssertionError("%s %r has no +Inf bucket" % (fam, dict(lab)))
                for (_, a), (_, b) in zip(buckets, buckets[1:]):
                    if b < a:
                        raise AssertionError("%s %r buckets not cumulative" % (fam, dict(lab)))
                count = self.samples.get((fam + "_count", lab))
                if count != buckets[-1][1] or (fam + "_sum", lab) not in self.samples:
                    raise AssertionError("%s %r: _count %r, +Inf %r" % (
                        fam, dict(lab), count, buckets[-1][1]))

    def get(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name):
        return [(dict(lab), v) for (n, lab), v in self.samples.items() if n == name]


class MetricsTests(StackTestCase):
    sign_in = "peer_specialist"
    settings = {"metrics_token": TOKEN, "metrics_timeout_ms": 500}
    # The reporting consumer asks each producer for missed events every
    # second (ReplayEvents); those calls would land between two scrapes and
    # make exact per-service counts unknowable. Off here; it has tests of
    # its own.
    process_settings = {"reporting": {"consumer": False}}

    def scrape(self):
        resp = self.req("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN},
                        auth=False)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"), CONTENT_TYPE, resp)
        self.assertEqual(resp.header("Cache-Control"), "no-store", resp)
        return Exposition(resp.body.decode("utf-8"))

    def wait_for(self, check, what, timeout=10):
        deadline = time.monotonic() + timeout * SCALE
        while True:
            m = self.scrape()
            if check(m):
                return m
            if time.monotonic() > deadline:
                self.fail("%s did not happen; last scrape:\n%s" % (what, m.text[:3000]))
            time.sleep(0.1)

    def test_scrape_is_valid_and_every_service_is_up(self):
        m = self.scrape()
        for name in SOURCES:
            self.assertEqual(m.get("beacon_up", service=name), 1.0, name)
            self.assertIn(name, {d.get("service") for d, _ in m.series(
                "beacon_rpc_requests_total")}, name)
            self.assertGreaterEqual(m.get("beacon_workers", service=name), 1, name)
        for name in SERVICES:
            # (settings: workers=2, each connected)
            self.assertEqual(m.get("beacon_db_connections_up", service=name), 2, name)
            self.assertGreaterEqual(m.get("beacon_db_connects_total", service=name), 2, name)
        for name in tuple(SERVICES) + ("gateway",):
            self.assertGreater(m.get("process_resident_memory_bytes", service=name), 1 << 20)
            self.assertGreater(m.get("process_cpu_seconds_total", service=name), 0, name)
            self.assertGreaterEqual(m.get("process_open_fds", service=name), 3, name)
        self.assertEqual(m.types["beacon_http_requests_total"], "counter")
        self.assertEqual(m.types["beacon_http_request_duration_seconds"], "histogram")
        self.assertEqual(m.types["beacon_rpc_duration_seconds"], "histogram")
        self.assertEqual(m.types["beacon_events_lag_seconds"], "histogram")
        self.assertEqual(m.types["beacon_up"], "gauge")
        for fam in m.types:
            self.assertIn(fam, m.helps, fam)
        # /healthz (the stack's start-up polled it) is labelled by its path.
        self.assertGreater(m.get("beacon_http_requests_total", service="gateway",
                                 route="/healthz", method="GET", status="2xx"), 0)

    def test_counters_move_by_exactly_the_requests_made(self):
        _, client = self.create_client()
        path = "/api/v1/clients/" + client["id"]
        conn = self.stack.connect(timeout=15 * SCALE)
        self.req("GET", path, conn=conn)  # warm the session cache
        before = self.scrape()
        for _ in range(7):
            self.assertEqual(self.req("GET", path, conn=conn).status, 200)
        for _ in range(3):
            r = self.req("GET", "/api/v1/clients/" + str(uuid.uuid4()), conn=conn)
            self.assertEqual(r.status, 404)
        conn.close()
        after = self.scrape()

        def delta(name, **labels):
            return after.get(name, **labels) - before.get(name, **labels)

        route = dict(service="gateway", route="/api/v1/clients/{id}", method="GET")
        self.assertEqual(delta("beacon_http_requests_total", status="2xx", **route), 7)
        self.assertEqual(delta("beacon_http_requests_total", status="4xx", **route), 3)
        self.assertEqual(delta("beacon_http_request_duration_seconds_count", **route), 10)
        self.assertEqual(delta("beacon_http_problems_total", service="gateway", status="404"), 3)
        intake = dict(service="intake", method="GetClient")
        self.assertEqual(delta("beacon_rpc_requests_total", code="OK", **intake), 7)
        self.assertEqual(delta("beacon_rpc_requests_total", code="NOT_FOUND", **intake), 3)
        self.assertEqual(delta("beacon_rpc_duration_seconds_count", **intake), 10)
        self.assertGreater(delta("beacon_rpc_duration_seconds_sum", **intake), 0)
        # ... and the after scrape's own Metrics call, which waited in the
        # queue before intake rendered its text.
        self.assertEqual(delta("beacon_rpc_queue_wait_seconds_count", service="intake"), 11)
        # The scrape before this one is counted under its own path.
        self.assertEqual(delta("beacon_http_requests_total", service="gateway", route="/metrics",
                               method="GET", status="2xx"), 1)

    def test_unknown_paths_are_one_label_and_carry_no_identifier(self):
        secret_id = str(uuid.uuid4())
        before = self.scrape()
        r = self.req("GET", "/api/v1/clients/%s/no-such-thing" % secret_id)
        self.assertEqual(r.status, 404)
        r = self.req("BREW", "/coffee/" + secret_id)
        self.assertIn(r.status, (404, 405))
        after = self.scrape()
        self.assertNotIn(secret_id, after.text)
        self.assertNotIn("BREW", after.text)
        self.assertNotIn("coffee", after.text)
        self.assertEqual(
            after.get("beacon_http_requests_total", service="gateway", route="unmatched",
                      method="GET", status="4xx")
            - before.get("beacon_http_requests_total", service="gateway", route="unmatched",
                         method="GET", status="4xx"), 1)
        self.assertGreaterEqual(sum(
            v for d, v in after.series("beacon_http_requests_total")
            if d.get("route") == "unmatched" and d.get("method") == "other"), 1)

    def test_no_person_data_in_the_text(self):
        marker = "Zz" + secrets.token_hex(4)
        body, client = self.create_client(given_name=marker, family_name=marker + "-Family",
                                          medicaid_id="ZZ%08d" % secrets.randbelow(10 ** 8))
        self.req("GET", "/api/v1/clients/" + client["id"])
        self.req("GET", "/api/v1/clients?assigned_staff_id=me")
        text = self.scrape().text
        for secret in (marker, client["id"], self.user.id, self.user.email,
                       self.user.token, body["medicaid_id"], body["date_of_birth"]):
            self.assertNotIn(secret, text)

    def test_event_lag_and_published_count(self):
        _, client = self.create_client()
        before = self.scrape()
        r = self.req("POST", "/api/v1/clients/%s/enrollments" % client["id"],
                     {"program": "Peer Recovery Support", "pathway": "brief"})
        self.assertEqual(r.status, 201, r.body)
        published = before.get("beacon_events_published_total", service="intake")
        lagged = before.get("beacon_events_lag_seconds_count", service="intake")
        after = self.wait_for(
            lambda m: m.get("beacon_events_published_total", service="intake") > published,
            "publication of the enrollment event")
        self.assertEqual(after.get("beacon_events_lag_seconds_count", service="intake") - lagged,
                         after.get("beacon_events_published_total", service="intake")
                         - published)
        self.assertIn((("service", "intake"),), [tuple(sorted(d.items())) for d, _ in
                                                 after.series("beacon_events_unpublished")])
        self.wait_for(lambda m: m.get("beacon_events_unpublished", service="intake") == 0,
                      "an empty outbox backlog")

    def test_tls_failures_and_plaintext_are_counted(self):
        name = "beacon_tls_handshake_failures_total"
        before = self.scrape()
        raw = socket.create_connection((self.stack.host, self.stack.port), timeout=10 * SCALE)
        try:
            raw.sendall(test_transport.tls_client_hello(0x0302, [0xc02f, 0x002f]))
            test_transport.read_some(raw, timeout=5 * SCALE)
        finally:
            raw.close()
        raw = socket.create_connection((self.stack.host, self.stack.port), timeout=10 * SCALE)
        try:
            raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            test_transport.read_some(raw, timeout=5 * SCALE)
        finally:
            raw.close()
        after = self.scrape()
        self.assertEqual(after.get(name, service="gateway") - before.get(name, service="gateway"),
                         1)
        self.assertEqual(after.get("beacon_tls_plaintext_refused_total", service="gateway")
                         - before.get("beacon_tls_plaintext_refused_total", service="gateway"), 1)

    def test_token_is_required(self):
        for headers in ({}, {"Authorization": "Bearer " + TOKEN + "x"},
                        {"Authorization": "Bearer " + TOKEN[:-1]},
                        {"Authorization": "Basic " + TOKEN},
                        {"Authorization": "Bearer " + self.user.token}):
            r = self.req("GET", "/metrics", headers=headers, auth=False)
            self.assertProblem(r, 401)
            self.assertTrue(r.header("WWW-Authenticate"), r)
            self.assertNotIn(b"beacon_", r.body)
        r = self.req("POST", "/metrics", body={}, auth=False,
                     headers={"Authorization": "Bearer " + TOKEN})
        self.assertProblem(r, 405)
        self.assertEqual(r.header("Allow"), "GET")

    def test_zz_killed_service_is_down_and_the_scrape_still_answers(self):
        code = self.stack.stop_process("reporting", sig=signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL)
        try:
            t0 = time.monotonic()
            m = self.scrape()
            self.assertLess(time.monotonic() - t0, 5 * SCALE)
            self.assertEqual(m.get("beacon_up", service="reporting"), 0.0)
            self.assertNotIn("reporting", {d.get("service") for d, _ in m.series(
                "beacon_rpc_requests_total")})
            for name in SOURCES:
                if name != "reporting":
                    self.assertEqual(m.get("beacon_up", service=name), 1.0, name)
        finally:
            self.stack.start_process("reporting")
        self.wait_for(lambda m: m.get("beacon_up", service="reporting") == 1.0,
                      "reporting back up")


class MetricsOffTests(StackTestCase):
    """metrics=false (the benchmark's baseline): nothing is recorded, the
    scrape still answers."""
    sign_in = "peer_specialist"
    settings = {"metrics": False, "metrics_token": TOKEN}

    def test_nothing_is_recorded(self):
        _, client = self.create_client()
        for _ in range(3):
            self.assertEqual(self.req("GET", "/api/v1/clients/" + client["id"]).status, 200)
        r = self.req("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN}, auth=False)
        self.assertEqual(r.status, 200, r)
        m = Exposition(r.body.decode("utf-8"))
        self.assertEqual(m.series("beacon_http_requests_total"), [])
        self.assertEqual(m.get("beacon_rpc_requests_total", service="intake",
                               method="GetClient", code="OK"), 0)
        self.assertEqual(m.get("beacon_up", service="intake"), 1.0)
