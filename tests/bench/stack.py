#!/usr/bin/env python3
"""stack.py: the benchmark stack, started through deploy/launch.py.

    python3 tests/bench/stack.py BUILD_DIR STATE_DIR ENV_FILE [name=value ...]

Starts a private PostgreSQL cluster (fsync on, as in production, so write
benchmarks measure real commits), the five services and the gateway in
STATE_DIR on free ports, waits for /healthz 200, then writes ENV_FILE (shell
assignments: BENCH_URL, BENCH_HOST, BENCH_PORT, BENCH_CA, BENCH_DATABASE_URL,
BENCH_PGHOST, BENCH_PGPORT, BENCH_PGUSER, BENCH_LOG_DIR) and waits.
SIGTERM, SIGINT or SIGHUP stops every process and the cluster. Exits non-zero
when the stack did not start, a process died while it ran, or a process
exited non-zero when stopped. Extra arguments are settings for every process
(gateway-only names reach only the gateway), e.g. log_level=warn.
"""

import os
import shlex
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "deploy"))

import launch  # noqa: E402  (deploy/launch.py)


def log(msg):
    print("bench-stack: " + msg, file=sys.stderr, flush=True)


def write_env(path, values):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for key, value in values.items():
            f.write("%s=%s\n" % (key, shlex.quote(str(value))))
    os.replace(tmp, path)  # run.sh polls for the file: it appears complete


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, state_dir, env_file = argv[1:4]
    settings = {}
    for item in argv[4:]:
        key, sep, value = item.partition("=")
        if not sep:
            log("setting %r is not name=value" % item)
            return 2
        settings[key] = value

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    stack = launch.Stack(build_dir, state_dir, throwaway=False, settings=settings,
                         start_timeout=120.0, log=log)
    status = 0
    try:
        stack.start()
        db = launch.conninfo_parse(stack.database_url)
        write_env(env_file, {
            "BENCH_URL": "https://%s:%d" % (stack.host, stack.port),
            "BENCH_HOST": stack.host,
            "BENCH_PORT": stack.port,
            "BENCH_CA": stack.cert_path,
            "BENCH_DATABASE_URL": stack.database_url,
            "BENCH_PGHOST": db.get("host", ""),
            "BENCH_PGPORT": db.get("port", ""),
            "BENCH_PGUSER": db.get("user", ""),
            "BENCH_LOG_DIR": stack.log_dir,
        })
        log("ready: gateway %s, services %s" % (
            stack.url, ", ".join("%s %d" % kv for kv in stack.service_ports.items())))
        while not stop.wait(0.5):
            dead = [n for n, p in stack.procs.items() if not p.running()]
            if dead:
                log("%s stopped while the benchmark ran\n%s" % (
                    ", ".join(dead), stack.log_tails(20)))
                status = 1
                break
    except launch.LaunchError as e:
        log("start failed: %s" % e)
        status = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the stop finish
        codes = stack.stop(quiet=True)
        bad = {n: c for n, c in codes.items() if c != 0}
        if bad:
            log("non-zero exits on stop: %s\n%s" % (
                ", ".join("%s %s" % (n, c) for n, c in bad.items()),
                "\n".join(stack.log_tail(n, 20) for n in bad)))
            status = status or 1
        log("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
