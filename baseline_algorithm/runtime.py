"""Where the model runs and in what arithmetic: one vocabulary, resolved once per entry point.

Each entry point (``predict``, ``train``, ``reproduce``, the benchmark scripts) turns the
user's ``--device`` and ``--precision`` into a :class:`Runtime` with :func:`resolve_runtime`,
logs it once (``str(runtime)`` says what was chosen and why) and passes the resolved values
down; library functions take a resolved device and precision, never ``auto``.

``auto`` precision is bfloat16 autocast on a CUDA GPU that supports it (float16 on one that does
not, before Ampere) and on a CPU with native bfloat16 instructions (:data:`CPU_BFLOAT16_FLAGS`),
float32 elsewhere: where bfloat16 is emulated it is much slower than float32
(docs/benchmarks.md, "Training precision").

What the machine offers is a :class:`Host`, probed once (:meth:`Host.probe`) or given, so that
every branch of the rule can be exercised on any machine.

PyTorch is imported only where a function needs it: ``predict`` with a detector that needs no
torch runs in an image without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.errors import OcelotError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CPU_BFLOAT16_FLAGS",
    "DEVICES",
    "PRECISIONS",
    "Host",
    "Runtime",
    "RuntimeOptionError",
    "autocast",
    "cpu_flags",
    "memory_format",
    "resolve_device",
    "resolve_precision",
    "resolve_runtime",
]

#: ``--device`` choices; ``train`` also takes ``cuda:N``.
DEVICES = ("auto", "cpu", "cuda")
#: ``--precision`` choices; the resolved precision is one of the last three.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: /proc/cpuinfo flags of a CPU with native bfloat16 arithmetic (AVX-512 BF16, AMX).
CPU_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]{1,4})?")


class RuntimeOptionError(OcelotError, ValueError):
    """A device or precision that does not exist, or that this machine cannot give; one line."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where ``cpuinfo`` cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class Host:
    """What this machine offers the model.

    Attributes
    ----------
    cpu_flags : frozenset of str
        The CPU's feature flags (:func:`cpu_flags`).
    cuda : bool
        PyTorch is installed and sees a CUDA GPU.
    cuda_bfloat16 : bool
        That GPU computes in bfloat16 (Ampere and later).
    """

    cpu_flags: frozenset[str] = frozenset()
    cuda: bool = False
    cuda_bfloat16: bool = False

    @classmethod
    def probe(cls) -> Host:
        """This machine: /proc/cpuinfo, and CUDA as PyTorch sees it (no CUDA without PyTorch)."""
        cuda = cuda_bfloat16 = False
        if importlib.util.find_spec("torch") is not None:
            import torch

            cuda = torch.cuda.is_available()
            cuda_bfloat16 = cuda and torch.cuda.is_bf16_supported()
        return cls(cpu_flags(), cuda, cuda_bfloat16)

    @property
    def cpu_bfloat16(self) -> frozenset[str]:
        """The CPU's native bfloat16 flags (empty where bfloat16 is emulated)."""
        return self.cpu_flags & CPU_BFLOAT16_FLAGS


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision, and why that precision.

    Attributes
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"float32", "bfloat16", "float16"}
    reason : str
        Why this precision, e.g. ``"CPU has avx512_bf16"`` or ``"asked for"``.
    """

    device: str
    precision: str
    reason: str

    def __str__(self) -> str:
        return f"device {self.device}, precision {self.precision} ({self.reason})"

    @property
    def device_type(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self.device.partition(":")[0]


def resolve_device(name: str, host: Host) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``: ``auto`` is CUDA when the host has a GPU.

    Raises
    ------
    RuntimeOptionError
        An unknown name, or CUDA asked for on a host without it.
    """
    if type(name) is not str or not _DEVICE_NAME.fullmatch(name):
        raise RuntimeOptionError(f"device {name!r} is not one of {', '.join(DEVICES)} or cuda:N")
    if name == "auto":
        return "cuda" if host.cuda else "cpu"
    if name.startswith("cuda") and not host.cuda:
        raise RuntimeOptionError(
            f"device {name}: no CUDA device is available (use device auto or cpu)"
        )
    return name


def resolve_precision(name: str, device: str, host: Host) -> tuple[str, str]:
    """The arithmetic of the model on a resolved ``device``, and the reason for it.

    Parameters
    ----------
    name : {"auto", "float32", "bfloat16", "float16"}
    device : str
        A resolved device (:func:`resolve_device`).
    host : Host

    Returns
    -------
    precision : {"float32", "bfloat16", "float16"}
    reason : str
    """
    if name not in PRECISIONS:
        raise RuntimeOptionError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return name, "asked for"
    if device.startswith("cuda"):
        if host.cuda_bfloat16:
            return "bfloat16", "GPU computes in bfloat16"
        return "float16", "GPU without bfloat16"
    native = host.cpu_bfloat16
    if native:
        return "bfloat16", f"CPU has {', '.join(sorted(native))}"
    return "float32", "CPU without native bfloat16"


def resolve_runtime(
    device: str = "auto", precision: str = "auto", host: Host | None = None
) -> Runtime:
    """Resolve ``--device`` and ``--precision`` together, on ``host`` (default: this machine).

    Examples
    --------
    >>> str(resolve_runtime("cpu", "auto", Host(frozenset({"avx2"}))))
    'device cpu, precision float32 (CPU without native bfloat16)'
    >>> str(resolve_runtime("auto", "auto", Host(frozenset({"amx_bf16"}))))
    'device cpu, precision bfloat16 (CPU has amx_bf16)'
    """
    host = Host.probe() if host is None else host
    chosen = resolve_device(device, host)
    return Runtime(chosen, *resolve_precision(precision, chosen, host))


#: Autocast dtype name of each resolved precision (float32: no autocast).
_AUTOCAST_DTYPES = {"float32": None, "bfloat16": "bfloat16", "float16": "float16"}


def _autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(
            f"precision {precision!r} is not a resolved one ({', '.join(_AUTOCAST_DTYPES)})"
        )
    import torch

    name = _AUTOCAST_DTYPES[precision]
    return None if name is None else getattr(torch, name)


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass on ``device``: none for float32, else autocast to
    ``precision``'s dtype, on CPU as on CUDA."""
    dtype = _autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(torch.device(device).type, dtype=dtype)


def memory_format(precision: str) -> torch.memory_format:
    """channels_last under bfloat16 / float16 autocast, contiguous (NCHW) in float32.

    The reduced-precision convolution kernels, oneDNN's on the CPU and cuDNN's, are much faster
    on channels-last tensors; float32 gains nothing from it (docs/benchmarks.md, "Inference
    precision").
    """
    import torch

    if _autocast_dtype(precision) is None:
        return torch.contiguous_format
    return torch.channels_last
