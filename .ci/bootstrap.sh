#!/usr/bin/env bash
# GridMap bootstrap: install whatever is missing, then run the main job or the tests.
#   bash .ci/bootstrap.sh run [gridmap run options]   # the main job
#   bash .ci/bootstrap.sh test [pytest options]       # the test suite
# Installs (only when missing): PostgreSQL 15 + PostGIS 3 from Debian (apt, as root
# or with sudo), python3-venv, a virtual environment in .venv with GridMap in it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "error: need root or sudo to install: $*" >&2; exit 1
  fi
}

packages=()
ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 \
  || packages+=(postgresql-15 postgresql-15-postgis-3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
command -v runuser >/dev/null 2>&1 || packages+=(util-linux)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
if [ "${#packages[@]}" -gt 0 ]; then
  say "installing ${packages[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

stamp=.venv/.gridmap-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "setting up the virtual environment (.venv)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

cmd="${1:-run}"
shift || true
case "$cmd" in
  run)
    exec .venv/bin/gridmap run "$@"
    ;;
  test)
    say "lint (ruff)"
    .venv/bin/ruff check .
    say "types (mypy: geo, api)"
    .venv/bin/mypy
    say "tests (pytest, real PostGIS)"
    set +e
    .venv/bin/python -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
    exit "$rc"
    ;;
  *)
    echo "usage: bash .ci/bootstrap.sh run|test [options]" >&2
    exit 2
    ;;
esac
