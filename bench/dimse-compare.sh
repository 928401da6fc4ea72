#!/usr/bin/env bash
# DIMSE side by side, one command: Orthanc 1.10 (Debian) and Klinika on the same generated
# data with the same clients, then the server-CPU-per-operation table (bench/dimse_cpu.py).
# usage: bench/dimse-compare.sh [WORK_DIR]   (needs root for Orthanc's network namespace)
# Makes WORK_DIR/data with gen_data.py unless it exists (DATA=... to use another folder).
# Sections: C-STORE ingest (one association), C-FIND (association reused), C-GET and C-MOVE
# of the 250-slice CT. Extra bench_pacs.py options via BENCH_ARGS. Result: WORK_DIR/dimse.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); PY=${PY:-$HERE/../.venv/bin/python}
WORK=$(realpath -m "${1:-/tmp/klinika-dimse-bench}"); DATA=${DATA:-$WORK/data}
SECTIONS=ingest_cstore,dimse_find,cget,cmove
mkdir -p "$WORK"
if [ ! -e "$DATA/manifest.json" ]; then
  "$PY" "$HERE/harness/gen_data.py" --out "$DATA" --studies 12 --patients 6 --big-ct-slices 250 \
    --ct-slices 8 --mr-slices 6 --mr-series 2 --us-frames 4 --syntax mixed > "$WORK/gen_data.out"
fi
# shellcheck disable=SC2086
"$HERE/run-orthanc.sh" "$DATA" "$WORK/orthanc" --sections "$SECTIONS" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
"$HERE/run-klinika.sh" "$DATA" "$WORK/klinika" --sections "$SECTIONS" ${BENCH_ARGS:-}
"$PY" "$HERE/dimse_cpu.py" "$WORK/orthanc/results/orthanc.json" "$WORK/klinika/results/klinika.json" \
  | tee "$WORK/dimse.md"
