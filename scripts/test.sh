#!/usr/bin/env bash
# Run the whole test suite (sets up first; see scripts/setup.sh): the linters, then pytest on
# KLINIKA_TEST_WORKERS processes (default 2; 0 runs in this process), in a random order whose
# seed pytest prints ("Using --randomly-seed=…"; pass `--randomly-seed=N` to replay it,
# `-p no:randomly` for file order).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check klinika tests bench
.venv/bin/ruff format --check klinika tests bench
.venv/bin/lint-imports
node_modules/.bin/eslint --max-warnings 0 .
# mypy --strict over klinika ([tool.mypy] in pyproject.toml)
.venv/bin/mypy
exec .venv/bin/python -m pytest -n "${KLINIKA_TEST_WORKERS:-2}" --dist loadscope "$@"
