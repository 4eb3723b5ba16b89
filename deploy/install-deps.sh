#!/usr/bin/env bash
# Install the Debian packages Beacon needs to build, test and run.
# Idempotent: installs only what is missing, so `make run` and `make test`
# can call it every time. Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libssl-dev openssl
  libzmq3-dev
  libprotobuf-c-dev protobuf-c-compiler
  libpq-dev postgresql postgresql-contrib
  libjansson-dev
  libh2o-evloop-dev
  libcmocka-dev
  libargon2-dev
  libcsv-dev
  libarchive-dev
  python3
  nodejs npm
  wrk
  docker-compose
  util-linux
)

missing=()
for p in "${PKGS[@]}"; do
  # Node.js from another source (NodeSource's nodejs carries its own npm,
  # which Debian's npm package conflicts with) serves as well.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: missing packages and not root: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The postgresql package would start a system cluster; Beacon runs its own
# clusters, so keep the policy from starting services during install.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
