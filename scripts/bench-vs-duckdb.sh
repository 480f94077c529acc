#!/usr/bin/env bash
# fjord next to DuckDB on the same data, the same machine, in one run: the table of issue 17.
#   bash scripts/bench-vs-duckdb.sh [N_READINGS] [WORK_DIR]      (default 10 million, /tmp/fjord-vs-duckdb)
# Data: N readings as JSON lines, 50 lots x 200 spaces over 7 days, 0.5 % duplicates, 1 % out of
# order, once with RFC 3339 `ts` strings and once with epoch-ms `ts` (generated once per N, kept).
# Rows:
#   1. `fjord batch import` into a fresh lake  vs  DuckDB `COPY (read_json …) TO … PARTITION_BY date`
#      (wall time and peak RSS of each process; fjord also validates, deduplicates and commits Delta)
#   2. `fjord batch views` (1 m and 10 m)  vs  DuckDB computing the same §4.1 windows exactly in SQL
#      over the lake's readings Parquet (10 m alone, and both sizes); DuckDB's 10 m windows are then
#      compared with fjord's, row by row, to show both are the same numbers
#   3. average occupied share per hour of one day, per lot and for one lot: fjord over the Postgres
#      wire (`fjord serve`, psycopg, one connection)  vs  DuckDB in process over the same Parquet
# Each query is run RUNS times (default 5) and its median is printed. The stream row is
# `BROKERS=tansu N=2000000 cargo bench --bench e2e` (it needs a broker; see docs/benchmarks.md).
set -euo pipefail
N="${1:-10000000}"
WORK="${2:-/tmp/fjord-vs-duckdb}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
export RUNS="${RUNS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fjord-ci/target}"
mkdir -p "$WORK"
if [ -z "${FJORD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin fjord -q)
  FJORD_BIN="$CARGO_TARGET_DIR/release/fjord"
fi
PY="$VENV/bin/python"
"$PY" -c "import duckdb, psycopg" || { echo "needs duckdb and psycopg in $VENV (bash scripts/test-deps.sh)"; exit 1; }
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }
# wall seconds and peak RSS (MB) of a command, as "S MB"
timed() {
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" > "$WORK/cmd.out" 2>&1 || { cat "$WORK/cmd.out"; return 1; }
  awk '{ printf "%.2f %d\n", $1, $2 / 1024 }' "$WORK/time.out"
}
LOTS="$WORK/lots.csv"
"$PY" - "$LOTS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("lot_id,name,zone,capacity,lat,lon\n")
    for l in range(50):
        f.write(f"L{l:03d},Lot {l},zone-{l % 5},200,{59.9 + l / 1000:.3f},{10.7 + l / 1000:.3f}\n")
PY

for fmt in rfc3339 ms; do
  FILE="$WORK/readings-$N-$fmt.jsonl"
  if [ ! -f "$FILE" ]; then
    echo "generating $N readings ($fmt ts) into $FILE"
    python3 "$ROOT/scripts/gen-readings.py" "$N" "$FILE.part" --lots 50 --spaces 200 --days 7 \
      --dup 0.005 --ooo 0.01 --ts "$fmt"
    mv "$FILE.part" "$FILE"
  fi
  LAKE="$WORK/lake-$fmt"
  rm -rf "$LAKE" "$WORK/duckdb-$fmt"
  printf 'lots_file = "%s"\n\n[log]\nlevel = "warn"\n\n[lake]\nurl = "file://%s"\n' "$LOTS" "$LAKE" > "$WORK/fjord-$fmt.toml"
  echo "== import, $fmt ts: fjord batch import"
  read -r s mb < <(timed "$FJORD_BIN" --config "$WORK/fjord-$fmt.toml" batch import "$FILE")
  tail -n 3 "$WORK/cmd.out"
  fj="$s s, $mb MB"
  echo "   $fj"
  echo "== import, $fmt ts: DuckDB COPY … PARTITION_BY date"
  if [ "$fmt" = ms ]; then TS="make_timestamp(ts * 1000)"; TST=BIGINT; else TS="CAST(ts AS TIMESTAMPTZ)"; TST=VARCHAR; fi
  read -r s2 mb2 < <(timed "$PY" - "$FILE" "$WORK/duckdb-$fmt" "$TS" "$TST" <<'PY'
import sys, duckdb
src, out, ts, tst = sys.argv[1:5]
duckdb.sql("SET TimeZone = 'UTC'")
duckdb.sql(f"""
COPY (
  SELECT lot_id, space_id, {ts} AS ts, occupied, CAST(battery AS SMALLINT) AS battery,
         CAST({ts} AS DATE) AS date
  FROM read_json('{src}', format = 'newline_delimited',
                 columns = {{lot_id: 'VARCHAR', space_id: 'VARCHAR', ts: '{tst}', occupied: 'BOOLEAN', battery: 'INTEGER'}})
) TO '{out}' (FORMAT parquet, PARTITION_BY (date))
""")
PY
)
  dd="$s2 s, $mb2 MB"
  echo "   $dd"
  row "JSON lines ($fmt ts) → date-partitioned lake" "batch import: $fj" "COPY … PARTITION_BY date: $dd|$s|$s2"
