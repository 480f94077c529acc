#!/bin/bash
# The forecast's accuracy table (README, docs/contract.md §4.4), reproduced from scratch:
#   1. `fjord simulate --history` writes 6 weeks of simulated parking (12 lots × 60 spaces; every lot
#      has a weekly pattern of its own, a deviation per day, holidays and slowly wandering noise),
#   2. `fjord batch import` lands it in a fresh lake, `fjord batch views` computes occupancy_10m,
#   3. `fjord batch forecast --evaluate 7d` learns from all but the last week, forecasts the last
#      week from every 10-minute origin and prints the MAE at 10 min, 1 h, 3 h and 24 h next to
#      the last value and the same time last week (exit 1 unless the forecast beats both).
# Usage: bash scripts/forecast-accuracy.sh [path/to/fjord]   (default: target/release/fjord)
set -euo pipefail
cd "$(dirname "$0")/.."
FJORD=${1:-target/release/fjord}
[ -x "$FJORD" ] || { echo "no fjord binary at $FJORD: cargo build --release --bin fjord" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/fjord.toml" <<TOML
data_dir = "$WORK/data"
[log]
level = "warn"
TOML
run() { "$FJORD" "$@" -c "$WORK/fjord.toml"; }
# a fixed end and seed: the same table every time
run simulate --history 42d --history-end 2026-11-30T00:00:00Z --lots 12 --spaces 60 --seed 7 \
  --out "$WORK/history.jsonl"
run batch import "$WORK/history.jsonl" | tail -n 2
run batch views | tail -n 2
echo
run batch forecast --evaluate 7d
