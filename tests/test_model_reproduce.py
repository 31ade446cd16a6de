"""The experiment table: rows over seeds, paired bootstrap intervals, and the command's options."""

import argparse
import json
from dataclasses import asdict, replace

import numpy as np
import pytest

from baseline_algorithm.checkpoint import save_checkpoint
from baseline_algorithm.commands import reproduce as reproduce_command
from baseline_algorithm.commands import train as train_command
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.reproduce import (
    FAILURE_COLUMNS,
    _finished,
    _resumable,
    experiment_rows,
    failure_numbers,
    markdown_table,
    run_epochs,
    table_rows,
)
from baseline_algorithm.train import TrainingOptions
from evaluation import PointSet, score
from evaluation.bootstrap import STATISTICS, paired_replicates
from evaluation.error_analysis import ErrorCounts, error_counts, summarise
from evaluation.metrics import COUNT_KEYS
from evaluation.tissue import tissue_maps


def random_images(rng, n_images, n_points=30, jitter=25):
    truth_rows, prediction_rows = [], []
    for image in range(n_images):
        for _ in range(n_points):
            x, y, label = rng.integers(30, 230), rng.integers(30, 230), rng.integers(1, 3)
            truth_rows.append((image, x, y, label))
            if rng.random() < 0.8:
                dx, dy = rng.integers(-jitter, jitter + 1, size=2)
                flipped = 3 - label if rng.random() < 0.2 else label
                prediction_rows.append((image, x + dx, y + dy, flipped, rng.random()))
    truth = np.array(truth_rows)
    predictions = np.array(prediction_rows)
    return (
        PointSet.from_arrays(
            predictions[:, 0].astype(int),
            predictions[:, 1:3].astype(int),
            predictions[:, 3].astype(int),
            predictions[:, 4],
        ),
        PointSet.from_arrays(truth[:, 0], truth[:, 1:3], truth[:, 3], np.ones(len(truth))),
    )


def scored(jitter, seed, n_images=8):
    predictions, truth = random_images(np.random.default_rng(seed), n_images, jitter=jitter)
    report = score(predictions, truth, n_images)
    counts = {key: np.array([image[key] for image in report.results]) for key in COUNT_KEYS}
    return {"aggregates": report.aggregates, "counts": counts}


def test_rows_average_seeds_and_give_paired_gains_over_cell_only():
    results = {
        ("cell-only", "both"): {0: scored(25, 7), 1: scored(25, 8)},
        ("pred-to-inter-2", "both"): {0: scored(10, 7), 1: scored(10, 8)},
        ("pred-to-inter-2", "large-fov-only"): {0: scored(18, 7), 1: scored(18, 8)},
    }
    rows = table_rows(results, resamples=300, seed=3)
    by_key = {(row["variant"], row["ablation"]): row for row in rows}
    baseline = by_key[("cell-only", "both")]
    assert "gain" not in baseline
    for key, runs in results.items():
        row = by_key[key]
        values = [100 * run["aggregates"]["mF1"] for run in runs.values()]
        assert row["mF1"] == pytest.approx(np.mean(values))
        assert row["mF1_std"] == pytest.approx(np.std(values, ddof=1))
        assert row["seeds"] == [0, 1] and row["mF1_runs"] == pytest.approx(values)
        assert row["mF1_ci"][0] <= row["mF1"] <= row["mF1_ci"][1]
        if key != ("cell-only", "both"):
            assert row["gain"] == pytest.approx(row["mF1"] - baseline["mF1"])
            assert row["gain_ci"][0] <= row["gain"] <= row["gain_ci"][1]
    table = markdown_table(rows, 8, 300)
    assert table.count("\n| ") == 3 and "large-fov-only" in table and "71.23" in table


def test_paired_gain_interval_is_narrower_than_from_independent_resamples():
    """Sharing the resamples removes the image-to-image variation both runs see."""
    base, better = scored(25, 7, n_images=30), scored(20, 7, n_images=30)
    mf1 = STATISTICS.index("mF1")
    paired = paired_replicates({"a": base["counts"], "b": better["counts"]}, replicates=500)
    independent_a = paired_replicates({"a": base["counts"]}, replicates=500, seed=1)["a"]
    independent_b = paired_replicates({"b": better["counts"]}, replicates=500, seed=2)["b"]
    assert np.std(paired["b"][:, mf1] - paired["a"][:, mf1]) < 0.8 * np.std(
        independent_b[:, mf1] - independent_a[:, mf1]
    )


def test_one_seed_has_no_spread_and_a_lone_row_no_gain():
    rows = table_rows({("pred-to-inter-2", "both"): {5: scored(10, 1)}}, resamples=50, seed=0)
    assert rows[0]["mF1_std"] is None and "gain" not in rows[0]
    assert "±" not in markdown_table(rows, 8, 50).splitlines()[2]


