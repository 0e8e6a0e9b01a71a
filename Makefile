# tconv: one entry point for readers, students, instructors and CI.
#   make book   build the Jupyter Book (creates .venv and installs on first use)
#   make test   run every test (library, book build + browser, exercises, grader)
# Both are idempotent: installs are keyed on pyproject.toml, the book on jupyter-cache.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := .stamps
BOOK_HTML := _build/html

.PHONY: help venv sysdeps book book-clean test test-fast lint bench bench-gpu bench-grader release validate lab clean

help:
	@echo "make book        build the book into $(BOOK_HTML)/ (first run installs everything)"
	@echo "make book-clean  rebuild the book from scratch, re-executing every notebook"
	@echo "make test        run the whole test suite (what CI runs: .ci/run)"
	@echo "make test-fast   pytest only, no lint or book build, skipping browser and slow tests;"
	@echo "                 one file: make test-fast PYTEST_ARGS=tests/test_shapes.py"
	@echo "make lint        ruff over the library, grader, tests, exercise builder and book extension"
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

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "tconv needs Python 3.10+, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
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

test: venv sysdeps
	$(PY) -m ruff check tconv_lib grader tests solutions book/_ext
	@bash scripts/build_book.sh
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check tconv_lib grader tests solutions book/_ext

# Both array types: torch CPU tensors, then NumPy arrays, each against the same torch reference.
bench: venv
	$(PY) -m tconv_lib.bench $(BENCH_ARGS)
	$(PY) -m tconv_lib.bench --backend numpy $(BENCH_ARGS)

bench-gpu: venv
	PYTHON=$(PY) bash scripts/gpu_check.sh

bench-grader: venv sysdeps
	$(PY) -m grader.bench

release: venv
	$(PY) -m grader release

validate: venv sysdeps
	$(PY) -m grader validate

lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/exercises

clean:
	rm -rf _build .jupyter_cache $(STAMPS) .pytest_cache test-artifacts
