"""CPU time and peak memory of ``score`` at the OCELOT test-set size, beside the organisers' scorer.

Writes, once, a synthetic submission of the size of the OCELOT 2023 test set: 130 images of
1024 x 1024 px with about 25,000 ground-truth cells, and predictions like a decent detector's
(about 80 % of the cells found within a few pixels, some with the wrong class, plus spurious
detections). Each image's predictions are listed highest probability first, with distinct float32
probabilities, as a detector that reports the peaks of a float32 heat map in descending order does.

Then, over ``--rounds`` rounds (after one untimed warm-up of each), it runs in a fresh child
process, in alternating order:

(a) ours: ``python -m evaluation score --predictions P --ground-truth G --output M``;
(b) the organisers' scorer: a driver (in this file) that imports their ``evaluation/eval.py`` and
    calls its functions in the order its ``main()`` intends, on the same files. Their ``main()``
    itself cannot run (it reads the ground-truth file twice and never imports ``json``), so the
    driver reads both files with ``json.load`` as ``main()`` means to, then calls
    ``_check_validity`` (both documents), ``_convert_format``,
    ``_preprocess_distance_and_confidence`` and ``_calc_scores`` (per class, with the module's
    ``DISTANCE_CUTOFF``), and prints the scores as JSON.

For each child it takes the CPU time (user + system) and peak resident memory from ``os.wait4``:
the resource usage of that one child (see ``benchmark_scorer.py`` for why the files are written
by a separate process, and why both sides run from a scratch bytecode cache, as installed
modules do). It reports the medians and the ratio ours / organisers', and checks that both
publish identical numbers (``Pre``, ``Rec``, ``F1`` of BC and TC, ``mF1``).

The organisers' scorer is not part of this repository. Get it with::

    git clone https://github.com/lunit-io/ocelot23algo /tmp/ocelot23algo
    python scripts/benchmark_scorer_ocelot.py --organisers-eval /tmp/ocelot23algo/evaluation/eval.py

Before its fix of July 2023 (lunit-io/ocelot23algo issue #5), ``eval.py`` ranks predictions by
their class column instead of their probability; an early version also has a 25 px cutoff.
The driver detects both and the output says so. A different cutoff is passed to ours as
``--radius-px``. With the class column, every prediction of an image and class ties, and numpy's
``argsort`` visits them in file order, which the files make the descending-probability order of
our rule: the numbers agree wherever that holds, and the comparison checks it.

Usage: python scripts/benchmark_scorer_ocelot.py --organisers-eval PATH [--rounds 15]
                                                 [--seed 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from benchmark_scorer import child_environment, in_separate_process, own_peak_mib, run_child

NUM_IMAGES = 130
PUBLISHED_KEYS = ("Pre/BC", "Rec/BC", "F1/BC", "Pre/TC", "Rec/TC", "F1/TC", "mF1")

#: Runs the organisers' eval.py: argv = eval.py, predictions, ground truth. Prints JSON.
ORGANISERS_DRIVER = r"""
import importlib.util, json, sys
eval_path, predictions_path, ground_truth_path = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("organisers_eval", eval_path)
organisers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(organisers)
with open(predictions_path) as stream:
    pred_json = json.load(stream)["points"]
with open(ground_truth_path) as stream:
    ground_truth = json.load(stream)
gt_json, num_images = ground_truth["points"], ground_truth["num_images"]
organisers._check_validity(pred_json)
organisers._check_validity(gt_json)
pred_all, gt_all = organisers._convert_format(pred_json, gt_json, num_images)
all_sample_result = organisers._preprocess_distance_and_confidence(pred_all, gt_all)
scores = {}
for cls_idx, cls_name in organisers.CLS_IDX_TO_NAME.items():
    precision, recall, f1 = organisers._calc_scores(
        all_sample_result, cls_idx, organisers.DISTANCE_CUTOFF)
    scores[f"Pre/{cls_name}"] = precision
    scores[f"Rec/{cls_name}"] = recall
    scores[f"F1/{cls_name}"] = f1
