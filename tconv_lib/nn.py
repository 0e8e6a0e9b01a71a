"""Drop-in replacements for ``torch.nn.ConvTranspose{1,2,3}d`` backed by tconv_lib.

The forward pass is :func:`tconv_lib.conv_transpose`; the backward pass is written with
tconv_lib's own operations (:mod:`tconv_lib.gradients`):

- grad_input  = ``conv(grad_out, w, stride, padding, dilation, groups)``
- grad_weight = the correlation of ``grad_out`` (as input) with ``x`` (as output gradient)
- grad_bias   = ``grad_out`` summed over batch and space

Because the backward is made of differentiable torch operations, second derivatives work too
(``torch.autograd.gradgradcheck`` passes in float64). The function has ``jvp`` and ``vmap`` rules,
so forward-mode AD and ``torch.func`` (``grad``, ``vmap``, ``jacrev``, ``jacfwd``, ``hessian``,
per-sample gradients as ``vmap(grad(...))``) take the modules as they take PyTorch's.

PyTorch's compilers take them too: inside ``torch.compile`` (``fullgraph=True``, ``dynamic=True``)
and ``torch.export``, and in ``torch.jit.script``, each call is one node of the custom operator
``torch.ops.tconv.conv_transpose`` (:mod:`tconv_lib._ops`), whose output shape and backward are
registered; eager calls keep the ``autograd.Function``.

:func:`convert` puts these modules in place of torch.nn's in a model already built, keeping its
parameters.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from . import _ops, backend, gradients, shapes
from ._args import IntOrTuple
from .conv import conv
from .transpose import check_method, conv_transpose


class ConvTransposeFunction(torch.autograd.Function):
    """Batched transposed convolution with tconv_lib's forward and backward.

    Written in the ``setup_context`` style, with a ``jvp`` and a ``vmap`` rule, so that
    ``torch.func`` (``grad``, ``vmap``, ``jacrev``, ``jvp``) and forward-mode AD take it as
    they take ``F.conv_transpose*d``."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, ...], padding: tuple[int, ...],
                output_padding: tuple[int, ...], groups: int, dilation: tuple[int, ...],
                method: str = "auto") -> torch.Tensor:
        return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                              method=method)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, bias, stride, padding, output_padding, groups, dilation, *method = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.forward_args = (stride, padding, output_padding, groups, dilation)
        ctx.method = method[0] if method else "auto"
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        """The arithmetic of :mod:`tconv_lib.gradients`' checked entries
        (``conv_transpose_input_grad``, ``conv_transpose_weight_grad``,
        ``bias_grad``) without their argument checks: the forward checked
        the call, and autograd hands ``grad_out`` over in the output's
        shape, dtype and device. :func:`tconv_lib.conv` gives the input
        gradient, :func:`tconv_lib.gradients.conv_weight_grad` the
        weight's (a repeated tiny call runs by its kept plan,
        :mod:`tconv_lib._small`), their arrays cropped or padded to size by
        :func:`tconv_lib.backend.crop_or_pad`."""
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        kernel, x_size = tuple(weight.shape[2:]), tuple(x.shape[2:])
        zeros = (0,) * len(x_size)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # a convolution, cropped to x (output_padding extends it past x)
            grad_x = backend.crop_or_pad(
                conv(grad_out, weight, None, stride, padding, dilation, groups),
                zeros, x_size)
        if ctx.needs_input_grad[1]:
            # the correlation of grad_out with x, padded with zeros to the size
            # of grad_out's convolution: x's plus output_padding // stride
            # (longer only when output_padding reaches the stride)
            output_padding = ctx.forward_args[2]
            size = tuple(i + o // s for i, o, s in
                         zip(x_size, output_padding, stride, strict=True))
            grad_w = gradients.conv_weight_grad(
                grad_out, backend.crop_or_pad(x, zeros, size), kernel, stride,
                padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, *range(2, grad_out.ndim)))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, dx: Any, dw: Any, db: Any, *_: Any) -> torch.Tensor:
        """Forward mode: the output is linear in ``x``, in ``weight`` and in ``bias``."""
        x, weight = ctx.saved_tensors
        stride, padding, output_padding, groups, dilation = ctx.forward_args
        out = shapes.conv_transpose_output_shape(tuple(x.shape[2:]), tuple(weight.shape[2:]),
                                                 stride, padding, output_padding, dilation)
        y = x.new_zeros((x.shape[0], weight.shape[1] * groups) + out)
        for a, b in ((dx, weight), (x, dw)):
            if a is not None and b is not None:
                y = y + ConvTransposeFunction.apply(a, b, None, *ctx.forward_args, ctx.method)
        if db is not None:
            y = y + db.reshape((1, -1) + (1,) * len(out))
        return y

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None, stride: tuple[int, ...], padding: tuple[int, ...],
             output_padding: tuple[int, ...], groups: int, dilation: tuple[int, ...],
             method: str = "auto") -> tuple[torch.Tensor, int]:
        """``torch.func.vmap``: a mapped input joins the batch; mapped weights or biases
        become ``info.batch_size`` times the groups (as PyTorch's own batching rule does)."""
        x_dim, w_dim, b_dim = in_dims[:3]
        n_map = info.batch_size
        apply = ConvTransposeFunction.apply
        if w_dim is None and b_dim is None:
            y = apply(x.movedim(x_dim, 0).flatten(0, 1), weight, bias, stride, padding,
                      output_padding, groups, dilation, method)
            return y.unflatten(0, (n_map, -1)), 0
        if x_dim is None:
            x = x.unsqueeze(1).expand(-1, n_map, *x.shape[1:])
        else:
            x = x.movedim(x_dim, 1)                         # (N, map, C_in, *spatial)
        w = (weight.movedim(w_dim, 0) if w_dim is not None
             else weight.expand(n_map, *weight.shape))
        b = None
        if bias is not None:
            b = (bias.movedim(b_dim, 0) if b_dim is not None
                 else bias.expand(n_map, *bias.shape)).flatten()
        y = apply(x.flatten(1, 2), w.flatten(0, 1), b, stride, padding, output_padding,
                  groups * n_map, dilation, method)
        return y.unflatten(1, (n_map, -1)), 1


