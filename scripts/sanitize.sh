#!/usr/bin/env bash
# Run the tests of the C accelerators against builds with AddressSanitizer
# and UndefinedBehaviorSanitizer.  The working tree is not touched: the
# extensions are compiled into a copy of the package, laid out as it
# installs, and the tests run from a copy too (so that the source tree's
# own corenet/ is not first on sys.path).  Needs gcc and the Python headers.
#
#   scripts/sanitize.sh                 # the differential and parser tests
#   scripts/sanitize.sh tests/framework -k x # any pytest arguments instead
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The project's venv (./scripts/test.sh makes it) unless PYTHON says otherwise.
if [ -x "$ROOT/.venv/bin/python" ]; then PY="${PYTHON:-$ROOT/.venv/bin/python}"; else PY="${PYTHON:-python3}"; fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cp -r "$ROOT/corenet" "$ROOT/tests" "$ROOT/pyproject.toml" "$WORK/"
rm -rf "$WORK/corenet/protocols" "$WORK/corenet/plugins"
cp -r "$ROOT/protocols" "$WORK/corenet/protocols"
cp -r "$ROOT/plugins" "$WORK/corenet/plugins"
find "$WORK" \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +

INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
SUFFIX="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
for source in corenet/_route.c corenet/protocols/redis/_speedups.c \
    corenet/protocols/memcache/_speedups.c corenet/plugins/hashing/_speedups.c; do
    gcc -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
        -fno-sanitize-recover=undefined -I"$INCLUDE" -I"$WORK/corenet" "$WORK/$source" \
        -o "$WORK/${source%.c}$SUFFIX"
done

if [ "$#" -eq 0 ]; then
    set -- tests/protocols/test_redis_speedups.py tests/framework/test_routing.py \
        tests/plugins/test_speedups.py tests/protocols/test_redis_parser.py \
        tests/protocols/test_redis_reply_parser.py tests/protocols/test_memcache_fast_path.py \
        tests/protocols/test_memcache_fanout.py
fi
cd "$WORK"
export PYTHONPATH="$WORK" CORENET_REQUIRE_SPEEDUPS=1
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
# Leak checking is off: CPython's own allocations at exit would drown it.
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1
"$PY" - "$WORK" <<'CHECK'
import sys
import corenet._route, corenet.plugins.hashing._speedups
import corenet.protocols.memcache._speedups, corenet.protocols.redis._speedups
for module in (corenet._route, corenet.plugins.hashing._speedups,
               corenet.protocols.memcache._speedups, corenet.protocols.redis._speedups):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} loaded from {module.__file__}"
CHECK
# --capture=sys: a sanitizer's report goes to file descriptor 2, which
# pytest's default capture would swallow with the process it ends.
"$PY" -m pytest -q -p no:cacheprovider --capture=sys "$@"
