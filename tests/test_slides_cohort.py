"""predict-slides on a 2-worker Dask LocalCluster: three slides, a failing one, a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baseline_algorithm.cli import main
from baseline_algorithm.slides.cohort import read_manifest
from baseline_algorithm.slides.errors import SlideError
from baseline_algorithm.slides.synthetic import synthesize_slide

pytest.importorskip("distributed")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def manifest(tmp_path) -> Path:
    for index, size in enumerate([(1024, 1024), (1536, 1024), (1024, 1536)]):
        synthesize_slide(tmp_path / f"s{index}.tiff", size, seed=index, progress=False)
    (tmp_path / "broken.tiff").write_text("not a slide")
    path = tmp_path / "manifest.csv"
    path.write_text("slide,name,mpp\ns0.tiff,,\ns1.tiff,second,\nbroken.tiff,,\ns2.tiff,,0.2\n")
    return path


def test_cohort_on_a_local_cluster(manifest, tmp_path, monkeypatch, capsys):
    # The workers are new processes: they find the test detectors through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = tmp_path / "out"
    argv = [
        "predict-slides",
        str(manifest),
        "--out",
        str(out),
        "--workers",
        "2",
        "--detector",
        "tests.slide_detectors:tile_centres",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 4 slides failed") and "broken" in last
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["slides"]}
    assert status == {"s0": "done", "second": "done", "broken": "failed", "s2": "done"}
    failed = next(s for s in summary["slides"] if s["status"] == "failed")
    assert "broken.tiff" in failed["error"] and "\n" not in failed["error"]
    for name in ("s0", "second", "s2"):
        document = json.loads((out / name / "cells.json").read_text())
        assert len(document["points"]) >= 1
        assert json.loads((out / name / "cells.geojson").read_text())["type"] == (
            "FeatureCollection"
        )

    # The rerun skips the finished slides and tries the failed one again.
    (manifest.parent / "broken.tiff").unlink()
    synthesize_slide(manifest.parent / "broken.tiff", (1024, 1024), seed=9, progress=False)
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 3, 0)


def test_manifest_errors(tmp_path):
    cases = {
        "name\nx\n": "'slide' column",
        "slide\n\n": "lists no slide",
        "slide,mpp\na.tiff,-1\n": "line 2: mpp",
        "slide,name\na.tiff,x\nb.tiff,x\n": "line 3: name",
    }
    for text, expected in cases.items():
        path = tmp_path / "m.csv"
        path.write_text(text)
        with pytest.raises(SlideError, match=expected):
            read_manifest(path)
    with pytest.raises(SlideError, match="cannot read the manifest"):
        read_manifest(tmp_path / "absent.csv")
