#!/usr/bin/env bash
# Orthanc then Klinika (this checkout) on one data set, the DICOMweb sections of the harness,
# and the side-by-side table with server CPU per operation (bench/dicomweb_cpu.py).
# usage: bench/dicomweb-compare.sh DATASET_DIR WORK_DIR   (root, for Orthanc's network namespace)
# Klinika's ports by env as in run-klinika.sh (HTTP_PORT, DIMSE_PORT, MOVE_PORT).
set -euo pipefail
DATA=$(realpath "$1"); WORK=$(realpath -m "$2"); HERE=$(cd "$(dirname "$0")" && pwd)
SECTIONS=${SECTIONS:-ingest_cstore,qido,metadata,frames,ingest_compare}
mkdir -p "$WORK"
uptime > "$WORK/uptime.txt"
"$HERE/run-orthanc.sh" "$DATA" "$WORK/orthanc" --sections "$SECTIONS"
uptime >> "$WORK/uptime.txt"
"$HERE/run-klinika.sh" "$DATA" "$WORK/klinika" --sections "$SECTIONS"
uptime >> "$WORK/uptime.txt"
"$HERE/../.venv/bin/python" "$HERE/dicomweb_cpu.py" "$WORK/orthanc/results/orthanc.json" \
  "$WORK/klinika/results/klinika.json" | tee "$WORK/dicomweb.md"
