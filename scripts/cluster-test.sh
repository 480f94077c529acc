#!/usr/bin/env bash
# fjord as a cluster on this machine, host by host, tested by losing hosts (docs/operations.md#the-cluster-test):
#   cargo build --release --locked --bin fjord && sudo bash scripts/cluster-test.sh [FJORD_BIN] [-- options]
# FJORD_BIN defaults to the release binary of $CARGO_TARGET_DIR (else target/). Needs root (ip netns),
# iproute2, mosquitto, tansu, s3s-fs and the test venv (deltalake, polars, duckdb, psycopg): installs
# what is missing with scripts/test-deps.sh. Options of scripts/cluster-test.py: --rate, --hold,
# --kinds bridge,stream,…, --work DIR (default /tmp/fjord-cluster-test).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "cluster-test: needs root (network namespaces); run it with sudo" >&2; exit 2; }
FJORD="${1:-${CARGO_TARGET_DIR:-target}/release/fjord}"
[ "${1:-}" = "" ] || shift
[ "${1:-}" = "--" ] && shift
[ -x "$FJORD" ] || { echo "cluster-test: no fjord binary at $FJORD (cargo build --release --locked --bin fjord)" >&2; exit 2; }
TOOLS="${FJORD_TOOLS_DIR:-$HOME/.cache/fjord-ci/tools}"
VENV="${FJORD_VENV:-$HOME/.cache/fjord-ci/venv}"
# install only what is missing (test-deps would also rebuild a tansu that CI built at opt-level 1)
if ! { [ -x "$TOOLS/bin/tansu" ] && [ -x "$TOOLS/bin/s3s-fs" ] && command -v mosquitto_passwd > /dev/null &&
       command -v ip > /dev/null && "$VENV/bin/python" -c "import deltalake, polars, duckdb, psycopg" 2> /dev/null; }; then
  bash scripts/test-deps.sh
fi
exec "$VENV/bin/python" -B scripts/cluster-test.py --fjord "$(realpath "$FJORD")" \
  --tansu "$TOOLS/bin/tansu" --s3s-fs "$TOOLS/bin/s3s-fs" "$@"
