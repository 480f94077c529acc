# Generates N smart-parking readings as JSON lines (200 lots x 100 spaces over 30 days), sorted by ts.
import random, sys
random.seed(42)
n = int(sys.argv[1]); out = sys.argv[2]
lots, spaces = 200, 100
start = 1_760_000_000_000  # 2025-10-09
step = 30 * 86_400_000 // n   # spread over 30 days
state = {}
with open(out, "w", buffering=1 << 22) as f:
    w = f.write
    for i in range(n):
        l = random.randrange(lots); s = random.randrange(spaces)
        k = l * spaces + s
        occ = not state.get(k, False) if random.random() < 0.7 else state.get(k, False)
        state[k] = occ
        w('{"lot_id":"L%03d","space_id":"S%03d","ts":%d,"occupied":%s,"battery":%d}\n' % (l, s, start + i * step, "true" if occ else "false", 20 + (i % 80)))
