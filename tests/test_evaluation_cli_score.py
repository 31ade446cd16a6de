"""``python -m evaluation score`` and ``convert-gt`` as a user runs them (subprocesses)."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    """Run ``python -m evaluation`` as a user does: a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "evaluation", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )


@pytest.fixture
def run_in_process(capsys):
    """Run the CLI's main() in this process (same code path, no interpreter start-up)."""

    def run(*args):
        returncode = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, returncode, captured.out, captured.err)

    return run


def entry(image, x, y, label, probability=1.0):
    return {"name": f"image_{image}", "point": [x, y, label], "probability": probability}


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def files(tmp_path):
    ground_truth = write_json(
        tmp_path / "gt.json",
        {
            "type": "Multiple points",
            "num_images": 2,
            "version": {"major": 1, "minor": 0},
            "points": [entry(0, 10, 10, 1), entry(0, 50, 50, 2), entry(1, 100, 100, 1)],
        },
    )
    predictions = write_json(
        tmp_path / "predictions.json",
        {
            "type": "Multiple points",
            "version": {"major": 1, "minor": 0},
            "points": [
                entry(0, 12, 10, 1, 0.9),
                entry(0, 60, 60, 2, 0.8),
                entry(1, 200, 200, 1, 0.4),
            ],
        },
    )
    metadata = write_json(tmp_path / "metadata.json", [{"organ": "kidney"}, {"organ": "bladder"}])
    return predictions, ground_truth, metadata


def make_release(root):
    """val has CSVs 001, 002, 010 (image_0..2); train has one pair that must be ignored."""
    for split, stems in (
        ("val", {"010": "7,7,2\n", "001": "10,10,1\n50,50,2\n", "002": ""}),
        ("train", {"005": "1,1,1\n"}),
    ):
        folder = root / "annotations" / split / "cell"
        folder.mkdir(parents=True)
        for stem, text in stems.items():
            (folder / f"{stem}.csv").write_text(text)
    pairs = {
        "001": {"organ": "kidney", "subset": "val"},
        "002": {"organ": "stomach", "subset": "val"},
        "010": {"organ": "kidney", "subset": "val"},
        "005": {"organ": "bladder", "subset": "train"},
    }
    write_json(root / "metadata.json", {"sample_pairs": pairs})
    return root


def organisers_conversion(root, split):
    """The organisers' converter, restated: k-th sorted CSV -> image_k, probability 1.0."""
    points = []
    for index, path in enumerate(sorted(glob.glob(f"{root}/annotations/{split}/cell/*.csv"))):
        for line in Path(path).read_text().splitlines():
            x, y, c = line.split(",")
            points.append(
                {"name": f"image_{index}", "point": [int(x), int(y), int(c)], "probability": 1.0}
            )
    return points


def test_score_prints_table_and_writes_metrics(files, tmp_path):
    predictions, ground_truth, metadata = files
    output = tmp_path / "metrics.json"
    result = run_cli(
        "score",
        "--predictions",
        predictions,
        "--ground-truth",
        ground_truth,
        "--metadata",
        metadata,
        "--output",
        output,
    )
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout and "mF1" in result.stdout and "kidney" in result.stdout
    metrics = json.loads(output.read_text())
    assert set(metrics) == {"aggregates", "results", "per_organ"}
    assert metrics["aggregates"]["TP/BC"] == 1 and metrics["aggregates"]["FP/BC"] == 1
    assert metrics["aggregates"]["TP/TC"] == 1
    assert [result["name"] for result in metrics["results"]] == ["image_0", "image_1"]
    assert sorted(metrics["per_organ"]) == ["bladder", "kidney"]


def test_radius_in_micrometres_equals_the_pixel_cutoff(files, tmp_path):
    predictions, ground_truth, _ = files
    outputs = {}
    for name, radius in (
        ("px", ["--radius-px", "15"]),
        ("um", ["--radius-um", "3", "--mpp", "0.2"]),
        ("small", ["--radius-px", "2"]),
    ):
        outputs[name] = tmp_path / f"{name}.json"
        result = run_cli(
            "score",
            "--predictions",
            predictions,
            "--ground-truth",
            ground_truth,
            "--output",
            outputs[name],
            *radius,
        )
        assert result.returncode == 0, result.stderr
    read = {name: json.loads(path.read_text())["aggregates"] for name, path in outputs.items()}
    assert read["px"] == read["um"]
    assert read["small"]["TP/TC"] == 0 and read["px"]["TP/TC"] == 1


