#!/usr/bin/env bash
# Measure Klinika with bench/harness on a dataset made by bench/harness/gen_data.py.
# usage: bench/run-klinika.sh DATASET_DIR WORK_DIR [extra bench_pacs.py options]
# Starts `klinika serve` on a fresh data folder (HTTP $HTTP_PORT, DIMSE $DIMSE_PORT), creates a
# bench admin, and runs every section (the harness calls as BENCH and moves to BENCHSCP).
# Ports by env: HTTP_PORT (18043), DIMSE_PORT (14245), MOVE_PORT (14243, the harness's
# storescp). PARALLEL=N also runs bench/dimse_parallel.py (N instances, 1 vs 4 associations)
# on a second fresh data folder; KLINIKA_DIMSE_WORKERS is passed through.
set -euo pipefail
DATA=$(realpath "$1"); WORK=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd); BENCH="$HERE/harness"
KLINIKA=${KLINIKA:-$HERE/../.venv/bin/klinika}; PY=${PY:-$HERE/../.venv/bin/python}
HTTP_PORT=${HTTP_PORT:-18043}; DIMSE_PORT=${DIMSE_PORT:-14245}; MOVE_PORT=${MOVE_PORT:-14243}
mkdir -p "$WORK/results" "$WORK/logs"
rm -rf "$WORK/klinika-data"
export KLINIKA_DATA_DIR="$WORK/klinika-data" KLINIKA_HTTP_PORT=$HTTP_PORT KLINIKA_DIMSE_PORT=$DIMSE_PORT
export KLINIKA_MODALITIES="BENCHSCP@127.0.0.1:$MOVE_PORT BENCH@127.0.0.1:14244/find,get,move,echo,store"
"$KLINIKA" user add bench --role admin --password bench-password-123 > /dev/null
if [ -n "${PRELOAD:-}" ]; then "$KLINIKA" import "$DATA" > "$WORK/logs/import.out"; fi
SERVER=
stop_server() {  # the server and its DIMSE worker processes, which finish after it
  if [ -n "$SERVER" ]; then
    local kids; kids=$(pgrep -P "$SERVER" || true)
    kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
    for kid in $kids; do while kill -0 "$kid" 2>/dev/null; do sleep 0.1; done; done
  fi
  SERVER=
}
trap stop_server EXIT
start_server() {
  "$KLINIKA" serve > "$WORK/logs/klinika-$1.out" 2>&1 & SERVER=$!
  for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$HTTP_PORT/health" > /dev/null && break; sleep 0.5; done
  # the server and its DIMSE worker processes
  PIDS=$(echo "$SERVER" $(pgrep -P "$SERVER" || true) | sed 's/\([0-9]*\)/--server-pid \1/g')
}
start_server bench
TOKEN=$(curl -s -X POST "http://127.0.0.1:$HTTP_PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench-password-123"}' | "$PY" -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
# shellcheck disable=SC2086
"$PY" "$BENCH/bench_pacs.py" --data "$DATA" --dicomweb "http://127.0.0.1:$HTTP_PORT/dicom-web" \
  --dimse "127.0.0.1:$DIMSE_PORT:KLINIKA" --move-dest "BENCHSCP:$MOVE_PORT" \
  --bearer "$TOKEN" $PIDS --label "klinika-$("$KLINIKA" --version | awk '{print $3}')" \
  --out "$WORK/results/klinika.json" --workdir "$WORK/work" "${@:3}" > "$WORK/logs/bench.out" 2>&1 \
  || echo "bench_pacs.py exit $? (see $WORK/logs/bench.out)"
echo "results: $WORK/results/klinika.json"
if [ -n "${PARALLEL:-}" ]; then
  stop_server
  rm -rf "$KLINIKA_DATA_DIR"
  "$KLINIKA" user add bench --role admin --password bench-password-123 > /dev/null
  start_server parallel
  # shellcheck disable=SC2086
  "$PY" "$HERE/dimse_parallel.py" --data "$DATA" --dimse "127.0.0.1:$DIMSE_PORT:KLINIKA" \
    --sample "$PARALLEL" $PIDS --label "klinika workers=${KLINIKA_DIMSE_WORKERS:-default}" \
    --workdir "$WORK/work/parallel" --out "$WORK/results/klinika-parallel.json" > "$WORK/logs/parallel.out" 2>&1
  echo "results: $WORK/results/klinika-parallel.json"
fi
