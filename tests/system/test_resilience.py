"""Processes coming and going: a stopped service gives fast 503s and the rest
keeps working; restarts re-apply nothing; SIGTERM means a clean exit 0; data
survives restarts; logs are JSON lines."""

import signal
import threading
import time

from harness import (PROCESSES, SCALE, SERVICES, StackTestCase, json_lines,
                     migration_files, new_client)

LEVELS = {"debug", "info", "warn", "error"}


class ResilienceTests(StackTestCase):
    sign_in = "peer_specialist"
    # The default request timeout, stated so "fast" below means something:
    # a stopped service must not make callers wait for it.
    settings = {"request_timeout_ms": 10000}

    def setUp(self):
        # Every test leaves the whole stack running; make sure it starts so.
        for name in PROCESSES:
            if not self.stack.running(name):
                self.stack.start_process(name, wait=False)
        self.stack.wait_healthy(45 * SCALE)

    def _migrations(self):
        rows = self.psql("SELECT service, version, name, applied_at::text "
                         "FROM public.beacon_schema_migrations ORDER BY 1, 2")
        return [tuple(line.split("|")) for line in rows.splitlines() if line]

    def test_stopped_intake_gives_fast_503_and_the_rest_keeps_working(self):
        _, kept = self.create_client()
        self.assertEqual(self.stack.stop_process("intake", timeout=5 * SCALE), 0,
                         self.stack.log_tail("intake"))
        try:
            for method, path, body in (("POST", "/api/v1/clients", new_client()),
                                       ("GET", "/api/v1/clients/" + kept["id"], None)):
                with self.subTest(method=method):
                    resp = self.req(method, path, body)
                    self.assertProblem(resp, 503)
                    self.assertLess(resp.elapsed, 3.0 * SCALE,
                                    "503 took %.1fs" % resp.elapsed)

            t0 = time.monotonic()
            status, health = self.stack.health(timeout=10 * SCALE)
            self.assertLess(time.monotonic() - t0, 5.0 * SCALE)
            self.assertEqual(status, 503, health)
            self.assertIsInstance(health, dict, health)
            self.assertNotEqual(health.get("status"), "ok", health)
            services = health.get("services", {})
            self.assertNotEqual(services.get("intake", {}).get("status"), "ok", health)
            for name in SERVICES:
                if name != "intake":
                    self.assertEqual(services.get(name, {}).get("status"), "ok",
                                     (name, health))
            # The gateway itself still routes and answers.
            self.assertProblem(self.req("GET", "/api/v1/no-such-thing"), 404)
            self.assertProblem(self.req("POST", "/api/v1/clients", "{",
                                        headers={"Content-Type": "application/json"}), 400)
        finally:
            self.stack.start_process("intake", wait=True, timeout=45 * SCALE)

        got = self.req("GET", "/api/v1/clients/" + kept["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json(), kept)
        self.create_client()

    def test_migrations_recorded_once_and_not_reapplied_on_restart(self):
        before = self._migrations()
        pairs = [(r[0], r[1]) for r in before]
        self.assertEqual(len(pairs), len(set(pairs)), before)
        for service in PROCESSES:
            files = migration_files(service)
            recorded = {int(r[1]): r[2] for r in before if r[0] == service}
            if service != "gateway":
                self.assertTrue(files, "services/%s/migrations has no migration" % service)
            self.assertEqual(sorted(recorded), sorted(files), (service, before))
            for version, name in files.items():
                self.assertIn(recorded[version], (name, name[:-len(".sql")]), (service, before))

        for service in ("intake", "notes"):
            self.stack.stop_process(service, timeout=5 * SCALE)
            self.stack.start_process(service, wait=True, timeout=45 * SCALE)
        self.assertEqual(self._migrations(), before)

    def test_services_connect_as_a_role_that_owns_nothing(self):
        # Workers run their queries as beacon_app; row-level security only
        # binds a role that neither owns the tables nor is a superuser.
        rows = self.psql("SELECT DISTINCT usename FROM pg_stat_activity "
                         "WHERE datname = current_database() "
                         "AND application_name ~ '^beacon-[a-z]+-[0-9]+$'")
        self.assertEqual(rows.split(), ["beacon_app"])
        flags = self.psql("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles "
                          "WHERE rolname = 'beacon_app'")
        self.assertEqual(flags.strip(), "f|f|f")
        owned = self.psql("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                          "WHERE r.rolname = 'beacon_app'")
        self.assertEqual(owned.strip(), "0")

    def test_sigterm_makes_each_process_exit_0_quickly(self):
        for name in PROCESSES:
            with self.subTest(process=name):
                t0 = time.monotonic()
                code = self.stack.stop_process(name, timeout=5 * SCALE)
                took = time.monotonic() - t0
                log = self.stack.log_tail(name)
                # Back up before judging, so one bad exit does not hide the rest.
                self.stack.start_process(name, wait=True, timeout=45 * SCALE)
                self.assertEqual(code, 0, "%s: exit %s\n%s" % (name, code, log))
                self.assertLess(took, 5 * SCALE)

    def test_sigterm_under_load_exits_0_and_callers_get_answers(self):
        stop = threading.Event()
        statuses, errors = [], []

        def load():
            conn = self.stack.connect(timeout=15 * SCALE)
            try:
                while not stop.is_set():
                    resp = self.req("POST", "/api/v1/clients", new_client(), conn=conn)
                    statuses.append(resp.status)
            except Exception as e:  # reported on the main thread
                errors.append(repr(e))
            finally:
                conn.close()

        workers = [threading.Thread(target=load) for _ in range(3)]
        for t in workers:
            t.start()
        try:
            deadline = time.monotonic() + 10 * SCALE
            while len(statuses) < 20 and time.monotonic() < deadline and not errors:
                time.sleep(0.02)
            code = self.stack.stop_process("intake", timeout=5 * SCALE)
            self.assertEqual(code, 0, self.stack.log_tail("intake"))
            seen = len(statuses)
            deadline = time.monotonic() + 5 * SCALE
            while len(statuses) < seen + 5 and time.monotonic() < deadline and not errors:
                time.sleep(0.02)
        finally:
            stop.set()
            for t in workers:
                t.join(30 * SCALE)
        self.assertEqual(errors, [])
        self.assertIn(201, statuses)
        self.assertIn(503, statuses)
        self.assertEqual(set(statuses) - {201, 503}, set(), statuses)
        self.stack.start_process("intake", wait=True, timeout=45 * SCALE)
        self.create_client()

    def test_data_survives_a_gateway_restart(self):
        _, created = self.create_client()
        code = self.stack.stop_process("gateway", timeout=5 * SCALE)
        status, _ = self.stack.health(timeout=2)
        self.assertIsNone(status, "gateway still answering after it stopped")
        self.stack.start_process("gateway", wait=True, timeout=45 * SCALE)
        got = self.req("GET", "/api/v1/clients/" + created["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json(), created)
        self.assertEqual(code, 0, "gateway exit status on SIGTERM")

    def test_data_survives_an_intake_restart(self):
        _, created = self.create_client()
        code = self.stack.restart_process("intake", timeout=45 * SCALE)
        got = self.req("GET", "/api/v1/clients/" + created["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json(), created)
        self.assertEqual(code, 0, "intake exit status on SIGTERM")

    def test_logs_are_json_lines_with_level_and_msg(self):
        self.req("GET", "/healthz")
        for name in PROCESSES:
            with self.subTest(process=name):
                good, bad = json_lines(self.stack.log_path(name))
                self.assertEqual(bad[:5], [], "non-JSON lines in %s.log" % name)
                self.assertTrue(good, "%s wrote no log lines" % name)
                for obj in good:
                    self.assertIn(obj.get("level"), LEVELS, obj)
                    self.assertIsInstance(obj.get("msg"), str, obj)


class HungServiceTests(StackTestCase):
    """A service that is alive but does not answer (SIGSTOP): callers get a
    503 once request_timeout_ms has passed, never a hang."""
    sign_in = "peer_specialist"
    settings = {"request_timeout_ms": 1500, "health_timeout_ms": 500}

    def test_hung_intake_gives_503_after_the_request_timeout(self):
        _, kept = self.create_client()
        intake = self.stack.procs["intake"]
        intake.signal(signal.SIGSTOP)
        try:
            for method, path, body in (("POST", "/api/v1/clients", new_client()),
                                       ("GET", "/api/v1/clients/" + kept["id"], None)):
                with self.subTest(method=method):
                    resp = self.req(method, path, body)
                    self.assertProblem(resp, 503)
                    self.assertLess(resp.elapsed, 1.5 + 3.0 * SCALE,
                                    "503 took %.1fs" % resp.elapsed)
            t0 = time.monotonic()
            status, health = self.stack.health(timeout=10 * SCALE)
            self.assertLess(time.monotonic() - t0, 0.5 + 3.0 * SCALE)
            self.assertEqual(status, 503, health)
            self.assertNotEqual(health["services"]["intake"].get("status"), "ok", health)
            self.assertEqual(health["services"]["notes"].get("status"), "ok", health)
        finally:
            intake.signal(signal.SIGCONT)
        self.stack.wait_healthy(30 * SCALE)
        got = self.req("GET", "/api/v1/clients/" + kept["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json(), kept)
        self.create_client()
