#!/usr/bin/env python3
"""signin.py: makes the benchmark stack's agency and its people.

    python3 tests/bench/signin.py [TEAM_SIZE]

Bootstraps an agency on the stack at BENCH_URL (BENCH_CA) through the API
(deploy/launch.py's Org: the admin enrols TOTP), then creates at its first
site the bench peer specialist, a supervisor and TEAM_SIZE (default 0) more
peer specialists, each signing in, and prints shell assignments:

    BENCH_PEER_TOKEN=..  BENCH_PEER_ID=..  BENCH_SITE_ID=..
    BENCH_SUPERVISOR_TOKEN=..  BENCH_TEAM=<staff id>,<staff id>,...
    BENCH_ADMIN_TOKEN=..  BENCH_ADMIN_ID=..   (the agency_admin, TOTP enrolled)

The stack must run with allow_bootstrap=true.
"""

import http.client
import json
import os
import ssl
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy"))

import launch  # noqa: E402


class _Response:
    def __init__(self, status, body):
        self.status, self.body = status, body

    def json(self):
        return json.loads(self.body)


class _Stack:
    """What launch.Org needs of a stack: request()."""

    def __init__(self, url, cafile):
        self.url = urllib.parse.urlsplit(url)
        self.ctx = ssl.create_default_context(cafile=cafile)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPSConnection(self.url.hostname, self.url.port, timeout=30,
                                           context=self.ctx)
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        out = _Response(resp.status, resp.read())
        conn.close()
        return out


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and not argv[1].isdigit()):
        print(__doc__, file=sys.stderr)
        return 2
    team_size = int(argv[1]) if len(argv) == 2 else 0
    stack = _Stack(os.environ["BENCH_URL"], os.environ["BENCH_CA"])
    try:
        org = launch.Org(stack, agency_name="Bench Recovery Network").bootstrap()
        peer = org.add_staff(["peer_specialist"])
        supervisor = org.add_staff(["supervisor"])
        team = [org.add_staff(["peer_specialist"]).id for _ in range(team_size)]
    except launch.OrgError as e:
        print("signin.py: %s" % e, file=sys.stderr)
        return 1
    print("BENCH_PEER_TOKEN=%s" % peer.token)
    print("BENCH_PEER_ID=%s" % peer.id)
    print("BENCH_SITE_ID=%s" % org.site_id)
    print("BENCH_SUPERVISOR_TOKEN=%s" % supervisor.token)
    print("BENCH_TEAM=%s" % ",".join(team))
    print("BENCH_ADMIN_TOKEN=%s" % org.admin.token)
    print("BENCH_ADMIN_ID=%s" % org.admin.id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
