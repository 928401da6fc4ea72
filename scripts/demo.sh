#!/usr/bin/env bash
# Set up, load the demo data set into ./klinika-data and serve on http://127.0.0.1:8042
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/klinika demo --serve "$@"
