"""Checkpoints: the model's configuration and weights in one file that loads on CPU without network.

A checkpoint is a ``torch.save`` dictionary readable with ``torch.load(weights_only=True)``::

    {"format": 1, "config": ModelConfig.to_dict(), "weights_dtype": "float32" | "float16" | "int8",
     "state": {name: tensor}, "scales": {name: tensor}, ...extra entries (training state, metrics)}

Weights may be stored compressed to fit a size budget: ``float16`` halves every floating tensor of
two or more dimensions (convolution kernels), ``int8`` stores them as int8 with one float32 scale
per output channel (symmetric, max-abs). One-dimensional tensors (biases, batch-norm statistics)
stay in float32. Loading always restores float32 weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from baseline_algorithm.model import CellTissueModel, ModelConfig, ModelConfigError
from evaluation.errors import OcelotError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "WEIGHT_DTYPES",
    "decode_state",
    "encode_state",
    "load_checkpoint",
    "model_from_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
WEIGHT_DTYPES = ("float32", "float16", "int8")


class CheckpointError(OcelotError, ValueError):
    """A checkpoint file is missing, unreadable or not one of ours; ``str()`` names the file."""


def _compressible(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and tensor.dim() >= 2


def encode_state(state: dict[str, torch.Tensor], weights_dtype: str) -> tuple[dict, dict]:
    """Split a float32 state dict into stored tensors and int8 scales (empty unless ``int8``)."""
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype {weights_dtype!r} is not one of {WEIGHT_DTYPES}")
    stored, scales = {}, {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if not _compressible(tensor) or weights_dtype == "float32":
            stored[name] = tensor.clone()
        elif weights_dtype == "float16":
            stored[name] = tensor.half()
        else:
            flat = tensor.float().reshape(tensor.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            stored[name] = torch.round(flat / scale[:, None]).to(torch.int8).reshape(tensor.shape)
            scales[name] = scale
    return stored, scales


def decode_state(
    stored: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_state`: float32 weights (int8 ones multiplied by their scales)."""
    state = {}
    for name, tensor in stored.items():
        if name in scales:
            shape = (-1,) + (1,) * (tensor.dim() - 1)
            state[name] = tensor.float() * scales[name].reshape(shape)
        elif tensor.is_floating_point():
            state[name] = tensor.float()
        else:
            state[name] = tensor
    return state


def save_checkpoint(
    path: str | os.PathLike, model: CellTissueModel, *, weights_dtype: str = "float32", **extra
) -> int:
    """Write ``model`` (configuration, weights) and ``extra`` entries atomically.

    Returns the file size in bytes.
    """
    path = Path(path)
    stored, scales = encode_state(model.state_dict(), weights_dtype)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "weights_dtype": weights_dtype,
        "state": stored,
        "scales": scales,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path.stat().st_size


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dictionary (for resuming training); raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def model_from_checkpoint(payload: dict) -> CellTissueModel:
    """Rebuild the model of a checkpoint dictionary, float32, in eval mode."""
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (ModelConfigError, TypeError) as error:
        raise CheckpointError(f"checkpoint config: {error}") from None
    model = CellTissueModel(config)
    model.load_state_dict(decode_state(payload["state"], payload.get("scales", {})))
    return model.eval()


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> CellTissueModel:
    """Load a checkpoint into a float32 :class:`CellTissueModel` in eval mode (no network access).

    ``model.config`` carries the variant, encoder, patch size, resolution and normalisation it was
    trained with.
    """
    model = model_from_checkpoint(read_checkpoint(path, map_location))
    return model.to(map_location)
