#!/usr/bin/env python3
"""api.py: one HTTPS request to the benchmark stack, for setting up data.

    python3 tests/bench/api.py METHOD PATH [JSON_BODY] [--expect STATUS] [--field NAME]
                               [--token TOKEN]

Uses BENCH_URL and BENCH_CA (written by stack.py). Prints the response body,
or with --field the value of one top-level JSON field. Exits 1 (with the
response on stderr) when the status is not the expected one (default: 200
for GET, 201 for POST).
"""

import http.client
import json
import os
import ssl
import sys
import urllib.parse


def main(argv):
    args, expect, field, token = [], None, None, None
    it = iter(argv[1:])
    for a in it:
        if a == "--expect":
            expect = int(next(it))
        elif a == "--field":
            field = next(it)
        elif a == "--token":
            token = next(it)
        else:
            args.append(a)
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    method, path = args[0].upper(), args[1]
    body = args[2].encode("utf-8") if len(args) == 3 else None
    if expect is None:
        expect = 201 if method == "POST" else 200

    url = urllib.parse.urlsplit(os.environ["BENCH_URL"])
    ctx = ssl.create_default_context(cafile=os.environ["BENCH_CA"])
    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=ctx)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    if resp.status != expect:
        print("api.py: %s %s answered %d (expected %d): %s"
              % (method, path, resp.status, expect, data[:500]), file=sys.stderr)
        return 1
    if field is not None:
        value = json.loads(data).get(field)
        if value is None:
            print("api.py: no field %r in %s" % (field, data[:500]), file=sys.stderr)
            return 1
        print(value)
    else:
        print(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
