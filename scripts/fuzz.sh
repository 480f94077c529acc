#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time and prints executions and findings.
#
#   bash scripts/fuzz.sh                      # every target, 300 s each
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh mqtt_codec payload_decoder
#
# Targets (fuzz/fuzz_targets): mqtt_codec, payload_decoder, alert_expr, config_loader, sql_text. Seeds come
# from fuzz/seeds/<target> (in the repository); what a run learns goes to the working corpus under
# ~/.cache/fjord-ci/fuzz, crashing inputs to ~/.cache/fjord-ci/fuzz/artifacts/<target>. A crash is
# fixed at its cause and its input added to fuzz/seeds/<target>, so every later run replays it.
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed here
# if missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-300}"
work="${FJORD_FUZZ_DIR:-$HOME/.cache/fjord-ci/fuzz}"
target="${FJORD_FUZZ_TARGET:-$HOME/.cache/fjord-ci/fuzz-target}"
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(mqtt_codec payload_decoder alert_expr config_loader sql_text); fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p "$work"
cargo +nightly fuzz build --target-dir "$target"
status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log="$work/$t.log"
    echo "=== $t: ${seconds} s"
    set +e
    cargo +nightly fuzz run --target-dir "$target" "$t" "$work/corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    crashes=$(find "$work/artifacts/$t" -type f | wc -l)
    line="$t: ${runs:-?} executions in ${seconds} s, coverage ${cov:-?} edges, corpus $(find "$work/corpus/$t" -type f | wc -l) inputs, ${crashes} crashing inputs (exit $rc)"
    summary+=("$line")
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2 || true
    fi
done
echo
printf '%s\n' "${summary[@]}"
exit "$status"
