#!/usr/bin/env bash
# Measure Orthanc (Debian's package, the peer) with bench/harness on the same data as Klinika.
# Orthanc 1.10 binds 0.0.0.0, so it runs in a network namespace that has only loopback.
# usage: bench/run-orthanc.sh DATASET_DIR WORK_DIR     (needs root for the namespace)
set -euo pipefail
DATA=$(realpath "$1"); WORK=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd); BENCH="$HERE/harness"
PY=${PY:-$HERE/../.venv/bin/python}
mkdir -p "$WORK/orthanc-db" "$WORK/results" "$WORK/logs"
rm -rf "$WORK/orthanc-db"/*
sed "s#BENCH_DIR#$WORK#g" "$BENCH/orthanc/orthanc-default.json" > "$WORK/orthanc.json"
unshare --net sleep infinity & HOLDER=$!
trap 'kill $HOLDER 2>/dev/null || true; kill $ORTHANC 2>/dev/null || true' EXIT
sleep 0.5
NS="nsenter --net=/proc/$HOLDER/ns/net"
$NS ip link set lo up
TCP_NODELAY=1 $NS /usr/sbin/Orthanc --logdir="$WORK/logs" "$WORK/orthanc.json" > "$WORK/logs/orthanc.out" 2>&1 & ORTHANC=$!
for _ in $(seq 1 60); do $NS curl -sf http://127.0.0.1:18042/system >/dev/null && break; sleep 0.5; done
$NS "$PY" "$BENCH/bench_pacs.py" --data "$DATA" --dicomweb http://127.0.0.1:18042/dicom-web \
  --dimse 127.0.0.1:14242:ORTHANC --server-pid "$ORTHANC" --label "orthanc-1.10.1 TCP_NODELAY=1" \
  --out "$WORK/results/orthanc.json" --workdir "$WORK/work" "${@:3}" > "$WORK/logs/bench.out" 2>&1
echo "results: $WORK/results/orthanc.json"