done

LAKE="$WORK/lake-rfc3339"
echo "== views: fjord batch views (1 m + 10 m)"
read -r s mb < <(timed "$FJORD_BIN" --config "$WORK/fjord-rfc3339.toml" batch views)
echo "   $s s, $mb MB"
VIEWS_S=$s
VIEWS_MB=$mb
echo "== views: DuckDB, the exact §4.1 windows in SQL over the lake's readings"
SCRIPTS="$(dirname "$(realpath "$0")")" "$PY" - "$LAKE" "$RESULTS" "$VIEWS_S" "$VIEWS_MB" <<'PY'
import os, statistics, sys, time, duckdb
lake, results, fj_s, fj_mb = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
con = duckdb.connect()
con.sql("SET TimeZone = 'UTC'")
con.sql(f"CREATE VIEW readings AS SELECT lot_id, space_id, epoch_ms(ts) AS t, occupied FROM read_parquet('{lake}/readings/date=*/*.parquet', hive_partitioning = true)")
# §4.1 windows up to the high-water mark: max ts minus 65 s of out-of-orderness and lateness,
# aligned down to 10 minutes (scripts/occupancy_sql.py)
sys.path.insert(0, os.environ["SCRIPTS"])
import occupancy_sql
def windows(size):
    return occupancy_sql.windows(size, "SELECT (max(t) - 65000) // 600000 * 600000 FROM r")
def timed(sql_list):
    ts = []
    for _ in range(int(os.environ.get("RUNS", "5"))):
        t = time.time()
        for sql in sql_list:
            con.sql(f"COPY ({sql}) TO '/dev/null' (FORMAT parquet)")
        ts.append(time.time() - t)
    return statistics.median(ts)
d10 = timed([windows(600000)])
both = timed([windows(60000), windows(600000)])
print(f"   DuckDB 10 m: {d10:.2f} s; 1 m + 10 m: {both:.2f} s (median of {os.environ.get('RUNS', '5')})")
# fjord's 10 m view against DuckDB's, row by row
con.sql(f"CREATE TABLE d AS {windows(600000)}")
con.sql(f"CREATE VIEW f AS SELECT lot_id, epoch_ms(window_start) AS window_start, occupied_avg, occupied_end, arrivals, departures, readings FROM read_parquet('{lake}/occupancy_10m/date=*/*.parquet', hive_partitioning = true)")
n_d, n_f = con.execute("SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM f)").fetchone()
diff = con.execute("""
SELECT count(*) FROM d FULL JOIN f USING (lot_id, window_start)
WHERE d.readings IS DISTINCT FROM f.readings OR d.arrivals IS DISTINCT FROM f.arrivals
   OR d.departures IS DISTINCT FROM f.departures OR d.occupied_end IS DISTINCT FROM f.occupied_end
   OR abs(d.occupied_avg - f.occupied_avg) > 1e-9 OR d.occupied_avg IS NULL OR f.occupied_avg IS NULL
""").fetchone()[0]
print(f"   10 m windows: DuckDB {n_d:,}, fjord {n_f:,}, differing {diff}")
with open(results, "a") as out:
    out.write(f"§4.1 occupancy over all data\tbatch views (1 m + 10 m): {fj_s:.2f} s, {fj_mb} MB\t"
              f"exact SQL, 10 m: {d10:.2f} s; 1 m + 10 m: {both:.2f} s ({diff} of {n_d:,} 10 m windows differ from fjord's)|{fj_s}|{both}\n")
