#!/usr/bin/env python3
"""Checks that the deployment files in docker/ are current with fjord.

  * docker/compose.yaml: every fjord service's configuration (docker/fjord.toml, the env file and
    the service's environment) passes `fjord config check`; each long-running one has a health
    check on /healthz or /readyz at the port its configuration listens on; the cluster's parts are
    all there (3 KRaft brokers, mosquitto with persistence and ACL, an S3 store, 2 bridges on a
    shared subscription, 2 stream processors, the batch scheduler, serve).
  * docker/k8s/: every manifest validates offline against the Kubernetes schema
    (kubernetes-validate --strict; a broken copy must fail, so the validator is known to bite);
    the ConfigMap's fjord.toml with the Secret and each workload's environment passes
    `fjord config check`; probes point at the configured ports.
  * docker/monitoring/: every fjord metric the Prometheus rules and the Grafana dashboard name is
    one fjord defines; every rule has a severity and a summary.
  * docker/Dockerfile: multi-stage, stripped binary, non-root user.

Run by the e2e test `deploy` with the test venv's Python (PyYAML comes with kubernetes-validate):
  python scripts/check-deploy.py --fjord target/debug/fjord
Prints one line per check and exits 1 if any failed.
"""

import argparse
import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

FAILED = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILED.append(what)
    return ok


