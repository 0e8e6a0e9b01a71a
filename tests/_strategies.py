"""Hypothesis strategies for transposed-convolution problems (shared by the library tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st


@dataclass
class Problem:
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    groups: int
    dilation: tuple[int, ...]

    @property
    def args(self) -> tuple:
        return (self.x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                self.groups, self.dilation)

    def out_shape(self) -> tuple[int, ...]:
        return tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d in zip(
            self.x.shape[-len(self.stride):], self.weight.shape[2:], self.stride, self.padding,
            self.output_padding, self.dilation, strict=True))


@st.composite
def problems(draw, max_dims: int = 3) -> Problem:
    ndim = draw(st.integers(1, max_dims))
    small = ndim == 3
    groups = draw(st.integers(1, 4))
    c_in = groups * draw(st.integers(1, 2))
    c_out_g = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(ndim))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation, strict=True))
    spatial = tuple(draw(st.integers(1, 3 if small else 5)) for _ in range(ndim))
    batch = draw(st.sampled_from([None, 1, 2]))
    with_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shape = ((batch,) if batch else ()) + (c_in,) + spatial
    prob = Problem(rng.standard_normal(shape), rng.standard_normal((c_in, c_out_g) + kernel),
                   rng.standard_normal(c_out_g * groups) if with_bias else None,
                   stride, padding, output_padding, groups, dilation)
    assume(all(o >= 1 for o in prob.out_shape()))
    return prob
