#!/usr/bin/env bash
# Measure Klinika with bench/harness on a dataset made by bench/harness/gen_data.py.
# usage: bench/run-klinika.sh DATASET_DIR WORK_DIR [extra bench_pacs.py options]
# Starts `klinika serve` on a fresh data folder (HTTP 18043, DIMSE 14245), creates a bench
# admin, and runs every section (the harness calls as BENCH and moves to BENCHSCP:14243).
set -euo pipefail
DATA=$(realpath "$1"); WORK=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd); BENCH="$HERE/harness"
KLINIKA=${KLINIKA:-$HERE/../.venv/bin/klinika}; PY=${PY:-$HERE/../.venv/bin/python}
mkdir -p "$WORK/results" "$WORK/logs"
rm -rf "$WORK/klinika-data"
export KLINIKA_DATA_DIR="$WORK/klinika-data" KLINIKA_HTTP_PORT=18043 KLINIKA_DIMSE_PORT=14245
export KLINIKA_MODALITIES="BENCHSCP@127.0.0.1:14243"
"$KLINIKA" user add bench --role admin --password bench-password-123 > /dev/null
if [ -n "${PRELOAD:-}" ]; then "$KLINIKA" import "$DATA" > "$WORK/logs/import.out"; fi
"$KLINIKA" serve > "$WORK/logs/klinika.out" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:18043/health > /dev/null && break; sleep 0.5; done
TOKEN=$(curl -s -X POST http://127.0.0.1:18043/api/auth/login -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench-password-123"}' | "$PY" -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
"$PY" "$BENCH/bench_pacs.py" --data "$DATA" --dicomweb http://127.0.0.1:18043/dicom-web \
  --dimse 127.0.0.1:14245:KLINIKA --move-dest BENCHSCP:14243 \
  --bearer "$TOKEN" --server-pid "$SERVER" --label "klinika-$("$KLINIKA" --version | awk '{print $3}')" \
  --out "$WORK/results/klinika.json" --workdir "$WORK/work" "${@:3}" > "$WORK/logs/bench.out" 2>&1
echo "results: $WORK/results/klinika.json"
