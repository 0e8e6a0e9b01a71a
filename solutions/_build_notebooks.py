"""Authoring helper: writes the instructor notebooks ``solutions/<ex>/<ex>.ipynb`` with nbformat.

The notebooks are the source of truth that nbgrader and ``tconv-grader release`` read; this
script is only a convenient way to write their cells and metadata consistently. Edit here and
re-run (``.venv/bin/python solutions/_build_notebooks.py [ex1_shapes ...]``), or edit the
notebooks directly and stop using this script: both are committed.

Cell kinds (nbgrader schema 3 metadata, see notes/GRADER_INTERFACES.md):
    md        plain markdown (no metadata)
    setup     locked code cell, grade_id "setup" (imports, expect/expect_raises)
    given     locked code cell provided to students (a model to fix, a helper)
    solution  code cell with ### BEGIN SOLUTION / ### END SOLUTION
    test      autograded, locked test cell with points (may hold hidden tests)
    manual    manually graded markdown answer (the model answer is the whole cell; the release
              replaces it by "YOUR ANSWER HERE")
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import numpy as np  # noqa: F401 - not every exercise needs all of these
import torch
import torch.nn.functional as F

from grader.testing import expect, expect_raises  # noqa: F401

torch.set_default_dtype(torch.float64)  # float64 everywhere: exact comparisons with PyTorch


def _called(fn, *args, **kwargs):
    \"\"\"fn(*args, **kwargs), as the test cells call your functions. Where it raises, the text
    "fn(arguments) raised Error: message (raised in f, line n of its cell)" instead: the case
    that gets it fails saying which call failed, what it expected and the hint, and the cell's
    other cases still run. Only the released stub's bare NotImplementedError stops the cell.\"\"\"
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the case reports it
        tb = exc.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        if type(exc) is NotImplementedError and not exc.args and (
                tb.tb_frame.f_code is getattr(fn, "__code__", None)
                or getattr(exc, "released_stub", False)):  # seen so by a _called inside fn
            exc.released_stub = True
            raise  # the released stub, still in fn itself
        where, tb = "", exc.__traceback__.tb_next
        while tb is not None:  # the innermost frame of a function defined in a cell
            if tb.tb_frame.f_globals is globals():
                where = (f" (raised in {tb.tb_frame.f_code.co_name}, line {tb.tb_lineno} of "
                         "its cell)")
            tb = tb.tb_next

        def shown(v):
            if isinstance(v, torch.Tensor | np.ndarray):
                return f"<{type(v).__name__} of shape {tuple(v.shape)}>"
            text = repr(v)
            return text if len(text) <= 40 else text[:37] + "..."

        call = ", ".join([shown(a) for a in args] + [f"{k}={shown(v)}" for k, v in kwargs.items()])
        return (f"{getattr(fn, '__name__', 'function')}({call}) raised {type(exc).__name__}: "
                f"{str(exc)[:300]}{where}")"""


# Every explore cell begins with this check: widgets only where a Jupyter kernel can show them.
EXPLORE_GUARD = """\
def _jupyter_widgets():
    \"\"\"ipywidgets when this runs in a Jupyter kernel, else None (grading: nothing to show).\"\"\"
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return None
    return ipywidgets if getattr(get_ipython(), "kernel", None) is not None else None"""


# The test cells of exercises that rebuild a library function watch that the answer does not
# simply call it (ex2, ex3, ex7). Returns (result, "no call" or "calls F.x and torch.y").
WATCH_CALLS = """\
def _with_f_calls(fn, *args, watch=(), modules=None, **kwargs):
    \"\"\"(fn(*args, **kwargs), "calls <module>.<name>" for the watched functions it called,
    or "no call"): the functions this exercise rebuilds, watched while fn runs, whether
    called as F.<name> (torch.nn.functional.<name>) or as torch.<name>.\"\"\"
    called = set()
    modules = {"F": F, "torch": torch} if modules is None else modules
    originals = {(label, name): getattr(module, name) for label, module in modules.items()
                 for name in watch if hasattr(module, name)}

    def watched(label, original):
        def call(*f_args, **f_kwargs):
            called.add(label)
            return original(*f_args, **f_kwargs)
        return call

    for (label, name), original in originals.items():
        setattr(modules[label], name, watched(f"{label}.{name}", original))
    try:
        result = fn(*args, **kwargs)
    finally:
        for (label, name), original in originals.items():
            setattr(modules[label], name, original)
    return result, ("calls " + " and ".join(sorted(called)) if called else "no call")"""


# ex2, ex3 and ex5-ex8 also see the watched functions under any other name (`from
# torch.nn.functional import conv1d`, `torch.ops.aten.<name>`) and any function of tconv_lib
# however it was reached (a profile hook): before, such answers scored every point (MISTAKES
# M65-M72, M80-). A call into tconv_lib is named by its module and function. Where a task
# rebuilds a transposed convolution (a conv_transpose* name watched), a dispatcher-level mode
# also sees the operator however it was reached: aten.convolution(transposed=True) through
# torch.ops.aten, torch.convolution or torch._convolution, aten.slow_conv_transpose2d, and the
# input gradient of a forward convolution (aten.convolution_backward: autograd,
# torch.nn.grad), which is the transposed convolution (MISTAKES M97-M98), and JAX's
# (jax.lax.conv_transpose, or conv_general_dilated with an lhs_dilation: M107). A test cell can also
# name its own oracles (`oracles=`, e.g. ex5's _tf_reference): an answer that searches for the
# result by calling them is reported as "calls the test's _tf_reference" (MISTAKES M99-). It
# holds WATCH_CALLS, which it calls.
WATCH_ANY_NAME = WATCH_CALLS + "\n\n\n" + """\
def _with_own_calls(fn, *args, watch=(), modules=None, library=None, oracles=(), **kwargs):
    \"\"\"_with_f_calls, which also reports the watched functions called under another name
    (`from torch.nn.functional import conv1d`, torch.ops.aten.conv1d) and any call into the
    module `library` (tconv_lib, however imported, as "calls tconv_lib.<module>.<function>"): a
    profile hook sees every call while fn runs. With a conv_transpose* name in `watch`, any
    transposed convolution the answer runs (_transposed_operators; JAX's too) is reported, and so is
    a call of one of `oracles`, the test cell's own functions that compute the expected value
    (as "calls the test's <name>").\"\"\"
    import contextlib
    import os
    import sys

    modules = {"F": F, "torch": torch} if modules is None else modules
    labels = {}
    for label, module in modules.items():
        for name in watch:
            if hasattr(module, name):
                labels.setdefault(id(getattr(module, name)), f"{label}.{name}")
    for name in watch:  # the same operator as torch.ops.aten.<name> (packet or overload)
        packet = getattr(torch.ops.aten, name, None)
        for op in [] if packet is None else [packet] + [getattr(packet, o)
                                                        for o in packet.overloads()]:
            labels.setdefault(id(op._op), f"torch.ops.aten.{name}")
    folder = None if library is None else os.path.dirname(library.__file__) + os.sep

    def in_library(frame):
        return frame is not None and frame.f_code.co_filename.startswith(folder)

    seen = set()
    oracle_codes = {id(f.__code__): f"the test's {f.__name__}" for f in oracles}
    transposes = any(name.startswith("conv_transpose") for name in watch)

    def in_jax(frame):
        return frame is not None and f"{os.sep}jax{os.sep}" in frame.f_code.co_filename

    def jax_transposed(frame):  # where the answer entered JAX's transposed convolution
        name = frame.f_code.co_name
        if not in_jax(frame) or in_jax(frame.f_back):
            return None
        if name == "conv_transpose":
            return "jax.lax.conv_transpose"
        dilation = frame.f_locals.get("lhs_dilation") if name == "conv_general_dilated" else None
        if dilation is not None and any(d != 1 for d in dilation):
            return "jax.lax.conv_general_dilated(lhs_dilation=...)"
        return None

    def profile(frame, event, arg):
        if event == "c_call" and id(arg) in labels:
            seen.add(labels[id(arg)])
        elif event == "call" and id(frame.f_code) in oracle_codes:
            seen.add(oracle_codes[id(frame.f_code)])
        elif event == "call" and transposes and jax_transposed(frame):
            seen.add(jax_transposed(frame))
        elif event == "call" and folder and in_library(frame) and not in_library(frame.f_back):
            code = frame.f_code  # where the answer entered the library: module.function
            seen.add(f"{frame.f_globals.get('__name__', library.__name__)}."
                     f"{getattr(code, 'co_qualname', code.co_name)}")

    operators = set()
    transposed = _transposed_operators(operators) if transposes else None

    def profiled(*f_args, **f_kwargs):  # the hook sees fn only, not this watcher's own steps
        with transposed if transposed is not None else contextlib.nullcontext():
            previous = sys.getprofile()
            sys.setprofile(profile)
            try:
                return _called(fn, *f_args, **f_kwargs)  # an error: the cases report it
            finally:
                sys.setprofile(previous)

    result, called = _with_f_calls(profiled, *args, watch=watch, modules=modules, **kwargs)
    if called == "no call" and (seen or operators):  # a name the answer used, else the operator
        called = "calls " + " and ".join(sorted(seen or operators))
    elif oracle_codes and any(s.startswith("the test's ") for s in seen):  # the oracle first
        oracles_seen = sorted(s for s in seen if s.startswith("the test's "))
        called = "calls " + " and ".join(oracles_seen + [called.removeprefix("calls ")])
    return result, called


def _transposed_operators(found):
    \"\"\"A mode that adds to `found` every transposed convolution run under it, seen where
    PyTorch dispatches its operators, whatever name reached them: aten.convolution or
    aten._convolution with transposed=True, an operator named conv_transpose
    (aten.slow_conv_transpose2d), and aten.convolution_backward's input gradient of a forward
    convolution (autograd, torch.nn.grad), which is the transposed convolution.\"\"\"
    import sys

    from torch.utils._python_dispatch import TorchDispatchMode

    class _Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            schema = [a.name for a in func._schema.arguments]

            def arg(key):
                at = schema.index(key)
                return args[at] if len(args) > at else kwargs.get(key)

            if "conv" in name and "transpose" in name:
                found.add(f"aten.{name}")
            elif name == "convolution_backward":
                if arg("output_mask")[0] and not arg("transposed"):
                    found.add("aten.convolution_backward (an input gradient)")
            elif "transposed" in schema and arg("transposed"):
                found.add(f"aten.{name}(transposed=True)")
            previous = sys.getprofile()  # the operator itself is no call of the answer's
            sys.setprofile(None)
            try:
                return func(*args, **kwargs)
            finally:
                sys.setprofile(previous)

    return _Seen()"""


# A task whose function calls an earlier task's (ex1, ex3, ex6, ex7, ex8) is scored on its own
# function: where the result with the student's earlier function is wrong, its test cells run it
# once more with the test's reference in that function's place and record that run. One mistake
# costs the task it is in, not every task built on it (MISTAKES.md, "charged once"). Pasted into
# the setup cell of those exercises.
REFERENCE = """\
class _references_in_place:  # noqa: N801 - used like a function: with _references_in_place(...)
    \"\"\"Within the `with` block, each function named in `references` (your functions of the
    earlier tasks) is replaced by the test's reference one; yours are put back after it.\"\"\"

    def __init__(self, references):
        self.references, self.yours, self.missing = references, {}, object()

    def __enter__(self):
        namespace = globals()
        self.yours = {name: namespace.get(name, self.missing) for name in self.references}
        namespace.update(self.references)

    def __exit__(self, *exc_info):
        namespace = globals()
        for name, fn in self.yours.items():
            if fn is self.missing:
                namespace.pop(name, None)
            else:
                namespace[name] = fn


def _or_with_reference(call, expected, references):
    \"\"\"call(), which runs your function with your own functions of the earlier tasks, when
    its result matches `expected`; otherwise call() once more with each function named in
    `references` replaced, for that call only, by the test's reference one: this task's tests
    judge this task's function, and a mistake in an earlier task costs that task's points
    only, not these again.\"\"\"
    from grader.testing import to_plain, values_match

    own = call()
    try:
        if values_match(to_plain(own), to_plain(expected)):
            return own
    except Exception:  # noqa: BLE001 - an odd answer is simply no match
        pass
    with _references_in_place(references):
        return call()"""


# ex1's sizes are ints: a float (8.0 from a `/`) matched an int within the tolerance and scored
# every point (MISTAKES M101-M102). Pasted into each test cell that checks it.
SIZE_KIND = """\
def _size_kind(value):
    \"\"\"'int' for a whole-number type (int, a NumPy integer, a 0-d integer tensor), else its
    type and value, e.g. 'float (8.0)'.\"\"\"
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not (
            value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        return "int"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return "int"
    return f"{type(value).__name__} ({repr(value)[:40]})\""""


# Test cells that draw tensors in the default dtype set it again first: a student's cell that set
# float32 would otherwise change the inputs themselves (torch.randn draws other numbers), and
# grading, which compares with the solution's float64 records, would fail what check passed.
DTYPE_PIN = "torch.set_default_dtype(torch.float64)  # as in setup, whatever a cell above set"
DRAWS_TENSORS = re.compile(r"torch\.(randn|rand|ones)\(")

# Test cells that also run hidden tests say so in the release, right where the hidden block was.
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_NOTICE = "# At grading this cell also runs hidden tests (edge cases)."


# ex1's test cells: what an answer called of the references the tests compare with
OWN_CALLS = """\
def _own_calls(fn, *args, oracles=(), watch=(), **kwargs):
    \"\"\"\"no call", or what fn(*args, **kwargs) called of the references the tests compare
    with: tconv_lib (however imported), this cell's `oracles` and the torch functions named in
    `watch` (a transposed convolution however reached). An error it raises is the cases'
    business (the released stub's stops the cell).\"\"\"
    def run():
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception:  # noqa: BLE001 - the cases report it
            return None
    return _with_own_calls(run, watch=watch, library=tconv_lib, oracles=oracles)[1]"""


# ex2, ex3: whether a task's answer runs another task's function instead of its own route
RUNS = """\
def _runs(fn, other, *args, **kwargs):
    \"\"\"Whether fn(*args, **kwargs) runs the function `other` (a profile hook sees the call,
    under whatever name it was reached). An error fn raises is the cases' business (the
    released stub's stops the cell).\"\"\"
    import sys

    ran = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is getattr(other, "__code__", None):
            ran.append(True)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 - the cases report it
        pass
    finally:
        sys.setprofile(previous)
    return bool(ran)"""


def _src(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


class Book:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: list = []
        self._md = 0

    def md(self, text: str) -> None:
        self._md += 1
        self.cells.append(new_markdown_cell(_src(text), id=f"{self.name}-md{self._md}"))

    def _nbg(self, **kw) -> dict:
        return {"nbgrader": {"schema_version": 3, **kw}}

    def setup(self, extra: str = "") -> None:
        src = SETUP + ("\n" + _src(extra) if extra else "")
        self.cells.append(new_code_cell(src, id="setup", metadata=self._nbg(
            grade=False, solution=False, locked=True, grade_id="setup")))

    def given(self, grade_id: str, src: str) -> None:
        self.cells.append(new_code_cell(_src(src), id=grade_id, metadata=self._nbg(
            grade=False, solution=False, locked=True, grade_id=grade_id)))

    def solution(self, grade_id: str, src: str) -> None:
        self.cells.append(new_code_cell(_src(src), id=grade_id, metadata=self._nbg(
            grade=False, solution=True, locked=False, grade_id=grade_id)))

    def test(self, grade_id: str, points: int, src: str) -> None:
        """A graded test cell. When it holds hidden tests, a visible comment right before them
        says so (the release strips the hidden block, the comment stays). A cell that draws
        tensors in the default dtype starts with DTYPE_PIN (after its imports)."""
        src = _src(src)
        if DRAWS_TENSORS.search(src):
            lines = src.splitlines()
            at = next((i for i, line in enumerate(lines)  # after the imports (blank lines
                       if not line.startswith(("import ", "from "))  # between their groups too)
                       and not (not line and i + 1 < len(lines)
                                and lines[i + 1].startswith(("import ", "from ")))), len(lines))
            src = "\n".join(lines[:at] + [""] * (at > 0) + [DTYPE_PIN] + lines[at:])
        if HIDDEN_BEGIN in src:
            assert HIDDEN_NOTICE not in src, grade_id
            src = src.replace(HIDDEN_BEGIN, f"{HIDDEN_NOTICE}\n{HIDDEN_BEGIN}", 1)
        self.cells.append(new_code_cell(src, id=grade_id, metadata=self._nbg(
            grade=True, solution=False, locked=True, points=points, grade_id=grade_id)))

    def explore(self, cell_id: str, src: str) -> None:
        """An ungraded interactive cell (ipywidgets), tagged ``explore``. It starts with
        EXPLORE_GUARD's check, so outside a Jupyter kernel (grading, validate) it does nothing."""
        self.cells.append(new_code_cell(_src(src), id=cell_id, metadata={"tags": ["explore"]}))

    def manual(self, grade_id: str, points: int, answer: str) -> None:
        self.cells.append(new_markdown_cell(_src(answer), id=grade_id, metadata=self._nbg(
            grade=True, solution=True, locked=False, points=points, grade_id=grade_id,
            task=False)))

    def write(self) -> Path:
        nb = new_notebook(cells=self.cells, metadata={
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": "python3"},
            "language_info": {"name": "python"},
        })
        nbformat.validate(nb)
        path = HERE / self.name / f"{self.name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path


# ----------------------------------------------------------------------------------------------
def ex1_shapes() -> Book:
    b = Book("ex1_shapes")
    b.md("""
    # Exercise 1: output size and its inverse

    Book chapter: [Shapes, padding and `output_padding`](../../book/04_shapes_padding.md)
    (built page: [04_shapes_padding.html](../../_build/html/book/04_shapes_padding.html),
    after `make book`).

    A transposed convolution of an input of length $i$ with kernel size $k$, stride $s$,
    padding $p$, dilation $d$ and output padding $op$ has length

    $$o = (i-1)\\,s - 2p + d\\,(k-1) + op + 1 .$$

    Because a strided *forward* convolution floors, $s$ different lengths map to the same
    forward output; `output_padding` picks one of them on the way back. You will write the
    formula, the range of reachable sizes, and the `output_padding` that reaches a target.
    Use plain Python arithmetic (no `tconv_lib`, and no sizes measured on PyTorch's
    convolutions: the tests measure them to check yours).
    """)
    b.setup(REFERENCE)
    b.md("""
    ## Task 1 (3 points): the output size

    Implement the formula above for one axis. A size is a whole number: return an `int` (the
    formula needs no division; Python's `/` always gives a float, `16 / 2 == 8.0`).
    """)
    b.solution("output_size", '''
    def conv_transpose_output_size(i, k, stride=1, padding=0, output_padding=0, dilation=1):
        """Length of F.conv_transpose1d's output along one axis.

        o = (i - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
        """
        ### BEGIN SOLUTION
        return (i - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
        ### END SOLUTION
    ''')
    b.test("test_output_size", 2, "import tconv_lib\n\n\n" + WATCH_ANY_NAME + "\n\n\n"
           + SIZE_KIND + "\n\n\n" + OWN_CALLS + "\n\n\n" + _src('''
    def _torch_size(i, k, stride=1, padding=0, output_padding=0, dilation=1):
        """The oracle: ask PyTorch (a float64 transposed convolution of zeros)."""
        y = F.conv_transpose1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), stride=stride,
                               padding=padding, output_padding=output_padding, dilation=dilation)
        return y.shape[-1]

    cases = [dict(i=2, k=3, stride=2),
             dict(i=5, k=4, stride=2, padding=1),
             dict(i=4, k=3, stride=3, padding=1, output_padding=2),
             dict(i=6, k=3, stride=2, padding=2, output_padding=1, dilation=2)]
    kinds = []
    for n, case in enumerate(cases):
        size = _called(conv_transpose_output_size, **case)
        expect(f"size_{n}", size, _torch_size(**case),
               hint=f"for {case}: (i-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1")
        kinds += [] if isinstance(size, str) else [_size_kind(size)]  # a raise: size_n says it
    expect("size_is_int", next((kind for kind in kinds if kind != "int"), "int"), "int",
           hint="a size is a whole number: return an int. Python's / always gives a float "
                "(16 / 2 == 8.0); the formula needs no division (use // where one is needed)")

    expect("own_code", _own_calls(conv_transpose_output_size, 5, 4, stride=2, padding=1,
                                  oracles=(_torch_size,),
                                  watch=("conv_transpose1d", "conv_transpose2d",
                                         "conv_transpose3d")), "no call",
           hint="the formula, in plain Python arithmetic: PyTorch's transposed convolution (the "
                "length of its output, which this cell's _torch_size measures) and "
                "tconv_lib.shapes.conv_transpose_output_size are what the tests compare with, "
                "not part of the answer")
    '''))
    b.test("test_output_size_edges", 1, '''
    expect("stride_1", _called(conv_transpose_output_size, 5, 3), _torch_size(5, 3),
           hint="with stride 1 and no padding the output grows by k - 1")
    expect("output_padding_above_stride",
           _called(conv_transpose_output_size, 4, 2, stride=1, output_padding=2, dilation=3),
           _torch_size(4, 2, stride=1, output_padding=2, dilation=3),
           hint="stride 1, dilation 3, output_padding 2: F.conv_transpose1d "
                "accepts every output_padding below max(stride, dilation), not only below the "
                "stride, and the formula adds it whatever the stride")
    ### BEGIN HIDDEN TESTS
    expect("edge_0", _called(conv_transpose_output_size, 1, 1), _torch_size(1, 1), hint="i=1, k=1")
    expect("edge_1", _called(conv_transpose_output_size, 1, 4, stride=3),
           _torch_size(1, 4, stride=3),
           hint="one input element")
    expect("edge_2", _called(conv_transpose_output_size, 3, 3, dilation=3),
           _torch_size(3, 3, dilation=3), hint="dilation 3")
    expect("edge_3",
           _called(conv_transpose_output_size, 3, 3, stride=1, dilation=2, output_padding=1),
           _torch_size(3, 3, stride=1, dilation=2, output_padding=1),
           hint="output_padding below the dilation")
    expect("edge_4", _called(conv_transpose_output_size, 7, 5, 4, 2, 3), _torch_size(7, 5, 4, 2, 3),
           hint="stride 4, output_padding 3")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ### Explore (not graded)

    Drag the sliders: the first size comes from *your* `conv_transpose_output_size`, the second
    from PyTorch, then the formula term by term. Try an `output_padding` that is not smaller than
    the stride (or the dilation): PyTorch refuses it. The widget needs JupyterLab (or Notebook);
    elsewhere, and while grading, the cell does nothing.
    """)
    b.explore("explore_output_size", EXPLORE_GUARD + '''


def _explore_output_size(i=4, k=3, stride=2, padding=1, output_padding=1, dilation=1):
    try:
        yours = conv_transpose_output_size(i, k, stride, padding, output_padding, dilation)
    except NotImplementedError:
        yours = "(not implemented yet)"
    try:
        theirs = F.conv_transpose1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), stride=stride,
                                    padding=padding, output_padding=output_padding,
                                    dilation=dilation).shape[-1]
    except RuntimeError as exc:
        theirs = f"refused ({str(exc).splitlines()[0][:90]})"
    print(f"your size: {yours}    PyTorch: {theirs}")
    print(f"(i-1)*s = {(i - 1) * stride},  -2p = {-2 * padding},  d*(k-1) = {dilation * (k - 1)},"
          f"  op = {output_padding},  +1")


