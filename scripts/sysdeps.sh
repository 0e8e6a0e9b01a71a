#!/usr/bin/env bash
# Install the Debian packages tconv needs, or say exactly what is missing.
#   usage: scripts/sysdeps.sh [GROUP...]   (no group: book browser sandbox postgres)
#   book     npm                        : vendors MathJax into the book once (build_book.sh)
#   browser  chromium + chromium-driver : the browser test of the built book
#   sandbox  bubblewrap                 : the autograder's sandbox
#   postgres postgresql                 : the PostgreSQL gradebook tests (a throwaway server)
#   venv     python3-venv               : `python3 -m venv` on Debian/Ubuntu (the Makefile asks
#                                         for it before it creates .venv; $PYTHON, default python3)
# As root (or with password-less sudo) it runs apt-get update, then apt-get install; otherwise it
# prints the apt-get line. `make sysdeps` runs it with no group.
set -euo pipefail
usage() { sed -n '3,12s/^# \{0,1\}//p' "$0"; }
if [ "${1-}" = -h ] || [ "${1-}" = --help ]; then usage; exit 0; fi
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
    venv)     "${PYTHON:-python3}" -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv) ;;
    *) echo "sysdeps: GROUP must be book, browser, sandbox, postgres or venv; got '$g'" >&2
       usage >&2
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
  echo "sysdeps: without them: python3-venv -> make cannot create .venv;" \
       "npm -> the book cannot vendor MathJax; chromium -> the browser" \
       "test is skipped; bubblewrap -> sandboxed grading refuses to run and its tests skip;" \
       "postgresql -> the PostgreSQL tests skip (all of them fail instead when CI=true)" >&2
fi
