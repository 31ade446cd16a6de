"""How the platform runs an algorithm container, stated once for preflight, tests and benchmarks.

The OCELOT organisers run a submission as ``docker run --network none --cap-drop ALL
--security-opt no-new-privileges --memory 4g --memory-swap 4g --shm-size 128m --pids-limit 256``
with the input mounted read-only at ``/input``; only ``/output`` is writable (the image's own
file system is read-only; ``/tmp`` is a small in-memory file system, charged to the memory limit).

:func:`docker_run_arguments` gives these as ``docker run`` arguments, :func:`docker_sdk_arguments`
as keyword arguments of the Docker SDK for Python (``client.containers.run(image, **...)``);
:data:`ORGANISER_RUN_FLAGS` is the latter at the default limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INPUT_MOUNT",
    "ORGANISER_RUN_FLAGS",
    "OUTPUT_FILE",
    "OUTPUT_MOUNT",
    "RunLimits",
    "docker_run_arguments",
    "docker_sdk_arguments",
    "memory_bytes",
]

INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"
#: What the platform reads back from the container.
OUTPUT_FILE = f"{OUTPUT_MOUNT}/cell_classification.json"
#: The writable scratch space: an in-memory file system, so it counts against the memory limit.
SCRATCH_MOUNT = "/tmp"


@dataclass(frozen=True)
class RunLimits:
    """The resource limits of one run.

    Attributes
    ----------
    memory : str
        Memory limit in Docker's notation (``4g``, ``512m``); swap is the same, so none is usable.
    pids : int
        Maximum number of processes and threads.
    shm_size : str
        Size of ``/dev/shm``.
    gpus : bool
        Give the container every GPU of the host (``--gpus all``).
    """

    memory: str = "4g"
    pids: int = 256
    shm_size: str = "128m"
    gpus: bool = False


def memory_bytes(limit: str) -> int:
    """``"4g"`` -> 4 * 1024**3: Docker's memory notation (b, k, m, g; binary units) in bytes."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    text = limit.strip().lower()
    unit = units.get(text[-1:]) if text[-1:].isalpha() else 1
    number = text[:-1] if text[-1:].isalpha() else text
    if unit is None or not number.replace(".", "", 1).isdigit():
        raise ValueError(
            f"memory limit {limit!r} is not a number with an optional unit b, k, m or g"
        )
    return int(float(number) * unit)


def docker_run_arguments(
    input_dir: Path, output_dir: Path, limits: RunLimits = RunLimits()
) -> list[str]:
    """``docker run``/``docker create`` arguments (before the image name) of a platform run."""
    arguments = [
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        limits.memory,
        "--memory-swap",
        limits.memory,
        "--shm-size",
        limits.shm_size,
        "--pids-limit",
        str(limits.pids),
        "--read-only",
        "--tmpfs",
        SCRATCH_MOUNT,
        "--volume",
        f"{Path(input_dir).resolve()}:{INPUT_MOUNT}:ro",
        "--volume",
        f"{Path(output_dir).resolve()}:{OUTPUT_MOUNT}:rw",
    ]
    if limits.gpus:
        arguments += ["--gpus", "all"]
    return arguments


def docker_sdk_arguments(limits: RunLimits = RunLimits()) -> dict:
    """The same flags as Docker SDK keyword arguments (volumes are the caller's)."""
    arguments = dict(
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        shm_size=limits.shm_size,
        pids_limit=limits.pids,
        read_only=True,
        tmpfs={SCRATCH_MOUNT: ""},
    )
    if limits.gpus:
        import docker

        arguments["device_requests"] = [
            docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
        ]
    return arguments


#: The organisers' flags at their limits, as Docker SDK keyword arguments.
ORGANISER_RUN_FLAGS = docker_sdk_arguments()
