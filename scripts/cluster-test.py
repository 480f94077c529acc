#!/usr/bin/env python3
"""fjord as a cluster on one machine, host by host, tested by losing hosts.

Each process gets its own network namespace and address on a private bridge (10.77.0.0/24):
tansu (Kafka protocol), mosquitto (MQTT, persistence and ACL), s3s-fs (S3, the lake), two
`fjord bridge` (one MQTT shared subscription), two `fjord stream` (one consumer group), a scheduled
`fjord batch run`, two `fjord serve` replicas, and the device simulator. Every fjord process runs
docker/fjord.toml with environment overrides, as the containers of docker/compose.yaml do.

Under simulator load it takes away one host of each kind in turn — SIGKILL, and a cut link (the
process lives but its veth is down) — and brings it back. At the end it checks:
  * every reading the MQTT broker acknowledged (the simulator's --record ledger) is in the lake
    exactly once, read by independent readers (Python deltalake and polars);
  * the served occupancy windows (10 s and 1 m here, so that a run of minutes closes many)
    equal a reference computed by DuckDB from the ledger with the exact §4.1 SQL;
  * every alert state change (the `alerts` table) reached the webhook, in order per alert;
  * both serve replicas answer the same queries alike, over HTTP and the Postgres wire.
It prints what it injected and what it found, writes report.json, and exits 0 only if every check
passed. Run it with scripts/cluster-test.sh (needs root for `ip netns`).
"""

import argparse
import collections
import datetime
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import occupancy_sql  # scripts/occupancy_sql.py: the §4.1 SQL, shared with bench-vs-duckdb.sh

NET = "10.77.0"
BRIDGE = "fjc0"
HOSTS = {
    "kafka": 10, "mqtt": 11, "s3": 12,
    "bridge-1": 21, "bridge-2": 22,
    "stream-1": 31, "stream-2": 32,
    "batch": 41,
    "serve-1": 51, "serve-2": 52,
    "devices": 60,
}
TOKEN = "cluster-test-token-" + hashlib.sha256(str(os.getpid()).encode()).hexdigest()[:16]
MQTT_BRIDGE_PW = "bridge-secret-" + TOKEN[-8:]
MQTT_DEVICE_PW = "device-secret-" + TOKEN[-8:]
S3_KEY, S3_SECRET = "fjordtest", "fjordtest-secret-key"
WEBHOOK_SECRET = "cluster-webhook-secret"

T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def ip(host):
    return f"{NET}.{HOSTS[host]}"


def ns(host):
    return f"fjc-{host}"


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


# --- the network ---------------------------------------------------------------------------------

