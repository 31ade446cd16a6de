#!/usr/bin/env python
"""Draw one synthetic pair (cell patch with points, tissue patch, tissue mask, cell box) as a PNG.

Usage: python scripts/plot_synthetic_pair.py [OUT.png] [--seed K] [--index I] [--size S]
Default: docs/synthetic_pair.png from seed 7, pair 0, 1024 px.
"""

import argparse
from pathlib import Path

from baseline_algorithm.data.plot import plot_pair
from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "synthetic_pair.png",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    pair = synthesize_pair(
        f"{args.index + 1:03d}", args.seed, args.index, "train", SyntheticConfig(size=args.size)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_pair(pair, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
