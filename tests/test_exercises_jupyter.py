"""The student release as students meet it: every ``exercises/`` notebook runs in a real Jupyter
kernel (only the stubs' ``NotImplementedError`` fails), the ungraded explore widgets render
(``application/vnd.jupyter.widget-view+json``) and call the student's own functions, JupyterLab
is installed and serves the notebooks, and each notebook links to its book chapter."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
ASSIGNMENTS = sorted(p.name for p in EXERCISES.iterdir() if (p / f"{p.name}.ipynb").is_file())
WIDGETS = {"ex1_shapes": "your size: (not implemented yet)",
           "ex6_checkerboard": "implement overlap_map_2d and is_even above first"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
GROUP = pytest.mark.xdist_group("exercise-release")


def nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_every_assignment_is_released():
    assert len(ASSIGNMENTS) >= 8, ASSIGNMENTS
    assert set(WIDGETS) <= set(ASSIGNMENTS)


def _widget_texts(nb) -> str:
    """Text printed into the notebook's Output widgets (saved widget state)."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    out = []
    for model in state.get("state", {}).values():
        for o in model.get("state", {}).get("outputs", []) or []:
            out.append(o.get("text", "") if isinstance(o.get("text", ""), str)
                       else "".join(o["text"]))
    return "\n".join(out)


@GROUP
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_released_notebook_runs_in_a_kernel(name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    path = EXERCISES / name / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=90, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{name}: a cell did not run"
    failed = 0
    for c in code:
        errors = [o for o in c.outputs if o.output_type == "error"]
        where = f"{name}/{nbg(c).get('grade_id') or c.get('id')}"
        if nbg(c).get("grade"):  # a test cell: may fail, but only on the stub
            assert all(e.ename == "NotImplementedError" or (  # or expect_raises saw it
                e.ename == "AssertionError" and "got NotImplementedError" in e.evalue)
                for e in errors), (where, [(e.ename, e.evalue) for e in errors])
            failed += bool(errors)
        else:  # setup, given code, solution stubs (definitions), explore widgets: no error
            assert not errors, (where, [(e.ename, e.evalue) for e in errors])
    assert failed, f"{name}: the stub passes every test cell"

    explore = [c for c in code if "explore" in c.metadata.get("tags", [])]
    if name in WIDGETS:
        assert explore, f"{name}: no explore widget cell"
        for c in explore:
            assert not nbg(c), f"{name}: the widget cell must not be graded"
            views = [o for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
            assert views, f"{name}: the widget cell shows no widget ({c.outputs})"
        # the widget's first draw called the student's (stub) function
        assert WIDGETS[name] in _widget_texts(nb), _widget_texts(nb)[:500]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_released_notebook_links_its_book_chapter(name, built_book_or_none):
    """The intro links the chapter's source (book/NN.md, which JupyterLab opens) and its built
    page (_build/html/book/NN.html), both relative to the notebook, both for the same chapter."""
    nb = nbformat.read(EXERCISES / name / f"{name}.ipynb", as_version=4)
    intro = nb.cells[0].source
    here = EXERCISES / name
    sources = re.findall(r"\]\((\.\./\.\./book/[^)#]+\.md)\)", intro)
    built = re.findall(r"\]\((\.\./\.\./_build/html/book/[^)#]+\.html)\)", intro)
    assert sources and built, f"{name}: the intro must link its chapter (source and built page)"
    assert [Path(s).stem for s in sources] == [Path(b).stem for b in built], (sources, built)
    toc = (ROOT / "_toc.yml").read_text()
    for s in sources:
        target = (here / s).resolve()
        assert target.is_file() and target.parent == ROOT / "book", f"{name}: broken link {s}"
        assert f"file: book/{target.stem}" in toc, f"{name}: {s} is not a chapter of the book"
    if built_book_or_none is not None:
        for b in built:
            assert (here / b).resolve().is_file(), f"{name}: {b} is missing from the built book"


@pytest.fixture
def built_book_or_none():
    html = ROOT / "_build" / "html" / "index.html"
    return html.parent if html.is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_serves_the_exercises(tmp_path):
    """`jupyter lab` (installed by the project) starts on 127.0.0.1, lists exercises/, returns a
    notebook through the contents API, has the widgets extension and a python3 kernel; stopped
    after."""
    jupyter = Path(sys.executable).with_name("jupyter")
    res = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and re.match(r"^4\.\d+", res.stdout.strip()), res
    port, token = _free_port(), "tconv-test-token"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "TCONV_COURSE": str(tmp_path / "c")}
    cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={EXERCISES}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"

    def get(path: str):
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen(f"{base}{path}{sep}token={token}", timeout=10) as r:
            return r.status, r.read().decode()

    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            try:
                get("/api/status")
                break
            except OSError:
                assert time.monotonic() < deadline, "jupyter lab did not start in 90 s"
                time.sleep(0.3)
        _, listing = get("/api/contents/")
        assert {x["name"] for x in json.loads(listing)["content"]} >= set(ASSIGNMENTS)
        _, body = get("/api/contents/ex1_shapes/ex1_shapes.ipynb")
        model = json.loads(body)
        assert model["type"] == "notebook" and model["content"]["nbformat"] == 4
        on_disk = nbformat.read(EXERCISES / "ex1_shapes" / "ex1_shapes.ipynb", as_version=4)
        assert [c["source"] for c in model["content"]["cells"]] == \
            [c.source for c in on_disk.cells]
        status, page = get("/lab")
        assert status == 200 and "JupyterLab" in page
        _, extensions = get("/lab/api/extensions")
        names = {x["name"] for x in json.loads(extensions)}
        assert "jupyter-widgets-jupyterlab-manager" in names, sorted(names)  # ipywidgets
        _, specs = get("/api/kernelspecs")
        assert "python3" in json.loads(specs)["kernelspecs"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
