#!/usr/bin/env python3
"""launch.py: start, watch and stop a whole Beacon stack on one machine.

A small process supervisor, used two ways:

* as the command behind `make run`:

      python3 deploy/launch.py run --state ./var [--build build]

  keeps its state under ./var (var/pg: the PostgreSQL cluster with fsync on,
  var/tls: the self-signed dev certificate, var/log: one log per process),
  loads a few fictional demo clients once, prints the URL and waits;
  Ctrl-C or SIGTERM stops every process and the cluster cleanly. A second run
  reuses the data.

* as a module the system tests import (tests/system/harness.py):

      stack = launch.Stack(build_dir, state_dir, throwaway=True,
                           gateway_settings={"max_body_bytes": 4096})
      stack.start()            # cluster, cert, five services, gateway, /healthz 200
      stack.request("GET", "/healthz")
      stack.stop_process("intake"); stack.start_process("intake")
      stack.stop()             # SIGTERM to all, exit codes, cluster stopped

Standard library only. Settings reach the processes as BEACON_<NAME>
environment variables (see `beacon-gateway --help`). PostgreSQL runs through
deploy/pg-cluster.sh as the unprivileged postgres user on a private Unix
socket; the certificate comes from deploy/gen-cert.sh.
"""

import argparse
import base64
import contextlib
import ctypes
import errno
import fcntl
import hmac
import http.client
import json
import os
import secrets
import signal
import random
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)

# Back-end services, in start order; the gateway starts after them.
SERVICES = ("intake", "scheduling", "notes", "referral", "reporting")
# The producers whose events the reporting service consumes; identity's
# are published by the gateway, which hosts it.
PRODUCERS = ("intake", "scheduling", "notes", "referral", "identity")
PRODUCER_PROCESS = {"identity": "gateway"}
GATEWAY = "gateway"
PROCESSES = SERVICES + (GATEWAY,)

# Ports `make run` tries first (each replaced by a free one when busy).
DEFAULT_GATEWAY_PORT = 8443
DEFAULT_SERVICE_PORTS = {"intake": 7101, "scheduling": 7102, "notes": 7103,
                         "referral": 7104, "reporting": 7105, "identity": 7106}

# Settings only the gateway declares; everything else goes to every process.
GATEWAY_ONLY = {"listen_address", "listen_port", "tls_cert", "tls_key",
                "max_body_bytes", "request_timeout_ms", "health_timeout_ms",
                "gateway_threads", "idle_timeout_ms", "allow_bootstrap",
                "metrics_token", "metrics_timeout_ms"}

_PR_SET_PDEATHSIG = 1


class LaunchError(Exception):
    """The stack could not be started or stopped as asked."""


# --------------------------------------------------------------------------
# Small helpers

def _ephemeral_range():
    """The kernel's range for the local ports of outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now, below the kernel's range for
    outgoing connections. A port from that range (what bind(0) gives) can be
    taken as the local end of some connection between the moment it is
    picked and the moment a process binds it; with a stack of six processes
    connecting to each other and to PostgreSQL that happened ("Address
    already in use" at start-up). Falls back to the kernel's choice when no
    port below the range is free."""
    low, _ = _ephemeral_range()
    if low > 20000:
        for _ in range(64):
            port = random.randint(15000, low - 1)
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def conninfo_parse(conninfo):
    """'host=/x port=5 dbname=d user=u' -> dict (no quoting: our own URLs only)."""
    out = {}
    for token in conninfo.split():
        key, _, value = token.partition("=")
        out[key] = value
    return out


def conninfo_format(parts):
    return " ".join("%s=%s" % (k, v) for k, v in parts.items())


