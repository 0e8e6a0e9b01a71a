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

PyTorch has **two rules** for how far ``output_padding`` may go, and the functions below say
which one they follow (the ``rule`` argument of :func:`output_size_range` and
:func:`output_padding_for` picks it; :func:`max_output_padding` states it):

- ``"module"``: ``nn.ConvTranspose*d(...)(x, output_size=...)`` accepts ``0 <= op < stride``,
  exactly the sizes whose forward convolution (same ``k, s, p, d``) has length ``i`` again;
- ``"functional"``: ``F.conv_transpose*d(..., output_padding=op)`` (and
  :func:`tconv_lib.conv_transpose`) accepts ``0 <= op < max(stride, dilation)``. When
  ``dilation > stride`` this reaches sizes whose forward convolution is *longer* than ``i``.

>>> conv_transpose_output_size(4, k=3, stride=2, padding=1, output_padding=1)
8
>>> list(output_size_range(2, k=3, stride=1, dilation=3)), list(
...     output_size_range(2, k=3, stride=1, dilation=3, rule="functional"))
([8], [8, 9, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

from ._args import as_int


def _at_least(low: int, **values: object) -> list[int]:
    """Each value as a plain int (:func:`tconv_lib._args.as_int`: ``np.int64`` and 0-d integer
    tensors are ints, ``bool``, ``8.0`` and ``None`` are not) of at least ``low`` (0 or 1)."""
    out = []
    for name, v in values.items():
        n = as_int(name, v)
        if n < low:
            rule = "positive" if low == 1 else "non-negative"
            raise ValueError(f"{name} must be {rule}, got {name}={n}")
        out.append(n)
    return out


def _same_length(**values: Sequence[int]) -> None:
    for name, v in values.items():
        if not hasattr(v, "__len__"):
            raise TypeError(f"{name} must have one entry per spatial axis (a tuple or list of "
                            f"ints), got {name}={v!r}")
    lengths = {name: len(v) for name, v in values.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{name}={tuple(v)!r}" for name, v in values.items())
        raise ValueError(f"every argument must have one entry per spatial axis, got {listing}")


def conv_output_size(i: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a forward convolution (``F.conv*d``) along one axis.

    ``floor((i + 2p - d(k-1) - 1) / s) + 1``; it is below 1 when the dilated kernel does not fit
    in the padded input (PyTorch refuses such a call).

    Args:
        i (int): input length.
        k (int): kernel size.
        stride (int, optional): step between kernel positions. Default: 1
        padding (int, optional): zeros added on both sides. Default: 0
        dilation (int, optional): spacing between kernel taps. Default: 1

    Raises:
        TypeError: an argument is not an int (``np.int64`` and 0-d integer tensors are ints;
            ``bool`` and ``8.0`` are not).
        ValueError: ``i``, ``k``, ``stride`` or ``dilation`` below 1, or ``padding`` below 0.

    >>> conv_output_size(8, k=3, stride=2, padding=1)
    4
    """
    i, k, stride, dilation = _at_least(1, i=i, k=k, stride=stride, dilation=dilation)
    (padding,) = _at_least(0, padding=padding)
    return (i + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_output_size(i: int, k: int, stride: int = 1,
                               padding: int = 0, output_padding: int = 0,
                               dilation: int = 1) -> int:
    """Output length of a transposed convolution (``F.conv_transpose*d``)
    along one axis.

    ``(i-1)s - 2p + d(k-1) + op + 1``: the canvas of ``i`` kernel copies
    ``s`` apart, cropped by ``padding`` on both sides, plus
    ``output_padding`` at the far end. The rule on ``op`` (see the module
    docstring) is not checked here.

    Args:
        i (int): input length.
        k (int): kernel size.
        stride (int, optional): step between the painted kernel copies.
            Default: 1
        padding (int, optional): cropped from both sides. Default: 0
        output_padding (int, optional): added at the far end. Default: 0
        dilation (int, optional): spacing between kernel taps. Default: 1

    Raises:
        TypeError: an argument is not an int (as :func:`conv_output_size`).
        ValueError: ``i``, ``k``, ``stride`` or ``dilation`` below 1, or
            ``padding`` or ``output_padding`` below 0.

    >>> conv_transpose_output_size(4, k=3, stride=2, padding=1)
    7
    """
    i, k, stride, dilation = _at_least(1, i=i, k=k, stride=stride,
                                       dilation=dilation)
    padding, output_padding = _at_least(0, padding=padding,
                                        output_padding=output_padding)
    return ((i - 1) * stride - 2 * padding + dilation * (k - 1)
            + output_padding + 1)


def conv_output_shape(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """:func:`conv_output_size` for every spatial axis (each argument: one entry per axis).

    >>> conv_output_shape((8, 5), (3, 3), (2, 1), (1, 0), (1, 1))
    (4, 3)
    """
    _same_length(spatial=spatial, kernel=kernel, stride=stride, padding=padding,
                 dilation=dilation)
    return tuple(conv_output_size(*a) for a in zip(spatial, kernel, stride, padding, dilation,
                                                   strict=True))


def conv_transpose_output_shape(spatial: Sequence[int], kernel: Sequence[int],
                                stride: Sequence[int], padding: Sequence[int],
                                output_padding: Sequence[int], dilation: Sequence[int]
                                ) -> tuple[int, ...]:
    """:func:`conv_transpose_output_size` for every spatial axis (one entry per axis each).

    >>> conv_transpose_output_shape((4, 3), (3, 3), (2, 1), (1, 0), (1, 0), (1, 1))
    (8, 5)
    """
    _same_length(spatial=spatial, kernel=kernel, stride=stride, padding=padding,
                 output_padding=output_padding, dilation=dilation)
    return tuple(conv_transpose_output_size(*a) for a in zip(
        spatial, kernel, stride, padding, output_padding, dilation, strict=True))


RULES = ("module", "functional")


def max_output_padding(stride: int, dilation: int = 1, rule: str = "module") -> int:
    """The largest ``output_padding`` PyTorch accepts along one axis.

    Args:
        stride (int): the stride.
        dilation (int, optional): the dilation. Default: 1
        rule (str, optional): ``"module"`` for ``nn.ConvTranspose*d(...)(x, output_size=...)``
            (``stride - 1``), ``"functional"`` for ``F.conv_transpose*d(output_padding=...)``
            and :func:`tconv_lib.conv_transpose` (``max(stride, dilation) - 1``).
            Default: ``"module"``

    >>> max_output_padding(1, 3), max_output_padding(1, 3, rule="functional")
    (0, 2)
    """
    stride, dilation = _at_least(1, stride=stride, dilation=dilation)
    if rule not in RULES:
        raise ValueError(f"rule must be 'module' (nn.ConvTranspose*d's output_size=) or "
                         f"'functional' (F.conv_transpose*d's output_padding=), got rule={rule!r}")
    return stride - 1 if rule == "module" else max(stride, dilation) - 1


def output_size_range(i: int, k: int, stride: int = 1, padding: int = 0,
                      dilation: int = 1, rule: str = "module") -> range:
    """Every output length a transposed convolution of length ``i`` can produce in PyTorch.

    With ``rule="module"`` (the default) these are the ``output_size=`` values
    ``nn.ConvTranspose*d`` accepts, ``output_padding = 0 .. stride-1``: exactly the lengths whose
    forward convolution (same k, s, p, d) has length ``i`` again. With ``rule="functional"``
    they are what ``F.conv_transpose*d`` produces for ``output_padding = 0 .. max(s, d) - 1``.

    Returns:
        range: the lengths, smallest first (lengths below 1 are left out).

    >>> list(output_size_range(4, k=3, stride=2, padding=1))
    [7, 8]
    """
    low = conv_transpose_output_size(i, k, stride, padding, 0, dilation)
    return range(max(low, 1), low + max_output_padding(stride, dilation, rule) + 1)


def output_padding_for(i: int, target: int, k: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1, rule: str = "module") -> int:
    """The ``output_padding`` that takes a transposed convolution of length ``i`` to ``target``.

    ``rule`` is that of :func:`output_size_range`: by default the ``output_size=`` rule of
    ``nn.ConvTranspose*d``, with ``"functional"`` that of ``F.conv_transpose*d``.

    Raises:
        ValueError: ``target`` cannot be reached; the message names the reachable range.

    >>> output_padding_for(4, target=8, k=3, stride=2, padding=1)
    1
    """
    sizes = output_size_range(i, k, stride, padding, dilation, rule)
    target = as_int("target", target)
    if target not in sizes:
        reachable = (f"reachable sizes are {sizes.start}..{sizes.stop - 1}" if len(sizes) else
                     f"no size is reachable (the largest would be {sizes.stop - 1}: padding "
                     f"crops everything)")
        raise ValueError(
            f"target output size {target} is unreachable from input size {i} with k={k}, "
            f"stride={stride}, padding={padding}, dilation={dilation}: {reachable} "
            f"(output_padding 0..{max_output_padding(stride, dilation, rule)}, the {rule} rule)")
    return target - conv_transpose_output_size(i, k, stride, padding, 0, dilation)


def conv_input_sizes(o: int, k: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> list[int]:
    """Every forward-convolution input length that produces output length ``o``.

    With ``stride > 1`` there are up to ``stride`` of them: this is the ambiguity that
    ``output_padding`` resolves. Size ``n`` is reached by ``output_padding = n - low``, ``low =
    conv_transpose_output_size(o, k, stride, padding, 0, dilation)`` (within the ``"module"``
    rule: below ``stride``); that is entry ``j`` for ``output_padding=j`` unless ``low < 1``
    (padding that crops everything), whose sizes are left out.

    >>> conv_input_sizes(4, k=3, stride=2, padding=1)
    [7, 8]
    """
    (o,) = _at_least(1, o=o)
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

    Raises:
        TypeError: an argument is not an int.
        ValueError: ``n`` is not 1..15, ``i``, ``k``, ``s`` or ``d`` is below 1, ``p`` or
            ``a`` below 0, or an argument breaks the relationship's preconditions (relationship
            1 with ``p=2``, 3 with an even ``k``, 14 with ``a >= s``, ...): its formula would
            give a size no convolution with those arguments has. :func:`conv_output_size` and
            :func:`conv_transpose_output_size` take any arguments.

    >>> relationship(6, i=5, k=3, s=2, p=1), relationship(14, i=3, k=3, s=2, p=1, a=1)
    (3, 6)
    """
    if n not in RELATIONSHIPS:
        raise ValueError(f"relationship number n must be one of 1..15 (the guide's numbering), "
                         f"got n={n!r}")
    i, k, s, d = _at_least(1, i=i, k=k, s=s, d=d)
    p, a = _at_least(0, p=p, a=a)
    _check_preconditions(n, i=i, k=k, s=s, p=p, d=d, a=a)
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
    return formulas[n]()


# Per relationship, the arguments its formula assumes (value, or a rule on the others).
_FIXED: dict[int, dict[str, int]] = {
    1: dict(s=1, p=0, d=1), 2: dict(s=1, d=1), 3: dict(s=1, d=1), 4: dict(s=1, d=1),
    5: dict(p=0, d=1), 6: dict(d=1), 7: dict(p=0, d=1), 8: dict(s=1, p=0, d=1),
    9: dict(s=1, d=1), 10: dict(s=1, d=1), 11: dict(s=1, d=1), 12: dict(p=0, d=1),
    13: dict(d=1), 14: dict(d=1), 15: {},
}


def _check_preconditions(n: int, **args: int) -> None:
    def refuse(rule: str) -> None:
        raise ValueError(f"relationship {n} ({RELATIONSHIPS[n]}) assumes {rule}, got "
                         + ", ".join(f"{key}={v}" for key, v in args.items())
                         + "; conv_output_size and conv_transpose_output_size take any arguments")

    for name, value in (_FIXED[n] | ({} if n == 14 else {"a": 0})).items():
        if args[name] != value:
            refuse(f"{name}={value}")
    k, p, s, a = args["k"], args["p"], args["s"], args["a"]
    if n in (3, 10) and (k % 2 == 0 or p != k // 2):
        refuse(f"an odd k and half padding p = floor(k/2) = {k // 2}")
    if n in (4, 11) and p != k - 1:
        refuse(f"full padding p = k - 1 = {k - 1}")
    if n == 14 and a >= s:
        refuse("0 <= a < s (a is the forward convolution's remainder mod s)")


def dilated_transposed_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1,
                            a: int = 0) -> int:
    """Output size by :data:`DILATED_TRANSPOSED`, the unnumbered transpose of relationship 15.

    Raises:
        TypeError, ValueError: as :func:`relationship`; ``a`` must be in ``0 .. s-1``.
    """
    i, k, s, d = _at_least(1, i=i, k=k, s=s, d=d)
    p, a = _at_least(0, p=p, a=a)
    if a >= s:
        raise ValueError(f"a is the forward convolution's remainder (i + 2p - d(k - 1) - 1) mod "
                         f"s, so 0 <= a < s, got a={a}, s={s}")
    return s * (i - 1) + d * (k - 1) + 1 - 2 * p + a
