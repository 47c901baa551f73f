#!/usr/bin/env bash
# Run the whole test suite. Installs what is missing first: redis-server,
# memcached, nutcracker and the benchmark clients from Debian, and
# corenet[test] into .venv. Extra arguments go to pytest.
source "$(dirname "$0")/bootstrap.sh"

need_debian_packages \
    redis-server:redis-server redis-benchmark:redis-tools \
    memcached:memcached memcslap:libmemcached-tools nutcracker:nutcracker \
    gcc:gcc openssl:openssl
need_python_headers
ensure_venv test

cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"
if [ -n "${CI:-}" ]; then
    export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
    export CORENET_REQUIRE_SERVERS=1
    export CORENET_REQUIRE_SPEEDUPS=1
fi
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
