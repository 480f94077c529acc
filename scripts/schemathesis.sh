#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI description (schemathesis), for a
# bounded time, against a running server:
#
#   bash scripts/schemathesis.sh http://127.0.0.1:8080 "$TOKEN" [seconds, default 300]
#
# Every check runs (server errors, status codes, content types, response schemas, negative and
# positive data, auth), except that /api/sql is not asked to accept every schema-valid body: its
# body is SQL, and no schema can say which text parses. schemathesis is installed into
# ~/.cache/fjord-ci/st-venv if missing.
set -euo pipefail
url="${1:?the server URL, e.g. http://127.0.0.1:8080}"
token="${2:?the auth token}"
seconds="${3:-300}"
venv="${FJORD_ST_VENV:-$HOME/.cache/fjord-ci/st-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis
fi
# schemathesis keeps a cache of its findings in the working directory: not in the clone
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
config="$work/schemathesis.toml"
cat >"$config" <<'TOML'
checks.enabled = true

[[operations]]
include-path = "/api/sql"
checks.positive_data_acceptance.enabled = false
TOML
"$venv/bin/schemathesis" --config-file "$config" run "$url/api/openapi.json" \
    -H "Authorization: Bearer $token" --max-time "$seconds" --workers 2
