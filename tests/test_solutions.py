"""The instructor notebooks in ``solutions/``: well-formed nbgrader metadata, every notebook runs
top to bottom in a fresh kernel, the released stubs score zero, every typical mistake of
``solutions/MISTAKES.md`` fails exactly the cells it lists and every correct answer written
differently (``solutions/CORRECT.md``) passes every cell and records what the solution records.

The variants (stubs, mistakes) are executed cell by cell with ``exec`` in one helper process
(this file run as a script), which is much faster than one Jupyter kernel per variant; the
solution notebooks themselves go through nbclient, as the brief and nbgrader do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
ASSIGNMENTS = ["ex1_shapes", "ex2_scatter", "ex3_matrix", "ex4_gradients", "ex5_conventions",
               "ex6_checkerboard", "ex7_subpixel", "ex8_unet"]
CHAPTERS = {"01_matrix.md", "02_three_views.md", "03_gradient.md", "04_shapes_padding.md",
            "05_fast.md", "06_checkerboard.md", "07_unet.md"}
GROUP = pytest.mark.xdist_group("exercise-notebooks")
VARIANTS = pytest.mark.xdist_group("exercise-variants")  # runs beside GROUP on a second worker
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
HIDDEN_NOTICE = "# At grading this cell also runs hidden tests (edge cases)."
STUB_ERROR = ["NotImplementedError", ""]  # what `raise NotImplementedError()` leaves


def notebook_path(name: str) -> Path:
    return SOLUTIONS / name / f"{name}.ipynb"


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(notebook_path(name), as_version=4)


def nbg(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_test_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [nbg(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and nbg(c).get("grade")]


def kernel_env() -> dict[str, str]:
    """``grader`` and ``tconv_lib`` importable from the notebooks' own directories."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


# --- metadata ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_metadata_is_well_formed(name: str) -> None:
    nb = load(name)
    nbformat.validate(nb)
    ids = [nbg(c)["grade_id"] for c in nb.cells if nbg(c)]
    assert all(ids), f"{name}: a cell with nbgrader metadata has no grade_id"
    assert len(ids) == len(set(ids)), f"{name}: duplicated grade_ids {ids}"
    cell_ids = [c["id"] for c in nb.cells]
    assert len(cell_ids) == len(set(cell_ids)), f"{name}: duplicated cell ids"

    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert nbg(first_code).get("locked") and nbg(first_code).get("grade_id") == "setup"
    assert "from grader.testing import expect, expect_raises" in first_code.source

    total, n_tests, n_solutions = 0, 0, 0
    for cell in nb.cells:
        meta = nbg(cell)
        if not meta:
            continue
        gid = meta["grade_id"]
        assert meta.get("schema_version") == 3, f"{name}/{gid}: schema_version"
        if meta.get("grade"):
            points = meta.get("points")
            assert isinstance(points, int | float) and points > 0, f"{name}/{gid}: points"
            total += points
        if cell.cell_type == "code" and meta.get("solution"):
            n_solutions += 1
            src = cell.source
            assert not meta.get("grade") and not meta.get("locked"), f"{name}/{gid}"
            assert src.count("### BEGIN SOLUTION") == 1 == src.count("### END SOLUTION"), gid
            assert src.index("### BEGIN SOLUTION") < src.index("### END SOLUTION"), gid
            assert "tconv_lib" not in src, f"{name}/{gid}: solutions must not use tconv_lib"
        if cell.cell_type == "code" and meta.get("grade"):
            n_tests += 1
            src = cell.source
            assert meta.get("locked") and not meta.get("solution"), f"{name}/{gid}: not locked"
            assert "expect" in src, f"{name}/{gid}: a test cell that checks nothing"
            assert not re.search(r"^\s*assert\b", src, re.M), f"{name}/{gid}: bare assert"
            assert src.count("### BEGIN HIDDEN TESTS") == src.count("### END HIDDEN TESTS")
            for hidden in HIDDEN.findall(src):
                assert "expect" in hidden, f"{name}/{gid}: an empty hidden block"
            names = re.findall(r"expect(?:_raises)?\(\s*f?\"([^\"]+)\"", src)
            assert len(names) == len(set(names)), f"{name}/{gid}: expect names {names}"
        if cell.cell_type == "markdown" and meta.get("grade"):
            assert meta.get("solution") and meta.get("task") is False, f"{name}/{gid}: manual"
    assert total > 0 and n_tests >= 3 and n_solutions >= 2, name

    links = re.findall(r"\]\(\.\./\.\./book/([^)#]+)\)", nb.cells[0].source)
    assert links and set(links) <= CHAPTERS, f"{name}: the intro must link its book chapter"
    assert all((ROOT / "book" / link).is_file() for link in links), f"{name}: broken {links}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_task_headings_state_the_points(name: str) -> None:
    """"## Task n (P points)" / "## Question (P points)" equal the graded cells' points."""
    sections: list[tuple[str, int, float]] = []
    for cell in load(name).cells:
        m = re.match(r"## (.*?)\((\d+) points?", cell.source) if cell.cell_type == "markdown" \
            and not nbg(cell) else None
        if m:
            sections.append((m.group(1).strip(), int(m.group(2)), 0))
        elif nbg(cell).get("grade") and sections:
            title, stated, got = sections[-1]
            sections[-1] = (title, stated, got + nbg(cell)["points"])
    assert sections
    for title, stated, got in sections:
        assert stated == got, f"{name}: '{title}' states {stated} points, its cells give {got}"


