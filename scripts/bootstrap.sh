# Sourced by scripts/demo.sh and scripts/test.sh: installs what is missing.
#
#   need_debian_packages CMD:PACKAGE ...   apt-get install PACKAGE unless CMD exists
#   ensure_venv EXTRAS                     .venv with corenet[EXTRAS], reinstalled
#                                          whenever pyproject.toml or a C
#                                          source changes (the editable install
#                                          builds the extensions in place)
# Works on a fresh Debian/Ubuntu machine with only python3: as root, or
# through sudo.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CORENET_VENV:-$ROOT/.venv}"
APT_UPDATED=""

_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        _as_root apt-get update -qq
        APT_UPDATED=1
    fi
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

need_debian_packages() {
    local missing=() pair
    for pair in "$@"; do
        _have "${pair%%:*}" || missing+=("${pair#*:}")
    done
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        _apt_install "${missing[@]}"
    fi
}

need_python_headers() {
    # The optional C hash accelerator compiles against Python.h.
    if ! python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
        echo "installing Debian packages: python3-dev" >&2
        _apt_install python3-dev
    fi
}

ensure_venv() {
    local extras="$1" stamp
    stamp="$(cat "$ROOT/pyproject.toml" "$ROOT"/corenet/*.[ch] "$ROOT"/protocols/*/*.c \
        "$ROOT"/plugins/*/*.c | sha256sum | cut -c1-16)-$extras"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    if [ "$(cat "$VENV/.corenet-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "installing corenet[$extras] into $VENV" >&2
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
        echo "$stamp" > "$VENV/.corenet-stamp"
    fi
}
