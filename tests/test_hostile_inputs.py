"""Hostile and careless inputs: bounded resources, confined paths, one clean line every time.

The Grand Challenge entry's cases (symlinks out of /input, duplicate jobs, huge integers and
``num_images``, forged lines) are in ``test_gc_entry.py``; this module covers the scorer's
command line, the writers, the image readers and, with hypothesis, the validation layer against
an independent statement of the organisers' rule.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation.cli import main
from evaluation.errors import InputError, OcelotError
from evaluation.files import write_bytes_atomic
from evaluation.limits import LimitError, limits_from_environment, limits_in_force
from evaluation.multiple_points import read_points_document
from evaluation.stacked import iter_gc_input_pairs, write_stacked_tiff

REPO = Path(__file__).resolve().parents[1]

# Every case with each parser the reader may use (msgspec, the standard library).
pytestmark = pytest.mark.usefixtures("json_parser")


def entry(name="image_0", point=(5, 5, 1), probability=0.5) -> dict:
    return {"name": name, "point": list(point), "probability": probability}


@pytest.fixture
def files(tmp_path):
    """A ground truth of two images and predictions for it."""
    truth = tmp_path / "gt.json"
    truth.write_text(
        json.dumps(
            {
                "num_images": 2,
                "points": [entry(probability=1.0), entry("image_1", (100, 100, 2), 1.0)],
            }
        )
    )
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"points": [entry(), entry("image_1", (101, 99, 2))]}))
    return predictions, truth


def score(predictions: Path, truth: Path, *extra: str) -> int:
    return main(["score", "--predictions", str(predictions), "--ground-truth", str(truth), *extra])


def last_error_line(capsys) -> str:
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and len(line) < 600, line[:200]
    return line


# ---------------------------------------------------------------------------------------------
# Resource bounds


def test_a_sparse_ten_gigabyte_file_is_refused_without_reading_it(files, capsys):
    predictions, truth = files
    with open(predictions, "r+b") as stream:
        stream.truncate(10 * 10**9)  # sparse: no disk used, nothing to read quickly
    assert score(predictions, truth) == 2
    line = last_error_line(capsys)
    assert "predictions.json" in line and "10,000 MB of JSON" in line
    assert "OCELOT_MAX_DOCUMENT_MB" in line


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/stdin"])
def test_a_device_as_predictions_is_refused(files, capsys, device):
    _, truth = files
    assert score(Path(device), truth) == 2
    assert f"{device}: not a regular file" in last_error_line(capsys)


def test_points_in_total_and_per_image_are_bounded(files, capsys, monkeypatch):
    predictions, truth = files
    predictions.write_text(json.dumps({"points": [entry()] * 4 + [entry("image_1")]}))
    monkeypatch.setenv("OCELOT_MAX_POINTS", "4")
    assert score(predictions, truth) == 2
    assert "5 points exceed the limit of 4 (raise it with OCELOT_MAX_POINTS)" in last_error_line(
        capsys
    )
    monkeypatch.delenv("OCELOT_MAX_POINTS")
    monkeypatch.setenv("OCELOT_MAX_POINTS_PER_IMAGE", "3")
    assert score(predictions, truth) == 2
    line = last_error_line(capsys)
    assert "predictions.json: image_0: 4 points exceed the limit of 3" in line
    # A whole slide is one image by design: only the total bounds it.
    assert score(predictions, truth, "--whole-slide") == 0


def test_dense_candidate_pairs_are_bounded_not_allocated(files, capsys, monkeypatch):
    predictions, truth = files
    truth.write_text(json.dumps({"num_images": 1, "points": [entry(probability=1.0)] * 5000}))
    predictions.write_text(json.dumps({"points": [entry()] * 5000}))
    monkeypatch.setenv("OCELOT_MAX_CANDIDATE_PAIRS", "1000000")
    assert score(predictions, truth) == 2
    line = last_error_line(capsys)
    assert "image_0, class BC" in line and "25,000,000 candidate pairs" in line


def test_a_bad_override_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setenv("OCELOT_MAX_POINTS", "lots\nerror: fine")
    assert score(*files) == 2
    assert (
        'OCELOT_MAX_POINTS: must be a positive integer, got "lots\\nerror: fine"'
        in last_error_line(capsys)
    )


def test_report_replicates_are_bounded(files, tmp_path, capsys):
    predictions, truth = files
    code = main(
        [
            "report",
            "--predictions",
            str(predictions),
            "--ground-truth",
            str(truth),
            "--out",
            str(tmp_path / "report"),
            "--replicates",
            str(10**8),
        ]
    )
    assert code == 2
    assert "--replicates" in last_error_line(capsys)
    assert not (tmp_path / "report").exists()


def test_the_environment_is_read_by_the_command_alone(files, capsys, monkeypatch):
    """Library code applies the limits in force, never the environment: a bound set in the
    environment holds for a command, not for a library call outside one."""
    predictions, truth = files
    monkeypatch.setenv("OCELOT_MAX_POINTS", "1")
    assert len(read_points_document(predictions)[0]) == 2
    assert score(predictions, truth) == 2
    assert "2 points exceed the limit of 1" in last_error_line(capsys)
    with limits_in_force(limits_from_environment({"OCELOT_MAX_POINTS": "1"})):
        with pytest.raises(LimitError, match="2 points exceed the limit of 1"):
            read_points_document(predictions)
    assert len(read_points_document(predictions)[0]) == 2


def test_every_limit_has_its_environment_variable():
    defaults = limits_from_environment({})
    raised = limits_from_environment({"OCELOT_MAX_PATCH_SIDE": "8192", "OCELOT_MAX_JOBS": "3"})
    assert (raised.patch_side_px, raised.jobs) == (8192, 3)
    assert raised.points == defaults.points
    with pytest.raises(LimitError, match=r"x.json: 4,097 pixels exceed the limit of 4,096"):
        defaults.check("patch_side_px", 4097, "x.json", "pixels")


# ---------------------------------------------------------------------------------------------
# Output writing


def test_output_that_is_an_input_is_refused_and_the_input_kept(files, capsys):
    predictions, truth = files
    before = predictions.read_bytes()
    assert score(predictions, truth, "--output", str(predictions)) == 2
    assert "is also an input" in last_error_line(capsys)
    assert predictions.read_bytes() == before


def test_output_symlink_is_not_replaced(files, tmp_path, capsys):
    predictions, truth = files
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "metrics.json"
    link.symlink_to(target)
    assert score(predictions, truth, "--output", str(link)) == 2
    assert "exists and is a symbolic link" in last_error_line(capsys)
    assert link.is_symlink() and target.read_text() == "keep"


def test_output_device_or_folder_is_not_replaced(files, tmp_path, capsys):
    predictions, truth = files
    assert score(predictions, truth, "--output", "/dev/null") == 2
    assert "/dev/null: exists and is not a regular file" in last_error_line(capsys)
    assert Path("/dev/null").is_char_device()
    assert score(predictions, truth, "--output", str(tmp_path)) == 2
    line = last_error_line(capsys)
    assert f"{tmp_path}: exists and is a folder" in line and ".tmp" not in line


def test_read_only_output_folder_is_refused_before_the_work(files, tmp_path, capsys, monkeypatch):
    predictions, truth = files
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    # Root may write anywhere: answer as the operating system answers any other user.
    access = os.access
    monkeypatch.setattr(
        "evaluation.files.os.access",
        lambda path, mode: False if Path(path) == folder else access(path, mode),
    )
    assert score(predictions, truth, "--output", str(folder / "m.json")) == 2
    assert "is not writable" in last_error_line(capsys)


def test_disk_full_names_the_output_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evaluation.files.os.replace", no_space)
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as error:
        write_bytes_atomic(target, b"{}")
    assert error.value.filename == str(target) and error.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import evaluation.files as formats
        from evaluation.errors import run_reporting_errors

        def replace_after_sigterm(source, target):
            os.kill(os.getpid(), signal.SIGTERM)  # as docker stop would, mid-write

        formats.os.replace = replace_after_sigterm
        raise SystemExit(run_reporting_errors(
            lambda: formats.write_bytes_atomic({str(tmp_path / "out.json")!r}, b"x" * 1000)))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 128 + signal.SIGTERM
    assert result.stderr.strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Images: sizes read from headers, types named


def _gc_input(root: Path, cells: Path | None = None) -> Path:
    patches = np.zeros((1, 16, 16, 3), np.uint8)
    for kind in ("cell_patches", "tissue_patches"):
        (root / "images" / kind).mkdir(parents=True)
        write_stacked_tiff(root / "images" / kind / "000.tif", patches)
    (root / "metadata.json").write_text(
        json.dumps([{"patch_x_offset": 0.5, "patch_y_offset": 0.5}])
    )
    return root


def _declare_size(path: Path, side: int) -> None:
    """Rewrite a TIFF's width and length tags: a decompression bomb of a few KB."""
    with tifffile.TiffFile(path, mode="r+b") as tiff:
        tags = tiff.pages.first.tags
        tags["ImageWidth"].overwrite(side)
        tags["ImageLength"].overwrite(side)


