"""PyTorch, in float64, is the oracle for every numeric claim."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_FORWARD = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _t(a):
    return None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float64))


def torch_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1) -> np.ndarray:
    fn = _TRANSPOSED[np.ndim(w) - 2]
    return fn(_t(x), _t(w), _t(b), stride, padding, output_padding, groups, dilation).numpy()


def torch_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    fn = _FORWARD[np.ndim(w) - 2]
    return fn(_t(x), _t(w), _t(b), stride, padding, dilation, groups).numpy()
