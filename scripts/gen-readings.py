# Generates N smart-parking readings as JSON lines, in ts order except for the out-of-order share.
#   python3 gen-readings.py N OUT [--lots 200] [--spaces 100] [--days 30] [--dup 0] [--ooo 0]
#                                 [--ts ms|rfc3339]
# Defaults (200 lots x 100 spaces over 30 days, epoch-ms ts, no duplicates) are what
# bench-queries.sh uses; bench-vs-duckdb.sh uses the shape of issue 17: 50 lots x 200 spaces,
# 0.5 % duplicates (an exact copy of a reading, right after it), 1 % out of order (a reading held
# back and written 1-60 s of event time later), RFC 3339 or epoch-ms ts.
import argparse, datetime, random

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("out")
ap.add_argument("--lots", type=int, default=200)
ap.add_argument("--spaces", type=int, default=100)
ap.add_argument("--days", type=int, default=30)
ap.add_argument("--dup", type=float, default=0.0)
ap.add_argument("--ooo", type=float, default=0.0)
ap.add_argument("--ts", choices=["ms", "rfc3339"], default="ms")
a = ap.parse_args()
random.seed(42)
start = 1_760_000_000_000  # 2025-10-09
step = a.days * 86_400_000 // a.n
epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ts_text(ms):
    if a.ts == "ms":
        return "%d" % ms
    d = epoch + datetime.timedelta(milliseconds=ms)
    return '"%s.%03dZ"' % (d.strftime("%Y-%m-%dT%H:%M:%S"), ms % 1000)


state = {}
held = []  # (release_at_ms, line)
written = 0
with open(a.out, "w", buffering=1 << 22) as f:
    w = f.write
    i = 0
    while written < a.n:
        ms = start + i * step
        while held and held[0][0] <= ms and written < a.n:
            w(held.pop(0)[1])
            written += 1
        if written >= a.n:
            break
        l = random.randrange(a.lots)
        s = random.randrange(a.spaces)
        k = l * a.spaces + s
        occ = not state.get(k, False) if random.random() < 0.7 else state.get(k, False)
        state[k] = occ
        line = '{"lot_id":"L%03d","space_id":"S%03d","ts":%s,"occupied":%s,"battery":%d}\n' % (
            l, s, ts_text(ms), "true" if occ else "false", 20 + (i % 80))
        i += 1
        r = random.random() if a.ooo or a.dup else 1.0
        if r < a.ooo:
            held.append((ms + random.randrange(1_000, 60_000), line))
            held.sort()
            continue
        w(line)
        written += 1
        if r < a.ooo + a.dup and written < a.n:
            w(line)
            written += 1
