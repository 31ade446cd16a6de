"""``python -m baseline_algorithm predict`` on a host with the baseline detector: the container's
entry, without the container.

The weights are a small randomly initialised checkpoint made here (resnet18 encoders, 64 px), so the
tests need neither the shipped checkpoint nor training; what they check is the plumbing: input
layout, streaming, checkpoint choice, output document, and the failure contract (exit status 2,
one ``error:`` line, no output). Other detectors: tests/test_detector*.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from baseline_algorithm import inference
from baseline_algorithm import predict as predict_module
from baseline_algorithm.checkpoint import load_checkpoint, save_checkpoint
from baseline_algorithm.cli import main
from baseline_algorithm.commands.predict import options_from_environment
from baseline_algorithm.detector import BASELINE_DETECTOR, LoadedDetector
from baseline_algorithm.inference import BaselineDetector, DetectionSettings, predict_points
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.predict import PredictOptions
from evaluation import PointSet, read_points_document
from evaluation.stacked import GcInput, iter_gc_input_pairs

REPO = Path(__file__).resolve().parents[1]
TEST_INPUT = REPO / "test_data" / "input"


def make_checkpoint(path: Path, seed: int = 0, variant: str = "pred-to-inter-2", **extra) -> Path:
    """A randomly initialised checkpoint small enough for tests (resnet18, 64 px, int8 weights)."""
    torch.manual_seed(seed)
    model = CellTissueModel(
        ModelConfig(variant=variant, encoder="resnet18", patch_size=64, cell_mpp=0.2 * 1024 / 64)
    )
    save_checkpoint(path, model.eval(), weights_dtype="int8", **extra)
    return path


def assert_same_points(points: PointSet, expected: PointSet, rtol: float) -> None:
    """Equal points, probabilities within ``rtol``. The order of peaks of equal height within an
    image depends on float rounding (batching, threads) and carries no meaning, so the points are
    compared sorted by image and position."""
    order, expected_order = (
        np.lexsort((p.xy[:, 0], p.xy[:, 1], p.image)) for p in (points, expected)
    )
    np.testing.assert_array_equal(points.image[order], expected.image[expected_order])
    np.testing.assert_array_equal(points.xy[order], expected.xy[expected_order])
    np.testing.assert_array_equal(points.label[order], expected.label[expected_order])
    np.testing.assert_allclose(
        points.probability[order], expected.probability[expected_order], rtol=rtol
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.pt")


@pytest.fixture
def gc_input(tmp_path) -> Path:
    """A writable copy of test_data/input (the Grand Challenge input layout, 3 pairs)."""
    if not TEST_INPUT.is_dir():
        pytest.skip(f"{TEST_INPUT} is missing")
    return Path(shutil.copytree(TEST_INPUT, tmp_path / "input"))


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    """Run the dispatcher in-process; return the exit status and the stderr lines."""
    status = main(["predict", "--quiet", *args])
    return status, capsys.readouterr().err.strip().splitlines()


def test_writes_points_of_every_pair(capsys, gc_input, checkpoint, tmp_path):
    output = tmp_path / "out" / "cell_classification.json"
    status, _ = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(output),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--precision",
        "float32",
    )
    assert status == 0
    points, _ = read_points_document(output, role="predictions")  # the organisers' validity rule
    expected = predict_points(
        load_checkpoint(checkpoint), iter_gc_input_pairs(gc_input), precision="float32"
    )
    assert_same_points(points, expected, rtol=1e-5)
    assert len(points) > 0
    pairs = list(iter_gc_input_pairs(gc_input))
    assert set(points.image.tolist()) <= set(range(len(pairs)))
    for k, pair in enumerate(pairs):
        height, width = pair.cell_image.shape[:2]
        xy = points.xy[points.image == k]
        assert (xy >= 0).all() and (xy[:, 0] < width).all() and (xy[:, 1] < height).all()


def test_checkpoint_from_environment(capsys, gc_input, checkpoint, tmp_path, monkeypatch):
    """Without --checkpoint, $OCELOT_CHECKPOINT is used (the container sets it to baked weights)."""
    monkeypatch.setenv("OCELOT_CHECKPOINT", str(checkpoint))
    output = tmp_path / "cell_classification.json"
    status, lines = run_cli(capsys, "--input", str(gc_input), "--output", str(output))
    assert status == 0, lines
    assert f"checkpoint {checkpoint}" in "\n".join(lines)
    monkeypatch.setenv("OCELOT_CHECKPOINT", str(tmp_path / "absent.pt"))
    status, lines = run_cli(
        capsys, "--input", str(gc_input), "--output", str(output), "--checkpoint", str(checkpoint)
    )
    assert status == 0, lines  # the flag wins over the environment


def test_detection_settings_come_from_the_checkpoint(capsys, gc_input, tmp_path):
    """Training stores the detection settings it validated with; predict uses them: the same weights
    with a stricter threshold find a subset of the cells."""
    counts = {}
    for threshold in (0.05, 0.95):
        weights = make_checkpoint(
            tmp_path / f"t{threshold}.pt",
            detection={"threshold": threshold, "min_distance_um": 2.0},
        )
        output = tmp_path / f"t{threshold}.json"
        status, lines = run_cli(
            capsys, "--input", str(gc_input), "--output", str(output), "--checkpoint", str(weights)
        )
        assert status == 0, lines
        assert f"threshold {threshold}" in "\n".join(lines)
        counts[threshold] = len(read_points_document(output, role="predictions")[0])
    assert counts[0.95] < counts[0.05]


def test_invalid_detection_settings_in_checkpoint(capsys, gc_input, tmp_path):
    weights = make_checkpoint(
        tmp_path / "bad.pt", detection={"threshold": 1.5, "min_distance_um": 2.0}
    )
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(tmp_path / "o.json"),
        "--checkpoint",
        str(weights),
    )
    assert status == 2 and str(weights) in lines[-1] and "threshold" in lines[-1]


def test_leaking_variant_is_refused(capsys, gc_input, tmp_path):
    """Tissue-label leaking reads the tissue annotation, which a submission never has."""
    leaking = make_checkpoint(tmp_path / "leaking.pt", variant="tissue-label-leaking")
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(tmp_path / "o.json"),
        "--checkpoint",
        str(leaking),
    )
    assert status == 2 and "tissue-label-leaking" in lines[-1] and str(leaking) in lines[-1]


def test_progress_without_terminal_is_one_line_per_pair(capsys, gc_input, checkpoint, tmp_path):
    """Container logs are read line by line: without a terminal, each pair gets its own line."""
    status = main(
        [
            "predict",
            "--input",
            str(gc_input),
            "--output",
            str(tmp_path / "o.json"),
            "--checkpoint",
            str(checkpoint),
        ]
    )
    lines = capsys.readouterr().err.splitlines()
    assert status == 0
    count = len(json.loads((gc_input / "metadata.json").read_text()))
    pair_lines = [line for line in lines if line.startswith("predict: pair ")]
    assert [line.split()[2] for line in pair_lines] == [f"{k}/{count}" for k in range(1, count + 1)]
    assert not any("\r" in line for line in lines)


def test_checkpoint_precedence(tmp_path):
    """None reaches the factory, whose own default applies (the baseline's: the shipped weights)."""
    flags = argparse.Namespace(detector=None, checkpoint=None)
    options = PredictOptions()
    assert options_from_environment(options, flags, {}).checkpoint is None
    assert options_from_environment(options, flags, {"OCELOT_CHECKPOINT": ""}).checkpoint is None
    environ = {"OCELOT_CHECKPOINT": str(tmp_path / "env.pt")}
    assert options_from_environment(options, flags, environ).checkpoint == tmp_path / "env.pt"
    flags.checkpoint = tmp_path / "flag.pt"
    assert options_from_environment(options, flags, environ).checkpoint == tmp_path / "flag.pt"


def test_detector_precedence():
    flags = argparse.Namespace(detector=None, checkpoint=None)
    options = PredictOptions()
    assert options_from_environment(options, flags, {}).detector == BASELINE_DETECTOR
    environ = {"OCELOT_DETECTOR": "participant:make"}
    assert options_from_environment(options, flags, environ).detector == "participant:make"
    flags.detector = "other:make"
    assert options_from_environment(options, flags, environ).detector == "other:make"


@pytest.mark.parametrize("read_ahead", [0, 1, 2])
def test_stream_is_consumed_pair_by_pair(gc_input, checkpoint, monkeypatch, read_ahead):
    """detect_all pulls pairs lazily: without read-ahead, exactly the pair being predicted; with
    it, at most ``read_ahead`` + 1 more (one queued per slot, one waiting to be queued)."""
    pulled = []

    def counting(pairs):
        for pair in pairs:
            pulled.append(pair.name)
            yield pair

    model = load_checkpoint(checkpoint)
    seen_when_predicting = []
    original = inference.cell_log_probabilities

    def spy(model, batch, device, precision):
        seen_when_predicting.append(len(pulled))
        return original(model, batch, device, precision)

    monkeypatch.setattr(inference, "cell_log_probabilities", spy)
    detector = LoadedDetector(
        BASELINE_DETECTOR, BaselineDetector(model, DetectionSettings()), batch_size=1
    )
    with GcInput(gc_input) as opened:
        count = len(opened)
        predict_module.detect_all(
            detector, counting(opened), count, progress=False, read_ahead_pairs=read_ahead
        )
    assert len(seen_when_predicting) == count
    for predicted, seen in enumerate(seen_when_predicting, start=1):
        if read_ahead == 0:
            assert seen == predicted
        else:
            assert predicted <= seen <= min(count, predicted + read_ahead + 1)


@pytest.mark.parametrize("depth", [1, 3])
def test_read_ahead_keeps_order_and_raises_where_the_error_was(depth):
    def produce():
        yield from range(5)
        raise ValueError("pair 5 is broken")

    received = []
    with pytest.raises(ValueError, match="pair 5 is broken"):
        for item in predict_module.read_ahead(produce(), depth):
            received.append(item)
    assert received == [0, 1, 2, 3, 4]
    assert list(predict_module.read_ahead(iter(range(7)), depth)) == list(range(7))


def test_read_ahead_stops_reading_when_closed():
    pulled = []

    def produce():
        for item in range(1000):
            pulled.append(item)
            yield item

    ahead = predict_module.read_ahead(produce(), 2)
    assert next(ahead) == 0
    ahead.close()  # e.g. the detector raised
    assert len(pulled) <= 1 + 2 + 1
    assert not any(thread.name == "read-ahead" for thread in threading.enumerate())


def test_read_ahead_flag_is_checked(capsys, gc_input, checkpoint, tmp_path):
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(tmp_path / "out.json"),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--read-ahead",
        "-1",
    )
    assert status == 2
    assert lines[-1] == "error: read-ahead of -1 pairs must be at least 0"
    assert not (tmp_path / "out.json").exists()


