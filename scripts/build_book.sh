#!/usr/bin/env bash
# Build the book strictly: warnings are errors (-W -n), every cell executes (cached by
# jupyter-cache, so a warm rebuild with nothing changed re-executes nothing), and a cell that
# raises fails the build (allow_errors: false + nb_execution_raise_on_error in _config.yml).
# MathJax 3 is vendored into book/_static/mathjax from the npm package mathjax@3, so the built
# site needs no network at view time.
set -euo pipefail
case "${1-}" in
  "") ;;
  -h|--help) echo "usage: scripts/build_book.sh   (what \`make book\` runs; no options)"
             sed -n '2,6s/^# //p' "$0"; exit 0 ;;
  *) echo "build_book: takes no arguments; got '$1'" >&2
     echo "usage: scripts/build_book.sh   (what \`make book\` runs; no options)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
start=$(date +%s)

MATHJAX_VERSION=3.2.2
mj=book/_static/mathjax
if [ ! -f "$mj/es5/tex-chtml.js" ] || [ "$(cat "$mj/VERSION" 2>/dev/null)" != "$MATHJAX_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || bash scripts/sysdeps.sh book
  command -v npm >/dev/null 2>&1 || {
    echo "build_book: npm is needed once, to vendor MathJax $MATHJAX_VERSION from the npm" \
         "registry into $mj (sudo apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "mathjax@$MATHJAX_VERSION" >/dev/null && tar xzf mathjax-*.tgz)
  rm -rf "$mj" && mkdir -p "$mj/es5"
  # the CHTML build, its fonts, and what it may load on demand (TeX extensions, menu, a11y)
  cp -r "$tmp/package/es5/tex-chtml.js" "$tmp/package/es5/input" "$tmp/package/es5/output" \
        "$tmp/package/es5/ui" "$tmp/package/es5/a11y" "$tmp/package/es5/adaptors" "$mj/es5/"
  cp "$tmp/package/LICENSE" "$mj/LICENSE"
  echo "$MATHJAX_VERSION" > "$mj/VERSION"
  echo "build_book: vendored MathJax $MATHJAX_VERSION into $mj"
fi

# the chapters import tconv_lib from this checkout even before `pip install -e .` has run
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
# Chapter 5 prints the recorded benchmark results (tables and plots), which jupyter-cache does
# not see (it keys on the code): when benchmarks/results/ changes, drop that chapter's cached run.
cache=.jupyter_cache   # nb_execution_cache_path in _config.yml
digest=$(find benchmarks/results -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum \
  | sha256sum | cut -d' ' -f1)
stamp=.stamps/bench-results
if [ -d "$cache" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  .venv/bin/python - "$cache" <<'PY'
import sys
from pathlib import Path
from jupyter_cache import get_cache
cache = get_cache(sys.argv[1])
for rec in cache.list_cache_records():
    if Path(rec.uri).name == "05_fast.md":
        cache.remove_cache(rec.pk)
        print("build_book: benchmarks/results/ changed; chapter 5 will re-execute")
PY
  touch book/05_fast.md   # and Sphinx re-reads it
fi
# Sphinx copies book/_static and runs the book's extension only when some page is out of date,
# so an edit to the CSS or to book/_ext alone would not reach the site: mark every page out of
# date then (the cells stay cached; jupyter-cache keys on the code).
theme=$(find book/_static book/_ext -path book/_static/mathjax -prune -o -type f \
  ! -name '*.pyc' -print0 | sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
theme_stamp=.stamps/book-theme
if [ "$(cat "$theme_stamp" 2>/dev/null)" != "$theme" ]; then
  touch book/*.md
fi
.venv/bin/jupyter-book build . --path-output . -W -n --keep-going
mkdir -p .stamps && echo "$digest" > "$stamp" && echo "$theme" > "$theme_stamp"
echo "book: built in $(( $(date +%s) - start ))s -> $(pwd)/_build/html/index.html"