# Function.apply binds its arguments to forward's signature on every call (setup_context
# style); inspect.signature takes a function's __signature__ when it has one, instead of
# building it again (27 us against 1 us here, loaded; a tiny forward takes about 60 us).
ConvTransposeFunction.forward.__signature__ = inspect.signature(ConvTransposeFunction.forward)
# Even so, binding takes longer than a tiny forward's arithmetic; with all nine arguments given
# there is nothing to bind, and outside torch.func's transforms Function.apply only unwraps
# dead wrappers before autograd's C++ apply, which _apply calls straight away.
_BASE_APPLY = super(torch.autograd.Function, ConvTransposeFunction).apply


def _apply(*args: Any) -> torch.Tensor:
    """``ConvTransposeFunction.apply(*args)``, all nine arguments given."""
    if torch._C._are_functorch_transforms_active():
        return ConvTransposeFunction.apply(*args)
    return _BASE_APPLY(*torch._functorch.utils.unwrap_dead_wrappers(args))


def conv_transpose_autograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                            stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                            output_padding: IntOrTuple = 0, groups: int = 1,
                            dilation: IntOrTuple = 1, method: str = "auto") -> torch.Tensor:
    """:func:`tconv_lib.conv_transpose` with tconv_lib's own backward pass (same arguments;
    ``method`` picks the forward's implementation). Differentiable twice. Inside
    ``torch.autocast`` the tensors are cast to its dtype first, as for ``F.conv_transpose*d``.

    >>> import torch
    >>> from tconv_lib.nn import conv_transpose_autograd
    >>> x = torch.ones(1, 1, 2, dtype=torch.float64, requires_grad=True)
    >>> w = torch.tensor([[[1., 2., 3.]]], dtype=torch.float64)
    >>> conv_transpose_autograd(x, w, stride=2).sum().backward()
    >>> x.grad                                          # each input paints 1 + 2 + 3
    tensor([[[6., 6.]]], dtype=torch.float64)
    """
    from ._args import check_transpose

    if torch.compiler.is_compiling():         # torch.compile, torch.export
        if _ops.untransformed():               # one node of the custom operator
            return _ops.conv_transpose(x, weight, bias, stride, padding, output_padding,
                                       groups, dilation, method)
        return torch.compiler.disable(conv_transpose_autograd)(   # torch.func: the Function,
            x, weight, bias, stride, padding, output_padding, groups, dilation, method)  # eagerly
    x, weight, bias = backend.autocast(x, weight, bias)
    xb, geo, batched = check_transpose(x, weight, bias, stride, padding, output_padding, groups,
                                       dilation)
    if not isinstance(x, torch.Tensor):          # then neither are weight and bias (checked)
        raise TypeError(f"x, weight and bias must be torch tensors (autograd records tensors; "
                        f"tconv_lib.conv_transpose takes NumPy arrays), got x of type "
                        f"{type(x).__module__}.{type(x).__name__}")
    y = _apply(xb, weight, bias, geo.stride, geo.padding, geo.output_padding, geo.groups,
               geo.dilation, method)
    return y if batched else y[0]


