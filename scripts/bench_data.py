#!/usr/bin/env python
"""Benchmarks of the data layer: synthetic pair generation and streaming a stacked GC input.

Usage: python scripts/bench_data.py [--pairs N] [--stack-pairs M]
Prints seconds per generated pair (wall and CPU) at 256 and 1024 px, then time per pair and peak
Python-heap memory (tracemalloc) while iterating an M-pair stacked input, uncompressed and deflate.
"""

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from evaluation.stacked import iter_gc_input_pairs, write_stacked_tiff


def bench_generation(pairs: int) -> None:
    for size in (256, 1024):
        config = SyntheticConfig(size=size)
        synthesize_pair("000", 0, 0, "train", config)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for index in range(pairs):
            synthesize_pair("000", 0, index, "train", config)
        print(
            f"generate {size:4d} px: {(time.perf_counter() - wall) / pairs:.3f} s/pair wall, "
            f"{(time.process_time() - cpu) / pairs:.3f} s/pair CPU ({pairs} pairs)"
        )


def bench_streaming(count: int) -> None:
    rng = np.random.default_rng(0)
    patch = synthesize_pair("000", 0, 0, "train").cell_image
    with tempfile.TemporaryDirectory() as scratch:
        for compression in (None, "zlib"):
            root = Path(scratch) / str(compression)
            stack = np.lib.format.open_memmap(
                Path(scratch) / "stack.npy", "w+", np.uint8, (count, 1024, 1024, 3)
            )
            for k in range(count):
                stack[k] = np.roll(patch, int(rng.integers(1024)), axis=1)
            for kind in ("cell_patches", "tissue_patches"):
                (root / "images" / kind).mkdir(parents=True)
                write_stacked_tiff(
                    root / "images" / kind / "000.tif", stack, compression=compression
                )
            del stack
            (root / "metadata.json").write_text(
                str([{"patch_x_offset": 0.5, "patch_y_offset": 0.5}] * count).replace("'", '"')
            )
            size_mb = os.path.getsize(root / "images" / "cell_patches" / "000.tif") / 1e6
            tracemalloc.start()
            wall = time.perf_counter()
            for _ in iter_gc_input_pairs(root):
                pass
            seconds = time.perf_counter() - wall
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"stream {count} pairs, {compression or 'uncompressed'} "
                f"({size_mb:.0f} MB per TIFF): "
                f"{seconds / count * 1000:.0f} ms/pair, peak traced memory {peak / 1e6:.1f} MB "
                f"(one pair = {2 * 1024 * 1024 * 3 / 1e6:.1f} MB)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--stack-pairs", type=int, default=40)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench_generation(args.pairs)
    bench_streaming(args.stack_pairs)


if __name__ == "__main__":
    main()