def env_file(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def config_check(fjord, config_text, env, what):
    """`fjord config check --print` of config_text under env; the effective config, or None."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fjord.toml")
        open(path, "w").write(config_text)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FJORD__", "AWS_"))}
        r = subprocess.run([fjord, "config", "check", "--config", path, "--print"], cwd=d,
                           env={**clean, **{k: str(v) for k, v in env.items()}},
                           capture_output=True, text=True)
    check(r.returncode == 0, f"{what}: fjord config check" +
          ("" if r.returncode == 0 else f"\n{r.stdout}{r.stderr}"))
    if r.returncode != 0:
        return None
    # "config OK: …", then the effective config as TOML
    return tomllib.loads("\n".join(r.stdout.splitlines()[1:]))


def listen_port(cfg, component):
    key = {"bridge": ("bridge", "http_listen"), "stream": ("stream", "metrics_listen"),
           "batch": ("batch", "metrics_listen"), "serve": ("serve", "http_listen")}[component]
    return int(cfg[key[0]][key[1]].rsplit(":", 1)[1])


def component_of(args):
    for c in ("bridge", "stream", "batch", "serve", "simulate"):
        if c in args:
            return c
    return None


def check_compose(fjord, repo):
    d = os.path.join(repo, "docker")
    compose = yaml.safe_load(open(os.path.join(d, "compose.yaml")))
    services = compose["services"]
    base = open(os.path.join(d, "fjord.toml")).read()
    want = ["kafka-1", "kafka-2", "kafka-3", "mosquitto", "minio", "bridge-1", "bridge-2",
            "stream-1", "stream-2", "batch", "serve"]
    check(all(s in services for s in want), f"compose: services {', '.join(want)}")
    kraft = [services[k]["environment"] for k in ("kafka-1", "kafka-2", "kafka-3")]
    check(all(e.get("KAFKA_PROCESS_ROLES") == "broker,controller" and
              len(e["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3 for e in kraft)
          and len({e["KAFKA_NODE_ID"] for e in kraft}) == 3,
          "compose: 3 KRaft brokers in one quorum")
    mconf = open(os.path.join(d, "mosquitto", "mosquitto.conf")).read()
    check("persistence true" in mconf and "acl_file" in mconf and "allow_anonymous false" in mconf
          and os.path.isfile(os.path.join(d, "mosquitto", "acl")),
          "compose: mosquitto with persistence, an ACL file and no anonymous access")
    client_ids, instance_ids = set(), set()
    for name, s in services.items():
        if s.get("image") != "fjord:local":
            continue
        args = s.get("command") or s.get("entrypoint") or []
        args = " ".join(args) if isinstance(args, list) else args
        env = {}
        for f in s.get("env_file", []):
            env.update(env_file(os.path.join(d, f)))
        env.update(s.get("environment") or {})
        check("FJORD__AUTH__TOKEN" in env, f"compose {name}: the token comes from the env file")
        cfg = config_check(fjord, base, env, f"compose {name}")
        component = component_of(args)
        if cfg is None or component in (None, "simulate"):
            continue
        if component == "bridge":
            client_ids.add(cfg["mqtt"]["client_id"])
            check(cfg["bridge"].get("share_group"), f"compose {name}: on a shared subscription")
        if component == "stream":
            instance_ids.add(cfg["stream"].get("instance_id"))
        hc = " ".join(s.get("healthcheck", {}).get("test", []))
        port = listen_port(cfg, component)
        check(re.search(rf"localhost:{port}/(healthz|readyz)", hc) is not None,
              f"compose {name}: health check on /healthz or /readyz at port {port} ({hc or 'none'})")
    check(len(client_ids) == 2, f"compose: two bridges with distinct MQTT client ids {sorted(client_ids)}")
    check(len(instance_ids) == 2 and None not in instance_ids,
          f"compose: two stream processors with distinct instance ids {sorted(map(str, instance_ids))}")


def check_k8s(fjord, repo, py):
    d = os.path.join(repo, "docker", "k8s")
    files = sorted(f for f in glob.glob(os.path.join(d, "*.yaml"))
                   if not f.endswith("kustomization.yaml"))
    kv = [py, "-m", "kubernetes_validate", "--strict", "--quiet"]
    r = subprocess.run(kv + files, capture_output=True, text=True)
    check(r.returncode == 0, f"k8s: {len(files)} manifests valid against the Kubernetes schema"
          + ("" if r.returncode == 0 else f"\n{r.stdout}{r.stderr}"))
    docs = [doc for f in files for doc in yaml.safe_load_all(open(f)) if doc]
    # the validator bites: a probe port of the wrong type and an unknown field must fail
    broken = copy.deepcopy(next(x for x in docs if x["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [1]
    broken["spec"]["replicaz"] = 2
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as t:
        yaml.safe_dump(broken, t)
        t.flush()
        r = subprocess.run(kv + [t.name], capture_output=True, text=True)
    check(r.returncode != 0, "k8s: the validator rejects a broken Deployment")
    kustom = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
    check(sorted(kustom["resources"]) == sorted(os.path.basename(f) for f in files),
          "k8s: kustomization.yaml lists every manifest")
    config = next(x for x in docs if x["kind"] == "ConfigMap")["data"]["fjord.toml"]
    secret = next(x for x in docs if x["kind"] == "Secret")["stringData"]
    kinds = {}
    for x in docs:
        if x["kind"] == "Deployment":
            pod = x["spec"]["template"]["spec"]
        elif x["kind"] == "CronJob":
            pod = x["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        for c in pod["containers"]:
            name = f"k8s {x['kind']} {x['metadata']['name']}"
            env = dict(secret)
            for e in c.get("env", []):
                env[e["name"]] = e.get("value", f"{x['metadata']['name']}-pod-0")
            cfg = config_check(fjord, config, env, name)
            component = component_of(" ".join(c["args"]))
            if cfg is None or x["kind"] == "CronJob":
                continue
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                port = ports.get(get["port"], get["port"])
                check(port == listen_port(cfg, component) and get["path"] in ("/healthz", "/readyz"),
                      f"{name}: {probe} {get['path']} at the configured port {port}")
    check(kinds.get("Deployment", 0) >= 3 and kinds.get("CronJob", 0) >= 1,
          f"k8s: Deployments for bridge, stream and serve, the batch as a CronJob ({kinds})")


def defined_metrics(repo):
    names = set()
    for f in glob.glob(os.path.join(repo, "*", "src", "**", "*.rs"), recursive=True):
        text = open(f).read()
        for m in re.finditer(r'(?:Opts::new|IntGauge::new|IntCounter::new|Gauge::new|Counter::new)\(\s*"([a-z_]+)"', text):
            names.add("fjord_" + m.group(1))
    return names


def check_monitoring(repo):
    d = os.path.join(repo, "docker", "monitoring")
    defined = defined_metrics(repo)
    check(len(defined) > 20, f"monitoring: {len(defined)} metrics defined in the sources")
    rules = yaml.safe_load(open(os.path.join(d, "prometheus-rules.yaml")))
    dash = json.load(open(os.path.join(d, "grafana-dashboard.json")))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"fjord_[a-z_]+", e)}
    unknown = sorted(used - defined)
    check(not unknown, f"monitoring: the {len(used)} metrics the rules and dashboard use exist"
          + (f"; unknown: {unknown}" if unknown else ""))
    bad = [r.get("alert") for g in rules["groups"] for r in g["rules"]
           if not r.get("labels", {}).get("severity") or not r.get("annotations", {}).get("summary")]
    check(not bad, f"monitoring: every alert rule has a severity and a summary {bad or ''}")


def check_dockerfile(repo):
    text = open(os.path.join(repo, "docker", "Dockerfile")).read()
    stages = re.findall(r"^FROM ", text, re.M)
    check(len(stages) >= 2 and "slim" in text.split("FROM")[-1].splitlines()[0],
          "Dockerfile: multi-stage, slim runtime image")
    check("strip" in text and re.search(r"^USER (?!root|0)", text, re.M) is not None,
          "Dockerfile: stripped binary, non-root user")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fjord", required=True)
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()
    check_compose(a.fjord, a.repo)
    check_k8s(a.fjord, a.repo, sys.executable)
    check_monitoring(a.repo)
    check_dockerfile(a.repo)
    print(f"{len(FAILED)} failed" if FAILED else "every deployment check passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
