#!/usr/bin/env python3
"""signin.py: makes the benchmark stack's agency and prints a bearer token.

    python3 tests/bench/signin.py ROLE

Bootstraps an agency on the stack at BENCH_URL (BENCH_CA) through the API
(deploy/launch.py's Org: the admin enrols TOTP, then a staff member with
ROLE at the first site is created and signs in) and prints that staff
member's session token. The stack must run with allow_bootstrap=true.
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
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    stack = _Stack(os.environ["BENCH_URL"], os.environ["BENCH_CA"])
    try:
        org = launch.Org(stack, agency_name="Bench Recovery Network").bootstrap()
        print(org.add_staff([argv[1]]).token)
    except launch.OrgError as e:
        print("signin.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
