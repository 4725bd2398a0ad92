#!/usr/bin/env bash
# Install what pg_follower_py needs, idempotently and quickly when it is all
# there: Debian packages, the project's virtualenv, and the extension.
# Used by `make demo`, `make test`, .ci/run and the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/pgf-bootstrap.XXXXXX)
trap 'rm -f "$log"' EXIT
quiet() {  # run a step; show its output only when it fails
    if ! "$@" >"$log" 2>&1; then cat "$log" >&2; echo "bootstrap: failed: $*" >&2; exit 1; fi
}

PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-plpython3-15
          postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
          python3-venv make)
SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    quiet "${SUDO[@]}" apt-get update -qq
    quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The project's virtualenv, rebuilt when pyproject.toml changes.
PY=${PYTHON_FOR_VENV:-python3}
stamp=.venv/.bootstrap-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "bootstrap: creating .venv"
    rm -rf .venv
    quiet "$PY" -m venv .venv
    quiet .venv/bin/pip install --disable-pip-version-check --upgrade pip
    quiet .venv/bin/pip install --disable-pip-version-check -e '.[dev,ops]'
    touch "$stamp"
fi

# The extension, reinstalled when its sources change. The hash lives with the
# installed files, so a clone of the same sources needs no (sudo) reinstall.
src_hash=$(cat extension/*.control sql/*.sql Makefile pyproject.toml \
           $(find python -name '*.py' | sort) | sha1sum | cut -c1-12)
stamp_file="$(pg_config --sharedir)/pg_follower_py/source-hash"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$src_hash" ]; then
    echo "bootstrap: make install"
    quiet make -s all
    quiet "${SUDO[@]}" make -s install PYTHON="$PWD/.venv/bin/python"
    echo "$src_hash" | quiet "${SUDO[@]}" tee "$stamp_file"
fi