def net_down():
    for host in HOSTS:
        sh("ip", "netns", "del", ns(host), check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


def net_up():
    net_down()
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{NET}.1/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for host, n in HOSTS.items():
        v, peer = f"fjc{n}", f"fjc{n}p"
        sh("ip", "netns", "add", ns(host))
        sh("ip", "link", "add", v, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", ns(host))
        sh("ip", "-n", ns(host), "link", "set", peer, "name", "eth0")
        sh("ip", "-n", ns(host), "addr", "add", f"{NET}.{n}/24", "dev", "eth0")
        sh("ip", "-n", ns(host), "link", "set", "eth0", "up")
        sh("ip", "-n", ns(host), "link", "set", "lo", "up")
        sh("ip", "link", "set", v, "master", BRIDGE)
        sh("ip", "link", "set", v, "up")


def cut(host):
    sh("ip", "link", "set", f"fjc{HOSTS[host]}", "down")


def heal(host):
    sh("ip", "link", "set", f"fjc{HOSTS[host]}", "up")


# --- processes -----------------------------------------------------------------------------------

class Proc:
    def __init__(self, name, host, argv, env, logdir):
        self.name, self.host, self.argv, self.env = name, host, argv, env
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.p = None
        self.starts = 0

    def start(self):
        self.starts += 1
        out = open(self.logpath, "a")
        out.write(f"=== start {self.starts} at {time.time() - T0:.1f}s\n")
        out.flush()
        env = {**os.environ, **self.env}
        self.p = subprocess.Popen(["ip", "netns", "exec", ns(self.host), *self.argv], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  cwd=os.path.dirname(self.logpath))

    def kill(self):
        if self.p and self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()

    def stop(self, timeout=15):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def running(self):
        return self.p is not None and self.p.poll() is None


def tcp_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


def wait_for(what, cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.25)
    log(f"!! {what}: not within {timeout} s")
    return False


def sql_http(host, query, timeout=30):
    req = urllib.request.Request(f"http://{ip(host)}:8080/api/sql", data=query.encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"[]")


# --- the webhook receiver (in the root namespace, 10.77.0.1) ---------------------------------------

class Webhook:
    def __init__(self):
        self.received = []  # (arrival order) dicts: body + delivery id
        self.bad_signatures = 0
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ts = self.headers.get("X-Fjord-Timestamp", "")
                want = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + body,
                                            hashlib.sha256).hexdigest()
                if self.headers.get("X-Fjord-Signature") != want:
                    hook.bad_signatures += 1
                a = json.loads(body)
                a["_delivery"] = self.headers.get("X-Fjord-Delivery")
                hook.received.append(a)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((f"{NET}.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- the cluster -----------------------------------------------------------------------------------

class Cluster:
    def __init__(self, a, work):
        self.a, self.work = a, work
        self.procs = {}
        self.webhook = Webhook()
        os.makedirs(f"{work}/logs", exist_ok=True)
        self.mosquitto_setup()
        lake_root = f"{work}/s3"
        os.makedirs(f"{lake_root}/fjord", exist_ok=True)
        tansu_url = f"tcp://{ip('kafka')}:9092"
        self.add("kafka", "kafka", [a.tansu, "broker", "--storage-engine", "memory://tansu/",
                                    "--listener-url", tansu_url, "--advertised-listener-url",
                                    tansu_url, "--cluster-id", "fjord-cluster-test"],
                 {"RUST_LOG": "warn"})
        self.add("mqtt", "mqtt", [a.mosquitto, "-c", f"{work}/mosquitto/mosquitto.conf"], {})
        self.add("s3", "s3", [a.s3s_fs, "--host", ip("s3"), "--port", "9000", "--access-key",
                              S3_KEY, "--secret-key", S3_SECRET, lake_root], {"RUST_LOG": "warn"})
        for host in ["bridge-1", "bridge-2"]:
            self.add(host, host, [a.fjord, "--config", a.config, "bridge"],
                     {"FJORD__MQTT__CLIENT_ID": f"fjord-{host}"})
        for host in ["stream-1", "stream-2"]:
            self.add(host, host, [a.fjord, "--config", a.config, "stream"],
                     {"FJORD__STREAM__INSTANCE_ID": host})
        self.add("batch", "batch", [a.fjord, "--config", a.config, "batch", "run", "--every",
                                    a.batch_every], {})
        for host in ["serve-1", "serve-2"]:
            self.add(host, host, [a.fjord, "--config", a.config, "serve"], {})

    def fjord_env(self, host):
        return {
            "FJORD__DATA_DIR": f"{self.work}/data/{host}",
            "FJORD__LOG__FORMAT": "human",
            "FJORD__KAFKA__BROKERS": f"{ip('kafka')}:9092",
            "FJORD__KAFKA__PARTITIONS": "6",
            "FJORD__KAFKA__REPLICATION_FACTOR": "-1",
            "FJORD__KAFKA__FETCH_WAIT": "10ms",
            "FJORD__MQTT__URL": f"mqtt://{ip('mqtt')}:1883",
            "FJORD__MQTT__PASSWORD": MQTT_BRIDGE_PW,
            # tansu has no transactions: at least once, with idempotent keyed outputs
            "FJORD__STREAM__PROCESSING_GUARANTEE": "at_least_once",
            "FJORD__STREAM__SESSION_TIMEOUT": "10s",
            # small windows: minutes of load close hundreds of them (and the batch high-water
            # mark follows the largest size)
            "FJORD__STREAM__WINDOWS": '["10s", "1m"]',
            "FJORD__LAKE__STORAGE_OPTIONS__AWS_ENDPOINT": f"http://{ip('s3')}:9000",
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "FJORD__AUTH__TOKEN": TOKEN,
            # alerts that change state within minutes
            "FJORD__ALERTS__SENSOR_SILENT__AFTER": "1m",
            "FJORD__ALERTS__LOT_FULL__FIRE_AT": "0.5",
            "FJORD__ALERTS__LOT_FULL__RESOLVE_AT": "0.45",
            "FJORD__ALERTS__WEBHOOKS": f'[{{ name = "ops", url = "http://{NET}.1:{self.webhook.port}/hook", secret = "{WEBHOOK_SECRET}" }}]',
            "FJORD__ALERTS__DELIVERY__MAX_BACKOFF": "2s",
        }

    def add(self, name, host, argv, env):
        if argv[0] == self.a.fjord:
            env = {**self.fjord_env(host), **env}
            os.makedirs(env["FJORD__DATA_DIR"], exist_ok=True)
        self.procs[name] = Proc(name, host, argv, env, f"{self.work}/logs")

    def mosquitto_setup(self):
        d = f"{self.work}/mosquitto"
        os.makedirs(f"{d}/data", exist_ok=True)
        passwd = f"{d}/passwd"
        open(passwd, "w").close()
        for user, pw in [("fjord-bridge", MQTT_BRIDGE_PW), ("devices", MQTT_DEVICE_PW)]:
            sh(self.a.mosquitto_passwd, "-b", passwd, user, pw)
        # the ACL and the settings of docker/mosquitto/, with this run's paths
        shutil.copy(os.path.join(self.a.repo, "docker/mosquitto/acl"), f"{d}/acl")
        conf = open(os.path.join(self.a.repo, "docker/mosquitto/mosquitto.conf")).read()
        conf = (conf.replace("/mosquitto/data/", f"{d}/data/")
                    .replace("/mosquitto/auth/passwd", passwd)
                    .replace("/mosquitto/config/acl", f"{d}/acl")) + "\nuser root\n"
        open(f"{d}/mosquitto.conf", "w").write(conf)
        for f in (passwd, f"{d}/acl"):
            os.chmod(f, 0o600)

    def ready(self, name):
        host = self.procs[name].host
        if name == "kafka":
            return tcp_open(ip(host), 9092)
        if name == "mqtt":
            return tcp_open(ip(host), 1883)
        if name == "s3":
            return tcp_open(ip(host), 9000)
        port = {"bridge": 8081, "stream": 9465, "batch": 9466, "serve": 8080}[name.split("-")[0]]
        path = "/healthz" if name == "batch" else "/readyz"
        return http_get(f"http://{ip(host)}:{port}{path}", timeout=2)[0] == 200

    def start(self, name, timeout=90):
        self.procs[name].start()
        ok = wait_for(f"{name} ready", lambda: self.ready(name) or not self.procs[name].running(),
                      timeout)
        if not self.procs[name].running():
            raise RuntimeError(f"{name} exited: see {self.procs[name].logpath}")
        return ok

    def stop_all(self):
        for p in reversed(list(self.procs.values())):
            p.stop()


# --- the ledger and the checks ---------------------------------------------------------------------

def ts_ms(text):
    return round(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def read_ledger(path):
    """(acknowledged readings, {(lot, space, ts): (occupied, battery)}, {key: first PUBACK's ms})."""
    rows, acked_at = {}, {}
    acked = 0
    for line in open(path):
        m = json.loads(line)
        parts = m["topic"].split("/")
        if parts[0] != "parking":
            continue
        acked += 1
        p = json.loads(m["payload"])
        key = (parts[1], parts[2], ts_ms(p["ts"]))
        rows[key] = (bool(p["occupied"]), int(p["battery"]))
        acked_at[key] = min(acked_at.get(key, m["acked_at"]), m["acked_at"])
    return acked, rows, acked_at


def lake_storage_options():
    return {"AWS_ENDPOINT_URL": f"http://{ip('s3')}:9000", "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def lake_readings():
    from deltalake import DeltaTable
    t = DeltaTable("s3://fjord/lake/readings", storage_options=lake_storage_options())
    data = t.to_pyarrow_table(columns=["lot_id", "space_id", "ts", "occupied", "battery"])
    cols = data.to_pydict()
    out = collections.Counter()
    values = {}
    for lot, space, ts, occ, bat in zip(cols["lot_id"], cols["space_id"], cols["ts"],
                                        cols["occupied"], cols["battery"]):
        key = (lot, space, round(ts.timestamp() * 1000))
        out[key] += 1
        values[key] = (bool(occ), int(bat) if bat is not None else None)
    return out, values, t.version()


def check_lake(ledger, acked_at, unacked, broker_gaps, report):
    """Every acknowledged reading once, with its values. Two exceptions are counted, not failed:
    readings sent and delivered whose PUBACK the simulator never saw (at most `unacked` of them),
    and readings that mosquitto acknowledged and dropped after a restart of its own (`broker_gaps`:
    from its SIGKILL until both bridges had subscribed again, mosquitto 2.0 does not restore
    shared subscriptions from its persistence). Any other reading missing fails the check."""
    counts, values, version = lake_readings()
    missing = [k for k in ledger if k not in counts]
    by_broker = [k for k in missing if any(a <= acked_at[k] <= b for a, b in broker_gaps)]
    lost = [k for k in missing if k not in set(by_broker)]
    extra = [k for k in counts if k not in ledger]
    doubled = {k: n for k, n in counts.items() if n > 1}
    wrong = [k for k in ledger if k in values and values[k] != ledger[k]]
    report["lake"] = {"delta_version": version, "ledger_readings": len(ledger),
                      "lake_rows": sum(counts.values()), "missing": len(lost),
                      "dropped_by_the_mqtt_broker_after_its_restart": len(by_broker),
                      "broker_restart_windows_ms": broker_gaps,
                      "not_acknowledged_but_landed": len(extra), "sent_not_acknowledged": unacked,
                      "duplicated": len(doubled), "different_values": len(wrong),
                      "examples_missing": [list(k) for k in lost[:5]]}
    report["_dropped_by_broker"] = set(by_broker)
    ok = not lost and len(extra) <= unacked and not doubled and not wrong
    log(f"{'ok' if ok else 'FAIL'} lake (deltalake): {len(ledger)} acknowledged readings, "
        f"{sum(counts.values())} rows at version {version}: {len(lost)} missing, {len(doubled)} "
        f"duplicated, {len(wrong)} with other values; {len(extra)} landed without a PUBACK seen "
        f"(of {unacked} sent and not acknowledged)")
    if by_broker:
        log(f"   mosquitto dropped {len(by_broker)} readings it had acknowledged, published between "
            f"its restart and the bridges' new subscription ({len(broker_gaps)} restart)")
    return ok


def check_polars(report):
    """A second independent reader agrees with the first (row count, distinct keys, occupied)."""
    import polars as pl
    df = pl.read_delta("s3://fjord/lake/readings", storage_options=lake_storage_options())
    n = df.height
    distinct = df.select(["lot_id", "space_id", "ts"]).unique().height
    occupied = int(df["occupied"].sum())
    counts, values, _ = lake_readings()
    want = (sum(counts.values()), len(counts), sum(1 for v in values.values() if v[0]))
    report["polars"] = {"rows": n, "distinct_keys": distinct, "occupied_true": occupied}
    ok = (n, distinct, occupied) == want
    log(f"{'ok' if ok else 'FAIL'} lake (polars {pl.__version__}): {n} rows, {distinct} distinct "
        f"(lot, space, ts), {occupied} occupied; deltalake: {want[0]}, {want[1]}, {want[2]}")
    return ok


def reference_windows(ledger, size, hwm):
    """§4.1 in DuckDB over the ledger (scripts/occupancy_sql.py), windows ending by hwm."""
    import duckdb
    con = duckdb.connect()
    con.execute("CREATE TABLE readings (lot_id VARCHAR, space_id VARCHAR, t BIGINT, occupied BOOLEAN)")
    con.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)",
                    [(k[0], k[1], k[2], v[0]) for k, v in ledger.items()])
    sql = occupancy_sql.windows(size, str(hwm))
    return {(r[0], r[1]): r[2:] for r in con.execute(sql).fetchall()}


def served_windows(host, table, size, hwm):
    rows = sql_http(host, f"""SELECT lot_id, CAST(to_unixtime(window_start) * 1000 AS BIGINT) AS ws,
        occupied_avg, occupied_end, arrivals, departures, readings, source FROM {table}
        WHERE window_end <= to_timestamp_millis({hwm}) ORDER BY lot_id, window_start""", timeout=60)
    return {(r["lot_id"], r["ws"]): (r["occupied_avg"], r["occupied_end"], r["arrivals"],
                                     r["departures"], r["readings"], r["source"]) for r in rows}


def compare_windows(ref, served):
    diff = []
    for k in sorted(set(ref) | set(served)):
        a, b = ref.get(k), served.get(k)
        if a is None or b is None or abs(a[0] - b[0]) > 1e-9 or tuple(a[1:]) != tuple(b[1:5]):
            diff.append((k, a, b))
    return diff


def check_windows(ledger, dropped, report):
    """The served windows against the reference over what reached fjord: the acknowledged
    readings less those the MQTT broker dropped after its restart (`dropped`)."""
    ledger = {k: v for k, v in ledger.items() if k not in dropped}
    max_t = max(k[2] for k in ledger)
    hwm = (max_t - 65_000) // 60_000 * 60_000
    ok = True
    report["windows"] = {}
    for table, size in [("occupancy_10s", 10_000), ("occupancy_1m", 60_000)]:
        ref = reference_windows(ledger, size, hwm)
        served = served_windows("serve-1", table, size, hwm)
        diff = compare_windows(ref, served)
        sources = collections.Counter(v[5] for v in served.values())
        report["windows"][table] = {"reference": len(ref), "served": len(served),
                                    "sources": dict(sources), "differing": len(diff),
                                    "examples": [str(d) for d in diff[:5]]}
        good = not diff and len(ref) > 0
        ok &= good
        log(f"{'ok' if good else 'FAIL'} {table}: {len(ref)} reference windows up to "
            f"{datetime.datetime.fromtimestamp(hwm / 1000, datetime.UTC):%H:%M}, served "
            f"{len(served)} ({dict(sources)}), {len(diff)} differ")
        for d in diff[:3]:
            log(f"   {d}")
    return ok


def check_alerts(webhook, report):
    q = "SELECT id, key, rule, status, event_time FROM alerts ORDER BY key, event_time, status DESC"
    # alerts keep changing state after the load (silent sensors): await the delivery of what the
    # lake holds, bounded
    delivered = lambda rows: {r["id"] for r in rows} <= {a["id"] for a in webhook.received}
    wait_for("every alert change of the lake delivered", lambda: delivered(sql_http("serve-1", q)), 90)
    rows = sql_http("serve-1", q)
    by_key = collections.defaultdict(list)
    for r in rows:
        by_key[r["key"]].append(r["id"])
    got_ids = collections.defaultdict(list)
    for a in webhook.received:
        if a["id"] not in got_ids[a["key"]]:
            got_ids[a["key"]].append(a["id"])
    missing = [(k, i) for k, ids in by_key.items() for i in ids if i not in got_ids.get(k, [])]
    unordered = [k for k, ids in by_key.items()
                 if [i for i in got_ids.get(k, []) if i in ids] != [i for i in ids if i in got_ids.get(k, [])]]
    rules = collections.Counter(r["rule"] for r in rows)
    report["alerts"] = {"changes": len(rows), "by_rule": dict(rules),
                        "webhook_posts": len(webhook.received), "missing": len(missing),
                        "out_of_order_keys": len(unordered), "bad_signatures": webhook.bad_signatures}
    ok = rows and not missing and not unordered and webhook.bad_signatures == 0
    log(f"{'ok' if ok else 'FAIL'} alerts: {len(rows)} state changes ({dict(rules)}), "
        f"{len(webhook.received)} webhook POSTs: {len(missing)} never delivered, "
        f"{len(unordered)} keys out of order, {webhook.bad_signatures} bad signatures")
    for m in missing[:3]:
        log(f"   not delivered: {m}")
    return bool(ok)


# Stable answers only: windows that closed and alerts of the load's time (after the load, windows
# keep closing and silent sensors keep firing, between one replica's answer and the other's).
REPLICA_QUERIES = [
    "SELECT count(*) AS n, count(DISTINCT lot_id) AS lots, sum(CAST(occupied AS INT)) AS occ FROM readings",
    "SELECT lot_id, window_start, occupied_avg, readings, source FROM occupancy_1m "
    "WHERE window_end <= to_timestamp_millis({hwm}) ORDER BY lot_id, window_start",
    "SELECT id, status FROM alerts WHERE event_time <= to_timestamp_millis({max_t}) ORDER BY id",
    "SELECT lot_id, count(*) AS spaces, max(last_seen) AS last FROM spaces_live GROUP BY lot_id ORDER BY lot_id",
]


def check_replicas(ledger, report):
    import psycopg
    max_t = max(k[2] for k in ledger)
    hwm = (max_t - 65_000) // 60_000 * 60_000
    ok = True
    report["replicas"] = []
    for q in (q.format(hwm=hwm, max_t=max_t) for q in REPLICA_QUERIES):
        a, b = sql_http("serve-1", q), sql_http("serve-2", q)
        pg = []
        for host in ["serve-1", "serve-2"]:
            with psycopg.connect(host=ip(host), port=5433, user="fjord", password=TOKEN,
                                 dbname="fjord", connect_timeout=10) as c:
                pg.append(c.execute(q).fetchall())
        same = a == b and pg[0] == pg[1]
        ok &= same and len(a) > 0
        report["replicas"].append({"query": q, "rows": len(a), "http_equal": a == b,
                                   "pg_equal": pg[0] == pg[1]})
        log(f"{'ok' if same and a else 'FAIL'} replicas alike: {len(a)} rows, HTTP "
            f"{'equal' if a == b else 'DIFFERENT'}, Postgres wire {'equal' if pg[0] == pg[1] else 'DIFFERENT'}: {q[:70]}")
    return ok


def fault_plan(kind, names):
    """(fault, host) pairs for one kind: SIGKILL the first instance and cut the last one's link.
    tansu here keeps its log in memory: a SIGKILL would erase Kafka itself, which no client can
    survive (a real cluster replicates), so the Kafka host is paused (SIGSTOP) instead. (tansu's S3
    storage survives a SIGKILL, checked by hand with 2,000 records, but under this test's load on
    s3s-fs its consumer groups timed out, the stream processors were fenced and the lake fell
    behind: not a configuration to test fjord with.)"""
    if kind == "kafka":
        return [("SIGSTOP", names[0]), ("link cut", names[0])]
    if kind == "mqtt":
        # the cut first: a restart after it would hide whether the cut alone loses anything
        return [("link cut", names[0]), ("SIGKILL", names[0])]
    return [("SIGKILL", names[0]), ("link cut", names[-1])]


# --- the run -----------------------------------------------------------------------------------

def metric(host, port, name, label=""):
    """The sum of metric `name`'s samples whose labels contain `label` (0 when unreachable)."""
    status, text = http_get(f"http://{ip(host)}:{port}/metrics")
    if status != 200:
        return 0
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name) and label in line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fjord", required=True)
    ap.add_argument("--tansu", required=True)
    ap.add_argument("--s3s-fs", dest="s3s_fs", required=True)
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--mosquitto-passwd", dest="mosquitto_passwd",
                    default=shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--work", default="/tmp/fjord-cluster-test")
    ap.add_argument("--rate", type=int, default=200, help="simulator messages per second")
    ap.add_argument("--hold", type=float, default=12, help="seconds each fault lasts")
    ap.add_argument("--settle", type=float, default=8, help="seconds of normal load between faults")
    ap.add_argument("--tail", type=float, default=90,
                    help="seconds of load after the last fault (the windows compared end 65 s "
                         "before the load, so that the last faults' windows are compared too)")
    ap.add_argument("--batch-every", dest="batch_every", default="20s")
    ap.add_argument("--kinds", default="bridge,stream,batch,serve,s3,mqtt,kafka")
    a = ap.parse_args()
    a.config = os.path.join(a.repo, "docker/fjord.toml")
    if os.geteuid() != 0:
        sys.exit("cluster-test: needs root (ip netns)")
    # SIGTERM (a CI timeout, kill) stops the processes and removes the namespaces like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    report = {"faults": [], "started": datetime.datetime.now(datetime.UTC).isoformat()}
    faults = report["faults"]
    net_up()
    c = Cluster(a, a.work)
    sim = None
    ok = False
    try:
        log(f"network {NET}.0/24 up: {len(HOSTS)} namespaces; logs in {a.work}/logs")
        for name in ["kafka", "mqtt", "s3"]:
            c.start(name)
        for name in ["bridge-1", "bridge-2", "stream-1", "stream-2", "serve-1", "serve-2", "batch"]:
            c.start(name)
        log("every host is up and ready: 2 bridges, 2 stream processors, batch, 2 serve replicas")
        ledger_path = f"{a.work}/acked.jsonl"
        kinds = a.kinds.split(",")
        broker_gaps = []  # (from, to) epoch ms: mosquitto's SIGKILL until both bridges subscribed again
        sim = Proc("simulator", "devices",
                   [a.fjord, "simulate", "--mqtt", f"mqtt://{ip('mqtt')}:1883", "--username",
                    "devices", "--rate", str(a.rate), "--lots", "4",
                    "--spaces", "30", "--silent", "0.04", "--low-battery", "0.1", "--duplicates",
                    "0.01", "--inflight", "200", "--seed", "7", "--record", ledger_path, "--json"],
                   {"FJORD_MQTT_PASSWORD": MQTT_DEVICE_PW, "FJORD__DATA_DIR": f"{a.work}/data/devices"},
                   f"{a.work}/logs")
        sim.start()
        log(f"simulator: {a.rate} msg/s over 4 lots x 30 spaces, recording acknowledgements")
        time.sleep(20)  # load before the first fault (there is nothing to await: it is the load)
        for kind in kinds:
            names = [n for n in c.procs if n.split("-")[0] == kind]
            for mode, name in fault_plan(kind, names):
                t = time.time() - T0
                inject, restore = {
                    "SIGKILL": (c.procs[name].kill, c.procs[name].start),
                    "SIGSTOP": (lambda: os.kill(c.procs[name].p.pid, signal.SIGSTOP),
                                lambda: os.kill(c.procs[name].p.pid, signal.SIGCONT)),
                    "link cut": (lambda: cut(name), lambda: heal(name)),
                }[mode]
                inject()
                log(f">> {mode} {name} ({ip(name)}) for {a.hold:.0f} s")
                time.sleep(a.hold)  # the fault's length is the point: nothing to await
                restore()
                back = wait_for(f"{name} ready again", lambda: c.ready(name), 120)
                if kind == "mqtt":
                    # the bridges notice a lost broker and reconnect with backoff: the broker's
                    # recovery is theirs too
                    back &= wait_for("both bridges connected again",
                                     lambda: c.ready("bridge-1") and c.ready("bridge-2"), 120)
                    if mode == "SIGKILL":
                        # acknowledged from 1 s before the kill (what mosquitto had queued for
                        # the bridges then) until both bridges subscribed again
                        broker_gaps.append((int((T0 + t - 1) * 1000), int(time.time() * 1000)))
                took = time.time() - T0 - t - a.hold
                log(f"<< {name} back{'' if back else ' NOT READY'}, ready {took:.1f} s after it returned")
                faults.append({"at_s": round(t, 1), "kind": kind, "host": name, "fault": mode,
                               "held_s": a.hold, "ready_again_after_s": round(took, 1), "ready": back})
                time.sleep(a.settle)  # normal load between two faults: the schedule, not a wait
                for n, p in c.procs.items():
                    if not p.running():
                        log(f"!! {n} exited (see {p.logpath}); restarting it")
                        faults.append({"at_s": round(time.time() - T0, 1), "host": n, "fault": "exited by itself"})
                        p.start()
        log(f"faults done; {a.tail:.0f} s more of load, then the simulator stops")
        time.sleep(a.tail)  # load after the last fault: its length is the point
        sim.p.send_signal(signal.SIGTERM)
        sim.p.wait(timeout=90)
        summary = json.loads([l for l in open(sim.logpath) if l.startswith('{"sent"')][-1])
        report["simulator"] = summary
        log(f"simulator: sent {summary['sent']}, acknowledged {summary['acked']}")
        acked, ledger, acked_at = read_ledger(ledger_path)
        if summary.get("record_complete") is False:
            log("!! the broker lost a simulator session: the record is incomplete (still a subset of what was acknowledged)")
        log(f"ledger: {acked} acknowledged readings, {len(ledger)} distinct (lot, space, ts)")
        # drain: the lake holds every acknowledged reading, and a batch run after it made the views
        def drained():
            try:
                counts, _, _ = lake_readings()
                return all(k in counts for k in ledger
                           if not any(a <= acked_at[k] <= b for a, b in broker_gaps))
            except Exception:
                return False
        t = time.time()
        wait_for("every acknowledged reading in the lake", drained, 150)
        log(f"lake caught up {time.time() - t:.0f} s after the load ended")
        ok_runs = lambda: metric("batch", 9466, "fjord_batch_runs_total", 'outcome="ok"')
        runs0 = ok_runs()
        wait_for("two more successful batch runs", lambda: ok_runs() >= runs0 + 2, 180)
        # readings that landed without a recorded PUBACK: at most those sent and not acknowledged,
        # unless the record stopped early (then any acknowledged after it)
        unacked = (summary["sent"] - summary["acked"] if summary.get("record_complete") is not False
                   else summary["sent"])
        checks = [check_lake(ledger, acked_at, unacked, broker_gaps, report), check_polars(report),
                  check_windows(ledger, report.pop("_dropped_by_broker"), report),
                  check_alerts(c.webhook, report),
                  check_replicas(ledger, report)]
        ok = all(checks)
    finally:
        if sim:
            sim.stop()
        c.stop_all()
        net_down()
        report["seconds"] = round(time.time() - T0)
        report["passed"] = ok
        json.dump(report, open(f"{a.work}/report.json", "w"), indent=1, default=str)
    log(f"{'PASSED' if ok else 'FAILED'} in {report['seconds']} s: {len(faults)} faults injected; "
        f"report {a.work}/report.json, logs {a.work}/logs; the lake stays in {a.work}/s3/fjord/lake")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