scores["mF1"] = sum(
    scores[f"F1/{cls_name}"] for cls_name in organisers.CLS_IDX_TO_NAME.values()
) / len(organisers.CLS_IDX_TO_NAME)
# Which column ranks the predictions: one prediction of class 1 with probability 0.25.
probe = organisers._preprocess_distance_and_confidence([[(0, 0, 1, 0.25)]], [[(0, 0, 1, 1.0)]])
confidence = float(probe[0][1][1][0])
ranks_by = {0.25: "probability", 1.0: "class"}.get(confidence, f"unknown ({confidence})")
print(json.dumps({"scores": scores, "cutoff": organisers.DISTANCE_CUTOFF, "ranks_by": ranks_by}))
"""


def write_inputs(folder: str, seed: int) -> None:
    """Write ``gt.json`` and ``pred.json`` of the synthetic test set into ``folder``.

    Runs in its own process, so that the benchmark process stays small (see the module
    docstring).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    side = 1024
    gt_entries, pred_entries = [], []
    for image in range(NUM_IMAGES):
        name = f"image_{image}"
        num_cells = int(rng.integers(60, 330))  # about 25,000 over 130 images
        gt_xy = rng.integers(0, side, size=(num_cells, 2))
        tumour_fraction = rng.beta(2.0, 1.5)
        gt_label = np.where(rng.random(num_cells) < tumour_fraction, 2, 1)

        found = rng.random(num_cells) < 0.8
        jitter = np.rint(rng.normal(0.0, 2.5, size=(int(found.sum()), 2))).astype(np.int64)
        found_xy = np.clip(gt_xy[found] + jitter, 0, side - 1)
        wrong_class = rng.random(int(found.sum())) < 0.12
        found_label = np.where(wrong_class, 3 - gt_label[found], gt_label[found])
        num_spurious = int(rng.poisson(0.15 * num_cells))
        pred_xy = np.concatenate([found_xy, rng.integers(0, side, size=(num_spurious, 2))])
        pred_label = np.concatenate([found_label, rng.choice([1, 2], size=num_spurious)])
        confidence = np.concatenate(
            [rng.beta(5.0, 2.0, size=len(found_xy)), rng.beta(2.0, 4.0, size=num_spurious)]
        )
        order = np.argsort(-confidence, kind="stable")
        probability = _strictly_decreasing_float32(confidence[order])

        gt_entries += [
            {"name": name, "point": [x, y, label], "probability": 1.0}
            for (x, y), label in zip(gt_xy.tolist(), gt_label.tolist())
        ]
        pred_entries += [
            {"name": name, "point": [x, y, label], "probability": p}
            for (x, y), label, p in zip(
                pred_xy[order].tolist(), pred_label[order].tolist(), probability
            )
        ]
    version = {"major": 1, "minor": 0}
    documents = {
        "gt.json": {
            "type": "Multiple points",
            "num_images": NUM_IMAGES,
            "points": gt_entries,
            "version": version,
        },
        "pred.json": {"type": "Multiple points", "points": pred_entries, "version": version},
    }
    for file_name, document in documents.items():
        Path(folder, file_name).write_text(json.dumps(document))


def _strictly_decreasing_float32(values) -> list[float]:
    """``values`` (descending) as float32 numbers, each strictly below the one before."""
    import numpy as np

    result = []
    previous = np.float32(1.0)
    for value in values.astype(np.float32):
        value = min(value, np.nextafter(previous, np.float32(0.0)))
        result.append(float(value))
        previous = value
    return result


def ours_command(folder: Path, radius_px: float | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "evaluation",
        "score",
        "--predictions",
        str(folder / "pred.json"),
        "--ground-truth",
        str(folder / "gt.json"),
        "--output",
        str(folder / "metrics.json"),
    ]
    if radius_px is not None:
        command += ["--radius-px", str(radius_px)]
    return command


def organisers_command(eval_path: Path, folder: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        ORGANISERS_DRIVER,
        str(eval_path),
        str(folder / "pred.json"),
        str(folder / "gt.json"),
    ]


