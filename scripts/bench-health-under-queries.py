#!/usr/bin/env python3
"""Health and ingest latency while queries run into their limits, against a running `fjord demo`.

Prints, side by side in one run, the round trip of `GET /healthz` + one HTTP ingest request:
idle, then while N heavy cross-join queries run (they end at serve.query_timeout or when this
script stops them). Run it against the release demo:

    fjord demo --auth-token "$T" &
    python3 scripts/bench-health-under-queries.py http://127.0.0.1:8080 "$T" [SECONDS] [N]
"""

import subprocess
import sys
import time
import urllib.request

url, token = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20
n = int(sys.argv[4]) if len(sys.argv) > 4 else 2
heavy = "SELECT max(a.value + b.value) FROM generate_series(1, 3000000) a CROSS JOIN generate_series(1, 3000000) b"


def rounds():
    lat, i, end = [], 0, time.time() + seconds
    while time.time() < end:
        t = time.time()
        urllib.request.urlopen(url + "/healthz", timeout=60).read()
        req = urllib.request.Request(
            f"{url}/ingest/parking/bench-health/S{i % 10}",
            data=b'{"occupied":true}',
            headers={"Authorization": "Bearer " + token, "content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=60).read()
        lat.append((time.time() - t) * 1000)
        i += 1
        time.sleep(0.1)
    lat.sort()
    return f"{len(lat)} rounds: p50 {lat[len(lat) // 2]:.0f} ms, p99 {lat[max(0, int(len(lat) * 0.99) - 1)]:.0f} ms, max {lat[-1]:.0f} ms"


print(f"healthz + ingest, idle:                       {rounds()}")
queries = [
    subprocess.Popen(
        ["curl", "-s", "-H", "Authorization: Bearer " + token, "--data", heavy, url + "/api/sql"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(n)
]
time.sleep(1)
print(f"healthz + ingest, {n} heavy queries running:    {rounds()}")
for q in queries:
    q.kill()
