#!/usr/bin/env bash
# GridMap bootstrap: install whatever is missing, then run the main job or the tests.
#   bash .ci/bootstrap.sh run [gridmap run options]   # the main job
#   bash .ci/bootstrap.sh test [pytest options]       # the test suite
#   bash .ci/bootstrap.sh notebooks [--port N] [jupyter lab options]  # planners
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
    say "types (mypy: geo, api, maps)"
    .venv/bin/mypy
    say "tests (pytest, real PostGIS)"
    set +e
    .venv/bin/python -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
    exit "$rc"
    ;;
  notebooks)
    # JupyterLab on notebooks/, in .venv, on the project's database; 127.0.0.1 only
    if ! .venv/bin/python -c 'import jupyterlab' >/dev/null 2>&1; then
      say "installing JupyterLab (the notebooks extra)"
      .venv/bin/python -m pip install -q -e '.[notebooks]'
    fi
    # kernels start in notebooks/: point them at the project's own cluster
    export GRIDMAP_DATA_DIR="${GRIDMAP_DATA_DIR:-$PWD/.gridmap}"
    say "database"
    .venv/bin/gridmap db start
    port=""
    args=("$@")
    for i in "${!args[@]}"; do
      case "${args[$i]}" in
        --port=*) port="${args[$i]#--port=}" ;;
        --port) port="${args[$((i + 1))]:-}" ;;
      esac
    done
    if [ -z "$port" ]; then  # the first free port from 8888
      port=$(.venv/bin/python -c 'import socket
for p in range(8888, 8988):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(p)
        break')
      args+=(--port "$port")
    fi
    # the token goes through the environment, not the command line (ps shows that)
    JUPYTER_TOKEN="${JUPYTER_TOKEN:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')}"
    export JUPYTER_TOKEN
    root=()
    [ "$(id -u)" -ne 0 ] || root=(--allow-root)
    say "JupyterLab on notebooks/ (stop with Ctrl-C)"
    printf '    open:  http://127.0.0.1:%s/lab?token=%s\n    token: %s\n' \
      "$port" "$JUPYTER_TOKEN" "$JUPYTER_TOKEN"
    exec .venv/bin/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir notebooks \
      --ServerApp.port_retries=0 "${root[@]}" "${args[@]}"
    ;;
  *)
    echo "usage: bash .ci/bootstrap.sh run|test|notebooks [options]" >&2
    exit 2
    ;;
esac
