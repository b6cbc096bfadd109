#!/usr/bin/env bash
# Set rbdnb up on Debian 12 and run its main job.
#
#   scripts/setup.sh            install what is missing, start the sandbox, run the main
#                               runbook (runs/02-libvirt-rbd.ipynb and .html)
#   scripts/setup.sh --no-run   install what is missing, and nothing more
#
# Installs the Debian packages listed in binder/apt.txt (as root; only the missing ones),
# makes .venv from /usr/bin/python3 with --system-site-packages so that Debian's rados,
# rbd and libvirt bindings are importable, and installs rbdnb into it. A second run finds
# everything in place and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

run_main=1
case "${1:-}" in
  --no-run) run_main=0 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--no-run]" >&2; exit 2 ;;
esac

say() { printf 'setup: %s\n' "$*"; }

# 1. Debian packages.
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' binder/apt.txt | grep -v '^$')
missing=()
for pkg in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#packages[@]} present"
fi

# 2. The virtualenv, made from Debian's python so that its bindings are visible.
if ! .venv/bin/python -c 'import rados, rbd, libvirt' 2>/dev/null; then
  say "making .venv from /usr/bin/python3 (with system site packages)"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

# 3. rbdnb and its Python dependencies at the versions pinned in binder/requirements.txt (what
#    Binder installs too), again only when pyproject.toml or the pins changed.
stamp=.venv/.rbdnb-installed
want=$(cat pyproject.toml binder/requirements.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/rbdnb --help >/dev/null 2>&1; then
  say "installing rbdnb into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c binder/requirements.txt -e '.[test]'
  echo "$want" > "$stamp"
else
  say "rbdnb: installed in .venv"
fi

# 4. The Jupyter kernel "Python 3 (rbdnb)", which pre-loads the extension.
.venv/bin/rbdnb kernel install >/dev/null

# 5. The JupyterLab extension (launcher cards, runs panel, status bar) and its server side,
#    built from extensions/jupyterlab with Node.js and the npm registry.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: node and npm are missing and installing them needs root (Debian: nodejs npm)" >&2
    exit 1
  fi
  say "installing Node.js and npm from Debian"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
fi
scripts/build-frontend.sh .venv/bin

[ "$run_main" = 1 ] || exit 0

# 6. The sandbox, then the main job: the guide's section 2 as a runbook (pool, least-privilege
#    user, libvirt secret and rbd pool, a VM booted from RBD), executed with papermill.
#    A second run reports that nothing changed.
.venv/bin/rbdnb sandbox up
.venv/bin/rbdnb run runbooks/02-libvirt-rbd.ipynb --output runs/02-libvirt-rbd.ipynb \
  --html runs/02-libvirt-rbd.html
