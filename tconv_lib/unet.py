r"""A small U-Net (Ronneberger et al., 2015) with selectable upsampling, and everything needed to
train and compare it: shape planning, crop-and-concat, a synthetic segmentation dataset, training,
IoU and Dice.

Architecture (``depth`` levels, width ``base * 2**level``)::

    x ─ DoubleConv ─────────────────────────────── crop+concat ─ DoubleConv ─ 1x1 conv ─ logits
            └ maxpool2 ─ DoubleConv ── ... ─ up ─┘
                                  (bottom)

``mode="valid"`` is the original paper's: 3x3 convolutions without padding shrink every feature
map by 2 per convolution, so the skip connection is larger than the upsampled map and is centre-
cropped before concatenation; with the paper's configuration a 572x572 input gives a 388x388
output. ``mode="same"`` pads the convolutions (the common modern variant): output size = input
size, which then must be divisible by ``2**depth``. :func:`plan_shapes` checks a size before any
computation and raises a ``ValueError`` naming the level and the sizes.

The upsamplers (:data:`UPSAMPLERS`) all double the size exactly:

=====================  ================================================================
``tconv_k2s2``          ``ConvTranspose2d(k=2, s=2)``: the paper's "up-convolution"
``tconv_k4s2p1``        ``ConvTranspose2d(k=4, s=2, p=1)``: even overlap (4 % 2 == 0)
``tconv_k3s2p1op1``     ``ConvTranspose2d(k=3, s=2, p=1, output_padding=1)``: uneven
``resize_nearest``      nearest-neighbour x2, then 3x3 conv (``artifacts.ResizeConv``)
``resize_bilinear``     bilinear x2, then 3x3 conv
``pixelshuffle_icnr``   3x3 conv to 4C channels + PixelShuffle(2), ICNR init
=====================  ================================================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import shapes
from .artifacts import PixelShuffleUp, ResizeConv

__all__ = ["UPSAMPLERS", "LevelShapes", "UNet", "center_crop", "crop_and_concat", "dice",
           "deterministic", "evaluate", "iou", "make_shapes_dataset", "make_upsampler",
           "plan_shapes", "train"]

UPSAMPLERS: tuple[str, ...] = ("tconv_k2s2", "tconv_k4s2p1", "tconv_k3s2p1op1", "resize_nearest",
                               "resize_bilinear", "pixelshuffle_icnr")

_TCONV_ARGS = {"tconv_k2s2": (2, 0, 0), "tconv_k4s2p1": (4, 1, 0), "tconv_k3s2p1op1": (3, 1, 1)}


def make_upsampler(kind: str, in_channels: int,
                   out_channels: int) -> nn.Module:
    """The x2 upsampling block ``kind`` (one of :data:`UPSAMPLERS`)."""
    if kind in _TCONV_ARGS:
        k, p, op = _TCONV_ARGS[kind]
        return nn.ConvTranspose2d(in_channels, out_channels, k, stride=2,
                                  padding=p, output_padding=op)
    if kind == "resize_nearest":
        return ResizeConv(in_channels, out_channels, 2, 3, "nearest")
    if kind == "resize_bilinear":
        return ResizeConv(in_channels, out_channels, 2, 3, "bilinear")
    if kind == "pixelshuffle_icnr":
        return PixelShuffleUp(in_channels, out_channels, 2, 3, icnr=True)
    raise ValueError(f"up must be one of {', '.join(UPSAMPLERS)}, got "
                     f"up={kind!r}")


def _upsampled_size(kind: str, n: int) -> int:
    """Spatial size after the upsampler (the transposed ones through :mod:`tconv_lib.shapes`)."""
    if kind in _TCONV_ARGS:
        k, p, op = _TCONV_ARGS[kind]
        return shapes.conv_transpose_output_size(n, k, 2, p, op)
    return 2 * n


# --- shape planning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelShapes:
    """Spatial sizes at one level of the U-Net (square maps; one number per side).

    ``enc_in -> enc_out`` through the encoder's two convolutions (``enc_out`` is the skip);
    ``up`` is the upsampled decoder input, ``crop`` what is removed from the skip in total
    (split between the two sides, the extra pixel at the far end when odd), and ``dec_out`` the
    size after the decoder's two convolutions. The bottom level has no skip, up or crop.
    """

    level: int
    channels: int
    enc_in: int
    enc_out: int
    up: int | None = None
    crop: int | None = None
    dec_out: int | None = None


def _count(name: str, value: object, low: int) -> int:
    """A plain int of at least ``low`` (``np.int64`` is one; ``bool`` and ``64.0`` are not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {name}={value}")
    return int(value)


def _double_conv_size(n: int, mode: str) -> int:
    if mode == "same":
        return shapes.conv_output_size(n, 3, 1, 1)
    return shapes.conv_output_size(n, 3) if n >= 3 else 0


def plan_shapes(size: int, depth: int = 4, mode: str = "valid",
                up: str = "tconv_k2s2",
                base: int = 64) -> list[LevelShapes]:
    """Every level's sizes for a square ``size x size`` input (via
    :mod:`tconv_lib.shapes`).

    Raises:
        ValueError: naming the level and the sizes, when a convolution
            would get an empty map, when a 2x2 max-pool would get an odd
            size (it would silently drop a row; the paper requires even
            sizes), or when an upsampled map is larger than its skip.
    """
    if mode not in ("valid", "same"):
        raise ValueError(f"mode must be 'valid' or 'same', got "
                         f"mode={mode!r}")
    size, depth = _count("size", size, 1), _count("depth", depth, 0)
    if up not in UPSAMPLERS:
        raise ValueError(f"up must be one of {', '.join(UPSAMPLERS)}, got "
                         f"up={up!r}")
    enc: list[tuple[int, int]] = []
    n = size
    for level in range(depth + 1):
        out = n
        for _ in range(2):
            if out < 3 and mode == "valid":
                raise ValueError(
                    f"input size {size} is too small for depth={depth} in "
                    f"mode='valid': at encoder level {level} a 3x3 valid "
                    f"convolution gets a {out}x{out} map")
            out = _double_conv_size(out, mode)
        if out < 1:
            raise ValueError(
                f"input size {size} is too small for depth={depth} in "
                f"mode={mode!r}: encoder level {level} would output a "
                f"{out}x{out} map")
        enc.append((n, out))
        if level < depth:
            if out % 2:
                raise ValueError(
                    f"input size {size} does not work for depth={depth} in "
                    f"mode={mode!r}: at encoder level {level} the 2x2 "
                    f"max-pool gets an odd size {out} (sizes before every "
                    f"pooling must be even)")
            n = out // 2
    levels = [LevelShapes(depth, base * 2 ** depth, *enc[depth])]
    n = enc[depth][1]
    for level in range(depth - 1, -1, -1):
        skip = enc[level][1]
        u = _upsampled_size(up, n)
        if u > skip:
            raise ValueError(
                f"input size {size} does not work in mode={mode!r}: at "
                f"decoder level {level} the upsampled map ({u}) is larger "
                f"than its skip connection ({skip})")
        n = u
        for _ in range(2):
            n = _double_conv_size(n, mode)
        if n < 1:
            raise ValueError(f"input size {size} is too small: decoder "
                             f"level {level} would output a {n}x{n} map")
        levels.append(LevelShapes(level, base * 2 ** level, *enc[level],
                                  up=u, crop=skip - u, dec_out=n))
    return levels


def valid_sizes(depth: int, mode: str = "valid", up: str = "tconv_k2s2",
                candidates: Sequence[int] = range(1, 1025)) -> list[int]:
    """The input sizes among ``candidates`` that :func:`plan_shapes` accepts."""
    ok = []
    for n in candidates:
        try:
            plan_shapes(n, depth, mode, up)
        except ValueError:
            continue
        ok.append(n)
    return ok


# --- modules -----------------------------------------------------------------------------------


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the last ``len(size)`` axes of ``x`` to ``size`` around the centre (extra pixel of an
    odd difference at the far end)."""
    size = tuple(size)
    nd = len(size)
    if not 1 <= nd <= x.ndim:
        raise ValueError(f"center_crop: size must have 1 to x.ndim = {x.ndim} entries (the last "
                         f"axes of x), got size={size} for x.shape={tuple(x.shape)}")
    spatial = tuple(x.shape[-nd:])
    if any(t < 0 for t in size):
        raise ValueError(f"center_crop: size must be non-negative, got size={size}")
    if any(t > s for t, s in zip(size, spatial, strict=True)):
        raise ValueError(f"center_crop: size {tuple(size)} is larger than the map {spatial}")
    idx = tuple(slice((s - t) // 2, (s - t) // 2 + t) for t, s in zip(size, spatial, strict=True))
    return x[(...,) + idx]


def crop_and_concat(skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``cat([center_crop(skip, up.shape[2:]), up], dim=1)``: the U-Net's skip connection."""
    return torch.cat([center_crop(skip, up.shape[2:]), up], dim=1)


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm (if ``norm``) and ReLU; padding 1 in
    mode 'same', none in 'valid'. The paper has no normalisation; it makes small-batch training
    from scratch much faster and more reliable."""

    def __init__(self, in_channels: int, out_channels: int, mode: str, norm: bool = True) -> None:
        p = 1 if mode == "same" else 0
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=p, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and the upsampler ``up`` (see :data:`UPSAMPLERS`).

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H', W')`` (only a batch: any other
    input shape is a ``ValueError`` naming it) with ``H' = H`` in mode
    ``"same"`` and ``H' = plan_shapes(H, ...)[-1].dec_out`` in mode ``"valid"``
    (572 -> 388 for the paper's ``depth=4``). The paper's network is ``UNet(1, 2, base=64,
    depth=4, mode="valid", up="tconv_k2s2")``. Each upsampler halves the channels, as in the
    paper; ``norm=False`` drops the BatchNorm layers as the paper does. :meth:`forward` with
    ``return_features=True`` also returns the decoder's feature maps
    (after each upsampler), deepest first. The transposed upsamplers are
    ``torch.nn.ConvTranspose2d``; ``tconv_lib.nn.convert(net)`` puts tconv_lib's own modules in
    their place, with the same parameters.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 8, depth: int = 2,
                 mode: str = "same", up: str = "tconv_k2s2", norm: bool = True) -> None:
        super().__init__()
        if mode not in ("valid", "same"):
            raise ValueError(f"mode must be 'valid' or 'same', got mode={mode!r}")
        if up not in UPSAMPLERS:
            raise ValueError(f"up must be one of {', '.join(UPSAMPLERS)}, got up={up!r}")
        depth, base = _count("depth", depth, 0), _count("base", base, 1)
        in_channels = _count("in_channels", in_channels, 1)
        out_channels = _count("out_channels", out_channels, 1)
        self.mode, self.depth, self.up_kind, self.base = mode, depth, up, base
        self.in_channels, self.out_channels = in_channels, out_channels
        widths = [base * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0], mode, norm)] + [
            DoubleConv(widths[i - 1], widths[i], mode, norm) for i in range(1, depth + 1)])
        self.ups = nn.ModuleList([make_upsampler(up, widths[i + 1], widths[i])
                                  for i in reversed(range(depth))])
        self.dec = nn.ModuleList([DoubleConv(2 * widths[i], widths[i], mode, norm)
                                  for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        # an unbatched (C, H, W) input would be cut along the wrong axes
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                "x must be a batch (N, C, H, W) with C = in_channels = "
                f"{self.in_channels}, got x.shape={tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        plan_shapes(h, self.depth, self.mode, self.up_kind, self.base)
        if w != h:
            plan_shapes(w, self.depth, self.mode, self.up_kind, self.base)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        features = []
        for up, dec, skip in zip(self.ups, self.dec, reversed(skips),
                                 strict=True):
            x = up(x)
            features.append(x)
            x = dec(crop_and_concat(skip, x))
        out = self.head(x)
        return (out, features) if return_features else out


# --- data, training, metrics -------------------------------------------------------------------


def make_shapes_dataset(n: int, size: int = 32, seed: int = 0, noise: float = 0.35,
                        max_shapes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic binary segmentation: random discs, rectangles and triangles on a noisy
    background with a random linear intensity gradient.

    Returns ``(images, masks)`` of shapes ``(n, 1, size, size)`` (float32) and
    ``(n, 1, size, size)`` (float32, 0/1). Deterministic for a given ``seed``. Shapes are brighter
    than the background by a random contrast in [0.6, 1.2]; Gaussian noise of std ``noise``.
    """
    n, size = _count("n", n, 1), _count("size", size, 8)
    max_shapes = _count("max_shapes", max_shapes, 1)
    if not noise >= 0:
        raise ValueError(f"noise (a standard deviation) must be non-negative, got noise={noise}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((n, 1, size, size), np.float32)
    masks = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        mask = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, max_shapes + 1)):
            cy, cx = rng.uniform(0.15, 0.85, 2) * size
            r = rng.uniform(0.08, 0.2) * size
            kind = rng.integers(3)
            if kind == 0:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            elif kind == 1:
                ry, rx = r * rng.uniform(0.5, 1.2, 2)
                shape = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            else:   # upward triangle: below the two slanted edges, above the base
                shape = (yy <= cy + r) & (yy - cy + r >= 2 * np.abs(xx - cx))
            mask |= shape
        gy, gx = rng.normal(0, 0.3, 2) / size
        background = gy * (yy - size / 2) + gx * (xx - size / 2)
        contrast = rng.uniform(0.6, 1.2)
        img = background + contrast * mask + rng.normal(0, noise, (size, size))
        images[i, 0], masks[i, 0] = img, mask
    return torch.from_numpy(images), torch.from_numpy(masks)


