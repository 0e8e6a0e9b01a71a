#!/usr/bin/env bash
# Build the book strictly: warnings are errors, every cell executes (cached by jupyter-cache).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
.venv/bin/jupyter-book build . --path-output . -W -n --keep-going
echo "book: built in $(( $(date +%s) - start ))s -> $(pwd)/_build/html/index.html"