# torch.fx.symbolic_trace records each module's call as one call_function node of
# conv_transpose_autograd (a leaf: its argument checks cannot read fx's Proxy values), which
# the traced GraphModule then calls as the module did.
torch.fx.wrap("conv_transpose_autograd")


def conv_transpose_to_size(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           stride: tuple[int, ...], padding: tuple[int, ...],
                           output_size: Any, groups: int, dilation: tuple[int, ...],
                           method: str = "auto") -> torch.Tensor:
    """:func:`conv_transpose_autograd` with the ``output_padding`` that ``output_size`` gives by
    ``nn.ConvTranspose*d``'s rule (and its errors). A module's call with a size that
    ``torch.fx.symbolic_trace`` computes (``output_size=skip.shape``) is traced as one node of
    it, which reads the size when the GraphModule runs."""
    kernel = [int(k) for k in weight.shape[2:]]
    output_padding = torch.nn.modules.conv._ConvTransposeNd._output_padding(
        None, x, [int(v) for v in output_size], list(stride), list(padding), kernel,
        len(kernel), list(dilation))             # (self is read only without output_size)
    return conv_transpose_autograd(x, weight, bias, stride, padding, tuple(output_padding),
                                   groups, dilation, method)


torch.fx.wrap("conv_transpose_to_size")


class _TconvMixin:
    """Replaces ``forward`` of a ``torch.nn.ConvTranspose*d`` with tconv_lib's function."""

    method: str = "auto"
    __constants__ = [*torch.nn.modules.conv._ConvNd.__constants__, "method"]   # TorchScript

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: IntOrTuple = 0, output_padding: IntOrTuple = 0,
                 groups: int = 1, bias: bool = True, dilation: IntOrTuple = 1,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None, *,
                 method: str = "auto") -> None:
        # torch.nn's parameters, named (torch.nn.utils.skip_init looks for ``device``)
        check_method(method)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, device, dtype)
        if method != "auto":        # else the class's default: older pickles have none
            self.method = method

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.method == "auto" else f"{s}, method={self.method!r}"

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for transposed convolution, got "
                             f"padding_mode='{self.padding_mode}'")
        if not torch.jit.is_scripting() and self._traced(output_size):   # torch.fx: 1 node
            return conv_transpose_to_size(input, self.weight, self.bias, self.stride,
                                          self.padding, output_size, self.groups, self.dilation,
                                          self.method)
        nsp = len(self.kernel_size)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, nsp, self.dilation)
        if torch.jit.is_scripting():              # TorchScript: the custom op, no autocast
            return torch.ops.tconv.conv_transpose(input, self.weight, self.bias, self.stride,
                                                  self.padding, output_padding, self.groups,
                                                  self.dilation, self.method)
        return conv_transpose_autograd(input, self.weight, self.bias, self.stride, self.padding,
                                       tuple(output_padding), self.groups, self.dilation,
                                       self.method)

    @torch.jit.unused
    def _traced(self, output_size: list[int] | None) -> bool:
        """``output_size`` is, or holds, a ``torch.fx.Proxy``: a size fx's tracing computes."""
        return isinstance(output_size, torch.fx.Proxy) or (
            isinstance(output_size, (list, tuple))
            and any(isinstance(v, torch.fx.Proxy) for v in output_size))

    # TorchScript reads an unused method's signature off its annotations, unevaluated strings
    # in this module (``from __future__ import annotations``): these are the types themselves
    _traced.__annotations__ = {"output_size": list[int] | None, "return": bool}


