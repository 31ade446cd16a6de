"""Bad input to predict-slide and synthesize-slide: one line, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from baseline_algorithm.cli import main
from baseline_algorithm.slides.synthetic import synthesize_slide

ORACLE = "tests.slide_detectors:oracle"


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("slide")
    return synthesize_slide(folder / "slide.tiff", (2048, 1024), seed=3, progress=False)


def fails_with_one_line(capsys, argv: list[str], *expected: str, participant: bool = False) -> str:
    """Exit status 2 and an ``error:`` last line; a traceback only of the participant's code."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    assert ("Traceback" in "\n".join(err)) == participant
    for text in expected:
        assert text in err[-1], err[-1]
    return err[-1]


def predict(slide: Path, output: Path, *extra: str) -> list[str]:
    return [
        "predict-slide",
        str(slide),
        "--output",
        str(output),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def test_unreadable_slide(tmp_path, capsys):
    bad = tmp_path / "broken.tiff"
    bad.write_bytes(b"not a slide at all\n" * 10)
    output = tmp_path / "cells.json"
    fails_with_one_line(capsys, predict(bad, output, "--detector", ORACLE), str(bad))
    fails_with_one_line(capsys, predict(tmp_path / "absent.svs", output), "slide not found")
    assert not output.exists()


def test_openslide_missing_is_named(tmp_path, capsys, monkeypatch):
    """Without OpenSlide, a file tifffile cannot read names the extra to install."""
    import builtins

    real_import = builtins.__import__

    def no_openslide(name, *args, **kwargs):
        if name == "openslide":
            raise ImportError("No module named 'openslide'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openslide)
    bad = tmp_path / "slide.mrxs"
    bad.write_bytes(b"\x00" * 64)
    fails_with_one_line(
        capsys,
        predict(bad, tmp_path / "c.json"),
        "slides extra",
        "pip install 'ocelot-toolkit[slides]'",
    )


def test_unknown_mpp(tmp_path, capsys):
    plain = tmp_path / "plain.tiff"
    tifffile.imwrite(
        plain, np.full((1024, 1024, 3), 200, np.uint8), tile=(256, 256), photometric="rgb"
    )
    fails_with_one_line(capsys, predict(plain, tmp_path / "c.json"), "no resolution", "--mpp")


def test_roi_outside_the_slide(slide, tmp_path, capsys):
    tiff, truth = slide
    for roi in (["0", "0", "4000", "500"], ["100", "100", "100", "500"], ["-5", "0", "10", "10"]):
        fails_with_one_line(
            capsys,
            predict(tiff, tmp_path / "c.json", "--roi", *roi),
            "ROI",
            "inside the slide (0 0 2048 1024",
        )


def test_no_tissue(tmp_path, capsys):
    blank = tmp_path / "blank.tiff"
    synthesize_slide(blank, (1024, 1024), tissue=(0, 0, 1, 1), progress=False)
    fails_with_one_line(capsys, predict(blank, tmp_path / "c.json"), "no tissue found")


def test_detector_failing_on_a_tile(slide, tmp_path, capsys):
    tiff, _ = slide
    output = tmp_path / "cells.json"
    line = fails_with_one_line(
        capsys,
        predict(tiff, output, "--detector", "tests.slide_detectors:failing_on_second_tile"),
        "failed on tile (1, 0) at level-0 (960, 0)",
        "RuntimeError: out of memory on this tile",
        participant=True,
    )
    assert "traceback is above" in line
    assert not output.exists()


def test_detector_returning_bad_points(slide, tmp_path, capsys):
    tiff, _ = slide
    fails_with_one_line(
        capsys,
        predict(tiff, tmp_path / "c.json", "--detector", "tests.slide_detectors:outside_the_tile"),
        "on tile (0, 0)",
        "points[0]",
        "1024.0",
    )


def test_bad_options(slide, tmp_path, capsys):
    tiff, _ = slide
    fails_with_one_line(
        capsys, predict(tiff, tmp_path / "c.json", "--overlap", "600"), "overlap 600"
    )
    fails_with_one_line(
        capsys, predict(tiff, tmp_path / "c.json", "--mpp", "0"), "--mpp", "positive"
    )
    fails_with_one_line(capsys, predict(tiff, tmp_path / "missing" / "c.json"), "does not exist")
    fails_with_one_line(capsys, predict(tiff, tiff), "also an input")


def test_synthesize_slide_bad_size(tmp_path, capsys):
    fails_with_one_line(
        capsys,
        ["synthesize-slide", str(tmp_path / "s.tiff"), "--size", "100", "100"],
        "size 100 x 100",
    )
    fails_with_one_line(
        capsys,
        [
            "synthesize-slide",
            str(tmp_path / "s.tiff"),
            "--size",
            "1024",
            "1024",
            "--tissue",
            "0",
            "0",
            "2000",
            "10",
        ],
        "tissue rectangle",
    )
    assert list(tmp_path.iterdir()) == []
