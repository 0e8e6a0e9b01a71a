"""Shared fixtures. ``built_book``: the HTML that ``scripts/build_book.sh`` produced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from skips import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]

# Without a GPU, Triton kernels (tconv_lib/methods/_triton_col2im.py) run under Triton's CPU
# interpreter. Triton reads this when a kernel is decorated, i.e. when its module is first
# imported, which the doctest collection may do before any test module: so it is set here.
try:
    import torch
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover - torch is a dependency
    pass
BOOK_HTML = ROOT / "_build" / "html"


@pytest.fixture(autouse=True)
def _torch_default_dtype(request):
    """Every test starts with torch's default dtype float32, as a new process has it, whatever
    ran before in this worker: a test that executes a notebook in-process (whose setup cell
    sets float64) is reset after it, and a test module that sets it at import fails here,
    naming the test it would have changed (it made PyTorch-vs-library tests elsewhere build
    float64 modules for float32 inputs, in whatever order xdist ran them)."""
    found = torch.get_default_dtype()
    if found is not torch.float32:
        torch.set_default_dtype(torch.float32)
        pytest.fail(f"torch's default dtype was {found} when {request.node.nodeid} started; "
                    "an earlier test module set it at import (torch.set_default_dtype): "
                    "set it in a fixture that restores it")
    yield
    torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="session")
def built_book() -> Path:
    """``_build/html``; skipped when the book is not built (``make test`` builds it first)."""
    if not (BOOK_HTML / "index.html").is_file():
        skip_or_fail(f"the book is not built ({BOOK_HTML} missing): run `make book` first")
    return BOOK_HTML


@pytest.fixture(scope="module")
def light_interpreter():
    """These notebooks need only numpy: keep the warm interpreters light (and stop them after)."""
    import grader.execute

    old = os.environ.get("TCONV_SANDBOX_PRELOAD")
    os.environ["TCONV_SANDBOX_PRELOAD"] = "numpy,grader.testing"
    grader.execute.shutdown()
    yield
    grader.execute.shutdown()
    if old is None:
        os.environ.pop("TCONV_SANDBOX_PRELOAD", None)
    else:
        os.environ["TCONV_SANDBOX_PRELOAD"] = old


@pytest.fixture
def block_adds(monkeypatch):
    """col2im keeps its block adds into phase planes where it would take the channels-last
    route (tconv_lib.methods._channels_last), so tests of the planes' passes run them."""
    from tconv_lib.methods import _channels_last

    monkeypatch.setattr(_channels_last, "CHUNK_BYTES", {"numpy": 0, "torch": 0})


@pytest.fixture
def nan_scratch(monkeypatch):
    """Workspace scratch handed out full of NaN: a result that stays right never read an
    element of it before writing it."""
    from tconv_lib import _workspace

    real_empty = _workspace.empty

    def nan_filled(xp, like, shape, slot):
        buf = real_empty(xp, like, shape, slot)
        buf[...] = float("nan")
        return buf

    monkeypatch.setattr(_workspace, "empty", nan_filled)