PY

echo "== queries: fjord serve (Postgres wire) vs DuckDB in process"
PORT_BASE=$(( 20000 + RANDOM % 20000 ))
TOKEN="bench-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
FJORD__AUTH__TOKEN="$TOKEN" FJORD__KAFKA__BROKERS="127.0.0.1:9" FJORD__SERVE__HTTP_LISTEN=127.0.0.1:$PORT_BASE \
  FJORD__SERVE__PG_LISTEN=127.0.0.1:$((PORT_BASE + 1)) FJORD__SERVE__FLIGHT_LISTEN=127.0.0.1:$((PORT_BASE + 2)) \
  "$FJORD_BIN" --config "$WORK/fjord-rfc3339.toml" serve > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
"$PY" - "$LAKE" "$RESULTS" "$((PORT_BASE + 1))" "$TOKEN" <<'PY'
import os, statistics, sys, time, duckdb, psycopg
lake, results, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = int(os.environ.get("RUNS", "5"))
deadline = time.time() + 60
while True:
    try:
        pg = psycopg.connect(host="127.0.0.1", port=port, user="fjord", password=token, dbname="fjord", autocommit=True)
        break
    except Exception as e:
        if time.time() > deadline:
            sys.exit(f"fjord serve did not answer on :{port}: {e}")
        time.sleep(0.2)
day = "2025-10-11"
queries = {
    "avg occupied share per lot per hour, one day": f"""
SELECT lot_id, date_trunc('hour', window_start) AS hour, avg(occupancy_ratio) AS share
FROM occupancy_1m WHERE window_start >= TIMESTAMP '{day} 00:00:00' AND window_start < TIMESTAMP '{day} 00:00:00' + INTERVAL '1 day'
GROUP BY 1, 2 ORDER BY 1, 2""",
    "the same for one lot": f"""
SELECT date_trunc('hour', window_start) AS hour, avg(occupancy_ratio) AS share
FROM occupancy_1m WHERE lot_id = 'L007' AND window_start >= TIMESTAMP '{day} 00:00:00' AND window_start < TIMESTAMP '{day} 00:00:00' + INTERVAL '1 day'
GROUP BY 1 ORDER BY 1""",
}
con = duckdb.connect()
con.sql("SET TimeZone = 'UTC'")
con.sql(f"CREATE VIEW occupancy_1m AS SELECT * FROM read_parquet('{lake}/occupancy_1m/date=*/*.parquet', hive_partitioning = true)")
def median(f):
    f()  # warm-up
    ts = []
    for _ in range(runs):
        t = time.time(); f(); ts.append(time.time() - t)
    return statistics.median(ts)
with open(results, "a") as out:
    for name, sql in queries.items():
        rows_f = []
        def fj():
            with pg.cursor() as c:
                c.execute(sql); rows_f[:] = c.fetchall()
        def dk():
            con.sql(sql).fetchall()
        a, b = median(fj), median(dk)
        d_rows = con.sql(sql).fetchall()
        same = len(rows_f) == len(d_rows) and all(
            abs(x[-1] - y[-1]) < 1e-9 for x, y in zip(rows_f, d_rows))
        print(f"   {name}: fjord {a * 1000:.1f} ms ({len(rows_f)} rows), DuckDB {b * 1000:.1f} ms ({len(d_rows)} rows), same answer: {same}")
        out.write(f"{name}\tPostgres wire: {a * 1000:.1f} ms\tin process: {b * 1000:.1f} ms|{a}|{b}\n")
PY
kill $SERVE 2>/dev/null || true

echo
echo "fjord next to DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)'), $N readings, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| work | fjord | DuckDB | fjord / DuckDB |"
echo "|---|---|---|---|"
while IFS=$'\t' read -r work f rest; do
  IFS='|' read -r d a b <<< "$rest"
  printf '| %s | %s | %s | %.2f× |\n' "$work" "$f" "$d" "$(echo "$a / $b" | bc -l)"
done < "$RESULTS"
