#!/usr/bin/env bash
# Batch benchmark: `fjord batch import` of a 10-million-reading JSON-lines file into a fresh lake,
# then `fjord batch views` over it, and, as the anchor to beat, DuckDB writing the same file to
# date-partitioned Parquet. Prints each tool's wall time and throughput.
#   bash scripts/bench-batch.sh [N_READINGS] [WORK_DIR]
set -euo pipefail
N="${1:-10000000}"
WORK="${2:-/tmp/fjord-bench-batch}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fjord-ci/target}"
mkdir -p "$WORK"
FILE="$WORK/readings-$N.jsonl"
if [ ! -f "$FILE" ]; then
  echo "generating $N readings into $FILE"
  python3 "$ROOT/scripts/gen-readings.py" "$N" "$FILE"
fi
(cd "$ROOT" && cargo build --release --bin fjord -q)
FJORD="$CARGO_TARGET_DIR/release/fjord"
MB=$(( $(stat -c %s "$FILE") / 1000000 ))
rm -rf "$WORK/lake" "$WORK/duckdb-out"
echo "== fjord batch import ($N readings, $MB MB)"
FJORD__LAKE__URL="file://$WORK/lake" FJORD__BATCH__MAX_RECORDS_PER_COMMIT=2000000 \
  /usr/bin/time -f "wall %e s, max RSS %M KB" "$FJORD" batch import "$FILE"
echo "== fjord batch views"
FJORD__LAKE__URL="file://$WORK/lake" /usr/bin/time -f "wall %e s, max RSS %M KB" "$FJORD" batch views
echo "== DuckDB: COPY (SELECT … FROM read_json(…)) TO … (FORMAT parquet, PARTITION_BY date)"
"$VENV/bin/python" - "$FILE" "$WORK/duckdb-out" "$N" <<'PY'
import sys, time, duckdb
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.time()
duckdb.sql(f"""
COPY (
  SELECT lot_id, space_id, make_timestamp(ts * 1000) AS ts, occupied, CAST(battery AS SMALLINT) AS battery,
         CAST(make_timestamp(ts * 1000) AS DATE) AS date
  FROM read_json('{src}', format = 'newline_delimited',
                 columns = {{lot_id: 'VARCHAR', space_id: 'VARCHAR', ts: 'BIGINT', occupied: 'BOOLEAN', battery: 'INTEGER'}})
) TO '{out}' (FORMAT parquet, PARTITION_BY (date))
""")
s = time.time() - t
print(f"duckdb {duckdb.__version__}: {s:.1f} s, {n / s:,.0f} rows/s (no dedup, no Delta log)")
PY
