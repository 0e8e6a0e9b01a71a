r"""TensorFlow/Keras and JAX transposed-convolution arguments as PyTorch-convention calls.

Every framework computes the same operation; they differ in how the output window is chosen.
Start from the **full** output of a transposed convolution with no padding, of length
:math:`F = (i-1)s + K` per axis, where :math:`K = d(k-1)+1` is the dilated kernel size. Each
convention keeps a window of it, described here as a crop :math:`(lo, hi)`: drop ``lo`` entries at
the start and ``hi`` at the end (a negative crop appends zeros).

- **PyTorch** crops symmetrically: ``lo = p`` and ``hi = p - output_padding``.
- **TensorFlow** ``conv2d_transpose(..., output_shape, padding)`` is the gradient of ``conv2d``
  on an input of ``output_shape``; with ``'SAME'`` that convolution pads
  :math:`P = \max((i-1)s + K - o, 0)` in total, ``P // 2`` before and the rest after, so
  ``lo = P // 2``. With ``k=3, s=2`` that gives ``lo = 0, hi = 1``, which PyTorch's symmetric
  ``padding`` cannot express: ``padding=1, output_padding=1`` is the same size but shifted by one
  pixel. :class:`TransposeArgs` then carries an explicit ``crop``.
- **Keras** ``Conv2DTranspose`` computes ``output_shape`` from ``padding`` and ``output_padding``,
  then calls TensorFlow.
- **JAX** ``lax.conv_transpose`` pads the zero-inserted input by ``(a, b)`` and correlates, so
  ``lo = K - 1 - a`` and ``hi = K - 1 - b``; ``'SAME'``/``'VALID'`` expand to pairs first.

Kernel layouts: TF/Keras store ``(*k, C_out, C_in)``; JAX's default ``conv_transpose`` layout is
``(*k, I, O)`` used *without* flipping (``transpose_kernel=False``), i.e. PyTorch's weight is the
spatially flipped kernel; with ``transpose_kernel=True`` the kernel is a forward-conv kernel and
no flip is needed. :func:`tf_kernel_to_torch` and :func:`jax_kernel_to_torch` convert them.

>>> import torch, torch.nn.functional as F
>>> from tconv_lib import conventions
>>> conventions.from_tf(4, kernel_size=4, strides=2, padding="SAME")  # PyTorch can say it
TransposeArgs(stride=(2,), padding=(1,), output_padding=(0,), dilation=(1,), crop=None)
>>> args = conventions.from_tf(4, kernel_size=3, strides=2, padding="SAME")
>>> args.crop                         # one entry off the end only: no symmetric padding does it
((0, 1),)
>>> x, w = torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(2, 3, 3, dtype=torch.float64)
>>> torch.allclose(args(x, w), F.conv_transpose1d(x, w, stride=2)[..., :8])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import backend
from ._args import IntOrTuple, as_int, as_tuple, check_transpose, positive_tuple
from .transpose import conv_transpose

Crop = tuple[tuple[int, int], ...]


def _positive(ndim: int, **values: IntOrTuple) -> list[tuple[int, ...]]:
    """Each argument as ``ndim`` positive ints (:func:`tconv_lib._args.positive_tuple`)."""
    return [positive_tuple(name, value, ndim) for name, value in values.items()]


def _dilated(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))


@dataclass(frozen=True)
class TransposeArgs:
    """A PyTorch-convention transposed convolution, plus an explicit crop when one is needed.

    When ``crop`` is ``None`` the call is exactly
    ``conv_transpose(x, w, b, stride, padding, output_padding, 1, dilation)``. Otherwise
    ``padding`` and ``output_padding`` are zero and the full output is cropped by ``crop[axis] =
    (lo, hi)`` (negative values append zeros), then the bias is added.
    """

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    crop: Crop | None = None

    def output_size(self, input_size: Sequence[int], kernel_size: Sequence[int]
                    ) -> tuple[int, ...]:
        """The output's spatial size for an input of ``input_size`` and a kernel of
        ``kernel_size`` (one entry per spatial dimension each)."""
        input_size, kernel_size = _positive(len(self.stride), input_size=input_size,
                                            kernel_size=kernel_size)
        full = tuple((i - 1) * s + kk for i, s, kk in zip(
            input_size, self.stride, _dilated(kernel_size, self.dilation), strict=True))
        lo_hi = self.crop or tuple((p, p - op) for p, op in zip(self.padding,
                                                                self.output_padding, strict=True))
        return tuple(f - lo - hi for f, (lo, hi) in zip(full, lo_hi, strict=True))

    def __call__(self, x: Any, weight: Any, bias: Any = None, *, method: str = "auto") -> Any:
        """Run it on PyTorch-layout ``x`` (``(N, C_in, *spatial)`` or ``(C_in, *spatial)``),
        ``weight`` (``(C_in, C_out, *k)``) and ``bias`` (``(C_out,)``), checked as
        :func:`tconv_lib.conv_transpose` checks them."""
        nsp = len(self.stride)
        if getattr(weight, "ndim", nsp + 2) != nsp + 2:
            raise ValueError(f"these arguments are for {nsp} spatial dimensions, so weight must "
                             f"have {nsp + 2} dims (C_in, C_out, *kernel), got weight.shape="
                             f"{tuple(weight.shape)}")
        if self.crop is None:
            return conv_transpose(x, weight, bias, self.stride, self.padding,
                                  self.output_padding, 1, self.dilation, method=method)
        xb, _, batched = check_transpose(x, weight, bias, self.stride, 0, 0, 1, self.dilation)
        full = conv_transpose(xb, weight, None, self.stride, 0, 0, 1, self.dilation,
                              method=method)
        spatial = tuple(int(v) for v in full.shape[2:])
        size = tuple(f - lo - hi for f, (lo, hi) in zip(spatial, self.crop, strict=True))
        if any(n < 1 for n in size):
            raise ValueError(f"crop {self.crop} leaves no output from a full output of {spatial}")
        y = backend.crop_or_pad(full, tuple(lo for lo, _ in self.crop), size)
        if bias is not None:
            y = y + backend.namespace(y).reshape(bias, (1, -1) + (1,) * len(size))
        return y if batched else y[0]


def from_crop(crop: Crop, stride: Sequence[int],
              dilation: Sequence[int]) -> TransposeArgs:
    """PyTorch arguments for a crop: ``padding``/``output_padding`` when
    they can express it.

    They can when ``lo >= 0``, ``hi <= lo`` and
    ``lo - hi < max(stride, dilation)`` on every axis.
    """
    stride, dilation = tuple(stride), tuple(dilation)
    if all(lo >= 0 and 0 <= lo - hi < max(s, d)
           for (lo, hi), s, d in zip(crop, stride, dilation, strict=True)):
        return TransposeArgs(stride, tuple(lo for lo, _ in crop),
                             tuple(lo - hi for lo, hi in crop), dilation)
    zeros = (0,) * len(stride)
    return TransposeArgs(stride, zeros, zeros, dilation, tuple(crop))


# --- TensorFlow / Keras --------------------------------------------------------------------------

def tf_same_padding(out: int, i: int, k_dilated: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) that TF's forward ``'SAME'`` convolution of length ``out`` uses."""
    total = max((i - 1) * stride + k_dilated - out, 0)
    return total // 2, total - total // 2