def test_a_tiff_bomb_is_refused_from_its_header_within_1_5_gb(tmp_path):
    root = _gc_input(tmp_path / "input")
    bomb = root / "images" / "cell_patches" / "000.tif"
    write_stacked_tiff(bomb, np.zeros((1, 64, 64, 3), np.uint8), compression="zlib")
    _declare_size(bomb, 40_000)
    assert bomb.stat().st_size < 20_000
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
        from evaluation.errors import OcelotError
        from evaluation.stacked import iter_gc_input_pairs
        try:
            list(iter_gc_input_pairs({str(root)!r}))
        except OcelotError as error:
            print(error)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "000.tif: 40,000 pixels per patch side exceed the limit of 4,096" in result.stdout
    assert "OCELOT_MAX_PATCH_SIDE" in result.stdout


def test_a_mid_sized_bomb_is_refused_too(tmp_path):
    root = _gc_input(tmp_path / "input")
    bomb = root / "images" / "tissue_patches" / "000.tif"
    write_stacked_tiff(bomb, np.zeros((1, 64, 64, 3), np.uint8), compression="zlib")
    _declare_size(bomb, 20_000)
    with pytest.raises(LimitError, match="20,000 pixels per patch side"):
        list(iter_gc_input_pairs(root))


def test_a_float32_metaimage_names_its_pixel_type(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    root = _gc_input(tmp_path / "input")
    (root / "images" / "cell_patches" / "000.tif").unlink()
    image = sitk.GetImageFromArray(np.zeros((16, 16, 3), np.float32), isVector=True)
    sitk.WriteImage(image, str(root / "images" / "cell_patches" / "000.mha"))
    with pytest.raises(OcelotError) as error:
        list(iter_gc_input_pairs(root))
    assert "expected 3-component uint8 pixels, got vector of 32-bit float" in str(error.value)


# ---------------------------------------------------------------------------------------------
# The validation layer against an independent statement of the rule

NAME = re.compile(r"image_[0-9]+")


def organisers_accept(document) -> bool:
    """The organisers' validity rule, written from its text (reference §1), not from our code."""
    if not isinstance(document, dict) or not isinstance(document.get("points"), list):
        return False
    for item in document["points"]:
        if not isinstance(item, dict) or set(item) != {"name", "point", "probability"}:
            return False
        name, point, probability = item["name"], item["point"], item["probability"]
        if not isinstance(name, str) or NAME.fullmatch(name) is None:
            return False
        if not isinstance(point, list) or len(point) != 3:
            return False
        if any(isinstance(value, bool) or not isinstance(value, int) for value in point):
            return False
        x, y, label = point
        if not (0 <= x <= 1023 and 0 <= y <= 1023 and label in (1, 2)):
            return False
        if not isinstance(probability, float) or not 0.0 <= probability <= 1.0:
            return False
    return True


scalars = st.one_of(
    st.integers(-3, 1030),
    st.integers(-(10**30), 10**30),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


def mostly(valid, invalid):
    """``valid`` four times in five: documents that pass must be common, not rare."""
    return st.integers(0, 4).flatmap(lambda k: valid if k else invalid)


names = mostly(
    st.from_regex(r"image_[0-9]{1,3}", fullmatch=True),
    st.one_of(
        st.sampled_from(["image_", "image_-1", "Image_1", "image_1 ", "image_\u0663"]), scalars
    ),
)
points = mostly(
    st.tuples(st.integers(0, 1023), st.integers(0, 1023), st.integers(1, 2)).map(list),
    st.one_of(
        st.lists(scalars, min_size=0, max_size=4),
        scalars,
        st.tuples(st.integers(-2, 1026), st.integers(-2, 1026), st.integers(0, 3)).map(list),
    ),
)
probabilities = mostly(st.floats(0, 1), st.one_of(st.floats(allow_nan=False), scalars))


@st.composite
def entries(draw):
    item = {"name": draw(names), "point": draw(points), "probability": draw(probabilities)}
    if draw(st.integers(0, 19)) == 0:
        item.pop(draw(st.sampled_from(sorted(item))))
    if draw(st.integers(0, 19)) == 0:
        item[draw(st.text(max_size=5))] = draw(scalars)
    return item if draw(st.integers(0, 29)) else draw(scalars)


documents = mostly(
    st.builds(lambda items: {"points": items}, st.lists(entries(), max_size=4)),
    st.one_of(scalars, st.builds(lambda items: {"point": items}, st.lists(entries(), max_size=2))),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(documents)
def test_validation_accepts_exactly_what_the_rule_accepts(document):
    expected = organisers_accept(document)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.json"
        path.write_text(json.dumps(document))  # NaN and Infinity written as JSON cannot hold them
        try:
            points, _ = read_points_document(path)
        except InputError as error:
            message = str(error)
            assert not expected, message
            assert message.startswith(f"{path}: ") and "\n" not in message
            assert len(message) < 600 + len(str(path))
            return
    assert expected
    rows = document["points"]
    assert points.xy.tolist() == [item["point"][:2] for item in rows]
    assert points.label.tolist() == [item["point"][2] for item in rows]
    assert points.probability.tolist() == [item["probability"] for item in rows]
    assert points.image.tolist() == [int(item["name"].split("_")[1]) for item in rows]


def test_a_message_with_a_newline_still_ends_in_one_line(capsys):
    from evaluation.errors import DataError, run_reporting_errors

    def fail() -> int:
        raise DataError("x.tif: cannot read (Decoder: bad\nerror: looks fine)")

    assert run_reporting_errors(fail) == 2
    stderr = capsys.readouterr().err
    assert stderr == "error: x.tif: cannot read (Decoder: bad\\nerror: looks fine)\n"