# --- the failure contract: one last stderr line naming the problem, non-zero exit, no output ---


def _replace_stack(folder: Path, array: np.ndarray) -> None:
    (stack,) = folder.glob("*.tif")
    tifffile.imwrite(
        stack, array, photometric="rgb" if array.ndim == 3 and array.shape[-1] == 3 else None
    )


def _drop_last_metadata_entry(gc_input: Path) -> str:
    metadata = json.loads((gc_input / "metadata.json").read_text())
    (gc_input / "metadata.json").write_text(json.dumps(metadata[:-1]))
    return "metadata.json"


def _break_tissue_stack(gc_input: Path) -> str:
    _replace_stack(gc_input / "images" / "tissue_patches", np.zeros((10, 10), dtype=np.uint8))
    return "tissue_patches"


def _remove_cell_stack(gc_input: Path) -> str:
    for stack in (gc_input / "images" / "cell_patches").iterdir():
        stack.unlink()
    return "cell_patches"


def _invalid_json(gc_input: Path) -> str:
    (gc_input / "metadata.json").write_text("[{")
    return "metadata.json"


@pytest.mark.parametrize(
    "damage", [_drop_last_metadata_entry, _break_tissue_stack, _remove_cell_stack, _invalid_json]
)
def test_malformed_input(capsys, gc_input, checkpoint, tmp_path, damage):
    named = damage(gc_input)
    output = tmp_path / "cell_classification.json"
    status, lines = run_cli(
        capsys, "--input", str(gc_input), "--output", str(output), "--checkpoint", str(checkpoint)
    )
    assert status == 2
    assert lines[-1].startswith("error: ") and named in lines[-1], lines[-1]
    assert not output.exists()
    assert not list(tmp_path.glob(".cell_classification.json*"))