def from_tf(input_size: IntOrTuple, kernel_size: IntOrTuple, strides: IntOrTuple,
            padding: str, output_shape: IntOrTuple | None = None,
            dilations: IntOrTuple = 1) -> TransposeArgs:
    """``tf.nn.conv{1,2,3}d_transpose`` arguments (spatial parts only) as a PyTorch call.

    ``output_shape`` defaults to TF's usual choice: ``i*s`` for ``'SAME'`` and
    ``(i-1)s + K`` for ``'VALID'``. It must be a size whose forward convolution has length ``i``.
    """
    ndim = len(input_size) if isinstance(input_size, Sequence) else 1
    i, k, s, d = _positive(ndim, input_size=input_size, kernel_size=kernel_size,
                           strides=strides, dilations=dilations)
    mode = padding.upper() if isinstance(padding, str) else padding
    if mode not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID' for TensorFlow, got {padding!r}")
    kd = _dilated(k, d)
    if output_shape is None:
        out = tuple(ii * ss if mode == "SAME" else (ii - 1) * ss + kk
                    for ii, ss, kk in zip(i, s, kd, strict=True))
    else:
        (out,) = _positive(ndim, output_shape=output_shape)
    crop = []
    for ii, kk, ss, oo in zip(i, kd, s, out, strict=True):
        fwd = -(-oo // ss) if mode == "SAME" else -(-(oo - kk + 1) // ss)
        if fwd != ii:
            raise ValueError(
                f"output_shape {oo} is inconsistent with input size {ii} for padding={mode!r}, "
                f"stride {ss}, dilated kernel {kk}: TF's forward convolution of length {oo} has "
                f"length {fwd}, not {ii}")
        lo = tf_same_padding(oo, ii, kk, ss)[0] if mode == "SAME" else 0
        crop.append((lo, (ii - 1) * ss + kk - lo - oo))
    return from_crop(tuple(crop), s, d)


def _keras_padding(padding: str, modes: tuple[str, ...]) -> str:
    """Keras' ``padding`` in lower case, one of ``modes`` (Keras takes any case)."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in modes:
        raise ValueError(f"padding must be {' or '.join(repr(m) for m in modes)} (any case) for "
                         f"Keras, got padding={padding!r}")
    return mode


def keras_output_length(i: int, k: int, stride: int, padding: str,
                        output_padding: int | None = None, dilation: int = 1) -> int:
    """Keras' ``deconv_output_length``: the ``output_shape`` ``Conv*DTranspose`` asks TF for.

    ``padding`` is ``'valid'``, ``'same'`` or ``'full'`` (any case, as Keras takes it)."""
    padding = _keras_padding(padding, ("valid", "same", "full"))
    kd = dilation * (k - 1) + 1
    if output_padding is None:
        return {"valid": i * stride + max(kd - stride, 0), "same": i * stride,
                "full": i * stride - (stride + kd - 2)}[padding]
    pad = {"same": kd // 2, "valid": 0, "full": kd - 1}[padding]
    return (i - 1) * stride + kd - 2 * pad + output_padding


def from_keras(input_size: IntOrTuple, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
               padding: str = "valid", output_padding: IntOrTuple | None = None,
               dilation_rate: IntOrTuple = 1) -> TransposeArgs:
    """``keras.layers.Conv{1,2,3}DTranspose`` arguments as a PyTorch call."""
    ndim = len(input_size) if isinstance(input_size, Sequence) else 1
    i, k, s, d = _positive(ndim, input_size=input_size, kernel_size=kernel_size,
                           strides=strides, dilation_rate=dilation_rate)
    padding = _keras_padding(padding, ("valid", "same"))
    ops = (None,) * ndim if output_padding is None else as_tuple("output_padding",
                                                                  output_padding, ndim)
    if output_padding is not None and not all(0 <= op < ss for op, ss in zip(ops, s,
                                                                             strict=True)):
        raise ValueError(f"output_padding must be non-negative and smaller than strides in "
                         f"every dimension (Keras' rule), got output_padding={output_padding!r}"
                         f", strides={strides!r}")
    out = tuple(keras_output_length(*a, padding, op, dd) for a, op, dd in zip(
        zip(i, k, s, strict=True), ops, d, strict=True))
    return from_tf(i, k, s, padding.upper(), out, d)


def tf_kernel_to_torch(kernel: Any) -> Any:
    """TF/Keras transposed-conv kernel ``(*k, C_out, C_in)`` -> PyTorch ``(C_in, C_out, *k)``."""
    backend.check_same_kind(kernel=kernel)
    if kernel.ndim < 3:
        raise ValueError(f"kernel must have at least 3 dims (*k, C_out, C_in), got "
                         f"kernel.shape={tuple(kernel.shape)}")
    xp = backend.namespace(kernel)
    nsp = kernel.ndim - 2
    return xp.permute_dims(kernel, (nsp + 1, nsp) + tuple(range(nsp)))


# --- JAX -----------------------------------------------------------------------------------------

def jax_padding(k_dilated: int, stride: int, padding: str) -> tuple[int, int]:
    """What ``lax.conv_transpose`` pads the zero-inserted input by for 'SAME' or 'VALID'."""
    if padding == "SAME":
        total = k_dilated + stride - 2
        before = k_dilated - 1 if stride > k_dilated - 1 else -(-total // 2)
    elif padding == "VALID":
        total = k_dilated + stride - 2 + max(k_dilated - stride, 0)
        before = k_dilated - 1
    else:
        raise ValueError(f"padding must be 'SAME', 'VALID' or a list of (low, high) pairs, "
                         f"got {padding!r}")
    return before, total - before


def from_jax(kernel_size: IntOrTuple, strides: IntOrTuple,
             padding: str | Sequence[tuple[int, int]], rhs_dilation: IntOrTuple | None = None,
             use_consistent_padding: bool = False) -> TransposeArgs:
    """``jax.lax.conv_transpose`` arguments (spatial parts) as a PyTorch call.

    Pairs in ``padding`` are the padding of the zero-inserted input (JAX's default); with
    ``use_consistent_padding=True`` they are forward-convolution paddings, as for strings.
    Convert the kernel with :func:`jax_kernel_to_torch`.
    """
    ndim = len(strides) if isinstance(strides, Sequence) else (
        len(kernel_size) if isinstance(kernel_size, Sequence) else 1)
    k, s, d = _positive(ndim, kernel_size=kernel_size, strides=strides,
                        rhs_dilation=1 if rhs_dilation is None else rhs_dilation)
    kd = _dilated(k, d)
    if isinstance(padding, str):
        pads = tuple(jax_padding(kk, ss, padding) for kk, ss in zip(kd, s, strict=True))
    else:
        try:
            pairs = tuple((as_int("padding", lo), as_int("padding", hi)) for lo, hi in padding)
        except (TypeError, ValueError):
            raise TypeError(f"padding must be 'SAME', 'VALID' or one (low, high) pair of ints "
                            f"per spatial dimension ({ndim}), got {padding!r}") from None
        if len(pairs) != ndim:
            raise ValueError(f"padding must have one (low, high) pair per spatial dimension "
                             f"({ndim}), got {padding!r}")
        pads = (tuple((kk - 1 - a, kk - 1 - b) for kk, (a, b) in zip(kd, pairs, strict=True))
                if use_consistent_padding else pairs)
    crop = tuple((kk - 1 - a, kk - 1 - b) for kk, (a, b) in zip(kd, pads, strict=True))
    return from_crop(crop, s, d)


def jax_kernel_to_torch(rhs: Any, rhs_spec: str = "HWIO", transpose_kernel: bool = False) -> Any:
    """A ``lax.conv_transpose`` kernel -> PyTorch ``(C_in, C_out, *k)``.

    ``rhs_spec`` names the axes (``'I'``/``'O'`` and one letter per spatial axis, in order);
    JAX's defaults are ``'IO'``, ``'HIO'``, ``'HWIO'``, ``'HWDIO'``. Without
    ``transpose_kernel`` JAX correlates with the kernel as given, so it is flipped here; with it,
    JAX flips and swaps I/O itself, so the kernel is already a forward-conv kernel.
    """
    xp = backend.namespace(rhs)
    backend.check_same_kind(rhs=rhs)
    if (not isinstance(rhs_spec, str) or len(rhs_spec) != rhs.ndim or rhs.ndim < 3
            or rhs_spec.count("I") != 1 or rhs_spec.count("O") != 1):
        raise ValueError(f"rhs_spec must name every axis of the kernel with one 'I', one 'O' "
                         f"and one letter per spatial axis, got rhs_spec={rhs_spec!r} for a "
                         f"kernel of {rhs.ndim} dims")
    spatial = tuple(n for n, c in enumerate(rhs_spec) if c not in "IO")
    i_ax, o_ax = rhs_spec.index("I"), rhs_spec.index("O")
    if transpose_kernel:
        return xp.permute_dims(rhs, (o_ax, i_ax) + spatial)
    w = xp.permute_dims(rhs, (i_ax, o_ax) + spatial)
    return xp.flip(w, axis=tuple(range(2, rhs.ndim)))
