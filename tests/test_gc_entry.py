"""The Grand Challenge evaluation entry, in-process: every path from /input to metrics.json.

Each scored case is compared with what ``python -m evaluation score --output`` writes for the same
files, so the entry can only pass by using the CLI's scorer and schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation import PointSet, points_document
from evaluation.cli import main as cli_main
from evaluation.gc_entry import GROUND_TRUTH_INDEX, main

ORGANS = ("kidney", "bladder", "stomach")


# ---------------------------------------------------------------------------------------------
# Building Grand Challenge layouts


def random_points(rng: np.random.Generator, num_images: int, count: int, *, gt: bool) -> PointSet:
    """``count`` points spread over ``num_images`` images, x and y in 0..1023 pixels."""
    return PointSet.from_arrays(
        rng.integers(0, num_images, count),
        rng.integers(0, 1024, (count, 2)),
        rng.integers(1, 3, count),
        np.ones(count) if gt else rng.random(count),
    )


def perturbed(rng: np.random.Generator, truth: PointSet, extra: int, num_images: int) -> PointSet:
    """Predictions near the GT (most within 15 px) plus ``extra`` random false positives."""
    keep = rng.random(len(truth)) < 0.8
    xy = np.clip(truth.xy[keep] + rng.integers(-12, 13, (keep.sum(), 2)), 0, 1023)
    label = np.where(rng.random(keep.sum()) < 0.85, truth.label[keep], 3 - truth.label[keep])
    noise = random_points(rng, num_images, extra, gt=False)
    return PointSet.from_arrays(
        np.concatenate([truth.image[keep], noise.image]),
        np.concatenate([xy, noise.xy]),
        np.concatenate([label, noise.label]),
        np.concatenate([rng.random(keep.sum()), noise.probability]),
    )


def write_json(path: Path, document) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def job_entry(pk: str, image_name: str, *, value=None) -> dict:
    """One job of predictions.json as Grand Challenge writes it (the fields the entry reads)."""
    return {
        "pk": pk,
        "inputs": [
            {
                "interface": {"slug": "cell-patches", "kind": "Image"},
                "image": {"pk": f"img-{pk}", "name": image_name},
            },
            {
                "interface": {"slug": "tissue-patches", "kind": "Image"},
                "image": {"pk": f"tis-{pk}", "name": image_name.replace("cell", "tissue")},
            },
        ],
        "outputs": [
            {
                "interface": {
                    "slug": "cell-classification",
                    "kind": "Multiple points",
                    "relative_path": "cell_classification.json",
                },
                "value": value,
                "file": None,
            },
        ],
        "status": "Succeeded",
    }


class Case:
    """A Grand Challenge evaluation layout in ``root``: input, output, baked and mounted GT."""

    def __init__(self, root: Path, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.input = root / "input"
        self.output = root / "output"
        self.baked = root / "baked"
        self.mounted = root / "mounted"
        for folder in (self.input, self.output, self.baked):
            folder.mkdir(parents=True)

    def ground_truth(self, folder: Path, name: str, num_images: int, *, organs: bool = False):
        truth = random_points(self.rng, num_images, 40 * num_images, gt=True)
        path = write_json(folder / name, points_document(truth, num_images))
        metadata = None
        if organs:
            metadata = write_json(
                folder / f"{Path(name).stem}_metadata.json",
                [{"organ": ORGANS[k % len(ORGANS)]} for k in range(num_images)],
            )
        return truth, path, metadata

    def job(
        self,
        pk: str,
        truth: PointSet,
        num_images: int,
        *,
        image_name="cell_patches.tif",
        inline: bool = False,
    ) -> tuple[dict, Path]:
        document = points_document(perturbed(self.rng, truth, 25, num_images))
        path = write_json(self.input / pk / "output" / "cell_classification.json", document)
        if inline:
            path.unlink()
        return job_entry(pk, image_name, value=document if inline else None), path

    def jobs(self, *entries: dict) -> Path:
        return write_json(self.input / "predictions.json", list(entries))

    def run(self, *extra: str) -> int:
        return main(
            [
                "--input",
                str(self.input),
                "--output",
                str(self.output),
                "--ground-truth",
                str(self.mounted),
                "--baked-ground-truth",
                str(self.baked),
                *extra,
            ]
        )

    @property
    def metrics(self) -> dict:
        return json.loads((self.output / "metrics.json").read_text())


def cli_metrics(tmp_path: Path, predictions: Path, ground_truth: Path, *extra: str) -> dict:
    """What ``python -m evaluation score --output`` writes for these files."""
    output = tmp_path / "cli_metrics.json"
    assert (
        cli_main(
            [
                "score",
                "--predictions",
                str(predictions),
                "--ground-truth",
                str(ground_truth),
                "--output",
                str(output),
                *extra,
            ]
        )
        == 0
    )
    return json.loads(output.read_text())


@pytest.fixture
def case(tmp_path) -> Case:
    return Case(tmp_path / "gc")


# ---------------------------------------------------------------------------------------------
# Scored paths


def test_one_job_file_output_equals_cli(case, tmp_path, capsys):
    truth, gt_path, _ = case.ground_truth(case.baked, "cell_gt.json", 4)
    entry, prediction_path = case.job("job-a", truth, 4)
    case.jobs(entry)
    assert case.run() == 0
    assert case.metrics == cli_metrics(tmp_path, prediction_path, gt_path)
    assert "per_organ" not in case.metrics
    assert "mF1" in capsys.readouterr().out


def test_inline_value_equals_cli(case, tmp_path):
    truth, gt_path, _ = case.ground_truth(case.baked, "cell_gt.json", 3)
    entry, _ = case.job("job-inline", truth, 3, inline=True)
    case.jobs(entry)
    assert not (case.input / "job-inline" / "output" / "cell_classification.json").exists()
    assert case.run() == 0
    predictions = write_json(tmp_path / "inline.json", entry["outputs"][0]["value"])
    assert case.metrics == cli_metrics(tmp_path, predictions, gt_path)


def test_metadata_beside_ground_truth_gives_organs(case, tmp_path):
    truth, gt_path, metadata = case.ground_truth(case.baked, "cell_gt.json", 6, organs=True)
    metadata.rename(case.baked / "metadata.json")
    entry, prediction_path = case.job("job-organs", truth, 6)
    case.jobs(entry)
    assert case.run() == 0
    expected = cli_metrics(
        tmp_path, prediction_path, gt_path, "--metadata", str(case.baked / "metadata.json")
    )
    assert case.metrics == expected
    assert set(case.metrics["per_organ"]) == set(ORGANS)


def test_mounted_ground_truth_wins_over_baked(case, tmp_path):
    baked_truth, _, _ = case.ground_truth(case.baked, "baked_gt.json", 3)
    mounted_truth, mounted_path, _ = case.ground_truth(case.mounted, "gt.json", 3)
    entry, prediction_path = case.job("job-m", mounted_truth, 3)
    case.jobs(entry)
    assert case.run() == 0
    assert case.metrics == cli_metrics(tmp_path, prediction_path, mounted_path)
    baked_metrics = cli_metrics(tmp_path, prediction_path, case.baked / "baked_gt.json")
    assert case.metrics["aggregates"] != baked_metrics["aggregates"]


def test_mounted_tarball_with_one_top_folder_is_looked_through(case, tmp_path):
    truth, gt_path, _ = case.ground_truth(case.mounted / "ocelot_gt", "gt.json", 2)
    case.ground_truth(case.baked, "baked_gt.json", 2)
    entry, prediction_path = case.job("job-t", truth, 2)
    case.jobs(entry)
    assert case.run() == 0
    assert case.metrics == cli_metrics(tmp_path, prediction_path, gt_path)


def test_empty_mounted_folder_falls_back_to_baked(case, tmp_path):
    case.mounted.mkdir()
    truth, gt_path, _ = case.ground_truth(case.baked, "gt.json", 2)
    entry, prediction_path = case.job("job-e", truth, 2)
    case.jobs(entry)
    assert case.run() == 0
    assert case.metrics == cli_metrics(tmp_path, prediction_path, gt_path)


def write_release(root: Path, rng: np.random.Generator, split: str, stems: list[str]) -> None:
    """A minimal OCELOT release folder: cell CSVs of ``split`` and metadata with organs."""
    pairs = {}
    for k, stem in enumerate(stems):
        rows = np.column_stack([rng.integers(0, 1024, (30, 2)), rng.integers(1, 3, 30)])
        csv = root / "annotations" / split / "cell" / f"{stem}.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        csv.write_text("".join(f"{x},{y},{label}\n" for x, y, label in rows))
        pairs[stem] = {"organ": ORGANS[k % len(ORGANS)], "subset": split}
    pairs["999"] = {"organ": "prostate", "subset": "train"}  # another split: not scored
    write_json(root / "metadata.json", {"sample_pairs": pairs})


def test_release_folder_with_split_equals_cli(case, tmp_path):
    write_release(case.mounted, case.rng, "val", ["003", "001", "002"])
    gt_json = tmp_path / "release_gt.json"
    assert (
        cli_main(["convert-gt", str(case.mounted), "--split", "val", "--output", str(gt_json)]) == 0
    )
    truth = PointSet.from_arrays(*_arrays(json.loads(gt_json.read_text())))
    entry, prediction_path = case.job("job-r", truth, 3)
    case.jobs(entry)
    assert case.run("--split", "val") == 0
    expected = cli_metrics(tmp_path, prediction_path, case.mounted, "--split", "val")
    assert case.metrics == expected
    assert "per_organ" in case.metrics


def _arrays(document: dict):
    entries = document["points"]
    return (
        np.array([int(entry["name"].removeprefix("image_")) for entry in entries]),
        np.array([entry["point"][:2] for entry in entries]).reshape(-1, 2),
        np.array([entry["point"][2] for entry in entries]),
        np.array([entry["probability"] for entry in entries], dtype=float),
    )


def test_several_jobs_each_scored_against_its_inputs_ground_truth(case, tmp_path):
    truth_a, gt_a, meta_a = case.ground_truth(case.baked, "gt_a.json", 3, organs=True)
    truth_b, gt_b, meta_b = case.ground_truth(case.baked, "gt_b.json", 5, organs=True)
    write_json(
        case.baked / GROUND_TRUTH_INDEX,
        {
            "cell_a.tif": {"ground_truth": "gt_a.json", "metadata": meta_a.name},
            "cell_b.tif": {"ground_truth": "gt_b.json", "metadata": meta_b.name},
        },
    )
    # Job order differs from index order: matching goes by input image name, not position.
    entry_b, pred_b = case.job("job-b", truth_b, 5, image_name="cell_b.tif")
    entry_a, pred_a = case.job("job-a", truth_a, 3, image_name="cell_a.tif")
    case.jobs(entry_b, entry_a)
    assert case.run() == 0
    metrics = case.metrics

    per_job = {
        "job-b": cli_metrics(tmp_path, pred_b, gt_b, "--metadata", str(meta_b)),
        "job-a": cli_metrics(tmp_path, pred_a, gt_a, "--metadata", str(meta_a)),
    }
    expected_results = [
        {"job": pk, **result} for pk in ("job-b", "job-a") for result in per_job[pk]["results"]
    ]
    assert metrics["results"] == expected_results
    for key in ("TP/BC", "FP/BC", "FN/BC", "TP/TC", "FP/TC", "FN/TC"):
        assert metrics["aggregates"][key] == sum(m["aggregates"][key] for m in per_job.values())

    # Aggregates equal the CLI scoring all 8 images as one set (job b's images renumbered).
    merged = tmp_path / "merged"
    pred_doc = json.loads(pred_a.read_text())
    gt_doc = json.loads(gt_a.read_text())
    for source, target in ((pred_b, pred_doc), (gt_b, gt_doc)):
        for point in json.loads(source.read_text())["points"]:
            index = int(point["name"].removeprefix("image_")) + 3
            target["points"].append({**point, "name": f"image_{index}"})
    gt_doc["num_images"] = 8
    organs = json.loads(meta_a.read_text()) + json.loads(meta_b.read_text())
    expected = cli_metrics(
        tmp_path,
        write_json(merged / "pred.json", pred_doc),
        write_json(merged / "gt.json", gt_doc),
        "--metadata",
        str(write_json(merged / "meta.json", organs)),
    )
    assert metrics["aggregates"] == expected["aggregates"]
    assert metrics["per_organ"] == expected["per_organ"]


def test_index_with_plain_file_names(case, tmp_path):
    truth, gt_path, _ = case.ground_truth(case.baked, "gt_only.json", 2)
    write_json(case.baked / GROUND_TRUTH_INDEX, {"cell_x.tif": "gt_only.json"})
    entry, prediction_path = case.job("job-x", truth, 2, image_name="cell_x.tif")
    case.jobs(entry)
    assert case.run() == 0
    # One job: exactly the CLI's document, no job labels.
    assert case.metrics == cli_metrics(tmp_path, prediction_path, gt_path)


def test_index_matches_cell_and_tissue_inputs_sharing_a_name(case, tmp_path):
    # Grand Challenge may name both stacked inputs alike (test_data: "000.tif" twice).
    truth_a, gt_a, _ = case.ground_truth(case.baked, "gt_a.json", 2)
    truth_b, gt_b, _ = case.ground_truth(case.baked, "gt_b.json", 2)
    write_json(case.baked / GROUND_TRUTH_INDEX, {"000.tif": "gt_a.json", "001.tif": "gt_b.json"})
    entry_a, pred_a = case.job("job-a", truth_a, 2, image_name="000.tif")
    entry_b, pred_b = case.job("job-b", truth_b, 2, image_name="001.tif")
    assert [i["image"]["name"] for i in entry_a["inputs"]] == ["000.tif", "000.tif"]
    case.jobs(entry_a, entry_b)
    assert case.run() == 0
    expected = [
        {"job": "job-a", **result} for result in cli_metrics(tmp_path, pred_a, gt_a)["results"]
    ]
    expected += [
        {"job": "job-b", **result} for result in cli_metrics(tmp_path, pred_b, gt_b)["results"]
    ]
    assert case.metrics["results"] == expected


def test_radius_from_environment(case, tmp_path, monkeypatch):
    truth, gt_path, _ = case.ground_truth(case.baked, "gt.json", 2)
    entry, prediction_path = case.job("job-r", truth, 2)
    case.jobs(entry)
    monkeypatch.setenv("OCELOT_RADIUS_PX", "4")
    assert case.run() == 0
    assert case.metrics == cli_metrics(tmp_path, prediction_path, gt_path, "--radius-px", "4")
    assert case.metrics != cli_metrics(tmp_path, prediction_path, gt_path)


def test_check_ground_truth_reports_what_is_baked(case, capsys):
    case.ground_truth(case.baked, "cell_gt.json", 4)
    assert case.run("--check-ground-truth") == 0
    out = capsys.readouterr().out
    assert "cell_gt.json" in out and "4 images" in out


# ---------------------------------------------------------------------------------------------
# The failure contract: exit 2, one actionable last stderr line, no metrics.json


def _one_job(case: Case, **job_options) -> tuple[dict, Path]:
    """A baked GT of 3 images and one job for it; returns the job entry and its output file."""
    truth, _, _ = case.ground_truth(case.baked, "cell_gt.json", 3)
    return case.job("job-1", truth, 3, **job_options)


def predictions_not_json(case):
    _one_job(case)
    (case.input / "predictions.json").write_text("[{")


def predictions_not_a_list(case):
    _one_job(case)
    write_json(case.input / "predictions.json", {"pk": "job-1"})


def predictions_empty(case):
    _one_job(case)
    case.jobs()


def job_without_pk(case):
    entry, _ = _one_job(case)
    case.jobs({**entry, "pk": None})


def job_without_cell_classification(case):
    entry, _ = _one_job(case)
    case.jobs({**entry, "outputs": [{"interface": {"slug": "other"}, "value": None}]})


def job_output_missing(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    path.unlink()


def coordinate_out_of_range(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    document = json.loads(path.read_text())
    document["points"][2]["point"][0] = 1024
    path.write_text(json.dumps(document))


def boolean_coordinate_inline(case):
    entry, _ = _one_job(case, inline=True)
    entry["outputs"][0]["value"]["points"][1]["point"][1] = True
    case.jobs(entry)


def image_beyond_ground_truth(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    write_json(path, points_document(PointSet.from_arrays([7], [[1, 2]], [1], [0.5])))


def output_path_leaves_input(case):
    entry, _ = _one_job(case)
    case.jobs({**entry, "pk": "../../etc"})


def two_candidate_ground_truths(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    case.ground_truth(case.baked, "other_gt.json", 3)


def several_jobs_one_ground_truth(case):
    truth, _, _ = case.ground_truth(case.baked, "cell_gt.json", 3)
    case.jobs(case.job("job-a", truth, 3)[0], case.job("job-b", truth, 3)[0])


def job_input_not_in_index(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    write_json(case.baked / GROUND_TRUTH_INDEX, {"other.tif": "cell_gt.json"})


def ground_truth_without_num_images(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    write_json(case.baked / "cell_gt.json", {"type": "Multiple points", "points": []})


def output_is_a_link_to_the_ground_truth(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    path.unlink()
    path.symlink_to(case.baked / "cell_gt.json")


def job_folder_is_a_link_outside(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    outside = case.input.parent / "elsewhere"
    path.parent.parent.rename(outside)
    (case.input / "job-1").symlink_to(outside)


def predictions_json_is_a_link_outside(case):
    entry, _ = _one_job(case)
    outside = write_json(case.input.parent / "jobs.json", [entry])
    (case.input / "predictions.json").symlink_to(outside)


def duplicate_pk(case):
    entry, _ = _one_job(case)
    case.jobs(entry, entry)


def five_thousand_digit_coordinate(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    path.write_text(path.read_text().replace('"point": [', '"point": [' + "9" * 5000 + "0", 1))


def five_thousand_digit_pk(case):
    entry, _ = _one_job(case)
    (case.input / "predictions.json").write_text(
        json.dumps([entry]).replace('"pk": "job-1"', '"pk": 1' + "0" * 5000)
    )


def billion_images(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    write_json(case.baked / "cell_gt.json", {"points": [], "num_images": 10**9})


def two_to_the_63_images(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    write_json(case.baked / "cell_gt.json", {"points": [], "num_images": 2**63})


def key_that_forges_a_line(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    document = json.loads(path.read_text())
    document["points"][0]["zz\nerror: looks fine"] = 1
    path.write_text(json.dumps(document))


def megabyte_key(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    document = json.loads(path.read_text())
    document["points"][0]["k" * 1_000_000] = 1
    path.write_text(json.dumps(document))


def nul_in_pk(case):
    entry, _ = _one_job(case)
    case.jobs({**entry, "pk": "job\x00-1"})


def nul_in_relative_path(case):
    entry, _ = _one_job(case)
    entry["outputs"][0]["interface"]["relative_path"] = "cell\x00.json"
    case.jobs(entry)


def nul_in_ground_truth_index(case):
    entry, _ = _one_job(case)
    case.jobs(entry)
    write_json(case.baked / GROUND_TRUTH_INDEX, {"cell_patches.tif": "cell_gt.json\x00"})


def over_long_image_name(case):
    entry, path = _one_job(case)
    case.jobs(entry)
    document = json.loads(path.read_text())
    document["points"][0]["name"] = "image_" + "1" * 4301
    path.write_text(json.dumps(document))


#: Each broken layout and the fragments its last stderr line must hold.
FAILURES = [
    (predictions_not_json, ["predictions.json", "not valid JSON"]),
    (predictions_not_a_list, ["predictions.json", "must be a list", "an object"]),
    (predictions_empty, ["predictions.json", "empty"]),
    (job_without_pk, ["predictions.json", "[0].pk", "null"]),
    (job_without_cell_classification, ['job "job-1"', "cell-classification", '"other"']),
    (job_output_missing, ['job "job-1"', "job-1/output/cell_classification.json", "missing"]),
    (coordinate_out_of_range, ['job "job-1"', "cell_classification.json", "points[2]", "1024"]),
    (boolean_coordinate_inline, ['job "job-1"', "inline", "points[1].point[1]", "true"]),
    (image_beyond_ground_truth, ['job "job-1"', "points[0]", "image_7"]),
    (output_path_leaves_input, ["pk", "../../etc"]),
    (two_candidate_ground_truths, ["cell_gt.json", "other_gt.json"]),
    (several_jobs_one_ground_truth, ["2 jobs", GROUND_TRUTH_INDEX]),
    (job_input_not_in_index, ['job "job-1"', GROUND_TRUTH_INDEX, "cell_patches.tif"]),
    (ground_truth_without_num_images, ["cell_gt.json", "num_images"]),
    (output_is_a_link_to_the_ground_truth, ['output "cell_classification.json" leads outside']),
    (job_folder_is_a_link_outside, ['job "job-1"): output "cell_classification.json" leads']),
    (predictions_json_is_a_link_outside, ["predictions.json", "outside", "symbolic link"]),
    (duplicate_pk, ["[1]", 'job "job-1"', "pk is also the pk of job [0]"]),
    (five_thousand_digit_coordinate, ["points[0].point[0]", "digits is too long"]),
    (five_thousand_digit_pk, ["predictions.json", "[0].pk", "5001 digits"]),
    (billion_images, ["cell_gt.json", "num_images", "1,000,000,000 images", "OCELOT_MAX_IMAGES"]),
    (two_to_the_63_images, ["cell_gt.json", "num_images", "OCELOT_MAX_IMAGES"]),
    (key_that_forges_a_line, ['points[0]: unexpected key "zz\\nerror: looks fine"']),
    (megabyte_key, ["points[0]: unexpected key", "kkk..."]),
    (nul_in_pk, ["[0].pk: must not hold control characters", '"job\\u0000-1"']),
    (nul_in_relative_path, ["relative_path: must not hold control characters"]),
    (nul_in_ground_truth_index, [GROUND_TRUTH_INDEX, ".ground_truth: must not hold control"]),
    (over_long_image_name, ['job "job-1"', "points[0].name: image index too large"]),
]


@pytest.mark.parametrize("prepare, fragments", FAILURES, ids=[f.__name__ for f, _ in FAILURES])
def test_failure_contract(case, capsys, prepare, fragments):
    prepare(case)
    assert case.run() == 2
    stderr = capsys.readouterr().err
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ")
    for fragment in fragments:
        assert fragment in last_line, (fragment, last_line)
    assert "Traceback" not in stderr
    assert len(last_line) < 600, last_line[:200]
    assert list(case.output.iterdir()) == []


def test_nothing_mounted_says_what_it_expects(tmp_path, capsys):
    code = main(
        [
            "--input",
            str(tmp_path / "input"),
            "--output",
            str(tmp_path / "output"),
            "--ground-truth",
            str(tmp_path / "none"),
            "--baked-ground-truth",
            str(tmp_path / "none"),
        ]
    )
    assert code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "predictions.json not found" in last_line
    assert "/input" in last_line and "/output" in last_line


def test_missing_output_folder_is_reported(case, capsys):
    case.jobs(_one_job(case)[0])
    case.output.rmdir()
    assert case.run() == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "does not exist" in last_line and "/output" in last_line


def test_bad_radius_is_reported(case, capsys, monkeypatch):
    case.jobs(_one_job(case)[0])
    monkeypatch.setenv("OCELOT_RADIUS_PX", "fifteen")
    assert case.run() == 2
    assert '"fifteen"' in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(case.output.iterdir()) == []
