"""Edge cases a PyTorch user meets when trying tconv_lib as a drop-in for
``F.conv_transpose*d`` / ``nn.ConvTranspose*d``, with PyTorch in float64 as the oracle: byte
orders, empty inputs as the caller passed them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv_lib

R = np.random.default_rng(0)
X = R.standard_normal((2, 4, 5, 5))
W = R.standard_normal((4, 3, 3, 3))


@pytest.mark.parametrize("swapped", ["input", "weight", "bias"])
def test_byte_swapped_numpy_arrays_are_named_with_the_fix(swapped: str) -> None:
    """A float64 array in the other byte order (read from a file, say) is float64 by name:
    the message says the byte order is the problem and how to convert it, as
    ``torch.from_numpy`` refuses it too (it said 'must have a floating dtype (float32,
    float64), got input.dtype=>f8')."""
    arrays = {"input": X, "weight": W, "bias": np.zeros(3)}
    arrays[swapped] = arrays[swapped].astype(arrays[swapped].dtype.newbyteorder())
    for fn in (tconv_lib.conv_transpose, tconv_lib.conv):
        with pytest.raises(TypeError) as err:
            fn(arrays["input"], arrays["weight"], arrays["bias"])
        message = str(err.value)
        for fragment in (swapped, "byte order", "float64", "newbyteorder('=')"):
            assert fragment in message, (fragment, message)
    with pytest.raises(ValueError, match="byte order"):
        torch.from_numpy(arrays[swapped])
    fixed = {k: v.astype(v.dtype.newbyteorder("=")) for k, v in arrays.items()}
    y = tconv_lib.conv_transpose(fixed["input"], fixed["weight"], fixed["bias"], stride=2)
    ref = F.conv_transpose2d(*(torch.from_numpy(fixed[k]) for k in ("input", "weight", "bias")),
                             stride=2)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_other_dtypes_in_the_other_byte_order_still_name_the_dtype() -> None:
    with pytest.raises(TypeError, match=r"floating dtype .*got input.dtype=>i8"):
        tconv_lib.conv_transpose(X.astype(">i8"), W)


@pytest.mark.parametrize("fn, shape, weight", [
    (tconv_lib.conv_transpose, (0, 4, 4), np.ones((0, 2, 3, 3))),
    (tconv_lib.conv_transpose, (4, 0, 5), W),
    (tconv_lib.conv, (3, 0, 4), np.ones((2, 3, 1, 1)))])
def test_an_empty_unbatched_input_is_named_by_its_own_shape(fn, shape, weight) -> None:
    """An empty unbatched input is reported with the shape the caller passed, (0, 4, 4), not
    the batched (1, 0, 4, 4) the checks see."""
    with pytest.raises(ValueError) as err:
        fn(np.ones(shape), weight)
    assert f"input.shape={shape}" in str(err.value), str(err.value)


def test_an_empty_spatial_axis_is_refused_even_in_an_empty_batch() -> None:
    """PyTorch's support for a zero spatial size in an empty batch is partial (it answers
    some geometries and fails inside others with a reshape error); tconv_lib refuses all,
    saying that only the batch may be empty."""
    with pytest.raises(ValueError) as err:
        tconv_lib.conv_transpose(np.ones((0, 4, 0, 5)), W, stride=2, padding=1)
    for fragment in ("input.shape=(0, 4, 0, 5)", "spatial size", "only the batch may be empty"):
        assert fragment in str(err.value), (fragment, str(err.value))
