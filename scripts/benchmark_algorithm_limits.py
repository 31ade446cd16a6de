"""Does ocelot-algorithm fit the organisers' limits on a full-size test set? (a benchmark)

Steps:

1. write a synthetic Grand Challenge input of ``--pairs`` pairs at 1024 px (130 by default, as the
   OCELOT test set: two stacked TIFFs of about 409 MB each). ``--distinct`` pairs are synthesised
   and repeated cyclically; the data layer's writer buffers them in memory-mapped files, so the host
   holds one pair at a time;
2. run the image with the organisers' flags (``--memory 4g`` ...) on it, polling the container's
   cgroup for its peak memory (with and without page cache) and its CPU time;
3. run, in the same image and under the same flags, the bare model forward passes on random
   patches of the checkpoint's size (batch 1), and compare CPU time per pair.

Targets (issue 6): peak memory under 2.5 GB; CPU time per pair within 15% of the bare forward pass.

Usage::

    python scripts/benchmark_algorithm_limits.py [--pairs 130] [--image ocelot-algorithm]
        [--checkpoint PATH] [--workdir runs/limits] [--json runs/limits/result.json]

``--checkpoint`` is mounted into the container and used instead of the baked weights (for instance
the paper configuration, ``--random-paper-checkpoint`` writes a randomly initialised one: ResNet-34
encoders at 1024 px, the heaviest case). Without either, the image's baked checkpoint runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path

import docker
import numpy as np
from tqdm import tqdm

# Runnable from a checkout without installing the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from baseline_algorithm.platform import ORGANISER_RUN_FLAGS
from evaluation.gc_layout import GrandChallengeWriter

FULL_SIZE = 1024
MOUNTED_CHECKPOINT = "/opt/benchmark/checkpoint.pt"
#: Runs inside the image: CPU seconds of one forward pass (batch 1) of the checkpoint's model.
BARE_FORWARD = """
import json, os, sys, time, torch
from baseline_algorithm.checkpoint import load_checkpoint
model = load_checkpoint(os.environ["OCELOT_CHECKPOINT"])
size, repeats = model.config.patch_size, int(sys.argv[1])
cell, tissue = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
box = torch.tensor([[size * 0.375, size * 0.375, size * 0.625, size * 0.625]])
times = []
with torch.inference_mode():
    for k in range(repeats + 1):
        start = time.process_time()
        model(cell, tissue, box, None)
        if k:  # the first pass warms up the allocator and kernels
            times.append(time.process_time() - start)
print(json.dumps({"patch_size": size, "encoder": model.config.encoder, "cpu_s": times}))
"""


def write_input(directory: Path, pairs: int, distinct: int, seed: int) -> Path:
    """A synthetic Grand Challenge layout of ``pairs`` full-size pairs under ``directory``."""
    config = SyntheticConfig(size=FULL_SIZE)
    if (directory / "input" / "metadata.json").is_file() and len(
        json.loads((directory / "input" / "metadata.json").read_text())
    ) == pairs:
        print(f"benchmark: reusing {directory / 'input'}")
        return directory / "input"
    writer = GrandChallengeWriter(directory, pairs, FULL_SIZE)
    originals = [
        synthesize_pair(f"{k + 1:03d}", seed, k, "test", config)
        for k in tqdm(range(min(distinct, pairs)), desc="synthesise", unit="pair")
    ]
    for index in tqdm(range(pairs), desc="stack", unit="pair"):
        writer.add(index, originals[index % len(originals)])
    writer.finish(np.random.default_rng(seed), config.cell_mpp)
    for path in (directory / "input").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory / "input"


def evict_from_page_cache(paths) -> None:
    """Drop the host's cached pages of ``paths``: the files were just written here, and pages
    already cached are not charged to the container, which would hide the reads from its peak."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def random_paper_checkpoint(path: Path) -> Path:
    """A randomly initialised Pred-to-inter-2 in the paper's configuration (ResNet-34, 1024 px)."""
    import torch

    from baseline_algorithm.checkpoint import save_checkpoint
    from baseline_algorithm.model import CellTissueModel, ModelConfig

    torch.manual_seed(0)
    save_checkpoint(path, CellTissueModel(ModelConfig()).eval())
    path.chmod(0o644)
    return path


