"""The implementations of transposed convolution, one module per view in the book.

Each module exposes ``conv_transpose(x, weight, geo)``: ``x`` is a validated, batched input
``(N, C_in, *spatial)``, ``weight`` is ``(C_in, C_out/groups, *kernel)`` and ``geo`` the
:class:`tconv_lib._args.Geometry`. It returns ``(N, C_out, *out)`` without bias.

- :mod:`.scatter`: the definition: every input element paints a scaled copy of the kernel.
- :mod:`.zero_insert`: insert zeros, pad, convolve with the flipped, channel-swapped kernel.
- :mod:`.matrix`: multiply by the transpose of the convolution matrix C.
- :mod:`.col2im`: one GEMM, then a col2im scatter-add.
- :mod:`.phase`: stride² stride-1 sub-convolutions, interleaved (sub-pixel / depth-to-space).
"""

from . import col2im, matrix, phase, scatter, zero_insert

IMPLEMENTATIONS = {
    "scatter": scatter.conv_transpose,
    "zero_insert": zero_insert.conv_transpose,
    "matrix": matrix.conv_transpose,
    "col2im": col2im.conv_transpose,
    "phase": phase.conv_transpose,
}
