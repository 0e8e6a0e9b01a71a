"""tconv_lib: every view of transposed convolution, on NumPy (CPU) and PyTorch (CPU and CUDA).

>>> import numpy as np, tconv_lib
>>> tconv_lib.conv_transpose(np.array([[[2., 3.]]]), np.array([[[1., 2., 3.]]]), stride=2)
array([[[2., 4., 9., 6., 9.]]])

Public API:
    conv_transpose  the operation (``F.conv_transpose{1,2,3}d``), any method
    conv            the forward convolution it is the transpose of
    conv_matrix     the sparse matrix C of a convolution (y = C x)
    METHODS         scatter, zero_insert, matrix, col2im, phase
    choose_method   the method ``method="auto"`` runs for a problem
    shapes          output sizes, valid ranges, output_padding, and
                    Dumoulin & Visin's relationships
    conventions     TensorFlow/Keras and JAX arguments as PyTorch calls
    gradients       the gradients of conv and conv_transpose, written
                    with tconv_lib itself
    nn              ConvTranspose1d/2d/3d modules backed by tconv_lib,
                    and convert() to put them into a built model
                    (needs torch)

Also imported on first use (they need torch): ``tconv_lib.artifacts``
(checkerboard overlap, scores and the fixes) and ``tconv_lib.unet`` (a
U-Net with selectable upsampling, its shape plan, training).

Bad input is refused before anything is computed, with a ``TypeError`` or
``ValueError`` that names the argument, the rule and the value.
"""

from . import conventions, gradients, shapes
from .conv import conv
from .methods.matrix import conv_matrix
from .transpose import METHODS, choose_method, conv_transpose

__all__ = ["METHODS", "choose_method", "conv", "conv_matrix", "conv_transpose", "conventions",
           "gradients", "shapes"]
__version__ = "0.1.0"


def __getattr__(name: str):  # the torch-based modules are imported on first use
    if name in ("nn", "artifacts", "unet"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tconv_lib' has no attribute {name!r}")