def test_unwritable_output(capsys, gc_input, checkpoint, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(blocker / "o.json"),
        "--checkpoint",
        str(checkpoint),
    )
    assert status == 2 and str(blocker / "o.json") in lines[-1] and "cannot write" in lines[-1]


def test_missing_input_folder(capsys, checkpoint, tmp_path):
    status, lines = run_cli(
        capsys,
        "--input",
        str(tmp_path / "nowhere"),
        "--output",
        str(tmp_path / "o.json"),
        "--checkpoint",
        str(checkpoint),
    )
    assert status == 2 and "nowhere" in lines[-1] and "input folder not found" in lines[-1]


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_bad_checkpoint(capsys, gc_input, tmp_path, content):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    output = tmp_path / "cell_classification.json"
    status, lines = run_cli(
        capsys, "--input", str(gc_input), "--output", str(output), "--checkpoint", str(path)
    )
    assert status == 2 and str(path) in lines[-1]
    assert not any("Traceback" in line for line in lines)  # the toolkit's own error: one line
    assert not output.exists()


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message given when no GPU is present"
)
def test_cuda_requested_without_gpu(capsys, gc_input, checkpoint, tmp_path):
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(tmp_path / "o.json"),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cuda",
    )
    assert status == 2 and "no CUDA device" in lines[-1]


