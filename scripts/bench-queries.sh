#!/usr/bin/env bash
# Query benchmark: the analyst queries of queries/sql/ over a lake of N generated readings (default
# 100 million: 200 lots x 100 spaces over 30 days), each run with `fjord sql` (wall time per query,
# best of 3, process start and Delta log read included), and, as the anchor, DuckDB over the same
# Parquet files (the lake's readings and occupancy_1m files, read with hive partitioning).
#   bash scripts/bench-queries.sh [N_READINGS] [WORK_DIR]
# The lake is built once per N (fjord batch import + views) and reused by later runs.
set -euo pipefail
N="${1:-100000000}"
WORK="${2:-/tmp/fjord-bench-queries}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fjord-ci/target}"
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release --bin fjord -q)
FJORD="$CARGO_TARGET_DIR/release/fjord"
LAKE="$WORK/lake-$N"
export FJORD__LAKE__URL="file://$LAKE" FJORD__LOG__LEVEL=warn
if [ ! -d "$LAKE/occupancy_1m" ]; then
  FILE="$WORK/readings-$N.jsonl"
  [ -f "$FILE" ] || { echo "generating $N readings into $FILE"; python3 "$ROOT/scripts/gen-readings.py" "$N" "$FILE"; }
  echo "== building the lake: fjord batch import + views"
  FJORD__BATCH__MAX_RECORDS_PER_COMMIT=2000000 "$FJORD" batch import "$FILE"
  "$FJORD" batch views
  rm -f "$FILE"
fi
echo "== fjord sql (best of 3, seconds)"
for q in "$ROOT"/queries/sql/*.sql; do
  name="$(basename "$q" .sql)"
  best=""
  for _ in 1 2 3; do
    s=$(date +%s.%N)
    "$FJORD" sql --format csv "$(cat "$q")" > /dev/null
    t=$(echo "$(date +%s.%N) - $s" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  printf "  %-32s %6.2f\n" "$name" "$best"
done
echo "== DuckDB over the same Parquet files (best of 3, seconds)"
"$VENV/bin/python" - "$LAKE" "$ROOT/queries/sql" <<'PY'
import glob, os, sys, time, duckdb
lake, sqldir = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for t in ["readings", "occupancy_1m"]:
    con.sql(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{lake}/{t}/**/*.parquet', hive_partitioning = true)")
con.sql("CREATE TABLE lots (lot_id VARCHAR, name VARCHAR, zone VARCHAR, capacity INT, lat DOUBLE, lon DOUBLE)")
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
    for _ in range(3):
        t = time.time()
        con.sql(sql).fetchall()
        times.append(time.time() - t)
    print(f"  {os.path.basename(path)[:-4]:<32} {min(times):6.2f}")
PY