def psql(conninfo, sql, timeout=30):
    """Runs sql through psql (unaligned, tuples only); returns stdout.

    Raises LaunchError with psql's message on failure.
    """
    proc = subprocess.run(
        ["psql", conninfo, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    if proc.returncode != 0:
        raise LaunchError("psql failed: %s" % proc.stderr.strip())
    return proc.stdout


def create_database(conninfo, name):
    """Creates database `name` owned by conninfo's user, in conninfo's cluster,
    connecting as the postgres superuser over the same Unix socket (local
    connections are trusted in clusters made by pg-cluster.sh). Returns the
    conninfo of the new database."""
    parts = conninfo_parse(conninfo)
    admin = dict(parts, dbname="postgres", user="postgres")
    owner = parts.get("user", "beacon")
    psql(conninfo_format(admin), 'CREATE DATABASE "%s" OWNER "%s"' % (name, owner))
    return conninfo_format(dict(parts, dbname=name))


def drop_database(conninfo, name):
    parts = conninfo_parse(conninfo)
    admin = dict(parts, dbname="postgres", user="postgres")
    psql(conninfo_format(admin), 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def tail(path, lines=40):
    """Last `lines` lines of a text file ('' when absent)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _describe_exit(code):
    if code is None:
        return "still running"
    if code < 0:
        try:
            return "killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exit %d" % code


def _child_setup():
    # Runs in the child before exec: if the supervisor dies without stopping
    # us (SIGKILL, crash), the kernel sends SIGTERM so no service is orphaned.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# PostgreSQL

class Cluster:
    """A private PostgreSQL cluster in `directory`, managed by pg-cluster.sh."""

    def __init__(self, directory, port=None, throwaway=False, repo_root=REPO_ROOT):
        self.dir = os.path.abspath(directory)
        self.throwaway = throwaway
        self.script = os.path.join(repo_root, "deploy", "pg-cluster.sh")
        self.port = port
        self.url = None

    def _port_file(self):
        return os.path.join(self.dir, "port")

    def start(self):
        """Creates the cluster if absent, starts it if stopped; returns the
        conninfo of the beacon database."""
        _make_traversable(os.path.dirname(self.dir))
        if self.port is None:
            try:
                with open(self._port_file()) as f:
                    self.port = int(f.read().strip())
            except (OSError, ValueError):
                # The port only names the socket file in the cluster's private
                # run directory, so any number works; a free one avoids
                # confusing anyone who looks at `ss`.
                self.port = free_port()
        argv = ["bash", self.script, "init", self.dir, str(self.port)]
        if self.throwaway:
            argv.append("--throwaway")
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=180)
        if proc.returncode != 0:
            raise LaunchError("pg-cluster.sh init failed:\n%s\n%s" % (
                proc.stderr.strip(), tail(os.path.join(self.dir, "postgres.log"), 20)))
        self.url = proc.stdout.strip().splitlines()[-1]
        with open(self._port_file(), "w") as f:
            f.write("%d\n" % self.port)
        return self.url

    def stop(self):
        subprocess.run(["bash", self.script, "stop", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


def _make_traversable(path):
    """The postgres user must be able to reach the cluster directory: add the
    search bit (not read) for others on directories we own under /tmp-style
    private parents (mkdtemp makes them 0700)."""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_uid == os.getuid() and not st.st_mode & 0o001:
        os.chmod(path, (st.st_mode & 0o7777) | 0o011)


# --------------------------------------------------------------------------
# Processes

class Process:
    """One Beacon binary with its settings and its log file."""

    def __init__(self, name, binary, env, log_path, cwd):
        self.name = name
        self.binary = binary
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.popen = None
        self.returncode = None

    def start(self):
        if self.running():
            raise LaunchError("%s is already running (pid %d)" % (self.name, self.popen.pid))
        if not os.access(self.binary, os.X_OK):
            raise LaunchError("%s: binary not found or not executable: %s (run `make`)"
                              % (self.name, self.binary))
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            # Own session: a Ctrl-C in the terminal reaches only the
            # supervisor, which then stops every process in order.
            self.popen = subprocess.Popen(
                [self.binary], env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_child_setup)
        self.returncode = None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def signal(self, sig):
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code, or None on timeout."""
        if self.popen is None:
            return self.returncode
        try:
            self.returncode = self.popen.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def kill(self):
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()
            self.returncode = self.popen.returncode


# --------------------------------------------------------------------------
# HTTP client side

class Response:
    """A fully read HTTP response."""

    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers      # http.client.HTTPMessage (case-insensitive)
        self.body = body            # bytes
        self.elapsed = elapsed      # seconds

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.body[:300].decode("utf-8", "replace")
        return "<Response %d %s %r>" % (self.status, self.content_type, body)


def client_context(cafile, minimum=None, maximum=None, ciphers=None):
    """An SSL client context that trusts cafile and checks the host name."""
    ctx = ssl.create_default_context(cafile=cafile)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


# --------------------------------------------------------------------------
# The stack

class Stack:
    """PostgreSQL (own cluster or a given database), the five services and the
    gateway, on loopback.

    build_dir        folder holding bin/beacon-* (e.g. build, build/san)
    state_dir        log/, tls/ and (unless database_url is given) pg/
    database_url     use this database instead of a cluster of our own
    throwaway        own cluster without fsync (tests)
    keep_cluster     stop() leaves the cluster running
    gateway_port     None: a free port; an int: that port (a free one if busy
                     and fixed_ports_fallback is set)
    service_ports    {service: port}, same rules
    settings         extra settings for every process {name: value}; gateway
                     only names (GATEWAY_ONLY) go to the gateway only
    process_settings {process: {name: value}} for one process
    inherit_env      pass BEACON_* variables of our environment through
                     (default: dropped, so tests are not steered by the shell)
    """

    def __init__(self, build_dir, state_dir, repo_root=REPO_ROOT, database_url=None, app_role=False,
                 throwaway=True, keep_cluster=False, gateway_port=None,
                 service_ports=None, fixed_ports_fallback=True, settings=None,
                 process_settings=None, inherit_env=False, start_timeout=60.0,
                 stop_timeout=10.0, log=None):
        self.repo_root = os.path.abspath(repo_root)
        self.build_dir = os.path.abspath(build_dir)
        self.state_dir = os.path.abspath(state_dir)
        self.log_dir = os.path.join(self.state_dir, "log")
        self.tls_dir = os.path.join(self.state_dir, "tls")
        self.cert_path = os.path.join(self.tls_dir, "cert.pem")
        self.keys_dir = os.path.join(self.state_dir, "keys")
        self.field_keys_path = os.path.join(self.keys_dir, "field.keys")
        self.key_path = os.path.join(self.tls_dir, "key.pem")
        self.database_url = database_url
        # With our own cluster, services always use the beacon_app role; with
        # a given database_url only when app_role is set.
        self.app_role = app_role
        self.cluster = None
        if database_url is None:
            self.cluster = Cluster(os.path.join(self.state_dir, "pg"), throwaway=throwaway,
                                   repo_root=self.repo_root)
        self.keep_cluster = keep_cluster
        self.settings = dict(settings or {})
        self.process_settings = {k: dict(v) for k, v in (process_settings or {}).items()}
        self.inherit_env = inherit_env
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.host = "127.0.0.1"
        self._log = log or (lambda msg: print("launch: " + msg, file=sys.stderr, flush=True))
        self._fallback = fixed_ports_fallback
        self.port = self._pick_port(gateway_port)
        self.service_ports = {}
        for name in SERVICES:
            wanted = (service_ports or {}).get(name)
            self.service_ports[name] = self._pick_port(wanted, taken=self.service_ports.values())
        self.endpoints = {name: "tcp://127.0.0.1:%d" % port
                          for name, port in self.service_ports.items()}
        # Services that publish events (reporting and beacon-events-tail
        # read them): each on its service port + 100 when free.
        self.event_ports = {}
        for name in PRODUCERS:
            wanted = (service_ports or {}).get(name)
            self.event_ports[name] = self._pick_port(
                wanted + 100 if wanted else None,
                taken=list(self.service_ports.values()) + list(self.event_ports.values()))
        self.event_endpoints = {name: "tcp://127.0.0.1:%d" % port
                                for name, port in self.event_ports.items()}
        # identity lives in the gateway, reached in-process; the gateway
        # answers only its ReplayEvents here, for the reporting consumer.
        self.identity_port = self._pick_port(
            (service_ports or {}).get("identity"),
            taken=list(self.service_ports.values()) + list(self.event_ports.values()))
        self.identity_endpoint = "tcp://127.0.0.1:%d" % self.identity_port
        self.procs = {}
        self._ctx = None

    # -- set-up -------------------------------------------------------------

    def _pick_port(self, wanted, taken=()):
        taken = set(taken) | ({self.port} if getattr(self, "port", None) else set())
        if wanted and wanted not in taken and port_is_free(wanted):
            return wanted
        if wanted and not self._fallback:
            raise LaunchError("port %d is busy" % wanted)
        while True:
            port = free_port()
            if port not in taken:
                if wanted:
                    self._log("port %d is busy; using %d" % (wanted, port))
                return port

    @property
    def url(self):
        return "https://localhost:%d" % self.port

    def binary(self, name):
        return os.path.join(self.build_dir, "bin", "beacon-" + name)

    def ensure_cert(self):
        """Generates the dev certificate unless both files exist."""
        if os.path.exists(self.cert_path) and os.path.exists(self.key_path):
            return
        proc = subprocess.run(["bash", os.path.join(self.repo_root, "deploy", "gen-cert.sh"),
                               self.tls_dir], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        if proc.returncode != 0:
            raise LaunchError("gen-cert.sh failed: %s" % proc.stderr.strip())

    def ensure_keys(self):
        """Creates the field-encryption key file unless it exists (kept with
        the data it protects the reading of: losing it loses the encrypted
        identifiers)."""
        proc = subprocess.run(["bash", os.path.join(self.repo_root, "deploy", "gen-keys.sh"),
                               self.keys_dir], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        if proc.returncode != 0:
            raise LaunchError("gen-keys.sh failed: %s" % proc.stderr.strip())

    def app_database_url(self):
        """The conninfo services use: the owner's with user=beacon_app, for
        clusters made by pg-cluster.sh (which creates that role); an explicit
        database_url is used as it is."""
        if self.cluster is None and not self.app_role:
            return self.database_url
        return conninfo_format(dict(conninfo_parse(self.database_url), user="beacon_app"))

    def _env_for(self, name):
        env = {k: v for k, v in os.environ.items()
               if self.inherit_env or not k.startswith("BEACON_")}
        values = {
            # Services connect as beacon_app (owns nothing, so row-level
            # security applies); migrations run as the owner.
            "database_url": self.app_database_url(),
            "migration_database_url": self.database_url,
            "migrations_dir": os.path.join(self.repo_root, "services"),
            "common_migrations_dir": os.path.join(self.repo_root, "common", "migrations"),
            "field_keys_file": self.field_keys_path,
        }
        # Every process learns every service's endpoints: the gateway calls
        # them all, and services call each other (referral asks intake's
        # CheckConsent before a disclosure to a partner). The system tests
        # (harness.py) and the benchmarks (tests/bench/stack.py) start their
        # stacks through this class, so they are wired the same way.
        for svc, endpoint in self.endpoints.items():
            values["endpoint_" + svc] = endpoint
        values["endpoint_identity"] = self.identity_endpoint
        for producer, endpoint in self.event_endpoints.items():
            if PRODUCER_PROCESS.get(producer, producer) == name:
                values["events_bind_endpoint"] = endpoint
        if name == "reporting":
            for producer, endpoint in self.event_endpoints.items():
                values["events_endpoint_" + producer] = endpoint
        if name == GATEWAY:
            values.update(listen_address=self.host, listen_port=str(self.port),
                          tls_cert=self.cert_path, tls_key=self.key_path)
        for key, value in self.settings.items():
            if key in GATEWAY_ONLY and name != GATEWAY:
                continue
            values[key] = value
        values.update(self.process_settings.get(name, {}))
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            env["BEACON_" + key.upper()] = str(value)
        return env

    def _process(self, name):
        proc = self.procs.get(name)
        if proc is None:
            proc = Process(name, self.binary(name), self._env_for(name),
                           os.path.join(self.log_dir, name + ".log"), self.repo_root)
            self.procs[name] = proc
        return proc

    def start(self, wait=True):
        """Starts the cluster (unless a database_url was given), makes the
        certificate, starts every service then the gateway and waits for
        /healthz 200. On failure, stops what it started and raises LaunchError
        carrying the tail of the logs."""
        # Logs carry request ids and paths: readable by the operator only.
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        os.chmod(self.log_dir, 0o700)
        for name in PROCESSES:
            if not os.access(self.binary(name), os.X_OK):
                raise LaunchError("binary not found: %s (run `make`)" % self.binary(name))
        try:
            if self.cluster is not None:
                t0 = time.monotonic()
                self.database_url = self.cluster.start()
                self._log("PostgreSQL ready in %.1fs: %s" % (time.monotonic() - t0,
                                                            self.database_url))
            self.ensure_cert()
            self.ensure_keys()
            for name in SERVICES:
                self._process(name).start()
            self._process(GATEWAY).start()
            if wait:
                self.wait_healthy(self.start_timeout)
        except BaseException:
            self.stop(quiet=True)
            raise
        return self

    # -- health ---------------------------------------------------------------

    def ssl_context(self, **kwargs):
        """A client context trusting this stack's certificate (see client_context)."""
        if not kwargs:
            if self._ctx is None:
                self._ctx = client_context(self.cert_path)
            return self._ctx
        return client_context(self.cert_path, **kwargs)

    def connect(self, timeout=10.0, context=None):
        """A new HTTPS connection to the gateway (host name checked as 127.0.0.1)."""
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                           context=context or self.ssl_context())

    def request(self, method, path, body=None, headers=None, conn=None, timeout=10.0):
        """Sends one request and reads the whole response. body: bytes, str or
        anything json.dumps takes (then Content-Type defaults to
        application/json). With conn, the connection is reused (keep-alive)
        and left open; otherwise a new one is opened and closed."""
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray, str)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        own = conn is None
        if own:
            conn = self.connect(timeout=timeout)
        try:
            t0 = time.monotonic()
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.headers, data,
                            time.monotonic() - t0)
        finally:
            if own:
                conn.close()

    def health(self, timeout=5.0):
        """(status, parsed body or None) of GET /healthz; (None, error) when
        the gateway does not answer."""
        try:
            resp = self.request("GET", "/healthz", timeout=timeout)
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            return None, e
        try:
            return resp.status, resp.json()
        except ValueError:
            return resp.status, None

    def wait_healthy(self, timeout=None, expect=200):
        """Polls /healthz until it answers `expect`. Raises LaunchError (with
        the logs' tails) when a process exits or the time runs out."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while True:
            for name, proc in self.procs.items():
                if proc.popen is not None and not proc.running():
                    raise LaunchError("%s stopped during start-up (%s)\n%s" % (
                        name, _describe_exit(proc.popen.returncode), self.log_tails()))
            status, body = self.health(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if status == expect:
                return body
            last = (status, body)
            if time.monotonic() >= deadline:
                raise LaunchError("GET /healthz did not answer %d within %.0fs (last: %r)\n%s"
                                  % (expect, timeout, last, self.log_tails()))
            time.sleep(0.1)

    # -- one process ----------------------------------------------------------

    def running(self, name):
        proc = self.procs.get(name)
        return proc is not None and proc.running()

    def pid(self, name):
        return self.procs[name].pid

    def stop_process(self, name, sig=signal.SIGTERM, timeout=None):
        """Sends sig to one process and waits for it (bounded). Returns its
        exit code (negative: killed by that signal); when it does not exit in
        time it is killed and LaunchError is raised."""
        timeout = self.stop_timeout if timeout is None else timeout
        proc = self.procs[name]
        proc.signal(sig)
        code = proc.wait(timeout)
        if code is None:
            proc.kill()
            raise LaunchError("%s did not exit within %.0fs of %s; killed\n%s" % (
                name, timeout, signal.Signals(sig).name, tail(proc.log_path, 20)))
        return code

    def start_process(self, name, wait=True, timeout=None):
        """Starts one process again (same settings, same ports); with wait,
        blocks until /healthz is 200 again."""
        self._process(name).start()
        if wait:
            self.wait_healthy(timeout)

    def restart_process(self, name, timeout=None):
        code = self.stop_process(name)
        self.start_process(name, wait=True, timeout=timeout)
        return code

    def log_path(self, name):
        return os.path.join(self.log_dir, name + ".log")

    def log_tail(self, name, lines=30):
        """The last `lines` lines of a process's log, leaving out sanitizer
        stack frames (a leak report would otherwise fill the whole tail)."""
        text = tail(self.log_path(name), lines * 20)
        keep, frames = [], 0
        for line in text.splitlines():
            if line.lstrip().startswith("#") or not line.strip():
                frames += 1
                continue
            keep.append(line)
        out = "\n".join(keep[-lines:])
        if frames:
            out += "\n(%d sanitizer stack-frame lines left out; see %s)" % (
                frames, self.log_path(name))
        return out

    def log_tails(self, lines=15):
        out = []
        for name in PROCESSES:
            text = self.log_tail(name, lines)
            if text:
                out.append("---- %s (%s) ----\n%s" % (name, self.log_path(name), text))
        return "\n".join(out)

    # -- stop -----------------------------------------------------------------

    def stop(self, quiet=False):
        """SIGTERM to the gateway, then to every service; waits (bounded,
        SIGKILL after stop_timeout); stops the cluster unless keep_cluster.
        Returns {name: exit code} of the processes that were running."""
        codes = {}
        order = [[GATEWAY], list(SERVICES)]
        for group in order:
            procs = [self.procs[n] for n in group if n in self.procs and self.procs[n].running()]
            for proc in procs:
                proc.signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            for proc in procs:
                code = proc.wait(deadline - time.monotonic())
                if code is None:
                    self._log("%s did not stop within %.0fs; killing it"
                              % (proc.name, self.stop_timeout))
                    proc.kill()
                    code = proc.returncode
                codes[proc.name] = code
        bad = {n: c for n, c in codes.items() if c != 0}
        if codes and not quiet:
            self._log("stopped: " + ", ".join("%s %s" % (n, _describe_exit(c))
                                              for n, c in codes.items()))
        if bad and not quiet:
            # Whole tails, stack frames included: this is where a sanitizer
            # report (leak, overflow) shows up.
            self._log("processes with a non-zero exit:\n" + "\n".join(
                "---- %s (%s) ----\n%s" % (n, self.log_path(n), tail(self.log_path(n), 40))
                for n in bad))
        if self.cluster is not None and not self.keep_cluster and self.cluster.url:
            self.cluster.stop()
        return codes

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --------------------------------------------------------------------------
# `make run`

class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop(signum)


def totp(otpauth_uri, step_offset=0, now=None):
    """The RFC 6238 code (SHA-1, 6 digits, 30 s steps) for the secret in an
    otpauth:// URI, at the current step plus step_offset."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(otpauth_uri).query)
    secret = query["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    counter = int((now if now is not None else time.time()) // 30) + step_offset
    mac = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    offset = mac[-1] & 15
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1000000)


# Roles whose sessions carry their roles only after a second factor.
MFA_ROLES = ("agency_admin", "site_admin")


class OrgError(LaunchError):
    pass


class Org:
    """An agency built through the HTTPS API the way its administrators
    would: POST /api/v1/bootstrap (the first agency, site and agency_admin),
    the admin's TOTP enrolment, then sites and staff. Used by `make run` (the
    demo logins), the system tests and the benchmarks.

        org = Org(stack).bootstrap()
        site = org.add_site("Westside")
        peer = org.add_staff(["peer_specialist"], [site])
        stack.request("GET", "/api/v1/clients/...", headers=peer.auth)
    """

    class Staff:
        def __init__(self, staff_id, email, password, roles, site_ids, token, otpauth=None):
            self.id, self.email, self.password = staff_id, email, password
            self.roles, self.site_ids = list(roles), list(site_ids)
            self.token, self.otpauth = token, otpauth
            # A TOTP code is good once per account: each sign-in takes the
            # next step (the verifier allows one step of clock drift).
            self.next_step = 1

        @property
        def auth(self):
            return {"Authorization": "Bearer " + self.token}

    def __init__(self, stack, agency_name="Harbor Recovery Network", domain=None):
        self.stack = stack
        self.agency_name = agency_name
        self.domain = domain or "%s.beacon.test" % secrets.token_hex(4)
        self.site_id = None
        self.admin = None
        self.directory_services = {}

    def _req(self, method, path, body=None, headers=None, expect=200):
        r = self.stack.request(method, path, body=body, headers=headers)
        if r.status != expect:
            raise OrgError("%s %s answered %d, not %d: %s" % (
                method, path, r.status, expect, r.body[:300].decode("utf-8", "replace")))
        return r.json()

    def _email(self, who):
        return "%s-%s@%s" % (who, secrets.token_hex(3), self.domain)

    def bootstrap(self, site_name="Eastside Center", time_zone="America/New_York",
                  admin_email=None, admin_password=None):
        email = admin_email or self._email("admin")
        password = admin_password or secrets.token_urlsafe(12)
        doc = self._req("POST", "/api/v1/bootstrap", {
            "agency_name": self.agency_name, "site_name": site_name, "time_zone": time_zone,
            "admin_email": email, "admin_given_name": "Robin", "admin_family_name": "Admin",
            "admin_password": password}, expect=201)
        self.site_id = doc["site"]["id"]
        admin_id = doc.get("admin", {}).get("id", "")
        self.admin = self._sign_in_new(admin_id, email, password, ["agency_admin"],
                                       [self.site_id])
        return self

    def _sign_in_new(self, staff_id, email, password, roles, site_ids):
        """First sign-in of a new account, enrolling TOTP when a role needs it."""
        token = self._req("POST", "/api/v1/sessions", {"email": email, "password": password},
                          expect=201)["token"]
        staff = Org.Staff(staff_id, email, password, roles, site_ids, token)
        if any(r in MFA_ROLES for r in roles):
            auth = {"Authorization": "Bearer " + token}
            staff.otpauth = self._req("POST", "/api/v1/me/totp", {}, auth,
                                      expect=201)["otpauth_uri"]
            self._req("POST", "/api/v1/me/totp/confirm", {"code": totp(staff.otpauth)}, auth)
            self.sign_in(staff)
        return staff

    def sign_in(self, staff):
        """A new session for staff (its token replaces staff.token)."""
        body = {"email": staff.email, "password": staff.password}
        if staff.otpauth:
            body["totp_code"] = totp(staff.otpauth, staff.next_step)
            staff.next_step += 1
        staff.token = self._req("POST", "/api/v1/sessions", body, expect=201)["token"]
        return staff

    def add_site(self, name=None, allow_site_caseload=False, time_zone="America/Chicago"):
        return self._req("POST", "/api/v1/sites", {
            "name": name or "Site %s" % secrets.token_hex(3), "time_zone": time_zone,
            "allow_site_caseload": allow_site_caseload}, self.admin.auth, expect=201)["id"]

    def add_staff(self, roles, site_ids=None, email=None, password=None, given_name="Sam",
                  family_name=None, organization_id=None):
        """A new account signed in. A partner account acts for an organisation
        of the directory: organization_id, or else a new one (see
        add_directory_organization)."""
        email = email or self._email(roles[0].replace("_", "-") if roles else "staff")
        password = password or secrets.token_urlsafe(12)
        site_ids = list(site_ids if site_ids is not None else [self.site_id])
        body = {"given_name": given_name,
                "family_name": family_name or "Staff-" + secrets.token_hex(3),
                "email": email, "roles": list(roles), "site_ids": site_ids, "password": password}
        if "partner" in roles:
            body["organization_id"] = organization_id or self.add_directory_organization()
        doc = self._req("POST", "/api/v1/staff", body, self.admin.auth, expect=201)
        staff = self._sign_in_new(doc["id"], email, password, roles, site_ids)
        staff.organization_id = body.get("organization_id")
        return staff

    def add_directory_organization(self, name=None, services=()):
        """Imports an HSDS organisation (and services, by name, all active)
        into the agency's directory as its admin; returns the organisation's
        id (services' ids: self.directory_services[name])."""
        org_id = str(uuid.uuid4())
        record = {"id": org_id, "name": name or "Partner Org " + secrets.token_hex(3)}
        files = [{"name": "organizations.json", "content": base64.b64encode(
            json.dumps([record]).encode()).decode()}]
        svcs = []
        for sname in services:
            sid = str(uuid.uuid4())
            self.directory_services[sname] = sid
            svcs.append({"id": sid, "organization_id": org_id, "name": sname, "status": "active"})
        if svcs:
            files.append({"name": "services.json", "content": base64.b64encode(
                json.dumps(svcs).encode()).decode()})
        doc = self._req("POST", "/api/v1/directory/import", {"files": files}, self.admin.auth)
        if doc.get("refused"):
            raise OrgError("directory import refused: %r" % doc)
        return org_id


def _load_demo_logins(stack, state_dir):
    """On the first run, creates a demo agency, site and agency_admin through
    POST /api/v1/bootstrap, enrols the admin's second factor and adds a
    supervisor and a peer specialist; records the logins (random passwords)
    in state_dir, readable by the owner only. Returns (record, lines to
    print); record is None when the logins could not be made."""
    record_path = os.path.join(state_dir, "demo-logins.json")
    try:
        with open(record_path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = None
    if rec is None:
        org = Org(stack, agency_name="Demo Recovery Network", domain="demo.beacon.test")
        try:
            org.bootstrap(site_name="Demo Community Center",
                          admin_email="admin@demo.beacon.test")
            sup = org.add_staff(["supervisor"], email="supervisor@demo.beacon.test",
                                given_name="Demo", family_name="Supervisor")
            peer = org.add_staff(["peer_specialist"], email="peer@demo.beacon.test",
                                 given_name="Demo", family_name="Peer")
        except OrgError as e:
            return None, ["demo logins not created: %s" % e]
        rec = {"admin_email": org.admin.email, "admin_password": org.admin.password,
               "admin_otpauth": org.admin.otpauth,
               "supervisor_email": sup.email, "supervisor_password": sup.password,
               "peer_email": peer.email, "peer_password": peer.password,
               "site_id": org.site_id}
        tmp = record_path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(rec, f, indent=2)
        os.replace(tmp, record_path)
    lines = ["agency_admin     %s / %s" % (rec["admin_email"], rec["admin_password"]),
             "                 second factor: %s" % rec["admin_otpauth"],
             "                 (add it to an authenticator app; codes also from deploy/launch.py totp())"]
    if rec.get("supervisor_email"):
        lines.append("supervisor       %s / %s" % (rec["supervisor_email"],
                                                   rec["supervisor_password"]))
    lines += ["peer_specialist  %s / %s" % (rec["peer_email"], rec["peer_password"]),
              "(kept in %s; sign in with POST /api/v1/sessions)" % (
                  record_path if os.path.relpath(record_path).startswith("..")
                  else os.path.relpath(record_path))]
    return rec, lines


def _load_demo_data(stack, state_dir, demo_file, logins):
    """Creates the demo clients once, as the demo peer specialist (so they
    are on the peer's caseload); records their ids in state_dir so a second
    run (same database) does not duplicate them."""
    if not logins:
        return "no demo data (no demo logins)"
    r = stack.request("POST", "/api/v1/sessions", body={
        "email": logins["peer_email"], "password": logins["peer_password"]})
    if r.status != 201:
        return "no demo data: the demo peer specialist could not sign in (%d)" % r.status
    auth = {"Authorization": "Bearer " + r.json()["token"]}
    record_path = os.path.join(state_dir, "demo-data.json")
    try:
        with open(record_path) as f:
            record = json.load(f)
        ids = record.get("clients", [])
        if ids and stack.request("GET", "/api/v1/clients/" + ids[0], headers=auth).status == 200:
            return "demo data already loaded (%d clients)" % len(ids)
    except (OSError, ValueError):
        pass
    try:
        with open(demo_file) as f:
            demo = json.load(f)
    except (OSError, ValueError) as e:
        return "no demo data (%s)" % e
    ids = []
    for client in demo.get("clients", []):
        resp = stack.request("POST", "/api/v1/clients", client, headers=auth)
        if resp.status != 201:
            return "demo data not loaded: POST /api/v1/clients answered %d: %s" % (
                resp.status, resp.body[:300].decode("utf-8", "replace"))
        ids.append(resp.json()["id"])
    stack.request("DELETE", "/api/v1/sessions/current", headers=auth)
    tmp = record_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "clients": ids}, f, indent=2)
    os.replace(tmp, record_path)
    return "loaded %d demo clients (on the demo peer specialist's caseload)" % len(ids)


def _rotate_logs(log_dir):
    if not os.path.isdir(log_dir):
        return
    for name in PROCESSES:
        path = os.path.join(log_dir, name + ".log")
        if os.path.exists(path):
            os.replace(path, path + ".1")


def cmd_run(args):
    state = os.path.abspath(args.state)
    os.makedirs(state, exist_ok=True)
    os.chmod(state, 0o711)
    # One `make run` per state directory: two stacks on one cluster would
    # fight over ports and data.
    lock = open(os.path.join(state, "launch.lock"), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            print("launch: another `make run` is using %s" % state, file=sys.stderr)
            return 1
        raise
    lock.seek(0)
    lock.truncate()
    lock.write("%d\n" % os.getpid())
    lock.flush()

    settings = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            print("launch: --set wants name=value, got %r" % item, file=sys.stderr)
            return 2
        settings[key.strip()] = value.strip()
    # The first run creates the demo agency and its admin through the
    # bootstrap route, which refuses once any staff account exists.
    settings.setdefault("allow_bootstrap", "true")

    _rotate_logs(os.path.join(state, "log"))
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    stack = None
    status = 0
    try:
        stack = Stack(args.build, state, database_url=args.database_url, throwaway=False,
                      gateway_port=args.port, service_ports=DEFAULT_SERVICE_PORTS,
                      settings=settings, inherit_env=True, start_timeout=args.timeout)
        print("launch: starting PostgreSQL (%s), five services and the gateway..."
              % (args.database_url and "given database" or os.path.join(state, "pg")),
              flush=True)
        stack.start()
        demo = "demo data skipped (--no-demo)"
        logins = ["none (--no-demo): create the first admin with POST /api/v1/bootstrap"]
        if not args.no_demo:
            rec, logins = _load_demo_logins(stack, state)
            demo = _load_demo_data(stack, state, args.demo_data, rec)
        def show(path):
            rel = os.path.relpath(path)
            return path if rel.startswith("..") else rel
        rel_cert = show(stack.cert_path)
        print("""
Beacon is running.
  URL:    %(url)s   (also https://127.0.0.1:%(port)d; self-signed certificate)
  Try:    curl --cacert %(cert)s %(url)s/healthz
          curl --cacert %(cert)s -H 'Content-Type: application/json' \\
               -d '{"email":"peer@demo.beacon.test","password":"<below>"}' %(url)s/api/v1/sessions
          curl --cacert %(cert)s -H 'Authorization: Bearer <token>' \\
               -H 'Content-Type: application/json' \\
               -d '{"given_name":"Ada","family_name":"Example","date_of_birth":"1990-04-01"}' \\
               %(url)s/api/v1/clients
  Logs:   %(logs)s/<process>.log (JSON lines)
  Data:   %(data)s
  Demo:   %(demo)s
  Logins: %(logins)s
Press Ctrl-C to stop.""" % {
            "url": stack.url, "port": stack.port, "cert": rel_cert,
            "logs": show(stack.log_dir),
            "data": stack.database_url if args.database_url else show(
                os.path.join(state, "pg")) + " (reused by the next run)",
            "demo": demo, "logins": "\n          ".join(logins)}, flush=True)
        while True:
            for name, proc in stack.procs.items():
                if not proc.running():
                    raise LaunchError("%s stopped unexpectedly (%s)\n%s" % (
                        name, _describe_exit(proc.popen.returncode),
                        stack.log_tail(name, 30)))
            time.sleep(0.5)
    except _Stop as e:
        print("\nlaunch: %s received, stopping..." % signal.Signals(e.args[0]).name, flush=True)
    except LaunchError as e:
        print("launch: %s" % e, file=sys.stderr, flush=True)
        status = 1
    finally:
        # Stopping must not be interrupted half way by an impatient Ctrl-C.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda s, f: print("launch: still stopping, please wait",
                                                  file=sys.stderr, flush=True))
        if stack is not None:
            codes = stack.stop(quiet=True)
            if codes:
                print("launch: stopped: " + ", ".join(
                    "%s %s" % (n, _describe_exit(c)) for n, c in codes.items()), flush=True)
            if any(c != 0 for c in codes.values()):
                status = status or 1
            if stack.cluster is not None and stack.cluster.url:
                print("launch: PostgreSQL stopped; data kept in %s" % stack.cluster.dir,
                      flush=True)
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the whole Beacon stack locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start everything and wait for Ctrl-C (make run)")
    run.add_argument("--state", default=os.path.join(REPO_ROOT, "var"),
                     help="state directory (cluster, certificate, logs); default ./var")
    run.add_argument("--build", default=os.path.join(REPO_ROOT, "build"),
                     help="build directory holding bin/beacon-*; default ./build")
    run.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT,
                     help="gateway HTTPS port (a free one when busy); default 8443")
    run.add_argument("--database-url", default=None,
                     help="use this PostgreSQL (libpq conninfo) instead of ./var/pg")
    run.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="extra setting for the processes (repeatable), e.g. log_level=debug")
    run.add_argument("--demo-data", default=os.path.join(HERE, "demo-data.json"))
    run.add_argument("--no-demo", action="store_true", help="do not load demo clients")
    run.add_argument("--timeout", type=float, default=90.0,
                     help="seconds to wait for /healthz at start")
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
