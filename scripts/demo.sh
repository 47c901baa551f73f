#!/usr/bin/env bash
# Install what is missing, then run corenet-proxy in front of two local
# redis-servers and two memcacheds it starts itself (Ctrl-C stops everything).
# Extra arguments go to corenet-proxy (e.g. --event-backend poll).
source "$(dirname "$0")/bootstrap.sh"

need_debian_packages redis-server:redis-server redis-cli:redis-tools memcached:memcached gcc:gcc
need_python_headers
ensure_venv test
exec "$VENV/bin/corenet-proxy" --demo "$@"
