#!/usr/bin/env bash
# Installs what fjord's tests need, skipping what is already there (a second run takes seconds):
#   * Debian packages: mosquitto (MQTT broker for tests), mosquitto-clients (mosquitto_pub, the
#     client a newcomer uses against `fjord demo`), postgresql-client (psql, the real client of
#     the Postgres wire tests), chromium and nodejs/npm (the dashboard's browser test) and the C build
#     prerequisites of librdkafka;
#   * playwright-core from npm into ~/.cache/fjord-ci/node (drives chromium);
#   * tansu, a Kafka-protocol broker, and s3s-fs, an S3-compatible server, built with cargo into
#     ~/.cache/fjord-ci/tools;
#   * a Python venv (~/.cache/fjord-ci/venv) with deltalake, pyarrow, duckdb and polars, the independent
#     readers of the lake in the tests, adbc-driver-flightsql (the Flight SQL client) and
#     kubernetes-validate (the manifests of docker/k8s, offline).
# Works on a machine with only the Rust toolchain, Python 3 and apt. Needs root (or sudo) for apt.
set -euo pipefail

TOOLS="${FJORD_TOOLS_DIR:-$HOME/.cache/fjord-ci/tools}"
TANSU_VERSION="0.6.0"
S3S_FS_VERSION="0.14.1"   # the newest that builds with rustc 1.95

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "test-deps: need root to run: $*" >&2; exit 1; fi
}

# --- Debian packages -------------------------------------------------------------------------
missing=()
for pkg in mosquitto pkg-config zlib1g-dev libssl-dev build-essential; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v ip >/dev/null || missing+=(iproute2)   # the cluster test's network namespaces
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]} with apt"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The tests start their own mosquitto processes on free loopback ports.

# In CI the test servers are built at opt-level 1: they only serve the tests' modest loads, and
# it takes minutes off a cold run. Elsewhere tansu is built at full speed, because benchmarks
# measure against it; a CI build found outside CI is rebuilt (the mode is kept next to it).
BUILD_MODE="full"
if [ "${CI:-}" = "true" ]; then
  BUILD_MODE="ci"
fi
build_profile() {
  if [ "$BUILD_MODE" = "ci" ]; then echo "CARGO_PROFILE_RELEASE_OPT_LEVEL=1"; else echo "FJORD_BUILD_MODE=full"; fi
}

# --- tansu -------------------------------------------------------------------------------------
tansu_mode="$(cat "$TOOLS/tansu.mode" 2>/dev/null || echo full)"
if [ -x "$TOOLS/bin/tansu" ] && "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION" &&
   { [ "$BUILD_MODE" = "ci" ] || [ "$tansu_mode" = "full" ]; }; then
  :
else
  echo "test-deps: building tansu $TANSU_VERSION into $TOOLS (takes several minutes once)"
  env "$(build_profile)" cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --root "$TOOLS" --force
  echo "$BUILD_MODE" > "$TOOLS/tansu.mode"
fi
# --- s3s-fs (S3-compatible server for the lake tests) ------------------------------------------
if [ -x "$TOOLS/bin/s3s-fs" ] && "$TOOLS/bin/s3s-fs" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  :
else
  echo "test-deps: building s3s-fs $S3S_FS_VERSION into $TOOLS"
  env "$(build_profile)" cargo install s3s-fs --version "$S3S_FS_VERSION" --locked --features binary --root "$TOOLS"
fi

# --- playwright-core (drives Debian's chromium in the dashboard test) ---------------------------
NODE_DIR="${FJORD_NODE_DIR:-$HOME/.cache/fjord-ci/node}"
PLAYWRIGHT_VERSION="1.65.1"
if [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] &&
   grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
  :
else
  echo "test-deps: installing playwright-core $PLAYWRIGHT_VERSION into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION")
fi

# --- Python: independent Delta/Parquet readers (deltalake, pyarrow, duckdb, polars), ADBC Flight SQL,
# psycopg (the Postgres wire's extended protocol), kubernetes-validate (the manifests of docker/k8s,
# offline against the Kubernetes schema; brings PyYAML) ----
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import deltalake, pyarrow, duckdb, adbc_driver_flightsql.dbapi, psycopg, polars, kubernetes_validate, yaml" 2>/dev/null; then
  :
else
  echo "test-deps: installing deltalake, pyarrow, duckdb, polars, adbc-driver-flightsql, psycopg and kubernetes-validate into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || {
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q deltalake pyarrow duckdb polars adbc-driver-manager adbc-driver-flightsql \
    'psycopg[binary]' kubernetes-validate
fi
echo "test-deps: ok (mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto), tansu: $TOOLS/bin/tansu)"
