"""The binaries on their own (no stack): documented settings, refusal of bad
settings, and the docker-compose file."""

import os
import shutil
import subprocess
import unittest

from harness import BUILD_DIR, PROCESSES, REPO_ROOT, SCALE, run_binary
from launch import free_port

COMMON = ("database_url", "log_level", "workers", "endpoint_intake", "endpoint_scheduling",
          "endpoint_notes", "endpoint_referral", "endpoint_reporting", "migrations_dir")
GATEWAY = ("listen_address", "listen_port", "tls_cert", "tls_key", "max_body_bytes",
           "request_timeout_ms")


class SettingsTests(unittest.TestCase):

    def setUp(self):
        missing = [p for p in PROCESSES
                   if not os.access(os.path.join(BUILD_DIR, "bin", "beacon-" + p), os.X_OK)]
        self.assertEqual(missing, [], "binaries missing in %s/bin (run make)" % BUILD_DIR)

    def test_help_lists_the_settings(self):
        for name in PROCESSES:
            with self.subTest(process=name):
                proc = run_binary(name, ["--help"])
                self.assertEqual(proc.returncode, 0, proc.stderr)
                text = proc.stdout + proc.stderr
                for setting in COMMON + (GATEWAY if name == "gateway" else ()):
                    self.assertIn(setting, text, "%s --help lacks %s" % (name, setting))

    def test_bad_setting_value_is_refused_at_start(self):
        for name in ("intake", "gateway"):
            for env in ({"BEACON_WORKERS": "many"}, {"BEACON_LOG_LEVEL": "loud"}):
                with self.subTest(process=name, env=env):
                    proc = run_binary(name, env_extra=env, timeout=10)
                    self.assertNotEqual(proc.returncode, 0, proc.stderr)
                    key = list(env)[0][len("BEACON_"):].lower()
                    self.assertIn(key, proc.stderr, proc.stderr)

    def test_unknown_command_line_setting_is_refused(self):
        proc = run_binary("intake", ["--no_such_setting=1"], timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no_such_setting", proc.stderr)

    def test_gateway_without_its_certificate_does_not_start(self):
        proc = run_binary("gateway", env_extra={
            "BEACON_TLS_CERT": "/nonexistent/cert.pem", "BEACON_TLS_KEY": "/nonexistent/key.pem",
            "BEACON_LISTEN_PORT": str(free_port())}, timeout=10)
        self.assertNotEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue("/nonexistent/cert.pem" in proc.stderr or "tls_cert" in proc.stderr,
                        "the error does not name the certificate: %s" % proc.stderr)


class ComposeTests(unittest.TestCase):

    def test_docker_compose_config_is_valid(self):
        path = os.path.join(REPO_ROOT, "docker-compose.yml")
        self.assertTrue(os.path.isfile(path), "docker-compose.yml missing")
        exe = shutil.which("docker-compose")
        if exe is None:
            self.skipTest("docker-compose is not installed (deploy/install-deps.sh installs it)")
        proc = subprocess.run([exe, "-f", "docker-compose.yml", "config", "-q"], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60 * SCALE)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
