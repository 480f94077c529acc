#!/usr/bin/env bash
# What a newcomer sees, by hand before resolving an issue: starts the release `fjord demo` with its
# defaults (simulator on, ports 1883/8080/5433/50051 free) in a temporary directory and uses it with
# the real clients — curl, psql, mosquitto_pub, headless Chromium — printing what each shows: the
# time to /readyz, the live tables' lag, a published reading arriving, refusals of bad input and
# hostile SQL, the dashboard (screenshot in the printed directory), the first windows, a clean stop.
#   cargo build --release && bash scripts/newcomer-check.sh target/release/fjord   (WAIT=seconds to
#   wait for the first 1-minute windows, default 150)
set -u
FJORD="$(realpath "$1")"
D=$(mktemp -d /tmp/newcomer.XXXX)
cd "$D"
t0=$(date +%s.%N)
"$FJORD" demo --data-dir ./fjord-data > demo.out 2> demo.err &
PID=$!
el() { echo "$(date +%s.%N) - $t0" | bc; }
for i in $(seq 1 300); do [ -f fjord-data/endpoints.json ] && break; sleep 0.1; done
echo "endpoints.json after $(el) s"
T=$(python3 -c "import json;print(json.load(open('fjord-data/endpoints.json'))['mqtt']['password'])")
for i in $(seq 1 200); do
  c=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/readyz); [ "$c" = 200 ] && break; sleep 0.1; done