def describe_inputs(folder: Path) -> tuple[int, int]:
    """Numbers of GT cells and predictions (counted without parsing into the benchmark)."""
    counts = []
    for name in ("gt.json", "pred.json"):
        counts.append(Path(folder, name).read_text().count('"name"'))
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--organisers-eval",
        type=Path,
        required=True,
        help="the organisers' evaluation/eval.py (lunit-io/ocelot23algo)",
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.organisers_eval.is_file():
        raise SystemExit(
            f"{args.organisers_eval}: not a file (see the docstring: git clone "
            "https://github.com/lunit-io/ocelot23algo)"
        )
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        in_separate_process(write_inputs, scratch, args.seed)
        num_gt, num_pred = describe_inputs(folder)
        environment = child_environment(folder / "bytecode")

        # Warm-up (page cache, compiled bytecode), and what the organisers' version does.
        organisers = json.loads(
            run_child(organisers_command(args.organisers_eval, folder), environment)["stdout"]
        )
        radius_px = None if organisers["cutoff"] == 15 else float(organisers["cutoff"])
        run_child(ours_command(folder, radius_px), environment)

        parser_name = _our_parser()
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; our JSON parser: {parser_name}"
        )
        print(
            f"{NUM_IMAGES} images, {num_gt} GT cells, {num_pred} predictions; "
            f"benchmark process peak {own_peak_mib():.0f} MiB (a floor of every child's peak)"
        )
        notes = _rule_notes(organisers)
        for note in notes:
            print(f"note: {note}")
        print(
            f"{'round':>5} {'ours CPU s':>10} {'theirs CPU s':>12} {'ratio':>6} "
            f"{'ours MiB':>8} {'theirs MiB':>10} {'load':>5}"
        )
        rounds = []
        for index in range(args.rounds):
            sides = [
                ("ours", ours_command(folder, radius_px)),
                ("theirs", organisers_command(args.organisers_eval, folder)),
            ]
            if index % 2:
                sides.reverse()
            measured = {side: run_child(command, environment) for side, command in sides}
            rounds.append(
                {
                    side: {key: value for key, value in figures.items() if key != "stdout"}
                    for side, figures in measured.items()
                }
            )
            rounds[-1]["load"] = os.getloadavg()[0]
            ours, theirs = rounds[-1]["ours"], rounds[-1]["theirs"]
            print(
                f"{index:>5} {ours['cpu_s']:>10.3f} {theirs['cpu_s']:>12.3f} "
                f"{ours['cpu_s'] / theirs['cpu_s']:>6.2f} {ours['peak_mib']:>8.0f} "
                f"{theirs['peak_mib']:>10.0f} {rounds[-1]['load']:>5.1f}",
                flush=True,
            )
            organisers_scores = json.loads(measured["theirs"]["stdout"])["scores"]

        ours_scores = json.loads((folder / "metrics.json").read_text())["aggregates"]
        identical = all(ours_scores[key] == organisers_scores[key] for key in PUBLISHED_KEYS)

    summary = {
        side: {
            figure: statistics.median(r[side][figure] for r in rounds)
            for figure in ("cpu_s", "wall_s", "peak_mib")
        }
        for side in ("ours", "theirs")
    }
    summary["cpu_ratio"] = summary["ours"]["cpu_s"] / summary["theirs"]["cpu_s"]
    summary["cpu_ratio_per_round_median"] = statistics.median(
        r["ours"]["cpu_s"] / r["theirs"]["cpu_s"] for r in rounds
    )
    print(
        f"median over {args.rounds} rounds: ours {summary['ours']['cpu_s']:.3f} s CPU, "
        f"{summary['ours']['peak_mib']:.0f} MiB; organisers' {summary['theirs']['cpu_s']:.3f} s "
        f"CPU, {summary['theirs']['peak_mib']:.0f} MiB; CPU ratio ours/organisers "
        f"{summary['cpu_ratio']:.2f} (median of per-round ratios "
        f"{summary['cpu_ratio_per_round_median']:.2f}); load "
        f"{min(r['load'] for r in rounds):.1f}-{max(r['load'] for r in rounds):.1f}"
    )
    print("published numbers: " + ("identical" if identical else "DIFFERENT"))
    for key in PUBLISHED_KEYS:
        print(f"  {key:<7} ours {ours_scores[key]!r:<10} organisers' {organisers_scores[key]!r}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "images": NUM_IMAGES,
                    "gt_cells": num_gt,
                    "predictions": num_pred,
                    "our_parser": parser_name,
                    "organisers_rule": organisers | {"scores": None},
                    "notes": notes,
                    "benchmark_peak_mib": own_peak_mib(),
                    "rounds": rounds,
                    "median": summary,
                    "identical": identical,
                    "ours": ours_scores,
                    "organisers": organisers_scores,
                },
                indent=1,
            )
            + "\n"
        )
    if not identical:
        raise SystemExit(1)


def _our_parser() -> str:
    """Which JSON parser ``score`` uses on points documents."""
    return (
        "msgspec's typed decoder for large documents (evaluation/multiple_points.py, "
        "TYPED_PARSER_MIN_BYTES), json (standard library) below"
    )


def _rule_notes(organisers: dict) -> list[str]:
    notes = []
    if organisers["ranks_by"] != "probability":
        notes.append(
            f"this eval.py ranks predictions by their {organisers['ranks_by']} column, not by "
            "probability (before lunit-io/ocelot23algo issue #5 was fixed); the files list "
            "predictions highest probability first, so both rules visit them in the same order"
        )
    if organisers["cutoff"] != 15:
        notes.append(
            f"this eval.py's cutoff is {organisers['cutoff']} px, not 15: ours runs "
            f"with --radius-px {organisers['cutoff']}"
        )
    return notes


if __name__ == "__main__":
    main()
