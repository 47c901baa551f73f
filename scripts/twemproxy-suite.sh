#!/usr/bin/env bash
# Run twemproxy's own integration suite (twitter/twemproxy, tests/) against
# nutcracker or against corenet-proxy put in nutcracker's place.
#
#   scripts/twemproxy-suite.sh corenet        # or: nutcracker
#   scripts/twemproxy-suite.sh corenet test_redis.test_basic   # nose names
#
# Needs network the first time (a shallow clone of twemproxy and a venv with
# the suite's Python 3 dependencies, kept in $CACHE), plus redis-server,
# memcached and socat; nutcracker for the comparison run.  Not part of
# ./scripts/test.sh: the suite is twemproxy's, fetched, never copied here.
# docs/redis.md lists the tests corenet answers differently, and why.
set -euo pipefail
MODE="${1:?usage: $0 corenet|nutcracker [nose test names]}"
shift
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${TWEMPROXY_SUITE_CACHE:-$HOME/.cache/corenet-twemproxy-suite}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "no $PY: run ./scripts/test.sh once first" >&2; exit 2; }

mkdir -p "$CACHE"
if [ ! -d "$CACHE/twemproxy/tests" ]; then
    git clone --quiet --depth 1 https://github.com/twitter/twemproxy "$CACHE/twemproxy"
fi
if [ ! -x "$CACHE/venv/bin/python" ]; then
    python3 -m venv "$CACHE/venv"
    # pynose: nose for Python 3.10+; redis 3.5: the client the suite was written for.
    "$CACHE/venv/bin/pip" install --quiet pynose 'redis==3.5.3' python-memcached
fi
if [ "$MODE" = corenet ] && [ ! -d "$CACHE/title" ]; then
    "$PY" -m pip install --quiet --target "$CACHE/title" setproctitle
fi

cp -r "$CACHE/twemproxy/tests" "$WORK/tests"
BIN="$WORK/tests/_binaries"
mkdir -p "$BIN"
for b in redis-server redis-cli redis-benchmark redis-check-aof; do
    ln -sf "$(command -v "$b")" "$BIN/$b"
done
# memcached refuses to run as root without -u; the suite never passes one.
if [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexec %s "$@" -u root\n' "$(command -v memcached)" >"$BIN/memcached"
    chmod +x "$BIN/memcached"
else
    ln -sf "$(command -v memcached)" "$BIN/memcached"
fi
if [ "$MODE" = corenet ]; then
    # The suite finds and stops its proxy with pgrep/pkill -f '^bin/nutcracker ...':
    # the process title is set to the command line it was started with.
    cat >"$BIN/nutcracker" <<EOF
#!$PY
import sys
sys.path.append("$CACHE/title")
import setproctitle
setproctitle.setproctitle(" ".join(sys.argv))
from corenet.proxy.cli import main
sys.exit(main())
EOF
    chmod +x "$BIN/nutcracker"
else
    ln -sf "$(command -v nutcracker)" "$BIN/nutcracker"
fi

cd "$WORK/tests"
status=0
timeout 900 "$CACHE/venv/bin/python" -m nose -v "$@" || status=$?
# The suite starts its servers daemonized (under /tmp/r, memcached on ports
# 2200-2201); stop what a failed run left, by PID.
for proc in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null || true)"
    case "$(readlink "$proc/cwd" 2>/dev/null || true) $cmd" in
    /tmp/r/*|*"memcached -d -p 220"*) kill -9 "${proc#/proc/}" 2>/dev/null || true ;;
    esac
done
exit "$status"
