#!/usr/bin/env bash
# Installs the Debian packages the tests (docker-registry) or the benchmark (also skopeo) need,
# when they are missing. Needs root (or passwordless sudo); otherwise says what to run.
set -euo pipefail
purpose=${1:-test}
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
