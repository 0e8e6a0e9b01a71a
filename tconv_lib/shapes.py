r"""Shape arithmetic of convolution and transposed convolution.

Notation (the book's): input size :math:`i`, kernel size :math:`k`, stride :math:`s`, padding
:math:`p`, output padding :math:`op`, dilation :math:`d`. The dilated kernel covers
:math:`d(k-1)+1` positions.

Forward convolution (``F.conv*d``):

.. math:: o = \left\lfloor \frac{i + 2p - d(k-1) - 1}{s} \right\rfloor + 1

Transposed convolution (``F.conv_transpose*d``):

.. math:: o = (i-1)s - 2p + d(k-1) + op + 1

Because of the floor, ``s`` different forward input sizes give the same forward output size;
``output_padding`` picks one of them when going back. The ``relationship`` function reproduces the
numbered relationships of Dumoulin & Visin, "A guide to convolution arithmetic" (2016).
"""

from __future__ import annotations

from collections.abc import Sequence


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{name} must be positive, got {name}={v}")


def _check_non_negative(**values: int) -> None:
    for name, v in values.items():
        if v < 0:
            raise ValueError(f"{name} must be non-negative, got {name}={v}")


def conv_output_size(i: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a forward convolution along one axis."""
    _check_positive(i=i, k=k, stride=stride, dilation=dilation)
    _check_non_negative(padding=padding)
    return (i + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_output_size(i: int, k: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis."""
    _check_positive(i=i, k=k, stride=stride, dilation=dilation)
    _check_non_negative(padding=padding, output_padding=output_padding)
    return (i - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def conv_output_shape(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """:func:`conv_output_size` for every spatial axis."""
    return tuple(conv_output_size(*a) for a in zip(spatial, kernel, stride, padding, dilation,
                                                   strict=True))


def conv_transpose_output_shape(spatial: Sequence[int], kernel: Sequence[int],
                                stride: Sequence[int], padding: Sequence[int],
                                output_padding: Sequence[int], dilation: Sequence[int]
                                ) -> tuple[int, ...]:
    """:func:`conv_transpose_output_size` for every spatial axis."""
    return tuple(conv_transpose_output_size(*a) for a in zip(
        spatial, kernel, stride, padding, output_padding, dilation, strict=True))


def output_size_range(i: int, k: int, stride: int = 1, padding: int = 0,
                      dilation: int = 1) -> range:
    """Every output length a transposed convolution can produce from length ``i``.

    They are the lengths whose forward convolution (same k, s, p, d) has length ``i`` again:
    ``output_padding = 0 .. stride-1``. This is the range PyTorch accepts for ``output_size=``.
    """
    low = conv_transpose_output_size(i, k, stride, padding, 0, dilation)
    return range(max(low, 1), low + stride)


def output_padding_for(i: int, target: int, k: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1) -> int:
    """The ``output_padding`` that takes a transposed convolution of length ``i`` to ``target``.

    Raises ``ValueError`` naming the reachable range when ``target`` cannot be reached.
    """
    sizes = output_size_range(i, k, stride, padding, dilation)
    if target not in sizes:
        raise ValueError(
            f"target output size {target} is unreachable from input size {i} with k={k}, "
            f"stride={stride}, padding={padding}, dilation={dilation}: reachable sizes are "
            f"{sizes.start}..{sizes.stop - 1} (output_padding 0..{stride - 1})")
    return target - conv_transpose_output_size(i, k, stride, padding, 0, dilation)


def conv_input_sizes(o: int, k: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> list[int]:
    """Every forward-convolution input length that produces output length ``o``.

    With ``stride > 1`` there are up to ``stride`` of them: this is the ambiguity that
    ``output_padding`` resolves. Entry ``j`` of the result is reached by ``output_padding=j``.
    """
    low = conv_transpose_output_size(o, k, stride, padding, 0, dilation)
    return [n for n in range(low, low + stride)
            if n >= 1 and conv_output_size(n, k, stride, padding, dilation) == o]


# --- Dumoulin & Visin (2016), "A guide to convolution arithmetic for deep learning" -----------

RELATIONSHIPS: dict[int, str] = {
    1: "conv, no zero padding, unit strides: o = (i - k) + 1",
    2: "conv, zero padding, unit strides: o = (i - k) + 2p + 1",
    3: "conv, half (same) padding p = floor(k/2), k odd, unit strides: o = i",
    4: "conv, full padding p = k - 1, unit strides: o = i + (k - 1)",
    5: "conv, no zero padding, non-unit strides: o = floor((i - k) / s) + 1",
    6: "conv, zero padding, non-unit strides: o = floor((i + 2p - k) / s) + 1",
    7: "pooling, window k, stride s: o = floor((i - k) / s) + 1",
    8: "transposed of rel. 1 (conv with p' = k - 1): o' = i' + (k - 1)",
    9: "transposed of rel. 2 (conv with p' = k - p - 1): o' = i' + (k - 1) - 2p",
    10: "transposed of rel. 3 (half padding): o' = i'",
    11: "transposed of rel. 4 (full padding, conv with p' = 0): o' = i' - (k - 1)",
    12: "transposed of rel. 5 with (i - k) mod s = 0: o' = s(i' - 1) + k",
    13: "transposed of rel. 6 with (i + 2p - k) mod s = 0: o' = s(i' - 1) + k - 2p",
    14: "transposed of rel. 6 with a = (i + 2p - k) mod s: o' = s(i' - 1) + a + k - 2p",
    15: "conv with dilation d: o = floor((i + 2p - k - (k - 1)(d - 1)) / s) + 1",
}
"""The relationships, numbered as in the guide: 1-6 convolution, 7 pooling, 8-14 transposed
convolution, 15 dilated convolution. The guide gives no numbered relationship for a dilated
*transposed* convolution; :data:`DILATED_TRANSPOSED` states it (it is the general formula of
:func:`conv_transpose_output_size` with ``op = a``)."""

DILATED_TRANSPOSED = ("transposed of rel. 15 with a = (i + 2p - d(k - 1) - 1) mod s: "
                      "o' = s(i' - 1) + d(k - 1) + 1 - 2p + a")
"""The transpose of relationship 15: this course's extension, not numbered by the guide."""


def relationship(n: int, i: int, k: int, s: int = 1, p: int = 0, d: int = 1, a: int = 0) -> int:
    """Output size by Dumoulin & Visin's relationship ``n`` (see :data:`RELATIONSHIPS`).

    ``i`` is the input of the operation itself (for transposed ones, the guide's ``i'``).
    Each formula is written as the guide states it; the tests check it against the general
    formulas above and against PyTorch, under the relationship's own preconditions.
    """
    formulas = {
        1: lambda: (i - k) + 1,
        2: lambda: (i - k) + 2 * p + 1,
        3: lambda: i,
        4: lambda: i + (k - 1),
        5: lambda: (i - k) // s + 1,
        6: lambda: (i + 2 * p - k) // s + 1,
        7: lambda: (i - k) // s + 1,
        8: lambda: i + (k - 1),
        9: lambda: i + (k - 1) - 2 * p,
        10: lambda: i,
        11: lambda: i - (k - 1),
        12: lambda: s * (i - 1) + k,
        13: lambda: s * (i - 1) + k - 2 * p,
        14: lambda: s * (i - 1) + a + k - 2 * p,
        15: lambda: (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1,
    }
    if n not in formulas:
        raise ValueError(f"relationship number n must be one of 1..15 (the guide's numbering), "
                         f"got n={n}")
    return formulas[n]()


def dilated_transposed_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1,
                            a: int = 0) -> int:
    """Output size by :data:`DILATED_TRANSPOSED`, the unnumbered transpose of relationship 15."""
    return s * (i - 1) + d * (k - 1) + 1 - 2 * p + a