echo "readyz $c after $(el) s"
sql() { curl -s -H "Authorization: Bearer $T" --data "$1" http://127.0.0.1:8080/api/sql; echo; }
sqlc() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T" --data "$1" http://127.0.0.1:8080/api/sql; }
export PGPASSWORD=$T
pq() { psql -X -A -t -h 127.0.0.1 -p 5433 -U fjord fjord -c "$1" 2>&1; }
sleep 3
echo "--- printed banner:"; head -20 demo.out
echo "--- psql \\dt:"; psql -X -h 127.0.0.1 -p 5433 -U fjord fjord -c '\dt' 2>&1 | head -20
echo "--- occupancy_live:"; sql "SELECT * FROM occupancy_live"
echo "--- the forecast (history landed at start):"; grep '^History' demo.out
for i in $(seq 1 100); do n=$(sql "SELECT count(*) AS n FROM occupancy_forecast" | tr -dc 0-9); [ "${n:-0}" -gt 0 ] && break; sleep 0.5; done
echo "occupancy_forecast rows: $n after $(el) s"
pq "SELECT lot_id, horizon, round(occupancy_ratio, 2), round(lower, 2), round(upper, 2), model_version FROM occupancy_forecast WHERE horizon IN (10, 60, 180) ORDER BY 1, 2"
echo "GET /api/lots/central/forecast: $(curl -s -H "Authorization: Bearer $T" http://127.0.0.1:8080/api/lots/central/forecast | head -c 300)"
echo "GET /api/lots/nowhere/forecast: $(curl -s -w ' (%{http_code})' -H "Authorization: Bearer $T" http://127.0.0.1:8080/api/lots/nowhere/forecast)"
echo "--- spaces_live lag (s):"; pq "SELECT count(*), extract(epoch from now()) - extract(epoch from max(last_seen)) FROM spaces_live"
echo "--- mosquitto_pub a reading for newcomer/N1"
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t parking/newcomer/N1 -m '{"occupied":true,"battery":77}'; echo "rc=$?"
p0=$(date +%s.%N)
for i in $(seq 1 100); do r=$(pq "SELECT occupied, battery FROM spaces_live WHERE lot_id='newcomer'"); [ -n "$r" ] && break; sleep 0.05; done
echo "spaces_live: '$r' after $(echo "$(date +%s.%N) - $p0" | bc) s"
pq "SELECT lot_id, occupied, capacity FROM occupancy_live WHERE lot_id='newcomer'"
echo "--- garbage over MQTT"
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t parking/newcomer/N2 -m 'not a reading'; echo "rc=$?"
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t 'parking/newcomer/N3' -m '{"occupied":"yes"}'; echo "rc=$?"
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P wrong-password -q 1 -t parking/newcomer/N4 -m '{"occupied":true}'; echo "wrong password rc=$?"
echo "--- HTTP ingest errors"
curl -s -H "Authorization: Bearer $T" -d '{"occupied":"yes"}' http://127.0.0.1:8080/ingest/parking/newcomer/N5; echo
curl -s -H "Authorization: Bearer $T" -d '{"occupied":true}' "http://127.0.0.1:8080/ingest/parking/new%E2%80%8Bcomer/N5"; echo
curl -s -d '{"occupied":true}' http://127.0.0.1:8080/ingest/parking/newcomer/N5; echo
echo "--- hostile SQL"
chain="WITH s0 AS (SELECT repeat('x', 8192) s)"; for i in $(seq 1 20); do chain="$chain, s$i AS (SELECT s || s s FROM s$((i-1)))"; done; chain="$chain SELECT length(s) FROM s20"
echo "|| chain: $(sqlc "$chain") $(sql "$chain" | head -c 300)"
chain="WITH s0 AS (SELECT repeat('x', 8192) s)"; for i in $(seq 1 20); do chain="$chain, s$i AS (SELECT encode(s, 'hex') s FROM s$((i-1)))"; done; chain="$chain SELECT length(s) FROM s20"
echo "encode chain: $(sql "$chain" | head -c 300)"
plus="SELECT 1$(printf '+1%.0s' $(seq 1 2000))"
echo "2000-term sum: $(sql "$plus" | head -c 200)"
echo "repeat 2.1G: $(sql "SELECT length(repeat('x', 2100000000))" | head -c 300)"
echo "psql PREPARE: $(pq "PREPARE p(text) AS SELECT count(*) FROM lots WHERE lot_id = \$1")"
echo "psql DROP: $(pq 'DROP TABLE readings')"
echo "psql SELECT INTO: $(pq 'SELECT * INTO t FROM lots')"
echo "wrong token: $(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' --data 'SELECT 1' http://127.0.0.1:8080/api/sql)"
echo "--- hostile devices"
long=$(python3 -c "print('s' * 50000)")
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t "parking/poison/$long" -m '{"occupied":true}'; echo "50,000-char space id over MQTT rc=$?"
echo "50,000-char space id over HTTP: $(curl -s -H "Authorization: Bearer $T" -d '{"occupied":true}' "http://127.0.0.1:8080/ingest/parking/poison/$long" | head -c 200)"
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t 'parking/newcomer/+' -m '{"occupied":true}'; echo "wildcard in topic rc=$?"
echo "endpoints.json mode: $(stat -c %a fjord-data/endpoints.json)"
echo "a second demo with a short token: $("$FJORD" demo --data-dir ./other --auth-token short 2>&1 | tail -1 | head -c 200)"
p0=$(date +%s.%N)
mosquitto_pub -h 127.0.0.1 -p 1883 -u fjord -P "$T" -q 1 -t parking/newcomer/N6 -m '{"occupied":true}'
for i in $(seq 1 100); do r=$(pq "SELECT count(*) FROM spaces_live WHERE lot_id = 'newcomer' AND space_id = 'N6'"); [ "$r" = 1 ] && break; sleep 0.05; done
echo "after the hostile input, a reading still reaches spaces_live: '$r' after $(echo "$(date +%s.%N) - $p0" | bc) s"
echo "--- alive? $(kill -0 $PID && echo yes) healthz=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/healthz)"
echo "--- dashboard screenshot"
NODE_PATH="${FJORD_NODE_MODULES:-$HOME/.cache/fjord-ci/node/node_modules}" node -e "
const { chromium } = require('playwright-core');
(async () => {
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking'] });
  const p = await b.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = []; p.on('pageerror', e => errors.push(String(e))); p.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  await p.goto('http://127.0.0.1:8080/#token=$T');
  await p.waitForTimeout(4000);
  await p.screenshot({ path: '$D/dashboard.png' });
  console.log('title:', await p.title(), 'errors:', JSON.stringify(errors));
  console.log((await p.innerText('body')).slice(0, 600));
  await b.close();
})();
" 2>&1 | head -30
echo "--- waiting for the first 1-minute windows in SQL (up to ${WAIT:-150} s)"
for i in $(seq 1 ${WAIT:-150}); do n=$(pq "SELECT count(*) FROM occupancy_1m"); [ "${n:-0}" != 0 ] && break; sleep 1; done
echo "occupancy_1m rows: $n after $(el) s"; sql "SELECT lot_id, window_start, window_end, occupied_avg, readings, source FROM occupancy_1m ORDER BY window_start DESC LIMIT 3"
pq "SELECT count(*), extract(epoch from now()) - extract(epoch from max(last_seen)) FROM spaces_live"
echo "--- alive? $(kill -0 $PID && echo yes); RSS $(grep VmRSS /proc/$PID/status)"
kill -INT $PID; wait $PID; echo "exit status $?"
echo "--- demo tail:"; tail -8 demo.out; echo "--- stderr errors:"; grep -c -E "ERROR|panicked" demo.err; grep -E "ERROR|panicked" demo.err | head -5
ls fjord-data/endpoints.json 2>&1 | head -1
echo "dir: $D"
