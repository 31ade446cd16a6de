"""ocelot-eval, built by scripts/build-images.sh and run as Grand Challenge runs it.

Needs a Docker daemon (``docker_client`` skips otherwise, or fails under ``.ci/run``). The image
is built once per session on ``$OCELOT_BASE_IMAGE`` (see ``base_image``); Docker's layer cache
makes a rebuild of unchanged code take seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from baseline_algorithm.platform import ORGANISER_RUN_FLAGS
from evaluation.cli import main as cli_main

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
EVALUATION_INPUT = REPO / "test_data" / "evaluation" / "input"
GROUND_TRUTH = REPO / "test_data" / "ground_truth"
IMAGE = os.environ.get("OCELOT_EVAL_IMAGE", "ocelot-eval")


def build(base_image: str, tag: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["scripts/build-images.sh", "eval", "--base-image", base_image, "--tag", tag, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="session")
def eval_image(docker_client, base_image):
    """ocelot-eval built from this checkout with the organisers' build script."""
    result = build(base_image, IMAGE)
    if result.returncode != 0:
        pytest.fail(
            f"scripts/build-images.sh eval failed on {base_image}:\n"
            f"{(result.stdout + result.stderr)[-3000:]}",
            pytrace=False,
        )
    return docker_client.images.get(IMAGE)


def run_container(client, image, volumes: dict, *, platform=True, **options):
    """Run ``image`` to completion; return (exit status, stdout, stderr)."""
    container = client.containers.run(
        image, detach=True, volumes=volumes, **(ORGANISER_RUN_FLAGS if platform else {}), **options
    )
    try:
        status = container.wait(timeout=600)["StatusCode"]
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return status, stdout, stderr


def platform_folders(tmp_path: Path, source: Path = EVALUATION_INPUT) -> tuple[Path, Path]:
    """A copy of ``source`` readable by the container user, and an output folder it can write."""
    input_dir = tmp_path / "input"
    shutil.copytree(source, input_dir)
    output_dir = tmp_path / "output"
    output_dir.mkdir()
    for folder in (tmp_path, input_dir, output_dir, *input_dir.rglob("*")):
        folder.chmod(0o777 if folder == output_dir else 0o755 if folder.is_dir() else 0o644)
    return input_dir, output_dir


def mounts(input_dir: Path, output_dir: Path, ground_truth: Path | None = None) -> dict:
    volumes = {
        str(input_dir): {"bind": "/input", "mode": "ro"},
        str(output_dir): {"bind": "/output", "mode": "rw"},
    }
    if ground_truth is not None:
        volumes[str(ground_truth)] = {"bind": "/opt/ml/input/data/ground_truth", "mode": "ro"}
    return volumes


def only_job_predictions(input_dir: Path, scratch: Path) -> Path:
    """The predictions file of the layout's single job (an inline value is written out)."""
    (job,) = json.loads((input_dir / "predictions.json").read_text())
    (output,) = [
        output for output in job["outputs"] if output["interface"]["slug"] == "cell-classification"
    ]
    if output.get("value") is not None:
        path = scratch / "inline_predictions.json"
        path.write_text(json.dumps(output["value"]))
        return path
    return input_dir / str(job["pk"]) / "output" / output["interface"]["relative_path"]


def cli_metrics(scratch: Path, predictions: Path, ground_truth_folder: Path) -> dict:
    """What ``python -m evaluation score --output`` writes for this GT folder's one GT JSON."""
    (ground_truth,) = [
        path for path in ground_truth_folder.glob("*.json") if path.name != "metadata.json"
    ]
    metadata = ground_truth_folder / "metadata.json"
    output = scratch / "cli_metrics.json"
    arguments = [
        "score",
        "--predictions",
        str(predictions),
        "--ground-truth",
        str(ground_truth),
        "--output",
        str(output),
    ]
    if metadata.is_file():
        arguments += ["--metadata", str(metadata)]
    assert cli_main(arguments) == 0
    return json.loads(output.read_text())


def test_image_runs_as_non_root_without_torch(docker_client, eval_image):
    assert eval_image.attrs["Config"]["User"] == "evaluator"
    status, stdout, stderr = run_container(
        docker_client,
        eval_image.id,
        {},
        entrypoint=[
            "python",
            "-c",
            "import importlib.util, os; print(os.getuid(), importlib.util.find_spec('torch'))",
        ],
    )
    assert (status, stdout.split()) == (0, ["10001", "None"]), stderr


def test_metrics_equal_cli_on_test_data(docker_client, eval_image, tmp_path):
    input_dir, output_dir = platform_folders(tmp_path)
    status, stdout, stderr = run_container(
        docker_client, eval_image.id, mounts(input_dir, output_dir)
    )
    assert status == 0, stderr
    assert "wrote /output/metrics.json" in stdout
    metrics = json.loads((output_dir / "metrics.json").read_text())
    expected = cli_metrics(tmp_path, only_job_predictions(input_dir, tmp_path), GROUND_TRUTH)
    assert metrics == expected
    assert 0 < metrics["aggregates"]["mF1"] <= 1


