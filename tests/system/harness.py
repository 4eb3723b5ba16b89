"""harness: what every system test class shares.

A StackTestCase starts one whole Beacon stack for its class (deploy/launch.py:
five services and the gateway on free loopback ports, a fresh database, a dev
certificate in a temporary state directory) and stops it afterwards, even when
a test fails. The database is a new one inside the throwaway cluster
tests/run.sh started (BEACON_TEST_DATABASE_URL), or, when the tests run on
their own, a throwaway cluster of the class's own.

Environment:
  BEACON_TEST_BUILD_DIR      folder with bin/beacon-* (default: build)
  BEACON_TEST_DATABASE_URL   cluster to create per-class databases in
  BEACON_TEST_TIME_SCALE     multiplies time limits (default 3 for build/san)
  BEACON_TEST_KEEP           keep state directories (logs) after the run
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "deploy"))

import launch  # noqa: E402  (deploy/launch.py)

BUILD_DIR = os.path.abspath(os.path.join(
    REPO_ROOT, os.environ.get("BEACON_TEST_BUILD_DIR", "build")))
# Sanitizer builds (build/san) run a few times slower.
_san = (os.path.basename(BUILD_DIR) == "san" or BUILD_DIR.endswith("-san")
        or "ASAN_OPTIONS" in os.environ)
_default_scale = "3" if _san else "1"
SCALE = float(os.environ.get("BEACON_TEST_TIME_SCALE", _default_scale))
KEEP = bool(os.environ.get("BEACON_TEST_KEEP"))

SERVICES = launch.SERVICES
PROCESSES = launch.PROCESSES
PROBLEM = "application/problem+json"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_client(**overrides):
    """A valid CreateClient body with a unique family name."""
    body = {
        "given_name": "Robin",
        "family_name": "Test-" + uuid.uuid4().hex[:10],
        "date_of_birth": "1984-06-15",
    }
    body.update(overrides)
    return body


class StackTestCase(unittest.TestCase):
    """Base class: one stack per test class, available as cls.stack."""

    # Extra settings for every process ({name: value}); gateway-only names
    # reach the gateway only.
    settings = {}
    process_settings = {}
    # A role name: the class bootstraps an agency (cls.org, launch.Org) and
    # signs in a staff member with that role at its first site (cls.user);
    # self.req then sends their token (see req).
    sign_in = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.state_dir = tempfile.mkdtemp(prefix="beacon-%s-" % cls.__name__)
        cls.db_name = None
        cls.stack = None
        cls.had_failure = False
        shared = os.environ.get("BEACON_TEST_DATABASE_URL")
        try:
            database_url = None
            if shared:
                cls.db_name = "t_%s_%s" % (cls.__name__.lower(), uuid.uuid4().hex[:8])
                database_url = launch.create_database(shared, cls.db_name)
            settings = {"log_level": "info", "workers": 2}
            if cls.sign_in:
                settings["allow_bootstrap"] = True
            settings.update(cls.settings)
            cls.stack = launch.Stack(
                BUILD_DIR, cls.state_dir, repo_root=REPO_ROOT, database_url=database_url,
                app_role=True,
                throwaway=True, settings=settings, process_settings=cls.process_settings,
                start_timeout=45 * SCALE, stop_timeout=10 * SCALE,
                log=lambda msg: print("  [%s] %s" % (cls.__name__, msg), file=sys.stderr))
            cls.stack.start()
            cls.org = cls.user = None
            if cls.sign_in:
                cls.org = launch.Org(cls.stack).bootstrap()
                cls.user = cls.org.add_staff([cls.sign_in])
        except BaseException:
            cls.had_failure = True
            cls._cleanup(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup(check=True)
        super().tearDownClass()

    @classmethod
    def _cleanup(cls, check):
        codes = {}
        try:
            if cls.stack is not None:
                codes = cls.stack.stop()
        finally:
            if cls.db_name:
                try:
                    launch.drop_database(os.environ["BEACON_TEST_DATABASE_URL"], cls.db_name)
                except Exception as e:  # cleanup must go on
                    print("  [%s] drop database: %s" % (cls.__name__, e), file=sys.stderr)
            bad = {n: c for n, c in codes.items() if c != 0}
            if KEEP or cls.had_failure or bad:
                # Keep the logs (not the cluster) for whoever reads the failure.
                shutil.rmtree(os.path.join(cls.state_dir, "pg"), ignore_errors=True)
                print("  [%s] logs kept in %s/log" % (cls.__name__, cls.state_dir),
                      file=sys.stderr)
            else:
                shutil.rmtree(cls.state_dir, ignore_errors=True)
        if check and bad:
            raise AssertionError("processes did not exit 0 on SIGTERM: %r" % bad)

    def run(self, result=None):
        # When a test fails, show what the processes said.
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self).had_failure = True
            stack = getattr(type(self), "stack", None)
            if stack is not None:
                print("\n  logs after %s:\n%s" % (self.id(), stack.log_tails(12)),
                      file=sys.stderr)
        return out

    # -- helpers ------------------------------------------------------------

    def req(self, method, path, body=None, headers=None, conn=None, timeout=None, auth=True):
        """One request; with sign_in, as cls.user unless auth=False or the
        headers carry their own Authorization."""
        if auth and self.user is not None and "Authorization" not in (headers or {}):
            headers = dict(headers or {}, **self.user.auth)
        return self.stack.request(method, path, body=body, headers=headers, conn=conn,
                                  timeout=timeout or 15 * SCALE)

    def create_client(self, **overrides):
        body = new_client(**overrides)
        resp = self.req("POST", "/api/v1/clients", body)
        self.assertEqual(resp.status, 201, resp)
        return body, resp.json()

    def assertRequestId(self, resp):
        rid = resp.header("X-Request-Id")
        self.assertTrue(rid, "no X-Request-Id on %r" % resp)
        return rid

    def assertProblem(self, resp, status, field=None):
        """Checks an RFC 9457 problem response; returns the parsed body."""
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.content_type, PROBLEM, resp)
        rid = self.assertRequestId(resp)
        try:
            body = resp.json()
        except ValueError:
            self.fail("problem body is not JSON: %r" % resp)
        self.assertIsInstance(body, dict, resp)
        self.assertEqual(body.get("status"), status, body)
        for key in ("type", "title", "detail", "instance", "request_id"):
            self.assertIsInstance(body.get(key), str, "problem member %r in %r" % (key, body))
        self.assertTrue(body["type"], body)
        self.assertTrue(body["title"], body)
        self.assertEqual(body["request_id"], rid, body)
        if field is not None:
            errors = body.get("errors")
            self.assertIsInstance(errors, list, body)
            self.assertTrue(errors, body)
            self.assertEqual(errors[0].get("field"), field, body)
            self.assertIsInstance(errors[0].get("message"), str, body)
            self.assertTrue(errors[0]["message"], body)
        return body

    def assertHealthy(self):
        status, body = self.stack.health(timeout=10 * SCALE)
        self.assertEqual(status, 200, body)

    def psql(self, sql):
        return launch.psql(self.stack.database_url, sql)


def migration_files(service):
    """{version: file name} of services/<service>/migrations/NNN_name.sql."""
    folder = os.path.join(REPO_ROOT, "services", service, "migrations")
    out = {}
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            m = re.match(r"^(\d+)_.+\.sql$", name)
            if m:
                out[int(m.group(1))] = name
    return out


def run_binary(name, args=(), env_extra=None, timeout=10):
    """Runs build/bin/beacon-<name> with args; returns CompletedProcess
    (text). BEACON_* variables of our environment are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEACON_")}
    env.update(env_extra or {})
    return subprocess.run([os.path.join(BUILD_DIR, "bin", "beacon-" + name)] + list(args),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, timeout=timeout * SCALE,
                          cwd=REPO_ROOT)


def json_lines(path):
    """Parses every line of a log file as JSON; returns (objects, bad lines)."""
    good, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            (good if isinstance(obj, dict) else bad).append(obj if isinstance(obj, dict)
                                                            else line)
    return good, bad