class CgroupMonitor:
    """Polls a container's cgroup (v1 or v2) for memory and CPU time until stopped."""

    def __init__(self, container_id: str, interval_s: float = 0.2):
        v1 = Path("/sys/fs/cgroup/memory/docker") / container_id
        if v1.is_dir():
            self.memory_usage = v1 / "memory.usage_in_bytes"
            self.memory_peak = v1 / "memory.max_usage_in_bytes"
            self.memory_stat, self.rss_keys = v1 / "memory.stat", ("total_rss",)
            self.cpu = Path("/sys/fs/cgroup/cpuacct/docker") / container_id / "cpuacct.usage"
            self.cpu_scale = 1e-9
        else:
            v2 = next(Path("/sys/fs/cgroup").glob(f"**/*{container_id}*"))
            self.memory_usage, self.memory_peak = v2 / "memory.current", v2 / "memory.peak"
            self.memory_stat, self.rss_keys = v2 / "memory.stat", ("anon",)
            self.cpu, self.cpu_scale = v2 / "cpu.stat", 1e-6
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_rss_bytes = 0
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def read_cpu_s(self) -> float:
        text = self.cpu.read_text()
        if self.cpu.name == "cpu.stat":
            text = re.search(r"usage_usec (\d+)", text).group(1)
        return int(text) * self.cpu_scale

    def _sample(self) -> None:
        peak_file = self.memory_peak if self.memory_peak.exists() else self.memory_usage
        self.peak_bytes = max(self.peak_bytes, int(peak_file.read_text()))
        stat = dict(line.split() for line in self.memory_stat.read_text().splitlines())
        self.peak_rss_bytes = max(
            self.peak_rss_bytes, sum(int(stat.get(key, 0)) for key in self.rss_keys)
        )
        self.cpu_s = self.read_cpu_s()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except (
                OSError,
                StopIteration,
                ValueError,
            ):  # the cgroup vanishes when the container exits
                return
            time.sleep(self.interval_s)

    def __enter__(self) -> CgroupMonitor:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def run_algorithm(
    client, image: str, input_dir: Path, output_dir: Path, checkpoint: Path | None
) -> dict:
    """Run the entry on ``input_dir``; CPU and memory from its cgroup, per-pair CPU from the log."""
    volumes = {
        str(input_dir.resolve()): {"bind": "/input", "mode": "ro"},
        str(output_dir.resolve()): {"bind": "/output", "mode": "rw"},
    }
    environment = {}
    if checkpoint is not None:
        volumes[str(checkpoint.resolve())] = {"bind": MOUNTED_CHECKPOINT, "mode": "ro"}
        environment["OCELOT_CHECKPOINT"] = MOUNTED_CHECKPOINT
    container = client.containers.create(
        image, volumes=volumes, environment=environment, **ORGANISER_RUN_FLAGS
    )
    try:
        container.start()
        started = time.perf_counter()
        with CgroupMonitor(container.id) as monitor:
            # The entry logs "predict: N pairs from ..." once the model is loaded and the first
            # pair read:
            # CPU spent before it is start-up, after it is per-pair work.
            cpu_at_first_pair = None
            log = []
            for chunk in container.logs(stream=True, follow=True):
                text = chunk.decode(errors="replace")
                log.append(text)
                if cpu_at_first_pair is None and re.search(
                    r"predict: \d+ pairs from", "".join(log)
                ):
                    cpu_at_first_pair = monitor.read_cpu_s()
                    wall_at_first_pair = time.perf_counter()
            status = container.wait()["StatusCode"]
        wall_s = time.perf_counter() - started
    finally:
        container.remove(force=True)
    log_text = "".join(log)
    if status != 0:
        raise SystemExit(f"benchmark: the container exited with {status}:\n{log_text[-2000:]}")
    pairs = int(re.search(r"predict: (\d+) pairs from", log_text).group(1))
    return {
        "exit_status": status,
        "pairs": pairs,
        "wall_s": round(wall_s, 1),
        "startup_wall_s": round(wall_at_first_pair - started, 1),
        "cpu_s": round(monitor.cpu_s, 1),
        "startup_cpu_s": round(cpu_at_first_pair, 1),
        "cpu_s_per_pair": round((monitor.cpu_s - cpu_at_first_pair) / pairs, 3),
        "wall_s_per_pair": round((wall_s - (wall_at_first_pair - started)) / pairs, 3),
        "peak_memory_gb": round(monitor.peak_bytes / 1e9, 3),
        "peak_rss_gb": round(monitor.peak_rss_bytes / 1e9, 3),
        "last_log_line": log_text.strip().splitlines()[-1],
    }