# --- execution --------------------------------------------------------------------------------

@GROUP
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_notebook_runs_in_a_fresh_kernel(name: str, monkeypatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", kernel_env()["PYTHONPATH"])
    nb = load(name)
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(notebook_path(name).parent)}}).execute()
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in ran), f"{name}: a cell did not run"


def stub_sources(name: str) -> dict[str, str]:
    """The released version of every solution cell (nbgrader's own ClearSolutions)."""
    from nbgrader.preprocessors import ClearSolutions

    nb, _ = ClearSolutions().preprocess(load(name), {"language": "python"})
    return {nbg(c)["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and nbg(c).get("solution")}


def parse_mistakes() -> list[dict]:
    text = (SOLUTIONS / "MISTAKES.md").read_text()
    mistakes = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        field = {k: re.search(rf"^- {k}: (.+)$", section, re.M) for k in
                 ("assignment", "replace cell", "fails")}
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert all(field.values()) and code, f"MISTAKES.md section '{title}' is incomplete"
        mistakes.append({"title": title,
                         "assignment": field["assignment"].group(1).strip(" `"),
                         "cell": field["replace cell"].group(1).strip(" `"),
                         "fails": sorted(re.findall(r"`([^`]+)`", field["fails"].group(1))),
                         "code": code.group(1)})
    return mistakes


def parse_correct() -> list[dict]:
    """The entries of ``solutions/CORRECT.md``: correct answers that must score full marks."""
    text = (SOLUTIONS / "CORRECT.md").read_text()
    entries = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        field = {k: re.search(rf"^- {k}: (.+)$", section, re.M)
                 for k in ("assignment", "replace cell")}
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert all(field.values()) and code, f"CORRECT.md section '{title}' is incomplete"
        entries.append({"title": title, "assignment": field["assignment"].group(1).strip(" `"),
                        "cell": field["replace cell"].group(1).strip(" `"),
                        "code": code.group(1)})
    return entries


@pytest.fixture(scope="module")
def variant_results() -> dict[str, dict]:
    """Runs every variant in one helper process: key -> {grade_id: passed, "<gid>#hidden": ...}."""
    variants = {f"stub:{name}": {"assignment": name, "replace": stub_sources(name)}
                for name in ASSIGNMENTS}
    for name in ASSIGNMENTS:  # the solution twice: its records must not depend on the run
        variants[f"records:{name}"] = {"assignment": name, "replace": {}, "record": 2}
    for m in parse_mistakes():
        variants[f"mistake:{m['title']}"] = {"assignment": m["assignment"],
                                             "replace": {m["cell"]: m["code"]}}
    for c in parse_correct():
        variants[f"correct:{c['title']}"] = {"assignment": c["assignment"],
                                             "replace": {c["cell"]: c["code"]},
                                             "compare_records": True}
    for name, (assignment, replace, _) in CHARGED_ONCE.items():
        variants[f"once:{name}"] = {"assignment": assignment, "replace": replace}
    for name, (assignment, replace, keys) in GRADING_RECORDS.items():
        variants[f"graded:{name}"] = {"assignment": assignment, "replace": replace,
                                      "record_keys": keys}
    proc = subprocess.run([sys.executable, __file__, "--variants"], input=json.dumps(variants),
                          capture_output=True, text=True, cwd=ROOT, env=kernel_env(),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@VARIANTS
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_released_stub_fails_every_test_and_every_hidden_block(name, variant_results) -> None:
    result = variant_results[f"stub:{name}"]
    passing = [gid for gid in graded_test_cells(load(name)) if result[gid]]
    assert not passing, f"{name}: the released stub passes {passing}"
    passing_hidden = [k for k, ok in result.items() if k.endswith("#hidden") and ok]
    assert not passing_hidden, f"{name}: hidden blocks pass on the stub: {passing_hidden}"


@VARIANTS
@pytest.mark.parametrize("mistake", parse_mistakes(), ids=lambda m: m["title"][:40])
def test_mistakes_are_caught_by_visible_tests(mistake, variant_results) -> None:
    """A typical mistake must not get the full visible score: the student's own checks
    (``tconv-grader check``, the released cells without hidden blocks) must show it."""
    result = variant_results[f"mistake:{mistake['title']}"]
    caught = [gid for gid in mistake["fails"] if not result[f"{gid}#visible"]]
    assert caught, f"{mistake['title']}: only hidden tests catch it ({mistake['fails']})"


@VARIANTS
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_released_stub_stops_every_test_cell_with_its_own_error(name, variant_results) -> None:
    """Every test cell of the stub stops with the stub's bare ``NotImplementedError`` (which
    ``tconv-grader check`` and the grader report as "still the released stub"), not with an
    ``expect`` failure such as "expected ValueError, got NotImplementedError"."""
    result = variant_results[f"stub:{name}"]
    other = {gid: result[f"{gid}#error"] for gid in graded_test_cells(load(name))
             if result[f"{gid}#error"] != STUB_ERROR}
    assert not other, f"{name}: test cells of the stub stop with something else: {other}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_test_cells_make_their_own_inputs(name: str) -> None:
    """A test cell reads no plain name (``w``, ``x``, ``t``) that only an earlier test cell
    defines: a student who reuses the name in a cell of their own (trying things out) would
    change the inputs; ``check`` computes its expected values from the same inputs and passes,
    grading compares with the solution's records and fails. Helpers start with ``_``; the
    setup's and given cells' names are the notebook's own."""
    import ast

    defined_by_test: set[str] = set()
    borrowed = {}
    for cell in load(name).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
        bound = imported | {n.id for n in ast.walk(tree)
                            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        bound |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
                  for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a}
        if nbg(cell).get("grade"):
            loads = {n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            reads = sorted(n for n in loads - bound
                           if n in defined_by_test and not n.startswith("_"))
            if reads:
                borrowed[nbg(cell)["grade_id"]] = reads
            defined_by_test |= bound - imported
        else:
            defined_by_test -= bound
    assert not borrowed, f"{name}: test cells read names an earlier test cell made: {borrowed}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_helpers_for_later_cells_come_before_the_first_case(name: str) -> None:
    """A name a test cell defines for later test cells (``_library_calls``, ``_EARLIER``) is
    bound before the cell's first case: in ``check`` a failed case stops the cell, and a later
    cell would then fail with a NameError for a mistake in another task (ex5's tf_to_torch
    failed test_jax so)."""
    import ast

    def calls(node, names):
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                   and n.func.id in names for n in ast.walk(node))

    cells = [ast.parse(c.source) for c in load(name).cells
             if c.cell_type == "code" and nbg(c).get("grade")]
    late: dict[str, int] = {}  # name -> index of the test cell that binds it after a case
    for n, tree in enumerate(cells):
        checks = {"expect", "expect_raises"}
        checks |= {d.name for d in tree.body if isinstance(d, ast.FunctionDef)
                   and calls(d, checks)}
        first = next((i for i, s in enumerate(tree.body)
                      if not isinstance(s, ast.FunctionDef) and calls(s, checks)), None)
        for s in tree.body[first + 1 if first is not None else len(tree.body):]:
            bound = {s.name} if isinstance(s, ast.FunctionDef | ast.ClassDef) else {
                t.id for t in ast.walk(s) if isinstance(t, ast.Name)
                and isinstance(t.ctx, ast.Store)} if isinstance(s, ast.Assign) else set()
            late.update((b, n) for b in bound)
    used = {(b, n) for n, tree in enumerate(cells) for x in ast.walk(tree)
            if isinstance(x, ast.Name) and isinstance(x.ctx, ast.Load)
            and (b := x.id).startswith("_") and b in late and late[b] < n}
    assert not used, f"{name}: bound after a case and used by a later test cell: {sorted(used)}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_cells_with_hidden_tests_say_so_in_the_release(name: str) -> None:
    """The released test cell keeps a visible notice where its hidden block was stripped."""
    source = {nbg(c)["grade_id"]: c.source for c in load(name).cells if nbg(c).get("grade")}
    released = nbformat.read(EXERCISES / name / f"{name}.ipynb", as_version=4)
    cells = {nbg(c)["grade_id"]: c.source for c in released.cells
             if c.cell_type == "code" and nbg(c).get("grade")}
    assert cells and set(cells) <= set(source)
    for gid, src in cells.items():
        has_hidden = "### BEGIN HIDDEN TESTS" in source[gid]
        assert (HIDDEN_NOTICE in src) == has_hidden, f"{name}/{gid}: hidden {has_hidden}"
        assert "HIDDEN TESTS" not in src, f"{name}/{gid}: hidden block released"
        if has_hidden:
            notice = source[gid].index(HIDDEN_NOTICE)
            assert not any(m.start() < notice < m.end() for m in HIDDEN.finditer(source[gid]))


# (mistake, test cell, texts its student-mode failure must show): the student's answer, the
# case and the hint, also when the answer makes a test helper raise.
MESSAGES = [
    ("M23", "test_jax_edges", ["AssertionError", "[dilated]", "RuntimeError",
                               "your conversion (-1, 1, 0)", "Hint:"]),
    ("M25", "test_jax_edges", ["[dilation_above_stride]", "got 'ValueError",
                               "none (jax_to_torch raised)", "Hint:"]),
    ("M27", "test_is_even", ["[pairs]", "got ['no', 'yes', 'no'"]),
    ("M27", "test_is_even_edges", ["[stride_1]", "got 'yes'"]),
    ("M18", "test_weight_grad", ["[stride2_8x7]", "stride=dilation", "dilation=stride"]),
    ("M10", "test_decoder_block_edges", ["[no_crop]", "order of the concatenation"]),
    ("M21", "test_tf_valid_and_edges", ["[full_mode]", "expected ValueError to be raised"]),
    ("M22", "test_tf_valid_and_edges", ["[valid_lower_k4_s2]", "your conversion (1, 0, 0)"]),
    # a function that raises: the case, the call with its arguments, the error, where, the hint
    ("M32", "test_output_padding", ["[op_3]", "expected 1, but output_padding_for(3, 10, 3, "
                                    "stride=3, padding=1, dilation=2) raised ValueError: "
                                    "target 10", "(raised in output_padding_for, line",
                                    "Hint:"]),
    ("M33", "test_zero_insert", ["[inputs_unchanged]", "in place", "Hint:"]),
    ("M35", "test_tf_valid_and_edges", ["[valid_k2_s4]", "your conversion (0, 0, 0)",
                                        "length 12"]),
    ("M36", "test_overlap_1d_edges", ["[integer_counts]", "integer array", "float64"]),
    ("M37", "test_resize_conv", ["[scale_3_k5]", "shape (1, 1, 9, 6)", "k // 2"]),
    ("M41", "test_pixel_shuffle", ["[own_code]", "got 'calls F.pixel_shuffle'", "Hint:"]),
    ("M43", "test_scatter_2d_channels", ["[own_code]", "got 'calls F.conv_transpose2d'"]),
    ("M46", "test_matrix_1d", ["[own_code]", "got 'calls tconv_lib.conv_matrix'"]),
    ("M47", "test_pixel_shuffle", ["[own_code]", "got 'calls torch.pixel_shuffle'"]),
    ("M48", "test_input_grad_edges", ["[stride_3]", "output_padding (2, 1)", "next multiple"]),
    ("M49", "test_valid_size_edges", ["[min_size_works]", "got (20, 4)", "min_size itself"]),
    ("M50", "test_input_grad", ["[no_autograd]", "got 'torch.autograd.grad'"]),
    ("M51", "test_weight_grad", ["[no_autograd]", "got 'torch.autograd.backward'"]),
    ("M52", "test_weight_grad", ["[inputs_unchanged]", "got 'x'", "in place"]),
    ("M53", "test_via_matrix_channels", ["[inputs_unchanged]", "in place"]),
    ("M56", "test_valid_size", ["[pool_sees_odd]", "expected (52, 12), got (50, 8)",
                                "every pool sees an even size"]),
    ("M57", "test_center_crop", ["[non_square]", "shape (2, 3, 6, 4)",
                                 "columns w and W"]),
    ("M58", "test_decoder", ["[k5_s3_p2]", "expected (0, 2), got (2, 1)", "mind the signs"]),
    # the s = 3 cases' inputs (18 channels; a 3x3 kernel), which the answer fails on
    ("M59", "test_pixel_shuffle", ["[s3_two_channels]", "pixel_shuffle(<Tensor of shape "
                                   "(1, 18, 2, 3)>, 3) raised RuntimeError",
                                   "invalid for input of size 108", "Hint: s = 3"]),
    ("M60", "test_sub_kernels", ["[k3_s3]", "sub_kernels(<Tensor of shape (1, 2, 3, 3)>, 3) "
                                 "raised RuntimeError", "[1, 2, 2, 2] at entry 0 and [1, 2, 2, 1]",
                                 "Hint: s = 3"]),
    ("M61", "test_center_crop_edges", ["[wider_than_map_only]", "expected ValueError",
                                       "a tuple comparison"]),
    ("M62", "test_valid_size", ["[depth_3]", "expected (92, 4), got (96, 4)", "2**depth"]),
    ("M97", "test_subpixel", ["[own_code]", "got 'calls aten.convolution(transposed=True)'",
                              "Hint:"]),
    ("M98", "test_subpixel", ["[own_code]", "aten.convolution_backward (an input gradient)"]),
    ("M99", "test_tf_same", ["[own_code]", "got \"calls the test's _tf_reference\"", "Hint:"]),
    ("M101", "test_output_size", ["[size_is_int]", "expected 'int', got 'float (5.0)'",
                                  "Hint:", "//"]),
    ("M102", "test_size_range", ["[range_is_ints]", "got 'float (9.0)'", "Hint:"]),
    ("M103", "test_output_size", ["[own_code]",
                                  "got 'calls tconv_lib.shapes.conv_transpose_output_size'"]),
    ("M104", "test_output_size", ["[own_code]", "got \"calls the test's _torch_size",
                                  "Hint:"]),
    ("M118", "test_output_size", ["[own_code]", "got 'calls F.conv_transpose1d'", "Hint:"]),
    ("M121", "test_decoder_block", ["[own_code]", "got \"calls the test's _reference\"",
                                    "Hint:"]),
    ("M122", "test_subpixel_edges", ["[k6_s2]", "q - 1 = 2"]),
    ("M123", "test_jax_edges", ["[crop_2]", "your conversion (0, 0, 1)"]),
    ("M124", "test_jax_edges", ["[negative_low]", "negative JAX padding is not supported",
                                "(low, high)=(-1, 0)"]),
    ("M107", "test_subpixel", ["[own_code]", "got 'calls jax.lax.conv_transpose'"]),
    ("M110", "test_input_grad", ["[no_autograd]", "got 'jax.vjp'", "Hint:", "JAX's"]),
    ("M111", "test_input_grad", ["[no_autograd]", "torch.func.jacfwd"]),
    ("M112", "test_input_grad", ["[no_autograd]", "got 'aten.convolution_backward'"]),
    ("M114", "test_zero_insert", ["[not_scatter]", "got 'calls scatter_1d'", "Hint:"]),
    ("M115", "test_zero_insert_edges", ["[stride_3_no_padding]", "stride - 1"]),
    ("M116", "test_via_matrix_channels", ["[uses_conv_matrix_2d]", "expected True, got False",
                                          "C.T @ x"]),
    ("M117", "test_is_even_edges", ["[kernel_below_stride]", "expected False, got True",
                                    "holes"]),
    ("M125", "test_input_grad_edges", ["[dilation_2_stride_3]", "(1, 3, 9, 9)",
                                       "d*(k-1) + 1", "Hint:"]),
    ("M126", "test_matrix_1d", ["[inputs_unchanged]", "expected True, got False", "in place",
                                "does not flip"]),
    ("M127", "test_scatter_2d_channels", ["[inputs_unchanged]", "in place", "never does"]),
    ("M128", "test_matrix_2d", ["[inputs_unchanged]", "conv_matrix_2d changed"]),
    ("M129", "test_size_range", ["[own_code]", "got 'calls F.conv_transpose2d'", "Hint:",
                                 "PyTorch's convolutions"]),
    ("M130", "test_output_padding", ["[own_code]", "got 'calls F.conv_transpose1d'", "Hint:"]),
]


@VARIANTS
@pytest.mark.parametrize("number,cell,texts", MESSAGES, ids=[f"{m}-{c}" for m, c, _ in MESSAGES])
def test_mistake_failure_messages(number, cell, texts, variant_results) -> None:
    mistake = next(m for m in parse_mistakes() if m["title"].startswith(f"{number}."))
    assert cell in mistake["fails"]
    error = variant_results[f"mistake:{mistake['title']}"][f"{cell}#error"]
    assert error, f"{number}: {cell} did not fail"
    text = ": ".join(error)
    missing = [t for t in texts if t not in text]
    assert not missing, f"{number}/{cell}: {missing} not in {text!r}"


# A mistake in an earlier task is charged there only (MISTAKES.md, "A mistake is charged once"):
# a later task whose (correct) function calls the wrong earlier one is judged once more with the
# test's reference in its place. Each variant replaces several cells: {name: (assignment,
# {cell: code}, the cells it must fail)}. Before setup's _or_with_reference each also failed the
# later tasks' cells.
_ONE_SHORT = """\
def conv_transpose_output_size(i, k, stride=1, padding=0, output_padding=0, dilation=1):
    return (i - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding  # no + 1
"""
_RANGE_FROM_TASK_1 = """\
def output_size_range(i, k, stride=1, padding=0, dilation=1):
    low = conv_transpose_output_size(i, k, stride, padding, 0, dilation)
    return (low, low + stride - 1)
"""
_OP_FROM_TASK_2 = """\
def output_padding_for(i, target, k, stride=1, padding=0, dilation=1):
    low, high = output_size_range(i, k, stride, padding, dilation)
    if not low <= target <= high:
        raise ValueError(f"target {target} is not in {low}..{high}")
    return target - low
"""
CHARGED_ONCE = {
    "ex1 Task 1 one short, Tasks 2-3 built on it": (
        "ex1_shapes", {"output_size": _ONE_SHORT, "size_range": _RANGE_FROM_TASK_1,
                       "output_padding": _OP_FROM_TASK_2},
        ["test_output_size", "test_output_size_edges"]),
    "ex1 Task 1 a float, Task 2 built on it": (
        "ex1_shapes", {"output_size": _ONE_SHORT.replace("output_padding  # no + 1",
                                                         "output_padding + 1.0"),
                       "size_range": _RANGE_FROM_TASK_1}, ["test_output_size"]),
    "ex3 C without the padding, Task 3 built on it": (
        "ex3_matrix", {"matrix_2d": """\
def conv_matrix_2d(w, in_size, stride=(1, 1), padding=(0, 0)):
    w = np.asarray(w, dtype=float)
    c_out, c_in, kh, kw = w.shape
    (h, wd), (sh, sw) = in_size, stride
    ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1  # the padding forgotten
    c = np.zeros((c_out, ho, wo, c_in, h, wd))
    for r in range(ho):
        for q in range(wo):
            c[:, r, q, :, r * sh: r * sh + kh, q * sw: q * sw + kw] = w
    return c.reshape(c_out * ho * wo, c_in * h * wd)
"""}, ["test_matrix_2d", "test_matrix_2d_edges"]),
    "ex6 1-D map one too long, Task 2 built on it": (
        "ex6_checkerboard", {"overlap_1d": """\
def overlap_map_1d(k, s, n):
    counts = np.zeros(n * s + k, dtype=np.int64)  # one stride too long
    for j in range(n):
        counts[j * s: j * s + k] += 1
    return counts
"""}, ["test_overlap_1d", "test_overlap_1d_edges"]),
    "ex7 Task 1 a stub, Task 2 for s=2 only, Task 3 built on both": (
        "ex7_subpixel", {"pixel_shuffle": "def pixel_shuffle(t, s):\n"
                                          "    raise NotImplementedError()\n",
                         "sub_kernels": """\
def sub_kernels(w, s):
    return torch.stack([torch.stack([w[:, :, r1::2, r2::2] for r2 in range(2)])
                        for r1 in range(2)])
"""}, ["test_pixel_shuffle", "test_sub_kernels"]),
    "ex8 decoder block without the crop, the toy U-Net built on it": (
        "ex8_unet", {"decoder_block": """\
def decoder_block(low, skip, up_w, up_b, w1, b1, w2, b2):
    up = F.conv_transpose2d(low, up_w, up_b, stride=2)
    h = torch.cat([skip, up], dim=1)  # the crop forgotten
    return torch.relu(F.conv2d(torch.relu(F.conv2d(h, w1, b1)), w2, b2))
"""}, ["test_decoder_block", "test_decoder_block_edges"]),
}


@VARIANTS
@pytest.mark.parametrize("name", CHARGED_ONCE)
def test_a_mistake_is_charged_once(name, variant_results) -> None:
    """A wrong earlier function fails its own task's cells only, not those of the later tasks
    whose functions call it (and are right with a right earlier function)."""
    assignment, _, fails = CHARGED_ONCE[name]
    result = variant_results[f"once:{name}"]
    failing = sorted(gid for gid in graded_test_cells(load(assignment)) if not result[gid])
    assert failing == sorted(fails), f"{name}: fails {failing}"


# What grading records of some cases of a variant (expect only records there, so every case of
# a cell runs even after a failed one): {name: (assignment, {cell: code}, [record keys])}.
_RAISES_AT_HIGH = '''\
def output_padding_for(i, target, k, stride=1, padding=0, dilation=1):
    low = (i - 1) * stride - 2 * padding + dilation * (k - 1) + 1
    if not low <= target < low + stride - 1:
        raise ValueError(f"target {target} is not in {low}..{low + stride - 1}")
    return target - low
'''
GRADING_RECORDS = {
    "ex1 output_padding_for raises for a reachable target": (
        "ex1_shapes", {"output_padding": _RAISES_AT_HIGH},
        ["test_output_padding/op_0", "test_output_padding/torch_length_0"]),
}


@VARIANTS
def test_a_raise_is_not_passed_on_to_pytorch(variant_results) -> None:
    """Where output_padding_for raised (setup's _called gives the raise's text), the case that
    gives its output_padding to PyTorch says so; it passed the text on, and grading told
    "TypeError: ... must be tuple of ints, not str", PyTorch's complaint about the test's call."""
    records = variant_results["graded:ex1 output_padding_for raises for a reachable target"]
    assert "raised ValueError: target 8 is not in 7..8" in records["test_output_padding/op_0"]
    assert records["test_output_padding/torch_length_0"] == "none (output_padding_for raised)"


def test_a_raised_answer_is_told_as_raised() -> None:
    """What a test cell records where the student's function raised (setup's _called) is told
    as a raise: whole in a cell without hidden tests, and where answers are not shown only as a
    builtin exception's name (the text, and a class the student named, are the answer's)."""
    from grader.testing import describe_mismatch, describe_unshown

    got = ("center_crop(<Tensor of shape (2, 3, 9, 10)>, (6, 4)) raised IndexError: secret 42 "
           "(raised in center_crop, line 3 of its cell)")
    shown = describe_mismatch(got, 7)
    assert shown.startswith("expected 7, but center_crop(") and "secret 42" in shown
    unshown = describe_unshown(got, 7)
    assert "your function raised IndexError" in unshown and "secret" not in unshown
    assert "center_crop" not in unshown
    other = describe_unshown(got.replace("IndexError", "LeakyError"), 7)
    assert "raised an exception" in other and "Leaky" not in other


@VARIANTS
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_records_are_deterministic(name, variant_results) -> None:
    """The grader compares students' records with the solution's: inputs must be seeded."""
    result = variant_results[f"records:{name}"]
    assert result["n_records"] > 0
    assert result["differ"] == [], f"{name}: records differ between two runs"


@VARIANTS
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_grader_finds_every_hidden_tests_name(name, variant_results) -> None:
    """The grader tells hidden tests from visible ones by the names it reads in the hidden
    blocks (``expect("name", ...)``): every test that only a hidden block records must be named
    there literally (not by an f-string or a helper's argument), or its name and expected value
    would reach the student's feedback."""
    from grader.autograde import test_specs

    result = variant_results[f"records:{name}"]
    found = {f"{gid}/{n}" for gid, spec in test_specs(load(name)).items()
             for n in spec.hidden_names}
    assert result["hidden"], f"{name}: no hidden test recorded"
    assert set(result["hidden"]) == found, (
        f"{name}: recorded only by hidden blocks {sorted(set(result['hidden']) - found)}, "
        f"read as hidden but recorded visibly or never {sorted(found - set(result['hidden']))}")
    assert not found & set(result["visible"]), f"{name}: {sorted(found & set(result['visible']))}"


@VARIANTS
@pytest.mark.parametrize("correct", parse_correct(), ids=lambda c: c["title"][:40])
def test_correct_variants_score_full_marks(correct, variant_results) -> None:
    """A correct answer written differently passes every test cell and hidden block as
    ``check`` runs them, and records what the solution records (what grading compares): no
    test input may come from the student's top-level names or the global random state after
    the student's code ran."""
    nb = load(correct["assignment"])
    assert correct["cell"] in {nbg(c).get("grade_id") for c in nb.cells if nbg(c).get("solution")}
    result = variant_results[f"correct:{correct['title']}"]
    failing = {gid: result[f"{gid}#error"] for gid in graded_test_cells(nb) if not result[gid]}
    failing |= {k: "hidden block" for k, ok in result.items() if k.endswith("#hidden") and not ok}
    assert not failing, f"{correct['title']}: fails {failing}"
    assert result["records_differ"] == [], (
        f"{correct['title']}: grading would fail {result['records_differ']}")


@VARIANTS
@pytest.mark.parametrize("mistake", parse_mistakes(), ids=lambda m: m["title"][:40])
def test_mistakes_fail_exactly_the_listed_cells(mistake, variant_results) -> None:
    nb = load(mistake["assignment"])
    assert mistake["cell"] in {nbg(c).get("grade_id") for c in nb.cells if nbg(c).get("solution")}
    result = variant_results[f"mistake:{mistake['title']}"]
    failing = sorted(gid for gid in graded_test_cells(nb) if not result[gid])
    assert failing == mistake["fails"], f"{mistake['title']}: fails {failing}"


# --- helper process ---------------------------------------------------------------------------

def _run_variants(variants: dict[str, dict]) -> dict[str, dict]:
    """Execute each variant's code cells in order in a fresh namespace (like a fresh kernel):
    for every test cell, whether it ran without error (``gid``) and what stopped it
    (``gid#error``); for its hidden block, whether the block alone (run right after the cell)
    ran without error (``gid#hidden``); whether the cell without its hidden block, as released,
    ran without error (``gid#visible``)."""
    import contextlib
    import io

    from grader.testing import LockedNames

    out: dict[str, dict] = {}
    solution_records: dict[str, dict] = {}
    for key, variant in variants.items():
        if variant.get("record_keys"):  # what grading records of these cases, as text
            records = _record_run(variant["assignment"], contextlib, io,
                                  replace=variant["replace"])
            out[key] = {k: str(records.get(k)) for k in variant["record_keys"]}
            continue
        if variant.get("record"):
            runs = [_record_run(variant["assignment"], contextlib, io)
                    for _ in range(variant["record"])]
            differ = sorted(k for k in runs[0] if k not in runs[1]
                            or not _values_match(runs[0][k], runs[1][k]))
            visible = _record_run(variant["assignment"], contextlib, io, strip_hidden=True)
            out[key] = {"n_records": len(runs[0]),
                        "differ": differ + sorted(set(runs[1]) - set(runs[0])),
                        "hidden": sorted(set(runs[0]) - set(visible)),
                        "visible": sorted(visible)}
            continue
        name = variant["assignment"]
        os.chdir(notebook_path(name).parent)
        _fresh_torch_state()  # as in a fresh kernel: an earlier variant may have changed it
        namespace: dict = {"__name__": "__main__"}
        result: dict[str, bool] = {}
        guard = LockedNames(namespace)  # as grading and check: the locked cells' names (M108)
        for cell in load(name).cells:
            if cell.cell_type != "code":
                continue
            gid = nbg(cell).get("grade_id")
            src = variant["replace"].get(gid, cell.source)
            locked = bool(nbg(cell).get("locked") or nbg(cell).get("grade")) \
                and not nbg(cell).get("solution")
            if nbg(cell).get("grade"):
                guard.restore()
            guard.before(locked)
            error = _run(src, namespace, f"<{name}/{gid}>", contextlib, io)
            guard.after(0, locked)
            if nbg(cell).get("grade"):
                result[gid] = error is None
                result[f"{gid}#error"] = error
                for hidden in HIDDEN.findall(src):
                    result[f"{gid}#hidden"] = _exec(hidden, namespace, f"<{gid} hidden>",
                                                   contextlib, io)
                # what the student can check: the cell as released, without its hidden block
                result[f"{gid}#visible"] = _exec(HIDDEN.sub("", src), namespace,
                                                 f"<{gid} visible>", contextlib, io) \
                    if HIDDEN.search(src) else result[gid]
        if variant.get("compare_records"):  # as grading compares: with the solution's records
            if name not in solution_records:
                solution_records[name] = _record_run(name, contextlib, io)
            mine = _record_run(name, contextlib, io, replace=variant["replace"])
            expected = solution_records[name]
            result["records_differ"] = sorted(
                k for k in set(expected) | set(mine)
                if k not in mine or k not in expected or not _values_match(mine[k], expected[k]))
        out[key] = result
    return out


def _record_run(name: str, contextlib, io, strip_hidden: bool = False,
                replace: dict[str, str] | None = None) -> dict:
    """Run the solution like the grader does: expect/expect_raises rebound to recorders
    (``strip_hidden``: without the hidden blocks, as released; ``replace``: these cells'
    sources instead, a variant that must run without error)."""
    from grader.testing import raised_as, to_plain

    os.chdir(notebook_path(name).parent)
    _fresh_torch_state()
    records: dict = {}
    namespace: dict = {"__name__": "__main__"}
    for cell in load(name).cells:
        if cell.cell_type != "code":
            continue
        gid = nbg(cell).get("grade_id")
        if nbg(cell).get("grade"):
            def expect(key, got, expected=None, hint="", _gid=gid):
                records[f"{_gid}/{key}"] = to_plain(got)

            def expect_raises(key, exc_type, fn, *args, hint="", _gid=gid, **kwargs):
                records[f"{_gid}/{key}"] = raised_as(exc_type, fn, *args, **kwargs)

            namespace.update(expect=expect, expect_raises=expect_raises)
        src = (replace or {}).get(gid, cell.source)
        src = HIDDEN.sub("", src) if strip_hidden else src
        assert _exec(src, namespace, f"<{name}/{gid}>", contextlib, io), gid
    return records


def _fresh_torch_state() -> None:
    """Gradients on and torch's default dtype, as a new process has them (a correct variant
    may switch them in its own cell; grading runs every notebook in a new process)."""
    import torch

    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)


def _values_match(a, b) -> bool:
    from grader.testing import values_match

    return values_match(a, b)


def _exec(src: str, namespace: dict, filename: str, contextlib, io) -> bool:
    return _run(src, namespace, filename, contextlib, io) is None


def _run(src: str, namespace: dict, filename: str, contextlib, io) -> list[str] | None:
    """Run one cell; None, or ``[exception type, message]`` of what stopped it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - our own notebooks
    except Exception as exc:  # noqa: BLE001 - a failing cell is the datum
        return [type(exc).__name__, str(exc)]
    return None


if __name__ == "__main__" and sys.argv[1:] == ["--variants"]:
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_run_variants(json.loads(sys.stdin.read()))))