if (_widgets := _jupyter_widgets()) is not None:
    _widgets.interact(_explore_output_size, i=(1, 12), k=(1, 7), stride=(1, 4), padding=(0, 3),
                      output_padding=(0, 3), dilation=(1, 3))''')
    b.md("""
    ## Task 2 (2 points): which sizes can a transposed convolution produce?

    A transposed convolution should undo the *shape* of the forward convolution with the same
    `k, stride, padding, dilation`. Return `(low, high)`: the smallest and the largest output
    length $o$ whose forward convolution has length $i$ again. (They are the sizes reached with
    `output_padding = 0 .. stride-1`; you may assume `low >= 1`.) Both are sizes: two `int`s.
    As in Task 1, in plain Python arithmetic: not by measuring the output of PyTorch's
    convolutions (that is how the tests check you).

    Your Task 1 function may help. Where it does and a case's result is wrong, the case runs
    your `output_size_range` once more with a reference Task 1 in its place and judges that
    run, so a mistake in Task 1 costs Task 1's points only (likewise Task 3 with Tasks 1-2).
    """)
    b.solution("size_range", '''
    def output_size_range(i, k, stride=1, padding=0, dilation=1):
        """(low, high): every o in low..high satisfies conv_output_size(o) == i.

        low  = (i - 1) * stride - 2 * padding + dilation * (k - 1) + 1
        high = low + stride - 1
        """
        ### BEGIN SOLUTION
        low = (i - 1) * stride - 2 * padding + dilation * (k - 1) + 1
        return (low, low + stride - 1)
        ### END SOLUTION
    ''')
    b.test("test_size_range", 2, SIZE_KIND + "\n\n\n" + OWN_CALLS + "\n\n\n" + _src('''
    def _sizes_back_to(i, k, stride=1, padding=0, dilation=1):
        """The oracle: every length whose forward F.conv1d has length i."""
        reach = dilation * (k - 1) + 1
        candidates = range(1, (i + 1) * stride + reach)
        return [o for o in candidates if o + 2 * padding >= reach and F.conv1d(
            torch.zeros(1, 1, o), torch.zeros(1, 1, k), stride=stride, padding=padding,
            dilation=dilation).shape[-1] == i]


    def _reference_output_size(i, k, stride=1, padding=0, output_padding=0, dilation=1):
        """Task 1's formula, the test's: where your output_size_range is wrong with your
        conv_transpose_output_size, the case runs it once more with this one in its place
        (setup's _or_with_reference), so a mistake in Task 1 costs Task 1's points only."""
        return stride * (i - 1) + dilation * (k - 1) + output_padding + 1 - 2 * padding

    _TASK_1 = {"conv_transpose_output_size": _reference_output_size}
    # PyTorch's convolutions, forward and transposed, under any name and however reached: the
    # tests measure sizes with them, the answers compute them (Tasks 2 and 3, as Task 1)
    _CONVOLUTIONS = ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "conv1d",
                     "conv2d", "conv3d", "convolution")


    def _range_and_kind(**case):
        """(your output_size_range(**case), "int" or the kind of its first value that is not
        an int), with your Task 1 or else the test's."""
        def run():
            low_high = _called(output_size_range, **case)
            kinds = [_size_kind(v) for v in low_high] if isinstance(low_high, tuple | list) else []
            return low_high, next((kind for kind in kinds if kind != "int"), "int")
        sizes = _sizes_back_to(**case)
        return _or_with_reference(run, ((sizes[0], sizes[-1]), "int"), _TASK_1)

    cases = [dict(i=4, k=3, stride=2), dict(i=3, k=3, stride=1, padding=1),
             dict(i=5, k=4, stride=3, padding=1), dict(i=4, k=3, stride=2, dilation=2),
             dict(i=3, k=2, stride=1, dilation=3)]
    kinds = []
    for n, case in enumerate(cases):
        sizes = _sizes_back_to(**case)
        low_high, kind = _range_and_kind(**case)
        expect(f"range_{n}", low_high, (sizes[0], sizes[-1]),
               hint=f"for {case} the forward convolution maps exactly the lengths {sizes} to "
                    f"i={case['i']}; return (smallest, largest): there are `stride` of them, "
                    "whatever the dilation")
        kinds.append(kind)
    expect("range_is_ints", next((kind for kind in kinds if kind != "int"), "int"), "int",
           hint="low and high are sizes: return two ints. Python's / always gives a float "
                "(16 / 2 == 8.0): use // where a division is needed")

    expect("own_code", _or_with_reference(
               lambda: _own_calls(output_size_range, 4, 3, stride=2, oracles=(_sizes_back_to,),
                                  watch=_CONVOLUTIONS), "no call", _TASK_1), "no call",
           hint="low from the formula, high = low + stride - 1, in plain Python arithmetic (your "
                "Task 1 function may help): PyTorch's convolutions (the lengths of their outputs, "
                "which this cell's _sizes_back_to measures), _sizes_back_to itself and "
                "tconv_lib.shapes.output_size_range are what the tests compare with, not part of "
                "the answer")
    ### BEGIN HIDDEN TESTS
    def _first_and_last(**case):
        edge_sizes = _sizes_back_to(**case)
        return (edge_sizes[0], edge_sizes[-1])

    expect("range_edge_0", _range_and_kind(i=1, k=1)[0],
           _first_and_last(i=1, k=1), hint="i=1, k=1")
    expect("range_edge_1", _range_and_kind(i=1, k=2, stride=4)[0],
           _first_and_last(i=1, k=2, stride=4), hint="stride 4")
    expect("range_edge_2", _range_and_kind(i=6, k=5, stride=3, padding=2, dilation=2)[0],
           _first_and_last(i=6, k=5, stride=3, padding=2, dilation=2), hint="everything")
    expect("range_edge_3", _range_and_kind(i=2, k=3, stride=1, dilation=3)[0],
           _first_and_last(i=2, k=3, stride=1, dilation=3), hint="dilation above the stride")
    ### END HIDDEN TESTS
    '''))
    b.md("""
    ## Task 3 (4 points): the `output_padding` that reaches a target size

    Return the `output_padding` that makes the transposed convolution of length `i` produce
    exactly `target`. When `target` is outside the reachable range, raise a `ValueError` whose
    message names the target and the smallest and the largest reachable size (for `i=4, k=3,
    stride=2, padding=1` and target 9: 9, 7 and 8, as in `"target 9 is not in 7..8"`; a
    half-open `range(7, 9)` does not name 8).

    The reachable range is Task 2's: `output_padding` from 0 to `stride - 1`, the rule of
    `nn.ConvTranspose1d(...)(x, output_size=...)`, also when the dilation is larger than the
    stride. (`F.conv_transpose1d` then accepts `output_padding` up to `dilation - 1`, but those
    longer outputs no longer convolve back to length `i`.) In plain Python arithmetic, as Tasks 1
    and 2: not by trying `output_padding` values on PyTorch's transposed convolution (the tests
    do that to check your answer).
    """)
    b.solution("output_padding", '''
    def output_padding_for(i, target, k, stride=1, padding=0, dilation=1):
        """output_padding = target - ((i - 1) * stride - 2 * padding + dilation * (k - 1) + 1),
        valid only when it lies in 0 .. stride - 1 (otherwise raise ValueError)."""
        ### BEGIN SOLUTION
        smallest = (i - 1) * stride - 2 * padding + dilation * (k - 1) + 1
        if not smallest <= target < smallest + stride:
            raise ValueError(f"target size {target} is unreachable from input size {i} "
                             f"(k={k}, stride={stride}, padding={padding}, dilation={dilation}):"
                             f" reachable sizes are {smallest}..{smallest + stride - 1}")
        return target - smallest
        ### END SOLUTION
    ''')
    b.test("test_output_padding", 2, "from tconv_lib.shapes import output_padding_for as "
           "_reference_op\n\n\n" + OWN_CALLS + "\n\n\n" + _src('''
    def _reference_range(i, k, stride=1, padding=0, dilation=1):
        """Task 2's answer, the test's (as _reference_output_size is Task 1's)."""
        low = _reference_output_size(i, k, stride, padding, 0, dilation)
        return low, low + stride - 1

    # where the result with your Tasks 1-2 is wrong, the case runs once more with the test's
    # (setup's _or_with_reference): a mistake in Task 1 or 2 costs that task's points only
    _EARLIER = {**_TASK_1, "output_size_range": _reference_range}


    def _op_or_error(i, target, k, s, p, d):
        """Your output_padding_for, with your Tasks 1-2 or else the test's, or the text of the
        exception it raised (setup's _called: then the expect below names the case)."""
        return _or_with_reference(
            lambda: _called(output_padding_for, i, target, k, stride=s, padding=p, dilation=d),
            _reference_op(i, target, k, s, p, d), _EARLIER)


    def _raising(*args):
        """output_padding_for(*args) for a case that must raise ValueError: with your Tasks 1-2
        where that raises it, else with the test's in their place."""
        from grader.testing import raised_as

        if raised_as(ValueError, output_padding_for, *args) != "ValueError":
            with _references_in_place(_EARLIER):
                return output_padding_for(*args)
        return output_padding_for(*args)

    def _length_with(op, i, k, s, p, d):
        """The length F.conv_transpose1d gives with your output_padding, or why it refuses
        (so that at grading a wrong answer fails this case, not the whole cell)."""
        if isinstance(op, str):  # the text of a raise (setup's _called): op_n tells it
            return "none (output_padding_for raised)"
        try:
            return F.conv_transpose1d(torch.zeros(1, 1, i), torch.zeros(1, 1, k), stride=s,
                                      padding=p, output_padding=op, dilation=d).shape[-1]
        except Exception as exc:  # the refusal is the answer shown
            return f"{type(exc).__name__}: {str(exc)[:120]}"

    cases = [(4, 8, 3, 2, 1, 1), (4, 7, 3, 2, 1, 1), (5, 18, 4, 3, 0, 1), (3, 10, 3, 3, 1, 2)]
    for n, (i, target, k, s, p, d) in enumerate(cases):
        op = _op_or_error(i, target, k, s, p, d)
        expect(f"op_{n}", op, _reference_op(i, target, k, s, p, d),
               hint=f"i={i}, target={target}, k={k}, stride={s}, padding={p}, dilation={d}: "
                    "this target is reachable; output_padding is target minus the size "
                    "reached with output_padding=0 (the dilated kernel spans d*(k-1) + 1)")
        expect(f"torch_length_{n}", _length_with(op, i, k, s, p, d), target,
               hint="PyTorch, given your output_padding, should produce the target length")

    expect("own_code", _or_with_reference(
               lambda: _own_calls(output_padding_for, 4, 8, 3, stride=2, padding=1,
                                  oracles=(_length_with,), watch=_CONVOLUTIONS), "no call",
               _EARLIER), "no call",
           hint="target minus the smallest reachable size, in plain Python arithmetic (your "
                "Task 1 and 2 functions may help): tconv_lib.shapes.output_padding_for, "
                "PyTorch's convolutions (trying output_padding values on them, as this cell's "
                "_length_with does) and _length_with itself are what the tests compare with, not "
                "part of the answer")
    '''))
    b.test("test_output_padding_unreachable", 1, '''
    def _message_of(fn, *args):
        """The text of the ValueError that fn(*args) raises ('' if it raises another one or
        none). The released stub's NotImplementedError stops the cell, as in every test cell."""
        try:
            fn(*args)
        except ValueError as err:
            return str(err)
        except NotImplementedError:
            raise
        except Exception:  # another exception: expect_raises below names it
            return ""
        return ""

    message = _message_of(output_padding_for, 4, 9, 3, 2, 1)
    if not all(v in message for v in ("9", "7", "8")):  # with the test's Tasks 1-2 (_EARLIER)
        with _references_in_place(_EARLIER):
            message = _message_of(output_padding_for, 4, 9, 3, 2, 1)
    expect_raises("too_large", ValueError, _raising, 4, 9, 3, 2, 1,
                  hint="from i=4 (k=3, stride=2, padding=1) only 7 and 8 are reachable")
    expect_raises("too_small", ValueError, _raising, 4, 6, 3, 2, 1,
                  hint="from i=4 (k=3, stride=2, padding=1) only 7 and 8 are reachable")
    expect("message_names_values", all(v in message for v in ("9", "7", "8")), True,
           hint=f"the message should name the target 9 and the smallest and largest reachable "
                f"sizes, 7 and 8 (a half-open range(7, 9) does not name 8); it was {message!r}")
    ''')
    b.test("test_output_padding_edges", 1, '''
    expect("stride_1", _op_or_error(5, 7, 3, 1, 0, 1), _reference_op(5, 7, 3),
           hint="with stride 1 exactly one size is reachable, with output_padding 0")
    expect_raises("dilation_3_stride_1", ValueError, _raising, 3, 7, 2, 1, 0, 3,
                  hint="i=3, k=2, stride=1, dilation=3: only 6 is reachable. F.conv_transpose1d "
                       "accepts output_padding 1 here (it is below the dilation), but a length "
                       "7 no longer convolves back to 3: the bound is the stride alone")
    ### BEGIN HIDDEN TESTS
    expect("size_1", _op_or_error(1, 1, 1, 1, 0, 1), _reference_op(1, 1, 1),
           hint="i=1, k=1: the only size is 1")
    expect("stride_4", _op_or_error(2, 6, 2, 4, 1, 1),
           _reference_op(2, 6, 2, 4, 1), hint="stride 4: output_padding can be up to 3")
    expect_raises("stride_1_unreachable", ValueError, _raising, 5, 8, 3,
                  hint="with stride 1 only one size is reachable")
    expect_raises("one_past_high", ValueError, _raising, 2, 8, 2, 4, 1,
                  hint="output_padding must be smaller than the stride")
    expect_raises("dilation_above_stride", ValueError, _raising, 2, 9, 3, 1, 0, 3,
                  hint="dilation 3 > stride 1: still only output_padding 0 maps back to i")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    A stride-2 convolution with `k=3, padding=1` maps inputs of length 7 **and** 8 to length 4.
    Explain, in two or three sentences, why a transposed convolution cannot know which one you
    want, and what `output_padding` does about it. Is `output_padding` zero padding?
    """)
    b.manual("why_output_padding", 2, """
    The forward size is floor((i + 2p - k)/s) + 1, so the floor discards the remainder
    (i + 2p - k) mod s: 7 and 8 both give 4, and the transposed convolution, which only sees
    the length 4, cannot recover the discarded remainder. `output_padding` supplies it: it adds
    that many positions at the far end of each axis (0 gives 7, 1 gives 8). It is not zero
    padding: the added positions hold computed values (the kernel copies reach them, and the
    bias is added), it only changes how much of the full output is kept.
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex2_scatter() -> Book:
    b = Book("ex2_scatter")
    b.md("""
    # Exercise 2: the scatter view and the zero-insertion view

    Book chapter: [Three views of one operation](../../book/02_three_views.md)
    (built page: [02_three_views.html](../../_build/html/book/02_three_views.html),
    after `make book`).

    **Scatter:** every input element paints a scaled copy of the kernel onto the output, the
    copies `stride` apart; then `padding` positions are **cropped** from each side of that
    full output. **Zero insertion:** put `stride - 1` zeros between input elements, pad with
    `k - 1 - padding` zeros on each side and slide the **flipped** kernel over it.

    Write both with NumPy loops or slicing (no `torch.nn.functional`, no `tconv_lib`). The tests
    compare with `torch.nn.functional.conv_transpose1d/2d` in float64.
    """)
    b.setup()
    b.md("""
    ## Task 1 (3 points): 1-D scatter

    `x` has shape `(L,)`, `w` shape `(k,)`. Output length: `(L-1)*stride + k - 2*padding`.
    """)
    b.solution("scatter_1d", '''
    def scatter_1d(x, w, stride=1, padding=0):
        """y_full[j*stride + t] += x[j] * w[t] for all j, t; return y_full[padding:len-padding]."""
        ### BEGIN SOLUTION
        x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
        k = len(w)
        full = np.zeros((len(x) - 1) * stride + k)
        for j, v in enumerate(x):
            full[j * stride: j * stride + k] += v * w
        return full[padding: len(full) - padding]
        ### END SOLUTION
    ''')
    b.test("test_scatter_1d", 2, "import tconv_lib\n\n\n" + WATCH_ANY_NAME
           + "\n\n\n" + _src('''
    # the oracles, under any name, and the library that has the answers: not part of them
    _OWN = dict(watch=("conv_transpose1d", "conv_transpose2d", "conv1d", "conv2d", "convolution"),
                library=tconv_lib)


    def _torch_1d(x, w, stride=1, padding=0):
        x, w = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64)
        return F.conv_transpose1d(x[None, None], w[None, None], stride=stride,
                                  padding=padding)[0, 0].numpy()

    expect("seed", _called(scatter_1d, np.array([2., 3.]), np.array([1., 2., 3.]), stride=2),
           _torch_1d([2., 3.], [1., 2., 3.], stride=2),
           hint="2*[1,2,3] at position 0 plus 3*[1,2,3] at position 2 gives [2, 4, 9, 6, 9]: "
                "the copies overlap at 2")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(5), rng.standard_normal(4)
    x_before, w_before = x.copy(), w.copy()  # the expected values come from these
    got, f_calls = _with_own_calls(scatter_1d, x, w, stride=3, padding=1, **_OWN)
    expect("inputs_unchanged",
           bool(np.array_equal(x, x_before) and np.array_equal(w, w_before)), True,
           hint="scatter_1d changed the caller's x or w in place (e.g. w[:] = w[::-1], "
                "x *= ...); the scatter only reads x and w: write into a new output array")
    expect("stride3_padding1", got, _torch_1d(x_before, w_before, 3, 1),
           hint="paint every copy on the full output first, then crop `padding` from each side")
    expect("own_code", f_calls, "no call",
           hint="write the scatter with NumPy: F.conv_transpose1d (under any name) is what the "
                "tests compare with, and tconv_lib has the scatter ready-made: neither is part of "
                "the answer")
    '''))
    b.test("test_scatter_1d_edges", 1, '''
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(4), rng.standard_normal(3)
    # your function gets copies: an answer that changes its inputs fails its own cases (and
    # test_scatter_1d's inputs_unchanged), not the expected values computed after it
    expect("stride_1", _called(scatter_1d, x.copy(), w.copy()),
           _torch_1d(x, w), hint="stride 1: copies one apart")
    ### BEGIN HIDDEN TESTS
    expect("length_1", _called(scatter_1d, x[:1].copy(), w.copy(), stride=2),
           _torch_1d(x[:1], w, 2), hint="one input element paints one copy of the kernel")
    expect("gaps", _called(scatter_1d, x.copy(), w[:2].copy(), stride=4), _torch_1d(x, w[:2], 4),
           hint="stride larger than the kernel leaves zeros between the copies")
    w5 = rng.standard_normal(5)
    expect("big_padding", _called(scatter_1d, x.copy(), w5.copy(), stride=2, padding=3),
           _torch_1d(x, w5, 2, 3), hint="padding crops from both sides of the full output")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (5 points): 2-D, several channels

    `x` has shape `(C_in, H, W)`; `w` has PyTorch's **transposed** layout
    `(C_in, C_out, kH, kW)` (not the convolution layout `(C_out, C_in, kH, kW)`). `stride`,
    `padding`, `output_padding` are pairs `(along H, along W)`. `output_padding` adds positions
    at the far end (bottom/right) of the output: they belong to the full canvas, they are not
    zeros appended afterwards. Return shape `(C_out, H_out, W_out)` with
    `H_out = (H-1)*sH - 2*pH + kH + opH` (same for W).
    """)
    b.solution("scatter_2d", '''
    def scatter_2d(x, w, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)):
        """y_full[co, i*sH + a, j*sW + b] += sum_ci x[ci, i, j] * w[ci, co, a, b];
        canvas of (H-1)*sH + kH + opH rows (same for columns), then crop padding on each side."""
        ### BEGIN SOLUTION
        x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
        c_in, h, wd = x.shape
        _, c_out, kh, kw = w.shape
        (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
        full = np.zeros((c_out, (h - 1) * sh + kh + oh, (wd - 1) * sw + kw + ow))
        for i in range(h):
            for j in range(wd):
                # (C_in,) . (C_in, C_out, kH, kW) -> (C_out, kH, kW)
                full[:, i * sh: i * sh + kh, j * sw: j * sw + kw] += np.tensordot(
                    x[:, i, j], w, axes=1)
        return full[:, ph: full.shape[1] - ph, pw: full.shape[2] - pw]
        ### END SOLUTION
    ''')
    b.test("test_scatter_2d_single", 1, '''
    def _torch_2d(x, w, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)):
        x, w = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64)
        return F.conv_transpose2d(x[None], w, stride=stride, padding=padding,
                                  output_padding=output_padding)[0].numpy()

    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 3, 3)), rng.standard_normal((1, 1, 2, 3))
    # your function gets copies: one that changes its inputs fails its own cases (and
    # test_scatter_2d_channels' inputs_unchanged), not the expected values computed after it
    expect("one_channel", _called(scatter_2d, x.copy(), w.copy(), stride=(2, 2)),
           _torch_2d(x, w, (2, 2)),
           hint="one channel, no padding: paint x[0, i, j] * w[0, 0] at (i*sH, j*sW), the "
                "kernel as it is (scatter never flips it)")
    ''')
    b.test("test_scatter_2d_channels", 2, '''
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3, 3, 3))
    x_before, w_before = x.copy(), w.copy()  # the expected values come from these
    got, f_calls = _with_own_calls(scatter_2d, x, w, stride=(2, 2), padding=(1, 1), **_OWN)
    expect("inputs_unchanged",
           bool(np.array_equal(x, x_before) and np.array_equal(w, w_before)), True,
           hint="scatter_2d changed the caller's x or w in place (e.g. w[...] = w[..., ::-1, "
                "::-1], flipping the kernel, which the scatter never does); it only reads x and "
                "w: write into a new output array")
    x, w = x_before, w_before
    expect("channels_stride2_padding1", got, _torch_2d(x, w, (2, 2), (1, 1)),
           hint="w is (C_in, C_out, kH, kW): output channel co sums x[ci] * w[ci, co] over ci; "
                "crop `padding` rows/columns from each side of the full canvas")
    expect("channels_output_padding",
           _called(scatter_2d, x.copy(), w.copy(), stride=(3, 2), padding=(1, 0),
                   output_padding=(2, 1)),
           _torch_2d(x, w, (3, 2), (1, 0), (2, 1)),
           hint="output_padding (2, 1) adds 2 rows at the bottom and 1 column at the right of the "
                "full canvas before the crop: kernel copies reach into them (not zeros added "
                "afterwards)")
    expect("own_code", f_calls, "no call",
           hint="write the scatter with NumPy: F.conv_transpose2d (under any name) is what the "
                "tests compare with, and tconv_lib has the scatter ready-made: neither is part of "
                "the answer")
    ''')
    b.test("test_scatter_2d_edges", 2, '''
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 2, 3))
    expect("non_square", _called(scatter_2d, x.copy(), w.copy(), stride=(2, 3), padding=(1, 0)),
           _torch_2d(x, w, (2, 3), (1, 0)),
           hint="different stride, padding and kernel size along H and W")
    ### BEGIN HIDDEN TESTS
    expect("output_padding", _called(scatter_2d, x.copy(), w.copy(), stride=(2, 3),
                                     padding=(1, 1), output_padding=(1, 2)),
           _torch_2d(x, w, (2, 3), (1, 1), (1, 2)),
           hint="output_padding extends the canvas at the bottom/right before cropping")
    expect("stride_1", _called(scatter_2d, x.copy(), w.copy()), _torch_2d(x, w),
           hint="stride 1, no padding: copies one apart, nothing cropped")
    x1 = rng.standard_normal((3, 1, 1))
    expect("one_pixel", _called(scatter_2d, x1.copy(), w.copy(), stride=(2, 2)),
           _torch_2d(x1, w, (2, 2)),
           hint="a 1x1 input paints one copy of each kernel")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (3 points): 1-D zero insertion

    Same result as `scatter_1d`, computed the other way: insert `stride - 1` zeros between the
    input elements, pad `k - 1 - padding` zeros on both sides (you may assume
    `padding <= k - 1`), then take sliding dot products (a correlation, like `np.correlate`)
    with the **flipped** kernel.
    """)
    b.solution("zero_insert_1d", '''
    def zero_insert_1d(x, w, stride=1, padding=0):
        """z = x with stride-1 zeros between elements; z padded by k-1-padding on both sides;
        y[o] = sum_t z[o + t] * w[k - 1 - t]."""
        ### BEGIN SOLUTION
        x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
        k = len(w)
        z = np.zeros((len(x) - 1) * stride + 1)
        z[::stride] = x
        z = np.pad(z, k - 1 - padding)
        return np.correlate(z, w[::-1], mode="valid")
        ### END SOLUTION
    ''')
    b.test("test_zero_insert", 2, RUNS + "\n\n\n" + _src('''
    expect("seed", _called(zero_insert_1d, np.array([2., 3.]), np.array([1., 2., 3.]), stride=2),
           _torch_1d([2., 3.], [1., 2., 3.], stride=2),
           hint="[2, 0, 3] padded by 2 zeros, correlated with the flipped kernel [3, 2, 1], "
                "gives [2, 4, 9, 6, 9]")
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(5), rng.standard_normal(4)
    x_before, w_before = x.copy(), w.copy()
    got, f_calls = _with_own_calls(zero_insert_1d, x, w, stride=2, padding=1, **_OWN)
    expect("inputs_unchanged",
           bool(np.array_equal(x, x_before) and np.array_equal(w, w_before)), True,
           hint="zero_insert_1d changed the caller's x or w in place (e.g. w[:] = w[::-1]); "
                "build new arrays instead: w[::-1] reads w backwards without changing it")
    expect("stride2_padding1", got, _torch_1d(x_before, w_before, 2, 1),
           hint="pad with k-1-padding zeros, and flip the kernel before sliding it")
    expect("own_code", f_calls, "no call",
           hint="slide the flipped kernel with NumPy (np.correlate or a loop), not with "
                "F.conv1d or F.conv_transpose1d (under any name) or tconv_lib's zero insertion")
    expect("not_scatter", "calls scatter_1d" if _runs(zero_insert_1d, scatter_1d, x_before.copy(),
                                                      w_before.copy(), 2, 1) else "no call",
           "no call",
           hint="zero_insert_1d runs your scatter_1d: this task computes the same result the "
                "other way, by zero insertion (stride - 1 zeros between the elements, "
                "k - 1 - padding zeros on each side, then the flipped kernel slid along)")
    '''))
    b.test("test_zero_insert_edges", 1, '''
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal(4), rng.standard_normal(3)
    want = _torch_1d(x, w)  # before your function sees x and w
    expect("stride_1", _called(zero_insert_1d, x, w), want,
           hint="stride 1: no zeros inserted, full padding k-1, flipped kernel")
    want = _torch_1d(x, w, 3)
    expect("stride_3_no_padding", _called(zero_insert_1d, x, w, stride=3), want,
           hint="stride 3: two zeros (stride - 1) between the input elements, not one")
    ### BEGIN HIDDEN TESTS
    expect("length_1", _called(zero_insert_1d, x[:1], w, stride=3), _torch_1d(x[:1], w, 3),
           hint="one input element: the output is x[0] times the kernel")
    expect("max_padding", _called(zero_insert_1d, x, w, stride=2, padding=2), _torch_1d(x, w, 2, 2),
           hint="padding = k - 1: the dilated input is not padded at all")
    expect("stride_3", _called(zero_insert_1d, x, w, stride=3, padding=1), _torch_1d(x, w, 3, 1),
           hint="two zeros between the input elements")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    For stride $s$, kernel size $k$ and an input of length $L$ (1-D, one channel, no padding),
    count the multiplications done by the scatter view and by the zero-insertion view. Which
    fraction of the zero-insertion multiplications involve an inserted zero, for large $L$?
    """)
    b.manual("count_multiplications", 2, """
    Scatter: every input element multiplies the whole kernel once, L*k multiplications.
    Zero insertion: the output has (L-1)s + k positions and each is a dot product of length k,
    about L*s*k multiplications. Only one in s of the dilated positions holds an input value, so
    for large L a fraction (s-1)/s of them multiplies an inserted zero (1/2 for s=2): zero
    insertion does about s times the necessary work, which the phase (sub-pixel) method avoids.
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex3_matrix() -> Book:
    b = Book("ex3_matrix")
    b.md("""
    # Exercise 3: the convolution matrix

    Book chapter: [The convolution as a matrix](../../book/01_matrix.md)
    (built page: [01_matrix.html](../../_build/html/book/01_matrix.html),
    after `make book`).

    A convolution is linear, so on one sample it is a matrix: `y.flatten() = C @ x.flatten()`.
    Its transpose `C.T` maps output-sized vectors back to input-sized ones: **that is** the
    transposed convolution. Build `C` yourself with NumPy (dense is fine for these sizes; no
    `tconv_lib`, no `torch`), then use `C.T` to compute a transposed convolution.

    PyTorch's "convolution" is a cross-correlation: `y[o] = sum_t x[o*stride - padding + t] * w[t]`
    (positions outside the input are zero).
    """)
    b.setup(REFERENCE)
    b.md("""
    ## Task 1 (3 points): `C` of a 1-D convolution

    `w` has shape `(k,)` (one channel), the input has length `n`. Return the dense matrix of
    shape `(o, n)` with `o = (n + 2*padding - k) // stride + 1`.
    """)
    b.solution("matrix_1d", '''
    def conv_matrix_1d(w, n, stride=1, padding=0):
        """C[r, r*stride - padding + t] = w[t] wherever 0 <= r*stride - padding + t < n."""
        ### BEGIN SOLUTION
        w = np.asarray(w, dtype=float)
        k = len(w)
        o = (n + 2 * padding - k) // stride + 1
        c = np.zeros((o, n))
        for r in range(o):
            for t in range(k):
                col = r * stride - padding + t
                if 0 <= col < n:
                    c[r, col] = w[t]
        return c
        ### END SOLUTION
    ''')
    b.test("test_matrix_1d", 2, "import tconv_lib\n\n\n" + WATCH_ANY_NAME
           + "\n\n\n" + _src('''
    # what the tests compare with, not part of the answers (under any name; all of tconv_lib)
    _LIBRARY = dict(watch=("conv_matrix", "conv_transpose", "conv1d", "conv2d",
                           "conv_transpose1d", "conv_transpose2d", "convolution"),
                    modules={"F": F, "torch": torch, "tconv_lib": tconv_lib}, library=tconv_lib)

    rng = np.random.default_rng(0)
    w, x = rng.standard_normal(3), rng.standard_normal(7)
    w_before = w.copy()  # the expected values come from this
    c, f_calls = _with_own_calls(conv_matrix_1d, w, 7, stride=2, padding=1, **_LIBRARY)
    expect("inputs_unchanged", bool(np.array_equal(w, w_before)), True,
           hint="conv_matrix_1d changed the caller's w in place (e.g. w[:] = w[::-1]: PyTorch's "
                "convolution does not flip the kernel, and C only reads it); build C from w as "
                "it is")
    w = w_before
    expect("matrix_s2_p1", c, tconv_lib.conv_matrix(w[None, None], 7, 2, 1).toarray(),
           hint="row r holds the kernel starting at column r*stride - padding "
                "(taps that fall in the padding are dropped)")
    expect("own_code", f_calls, "no call",
           hint="build C with NumPy; tconv_lib.conv_matrix (under any name) is what the "
                "tests compare with")
    try:  # a C of the wrong shape fails this case, not the whole cell
        c_times_x = np.asarray(c) @ x  # an np.matrix C would give a (1, o) matrix
    except Exception as exc:  # the error is the answer shown
        c_times_x = f"{type(exc).__name__}: {exc}"
    expect("applies_conv", c_times_x,
           F.conv1d(torch.tensor(x)[None, None], torch.tensor(w)[None, None], stride=2,
                    padding=1)[0, 0].numpy(),
           hint="C @ x must equal F.conv1d(x, w, stride=2, padding=1)")
    '''))
    b.test("test_matrix_1d_edges", 1, '''
    rng = np.random.default_rng(101)  # this cell's own inputs, whatever ran before
    w = np.random.default_rng(0).standard_normal(3)  # test_matrix_1d's w, made again
    # your function gets copies: one that changes w in place fails its own cases (and
    # test_matrix_1d's inputs_unchanged), not the expected values computed after it
    expect("stride_1", _called(conv_matrix_1d, w.copy(), 5),
           tconv_lib.conv_matrix(w[None, None], 5).toarray(),
           hint="stride 1: a banded (Toeplitz) matrix of n - k + 1 rows")
    expect("size_floors", _called(conv_matrix_1d, w.copy(), 8, stride=2, padding=1),
           tconv_lib.conv_matrix(w[None, None], 8, 2, 1).toarray(),
           hint="n=8, k=3, stride=2, padding=1: (8 + 2 - 3) / 2 = 3.5 and the convolution "
                "floors, o = (n + 2*padding - k) // stride + 1 = 4 rows (not 5)")
    ### BEGIN HIDDEN TESTS
    expect("one_row", _called(conv_matrix_1d, w.copy(), 3, stride=2),
           tconv_lib.conv_matrix(w[None, None], 3, 2).toarray(),
           hint="n = k gives a single row")
    expect("padding_2", _called(conv_matrix_1d, w.copy(), 4, padding=2),
           tconv_lib.conv_matrix(w[None, None], 4, 1, 2).toarray(),
           hint="with padding k-1 the first and last rows hold a single tap")
    w4 = rng.standard_normal(4)
    expect("stride_3", _called(conv_matrix_1d, w4.copy(), 11, stride=3, padding=1),
           tconv_lib.conv_matrix(w4[None, None], 11, 3, 1).toarray(),
           hint="stride 3: consecutive rows shift by 3 columns")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (3 points): `C` of a 2-D multi-channel convolution

    `w` has the **convolution** layout `(C_out, C_in, kH, kW)`; the input is `(C_in, H, W)`.
    Flatten both input and output in row-major (C order) `(channel, row, column)`, so `C` has
    shape `(C_out*H_out*W_out, C_in*H*W)`.
    """)
    b.solution("matrix_2d", '''
    def conv_matrix_2d(w, in_size, stride=(1, 1), padding=(0, 0)):
        """C[(co, r, c), (ci, r*sH - pH + a, c*sW - pW + b)] = w[co, ci, a, b]."""
        ### BEGIN SOLUTION
        w = np.asarray(w, dtype=float)
        c_out, c_in, kh, kw = w.shape
        (h, wd), (sh, sw), (ph, pw) = in_size, stride, padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
        c = np.zeros((c_out, ho, wo, c_in, h, wd))
        for r in range(ho):
            for q in range(wo):
                for a in range(kh):
                    for b_ in range(kw):
                        i, j = r * sh - ph + a, q * sw - pw + b_
                        if 0 <= i < h and 0 <= j < wd:
                            c[:, r, q, :, i, j] = w[:, :, a, b_]
        return c.reshape(c_out * ho * wo, c_in * h * wd)
        ### END SOLUTION
    ''')
    b.test("test_matrix_2d", 2, '''
    rng = np.random.default_rng(1)
    w2 = rng.standard_normal((2, 3, 2, 3))
    w2_before = w2.copy()  # the expected values come from this
    c2, f_calls = _with_own_calls(conv_matrix_2d, w2, (5, 5), stride=(2, 1), padding=(1, 0),
                                  **_LIBRARY)
    expect("inputs_unchanged", bool(np.array_equal(w2, w2_before)), True,
           hint="conv_matrix_2d changed the caller's w in place (e.g. w[...] = w[..., ::-1, "
                "::-1]: PyTorch's convolution does not flip the kernel, and C only reads it); "
                "build C from w as it is")
    w2 = w2_before
    expect("matrix_2d", c2, tconv_lib.conv_matrix(w2, (5, 5), (2, 1), (1, 0)).toarray(),
           hint="rows are (c_out, row, col) and columns (c_in, row, col), both row-major; "
                "w is (C_out, C_in, kH, kW); H_out = (5 + 2 - 2) // 2 + 1 = 3 (floored)")
    expect("own_code", f_calls, "no call",
           hint="build C with NumPy; tconv_lib.conv_matrix (under any name) is what the "
                "tests compare with")
    ''')
    b.test("test_matrix_2d_edges", 1, '''
    rng = np.random.default_rng(102)  # this cell's own inputs, whatever ran before
    w2 = np.random.default_rng(1).standard_normal((2, 3, 2, 3))  # test_matrix_2d's, again
    w1 = rng.standard_normal((1, 1, 3, 3))
    # your function gets copies: one that changes w in place fails its own cases (and
    # test_matrix_2d's inputs_unchanged), not the expected values computed after it
    expect("one_channel", _called(conv_matrix_2d, w1.copy(), (3, 4)),
           tconv_lib.conv_matrix(w1, (3, 4)).toarray(),
           hint="one channel, stride 1, a 3x4 input: H and W (and H_out, W_out) each from "
                "in_size and the kernel's own sizes, not one for both")
    ### BEGIN HIDDEN TESTS
    w11 = rng.standard_normal((3, 2, 1, 1))
    expect("kernel_1x1", _called(conv_matrix_2d, w11.copy(), (2, 3)),
           tconv_lib.conv_matrix(w11, (2, 3)).toarray(),
           hint="a 1x1 kernel only mixes channels")
    expect("single_row_input", _called(conv_matrix_2d, w2.copy(), (2, 6), stride=(1, 2),
                                       padding=(0, 1)),
           tconv_lib.conv_matrix(w2, (2, 6), (1, 2), (0, 1)).toarray(),
           hint="non-square input, stride and padding")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (3 points): the transposed convolution is `C.T`

    Compute `F.conv_transpose2d(x, w, stride, padding)` for one sample `x` of shape
    `(C_in, H, W)` and `w` in the **transposed** layout `(C_in, C_out, kH, kW)`, using only your
    `conv_matrix_2d` and a matrix-vector product. Hint: which forward convolution maps an input
    of the transposed convolution's *output* size back to `(C_in, H, W)`, and what is its
    weight in the convolution layout?

    The tests call your `conv_transpose_via_matrix` with your `conv_matrix_2d`; where that
    result is wrong, they call it once more with a reference `C` builder in its place and judge
    that run, so a mistake in Task 2 costs Task 2's points only.
    """)
    b.solution("via_matrix", '''
    def conv_transpose_via_matrix(x, w, stride=(1, 1), padding=(0, 0)):
        """y = C.T @ x.flatten(), C the matrix of conv(., w) on the transposed output size
        H_out = (H-1)*sH - 2*pH + kH; reshape to (C_out, H_out, W_out)."""
        ### BEGIN SOLUTION
        x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
        _, h, wd = x.shape
        _, c_out, kh, kw = w.shape
        (sh, sw), (ph, pw) = stride, padding
        ho, wo = (h - 1) * sh - 2 * ph + kh, (wd - 1) * sw - 2 * pw + kw
        # (C_in, C_out, kH, kW) read as a conv weight is a conv from C_out to C_in channels
        c = conv_matrix_2d(w, (ho, wo), stride, padding)
        return (c.T @ x.reshape(-1)).reshape(c_out, ho, wo)
        ### END SOLUTION
    ''')
    b.test("test_via_matrix_single", 1, '''
    rng = np.random.default_rng(103)  # this cell's own inputs, whatever ran before
    def _torch_t2d(x, w, stride=(1, 1), padding=(0, 0)):
        return F.conv_transpose2d(torch.tensor(x)[None], torch.tensor(w), stride=stride,
                                  padding=padding)[0].numpy()


    def _reference_conv_matrix_2d(w, in_size, stride=(1, 1), padding=(0, 0)):
        """The test's C, column by column: the convolution of each unit input (NumPy)."""
        w = np.asarray(w, dtype=float)
        (h, wd), (sh, sw), (ph, pw) = in_size, stride, padding
        n = w.shape[1] * h * wd
        units = np.pad(np.eye(n).reshape(n, w.shape[1], h, wd),
                       ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        windows = np.lib.stride_tricks.sliding_window_view(units, w.shape[2:], axis=(2, 3))
        outputs = np.einsum("ncyxab,ocab->noyx", windows[:, :, ::sh, ::sw], w)
        return outputs.reshape(n, -1).T


    # where the result with your conv_matrix_2d is wrong, the case runs once more with the
    # test's C (setup's _or_with_reference): a mistake in Task 2 costs Task 2's points only
    _REFERENCES = {"conv_matrix_2d": _reference_conv_matrix_2d}


    def _via_matrix(x, w, *args, **kwargs):
        """Your conv_transpose_via_matrix(x, w, ...), with your conv_matrix_2d or the test's,
        each run on its own copies of x and w (a conv_matrix_2d that changes w in place costs
        Task 2's points, not this run's)."""
        return _or_with_reference(
            lambda: _called(conv_transpose_via_matrix, x.copy(), w.copy(), *args, **kwargs),
            _torch_t2d(x, w, *args, **kwargs), _REFERENCES)


    x1, wt1 = rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 1, 3, 3))
    want = _torch_t2d(x1, wt1, (2, 2))  # before your function sees x1 and wt1
    expect("one_channel", _via_matrix(x1, wt1, stride=(2, 2)), want,
           hint="C of the stride-2 convolution on the 5x5 output size, then C.T @ x")
    x2, wt2 = rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 1, 2, 2))
    want = _torch_t2d(x2, wt2, (3, 3))  # before your function sees x2 and wt2
    expect("kernel_below_stride", _via_matrix(x2, wt2, stride=(3, 3)), want,
           hint="kernel 2x2, stride 3: the copies leave gaps, and the output is "
                "(H-1)*sH - 2*pH + kH = 5 by (W-1)*sW - 2*pW + kW = 8, not H*sH by W*sW "
                "(Keras' H*s + max(k - s, 0) is another convention)")
    ''')
    b.test("test_via_matrix_channels", 2, RUNS + "\n\n\n" + _src('''
    rng = np.random.default_rng(104)  # this cell's own inputs, whatever ran before
    x3, wt3 = rng.standard_normal((3, 3, 2)), rng.standard_normal((3, 2, 3, 2))
    x3_before, wt3_before = x3.copy(), wt3.copy()
    _inputs_of_runs = []  # each run's own x and w: the recorded run's say whether it changed them


    def _channels_run():
        x_run, w_run = x3_before.copy(), wt3_before.copy()
        _inputs_of_runs.append((x_run, w_run))
        return _with_own_calls(conv_transpose_via_matrix, x_run, w_run, stride=(2, 2),
                               padding=(1, 0), **_LIBRARY)

    got, f_calls = _or_with_reference(_channels_run,
                                      (_torch_t2d(x3, wt3, (2, 2), (1, 0)), "no call"),
                                      _REFERENCES)
    x3, wt3 = _inputs_of_runs[-1]
    expect("inputs_unchanged", bool(x3.shape == x3_before.shape and np.array_equal(x3, x3_before)
                                    and wt3.shape == wt3_before.shape
                                    and np.array_equal(wt3, wt3_before)), True,
           hint="conv_transpose_via_matrix changed the caller's x or w in place (x.shape = "
                "..., x.resize(...), w[...] = ...); x.reshape(-1) returns a new view instead")
    x3, wt3 = x3_before, wt3_before
    expect("channels", got, _torch_t2d(x3, wt3, (2, 2), (1, 0)),
           hint="w is (C_in, C_out, kH, kW); read as a convolution weight it maps C_out "
                "channels to C_in, which is exactly the convolution whose transpose you want; "
                "C.T @ x comes out flattened as (C_out, H_out, W_out)")
    expect("own_code", f_calls, "no call",
           hint="use your conv_matrix_2d and C.T @ x, not F.conv_transpose2d (what the tests "
                "compare with, under any name) or tconv_lib")
    expect("uses_conv_matrix_2d", _runs(conv_transpose_via_matrix, conv_matrix_2d, x3.copy(),
                                        wt3.copy(), (2, 2), (1, 0)), True,
           hint="conv_transpose_via_matrix never calls your conv_matrix_2d: build C with it "
                "(the convolution from the output size back to (C_in, H, W), w read in the "
                "convolution layout) and return C.T @ x; a scatter loop gets the values "
                "without the matrix this task is about")
    ### BEGIN HIDDEN TESTS
    expect("stride_1", _via_matrix(x3, wt3), _torch_t2d(x3, wt3),
           hint="with stride 1 and no padding C.T is a full correlation")
    xp = rng.standard_normal((3, 1, 1))
    expect("one_pixel", _via_matrix(xp, wt3, stride=(3, 2)),
           _torch_t2d(xp, wt3, (3, 2)), hint="a 1x1 input")
    ### END HIDDEN TESTS
    '''))
    b.md("""
    ## Question (2 points, graded by hand)

    For a stride-2 convolution with `k=3`, no padding, on a length-5 input, `C` is 2x5. Write
    `C` with symbols `w0, w1, w2`, then explain why `C.T` is called the *transposed*
    convolution and not the *inverse* convolution. When would `C.T @ C` be the identity?
    (Chapter 2, section "Transposed, not inverse":
    [02_three_views.md](../../book/02_three_views.md), built page
    [02_three_views.html](../../_build/html/book/02_three_views.html#transposed-not-inverse).)
    """)
    b.manual("transpose_not_inverse", 2, """
    C = [[w0, w1, w2, 0, 0], [0, 0, w0, w1, w2]]. C.T (5x2) maps a length-2 vector to length 5
    by painting each entry times the kernel, copies two apart: it restores the *shape* (and the
    connectivity pattern) of the input, not its values. C is 2x5, it has no inverse at all
    (rank at most 2); C.T @ C is a 5x5 matrix of rank <= 2, never the identity here.
    C.T @ C = I needs orthonormal columns, so at least as many outputs as inputs. With one
    channel that means k = s = 1 and w0 = +-1. Non-overlapping copies (k = s) of a unit-norm
    kernel give orthonormal *rows* instead: C @ C.T = I, so the convolution undoes the
    transposed convolution, not the other way round. With channels, a stride-s layer with
    C_out = s^D * C_in and an orthogonal weight matrix (space-to-depth) makes C square and
    orthogonal, and then C.T is the inverse.
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex4_gradients() -> Book:
    b = Book("ex4_gradients")
    b.md("""
    # Exercise 4: the gradients of a convolution

    Book chapter: [The gradient of a convolution](../../book/03_gradient.md)
    (built page: [03_gradient.html](../../_build/html/book/03_gradient.html),
    after `make book`).

    For `y = F.conv2d(x, w, stride, padding, dilation)` and an upstream gradient
    `g = dL/dy`, the input gradient `dL/dx = C.T g` is a **transposed convolution** of `g`
    with the same weight, and the weight gradient is a correlation of `x` with `g`. Compute
    both **without automatic differentiation** (no `torch.autograd`, `torch.func` or JAX
    `grad`/`vjp`): you may use `F.conv_transpose2d` and `F.conv2d` (not the ready-made
    gradients of `torch.nn.grad`, `aten.convolution_backward` or `tconv_lib.gradients`). The
    tests call your functions under `torch.no_grad()` and compare with `torch.autograd`.
    """)
    b.setup()
    b.md("""
    ## Task 1 (3 points): the input gradient

    `grad_out` is `(N, C_out, H_out, W_out)`, `w` is `(C_out, C_in, kH, kW)` (conv layout),
    `input_size` is `(H, W)`. `stride`, `padding`, `dilation` are pairs. Return `dL/dx` of shape
    `(N, C_in, H, W)`; `groups` as in `F.conv2d`. Careful: several input sizes give the same
    `H_out` when the stride is larger than 1.
    """)
    b.solution("input_grad", '''
    def conv2d_input_grad(grad_out, w, input_size, stride=(1, 1), padding=(0, 0),
                          dilation=(1, 1), groups=1):
        """dL/dx = conv_transpose2d(grad_out, w, stride, padding, output_padding, groups,
        dilation) with output_padding = (H + 2p - d(k-1) - 1) mod stride per axis."""
        ### BEGIN SOLUTION
        k = w.shape[2:]
        op = tuple((i + 2 * p - d * (kk - 1) - 1) % s
                   for i, kk, s, p, d in zip(input_size, k, stride, padding, dilation,
                                             strict=True))
        return F.conv_transpose2d(grad_out, w, stride=stride, padding=padding,
                                  output_padding=op, groups=groups, dilation=dilation)
        ### END SOLUTION
    ''')
    b.test("test_input_grad", 2, '''
    import inspect
    import os
    import sys

    from torch.utils._python_dispatch import TorchDispatchMode

    import tconv_lib.gradients


    def _autograd(x_shape, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), seed=0, groups=1):
        """x, g and the two gradients of F.conv2d, by autograd (the oracle; gradients on
        even if a cell above called torch.set_grad_enabled(False))."""
        gen = torch.Generator().manual_seed(seed)
        with torch.enable_grad():
            x = torch.randn(x_shape, generator=gen).requires_grad_(True)
            w = w.detach().clone().requires_grad_(True)
            y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
            g = torch.randn(y.shape, generator=gen)
            gx, gw = torch.autograd.grad(y, (x, w), g)
        return x.detach(), g, gx, gw

    _AUTOGRAD_CALLS = {}  # function under test -> what of torch.autograd it called
    # the oracle (autograd, however it is named) and the gradients ready-made: no answer calls them
    _ORACLES = {torch.autograd.grad.__code__: "torch.autograd.grad",
                torch.autograd.backward.__code__: "torch.autograd.backward",
                torch.nn.grad.conv2d_input.__code__: "torch.nn.grad.conv2d_input",
                torch.nn.grad.conv2d_weight.__code__: "torch.nn.grad.conv2d_weight"}
    _READY_MADE = tconv_lib.gradients.__file__  # any of its functions: "tconv_lib.gradients"
    # automatic differentiation by other names: forward mode (dual numbers), torch.func's and
    # JAX's transforms (their files, so JAX need not be imported here), as "<label>.<name>"
    _FORWARD_AD = torch.autograd.forward_ad.__file__
    _TRANSFORMS = {"grad", "grad_and_value", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev",
                   "jacobian", "hessian", "linearize", "linear_transpose"}
    _AD_FOLDERS = {"torch.func": f"{os.sep}torch{os.sep}_functorch{os.sep}",
                   "jax": f"{os.sep}jax{os.sep}"}
    _CHANGED_INPUTS = {}  # function under test -> the tensor arguments it changed in place


    def _autodiff(code):
        """The automatic differentiation the code object belongs to, or None."""
        if code.co_filename == _FORWARD_AD:
            return "torch.autograd.forward_ad"
        if code.co_name in _TRANSFORMS:
            for label, folder in _AD_FOLDERS.items():
                if folder in code.co_filename:
                    return f"{label}.{code.co_name}"
        return None


    class _ReadyMadeOperators(TorchDispatchMode):
        """Notes a convolution's backward operator (aten.convolution_backward, whatever name
        reached it): PyTorch's gradient ready-made, which F.conv_transpose2d and F.conv2d never
        run."""

        def __init__(self, found):
            super().__init__()
            self.found = found

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if "conv" in name and name.endswith("_backward"):
                self.found.add(f"aten.{name}")
            return func(*args, **(kwargs or {}))


    def _no_grad(fn, *args, **kwargs):
        """Call the function under test without autograd, and note whether it calls
        torch.autograd anyway (turning gradients back on; the oracle, under whatever name it was
        imported), automatic differentiation by another name (forward mode, torch.func, JAX) or
        a ready-made gradient (torch.nn.grad, tconv_lib.gradients, aten.convolution_backward):
        not an answer. A profile hook sees the calls, `from torch.autograd import grad`
        included, and a dispatch mode the backward operator."""
        used = _AUTOGRAD_CALLS.setdefault(fn.__name__, set())
        changed = _CHANGED_INPUTS.setdefault(fn.__name__, set())
        names = list(inspect.signature(fn).parameters)
        before = {names[n] if n < len(names) else f"argument {n + 1}": (arg, arg.clone())
                  for n, arg in enumerate(args) if isinstance(arg, torch.Tensor)}

        def profile(frame, event, arg):
            if event == "call":
                if frame.f_code in _ORACLES:
                    used.add(_ORACLES[frame.f_code])
                elif frame.f_code.co_filename == _READY_MADE:
                    used.add("tconv_lib.gradients")
                elif (found := _autodiff(frame.f_code)) and not any(
                        u.startswith(found.rpartition(".")[0] + ".") for u in used):
                    used.add(found)  # a library's first transform: not those it calls

        previous = sys.getprofile()
        sys.setprofile(profile)
        try:
            with torch.no_grad(), _ReadyMadeOperators(used):
                return _called(fn, *args, **kwargs)  # an error: the case reports it
        finally:
            sys.setprofile(previous)
            changed.update(name for name, (arg, copy) in before.items()
                           if arg.shape != copy.shape or not torch.equal(arg, copy))


    def _autograd_calls(name):
        """What the function `name` called of torch.autograd (or a ready-made gradient) in the
        cases above; the backward operator only where nothing named ran it (autograd does)."""
        used = _AUTOGRAD_CALLS.get(name, set())
        named = {u for u in used if not u.startswith("aten.")} or used
        return " and ".join(sorted(named)) or "no call"


    def _changed_inputs(name):
        """Which tensor arguments the function `name` changed in place in the cases above."""
        return " and ".join(sorted(_CHANGED_INPUTS.get(name, ()))) or "none"

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(2, 3, 3, 3, generator=gen)
    x, g, gx, gw = _autograd((2, 3, 8, 7), w, (2, 2), (1, 1))
    got = _no_grad(conv2d_input_grad, g, w, (8, 7), stride=(2, 2), padding=(1, 1))
    expect("stride2_8x7", got, gx,
           hint="a transposed convolution of grad_out with the same w; along H the size 8 "
                "needs output_padding 1 (7 and 8 both give H_out = 4), along W 0")
    x, g, gx, gw = _autograd((1, 3, 10, 9), w, (2, 2), (1, 1), (2, 1), seed=2)
    got = _no_grad(conv2d_input_grad, g, w, (10, 9), stride=(2, 2), padding=(1, 1),
                   dilation=(2, 1))
    expect("dilation_2_1", got, gx,
           hint="dilation (2, 1): pass it on to the transposed convolution, and use the dilated "
                "kernel extent d*(k-1) + 1 in the output_padding (here 1 along H, 0 along W)")
    w_groups = torch.randn(4, 2, 3, 2, generator=gen)
    x, g, gx, gw = _autograd((1, 4, 6, 7), w_groups, (2, 1), (0, 1), seed=3, groups=2)
    got = _no_grad(conv2d_input_grad, g, w_groups, (6, 7), stride=(2, 1), padding=(0, 1),
                   groups=2)
    expect("groups_2_of_4", got, gx,
           hint="groups=2: w is (C_out, C_in/groups, kH, kW); pass groups on to "
                "F.conv_transpose2d. The kernel here is 3x2, not square: the output_padding "
                "along H uses kH = 3, along W kW = 2")
    expect("inputs_unchanged", _changed_inputs("conv2d_input_grad"), "none",
           hint="your function changed these arguments of the caller in place (an in-place "
                "method such as grad_out.mul_(...) or w.transpose_(...)); use the out-of-place "
                "one (grad_out * ..., w.transpose(...))")
    expect("no_autograd", _autograd_calls("conv2d_input_grad"), "no call",
           hint="compute dL/dx with F.conv_transpose2d: torch.autograd (backward, "
                "autograd.grad, forward_ad, however imported) is what the tests compare with, "
                "torch.func's and JAX's transforms (vjp, grad, jacfwd, linear_transpose) "
                "differentiate automatically too, and torch.nn.grad, "
                "aten.convolution_backward and tconv_lib.gradients have the gradient "
                "ready-made: none of them is part of the answer")
    ''')
    b.test("test_input_grad_edges", 1, '''
    gen = torch.Generator().manual_seed(105)  # this cell's own inputs, whatever ran before
    w = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(1))  # Task 1's w, again
    x, g, gx, gw = _autograd((1, 3, 5, 5), w)
    got = _no_grad(conv2d_input_grad, g, w, (5, 5))
    expect("stride_1", got, gx, hint="stride 1: a full-padding transposed convolution")
    x, g, gx, gw = _autograd((1, 3, 9, 10), w, (3, 2), (1, 0), seed=6)
    got = _no_grad(conv2d_input_grad, g, w, (9, 10), stride=(3, 2), padding=(1, 0))
    expect("stride_3", got, gx,
           hint="stride (3, 2), input 9x10: output_padding (2, 1), the remainder "
                "(H + 2p - d(k-1) - 1) mod stride that the forward convolution floored away "
                "(not the distance up to the next multiple of the stride)")
    x, g, gx, gw = _autograd((1, 3, 10, 9), w, (3, 2), (1, 0), (2, 2), seed=8)
    got = _no_grad(conv2d_input_grad, g, w, (10, 9), stride=(3, 2), padding=(1, 0),
                   dilation=(2, 2))
    expect("dilation_2_stride_3", got, gx,
           hint="stride 3, dilation 2, k = 3, input 10: output_padding 1 along H, from the "
                "dilated kernel's span d*(k-1) + 1 = 5 in (H + 2p - d(k-1) - 1) mod stride; "
                "with k in its place it comes out 0 (with stride 2 the two agree, so only a "
                "stride that does not divide (d-1)*(k-1) shows it)")
    ### BEGIN HIDDEN TESTS
    def _input_grad_case(shape, s, p, d, seed):
        """(your input gradient, autograd's) for one case."""
        _, g_case, gx_case, _ = _autograd(shape, w, s, p, d, seed=seed)
        return _no_grad(conv2d_input_grad, g_case, w, shape[2:], stride=s, padding=p,
                        dilation=d), gx_case

    expect("case_0", *_input_grad_case((1, 3, 9, 10), (2, 2), (0, 1), (2, 2), 0),
           hint="dilation")
    expect("case_1", *_input_grad_case((2, 3, 8, 10), (3, 2), (1, 0), (1, 1), 1),
           hint="non-square stride, output_padding (1, 1)")
    expect("case_2", *_input_grad_case((1, 3, 3, 3), (1, 1), (0, 0), (1, 1), 2),
           hint="1x1 output")
    wg = torch.randn(4, 2, 3, 2, generator=gen)
    x, g, gx, gw = _autograd((2, 4, 7, 6), wg, (2, 2), (1, 0), seed=5, groups=2)
    got = _no_grad(conv2d_input_grad, g, wg, (7, 6), stride=(2, 2), padding=(1, 0), groups=2)
    expect("groups_2", got, gx, hint="groups=2: pass groups on to the transposed convolution")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (3 points): the weight gradient

    Return `dL/dw` of shape `(C_out, C_in, kH, kW)` from `x` `(N, C_in, H, W)` and `grad_out`.
    `dL/dw[co, ci, a, b] = sum_{n, r, c} g[n, co, r, c] * x_pad[n, ci, r*sH + a*dH, c*sW + b*dW]`.
    Hint: it is a convolution in which the roles of batch and channels swap, with the stride
    and dilation exchanged.
    """)
    b.solution("weight_grad", '''
    def conv2d_weight_grad(x, grad_out, kernel_size, stride=(1, 1), padding=(0, 0),
                           dilation=(1, 1)):
        """dL/dw[co, ci, a, b] = sum over n, r, c of g[n, co, r, c] * x_pad[n, ci, r*s + a*d,
        c*s + b*d]: conv2d of x (channels as batch) with g (batch as channels), stride and
        dilation swapped, cropped to the kernel size."""
        ### BEGIN SOLUTION
        gw = F.conv2d(x.transpose(0, 1), grad_out.transpose(0, 1), stride=dilation,
                      padding=padding, dilation=stride)          # (C_in, C_out, >=kH, >=kW)
        kh, kw = kernel_size
        return gw[:, :, :kh, :kw].transpose(0, 1)
        ### END SOLUTION
    ''')
    b.test("test_weight_grad", 2, '''
    w = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(1))  # Task 1's w, again
    x, g, gx, gw = _autograd((2, 3, 8, 7), w, (2, 2), (1, 1))
    got = _no_grad(conv2d_weight_grad, x, g, (3, 3), stride=(2, 2), padding=(1, 1))
    expect("stride2_8x7", got, gw,
           hint="shape (C_out, C_in, kH, kW); sum over the batch. In the correlation of x with "
                "grad_out, stride and dilation swap roles: conv2d(..., stride=dilation, "
                "dilation=stride), not stride=stride (the usual slip). With stride 2 it also "
                "comes out one row longer than kH here (the bottom padding row is never read): "
                "keep the first kH rows and kW columns")
    x, g, gx, gw = _autograd((1, 3, 11, 9), w, (1, 2), (1, 0), (2, 1), seed=4)
    got = _no_grad(conv2d_weight_grad, x, g, (3, 3), stride=(1, 2), padding=(1, 0),
                   dilation=(2, 1))
    expect("dilation_2_1", got, gw,
           hint="dilation (2, 1): tap a reads x_pad at r*stride + a*dilation, so dilation is the "
                "step of the kernel taps (conv2d's stride) and stride the step of grad_out "
                "(conv2d's dilation)")
    expect("inputs_unchanged", _changed_inputs("conv2d_weight_grad"), "none",
           hint="your function changed these arguments of the caller in place (an in-place "
                "method such as x.transpose_(0, 1)); x.transpose(0, 1) returns a new view and "
                "leaves x as it was")
    expect("no_autograd", _autograd_calls("conv2d_weight_grad"), "no call",
           hint="compute dL/dw with F.conv2d: torch.autograd (backward, autograd.grad, "
                "forward_ad, however imported) is what the tests compare with, torch.func's "
                "and JAX's transforms (vjp, grad, jacfwd) differentiate automatically too, and "
                "torch.nn.grad, aten.convolution_backward and tconv_lib.gradients have the "
                "gradient ready-made: none of them is part of the answer")
    ''')
    b.test("test_weight_grad_edges", 1, '''
    gen = torch.Generator().manual_seed(106)  # this cell's own inputs, whatever ran before
    w = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(1))  # Task 1's w, again
    x, g, gx, gw = _autograd((1, 3, 5, 5), w)
    got = _no_grad(conv2d_weight_grad, x, g, (3, 3))
    expect("stride_1", got, gw, hint="stride 1, no padding")
    w_2x3 = torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(107))
    x, g, gx, gw = _autograd((1, 3, 7, 8), w_2x3, (2, 2), (0, 1), seed=7)
    got = _no_grad(conv2d_weight_grad, x, g, (2, 3), stride=(2, 2), padding=(0, 1))
    expect("kernel_2x3", got, gw,
           hint="kernel_size (2, 3): keep the first kH = 2 rows and kW = 3 columns of the "
                "correlation (here 3x4); kernels need not be square")
    ### BEGIN HIDDEN TESTS
    w23 = torch.randn(4, 3, 2, 3, generator=gen)
    def _weight_grad_case(shape, s, p, d, seed):
        """(your weight gradient, autograd's) for one case, kernel (2, 3)."""
        x_case, g_case, _, gw_case = _autograd(shape, w23, s, p, d, seed=seed)
        return _no_grad(conv2d_weight_grad, x_case, g_case, (2, 3), stride=s, padding=p,
                        dilation=d), gw_case

    expect("case_0", *_weight_grad_case((1, 3, 9, 10), (2, 2), (0, 1), (2, 2), 10),
           hint="stride and dilation 2")
    expect("case_1", *_weight_grad_case((2, 3, 7, 9), (3, 2), (1, 0), (1, 1), 11),
           hint="non-square stride")
    expect("case_2", *_weight_grad_case((3, 3, 2, 3), (1, 1), (0, 0), (1, 1), 12),
           hint="input of the kernel's size")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    In Task 1, what goes wrong if you call `F.conv_transpose2d(g, w, stride=2, padding=1)`
    without `output_padding` for the 8x7 input? Which input rows would get no gradient, and why
    is that not an approximation but simply the wrong shape?
    """)
    b.manual("why_output_padding_in_backward", 2, """
    Without output_padding the transposed convolution returns the smallest size consistent with
    H_out = 4, i.e. 7 rows instead of 8, so the gradient cannot even be added to x (shape
    mismatch). The missing 8th row is a real input row: with k=3, s=2, p=1 it is read by the
    last output position (rows 5, 6, 7 of the input), so its gradient is generally non-zero;
    output_padding=1 makes the transposed convolution keep that row. (When the stride skips an
    input row entirely, its correct gradient is exactly zero, which output_padding also gives.)
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex5_conventions() -> Book:
    b = Book("ex5_conventions")
    b.md("""
    # Exercise 5: TensorFlow and JAX conventions in PyTorch

    Book chapter: [Shapes, padding and `output_padding`](../../book/04_shapes_padding.md)
    (built page: [04_shapes_padding.html](../../_build/html/book/04_shapes_padding.html),
    after `make book`).

    PyTorch describes a transposed convolution by `padding` (cropped from **both** sides of the
    full output) and `output_padding` (added at the far end). TensorFlow/Keras say
    `padding="SAME"` or `"VALID"` and JAX `lax.conv_transpose` takes `(low, high)` pairs. Your
    conversions return three integers `(padding, output_padding, crop_end)` meaning

    ```python
    y = F.conv_transpose1d(x, w, stride=stride, padding=padding, output_padding=output_padding)
    y = y[..., : y.shape[-1] - crop_end]        # an explicit crop at the far end
    ```

    Work it out with arithmetic (no `tconv_lib`). 1-D throughout; every axis of a 2-D layer
    works the same way.
    """)
    b.setup()
    b.given("apply_conversion", '''
    def apply_conversion(x, w, stride, conversion, dilation=1):
        """Run F.conv_transpose1d with a (padding, output_padding, crop_end) triple."""
        padding, output_padding, crop_end = conversion
        y = F.conv_transpose1d(x, w, stride=stride, padding=padding,
                               output_padding=output_padding, dilation=dilation)
        return y[..., : y.shape[-1] - crop_end]
    ''')
    b.md("""
    ## Task 1 (4 points): TensorFlow / Keras `Conv1DTranspose(padding=...)`

    Keras' output length is `i*stride` for `"SAME"` and `i*stride + max(k - stride, 0)` for
    `"VALID"`. TensorFlow defines the layer as the gradient of its forward convolution, whose
    `"SAME"` padding of an input of length `n` is `total = max((ceil(n/s) - 1)*s + k - n, 0)`,
    split as `total // 2` before and the rest (one more when `total` is odd) **after**.
    Return `(padding, output_padding, crop_end)` for input length `i`. Raise `ValueError` for a
    padding other than `"SAME"`/`"VALID"` (accept lower case too).
    """)
    b.solution("tf_to_torch", '''
    def tf_to_torch(i, k, stride, padding):
        """SAME:  total = max(k - stride, 0); padding = total // 2; crop_end = total % 2;
                  output_padding = max(stride - k, 0).
        VALID: padding = 0, crop_end = 0, output_padding = max(stride - k, 0)."""
        ### BEGIN SOLUTION
        mode = padding.upper() if isinstance(padding, str) else padding
        if mode not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME' or 'VALID', got padding={padding!r}")
        op = max(stride - k, 0)
        if mode == "VALID":
            return (0, op, 0)
        total = max(k - stride, 0)  # TF's SAME padding, the odd one at the end
        return (total // 2, op, total % 2)
        ### END SOLUTION
    ''')
    b.test("test_tf_same", 2, "import math\n\nimport tconv_lib\n\n\n" + WATCH_ANY_NAME
           + "\n\n\n" + _src('''
    def _tf_reference(x, w, stride, padding):
        """TensorFlow's conv1d_transpose: the adjoint (autograd) of its forward convolution."""
        i, k = x.shape[-1], w.shape[-1]
        n = i * stride + (max(k - stride, 0) if padding.upper() == "VALID" else 0)
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        if padding.upper() == "VALID":
            total = 0
        with torch.enable_grad():  # even if a cell above called torch.set_grad_enabled(False)
            z = torch.zeros(x.shape[0], w.shape[1], n, requires_grad=True)
            y = F.conv1d(F.pad(z, (total // 2, total - total // 2)), w, stride=stride)
            (gz,) = torch.autograd.grad(y, z, x)
        return gz

    def _run_conversion(convert, args, x, w, stride, dilation=1):
        """(conversion, output): your conversion of args and apply_conversion's output. An
        exception (other than the released stub's) becomes the output, as text, so that the
        test still names the case, your conversion and the hint."""
        conversion = f"none ({convert.__name__} raised)"
        try:
            conversion = convert(*args)
            return conversion, apply_conversion(x, w, stride, conversion, dilation)
        except NotImplementedError:
            raise  # the released stub stops the cell, as in every test cell
        except Exception as exc:  # reported by the expect that follows
            return conversion, f"{type(exc).__name__}: {exc}"

    def _tf_case(i, k, stride, padding, seed):
        """(your output, TensorFlow's, a hint naming the case and your conversion)."""
        gen = torch.Generator().manual_seed(seed)
        x, w = torch.randn(2, 3, i, generator=gen), torch.randn(3, 2, k, generator=gen)
        conversion, got = _run_conversion(tf_to_torch, (i, k, stride, padding), x, w, stride)
        length = i * stride + (0 if padding.upper() == "SAME" else max(k - stride, 0))
        return got, _tf_reference(x, w, stride, padding), (
            f"i={i}, k={k}, stride={stride}, padding={padding!r}: your conversion "
            f"{conversion!r}; Keras wants length {length} and TF puts the odd extra padding "
            "at the end")

    def _check(name, i, k, stride, padding, seed):
        expect(name, *_tf_case(i, k, stride, padding, seed))

    def _library_calls(convert, *args, oracles=()):
        """"no call", or the tconv_lib functions convert(*args) called (however imported) and the
        test's `oracles` (a search against them is not the arithmetic); an error it raises is
        the cases' business (the released stub's stops the cell)."""
        def run():
            try:
                return convert(*args)
            except NotImplementedError:
                raise
            except Exception:  # noqa: BLE001 - the cases above report it
                return None
        return _with_own_calls(run, library=tconv_lib, oracles=oracles)[1]

    # every helper above comes before the first case: in `check` a failed case stops the cell,
    # and the later cells use them
    _check("same_k3_s2", 5, 3, 2, "SAME", 0)
    _check("same_k4_s2", 5, 4, 2, "SAME", 1)
    _check("same_k5_s2", 4, 5, 2, "same", 2)
    _check("same_k4_s3", 4, 4, 3, "SAME", 12)  # total 1 with an even k: the parity of k - s
    expect("own_code", _library_calls(tf_to_torch, 5, 3, 2, "SAME", oracles=(_tf_reference,)),
           "no call",
           hint="work the conversion out with arithmetic: tconv_lib.conventions (from_keras, "
                "from_tf) has it ready-made, the function this task rebuilds, and this cell's "
                "_tf_reference is what it compares with (searching for the triple that matches "
                "it is not the arithmetic): neither is part of the answer")
    '''))
    b.test("test_tf_valid_and_edges", 2, '''
    _check("valid_k3_s2", 5, 3, 2, "VALID", 3)
    _check("same_k1_s2", 4, 1, 2, "SAME", 4)
    _check("valid_lower_k4_s2", 3, 4, 2, "valid", 10)
    _check("valid_k2_s4", 3, 2, 4, "VALID", 11)
    expect_raises("full_mode", ValueError, tf_to_torch, 4, 3, 2, "FULL",
                  hint="Keras' Conv1DTranspose knows only 'SAME' and 'VALID' (any case): raise "
                       "ValueError for anything else")
    ### BEGIN HIDDEN TESTS
    expect("valid_k2_s3", *_tf_case(4, 2, 3, "VALID", 5))
    expect("same_k3_s1", *_tf_case(6, 3, 1, "SAME", 6))
    expect("same_k2_s1", *_tf_case(6, 2, 1, "SAME", 7))
    expect("same_k5_s3_i1", *_tf_case(1, 5, 3, "SAME", 8))
    expect("valid_k1_s1", *_tf_case(3, 1, 1, "valid", 9))
    expect_raises("bad_mode", ValueError, tf_to_torch, 4, 3, 2, "causal",
                  hint="only SAME and VALID exist")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (3 points): JAX `lax.conv_transpose(..., padding=[(low, high)], \
transpose_kernel=True)`

    JAX inserts `stride - 1` zeros between input elements, pads `low` zeros before and `high`
    after (negative values crop), then slides the flipped kernel (dilated by `dilation`). PyTorch
    does the same with `low = d(k-1) - padding` and `high = d(k-1) - padding + output_padding`.
    Return `(padding, output_padding, crop_end)`, or raise `ValueError` when PyTorch cannot
    express it (it would need `padding < 0`, or `output_padding >= max(stride, dilation)`).
    """)
    b.solution("jax_to_torch", '''
    def jax_to_torch(k, stride, low, high, dilation=1):
        """padding = d(k-1) - low; high >= low: output_padding = high - low, crop_end = 0;
        high < low: output_padding = 0, crop_end = low - high."""
        ### BEGIN SOLUTION
        reach = (k - 1) * dilation
        padding = reach - low
        if padding < 0:
            raise ValueError(f"low padding {low} exceeds dilation*(k-1)={reach}: PyTorch's "
                             f"padding would be negative ({padding})")
        extra = high - low
        if extra >= max(stride, dilation):
            raise ValueError(f"high - low = {extra} needs output_padding {extra}, but it must "
                             f"be smaller than max(stride, dilation) = {max(stride, dilation)}")
        if extra >= 0:
            return (padding, extra, 0)
        return (padding, 0, -extra)
        ### END SOLUTION
    ''')
    b.test("test_jax", 2, '''
    def _jax_reference(x, w, stride, low, high, dilation=1):
        """lax.conv_transpose(transpose_kernel=True) spelled out with torch: zero insertion,
        (low, high) padding, a stride-1 convolution with the flipped, transposed kernel."""
        z = torch.zeros(x.shape[:-1] + ((x.shape[-1] - 1) * stride + 1,))
        z[..., ::stride] = x
        return F.conv1d(F.pad(z, (low, high)), w.transpose(0, 1).flip(-1), dilation=dilation)

    def _jax_case(i, k, stride, low, high, dilation=1, seed=0):
        """(your output, JAX's, a hint naming the case and your conversion)."""
        gen = torch.Generator().manual_seed(seed)
        x, w = torch.randn(1, 2, i, generator=gen), torch.randn(2, 3, k, generator=gen)
        conversion, got = _run_conversion(jax_to_torch, (k, stride, low, high, dilation), x, w,
                                          stride, dilation)
        return got, _jax_reference(x, w, stride, low, high, dilation), (
            f"k={k}, stride={stride}, (low, high)=({low}, {high}), dilation={dilation}: your "
            f"conversion {conversion!r}; PyTorch's low side is d*(k-1) - padding")

    def _check_jax(name, i, k, stride, low, high, dilation=1, seed=0):
        expect(name, *_jax_case(i, k, stride, low, high, dilation, seed))

    _check_jax("lo1_hi2", 5, 3, 2, 1, 2)
    _check_jax("lo2_hi1", 5, 3, 2, 2, 1, seed=1)
    _check_jax("full", 4, 3, 1, 2, 2, seed=2)
    expect_raises("low_above_reach", ValueError, jax_to_torch, 3, 2, 4, 4,
                  hint="k=3: low=4 > d*(k-1)=2 would need PyTorch padding -2")
    expect_raises("output_padding_too_big", ValueError, jax_to_torch, 3, 2, 1, 3,
                  hint="high - low = 2 needs output_padding 2, not < max(stride, dilation) = 2")
    expect("own_code", _library_calls(jax_to_torch, 3, 2, 1, 2, oracles=(_jax_reference,)),
           "no call",
           hint="work the conversion out with arithmetic: tconv_lib.conventions.from_jax has it "
                "ready-made, the function this task rebuilds, and this cell's _jax_reference is "
                "what it compares with (searching for the triple that matches it is not the "
                "arithmetic): neither is part of the answer")
    ''')
    b.test("test_jax_edges", 1, '''
    _check_jax("dilated", 4, 3, 2, 3, 4, dilation=2, seed=3)
    _check_jax("dilation_above_stride", 4, 3, 1, 2, 4, dilation=3, seed=7)
    _check_jax("crop_2", 5, 5, 2, 4, 2, seed=8)  # high < low by 2: crop_end = low - high
    _check_jax("negative_low", 4, 3, 2, -1, 0, seed=9)  # JAX crops the front: padding 3
    ### BEGIN HIDDEN TESTS
    expect("negative", *_jax_case(5, 3, 2, -1, -1, seed=4))
    expect("crop_two", *_jax_case(6, 4, 3, 3, 1, seed=5))
    expect("k1_s1", *_jax_case(3, 1, 1, 0, 0, seed=6))
    expect_raises("low_too_big", ValueError, jax_to_torch, 3, 2, 3, 3,
                  hint="low > k-1 would need negative PyTorch padding")
    expect_raises("high_too_big", ValueError, jax_to_torch, 3, 2, 0, 2,
                  hint="high - low = 2 needs output_padding 2 >= stride 2")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (3 points): fix the decoder

    The tiny encoder-decoder below downsamples with a stride-2 convolution and upsamples with
    a stride-2 transposed convolution, then concatenates the skip connection. It works for
    some input sizes and crashes in `torch.cat` for others. Write `decoder_output_padding`, the
    per-axis `output_padding` that makes the upsampled map exactly `skip_size`; the test builds
    `TinyUNet(output_padding=decoder_output_padding(...))`.

    The docstring's two steps are arithmetic; here (unlike Exercise 1) you may also read the
    sizes off a trial run of PyTorch's own layers on a zero input, which is how one checks a
    real model's shapes: the tests compare with `tconv_lib.shapes`, which stays off limits.
    """)
    b.given("tiny_unet", '''
    class TinyUNet(torch.nn.Module):
        def __init__(self, output_padding=(0, 0)):
            super().__init__()
            self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.down = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.up = torch.nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1,
                                               output_padding=output_padding)
            self.head = torch.nn.Conv2d(8, 1, 1)

        def forward(self, x):
            skip = self.stem(x)
            up = self.up(torch.relu(self.down(torch.relu(skip))))
            return self.head(torch.cat([skip, up], dim=1))   # fails if up and skip differ
    ''')
    b.solution("decoder_fix", '''
    def decoder_output_padding(skip_size, k=3, stride=2, padding=1):
        """Per axis of skip_size (n): m = (n + 2p - k) // s + 1, the encoder's output size,
        then output_padding = n - ((m - 1) * s - 2p + k). Return a tuple, one per axis."""
        ### BEGIN SOLUTION
        result = []
        for n in skip_size:
            m = (n + 2 * padding - k) // stride + 1
            result.append(n - ((m - 1) * stride - 2 * padding + k))
        return tuple(result)
        ### END SOLUTION
    ''')
    b.test("test_decoder", 3, '''
    from tconv_lib.shapes import conv_output_size, output_padding_for

    for n, size in enumerate([(8, 8), (7, 9), (8, 5), (1, 2)]):
        op = _called(decoder_output_padding, size)
        expect(f"op_{n}", op, tuple(output_padding_for(conv_output_size(s, 3, 2, 1), s, 3, 2, 1)
                                    for s in size),
               hint=f"skip size {size}: find the encoder's output size first, then how far "
                    "the transposed layer without output_padding falls short of the skip")
        torch.manual_seed(n)
        try:  # a wrong output_padding fails this case, not the whole cell
            out_shape = tuple(TinyUNet(output_padding=op)(torch.randn(1, 1, *size)).shape)
        except Exception as exc:  # the error is the answer shown
            out_shape = f"{type(exc).__name__}: {str(exc)[:120]}"
        expect(f"shape_{n}", out_shape, (1, 1) + size,
               hint="the decoder output must have the input's size")
    _, decoder_calls = _with_own_calls(decoder_output_padding, (7, 9), library=tconv_lib)
    expect("own_code", decoder_calls, "no call",
           hint="two steps of arithmetic: tconv_lib.shapes (conv_output_size, output_padding_for, "
                "which this cell compares with) does them ready-made and is not part of the "
                "answer")
    expect("k4_s2_p1", _called(decoder_output_padding, (9, 8), k=4, stride=2, padding=1),
           tuple(output_padding_for(conv_output_size(m, 4, 2, 1), m, 4, 2, 1) for m in (9, 8)),
           hint="k=4, stride=2, padding=1: the same two steps with these arguments (the rule "
                "'1 for even sizes' only holds for k=3, stride=2, padding=1)")
    expect("k5_s3_p1", _called(decoder_output_padding, (11, 10), k=5, stride=3, padding=1),
           tuple(output_padding_for(conv_output_size(m, 5, 3, 1), m, 5, 3, 1) for m in (11, 10)),
           hint="k=5, stride=3, padding=1: output_padding can be 0, 1 or 2; the padding counts "
                "twice in the encoder's size (n + 2*padding - k) // stride + 1")
    expect("k5_s3_p2", _called(decoder_output_padding, (13, 12), k=5, stride=3, padding=2),
           tuple(output_padding_for(conv_output_size(m, 5, 3, 2), m, 5, 3, 2) for m in (13, 12)),
           hint="k=5, stride=3, padding=2: mind the signs: the convolution pads its input "
                "(+ 2*padding), the transposed convolution crops its output (- 2*padding)")
    ### BEGIN HIDDEN TESTS
    def _decoder_case(size, k, s, p):
        """(your output_padding, the reference) for one skip size and layer."""
        return _called(decoder_output_padding, size, k=k, stride=s, padding=p), tuple(
            output_padding_for(conv_output_size(m, k, s, p), m, k, s, p) for m in size)

    expect("args_0", *_decoder_case((8, 9), 4, 2, 1), hint="k=4, stride=2, padding=1")
    expect("args_1", *_decoder_case((10, 11), 5, 3, 2), hint="k=5, stride=3, padding=2")
    expect("args_2", *_decoder_case((6, 7), 2, 2, 0), hint="k=2, stride=2, padding=0")
    expect("args_3", *_decoder_case((9, 10), 3, 3, 0), hint="k=3, stride=3, padding=0")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    A Keras model uses `Conv2DTranspose(filters, 3, strides=2, padding="same")` on 8x8 maps.
    Give the PyTorch `ConvTranspose2d` arguments that reproduce it, and explain why PyTorch's
    `padding` alone cannot.
    """)
    b.manual("keras_same", 2, """
    Keras wants 16x16. With k=3, s=2 TF's total padding is k - s = 1, odd, so TF crops 0
    positions at the start and 1 at the end of the full (8-1)*2 + 3 = 17 output: it keeps
    positions 0..15. PyTorch's `padding` crops both sides equally: padding=1 with
    output_padding=1 also gives 16 but keeps positions 1..16, one pixel shifted (a real
    difference when porting trained weights). The exact equivalent is
    ConvTranspose2d(c_in, c_out, 3, stride=2, padding=0) followed by y[..., :16, :16], i.e.
    (padding, output_padding, crop_end) = (0, 0, 1).
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex6_checkerboard() -> Book:
    b = Book("ex6_checkerboard")
    b.md("""
    # Exercise 6: checkerboard artifacts

    Book chapter: [Checkerboard artifacts](../../book/06_checkerboard.md)
    (built page: [06_checkerboard.html](../../_build/html/book/06_checkerboard.html),
    after `make book`).

    A stride-`s` transposed convolution paints one copy of the kernel per input position. When
    the copies overlap unevenly, some output positions sum more terms than their neighbours: a
    periodic pattern, the checkerboard. You will compute overlap maps, predict from `(k, s)`
    alone when the overlap is even, and build the usual fix, resize-convolution. NumPy and
    `torch.nn.functional` are fine; no `tconv_lib`.
    """)
    b.setup(REFERENCE)
    b.md("""
    ## Task 1 (3 points): overlap map in 1-D

    Return an integer array of length `(n-1)*s + k`: entry `o` counts the kernel copies that
    cover output position `o` when an input of length `n` (all ones) is transposed-convolved
    with an all-ones kernel of size `k`, stride `s`, no padding.
    """)
    b.solution("overlap_1d", '''
    def overlap_map_1d(k, s, n):
        """m[o] = #{(j, t): j*s + t = o, 0 <= j < n, 0 <= t < k}."""
        ### BEGIN SOLUTION
        counts = np.zeros((n - 1) * s + k, dtype=np.int64)
        for j in range(n):
            counts[j * s: j * s + k] += 1
        return counts
        ### END SOLUTION
    ''')
    b.test("test_overlap_1d", 2, _src('''
    import tconv_lib
    from tconv_lib.artifacts import is_even as _lib_is_even
    from tconv_lib.artifacts import overlap_map as _lib_overlap_map
    ''') + "\n\n\n" + WATCH_ANY_NAME + "\n\n\n" + _src('''
    got, own_calls = _with_own_calls(overlap_map_1d, 3, 2, 5, library=tconv_lib)
    expect("k3_s2_n5", got, _lib_overlap_map(3, 2, 5),
           hint="k=3, s=2, n=5: add 1 on [j*s, j*s + k) for every input position j")
    expect("own_code", own_calls, "no call",
           hint="count the copies with NumPy (or torch.nn.functional): "
                "tconv_lib.artifacts.overlap_map, the function this task rebuilds (and this "
                "cell compares with), is not part of the answer")
    expect("k4_s2_n5", _called(overlap_map_1d, 4, 2, 5), _lib_overlap_map(4, 2, 5),
           hint="k=4, s=2, n=5: add 1 on [j*s, j*s + k) for every input position j")
    expect("k5_s3_n4", _called(overlap_map_1d, 5, 3, 4), _lib_overlap_map(5, 3, 4),
           hint="k=5, s=3, n=4: add 1 on [j*s, j*s + k) for every input position j")
    '''))
    b.test("test_overlap_1d_edges", 1, '''
    counts = _called(overlap_map_1d, 3, 1, 4)
    expect("stride_1", counts, _lib_overlap_map(3, 1, 4),
           hint="stride 1: the interior is covered k times")
    expect("integer_counts", np.issubdtype(np.asarray(counts).dtype, np.integer), True,
           hint="counts are whole numbers: return an integer array (np.zeros(n) is float64, "
                "np.zeros(n, dtype=int) is not)")
    ### BEGIN HIDDEN TESTS
    expect("n_1", _called(overlap_map_1d, 3, 2, 1), _lib_overlap_map(3, 2, 1), hint="one copy")
    expect("holes", _called(overlap_map_1d, 2, 3, 4), _lib_overlap_map(2, 3, 4),
           hint="stride larger than the kernel leaves positions with no copy at all")
    expect("k_equals_s", _called(overlap_map_1d, 3, 3, 3), _lib_overlap_map(3, 3, 3),
           hint="k = s: copies tile without overlap")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (2 points): overlap map in 2-D

    Same in 2-D with `k = (kH, kW)`, `s = (sH, sW)`, input size `(h, w)`. Your
    `overlap_map_1d` may help: the tests call your `overlap_map_2d` with it and, where that
    result is wrong, once more with a reference 1-D map in its place and judge that run, so a
    mistake in Task 1 costs Task 1's points only.
    """)
    b.solution("overlap_2d", '''
    def overlap_map_2d(k, s, size):
        """m[a, b] = number of kernel copies covering (a, b); it is the outer product of the
        1-D maps along H and W."""
        ### BEGIN SOLUTION
        return np.outer(overlap_map_1d(k[0], s[0], size[0]), overlap_map_1d(k[1], s[1], size[1]))
        ### END SOLUTION
    ''')
    b.test("test_overlap_2d", 2, '''
    def _reference_map_1d(k, s, n):
        """The test's 1-D map: n ones s apart, each spread over k outputs."""
        starts = np.zeros((n - 1) * s + 1, dtype=np.int64)
        starts[::s] = 1
        return np.convolve(starts, np.ones(k, dtype=np.int64))


    def _map_2d(*args):
        """(your overlap_map_2d(*args), whether its counts are integers), with your
        overlap_map_1d; where either is wrong, once more with the test's 1-D map in its place
        (setup's _or_with_reference): a mistake in Task 1 costs Task 1's points only."""
        def run():
            map_2d = _called(overlap_map_2d, *args)
            return map_2d, bool(np.issubdtype(np.asarray(map_2d).dtype, np.integer))
        return _or_with_reference(run, (_lib_overlap_map(*args), True),
                                  {"overlap_map_1d": _reference_map_1d})

    got, own_calls = _or_with_reference(
        lambda: _with_own_calls(overlap_map_2d, (3, 3), (2, 2), (4, 4), library=tconv_lib),
        (_lib_overlap_map((3, 3), (2, 2), (4, 4)), "no call"),
        {"overlap_map_1d": _reference_map_1d})
    expect("k3_s2", got, _lib_overlap_map((3, 3), (2, 2), (4, 4)),
           hint="the interior alternates 1, 2, 4 copies: a 2-D checkerboard")
    expect("own_code", own_calls, "no call",
           hint="build the 2-D map from your 1-D maps (or with NumPy / torch.nn.functional): "
                "tconv_lib.artifacts.overlap_map, the function this task rebuilds, is not part "
                "of the answer")
    counts_2d, integer_2d = _map_2d((2, 3), (1, 2), (3, 4))
    expect("kernel_2x3_stride_1x2", counts_2d, _lib_overlap_map((2, 3), (1, 2), (3, 4)),
           hint="k, s and size are (along H, along W) pairs: rows use k[0], s[0], size[0], "
                "columns k[1], s[1], size[1]; the map has (h-1)*sH + kH rows")
    expect("integer_counts_2d", integer_2d, True,
           hint="counts are whole numbers, in 2-D too: return an integer array (np.outer of "
                "two integer maps is one; .astype(float) or np.zeros((h, w)) is not)")
    ### BEGIN HIDDEN TESTS
    expect("non_square", _map_2d((4, 3), (3, 2), (2, 5))[0],
           _lib_overlap_map((4, 3), (3, 2), (2, 5)), hint="different k and s along H and W")
    expect("one_pixel", _map_2d((2, 2), (2, 2), (1, 1))[0],
           _lib_overlap_map((2, 2), (2, 2), (1, 1)), hint="a single copy of the kernel")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (2 points): predict evenness

    Without building a map, return `True` when every *interior* output position (away from
    the borders) is covered by the same number of copies, for kernel size `k` and stride `s`
    (1-D, no dilation).
    """)
    b.solution("is_even", '''
    def is_even(k, s):
        """Interior position o is covered by #{t < k : t = o (mod s)} copies:
        even iff s divides k."""
        ### BEGIN SOLUTION
        return k % s == 0
        ### END SOLUTION
    ''')
    b.test("test_is_even", 1, '''
    pairs = [(3, 2), (4, 2), (5, 2), (6, 3), (4, 3), (2, 2)]
    got, own_calls = _with_own_calls(lambda: [_called(is_even, k, s) for k, s in pairs],
                                     library=tconv_lib)
    expect("pairs", got, [_lib_is_even(k, s) for k, s in pairs],
           hint="count, for each phase r = o mod s, the taps t < k with t mod s = r; return "
                "True or False")
    expect("own_code", own_calls, "no call",
           hint="predict it from k and s yourself: tconv_lib.artifacts (is_even, "
                "overlap_counts), the functions this task rebuilds, are not part of the answer")
    ''')
    b.test("test_is_even_edges", 1, '''
    expect("stride_1", _called(is_even, 3, 1), _lib_is_even(3, 1),
           hint="stride 1 is always even: return True")
    expect("kernel_below_stride", _called(is_even, 2, 3), _lib_is_even(2, 3),
           hint="k=2 < s=3: the copies do not overlap, but they leave holes: one position in "
                "three gets no copy at all, so the interior is not even (return False)")
    ### BEGIN HIDDEN TESTS
    edge = [(1, 2), (2, 3), (9, 3), (1, 1), (7, 4), (8, 4)]
    expect("edge_pairs", [_called(is_even, k, s) for k, s in edge],
           [_lib_is_even(k, s) for k, s in edge],
           hint="k < s leaves holes (some phases get no copy): not even")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ### Explore (not graded)

    Drag the sliders: the map of kernel copies per output pixel comes from *your*
    `overlap_map_2d` (a 4x4 input, square kernel and stride), the verdict from *your* `is_even`.
    Watch the 1-2-4 pattern of `k=3, s=2` vanish at `k=4, s=2`, and holes appear when `k < s`.
    The widget needs JupyterLab (or Notebook); elsewhere, and while grading, the cell does
    nothing.
    """)
    b.explore("explore_overlap", EXPLORE_GUARD + '''


def _explore_overlap(k=3, s=2):
    try:
        counts = np.asarray(overlap_map_2d((k, k), (s, s), (4, 4)))
        even = bool(is_even(k, s))
    except NotImplementedError:
        print("implement overlap_map_2d and is_even above first")
        return
    print(f"kernel {k}x{k}, stride {s}, 4x4 input: copies covering each output pixel")
    print(np.array2string(counts, max_line_width=200))
    print("interior even (your is_even):", "yes" if even else "no: a checkerboard")


if (_widgets := _jupyter_widgets()) is not None:
    _widgets.interact(_explore_overlap, k=(1, 6), s=(1, 4))''')
    b.md("""
    ## Task 4 (3 points): resize-convolution

    The fix of Odena et al. (2016): upsample by `scale` with nearest-neighbour interpolation,
    then apply a stride-1 convolution with "same" padding `k // 2` (`k` odd). `x` is
    `(N, C_in, H, W)`, `weight` `(C_out, C_in, k, k)`, `bias` `(C_out,)`; output
    `(N, C_out, scale*H, scale*W)`.
    """)
    b.solution("resize_conv", '''
    def resize_conv(x, weight, bias, scale=2):
        """conv2d(interpolate(x, scale_factor=scale, mode="nearest"), weight, bias,
        padding=k//2)."""
        ### BEGIN SOLUTION
        up = F.interpolate(x, scale_factor=scale, mode="nearest")
        return F.conv2d(up, weight, bias, padding=weight.shape[-1] // 2)
        ### END SOLUTION
    ''')
    b.test("test_resize_conv", 2, '''
    from tconv_lib.artifacts import ResizeConv as _ResizeConv

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=gen)
    torch.manual_seed(0)  # the module's weights: the same in every run
    ref = _ResizeConv(3, 2, scale=2, kernel_size=3)
    with torch.no_grad():
        got, own_calls = _with_own_calls(resize_conv, x, ref.conv.weight, ref.conv.bias, 2,
                                         library=tconv_lib)
        expect("matches_resize_conv", got, ref(x),
               hint="nearest upsampling (each pixel repeated 2x2), then conv2d with the weight, "
                "the bias and padding 1")
    expect("own_code", own_calls, "no call",
           hint="upsample and convolve with torch (F.interpolate or nn.Upsample, then F.conv2d): "
                "tconv_lib.artifacts.ResizeConv, the layer this task rebuilds (and this cell "
                "compares with), is not part of the answer")
    torch.manual_seed(1)
    ref3 = _ResizeConv(2, 1, scale=3, kernel_size=5)
    x3 = torch.randn(1, 2, 3, 2, generator=gen)
    with torch.no_grad():
        expect("scale_3_k5", _called(resize_conv, x3, ref3.conv.weight, ref3.conv.bias, 3),
               ref3(x3),
               hint="scale 3 and kernel 5: use the arguments, scale_factor=scale and padding "
                    "k // 2 = 2 (output 9x6)")
    ''')
    b.test("test_resize_conv_no_checkerboard", 1, '''
    gen = torch.Generator().manual_seed(107)  # this cell's own inputs, whatever ran before
    ones = torch.ones(1, 1, 6, 6)
    w_pos = torch.rand(1, 1, 3, 3, generator=gen) + 0.5
    out = _called(resize_conv, ones, w_pos, torch.zeros(1), 2)
    inner = out[0, 0, 1:-1, 1:-1] if isinstance(out, torch.Tensor) else None
    expect("constant_interior", out if inner is None else float(inner.max() - inner.min()), 0.0,
           hint="a constant input must give a constant interior: no structural checkerboard")
    ### BEGIN HIDDEN TESTS
    torch.manual_seed(2)
    ref4 = _ResizeConv(1, 2, scale=4, kernel_size=1)
    x4 = torch.randn(2, 1, 2, 3, generator=gen)
    expect("scale_4_k1",
           _called(resize_conv, x4, ref4.conv.weight.detach(), ref4.conv.bias.detach(),
                   4),
           ref4(x4).detach(), hint="scale 4, a 1x1 kernel (padding 0)")
    torch.manual_seed(3)  # the module's weights: the same whatever random numbers your code drew
    ref7 = _ResizeConv(1, 1, scale=1, kernel_size=7)
    x7 = torch.randn(1, 1, 5, 4, generator=gen)
    expect("scale_1_k7",
           _called(resize_conv, x7, ref7.conv.weight.detach(), ref7.conv.bias.detach(),
                   1),
           ref7(x7).detach(), hint="scale 1 (no upsampling), kernel 7 (padding 3)")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    `k=4, s=2` has even overlap, `k=3, s=2` does not. Does an evenly overlapping transposed
    convolution produce no checkerboard after training? Explain, and say why
    resize-convolution avoids the problem by construction.
    """)
    b.manual("even_is_not_enough", 2, """
    No. Even overlap means every interior output sums the same *number* of terms, but the terms
    come from different kernel taps for different phases: output phase r uses taps t with
    t mod s = r. Unless each phase's sub-kernel has the same sum (and responds the same to the
    input), e.g. with random or trained weights, the phases differ and a period-s pattern
    remains (weaker than with uneven overlap). Resize-convolution first upsamples by repeating
    (or interpolating) pixels, then applies one stride-1 kernel to every position: all output
    positions are computed by the same kernel on the same kind of neighbourhood, so a constant
    input gives a constant output and there is no phase structure to learn artifacts from.
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex7_subpixel() -> Book:
    b = Book("ex7_subpixel")
    b.md("""
    # Exercise 7: sub-pixel convolution

    Book chapter: [Fast transposed convolution](../../book/05_fast.md)
    (built page: [05_fast.html](../../_build/html/book/05_fast.html),
    after `make book`).

    The full output of a stride-`s` transposed convolution splits into `s^2` interleaved grids
    (phases). Phase `(r1, r2)` (output rows `= r1 mod s`, columns `= r2 mod s`) only ever uses
    the kernel taps `w[:, :, r1::s, r2::s]`: a small **stride-1** problem. Computing the `s^2`
    phases with ordinary convolutions and interleaving them with a pixel shuffle gives the
    transposed convolution without multiplying any inserted zero. Use `torch` (`F.conv2d`,
    `F.pad`, reshapes), not `F.conv_transpose2d`, not `F.pixel_shuffle`, not `tconv_lib`.
    """)
    b.setup(REFERENCE)
    b.md("""
    ## Task 1 (2 points): pixel shuffle

    `t` has shape `(N, C*s*s, H, W)`; return `(N, C, H*s, W*s)` with
    `out[n, c, h*s + r1, w*s + r2] = t[n, c*s*s + r1*s + r2, h, w]` (what `F.pixel_shuffle` does).
    """)
    b.solution("pixel_shuffle", '''
    def pixel_shuffle(t, s):
        """(N, C*s*s, H, W) -> (N, C, H*s, W*s): view as (N, C, s, s, H, W), permute to
        (N, C, H, s, W, s), reshape."""
        ### BEGIN SOLUTION
        n, cs2, h, w = t.shape
        c = cs2 // (s * s)
        return t.reshape(n, c, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * s, w * s)
        ### END SOLUTION
    ''')
    b.test("test_pixel_shuffle", 2, "import tconv_lib\n\n\n" + WATCH_ANY_NAME + "\n\n\n" + _src('''
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(2, 12, 3, 4, generator=gen)
    got, f_calls = _with_own_calls(pixel_shuffle, t, 2, watch=("pixel_shuffle",),
                                   library=tconv_lib)
    expect("s2", got, F.pixel_shuffle(t, 2),
           hint="channel c*s*s + r1*s + r2 goes to rows r1::s and columns r2::s of channel c")
    expect("own_code", f_calls, "no call",
           hint="Task 1 rebuilds F.pixel_shuffle: reshape and permute, do not call it under "
                "any name (nor torch.pixel_shuffle or nn.PixelShuffle, the same function, nor "
                "tconv_lib)")
    t9 = torch.randn(1, 18, 2, 3, generator=gen)
    expect("s3_two_channels", _called(pixel_shuffle, t9, 3), F.pixel_shuffle(t9, 3),
           hint="s = 3: 9 channels per output channel, out 6x9; take s from the argument, not "
                "the 2 of the example")
    ### BEGIN HIDDEN TESTS
    t3 = torch.randn(1, 9, 2, 1, generator=gen)
    expect("s3_one_channel", _called(pixel_shuffle, t3, 3), F.pixel_shuffle(t3, 3), hint="s = 3")
    expect("s1", _called(pixel_shuffle, t, 1), t, hint="s = 1 changes nothing")
    ### END HIDDEN TESTS
    '''))
    b.md("""
    ## Task 2 (2 points): the sub-kernels

    For `w` of shape `(C_in, C_out, k, k)` with `k` divisible by `s`, return a tensor of shape
    `(s, s, C_in, C_out, k/s, k/s)` whose entry `[r1, r2]` holds the taps used by phase
    `(r1, r2)`.
    """)
    b.solution("sub_kernels", '''
    def sub_kernels(w, s):
        """[r1, r2] = w[:, :, r1::s, r2::s]: the taps t with t = r (mod s) along each axis."""
        ### BEGIN SOLUTION
        return torch.stack([torch.stack([w[:, :, r1::s, r2::s] for r2 in range(s)])
                            for r1 in range(s)])
        ### END SOLUTION
    ''')
    b.test("test_sub_kernels", 2, '''
    from tconv_lib.methods.phase import axis_phases

    gen = torch.Generator().manual_seed(108)  # this cell's own inputs, whatever ran before


    def _expected_sub_kernels(w, s):
        """Taps per phase from tconv_lib's phase decomposition (k divisible by s)."""
        taps = [t for _, t, _ in axis_phases(w.shape[-1], s, 1)]
        return torch.stack([torch.stack([w[:, :, t1][:, :, :, t2] for t2 in taps])
                            for t1 in taps])

    w = torch.randn(2, 3, 4, 4, generator=gen)
    got, own_calls = _with_own_calls(sub_kernels, w, 2, library=tconv_lib)
    expect("k4_s2", got, _expected_sub_kernels(w, 2),
           hint="phase r1 uses rows r1, r1+s, ...; phase r2 columns r2, r2+s, ...")
    expect("own_code", own_calls, "no call",
           hint="the taps of phase r are w[..., r::s]: slice them yourself; "
                "tconv_lib.methods.phase.axis_phases (what this cell compares with) lists them "
                "ready-made and is not part of the answer")
    w3 = torch.randn(1, 2, 3, 3, generator=gen)
    expect("k3_s3", _called(sub_kernels, w3, 3), _expected_sub_kernels(w3, 3),
           hint="s = 3: 3x3 phases (r1, r2 in range(s)), each with 1x1 taps; take s from the "
                "argument, not the 2 of the example")
    ### BEGIN HIDDEN TESTS
    w6 = torch.randn(1, 2, 6, 6, generator=gen)
    expect("k6_s3", _called(sub_kernels, w6, 3), _expected_sub_kernels(w6, 3), hint="s = 3")
    expect("k6_s1", _called(sub_kernels, w6, 1),
           _expected_sub_kernels(w6, 1), hint="s = 1: one phase")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (4 points): transposed convolution by sub-pixel convolution

    Compute `F.conv_transpose2d(x, w, stride=s)` (no padding, `k` divisible by `s`) as
    follows. With `q = k // s`, phase `(r1, r2)` is the stride-1 transposed convolution of `x`
    with the sub-kernel `w[:, :, r1::s, r2::s]`, i.e. a **forward** `F.conv2d` of `x` padded by
    `q - 1` on every side with that sub-kernel **flipped** spatially and with its two channel
    axes swapped. Stack the `s^2` phase outputs `(N, C_out, H+q-1, W+q-1)` into the channel
    order of Task 1 and pixel-shuffle.

    Use your `sub_kernels` and `pixel_shuffle` (here `F.pixel_shuffle` is allowed too). The
    tests call your `conv_transpose_subpixel` with your functions of Tasks 1 and 2; where that
    result is wrong, they call it once more with reference ones in their place and judge that
    run, so a mistake in Task 1 or 2 costs that task's points only.
    """)
    b.solution("subpixel", '''
    def conv_transpose_subpixel(x, w, s):
        """y = pixel_shuffle(stack_{r1, r2} conv2d(pad(x, q-1),
                                               flip(w[:, :, r1::s, r2::s]).swap), s)."""
        ### BEGIN SOLUTION
        q = w.shape[-1] // s
        subs = sub_kernels(w, s)                                  # (s, s, C_in, C_out, q, q)
        xp = F.pad(x, (q - 1,) * 4)
        phases = [F.conv2d(xp, subs[r1, r2].transpose(0, 1).flip(-2, -1))
                  for r1 in range(s) for r2 in range(s)]          # each (N, C_out, H+q-1, W+q-1)
        stacked = torch.stack(phases, dim=2)                      # (N, C_out, s*s, ., .)
        n, c_out = stacked.shape[:2]
        return pixel_shuffle(stacked.reshape(n, c_out * s * s, *stacked.shape[-2:]), s)
        ### END SOLUTION
    ''')
    b.test("test_subpixel", 2, '''
    gen = torch.Generator().manual_seed(109)  # this cell's own inputs, whatever ran before
    x = torch.randn(2, 2, 3, 4, generator=gen)
    w = torch.randn(2, 3, 4, 4, generator=gen)


    def _reference_sub_kernels(w, s):
        """The test's sub-kernels: the taps t = r (mod s) of each axis, by one reshape."""
        c_in, c_out, k = w.shape[0], w.shape[1], w.shape[-1]
        return w.reshape(c_in, c_out, k // s, s, k // s, s).permute(3, 5, 0, 1, 2, 4).contiguous()

    # where the result with your Tasks 1-2 is wrong, the case runs once more with the test's
    # (setup's _or_with_reference): a mistake in Task 1 or 2 costs that task's points only
    _REFERENCES = {"pixel_shuffle": F.pixel_shuffle, "sub_kernels": _reference_sub_kernels}


    def _subpixel(x, w, s):
        """Your conv_transpose_subpixel(x, w, s), with your Tasks 1-2 or else the test's."""
        return _or_with_reference(lambda: _called(conv_transpose_subpixel, x, w, s),
                                  F.conv_transpose2d(x, w, stride=s), _REFERENCES)

    # conv_transpose2d under any name, and the transposed convolution however it is reached
    got, f_calls = _or_with_reference(
        lambda: _with_own_calls(conv_transpose_subpixel, x, w, 2, watch=("conv_transpose2d",),
                                library=tconv_lib),
        (F.conv_transpose2d(x, w, stride=2), "no call"), _REFERENCES)
    expect("k4_s2", got, F.conv_transpose2d(x, w, stride=2),
           hint="each phase: conv2d of x padded by q-1 with the FLIPPED sub-kernel (channels "
                "swapped to (C_out, C_in)); channel order c*s*s + r1*s + r2 before the shuffle")
    expect("own_code", f_calls, "no call",
           hint="Task 3 computes F.conv_transpose2d by phases, with F.conv2d and your "
                "pixel_shuffle: do not run the transposed convolution under any name "
                "(F.conv_transpose2d, torch.convolution(..., transposed=True), torch.ops.aten, "
                "the input gradient of a strided conv2d by autograd, jax.lax.conv_transpose, "
                "tconv_lib)")
    w_k6 = torch.randn(2, 2, 6, 6, generator=gen)
    expect("s3_k6", _subpixel(x, w_k6, 3),
           F.conv_transpose2d(x, w_k6, stride=3),
           hint="s = 3, k = 6: q = k // s = 2 (pad x by q - 1 = 1), s*s = 9 phases; take s and q "
                "from the arguments, not from the k=4, s=2 example")
    ''')
    b.test("test_subpixel_edges", 2, '''
    gen = torch.Generator().manual_seed(109)  # test_subpixel's x and w, made again
    x, w = torch.randn(2, 2, 3, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    gen = torch.Generator().manual_seed(110)  # this cell's own inputs, whatever ran before
    x1 = torch.randn(1, 2, 1, 1, generator=gen)
    expect("one_pixel", _subpixel(x1, w, 2),
           F.conv_transpose2d(x1, w, stride=2),
           hint="a 1x1 input gives one copy of the kernel")
    w_q3 = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(114))
    expect("k6_s2", _subpixel(x, w_q3, 2), F.conv_transpose2d(x, w_q3, stride=2),
           hint="k = 6, s = 2: q = 3 taps per phase, so pad x by q - 1 = 2 on every side "
                "(q // 2 and min(q - 1, 1) agree with q - 1 only while q <= 2)")
    ### BEGIN HIDDEN TESTS
    w6 = torch.randn(2, 1, 6, 6, generator=gen)
    expect("k6_s3", _subpixel(x, w6, 3), F.conv_transpose2d(x, w6, stride=3),
           hint="s = 3, q = 2")
    w2 = torch.randn(2, 2, 2, 2, generator=gen)
    expect("k_equals_s", _subpixel(x, w2, 2),
           F.conv_transpose2d(x, w2, stride=2),
           hint="k = s: q = 1, no overlap, every phase is a 1x1 convolution")
    w3 = torch.randn(2, 2, 3, 3, generator=gen)
    expect("stride_1", _subpixel(x, w3, 1), F.conv_transpose2d(x, w3),
           hint="s = 1: a single phase, the full-padding convolution with the flipped kernel")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    When `k` is **not** divisible by `s` (say `k=3, s=2`), what are the sub-kernel sizes of the
    phases, and how does that relate to the checkerboard artifacts of Exercise 6? Why do
    sub-pixel layers with ICNR initialisation start without a checkerboard?
    """)
    b.manual("uneven_phases", 2, """
    The phases get ceil(k/s) or floor(k/s) taps per axis: for k=3, s=2, phase 0 uses taps
    {0, 2} (2 taps) and phase 1 tap {1} (1 tap); in 2-D the four phases have 2x2, 2x1, 1x2 and
    1x1 sub-kernels. Phases with more taps sum more terms: that is exactly the uneven overlap of
    Exercise 6, seen per phase. A sub-pixel layer has s^2 independent sub-kernels; ICNR
    initialises all of them to the same kernel, so at initialisation every phase computes the
    same value (equivalent to nearest upsampling followed by a convolution) and the output has
    no period-s pattern; training can then move them apart only gradually.
    """)
    return b


# ----------------------------------------------------------------------------------------------
def ex8_unet() -> Book:
    b = Book("ex8_unet")
    b.md("""
    # Exercise 8: a U-Net decoder block

    Book chapter: [Transposed convolutions in U-Net](../../book/07_unet.md)
    (built page: [07_unet.html](../../_build/html/book/07_unet.html),
    after `make book`).

    The original U-Net (Ronneberger et al., 2015) uses *valid* 3x3 convolutions, so every
    convolution shrinks the map by 2 and the encoder's skip connection is **larger** than the
    upsampled decoder map: it is center-cropped before the concatenation. The up-convolution is
    a 2x2 transposed convolution with stride 2. Use `torch` only (no `tconv_lib`).
    """)
    b.setup(REFERENCE)
    b.md("""
    ## Task 1 (3 points): center crop

    Crop `t` of shape `(N, C, H, W)` to `(N, C, h, w)` keeping the center; when `H - h` is odd,
    the extra row goes to the **bottom** (start at `(H - h) // 2`), likewise for columns. Raise
    `ValueError` if the target is larger than `t`.
    """)
    b.solution("center_crop", '''
    def center_crop(t, size):
        """t[..., top:top+h, left:left+w] with top = (H - h) // 2, left = (W - w) // 2."""
        ### BEGIN SOLUTION
        (h, w), (big_h, big_w) = size, t.shape[-2:]
        if h > big_h or w > big_w:
            raise ValueError(f"cannot crop a {big_h}x{big_w} map to {h}x{w}: size must not "
                             f"exceed the map's size")
        top, left = (big_h - h) // 2, (big_w - w) // 2
        return t[..., top: top + h, left: left + w]
        ### END SOLUTION
    ''')
    b.test("test_center_crop", 2, "import tconv_lib\n\n\n" + WATCH_ANY_NAME + "\n\n\n" + _src('''
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(2, 3, 9, 10, generator=gen)
    got, own_calls = _with_own_calls(center_crop, t, (6, 6), library=tconv_lib)
    expect("odd_even", got, t[..., 1:7, 2:8],
           hint="9 -> 6 removes 3 rows: 1 on top, 2 at the bottom; 10 -> 6 removes 2 each side")
    expect("own_code", own_calls, "no call",
           hint="slice the map yourself: tconv_lib.unet.center_crop, the function this task "
                "rebuilds, is not part of the answer")
    expect("non_square", _called(center_crop, t, (6, 4)), t[..., 1:7, 3:7],
           hint="a 6x4 target: rows follow h and H, columns w and W (10 -> 4 removes 3 "
                "columns on each side)")
    '''))
    b.test("test_center_crop_edges", 1, '''
    # test_center_crop's map, made again (a `t` your cells define changes nothing here)
    t = torch.randn(2, 3, 9, 10, generator=torch.Generator().manual_seed(0))
    expect("same_size", _called(center_crop, t, (9, 10)),
           t, hint="cropping to the same size is a no-op")
    expect_raises("taller_than_map", ValueError, center_crop, t, (10, 6),
                  hint="10 rows cannot be cut from a 9-row map (even though 6 columns fit): "
                       "raise ValueError when h > H or w > W")
    expect_raises("wider_than_map_only", ValueError, center_crop, t, (6, 11),
                  hint="11 columns cannot be cut from a 10-column map (even though 6 rows fit): "
                       "compare h with H and w with W, each (a tuple comparison such as "
                       "size > t.shape[-2:] looks at w only when h == H)")
    ### BEGIN HIDDEN TESTS
    expect("one_pixel", _called(center_crop, t, (1, 1)), t[..., 4:5, 4:5], hint="1x1 center")
    expect("rows_only", _called(center_crop, t, (4, 10)), t[..., 2:6, :], hint="crop rows only")
    expect_raises("too_large", ValueError, center_crop, t, (10, 10),
                  hint="a crop cannot be larger than the map")
    expect_raises("wider_than_map", ValueError, center_crop, t, (9, 11),
                  hint="11 columns from a 10-column map")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 2 (4 points): the decoder block

    `up = conv_transpose2d(low, up_w, up_b, stride=2)` (kernel 2x2); crop `skip` to `up`'s size;
    concatenate `[cropped skip, up]` along channels (skip first); then **two** valid 3x3
    convolutions, each followed by ReLU.

    The tests call your `decoder_block` with your `center_crop`; where that result is wrong,
    they call it once more with a reference center crop in its place and judge that run, so a
    mistake in Task 1 costs Task 1's points only (likewise Task 3's model runs with a reference
    decoder block where yours fails).
    """)
    b.solution("decoder_block", '''
    def decoder_block(low, skip, up_w, up_b, w1, b1, w2, b2):
        """relu(conv(relu(conv(cat[center_crop(skip), up(low)], w1, b1)), w2, b2))."""
        ### BEGIN SOLUTION
        up = F.conv_transpose2d(low, up_w, up_b, stride=2)
        h = torch.cat([center_crop(skip, up.shape[-2:]), up], dim=1)
        return torch.relu(F.conv2d(torch.relu(F.conv2d(h, w1, b1)), w2, b2))
        ### END SOLUTION
    ''')
    b.test("test_decoder_block", 3, '''
    gen = torch.Generator().manual_seed(111)  # this cell's own inputs, whatever ran before
    def _params(c_low, c_skip, c_out, seed):
        g = torch.Generator().manual_seed(seed)
        c_up = c_low // 2
        return (torch.randn(c_low, c_up, 2, 2, generator=g), torch.randn(c_up, generator=g),
                torch.randn(c_out, c_skip + c_up, 3, 3, generator=g) / 3,
                torch.randn(c_out, generator=g),
                torch.randn(c_out, c_out, 3, 3, generator=g) / 3, torch.randn(c_out, generator=g))

    def _reference_crop(t, size):
        """The test's center crop: the extra row (column) of an odd difference at the bottom
        (right)."""
        dh, dw = t.shape[-2] - size[0], t.shape[-1] - size[1]
        return t[..., dh // 2: dh // 2 + size[0], dw // 2: dw // 2 + size[1]]

    def _reference(low, skip, up_w, up_b, w1, b1, w2, b2):
        up = F.conv_transpose2d(low, up_w, bias=up_b, stride=2)
        h = F.conv2d(torch.cat([_reference_crop(skip, up.shape[-2:]), up], 1), w1, b1).relu()
        return F.conv2d(h, w2, b2).relu()

    def _block(*args):
        """Your decoder_block on args, with your center_crop; where that is wrong, once more
        with the test's center crop in its place (setup's _or_with_reference): a mistake in
        Task 1 costs Task 1's points, not these too."""
        return _or_with_reference(lambda: _called(decoder_block, *args), _reference(*args),
                                  {"center_crop": _reference_crop})

    low, skip = torch.randn(2, 4, 6, 5, generator=gen), torch.randn(2, 3, 17, 14, generator=gen)
    ps = _params(4, 3, 2, 1)
    got, own_calls = _or_with_reference(
        lambda: _with_own_calls(decoder_block, low, skip, *ps, library=tconv_lib,
                                oracles=(_reference,)),
        (_reference(low, skip, *ps), "no call"), {"center_crop": _reference_crop})
    expect("block", got, _reference(low, skip, *ps),
           hint="up is 12x10; crop the 17x14 skip to 12x10 (offsets 2 and 2), skip channels "
                "first, then two valid 3x3 conv + ReLU: output 8x6")
    expect("own_code", own_calls, "no call",
           hint="build the block from torch and your center_crop: tconv_lib.unet "
                "(crop_and_concat, center_crop, DoubleConv) and this cell's _reference (what "
                "the tests compare with) are not part of the answer")
    ''')
    b.test("test_decoder_block_edges", 1, '''
    gen = torch.Generator().manual_seed(112)  # this cell's own inputs, whatever ran before
    low2, skip2 = torch.randn(1, 2, 3, 3, generator=gen), torch.randn(1, 1, 6, 6, generator=gen)
    ps2 = _params(2, 1, 1, 2)
    expect("no_crop", _block(low2, skip2, *ps2), _reference(low2, skip2, *ps2),
           hint="skip already has up's size, so nothing to crop: check the order of the "
                "concatenation (cropped skip first, then up) and the two valid 3x3 conv + ReLU")
    ### BEGIN HIDDEN TESTS
    low3, skip3 = torch.randn(1, 4, 3, 4, generator=gen), torch.randn(1, 2, 11, 10, generator=gen)
    ps3 = _params(4, 2, 3, 3)
    expect("odd_crop", _block(low3, skip3, *ps3), _reference(low3, skip3, *ps3),
           hint="11 -> 6 and 10 -> 8: odd differences put the extra row at the bottom")
    ### END HIDDEN TESTS
    ''')
    b.md("""
    ## Task 3 (4 points): make the toy U-Net's shapes work

    `ToyUNet(depth)` below is the original architecture in miniature: at each level two valid
    3x3 convolutions, then a 2x2 max-pool (which must see an **even** size, otherwise a row is
    silently dropped and the skip no longer lines up); at the bottom two valid convolutions; on
    the way up your `decoder_block`. Write `valid_input_size(min_size, depth)`: the smallest
    square input size `n >= min_size` for which every pool sees an even size and the output
    is at least 1x1, and the output size for it. (The original U-Net: 572 -> 388 at depth 4.)
    """)
    b.given("toy_unet", '''
    class ToyUNet(torch.nn.Module):
        """Valid-convolution U-Net, one channel per level (tiny but with the real shapes)."""

        def __init__(self, depth, seed=0):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.depth = depth

            def w(*shape):
                return torch.nn.Parameter(torch.randn(*shape, generator=g) / 3)

            self.down = torch.nn.ParameterList(w(1, 1, 3, 3) for _ in range(2 * depth + 2))
            self.up = torch.nn.ParameterList(w(2, 1, 2, 2) for _ in range(depth))
            self.dec = torch.nn.ParameterList(w(1, 2, 3, 3) if i % 2 == 0 else w(1, 1, 3, 3)
                                              for i in range(2 * depth))
            self.bias = torch.zeros(1)

        def forward(self, x):
            skips = []
            for level in range(self.depth + 1):
                x = F.conv2d(F.conv2d(x, self.down[2 * level]).relu(),
                             self.down[2 * level + 1]).relu()
                if level < self.depth:
                    if x.shape[-1] % 2 or x.shape[-2] % 2:
                        raise ValueError(f"max-pool at level {level} sees odd size "
                                         f"{tuple(x.shape[-2:])}")
                    skips.append(x)
                    x = F.max_pool2d(x, 2)
            for level in reversed(range(self.depth)):
                i = self.depth - 1 - level
                x = torch.cat([x, x], 1)   # two channels in, one up-channel out
                x = decoder_block(x, skips[level], self.up[i], self.bias, self.dec[2 * i],
                                  self.bias, self.dec[2 * i + 1], self.bias)
            return x
    ''')
    b.solution("valid_size", '''
    def valid_input_size(min_size, depth):
        """(n, out): smallest n >= min_size such that, applying "-4 then /2" depth times, every
        pool sees an even size, and out >= 1, where out = bottom size - 4, then "*2 - 4" depth
        times."""
        ### BEGIN SOLUTION
        n = max(min_size, 1)
        while True:
            size, ok = n, True
            for _ in range(depth):
                size -= 4
                if size < 2 or size % 2:
                    ok = False
                    break
                size //= 2
            size -= 4
            if ok and size >= 1:
                out = size
                for _ in range(depth):
                    out = out * 2 - 4
                if out >= 1:
                    return (n, out)
            n += 1
        ### END SOLUTION
    ''')
    b.test("test_valid_size", 2, '''
    from tconv_lib.shapes import conv_output_size, conv_transpose_output_size


    def _simulate(n, depth):
        """Output size of ToyUNet(depth) on n x n, or None if a pool sees an odd size."""
        m = n
        for _level in range(depth):
            m = conv_output_size(conv_output_size(m, 3), 3) if m >= 5 else 0
            if m < 2 or m % 2 == 1:
                return None
            m = m // 2
        if m < 5:
            return None
        m = conv_output_size(conv_output_size(m, 3), 3)
        for _level in range(depth):
            m = conv_transpose_output_size(m, 2, 2) - 4
            if m < 1:
                return None
        return m

    def _smallest(min_size, depth):
        candidate = min_size
        while _simulate(candidate, depth) is None:
            candidate = candidate + 1
        return (candidate, _simulate(candidate, depth))

    got, own_calls = _with_own_calls(valid_input_size, 30, 2, library=tconv_lib)
    expect("depth_2", got, _smallest(30, 2),
           hint="n - 4 must be even, (n - 4)/2 - 4 must be even, and so on; then go back up "
                "with *2 - 4 per level, and the output must be at least 1 (n = 32 pools "
                "evenly but comes back up to -8)")
    expect("pool_sees_odd", _called(valid_input_size, 50, 2), _smallest(50, 2),
           hint="50 would come back up to 8, but 50 - 4 = 46 pools to 23 and 23 - 4 = 19 is odd: "
                "the second pool would drop a row; check that every pool sees an even size, "
                "at every level")
    expect("depth_3", _called(valid_input_size, 60, 3), _smallest(60, 3),
           hint="depth 3: with valid convolutions the sizes that work are not the multiples of "
                "2**depth (the rule for 'same' convolutions): follow n - 4, then / 2, level by "
                "level")
    expect("own_code", own_calls, "no call",
           hint="follow the sizes yourself: tconv_lib.unet (plan_shapes, valid_sizes) does "
                "this ready-made, and tconv_lib.shapes (which this cell uses) is not part of "
                "the answer either")
    ''')
    b.test("test_valid_size_edges", 1, '''
    expect("depth_1", _called(valid_input_size, 10, 1), _smallest(10, 1), hint="depth 1")
    expect("min_size_works", _called(valid_input_size, 18, 1), _smallest(18, 1),
           hint="18 already works for depth 1: the answer is the smallest n >= min_size, "
                "min_size itself included")
    ### BEGIN HIDDEN TESTS
    expect("original_unet", _called(valid_input_size, 570, 4), _smallest(570, 4),
           hint="the original U-Net: 572 -> 388")
    expect("tiny", _called(valid_input_size, 1, 1), _smallest(1, 1),
           hint="the smallest depth-1 input with a non-empty output")
    expect("already_valid", _called(valid_input_size, 44, 2), _smallest(44, 2),
           hint="44 already works for depth 2")
    ### END HIDDEN TESTS
    ''')
    b.test("test_toy_unet_runs", 1, '''
    sizes = _called(valid_input_size, 30, 2)
    n_in, n_out = sizes if isinstance(sizes, tuple | list) and len(sizes) == 2 else (None, None)


    def _toy_unet_shape():
        """The shape ToyUNet(2) (your decoder_block) gives on your input size, or why not."""
        gen = torch.Generator().manual_seed(113)  # this cell's own inputs, whatever ran before
        try:
            return tuple(ToyUNet(2)(torch.randn(1, 1, n_in, n_in, generator=gen)).shape)
        except Exception as exc:  # the error is the answer shown
            return (f"ToyUNet(2)(<an input of size {n_in!r:.40}>) raised {type(exc).__name__}: "
                    f"{str(exc)[:200]}")

    # with the test's decoder block where yours fails: Task 2 is charged in Task 2's cells
    expect("runs", _or_with_reference(_toy_unet_shape, (1, 1, n_out, n_out),
                                      {"decoder_block": _reference}), (1, 1, n_out, n_out),
           hint="ToyUNet(2) must run on your size and give your output size (your "
                "valid_input_size(30, 2) gave " + f"{sizes!r:.80})")
    ''')
    b.md("""
    ## Question (2 points, graded by hand)

    Why does the original U-Net crop the skip connection instead of padding the upsampled map,
    and what changes if every 3x3 convolution uses `padding=1` ("same")? Where would
    `output_padding` then be needed?
    """)
    b.manual("crop_or_pad", 2, """
    With valid convolutions the border pixels of the skip map were computed from fewer real
    neighbours deeper in the decoder's receptive field; the decoder output only covers the
    center, so the skip is cropped to the region that corresponds to the upsampled pixels
    (padding the decoder map would invent values and misalign features). The output is smaller
    than the input (tiles are processed with overlap). With "same" convolutions nothing
    shrinks, skip and up maps have equal sizes as long as every pooled size is even; with an
    odd size the pool floors and the 2x2/stride-2 up-convolution returns one less row, so one
    needs output_padding=1 (or a kernel-3 up-convolution with output_padding, or padding the
    input to a multiple of 2^depth).
    """)
    return b


ALL = [ex1_shapes, ex2_scatter, ex3_matrix, ex4_gradients, ex5_conventions, ex6_checkerboard,
       ex7_subpixel, ex8_unet]


def main(names: list[str]) -> None:
    for make in ALL:
        if not names or make.__name__ in names:
            print(make().write())


if __name__ == "__main__":
    main(sys.argv[1:])