def test_error_in_a_fresh_process_has_no_traceback(gc_input, checkpoint, tmp_path):
    """What the platform shows: the last stderr line of the process, never a traceback tail."""
    _break_tissue_stack(gc_input)
    output = tmp_path / "cell_classification.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "baseline_algorithm",
            "predict",
            "--input",
            str(gc_input),
            "--output",
            str(output),
            "--checkpoint",
            str(checkpoint),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "tissue_patches" in result.stderr.strip().splitlines()[-1]
    assert not output.exists()


def test_output_is_checked_before_any_inference(
    capsys, gc_input, checkpoint, tmp_path, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("the detector was loaded before the output was checked")

    monkeypatch.setattr(predict_module, "load_detector", never)
    target = tmp_path / "kept.json"
    target.write_text("{}")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    status, lines = run_cli(
        capsys, "--input", str(gc_input), "--output", str(link), "--checkpoint", str(checkpoint)
    )
    assert status == 2 and "exists and is a symbolic link" in lines[-1]
    assert target.read_text() == "{}"


@pytest.mark.parametrize("unreadable", ["metadata.json", "images/cell_patches"])
def test_permission_errors_are_one_line(
    capsys, gc_input, checkpoint, tmp_path, monkeypatch, unreadable
):
    """What a non-root container user sees for an unreadable file or folder (tests run as root,
    which reads everything: the operating system's error is raised where it would be)."""
    denied = gc_input / unreadable
    original_read, original_iterdir = Path.read_bytes, Path.iterdir

    def read_bytes(path):
        if path == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return original_read(path)

    def iterdir(path):
        if path == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return original_iterdir(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    status, lines = run_cli(
        capsys,
        "--input",
        str(gc_input),
        "--output",
        str(tmp_path / "o.json"),
        "--checkpoint",
        str(checkpoint),
    )
    assert status == 2
    assert lines[-1].startswith("error: ") and str(denied) in lines[-1]
    assert "Permission denied" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "o.json").exists()