_DOC = r"""Applies a {d}D transposed convolution over an input of several input planes, computed
    by tconv_lib: a drop-in ``torch.nn.ConvTranspose{d}d`` (same arguments, parameters,
    initialisation and ``state_dict``) whose forward is :func:`tconv_lib.conv_transpose` and
    whose backward is :mod:`tconv_lib.gradients`.

    It is the gradient of ``Conv{d}d`` with respect to its input: every input element paints a
    copy of the kernel scaled by it, ``stride`` apart, and overlaps add.

    Args:
        in_channels (int): number of channels of the input.
        out_channels (int): number of channels the transposed convolution produces.
        kernel_size (int or tuple): size of the kernel.
        stride (int or tuple, optional): distance between the painted kernel copies on the
            output. Default: 1
        padding (int or tuple, optional): cropped from both sides of each spatial dimension
            of the full output (``dilation * (kernel_size - 1) - padding`` zeros pad the
            zero-inserted input). Default: 0
        output_padding (int or tuple, optional): added to the far side of each spatial
            dimension; smaller than ``max(stride, dilation)``. Default: 0
        groups (int, optional): number of blocked connections from input channels to output
            channels; it divides both. Default: 1
        bias (bool, optional): if ``True``, adds a learnable bias to the output. Default: True
        dilation (int or tuple, optional): spacing between kernel taps. Default: 1
        padding_mode (str, optional): only ``'zeros'``; anything else raises ``ValueError``
            when the module is made (PyTorch's own check), or in ``forward`` if it was changed
            afterwards. Default: ``'zeros'``
        device, dtype (optional): of the parameters, as in PyTorch.
        method (str, optional, keyword only): the :data:`tconv_lib.METHODS` entry the forward
            uses, or ``"auto"``; also the attribute ``method``, shown by ``repr`` when it is not
            ``"auto"``. Default: ``"auto"``

    ``forward(input, output_size=None)`` also takes ``output_size``, a target spatial size that
    sets ``output_padding`` by the ``output_size=`` rule of ``nn.ConvTranspose{d}d`` (see
    :func:`tconv_lib.shapes.output_size_range`, ``rule="module"``).

    It compiles as ``nn.ConvTranspose{d}d`` does: ``torch.compile(model, fullgraph=True)`` (and
    ``dynamic=True``), ``torch.export.export`` and ``torch.jit.script`` see one
    ``torch.ops.tconv.conv_transpose`` node of known output shape and gradient, with no graph
    break; a saved ``torch.export`` program or TorchScript module loads after
    ``import tconv_lib.nn``, which registers the operator. Eager calls keep the
    ``autograd.Function`` whose ``jvp`` and ``vmap`` rules ``torch.func`` uses; inside a
    compiled ``torch.func`` transform or forward-mode AD the module breaks the graph and runs
    that Function eagerly.

    Shape:
        - Input: :math:`(N, C_{{in}}, {spatial_in})` or :math:`(C_{{in}}, {spatial_in})`
        - Output: :math:`(N, C_{{out}}, {spatial_out})` or :math:`(C_{{out}}, {spatial_out})`,
          where on every spatial axis :math:`a`

          .. math:: o_a = (i_a - 1) s_a - 2 p_a + d_a (k_a - 1) + op_a + 1

    Attributes:
        weight (Tensor): the learnable weights, of shape
            :math:`(C_{{in}}, C_{{out}}/\text{{groups}}, {kernel})`.
        bias (Tensor): the learnable bias, of shape :math:`(C_{{out}})` (``None`` without bias).
        method (str): the :data:`tconv_lib.METHODS` entry the forward uses. Default: ``"auto"``

    Raises:
        ValueError, TypeError: as :func:`tconv_lib.conv_transpose`, naming the argument, the
            rule and the value; ``ValueError`` for an unreachable ``output_size``.

    Examples:
        >>> import torch
        >>> from tconv_lib import nn
        >>> up = nn.ConvTranspose{d}d(4, 2, kernel_size=3, stride=2, padding=1, output_padding=1)
        >>> up(torch.zeros(1, 4, {example_in})).shape
        torch.Size([1, 2, {example_out}])
        >>> up(torch.zeros(1, 4, {example_in}), output_size=[{example_size}]).shape
        torch.Size([1, 2, {example_size}])
    """


