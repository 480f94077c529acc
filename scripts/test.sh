#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against real brokers (tansu,
# mosquitto) that the tests start on free loopback ports. Installs missing test servers first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
export FJORD_TANSU="${FJORD_TANSU:-${FJORD_TOOLS_DIR:-$HOME/.cache/fjord-ci/tools}/bin/tansu}"
export FJORD_NODE_MODULES="${FJORD_NODE_MODULES:-${FJORD_NODE_DIR:-$HOME/.cache/fjord-ci/node}/node_modules}"
cargo test --workspace --locked "$@"
