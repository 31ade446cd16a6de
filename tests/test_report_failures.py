"""``ocelot report``'s "Where it fails" on a synthetic release, as a user runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baseline_algorithm.data import synthesize_dataset
from evaluation.constants import TISSUE_VALUES
from evaluation.error_analysis import STRATA
from evaluation.images import read_tissue_mask
from evaluation.release import ReleaseDataset

REPOSITORY = Path(__file__).resolve().parents[1]
TEST_PAIRS = 5


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release") / "synthetic"
    synthesize_dataset(root, (0, 0, TEST_PAIRS), size=256, seed=7, progress=False)
    return root


def predictions_of(release: Path) -> Path:
    return next(release.glob("gc/evaluation/input/*/output/cell_classification.json"))


def report(out: Path, *arguments) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "report",
            "--out",
            str(out),
            "--replicates",
            "200",
            "--quiet",
            *map(str, arguments),
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=300,
    )


@pytest.fixture(scope="module")
def release_report(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    completed = report(
        out, "--predictions", predictions_of(release), "--ground-truth", release, "--split", "test"
    )
    assert completed.returncode == 0, completed.stderr
    return out


def test_synthesize_writes_tissue_masks_in_the_release_layout(release):
    dataset = ReleaseDataset(release, "test")
    masks = sorted((release / "annotations" / "test" / "tissue").glob("*.png"))
    assert [path.stem for path in masks] == dataset.names
    for path in masks:
        mask = read_tissue_mask(path)
        assert mask.shape == (256, 256)
        assert set(np.unique(mask).tolist()) <= set(TISSUE_VALUES)
    assert any((read_tissue_mask(path) == 2).any() for path in masks)


def test_release_report_has_all_three_parts_adding_up(release_report):
    document = json.loads((release_report / "report.json").read_text())
    analysis = document["analysis"]
    assert {"detection", "classification", "tissue", "intervals", "per_organ"} <= set(analysis)
    assert list(analysis["tissue"]) == list(STRATA)
    aggregates = document["aggregates"]
    for name in ("BC", "TC"):
        for kind in ("TP", "FP", "FN"):
            assert (
                sum(analysis["tissue"][stratum][name][kind] for stratum in STRATA)
                == aggregates[f"{kind}/{name}"]
            )
    confusion = analysis["classification"]["confusion"]
    assert (
        sum(confusion[gt][predicted] for gt in ("BC", "TC") for predicted in ("BC", "TC"))
        == analysis["detection"]["TP"]
    )
    interval = analysis["intervals"]["tissue"]["background"]["TC"]["F1"]
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    page = (release_report / "report.html").read_text()
    assert "Where it fails" in page and "F1 per class and tissue stratum" in page
    assert (release_report / "tissue_strata.png").stat().st_size > 0


def test_tissue_folder_with_json_ground_truth_gives_the_same_analysis(
    release, release_report, tmp_path
):
    """--tissue DIR, placed by either kind of metadata, equals the release folder's own."""
    expected = json.loads((release_report / "report.json").read_text())["analysis"]
    for metadata in (release / "metadata.json", release / "gc" / "input" / "metadata.json"):
        out = tmp_path / metadata.parent.name
        completed = report(
            out,
            "--predictions",
            predictions_of(release),
            "--ground-truth",
            release / "gc" / "ground_truth" / "cell_gt.json",
            "--tissue",
            release / "annotations" / "test" / "tissue",
            "--metadata",
            metadata,
            "--split",
            "test",
        )
        assert completed.returncode == 0, completed.stderr
        analysis = json.loads((out / "report.json").read_text())["analysis"]
        assert analysis["tissue"] == expected["tissue"]
        assert analysis["detection"] == expected["detection"]


def test_without_tissue_the_analysis_has_detection_and_classification(release, tmp_path):
    completed = report(
        tmp_path,
        "--predictions",
        predictions_of(release),
        "--ground-truth",
        release / "gc" / "ground_truth" / "cell_gt.json",
    )
    assert completed.returncode == 0, completed.stderr
    analysis = json.loads((tmp_path / "report.json").read_text())["analysis"]
    assert {"detection", "classification"} <= set(analysis) and "tissue" not in analysis
    assert not (tmp_path / "tissue_strata.png").exists()
    assert "No tissue annotations" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("case", ["too few masks", "no metadata"])
def test_bad_tissue_folder_is_one_line_and_no_report(release, tmp_path, case):
    masks = tmp_path / "masks"
    masks.mkdir()
    source = sorted((release / "annotations" / "test" / "tissue").glob("*.png"))
    for path in source[:-1] if case == "too few masks" else source:
        (masks / path.name).write_bytes(path.read_bytes())
    arguments = [
        "--predictions",
        predictions_of(release),
        "--ground-truth",
        release / "gc" / "ground_truth" / "cell_gt.json",
        "--tissue",
        masks,
    ]
    if case == "too few masks":
        arguments += ["--metadata", release / "metadata.json", "--split", "test"]
    completed = report(tmp_path / "out", *arguments)
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert str(masks) in last and "Traceback" not in completed.stderr
    assert ("holds 4 tissue masks" in last) if case == "too few masks" else ("--metadata" in last)
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_release_mask_linked_out_of_the_release_is_refused(release, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    mask = sorted((copy / "annotations" / "test" / "tissue").glob("*.png"))[0]
    outside = tmp_path / "outside.png"
    outside.write_bytes(mask.read_bytes())
    mask.unlink()
    mask.symlink_to(outside)
    completed = report(
        tmp_path / "out",
        "--predictions",
        predictions_of(copy),
        "--ground-truth",
        copy,
        "--split",
        "test",
    )
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "leads outside the release folder" in last
    assert not (tmp_path / "out").exists()


def test_the_report_never_writes_into_its_tissue_folder(release, tmp_path):
    masks = release / "annotations" / "test" / "tissue"
    completed = report(
        masks,
        "--predictions",
        predictions_of(release),
        "--ground-truth",
        release / "gc" / "ground_truth" / "cell_gt.json",
        "--tissue",
        masks,
        "--metadata",
        release / "metadata.json",
    )
    assert completed.returncode == 2
    assert "is the --tissue folder" in completed.stderr.strip().splitlines()[-1]
    assert not (masks / "report.html").exists()
