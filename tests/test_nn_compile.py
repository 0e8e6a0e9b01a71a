"""tconv_lib.nn inside PyTorch's compilers: ``torch.compile`` (``fullgraph=True``,
``dynamic=True``), ``torch.export.export`` and ``torch.jit.script``, with PyTorch's modules in
float64 as the oracle. The modules reach them as the custom operators of ``tconv_lib._ops``
(``torch.ops.tconv.*``); before, ``fullgraph=True`` failed on the autograd.Function's ``jvp``
('Dynamo does not support tracing autograd.Function subclasses that define a custom jvp'),
``torch.export`` traced tconv_lib's Python into aten ops, and ``torch.jit.script`` failed on
the f-string in ``forward``.

Compiling is slow on a small machine: the file uses one tiny model, and its tests share one
xdist group (one worker, one warm compiler)."""

from __future__ import annotations

import io
import time

import pytest
import torch

from tconv_lib import nn as tnn

# torch's own DeprecationWarnings: torch.jit.script, save and load (below), and torch.jit.script
# on the first use of forward-mode AD (torch/_decomp/decompositions_for_jvp.py)
JIT_WARNING = r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
pytestmark = [pytest.mark.xdist_group("torch-compile"), pytest.mark.filterwarnings(JIT_WARNING)]