def test_whole_slide_scores_coordinates_beyond_the_patch(tmp_path):
    ground_truth = write_json(
        tmp_path / "gt.json", {"num_images": 1, "points": [entry(0, 70_000, 50_000, 2)]}
    )
    predictions = write_json(tmp_path / "p.json", {"points": [entry(0, 70_005, 50_000, 2, 0.7)]})
    refused = run_cli("score", "--predictions", predictions, "--ground-truth", ground_truth)
    assert refused.returncode == 2
    assert "x must be an integer in 0..1023, got 70000" in refused.stderr.splitlines()[-1]
    result = run_cli(
        "score",
        "--predictions",
        predictions,
        "--ground-truth",
        ground_truth,
        "--whole-slide",
        "--output",
        tmp_path / "m.json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["aggregates"]["F1/TC"] == 1.0


def test_release_folder_ground_truth_with_organs(tmp_path):
    release = make_release(tmp_path / "release")
    predictions = write_json(
        tmp_path / "p.json", {"points": [entry(0, 10, 11, 1, 0.5), entry(2, 7, 7, 2, 0.5)]}
    )
    output = tmp_path / "m.json"
    result = run_cli(
        "score",
        "--predictions",
        predictions,
        "--ground-truth",
        release,
        "--split",
        "val",
        "--output",
        output,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(output.read_text())
    assert [r["organ"] for r in metrics["results"]] == ["kidney", "stomach", "kidney"]
    assert metrics["aggregates"]["TP/BC"] == 1 and metrics["aggregates"]["TP/TC"] == 1
    assert metrics["aggregates"]["FN/TC"] == 1

    # The same through convert-gt and release metadata selected by --split.
    converted = tmp_path / "gt_val.json"
    converted_run = run_cli("convert-gt", release, "--split", "val", "--output", converted)
    assert converted_run.returncode == 0, converted_run.stderr
    again = tmp_path / "again.json"
    result = run_cli(
        "score",
        "--predictions",
        predictions,
        "--ground-truth",
        converted,
        "--metadata",
        release / "metadata.json",
        "--split",
        "val",
        "--output",
        again,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(again.read_text()) == metrics


def test_convert_gt_writes_the_organisers_document(tmp_path):
    release = make_release(tmp_path / "release")
    output = tmp_path / "gt.json"
    result = run_cli("convert-gt", release, "--split", "val", "--output", output)
    assert result.returncode == 0, result.stderr
    document = json.loads(output.read_text())
    assert document == {
        "type": "Multiple points",
        "points": organisers_conversion(release, "val"),
        "version": {"major": 1, "minor": 0},
        "num_images": 3,
    }
    assert "3 cells in 3 images" in result.stdout


def _assert_fails_cleanly(result, *fragments, output=None):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last_line, last_line
    if output is not None:
        assert not output.exists()
        assert not list(output.parent.glob(f".{output.name}*"))
    return last_line


@pytest.mark.parametrize(
    "bad_points, fragments",
    [
        (
            [entry(0, 1, 1, 1, 0.5), entry(0, 1024, 1, 1, 0.5)],
            ["predictions.json: points[1].point[0]: x must be an integer in 0..1023, got 1024"],
        ),
        ([entry(5, 1, 1, 1, 0.5)], ["predictions.json: points[0].name: image_5 is outside"]),
        ([entry(0, 1, 1, 1, 1)], ["predictions.json: points[0].probability", "got 1"]),
    ],
)
def test_invalid_predictions_fail_with_one_line_and_no_output(
    files, tmp_path, bad_points, fragments
):
    _, ground_truth, _ = files
    predictions = write_json(tmp_path / "predictions.json", {"points": bad_points})
    output = tmp_path / "metrics.json"
    result = run_cli(
        "score",
        "--predictions",
        "predictions.json",
        "--ground-truth",
        ground_truth,
        "--output",
        output,
        cwd=tmp_path,
    )
    assert predictions.exists()
    _assert_fails_cleanly(result, *fragments, output=output)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "file is empty"),
        (b'{"points": [NaN]}', "NaN is not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 200_000, "nesting too deep"),
    ],
)
def test_broken_json_fails_with_one_line_and_no_output(files, tmp_path, content, fragment):
    _, ground_truth, _ = files
    predictions = tmp_path / "broken.json"
    predictions.write_bytes(content)
    output = tmp_path / "metrics.json"
    result = run_cli(
        "score", "--predictions", predictions, "--ground-truth", ground_truth, "--output", output
    )
    _assert_fails_cleanly(result, f"{predictions}: ", fragment, output=output)


def test_bad_arguments_fail_with_one_line(files, tmp_path, run_in_process):
    run_cli = run_in_process
    predictions, ground_truth, metadata = files
    output = tmp_path / "metrics.json"
    common = [
        "score",
        "--predictions",
        predictions,
        "--ground-truth",
        ground_truth,
        "--output",
        output,
    ]
    cases = [
        (["--radius-um", "3"], "--radius-um needs --mpp"),
        (["--mpp", "0.2"], "--mpp is only used with --radius-um"),
        (["--radius-um", "3", "--mpp", "0"], "--mpp must be a positive number"),
        (["--radius-px", "-1"], "radius must be a finite number >= 0, got -1"),
        (["--radius-px", "nan"], "radius must be a finite number >= 0"),
        (["--metadata", predictions], "expected a Grand Challenge metadata list"),
    ]
    for extra, fragment in cases:
        _assert_fails_cleanly(run_cli(*common, *extra), fragment, output=output)
    write_json(metadata, [{"organ": "kidney"}])
    _assert_fails_cleanly(
        run_cli(*common, "--metadata", metadata),
        "describes 1 images but the ground truth has 2",
        output=output,
    )
    missing_folder = tmp_path / "nowhere" / "metrics.json"
    _assert_fails_cleanly(
        run_cli(
            "score",
            "--predictions",
            predictions,
            "--ground-truth",
            ground_truth,
            "--output",
            missing_folder,
        ),
        "cannot write: folder",
        output=missing_folder,
    )


def test_bad_ground_truth_fails_with_one_line(files, tmp_path, run_in_process):
    run_cli = run_in_process
    predictions, _, _ = files
    output = tmp_path / "metrics.json"
    release = make_release(tmp_path / "release")
    _assert_fails_cleanly(
        run_cli(
            "score", "--predictions", predictions, "--ground-truth", release, "--output", output
        ),
        "needs a split",
        output=output,
    )
    _assert_fails_cleanly(
        run_cli(
            "score",
            "--predictions",
            predictions,
            "--ground-truth",
            tmp_path / "absent.json",
            "--output",
            output,
        ),
        "absent.json: cannot read file",
        output=output,
    )
    no_count = write_json(tmp_path / "gt.json", {"points": []})
    _assert_fails_cleanly(
        run_cli(
            "score", "--predictions", predictions, "--ground-truth", no_count, "--output", output
        ),
        'gt.json: missing key "num_images"',
        output=output,
    )
    (release / "annotations" / "val" / "cell" / "002.csv").write_text("1,2,1\n1,x,1\n")
    _assert_fails_cleanly(
        run_cli(
            "score",
            "--predictions",
            predictions,
            "--ground-truth",
            release,
            "--split",
            "val",
            "--output",
            output,
        ),
        '002.csv: line 2: expected three integers x,y,label, got "1,x,1"',
        output=output,
    )


def test_convert_gt_errors_leave_no_file(tmp_path, run_in_process):
    run_cli = run_in_process
    release = make_release(tmp_path / "release")
    output = tmp_path / "gt.json"
    _assert_fails_cleanly(
        run_cli("convert-gt", release, "--split", "test", "--output", output),
        "not an OCELOT release folder for split 'test'",
        output=output,
    )
    (release / "annotations" / "val" / "cell" / "001.csv").write_text("1,2,7\n")
    _assert_fails_cleanly(
        run_cli("convert-gt", release, "--split", "val", "--output", output),
        "001.csv: line 1: label must be 1 (BC) or 2 (TC), got 7",
        output=output,
    )


def test_usage_errors_exit_2_without_traceback():
    result = run_cli("score", "--predictions", "p.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--ground-truth" in result.stderr.strip().splitlines()[-1]
    assert run_cli().returncode == 2
