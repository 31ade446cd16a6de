"""The paper's five augmentations on a training sample, in torch.

Geometric transforms (horizontal flip, rotation by multiples of 90 degrees) are drawn once per pair
and applied identically to the cell patch, the tissue patch, both targets and the cell box, so the
cell region inside the tissue patch moves with them. Photometric transforms (gaussian blur, gaussian
noise, colour jitter) are drawn independently for each patch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torchvision.transforms.v2.functional as TF

__all__ = [
    "PhotometricRanges",
    "Sample",
    "augment",
    "flip_rotate",
    "flip_rotate_box",
    "photometric",
]


@dataclass(frozen=True)
class Sample:
    """One training pair as tensors.

    Attributes
    ----------
    cell_image : Tensor, shape (3, H, W), float32 in [0, 1]
    tissue_image : Tensor, shape (3, Ht, Wt), float32 in [0, 1]
    cell_target : Tensor, shape (H, W), int64 (0 background, 1 BC, 2 TC)
    tissue_target : Tensor, shape (Ht, Wt), int64 (0 background, 1 cancer area, 255 ignored)
    cell_box : Tensor, shape (4,), float32
        ``(x0, y0, x1, y1)`` of the cell patch in tissue-patch pixels (pixel edges at integers).
    """

    cell_image: torch.Tensor
    tissue_image: torch.Tensor
    cell_target: torch.Tensor
    tissue_target: torch.Tensor
    cell_box: torch.Tensor


@dataclass(frozen=True)
class PhotometricRanges:
    """Probability and strength of each photometric augmentation (RGB scaled to [0, 1]).

    Attributes
    ----------
    probability : float
        Each of blur, noise and colour jitter is applied with this probability.
    blur_sigma : (float, float)
        Range of the gaussian blur standard deviation in pixels.
    noise_sigma : (float, float)
        Range of the additive gaussian noise standard deviation.
    brightness, contrast, saturation : float
        Factors are drawn from ``[1 - v, 1 + v]``.
    hue : float
        Hue shift drawn from ``[-v, v]`` (fraction of the colour circle).
    """

    probability: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_sigma: tuple[float, float] = (0.0, 0.04)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05


def flip_rotate_box(
    box: torch.Tensor, flip: bool, quarter_turns: int, height: int, width: int
) -> torch.Tensor:
    """Where a box lands after :func:`flip_rotate` of a ``height`` x ``width`` patch.

    Parameters
    ----------
    box : Tensor, shape (4,)
        ``(x0, y0, x1, y1)`` in pixels, pixel edges at integers.
    flip : bool
        Horizontal flip (x -> width - x), applied first.
    quarter_turns : int
        Number of ``torch.rot90`` turns over (rows, cols): each maps (x, y) -> (y, width - x) and
        swaps height and width.
    """
    x0, y0, x1, y1 = box.tolist()
    if flip:
        x0, x1 = width - x1, width - x0
    for _ in range(quarter_turns % 4):
        x0, y0, x1, y1 = y0, width - x1, y1, width - x0
        height, width = width, height
    return torch.tensor([x0, y0, x1, y1], dtype=box.dtype)


def flip_rotate(sample: Sample, flip: bool, quarter_turns: int) -> Sample:
    """A horizontal flip (optional), then ``quarter_turns`` rotations, of every part of a pair."""

    def transform(array: torch.Tensor) -> torch.Tensor:
        if flip:
            array = torch.flip(array, dims=(-1,))
        return torch.rot90(array, quarter_turns, dims=(-2, -1))

    height, width = sample.tissue_image.shape[-2:]
    return Sample(
        cell_image=transform(sample.cell_image),
        tissue_image=transform(sample.tissue_image),
        cell_target=transform(sample.cell_target),
        tissue_target=transform(sample.tissue_target),
        cell_box=flip_rotate_box(sample.cell_box, flip, quarter_turns, height, width),
    )


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def photometric(
    image: torch.Tensor, ranges: PhotometricRanges, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly blur, add noise to and colour-jitter one (3, H, W) image in [0, 1]."""
    if torch.rand((), generator=generator) < ranges.probability:
        sigma = _uniform(*ranges.blur_sigma, generator)
        kernel = 2 * int(3 * sigma + 0.5) + 1  # covers +-3 sigma
        image = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])
    if torch.rand((), generator=generator) < ranges.probability:
        sigma = _uniform(*ranges.noise_sigma, generator)
        image = image + sigma * torch.randn(image.shape, generator=generator)
    if torch.rand((), generator=generator) < ranges.probability:
        image = image.clamp(0, 1)
        image = TF.adjust_brightness(
            image, _uniform(1 - ranges.brightness, 1 + ranges.brightness, generator)
        )
        image = TF.adjust_contrast(
            image, _uniform(1 - ranges.contrast, 1 + ranges.contrast, generator)
        )
        image = TF.adjust_saturation(
            image, _uniform(1 - ranges.saturation, 1 + ranges.saturation, generator)
        )
        image = TF.adjust_hue(image, _uniform(-ranges.hue, ranges.hue, generator))
    return image.clamp(0, 1)


def augment(
    sample: Sample,
    ranges: PhotometricRanges = PhotometricRanges(),
    generator: torch.Generator | None = None,
) -> Sample:
    """Random shared flip/rot90 of the pair, then independent photometric changes of each patch."""
    flip = bool(torch.rand((), generator=generator) < 0.5)
    quarter_turns = int(torch.randint(4, (), generator=generator))
    sample = flip_rotate(sample, flip, quarter_turns)
    return replace(
        sample,
        cell_image=photometric(sample.cell_image, ranges, generator),
        tissue_image=photometric(sample.tissue_image, ranges, generator),
    )