class Net(torch.nn.Module):
    """One module of each dimension, one of them given ``output_size``."""

    def __init__(self, lib) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up1 = lib.ConvTranspose1d(2, 3, 3, stride=2, padding=1, output_padding=1)
        self.up2 = lib.ConvTranspose2d(2, 4, 3, stride=2, padding=1, groups=2)
        self.up3 = lib.ConvTranspose3d(2, 2, (1, 2, 2), stride=(1, 2, 2), bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = [2 * x.shape[-2], 2 * x.shape[-1]]
        return (self.up1(x.flatten(-2)), torch.tanh(self.up2(x, output_size=size)),
                self.up3(x.unsqueeze(-3)))


def _nets() -> tuple[Net, Net]:
    return Net(tnn).double(), Net(torch.nn).double()


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _forward_backward(model, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs, then the gradients of the input and of every parameter."""
    model.zero_grad()
    x = x.clone().requires_grad_()
    outs = model(x)
    sum(o.pow(2).sum() for o in outs).backward()
    return [*outs, x.grad, *(p.grad for p in model.parameters())]


def _tconv_nodes(graph: torch.fx.Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if "tconv" in str(n.target)]


def test_compile_fullgraph_matches_pytorch_and_reports_compile_time() -> None:
    """``torch.compile(model, fullgraph=True)`` (inductor) of a model of tconv_lib modules:
    no graph break, PyTorch's forward and gradients. Both models' compile times (forward and
    backward, inductor's cache off) are printed, never asserted."""
    ours, theirs = _nets()
    x = _x(2, 2, 4, 4)
    expected = _forward_backward(theirs, x)
    seconds = {}
    with torch._inductor.utils.fresh_inductor_cache():
        torch.compile(torch.sin, fullgraph=True)(x)       # the compiler's one-off start-up
        for name, model in (("tconv_lib", ours), ("torch.nn", theirs)):
            torch._dynamo.reset()
            start = time.perf_counter()
            got = _forward_backward(torch.compile(model, fullgraph=True), x)
            seconds[name] = time.perf_counter() - start
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    print("torch.compile(fullgraph=True), first forward + backward: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))


def test_compile_dynamic_takes_new_shapes_without_recompiling() -> None:
    """``dynamic=True``: other batch and spatial sizes run the one graph (the fake rules keep
    sizes symbolic), with PyTorch's values and gradients. The sizes differ from each other and
    from 1, or the compiler's duck sizing and 0/1 specialisation recompile, as for PyTorch's
    own modules."""
    from torch._dynamo.testing import CompileCounterWithBackend

    ours, theirs = _nets()
    backend = CompileCounterWithBackend("aot_eager")        # AOT autograd, no code generated
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True, dynamic=True, backend=backend)
    for shape in ((3, 2, 4, 5), (5, 2, 6, 7), (4, 2, 3, 6)):
        x = _x(*shape)
        torch.testing.assert_close(_forward_backward(compiled, x), _forward_backward(theirs, x),
                                   rtol=1e-12, atol=1e-12)
    assert len(backend.graphs) == 1
    assert _tconv_nodes(backend.graphs[0].graph) == ["tconv.conv_transpose.default"] * 3


def test_export_gives_one_custom_op_node_per_module() -> None:
    """``torch.export.export`` (with a dynamic batch) holds one ``tconv.conv_transpose`` node
    per module, runs PyTorch's values on another batch, and survives save and load."""
    ours, theirs = _nets()
    batch = torch.export.Dim("batch")
    ep = torch.export.export(ours, (_x(2, 2, 4, 4),), dynamic_shapes=({0: batch},))
    assert _tconv_nodes(ep.graph) == ["tconv.conv_transpose.default"] * 3
    buffer = io.BytesIO()
    torch.export.save(ep, buffer)
    buffer.seek(0)
    x = _x(3, 2, 4, 4)
    for program in (ep, torch.export.load(buffer)):
        torch.testing.assert_close(program.module()(x), theirs(x), rtol=1e-12, atol=1e-12)


def test_jit_script_matches_pytorch_and_saves() -> None:
    """``torch.jit.script`` of the modules (it failed: "Don't support conversion in
    JoinedStr"): batched and unbatched input, gradients, and a save/load round trip."""
    ours, theirs = _nets()
    scripted = torch.jit.script(ours)
    x = _x(2, 2, 4, 4)
    torch.testing.assert_close(_forward_backward(scripted, x), _forward_backward(theirs, x),
                               rtol=1e-12, atol=1e-12)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    torch.testing.assert_close(loaded.up2(x[0]), theirs.up2(x[0]), rtol=1e-12, atol=1e-12)


def test_custom_ops_pass_opcheck_and_gradgradcheck() -> None:
    """The three operators pass ``torch.library.opcheck`` (schema, fake shapes and strides,
    autograd registration, AOT with dynamic shapes), channels-last included, and are
    differentiable twice."""
    ops = torch.ops.tconv
    gen = torch.Generator().manual_seed(2)
    x, w, b = (torch.randn(s, dtype=torch.float64, generator=gen, requires_grad=True)
               for s in ((2, 4, 3, 3), (4, 3, 3, 2), (6,)))
    geo = ([2, 1], [1, 0], [1, 0], 2, [1, 2])
    g = ops.conv_transpose(x, w, b, *geo, "auto").detach().requires_grad_()
    cases = [(ops.conv_transpose.default, (x, w, b, *geo, "auto")),
             (ops.conv_transpose.default,
              (x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(), w,
               None, *geo, "phase")),
             (ops.conv_transpose_input_grad.default, (g, w, [3, 3], *geo[:2], *geo[3:])),
             (ops.conv_transpose_weight_grad.default, (x, g, [3, 2], *geo[:2], *geo[3:]))]
    for op, args in cases:
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, (op, result)

    def f(x, w, b):
        return ops.conv_transpose(x, w, b, *geo, "auto")

    small = (x[:1, :, :2].detach().requires_grad_(), w, b)
    assert torch.autograd.gradcheck(f, small)
    assert torch.autograd.gradgradcheck(f, small)


def test_a_bad_call_fails_while_compiling_with_tconv_libs_message() -> None:
    """A wrong input is named as in eager mode, when the graph is traced."""
    model = tnn.ConvTranspose2d(2, 3, 3).double()
    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"input has 3 channels but weight.shape\[0\] \(C_in\) "
                                        r"is 2"):
        torch.compile(model, fullgraph=True, backend="eager")(_x(1, 3, 4, 4))


def test_compile_follows_autocast_like_pytorch() -> None:
    """Inside ``torch.autocast`` a compiled float32 model returns bfloat16, as PyTorch's does,
    close to the float64 result."""
    ours, theirs = (m.float() for m in _nets())
    x = _x(2, 2, 4, 4)
    exact = theirs.double()(x)
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = compiled(x.float())
    for a, e in zip(got, exact, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.double(), e.detach(), rtol=0.05, atol=0.1)


def test_forward_mode_ad_inside_compile_gives_pytorchs_values() -> None:
    """Forward-mode AD compiled around a module: the custom op has no forward-mode rule (a
    compiled ``torch.func.jvp`` through it returned a wrong tangent, silently, and a dual
    tensor failed an internal assert), so there the module breaks the graph and runs its
    ``autograd.Function`` eagerly. ``torch.func.jvp``, ``grad`` and ``vmap`` take the same way
    (checked by hand; slow to compile, as dynamo then compiles torch.func's own frames)."""
    import torch.autograd.forward_ad as fwAD

    ours, theirs = (lib.ConvTranspose1d(2, 3, 3, stride=2).double() for lib in (tnn, torch.nn))
    theirs.load_state_dict(ours.state_dict())
    x = _x(4, 2, 5)

    def run(m):
        with fwAD.dual_level():
            return fwAD.unpack_dual(m(fwAD.make_dual(x, torch.ones_like(x)))).tangent

    torch._dynamo.reset()
    got = torch.compile(lambda: run(ours), backend="aot_eager")()
    torch.testing.assert_close(got, run(theirs), rtol=1e-12, atol=1e-12)


def test_the_function_compiles_to_one_custom_op_node() -> None:
    """``tconv_lib.conv_transpose`` itself (not only the modules) is one
    ``tconv.conv_transpose`` node under ``torch.compile(fullgraph=True)``, with PyTorch's
    values and gradients. Before, Dynamo traced its Python (the method dispatch, the workspace,
    the phase planes) into dozens of aten ops."""
    import torch.nn.functional as F
    from torch._dynamo.testing import CompileCounterWithBackend

    import tconv_lib

    def up(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return tconv_lib.conv_transpose(x, w, stride=2, padding=1, output_padding=1)

    backend = CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()
    compiled = torch.compile(up, fullgraph=True, backend=backend)
    x, w = _x(2, 3, 4, 5), _x(3, 2, 3, 3)
    got, expected = [], []
    for fn, out in ((compiled, got), (F.conv_transpose2d, expected)):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = (fn(xx, ww) if fn is compiled
             else fn(xx, ww, stride=2, padding=1, output_padding=1))
        y.pow(2).sum().backward()
        out += [y, xx.grad, ww.grad]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert _tconv_nodes(backend.graphs[0].graph) == ["tconv.conv_transpose.default"]


class _TraceNet(Net):
    """Net without ``output_size``: fx cannot trace a size computed from the input's Proxy
    (torch.nn's modules are leaves of the tracer; ours are traced through to one call)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.up1(x.flatten(-2)), torch.tanh(self.up2(x)), self.up3(x.unsqueeze(-3)))


def test_fx_symbolic_trace_records_one_call_per_module() -> None:
    """``torch.fx.symbolic_trace`` gives one call_function node of
    ``tconv_lib.nn.conv_transpose_autograd`` per module, and the GraphModule computes what
    torch.nn's modules do, forward and backward. Before, tracing failed in the argument checks
    ('input must be a NumPy array or a torch tensor, got Proxy')."""
    ours, theirs = _TraceNet(tnn).double(), _TraceNet(torch.nn).double()
    ours.load_state_dict(theirs.state_dict())
    traced = torch.fx.symbolic_trace(ours)
    calls = [n for n in traced.graph.nodes
             if n.op == "call_function" and n.target is tnn.conv_transpose_autograd]
    assert len(calls) == 3, traced.graph
    x = _x(2, 2, 3, 4)
    names = [name for name, _ in theirs.named_parameters()]
    got = dict(zip(["y1", "y2", "y3", "x", *names], _forward_backward(traced, x), strict=True))
    got.update((name, p.grad) for name, p in traced.named_parameters())
    expected = dict(zip(["y1", "y2", "y3", "x", *names], _forward_backward(theirs, x),
                        strict=True))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-12, msg=key)
