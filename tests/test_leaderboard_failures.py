"""``ocelot leaderboard``'s detection, classification and tissue columns and the rare-pairing
ranking, on a synthetic release."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baseline_algorithm.data import synthesize_dataset
from evaluation.bootstrap import image_draw_blocks
from evaluation.error_analysis import ErrorCounts
from evaluation.leaderboard.failures import rare_pairing_counts, rare_pairing_stability
from evaluation.leaderboard.stability import leaderboard_f1

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release") / "synthetic"
    synthesize_dataset(root, (0, 0, 5), size=256, seed=11, progress=False)
    return root


@pytest.fixture(scope="module")
def submissions(release, tmp_path_factory):
    """The generator's noisy predictions, the ground truth itself, and a copy of the noisy
    predictions with a third of the classes swapped."""
    folder = tmp_path_factory.mktemp("submissions")
    noisy = json.loads(
        next(release.glob("gc/evaluation/input/*/output/cell_classification.json")).read_text()
    )
    truth = json.loads((release / "gc" / "ground_truth" / "cell_gt.json").read_text())
    truth.pop("num_images")
    swapped = [
        dict(point, point=[*point["point"][:2], 3 - point["point"][2]]) if index % 3 == 0 else point
        for index, point in enumerate(noisy["points"])
    ]
    for name, document in (
        ("noisy", noisy),
        ("perfect", truth),
        ("swapped", dict(noisy, points=swapped)),
    ):
        (folder / f"{name}.json").write_text(json.dumps(document))
    return folder


def leaderboard(out: Path, *arguments) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "leaderboard",
            "--out",
            str(out),
            "--replicates",
            "200",
            "--workers",
            "2",
            *map(str, arguments),
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads((out / "leaderboard.json").read_text())


def report_analysis(release, submission: Path, out: Path) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "report",
            "--predictions",
            str(submission),
            "--ground-truth",
            str(release),
            "--split",
            "test",
            "--out",
            str(out),
            "--replicates",
            "20",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads((out / "report.json").read_text())["analysis"]


def test_release_leaderboard_ranks_the_rare_pairings(release, submissions, tmp_path):
    document = leaderboard(
        tmp_path / "out",
        "--submissions-dir",
        submissions,
        "--ground-truth",
        release,
        "--split",
        "test",
    )
    entries = {entry["name"]: entry for entry in document["entries"]}
    assert document["rare_pairings"]["ranking"][0] == "perfect"
    assert entries["perfect"]["rare_mF1"] == 1.0 and entries["perfect"]["rare_rank"] == 1
    # Swapping classes leaves detection unchanged and costs type accuracy.
    assert entries["swapped"]["detection_F1"] == entries["noisy"]["detection_F1"]
    assert entries["swapped"]["accuracy"] < entries["noisy"]["accuracy"]
    # The same numbers as the report of that file alone.
    analysis = report_analysis(release, submissions / "noisy.json", tmp_path / "report")
    noisy = entries["noisy"]
    assert noisy["detection_F1"] == analysis["detection"]["F1"]
    assert noisy["accuracy"] == analysis["classification"]["accuracy"]
    for stratum, per_class in noisy["tissue_F1"].items():
        for name, f1 in per_class.items():
            assert f1 == analysis["tissue"][stratum][name]["F1"]
    assert (
        noisy["rare_mF1"]
        == (
            analysis["tissue"]["background"]["TC"]["F1"]
            + analysis["tissue"]["cancer_area"]["BC"]["F1"]
        )
        / 2
    )
    low, high = noisy["rare_rank_interval"]
    assert 1 <= low <= noisy["rare_rank_median"] <= high <= 3
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert (
        "Ranking on the rare pairings" in page
        and "blob plot of bootstrap ranks on the rare" in page
    )
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert rows["noisy"]["rare_rank"] == str(noisy["rare_rank"])
    assert rows["noisy"]["detection_F1"] == str(noisy["detection_F1"])


def test_without_tissue_only_detection_and_classification(release, submissions, tmp_path):
    document = leaderboard(
        tmp_path / "out",
        "--submissions-dir",
        submissions,
        "--ground-truth",
        release / "gc" / "ground_truth" / "cell_gt.json",
    )
    assert "rare_pairings" not in document
    for entry in document["entries"]:
        assert {"detection_F1", "accuracy"} <= set(entry)
        assert not {"tissue_F1", "rare_mF1", "rare_rank"} & set(entry)
    assert "Ranking on the rare pairings" not in (tmp_path / "out" / "leaderboard.html").read_text()


def test_rare_ranking_uses_the_leaderboards_replicates():
    """Replicate r of the rare-pairing ranking sums the images that replicate r of the mF1
    ranking draws (image_draw_blocks with the leaderboard's seed)."""
    rng = np.random.default_rng(0)
    errors = [
        ErrorCounts(
            detection=np.zeros((7, 3), np.int64),
            confusion=np.zeros((7, 2, 2), np.int64),
            tissue=rng.integers(0, 20, (7, 3, 2, 3)),
        )
        for _ in range(3)
    ]
    stability = rare_pairing_stability(errors, replicates=50, seed=5, alpha=0.05)
    draws = np.concatenate(list(image_draw_blocks(7, 50, 5)))
    totals = np.einsum("rn,snpk->rspk", draws, rare_pairing_counts(errors))
    np.testing.assert_array_equal(stability.replicate_mf1, leaderboard_f1(totals)[..., -1])
    assert (
        rare_pairing_stability(
            [ErrorCounts(errors[0].detection, errors[0].confusion)],
            replicates=50,
            seed=5,
            alpha=0.05,
        )
        is None
    )
