#!/usr/bin/env bash
# Set up Klinika on a fresh Debian/Ubuntu machine: system packages (when root or sudo is
# available), a virtual environment in .venv with pinned Python dependencies.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# chromium: browser tests (Playwright drives Debian's Chromium; no browser is downloaded);
# fonts-dejavu-core + fonts-noto-core: report PDFs (Latin diacritics and Cyrillic);
# dicom3tools: dciodvfy checks the objects we write (transcoded, de-identified);
# openjph-tools: ojph_compress, the HTJ2K encoder of WADO-RS transcoding (no Python package
# writes HTJ2K);
# prometheus: promtool checks and unit-tests deploy/monitoring's alert rules.
SYSTEM_PACKAGES=(python3-venv dcmtk dicom3tools openjph-tools orthanc orthanc-dicomweb poppler-utils iproute2 postgresql nginx
  openssl chromium fonts-dejavu-core fonts-noto-core prometheus)
# npm fetches the OHIF viewer; a Node.js that brings its own npm (NodeSource) is kept as it is.
command -v npm >/dev/null || SYSTEM_PACKAGES+=(npm)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "== installing system packages: ${missing[*]}"
  as_root apt-get update -qq || true
  # Orthanc's package starts a service on install; policy-rc.d keeps it from doing so.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || echo "!! could not install ${missing[*]}: tests that need them will fail" >&2
  # Debian's orthanc and postgresql packages start system services; the tests start their own
  # servers (Orthanc in a network namespace, PostgreSQL with initdb on a free port).
  # Debian's orthanc package starts a system service on 0.0.0.0:8042/4242; the tests start
  # their own Orthanc when they need one, so the service is stopped and kept off.
  for service in orthanc nginx prometheus; do
    if command -v systemctl >/dev/null && systemctl is-enabled "$service" >/dev/null 2>&1; then
      as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$service" ]; then
      as_root "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
  done
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# pip only when the pins or the declared dependencies changed since the last install (about
# 10 s saved on every ./scripts/test.sh)
pins=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.klinika-pins 2>/dev/null)" != "$pins" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  echo "== installing Python dependencies (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  echo "$pins" > .venv/.klinika-pins
fi
# Bytecode for our own package (pip compiles the dependencies, not an editable install): every
# `klinika` process, and the tests start many, would otherwise compile it again when
# PYTHONDONTWRITEBYTECODE is set. Only changed files are compiled.
.venv/bin/python -m compileall -q klinika >/dev/null
# eslint for our own browser scripts, pinned by package-lock.json (npm ci only when it changed)
if ! cmp -s package-lock.json node_modules/.klinika-package-lock.json; then
  echo "== installing the JavaScript lint tools (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.klinika-package-lock.json
fi
echo "== installing the OHIF viewer (npm, pinned and checked) into klinika-data/cache"
KLINIKA_DATA_DIR=klinika-data .venv/bin/klinika viewer install
echo "== ready: .venv/bin/klinika"
