#!/usr/bin/env bash
# Write binder/requirements.txt: every PyPI package rbdnb runs with, pinned.
#
# The versions are those installed in .venv (what the tests run with), resolved in a clean
# Python environment that sees none of Debian's packages, as Binder's does; packages .venv
# takes from Debian get their newest PyPI release. scripts/setup.sh installs .venv with this
# file as constraints, so after a setup run the tests use exactly these pins.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/pip freeze --local --exclude-editable --disable-pip-version-check \
  | grep -E '^[A-Za-z0-9_.-]+==' > "$work/installed.txt"
/usr/bin/python3 -m venv "$work/env"
"$work/env/bin/pip" install -q --disable-pip-version-check --dry-run --ignore-installed \
  --report "$work/report.json" -c "$work/installed.txt" . >/dev/null \
  2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
/usr/bin/python3 - "$work/report.json" > binder/requirements.txt <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("# Written by scripts/pin-requirements.sh: what rbdnb runs with, pinned (the tests use")
print("# these versions: scripts/setup.sh installs with this file as constraints).")
print("# rados, rbd and libvirt are Debian's (binder/apt.txt); binder/postBuild links them in.")
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"]
              if i["metadata"]["name"] != "rbdnb")
for name, version in sorted(pins, key=lambda p: p[0].lower()):
    print(f"{name}=={version}")
PY
echo "wrote binder/requirements.txt ($(grep -c '==' binder/requirements.txt) pins)"
