"""Edge cases a PyTorch user meets when trying tconv_lib as a drop-in for
``F.conv_transpose*d`` / ``nn.ConvTranspose*d``, with PyTorch in float64 as the oracle: byte
orders."""

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