def run_bare_forward(client, image: str, checkpoint: Path | None, repeats: int) -> dict:
    """CPU seconds of bare forward passes, in the same image under the same flags."""
    volumes, environment = {}, {}
    if checkpoint is not None:
        volumes[str(checkpoint.resolve())] = {"bind": MOUNTED_CHECKPOINT, "mode": "ro"}
        environment["OCELOT_CHECKPOINT"] = MOUNTED_CHECKPOINT
    output = client.containers.run(
        image,
        entrypoint=["python", "-c", BARE_FORWARD, str(repeats)],
        volumes=volumes,
        environment=environment,
        remove=True,
        stderr=False,
        **ORGANISER_RUN_FLAGS,
    )
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["cpu_s_per_pass"] = round(float(np.median(result.pop("cpu_s"))), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", type=int, default=130, help="pairs in the synthetic input (OCELOT test: 130)"
    )
    parser.add_argument(
        "--distinct", type=int, default=8, help="distinct synthetic pairs, repeated to --pairs"
    )
    parser.add_argument("--image", default="ocelot-algorithm")
    checkpoints = parser.add_mutually_exclusive_group()
    checkpoints.add_argument(
        "--checkpoint", type=Path, help="weights to mount instead of the baked ones"
    )
    checkpoints.add_argument(
        "--random-paper-checkpoint",
        action="store_true",
        help="mount a randomly initialised ResNet-34, 1024 px Pred-to-inter-2",
    )
    parser.add_argument("--repeats", type=int, default=5, help="bare forward passes to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("runs/limits"))
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)

    client = docker.from_env(timeout=3600)
    data_dir = args.workdir / f"input-{args.pairs}"
    input_dir = write_input(data_dir, args.pairs, args.distinct, args.seed)
    stack_mb = sum(p.stat().st_size for p in (input_dir / "images").rglob("*.tif")) / 2 / 1e6
    checkpoint = args.checkpoint
    if args.random_paper_checkpoint:
        checkpoint = random_paper_checkpoint(args.workdir / "random-paper.pt")
    output_dir = args.workdir / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    output_dir.chmod(0o777)

    evict_from_page_cache((input_dir / "images").rglob("*.tif"))
    algorithm = run_algorithm(client, args.image, input_dir, output_dir, checkpoint)
    bare = run_bare_forward(client, args.image, checkpoint, args.repeats)
    ratio = algorithm["cpu_s_per_pair"] / bare["cpu_s_per_pass"]
    result = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"load average {open('/proc/loadavg').read().split()[0]}",
        "image": args.image,
        "checkpoint": str(checkpoint) if checkpoint else "baked",
        "stack_mb_each": round(stack_mb, 1),
        "algorithm": algorithm,
        "bare_forward": bare,
        "cpu_per_pair_over_bare_forward": round(ratio, 3),
        "peak_memory_under_2_5_gb": algorithm["peak_memory_gb"] < 2.5,
        "cpu_within_15_percent": ratio <= 1.15,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0 if result["peak_memory_under_2_5_gb"] and result["cpu_within_15_percent"] else 1


if __name__ == "__main__":
    sys.exit(main())