def test_rows_ablate_only_variants_with_a_tissue_branch():
    rows = experiment_rows(
        ["cell-only", "feature-sharing", "tissue-label-leaking"], ["both", "tissue-label-only"]
    )
    assert rows == [
        ("cell-only", "both"),
        ("feature-sharing", "both"),
        ("feature-sharing", "tissue-label-only"),
        ("tissue-label-leaking", "both"),
    ]


def parse(command, argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_train_and_reproduce_read_the_shared_options_into_the_same_fields():
    shared = [
        "--encoder",
        "resnet50",
        "--epochs",
        "3",
        "--batch-size",
        "6",
        "--lr-tissue",
        "2e-3",
        "--lr-cell",
        "1e-3",
        "--dropout-tissue",
        "0.2",
        "--dropout-cell",
        "0.5",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--threshold",
        "0.4",
        "--min-distance-um",
        "3",
        "--checkpoint-dtype",
        "int8",
    ]
    train_args = parse(train_command, ["--data", "D", "--out", "O", *shared])
    reproduce_args = parse(reproduce_command, ["--out", "O", *shared])
    from baseline_algorithm.commands.options import options_from_args

    from_train = options_from_args(TrainingOptions, train_args)
    from_reproduce = options_from_args(TrainingOptions, reproduce_args, data="D", out="O")
    assert from_train == from_reproduce
    assert from_train.batch_size == 6 and from_train.checkpoint_dtype == "int8"


def test_train_reads_the_sharing_configuration_as_a_tuple():
    args = parse(
        train_command,
        [
            "--data",
            "D",
            "--out",
            "O",
            "--variant",
            "feature-sharing",
            "--sharing",
            "none",
            "both",
            "tissue-to-cell",
        ],
    )
    from baseline_algorithm.commands.options import options_from_args

    options = options_from_args(TrainingOptions, args)
    assert options.sharing == ("none", "both", "tissue-to-cell")
    with pytest.raises(SystemExit):
        parse(train_command, ["--data", "D", "--out", "O", "--sharing", "up", "both", "none"])


def test_reproduce_lists_all_seven_variants_and_seeds():
    help_text = argparse.ArgumentParser()
    reproduce_command.add_arguments(help_text)
    text = help_text.format_help()
    for variant in (
        "cell-only",
        "pred-to-input",
        "pred-to-inter-1",
        "pred-to-inter-2",
        "pred-to-output",
        "feature-sharing",
        "tissue-label-leaking",
    ):
        assert variant in text
    assert "--seeds" in text and "--ablations" in text
    args = parse(reproduce_command, ["--out", "O", "--seeds", "0", "1", "2"])
    assert args.seeds == [0, 1, 2] and args.encoder == "resnet18" and args.epochs == 40


def test_a_run_recorded_before_an_option_existed_counts_as_its_default(tmp_path):
    options = TrainingOptions(data="data", out=str(tmp_path), epochs=2)
    recorded = asdict(options)
    del recorded["precision"]  # as a run trained before --precision was recorded
    (tmp_path / "summary.json").write_text(json.dumps({"options": recorded, "epochs": 2}))
    (tmp_path / "best.pt").write_bytes(b"")
    assert _finished(tmp_path, options)
    assert not _finished(tmp_path, replace(options, precision="bfloat16"))
    assert not _finished(tmp_path, replace(options, epochs=3))
    # its last.pt resumes as the same run: a longer one may continue it
    save_checkpoint(
        tmp_path / "last.pt", CellTissueModel(ModelConfig(encoder="resnet18")), options=recorded
    )
    assert _resumable(tmp_path, replace(options, epochs=5))
    assert not _resumable(tmp_path, replace(options, epochs=5, precision="float16"))


def with_errors(jitter, seed, n_images=8):
    """A run scored as evaluate_pairs scores it: counts and the error analysis, tissue by
    halves (cancer area left, background right)."""
    predictions, truth = random_images(np.random.default_rng(seed), n_images, jitter=jitter)
    report = score(predictions, truth, n_images)
    mask = np.ones((256, 256), np.uint8)
    mask[:, :128] = 2
    tissue = tissue_maps(
        [mask] * n_images, [{"patch_x_offset": 0.5, "patch_y_offset": 0.5}] * n_images
    )
    counts = {key: np.array([image[key] for image in report.results]) for key in COUNT_KEYS}
    return {
        "aggregates": report.aggregates,
        "counts": counts,
        "errors": error_counts(predictions, truth, n_images, matched=report.matched, tissue=tissue),
    }


def test_rows_carry_detection_accuracy_and_rare_pairing_f1():
    results = {
        ("cell-only", "both"): {0: with_errors(25, 7), 1: with_errors(25, 8)},
        ("pred-to-inter-2", "both"): {0: with_errors(10, 7)},
    }
    rows = table_rows(results, resamples=50, seed=0)
    for row, runs in zip(rows, results.values()):
        for name in FAILURE_COLUMNS:
            values = [100 * failure_numbers(run["errors"])[name] for run in runs.values()]
            assert row[name] == pytest.approx(np.mean(values))
    document = summarise(results[("cell-only", "both")][0]["errors"])
    assert failure_numbers(results[("cell-only", "both")][0]["errors"]) == {
        "detection_F1": document["detection"]["F1"],
        "accuracy": document["classification"]["accuracy"],
        "F1/TC/background": document["tissue"]["background"]["TC"]["F1"],
        "F1/BC/cancer_area": document["tissue"]["cancer_area"]["BC"]["F1"],
    }
    line = markdown_table(rows, 8, 50).splitlines()[3]
    assert line.count("|") == 15 and line.rstrip(" |").split("|")[-2].strip() != "-"
    # Without tissue the rare-pairing columns are left empty ("-"), the others filled.
    bare = {
        key: {
            seed: dict(run, errors=ErrorCounts(run["errors"].detection, run["errors"].confusion))
            for seed, run in runs.items()
        }
        for key, runs in results.items()
    }
    row = table_rows(bare, resamples=50, seed=0)[0]
    assert "detection_F1" in row and "F1/TC/background" not in row


def write_run(run, best, last, stopped="epochs", cpu=2.0):
    run.mkdir(parents=True)
    history = [{"epoch": epoch, "cpu_seconds": cpu} for epoch in range(1, last + 1)]
    (run / "history.json").write_text(json.dumps(history))
    (run / "summary.json").write_text(
        json.dumps({"best": {"epoch": best, "mF1": 0.5}, "epochs": last, "stopped": stopped})
    )
    return run


def test_a_run_converged_when_its_best_epoch_is_not_its_last_or_patience_stopped_it(tmp_path):
    assert run_epochs(write_run(tmp_path / "a", best=3, last=5)) == {
        "best": 3,
        "last": 5,
        "stopped": "epochs",
        "converged": True,
        "cpu_seconds": 10.0,
    }
    assert not run_epochs(write_run(tmp_path / "b", best=5, last=5))["converged"]
    assert not run_epochs(write_run(tmp_path / "c", best=4, last=4, stopped="max_minutes"))[
        "converged"
    ]
    assert run_epochs(write_run(tmp_path / "d", best=4, last=6, stopped="patience"))["converged"]
    old = write_run(tmp_path / "e", best=1, last=2)
    (old / "history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    assert run_epochs(old)["cpu_seconds"] is None  # an epoch before CPU time was recorded


def test_rows_carry_best_and_last_epochs_and_mark_unconverged_rows(tmp_path):
    epochs = {
        seed: run_epochs(write_run(tmp_path / str(seed), best=best, last=5))
        for seed, best in ((0, 3), (1, 5), (2, 4))
    }
    results = {
        ("cell-only", "both"): {
            0: dict(scored(25, 7), epochs=epochs[0]),
            2: dict(scored(25, 9), epochs=epochs[2]),
        },
        ("pred-to-inter-2", "both"): {
            0: dict(scored(10, 7), epochs=epochs[0]),
            1: dict(scored(10, 8), epochs=epochs[1]),
            2: dict(scored(10, 9), epochs=epochs[2]),
        },
    }
    base, injected = table_rows(results, resamples=50, seed=0)
    assert (base["best_epoch"], base["last_epoch"], base["converged"]) == (
        [3, 4],
        [5, 5],
        [True, True],
    )
    assert injected["seeds"] == [0, 1, 2] and injected["converged"] == [True, False, True]
    lines = markdown_table([base, injected], 8, 50).splitlines()
    assert "not converged" not in lines[2] and lines[2].endswith("| 3/5, 4/5 |")
    assert "**not converged**: 1 of 3 seeds" in lines[3] and lines[3].endswith("| 3/5, 5/5, 4/5 |")


def test_a_run_stopped_by_patience_is_finished_before_its_epochs(tmp_path):
    options = TrainingOptions(data="data", out=str(tmp_path), epochs=30, patience=4)
    (tmp_path / "summary.json").write_text(
        json.dumps({"options": asdict(options), "epochs": 12, "stopped": "patience"})
    )
    (tmp_path / "best.pt").write_bytes(b"")
    assert _finished(tmp_path, options)
    (tmp_path / "summary.json").write_text(
        json.dumps({"options": asdict(options), "epochs": 12, "stopped": "max_minutes"})
    )
    assert not _finished(tmp_path, options)


def test_reproduce_reads_seeds_per_row():
    args = parse(
        reproduce_command,
        [
            "--out",
            "O",
            "--seeds",
            "0",
            "1",
            "--row-seeds",
            "cell-only=0,1,2",
            "pred-to-inter-2+large-fov-only=3",
        ],
    )
    assert args.row_seeds == [("cell-only", (0, 1, 2)), ("pred-to-inter-2+large-fov-only", (3,))]
    assert args.patience is None and args.lr_schedule == "constant"
    with pytest.raises(SystemExit):
        parse(reproduce_command, ["--out", "O", "--row-seeds", "cell-only=a"])
