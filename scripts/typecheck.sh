#!/usr/bin/env bash
# mypy --strict over corenet as it installs: protocols/ and plugins/ are
# mapped into the corenet namespace by setuptools, which mypy cannot follow
# in a source tree, so check a mirror of symlinks laid out like the wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MIRROR="$(mktemp -d)"
trap 'rm -rf "$MIRROR"' EXIT
mkdir "$MIRROR/corenet"
for entry in "$ROOT"/corenet/*; do
    ln -s "$entry" "$MIRROR/corenet/$(basename "$entry")"
done
ln -s "$ROOT/protocols" "$MIRROR/corenet/protocols"
ln -s "$ROOT/plugins" "$MIRROR/corenet/plugins"
cd "$MIRROR"
# The project's venv (./scripts/test.sh makes it, with corenet[dev] for mypy) if
# it has mypy, else whatever mypy is on PATH; MYPY overrides both.
if [ -z "${MYPY:-}" ]; then
    if [ -x "$ROOT/.venv/bin/mypy" ]; then MYPY="$ROOT/.venv/bin/mypy"; else MYPY=mypy; fi
fi
exec "$MYPY" --config-file "$ROOT/pyproject.toml" -p corenet "$@"
