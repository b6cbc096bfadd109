#!/usr/bin/env bash
# Build rbdnb's JupyterLab extension from extensions/jupyterlab into rbdnb/labextension and
# install it into the Python environment that runs Jupyter (linked prebuilt extension, server
# extension enabled): `rbdnb lab install`.
#
#   scripts/build-frontend.sh [PYTHON_BIN_DIR]    default: .venv/bin
#
# Node packages come from the npm registry at the versions package-lock.json records. (npm
# install, not npm ci: npm 11's ci refuses a lock that leaves out other platforms' optional
# rspack binaries, which is how npm itself writes it.)
# Skips what is already done: node_modules matching the lock, a build newer than its sources.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cd "${1:-.venv/bin}" && pwd)
say() { printf 'frontend: %s\n' "$*"; }
ext=extensions/jupyterlab

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "frontend: node and npm are needed to build the JupyterLab extension (Debian: nodejs npm)" >&2
  exit 1
fi

lock_sum=$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$ext/node_modules/.rbdnb-lock" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing node packages"
  # npm install may add entries to the lock (optional binaries of this platform): keep the
  # committed lock as it is, so that a build leaves the checkout clean.
  cp "$ext/package-lock.json" "$ext/.package-lock.committed"
  (cd "$ext" && npm install --no-audit --no-fund --loglevel=error) || {
    mv "$ext/.package-lock.committed" "$ext/package-lock.json"; exit 1; }
  mv "$ext/.package-lock.committed" "$ext/package-lock.json"
  echo "$lock_sum" > "$ext/node_modules/.rbdnb-lock"
fi

built=rbdnb/labextension/package.json
if [ ! -f "$built" ] || [ -n "$(find "$ext/src" "$ext/style" "$ext/package.json" "$ext/tsconfig.json" -newer "$built" -print -quit)" ]; then
  say "building the extension"
  (cd "$ext" && PATH="$bin:$PATH" npm run --silent build)
else
  say "built extension is up to date"
fi

"$bin/rbdnb" lab install | sed 's/^/frontend: /'
