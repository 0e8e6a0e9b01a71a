#!/usr/bin/env bash
# Install the Debian packages tconv needs, or say exactly what is missing.
#   usage: sysdeps.sh [GROUP...]   (no group: all of them)
#   book     npm                        : vendors MathJax into the book once (build_book.sh)
#   browser  chromium + chromium-driver : the browser test of the built book
#   sandbox  bubblewrap                 : the autograder's sandbox
#   postgres postgresql                 : the PostgreSQL gradebook tests (a throwaway server)
set -euo pipefail
groups=("$@")
((${#groups[@]})) || groups=(book browser sandbox postgres)
need=()
for g in "${groups[@]}"; do
  case "$g" in
    book)     command -v npm >/dev/null 2>&1 || need+=(npm) ;;
    browser)  command -v chromium >/dev/null 2>&1 || need+=(chromium)
              command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver) ;;
    sandbox)  command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap) ;;
    postgres) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql) ;;
    *) echo "sysdeps: unknown group '$g' (expected book, browser, sandbox or postgres)" >&2
       exit 2 ;;
  esac
done
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
  echo "sysdeps: without them: npm -> the book cannot vendor MathJax; chromium -> the browser" \
       "test is skipped; bubblewrap -> sandboxed grading refuses to run and its tests skip;" \
       "postgresql -> the PostgreSQL tests skip (all of them fail instead when CI=true)" >&2
fi
