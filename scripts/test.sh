#!/usr/bin/env bash
# Run the whole test suite (sets up first; see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The OHIF viewer for the browser tests, from npm (pinned and checked), cached in .cache/
KLINIKA_CACHE_DIR=.cache .venv/bin/klinika viewer install
.venv/bin/ruff check klinika tests
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
