#!/usr/bin/env bash
# Run the whole test suite (sets up first; see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check klinika tests
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
