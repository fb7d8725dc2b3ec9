#!/usr/bin/env bash
# Debian packages the test suite needs: PostgreSQL (db tests start a throwaway server with it)
# and Chromium (browser tests of the leaderboard and the demo page). Installs only what is missing.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[[ ${#need[@]} -eq 0 ]] && { echo "[setup-system] postgresql and chromium present"; exit 0; }
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
echo "[setup-system] installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
