#!/usr/bin/env bash
# Makes a fresh checkout ready for `npm start`, `npm test` or `npm run bench`: the npm packages of
# package-lock.json when node_modules is missing or older than the lock, then the Debian packages
# the run needs (docker-registry; skopeo too for the benchmark). Debian packages need root (or
# passwordless sudo); otherwise this says what to run.
set -euo pipefail
purpose=${1:-test}
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ecr-mirror: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

need=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
if [ "$purpose" = bench ]; then
  command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "ecr-mirror: the ${purpose} needs Debian packages: ${need[*]}" >&2
  echo "  install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "ecr-mirror: installing ${need[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts a system-wide registry on :5000 that nothing here uses.
if [ -x /etc/init.d/docker-registry ]; then
  "${SUDO[@]}" /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi
