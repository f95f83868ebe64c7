#!/usr/bin/env bash
# A long stateful schemathesis run against a real API process, logged in as an admin, outside the
# test suite (tests/test_fuzz.py runs a short one in-process). Every operation is fuzzed with valid
# and invalid requests, then sequences of calls follow the API's links (stateful phase); the only
# check is "no 5xx". Its state (SQLite, embedded broker, folders) is a fresh temporary folder; no
# worker runs, so queued jobs and face requests stay queued.
#
#   scripts/fuzz_api.sh                       # 400 examples per operation and mode, at most 30 min
#   EXAMPLES=50 MAX_TIME=300 scripts/fuzz_api.sh
#
# Reports (HAR with every request, JUnit) go to $REPORT_DIR (default: a folder in the state folder).
set -euo pipefail
cd "$(dirname "$0")/.."
state=$(mktemp -d -t d2a-fuzz.XXXX)
report="${REPORT_DIR:-$state/report}"
port="${PORT:-18765}"
export D2A_DATABASE_URL="sqlite:///$state/app.db" D2A_BROKER_DB="$state/broker.db" D2A_RUNS_DIR="$state/runs" \
  D2A_JOB_MODELS_DIR="$state/models" D2A_DATASETS_DIR="$state/datasets" D2A_SAMPLES_DIR="$state/samples" \
  D2A_SECRET_KEY=fuzz-secret D2A_EMBEDDED_WORKER=0 D2A_ANONYMOUS_REQUESTS_PER_MINUTE=0 D2A_SAMPLE_WAIT_S=0 \
  D2A_ADMIN_USERNAME=fuzzadmin D2A_ADMIN_PASSWORD="a long fuzz password" D2A_LOGIN_ATTEMPTS_PER_MINUTE=100000 \
  D2A_LOG_LEVEL=warning REDIS_URL= D2A_REDIS_URL=
.venv/bin/uvicorn backend.app:create_app --factory --host 127.0.0.1 --port "$port" --log-level warning \
  > "$state/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
token=$(curl -s -X POST "http://127.0.0.1:$port/api/v1/admin/login" -H 'content-type: application/json' \
  -d '{"username":"fuzzadmin","password":"a long fuzz password"}' | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
.venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" -H "Authorization: Bearer $token" \
  --phases examples,coverage,fuzzing,stateful -n "${EXAMPLES:-400}" --checks not_a_server_error --continue-on-failure \
  --exclude-path /api/v1/admin/logout --seed "${SEED:-2026}" --no-shrink --request-timeout 60 \
  --report har,junit --report-dir "$report" --max-time "${MAX_TIME:-1800}" || true
.venv/bin/python - "$report" <<'PY'
import collections, glob, json, sys
har = sorted(glob.glob(f"{sys.argv[1]}/har-*.json"))[-1]
entries = json.load(open(har))["log"]["entries"]
codes = collections.Counter(e["response"]["status"] for e in entries)
print(f"{len(entries)} requests; status codes: {dict(sorted(codes.items()))}; "
      f"5xx: {sum(n for c, n in codes.items() if c >= 500)}")
PY
echo "server log: $state/server.log ($(grep -c Traceback "$state/server.log" || true) tracebacks)"
