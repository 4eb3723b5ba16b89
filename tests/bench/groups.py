#!/usr/bin/env python3
"""groups.py: sets up 200 weekly group series for a quarter at one site
through the HTTPS API, timing each creation (the rule expanded in the
site's local dates, 13 occurrences laid out as instants in its zone and
conflict-checked), and prints

    GROUPS created=200 occurrences=2600 layout_p50_ms=.. layout_p99_ms=.. \
        site=<site id> from=YYYY-MM-DD to=YYYY-MM-DD

Usage: groups.py TOKEN SITE_ID [YEAR]. Uses BENCH_URL and BENCH_CA. Each
series meets weekly on one weekday at its own half hour, so none collide.
"""

import datetime
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse


def main(argv):
    token, site = argv[1], argv[2]
    year = int(argv[3]) if len(argv) > 3 else datetime.date.today().year + 2
    url = urllib.parse.urlsplit(os.environ["BENCH_URL"])
    ctx = ssl.create_default_context(cafile=os.environ["BENCH_CA"])
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=30)
    quarter = datetime.date(year, 4, 1)
    monday = quarter + datetime.timedelta(days=(7 - quarter.weekday()) % 7)
    times = []
    for i in range(200):
        day, slot = i % 7, i // 7  # 29 half-hours from 06:00
        start = monday + datetime.timedelta(days=day)
        body = {"site_id": site, "topic": "custom", "title": "Bench group %d" % i,
                "capacity": 12, "minutes": 25,
                "start_time": "%02d:%02d" % (6 + slot // 2, 30 * (slot % 2)),
                "rule": {"freq": "weekly", "start_date": start.isoformat(), "count": 13}}
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/group-sessions", json.dumps(body),
                     {"Content-Type": "application/json", "Authorization": "Bearer " + token})
        resp = conn.getresponse()
        data = resp.read()
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status != 201:
            print("group %d: %d %s" % (i, resp.status, data[:300]), file=sys.stderr)
            return 1
    times.sort()
    end = quarter.replace(month=7)
    print("GROUPS created=200 occurrences=2600 layout_p50_ms=%.3f layout_p99_ms=%.3f "
          "site=%s from=%s to=%s" % (times[len(times) // 2], times[int(len(times) * 0.99) - 1],
                                     site, quarter.isoformat(), end.isoformat()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
