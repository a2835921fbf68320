#!/usr/bin/env bash
# Install hsp with its test dependencies and the system packages its tests use, then run the suite.
# This is the README's test command and what CI runs (.ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: LPeg and cjson for Lua 5.1 (sandbox modules); Chromium for the dashboard tests.
need_apt=()
for pkg in lua-lpeg lua-cjson chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "warning: missing system packages ${need_apt[*]} (install them with apt-get); dependent tests will fail" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
exec python3 -m pytest -q -p no:cacheprovider "$@"
