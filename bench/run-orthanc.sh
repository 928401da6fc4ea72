#!/usr/bin/env bash
# Measure Orthanc (Debian's package, the peer) with bench/harness on the same data as Klinika.
# Orthanc 1.10 binds 0.0.0.0, so it runs in a network namespace that has only loopback.
# usage: bench/run-orthanc.sh DATASET_DIR WORK_DIR [extra bench_pacs.py options]  (needs root)
# PARALLEL=N also runs bench/dimse_parallel.py (N instances, 1 vs 4 associations) on a fresh
# Orthanc. The ports are the namespace's own (HTTP 18042, DIMSE 14242): nothing to configure.
set -euo pipefail
DATA=$(realpath "$1"); WORK=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd); BENCH="$HERE/harness"
PY=${PY:-$HERE/../.venv/bin/python}
mkdir -p "$WORK/orthanc-db" "$WORK/results" "$WORK/logs"
sed "s#BENCH_DIR#$WORK#g" "$BENCH/orthanc/orthanc-default.json" > "$WORK/orthanc.json"
unshare --net sleep infinity & HOLDER=$!
ORTHANC=
trap 'kill $HOLDER 2>/dev/null || true; [ -n "$ORTHANC" ] && kill $ORTHANC 2>/dev/null || true' EXIT
sleep 0.5
NS="nsenter --net=/proc/$HOLDER/ns/net"
$NS ip link set lo up
start_orthanc() {
  rm -rf "$WORK/orthanc-db"/*
  TCP_NODELAY=1 $NS /usr/sbin/Orthanc --logdir="$WORK/logs" "$WORK/orthanc.json" > "$WORK/logs/orthanc-$1.out" 2>&1 & ORTHANC=$!
  for _ in $(seq 1 60); do $NS curl -sf http://127.0.0.1:18042/system >/dev/null && break; sleep 0.5; done
}
start_orthanc bench
# Without Debian's DICOMweb plugin (orthanc-dicomweb) only the DIMSE sections can run; the
# harness then checks what was stored with C-FIND.
WEB=(--dicomweb http://127.0.0.1:18042/dicom-web)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || WEB=()
$NS "$PY" "$BENCH/bench_pacs.py" --data "$DATA" "${WEB[@]}" \
  --dimse 127.0.0.1:14242:ORTHANC --server-pid "$ORTHANC" --label "orthanc-1.10.1 TCP_NODELAY=1" \
  --out "$WORK/results/orthanc.json" --workdir "$WORK/work" "${@:3}" > "$WORK/logs/bench.out" 2>&1 \
  || echo "bench_pacs.py exit $? (see $WORK/logs/bench.out)"
echo "results: $WORK/results/orthanc.json"
if [ -n "${PARALLEL:-}" ]; then
  kill $ORTHANC; wait $ORTHANC 2>/dev/null || true
  start_orthanc parallel
  $NS "$PY" "$HERE/dimse_parallel.py" --data "$DATA" --dimse 127.0.0.1:14242:ORTHANC \
    --sample "$PARALLEL" --server-pid "$ORTHANC" --label "orthanc-1.10.1 TCP_NODELAY=1" \
    --workdir "$WORK/work/parallel" --out "$WORK/results/orthanc-parallel.json" > "$WORK/logs/parallel.out" 2>&1
  echo "results: $WORK/results/orthanc-parallel.json"
fi