def _masks(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if tuple(pred.shape) != tuple(target.shape):       # broadcasting would count pixels twice
        raise ValueError(f"pred and target must have the same shape, got pred.shape="
                         f"{tuple(pred.shape)} and target.shape={tuple(target.shape)}")
    return pred.bool(), target.bool()


def iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    r"""Intersection over union of two binary masks, pooled over the batch:
    :math:`|P \cap T| / |P \cup T|` (1.0 when both are empty). Both have one shape."""
    p, t = _masks(pred, target)
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


def dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    r"""Dice coefficient :math:`2|P \cap T| / (|P| + |T|)`, pooled over the batch. Both masks
    have one shape."""
    p, t = _masks(pred, target)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2 * int((p & t).sum()) / total


@contextlib.contextmanager
def deterministic(device: str | torch.device) -> Iterator[None]:
    """On a CUDA ``device``: deterministic cuDNN and PyTorch algorithms inside the block.

    cuDNN's autotuner and non-deterministic kernels are switched off and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` is set, so an operation with no
    deterministic CUDA implementation warns instead of failing (bilinear upsampling's backward is
    one). cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG``, which is set unless the caller set it; it
    only takes effect if no CUDA matrix product has run in the process yet. Everything is
    restored on exit. On the CPU this does nothing: the CPU kernels used here are deterministic.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), cudnn.deterministic,
             cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]


def train(model: nn.Module, images: torch.Tensor, masks: torch.Tensor,
          steps: int = 300, batch_size: int = 16, lr: float = 3e-3,
          seed: int = 0,
          device: str | torch.device | None = None) -> list[float]:
    """Adam on binary cross-entropy with logits; returns the loss of every
    step.

    Minibatches are drawn with a generator seeded by ``seed``; for a
    valid-mode model the masks are centre-cropped to the output size.
    ``device`` defaults to the model's device; the data are moved there
    batch by batch (CUDA when the model lives on a GPU, where training runs
    under :func:`deterministic`).
    """
    steps = _count("steps", steps, 0)
    batch_size = _count("batch_size", batch_size, 1)
    if images.shape[0] != masks.shape[0] or images.shape[0] < 1:
        raise ValueError(f"images and masks must hold the same number (at "
                         f"least 1) of samples, got "
                         f"images.shape={tuple(images.shape)}, "
                         f"masks.shape={tuple(masks.shape)}")
    device = (torch.device(device) if device is not None
              else next(model.parameters()).device)
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    with deterministic(device):
        for _ in range(steps):
            idx = torch.randint(0, images.shape[0], (batch_size,),
                                generator=gen)
            x, y = images[idx].to(device), masks[idx].to(device)
            logits = model(x)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, center_crop(y, logits.shape[2:]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits of ``model`` in eval mode, on the CPU, computed on the model's device; the model
    is left in the mode (train or eval) it had."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with deterministic(device):
            return torch.cat([model(images[i:i + batch_size].to(device)).cpu()
                              for i in range(0, images.shape[0], batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """IoU and Dice of ``logits > 0`` (:func:`predict`'s, in eval mode) against the
    (centre-cropped) masks."""
    logits = predict(model, images)
    target = center_crop(masks, logits.shape[2:])
    pred = logits > 0
    return {"iou": iou(pred, target), "dice": dice(pred, target)}