class ConvTranspose1d(_TconvMixin, torch.nn.ConvTranspose1d):
    __doc__ = _DOC.format(d=1, spatial_in=r"L_{in}", spatial_out=r"L_{out}", kernel="k",
                          example_in="5", example_out="10", example_size="9")


class ConvTranspose2d(_TconvMixin, torch.nn.ConvTranspose2d):
    __doc__ = _DOC.format(d=2, spatial_in=r"H_{in}, W_{in}", spatial_out=r"H_{out}, W_{out}",
                          kernel=r"k_H, k_W", example_in="5, 5", example_out="10, 10",
                          example_size="9, 10")


class ConvTranspose3d(_TconvMixin, torch.nn.ConvTranspose3d):
    __doc__ = _DOC.format(d=3, spatial_in=r"D_{in}, H_{in}, W_{in}",
                          spatial_out=r"D_{out}, H_{out}, W_{out}", kernel=r"k_D, k_H, k_W",
                          example_in="3, 5, 5", example_out="6, 10, 10",
                          example_size="5, 9, 10")


_FROM_TORCH = {torch.nn.ConvTranspose1d: ConvTranspose1d, torch.nn.ConvTranspose2d: ConvTranspose2d,
               torch.nn.ConvTranspose3d: ConvTranspose3d}


def convert(module: torch.nn.Module, method: str = "auto") -> torch.nn.Module:
    r"""Puts tconv_lib's modules in place of every ``torch.nn.ConvTranspose{1,2,3}d`` in
    ``module``, as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` does for batch norm.

    Each replacement has the replaced module's arguments, ``padding_mode`` and train/eval mode,
    and holds the same ``weight`` and ``bias`` Parameter objects (an optimizer made before
    keeps updating them; no copy, no new initialisation); hooks are not carried over.
    Children are replaced in place; a ``module`` that is itself a ``ConvTranspose*d`` is
    returned replaced. Modules that are already tconv_lib's, and subclasses of torch's, are
    left alone.

    Args:
        module (torch.nn.Module): the model.
        method (str, optional): the :data:`tconv_lib.METHODS` entry, or ``"auto"``, that the
            new modules' forward uses. Default: ``"auto"``

    Returns:
        ``module`` (or its replacement).

    Examples:
        >>> import torch
        >>> from tconv_lib import nn
        >>> model = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 2, 3, stride=2),
        ...                             torch.nn.ReLU())
        >>> nn.convert(model)[0]
        ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2))
        >>> type(model[0]).__module__
        'tconv_lib.nn'
    """
    check_method(method)
    if type(module) in _FROM_TORCH:
        old = module
        module = _FROM_TORCH[type(old)](
            old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
            old.output_padding, old.groups, old.bias is not None, old.dilation,
            old.padding_mode, device="meta", method=method)      # meta: nothing initialised
        module.weight, module.bias = old.weight, old.bias
        module.train(old.training)
    for name, child in module.named_children():
        module.add_module(name, convert(child, method))
    return module
