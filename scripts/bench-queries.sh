#!/usr/bin/env bash
# Query benchmark: the analyst queries of queries/sql/ over a lake of N generated readings (default
# 100 million: 200 lots x 100 spaces over 30 days), each run with `fjord sql` (wall time per query,
# best of 3, process start and Delta log read included), and, as the anchor, DuckDB over the same
# Parquet files (the lake's readings and occupancy_1m files, read with hive partitioning) and the
# same lots registry CSV (200 lots in 10 zones).
#   bash scripts/bench-queries.sh [N_READINGS] [WORK_DIR]
# The lake is built once per N (fjord batch import + views) and reused by later runs.
set -euo pipefail
N="${1:-100000000}"
WORK="${2:-/tmp/fjord-bench-queries}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
export RUNS="${RUNS:-3}"   # runs per query; the best is reported
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fjord-ci/target}"
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release --bin fjord -q)
FJORD_BIN="$CARGO_TARGET_DIR/release/fjord"
LAKE="$WORK/lake-$N"
LOTS="$WORK/lots.csv"
python3 - "$LOTS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("lot_id,name,zone,capacity,lat,lon\n")
    for l in range(200):
        f.write(f"L{l:03d},Lot {l},zone-{l % 10},100,{59.9 + l / 1000:.3f},{10.7 + l / 1000:.3f}\n")
PY
CONFIG="$WORK/fjord-$N.toml"
# the default query limits (2 GiB of memory, 8 GiB to spill to, 60 s)
printf 'lots_file = "%s"\n\n[log]\nlevel = "warn"\n\n[lake]\nurl = "file://%s"\n' "$LOTS" "$LAKE" > "$CONFIG"
FJORD() { "$FJORD_BIN" --config "$CONFIG" "$@"; }
if [ ! -d "$LAKE/occupancy_1m" ]; then
  FILE="$WORK/readings-$N.jsonl"
  [ -f "$FILE" ] || { echo "generating $N readings into $FILE"; python3 "$ROOT/scripts/gen-readings.py" "$N" "$FILE"; }
  echo "== building the lake: fjord batch import + views"
  /usr/bin/time -f "  import: %e s, max RSS %M KiB" "$FJORD_BIN" --config "$CONFIG" batch import "$FILE"
  /usr/bin/time -f "  views: %e s, max RSS %M KiB" "$FJORD_BIN" --config "$CONFIG" batch views
  rm -f "$FILE"
fi
s=$(date +%s.%N); FJORD sql "SELECT 1" > /dev/null
echo "== fjord sql (best of $RUNS, seconds, peak RSS of that run; start-up and lake open alone: $(echo "$(date +%s.%N) - $s" | bc | cut -c1-4) s)"
for q in "$ROOT"/queries/sql/*.sql; do
  name="$(basename "$q" .sql)"
  best=""; rss=""
  for _ in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    if ! /usr/bin/time -o "$WORK/time" -f %M "$FJORD_BIN" --config "$CONFIG" sql --format csv -- "$(cat "$q")" > /dev/null 2> "$WORK/err"; then
      echo "  $name failed: $(tail -c 400 "$WORK/err")" >&2
      continue  # a failed run has no time to report
    fi
    t=$(echo "$(date +%s.%N) - $s" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; rss=$(tail -1 "$WORK/time"); fi
  done
  if [ -z "$best" ]; then printf "  %-32s failed\n" "$name"; continue; fi
  printf "  %-32s %6.2f  %5d MB\n" "$name" "$best" "$((rss / 1024))"
done
echo "== DuckDB over the same Parquet files (best of $RUNS, seconds)"
"$VENV/bin/python" - "$LAKE" "$ROOT/queries/sql" "$LOTS" <<'PY'
import glob, os, sys, time, duckdb
lake, sqldir, lots = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
for t in ["readings", "occupancy_1m"]:
    con.sql(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{lake}/{t}/date=*/*.parquet', hive_partitioning = true)")
con.sql(f"CREATE TABLE lots AS SELECT * FROM read_csv('{lots}', header = true)")
# the same queries in DuckDB's dialect where DataFusion's differs
rewrites = [
    ("CAST(departed AS BIGINT) - CAST(arrived AS BIGINT)", "epoch_us(departed) - epoch_us(arrived)"),
    ("last_value(battery ORDER BY ts)", "arg_max(battery, ts)"),
]
for path in sorted(glob.glob(os.path.join(sqldir, "*.sql"))):
    sql = open(path).read()
    for a, b in rewrites:
        sql = sql.replace(a, b)
    times = []
    for _ in range(int(os.environ.get("RUNS", "3"))):
        t = time.time()
        con.sql(sql).fetchall()
        times.append(time.time() - t)
    print(f"  {os.path.basename(path)[:-4]:<32} {min(times):6.2f}")
PY