def test_mounted_ground_truth_wins_over_baked(docker_client, eval_image, tmp_path):
    input_dir, output_dir = platform_folders(tmp_path)
    (baked,) = [path for path in GROUND_TRUTH.glob("*.json") if path.name != "metadata.json"]
    document = json.loads(baked.read_text())
    document["points"] = document["points"][::2]  # a different GT: every other cell
    mounted = tmp_path / "mounted_gt"
    mounted.mkdir(mode=0o755)
    (mounted / "gt.json").write_text(json.dumps(document))
    (mounted / "gt.json").chmod(0o644)
    status, _, stderr = run_container(
        docker_client, eval_image.id, mounts(input_dir, output_dir, mounted)
    )
    assert status == 0, stderr
    metrics = json.loads((output_dir / "metrics.json").read_text())
    predictions = only_job_predictions(input_dir, tmp_path)
    assert metrics == cli_metrics(tmp_path, predictions, mounted)
    assert metrics != cli_metrics(tmp_path, predictions, GROUND_TRUTH)


def _job_output(input_dir: Path) -> Path:
    (job,) = json.loads((input_dir / "predictions.json").read_text())
    (output,) = [o for o in job["outputs"] if o["interface"]["slug"] == "cell-classification"]
    if output.get("value") is not None:
        # Move an inline value out to the file, so that each failure below has a file to break.
        path = input_dir / str(job["pk"]) / "output" / output["interface"]["relative_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(output["value"]))
        output["value"] = None
        (input_dir / "predictions.json").write_text(json.dumps([job]))
    return input_dir / str(job["pk"]) / "output" / output["interface"]["relative_path"]


def break_predictions_json(input_dir: Path) -> list[str]:
    (input_dir / "predictions.json").write_text('[{"pk": "abc", ')
    return ["/input/predictions.json", "not valid JSON"]


def remove_job_output(input_dir: Path) -> list[str]:
    path = _job_output(input_dir)
    path.unlink()
    return [f'job "{path.parents[1].name}"', "missing", path.name]


def put_point_outside_patch(input_dir: Path) -> list[str]:
    path = _job_output(input_dir)
    document = json.loads(path.read_text())
    document["points"][1]["point"][1] = 1024
    path.write_text(json.dumps(document))
    return [f'job "{path.parents[1].name}"', path.name, "points[1].point[1]", "1024"]


def link_output_to_the_baked_ground_truth(input_dir: Path) -> list[str]:
    """The cheat: a job output that is a link to the ground truth inside the image."""
    path = _job_output(input_dir)
    path.unlink()
    path.symlink_to("/opt/ocelot/ground_truth/cell_gt.json")
    return [path.name, "outside /input", "symbolic link"]


def submit_ten_million_points(input_dir: Path) -> list[str]:
    """A careless detector's output: 10^7 points, about 690 MB, for a container of 4 GB."""
    path = _job_output(input_dir)
    entry = '{"name": "image_0", "point": [512, 512, 1], "probability": 0.5}, '
    with open(path, "w") as stream:
        stream.write('{"type": "Multiple points", "points": [')
        for _ in range(1000):
            stream.write(entry * 10_000)
        stream.write(entry[:-2] + "]}")
    return [path.name, "MB of JSON exceed the limit of 256", "OCELOT_MAX_DOCUMENT_MB"]


@pytest.mark.parametrize(
    "break_input",
    [
        break_predictions_json,
        remove_job_output,
        put_point_outside_patch,
        link_output_to_the_baked_ground_truth,
        submit_ten_million_points,
    ],
)
def test_failure_contract(docker_client, eval_image, tmp_path, break_input):
    input_dir, output_dir = platform_folders(tmp_path)
    fragments = break_input(input_dir)
    for path in input_dir.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    status, _, stderr = run_container(docker_client, eval_image.id, mounts(input_dir, output_dir))
    assert status == 2, stderr[-2000:]  # never 137: a clean line, whatever the input
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ")
    for fragment in fragments:
        assert fragment in last_line, (fragment, last_line)
    assert "Traceback" not in stderr
    assert list(output_dir.iterdir()) == []


def test_bare_run_says_what_it_expects(docker_client, eval_image):
    status, _, stderr = run_container(docker_client, eval_image.id, {}, platform=False)
    assert status == 2
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert "/input/predictions.json not found" in last_line
    assert "/output" in last_line


def test_test_run_script_scores_test_data(eval_image, tmp_path):
    input_dir, _ = platform_folders(tmp_path)
    output_dir = tmp_path / "script_output"
    result = subprocess.run(
        ["scripts/test-run-eval.sh", str(input_dir), str(output_dir), "--image", IMAGE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics == cli_metrics(tmp_path, only_job_predictions(input_dir, tmp_path), GROUND_TRUTH)


def test_build_rejects_invalid_ground_truth(eval_image, base_image, tmp_path):
    bad = tmp_path / "bad_gt"
    bad.mkdir()
    (bad / "gt.json").write_text('{"type": "Multiple points", "points": [], "num_images": -1}')
    result = build(base_image, "ocelot-eval:invalid-gt-test", "--ground-truth", str(bad))
    assert result.returncode != 0
    assert "gt.json: num_images" in result.stdout + result.stderr
