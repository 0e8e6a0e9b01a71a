# tconv: one entry point for readers, students, instructors and CI.
#   make book   build the Jupyter Book (creates .venv and installs on first use)
#   make test   run every test (library, book build + browser, exercises, grader)
# Both are idempotent: installs are keyed on pyproject.toml, the book on jupyter-cache.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := .stamps
BOOK_HTML := _build/html
# Every Python file (ruff's own excludes and pyproject's extend-exclude apply: not the generated
# exercises/), plus the solution notebooks, which pyproject excludes from a plain `ruff check .`.
LINT_PATHS := . solutions

.PHONY: help venv sysdeps book book-clean test test-fast lint bench bench-gpu bench-grader release validate lab clean

help:
	@echo "make book        build the book into $(BOOK_HTML)/ (first run installs everything)"
	@echo "make book-clean  rebuild the book from scratch, re-executing every notebook"
	@echo "make test        run the whole test suite (what CI runs: .ci/run)"
	@echo "make test-fast   pytest only, no lint or book build, skipping browser and slow tests, on"
	@echo "                 2 workers (minutes); one file, in one process (seconds):"
	@echo "                 make test-fast PYTEST_ARGS=tests/test_shapes.py"
	@echo "make lint        ruff over every Python file and the solution notebooks (not exercises/)"
	@echo "make bench       full performance benchmark of tconv_lib against PyTorch (torch, then NumPy"
	@echo "                 inputs; options via BENCH_ARGS, e.g. BENCH_ARGS='--methods auto');"
	@echo "                 writes benchmarks/results/ (the book shows it). Smoke run that does not:"
	@echo "                 .venv/bin/python -m tconv_lib.bench --quick --out /tmp/tconv-quick.json"
	@echo "make bench-gpu   on a CUDA machine: the GPU tests, then the benchmark against cuDNN"
	@echo "make bench-grader  sandboxed parallel autograding vs plain nbgrader"
	@echo "make release     regenerate exercises/ from solutions/"
	@echo "make validate    every solution scores full marks, every released stub zero"
	@echo "make lab         JupyterLab on exercises/, served from the repository root (chapter links work)"
	@echo "make sysdeps     install (or name) the Debian packages: npm, chromium, bubblewrap, postgresql"
	@echo "make clean       remove the built book, its execution cache, install stamps, test artifacts"

# Debian/Ubuntu's python3 has no venv module without python3-venv (sysdeps.sh installs it when it
# can); a venv that fails half-way is removed, or the next `make` would take it for a working one.
$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "tconv needs Python 3.10+, found " + sys.version'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || PYTHON=$(PYTHON) bash scripts/sysdeps.sh venv
	@echo "$(PYTHON) -m venv $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv $(VENV)' failed;" \
	  "on Debian/Ubuntu install python3-venv (sudo apt-get install python3-venv), then run make again" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip

# Re-install only when the project's dependencies change.
$(STAMPS)/install: pyproject.toml | $(PY)
	@mkdir -p $(STAMPS)
	$(PY) -m pip install -q -e '.[book,test,jax,cluster]'
	@touch $@

venv: $(STAMPS)/install
	@$(PY) -c 'import tconv_lib, grader' 2>/dev/null || $(PY) -m pip install -q -e '.[book,test,jax,cluster]'

# Debian packages (chromium for the browser test, bubblewrap for the grading sandbox).
sysdeps:
	@bash scripts/sysdeps.sh

book: venv
	@bash scripts/build_book.sh

book-clean: venv
	rm -rf _build .jupyter_cache
	@bash scripts/build_book.sh

test: venv sysdeps lint
	@bash scripts/build_book.sh
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The whole fast set on two workers, as `make test` runs it; a file named in PYTEST_ARGS in one
# process, which starts sooner than two workers that each import torch.
test-fast: venv
	$(PY) -m pytest -m "not browser and not slow" $(if $(PYTEST_ARGS),$(PYTEST_ARGS),-n 2 --dist loadgroup)

lint: venv
	$(PY) -m ruff check $(LINT_PATHS)

# Both array types: torch CPU tensors, then NumPy arrays, each against the same torch reference.
# Both runs get BENCH_ARGS, so one --out would have the NumPy run overwrite the torch run's file.
bench: venv
	$(if $(findstring --out,$(BENCH_ARGS)),$(error BENCH_ARGS must not hold --out (make bench runs \
	  the torch and the NumPy benchmark, which would write one file); got '$(BENCH_ARGS)': run \
	  .venv/bin/python -m tconv_lib.bench [--backend numpy] --out FILE once per backend))
	$(PY) -m tconv_lib.bench $(BENCH_ARGS)
	$(PY) -m tconv_lib.bench --backend numpy $(BENCH_ARGS)

bench-gpu: venv
	PYTHON=$(PY) bash scripts/gpu_check.sh

# grading runs notebooks in the bubblewrap sandbox: only that group of sysdeps
bench-grader: venv
	@bash scripts/sysdeps.sh sandbox
	$(PY) -m grader.bench

release: venv
	$(PY) -m grader release

validate: venv
	@bash scripts/sysdeps.sh sandbox
	$(PY) -m grader validate

lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/exercises

clean:
	rm -rf _build .jupyter_cache $(STAMPS) .pytest_cache test-artifacts
