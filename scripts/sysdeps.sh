#!/usr/bin/env bash
# Install the Debian packages tconv needs, or say exactly what is missing.
#   chromium + chromium-driver : the browser test of the built book
#   bubblewrap                 : the autograder's sandbox
#   postgresql                 : the PostgreSQL gradebook tests (a throwaway server per run)
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
((${#need[@]})) || exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "sysdeps: installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then
  echo "sysdeps: installing ${need[*]} with sudo apt-get"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "sysdeps: missing Debian packages: ${need[*]}" >&2
  echo "sysdeps: install them with:  sudo apt-get install ${need[*]}" >&2
  echo "sysdeps: without them the browser test and the sandboxed grader tests are skipped" >&2
fi
