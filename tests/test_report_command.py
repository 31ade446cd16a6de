"""``python -m evaluation report`` on the committed test_data, and its failure modes."""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evaluation import PointSet, read_points_document, score
from evaluation.cli import main
from evaluation.report import write_report

REPOSITORY = Path(__file__).resolve().parents[1]
TEST_DATA = REPOSITORY / "test_data"
GROUND_TRUTH = TEST_DATA / "ground_truth" / "cell_gt.json"
IMAGES = TEST_DATA / "input"


def predictions_path():
    found = sorted(TEST_DATA.glob("evaluation/input/*/output/cell_classification.json"))
    if not found or not GROUND_TRUTH.is_file():
        pytest.skip(f"test_data is incomplete under {TEST_DATA}")
    return found[0]


class PageParser(HTMLParser):
    """Collects the img tags and the per-image table's rows of a report page."""

    def __init__(self):
        super().__init__()
        self.images, self.table_rows, self._in_images_table = [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table" and attrs.get("id") == "images":
            self._in_images_table = True
        elif tag == "tr" and self._in_images_table:
            self.table_rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_images_table = False


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """The README's command, run as a user runs it (one subprocess, overlays included)."""
    out = tmp_path_factory.mktemp("report")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "report",
            "--predictions",
            predictions_path(),
            "--ground-truth",
            GROUND_TRUTH,
            "--images",
            IMAGES,
            "--out",
            out,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == f"wrote {out / 'report.html'}"
    return out


def test_report_writes_every_file_readable_by_others(report_dir):
    for name in (
        "report.html",
        "report.json",
        "pr_curves.png",
        "f1_threshold.png",
        "per_organ.png",
    ):
        path = report_dir / name
        assert path.stat().st_size > 0
        assert path.stat().st_mode & 0o044 == 0o044 & ~_umask(), name
    assert not list(report_dir.glob(".*.tmp"))


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_report_numbers_are_the_scorers(report_dir):
    predictions, _ = read_points_document(predictions_path(), role="predictions")
    ground_truth, num_images = read_points_document(GROUND_TRUTH, role="ground_truth")
    organs = [entry["organ"] for entry in json.loads((IMAGES / "metadata.json").read_text())]
    expected = score(predictions, ground_truth, num_images, organs=organs).to_dict()
    document = json.loads((report_dir / "report.json").read_text())
    assert document["aggregates"] == expected["aggregates"]
    assert document["results"] == expected["results"]
    assert document["per_organ"] == expected["per_organ"]
    assert document["settings"]["matching"] == "greedy"
    for name in ("BC", "TC"):
        curve = document["classes"][name]["curve"]
        # The lowest threshold keeps every prediction: the leaderboard's counts.
        assert curve["tp"][-1] == expected["aggregates"][f"TP/{name}"]
        assert curve["fp"][-1] == expected["aggregates"][f"FP/{name}"]
        assert 0 <= document["classes"][name]["average_precision"] <= 1
    interval = document["intervals"]["mF1"]
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert set(document["organ_intervals"]) == set(organs)


def test_page_embeds_figures_overlays_and_a_row_per_image(report_dir):
    html = (report_dir / "report.html").read_text()
    parser = PageParser()
    parser.feed(html)
    sources = [image["src"] for image in parser.images]
    # Three charts (PR, F1 vs threshold, organs) and one overlay per image, all inline.
    assert len(sources) == 3 + 3
    assert all(
        re.fullmatch(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=]+", src) for src in sources
    )
    assert parser.table_rows == 1 + 3  # header + images
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    for k in range(3):
        assert f'href="#overlay-image_{k}"' in html and f'id="overlay-image_{k}"' in html


def test_report_is_reproducible(report_dir, tmp_path):
    assert (
        main(
            [
                "report",
                "--predictions",
                str(predictions_path()),
                "--ground-truth",
                str(GROUND_TRUTH),
                "--metadata",
                str(IMAGES / "metadata.json"),
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    first = json.loads((report_dir / "report.json").read_text())
    second = json.loads((tmp_path / "report.json").read_text())
    assert first == second  # same seed, same intervals; overlays do not change the numbers


def test_hungarian_report_never_has_fewer_true_positives(tmp_path, capsys):
    assert (
        main(
            [
                "report",
                "--predictions",
                str(predictions_path()),
                "--ground-truth",
                str(GROUND_TRUTH),
                "--out",
                str(tmp_path),
                "--matching",
                "hungarian",
                "--replicates",
                "50",
                "--quiet",
            ]
        )
        == 0
    )
    assert "hungarian matching" in capsys.readouterr().out
    document = json.loads((tmp_path / "report.json").read_text())
    predictions, _ = read_points_document(predictions_path(), role="predictions")
    ground_truth, num_images = read_points_document(GROUND_TRUTH, role="ground_truth")
    greedy = score(predictions, ground_truth, num_images).aggregates
    assert document["settings"]["matching"] == "hungarian"
    for name in ("BC", "TC"):
        assert document["aggregates"][f"TP/{name}"] >= greedy[f"TP/{name}"]
    # No organs were given: no organ chart, and the page says how to get one.
    assert not (tmp_path / "per_organ.png").exists()
    assert "Organs unknown" in (tmp_path / "report.html").read_text()


def test_degenerate_inputs_still_give_a_page(tmp_path):
    write_report(
        PointSet.empty(), PointSet.empty(), 0, tmp_path / "none", replicates=20, progress=False
    )
    _, num_images = read_points_document(GROUND_TRUTH, role="ground_truth")
    ground_truth, _ = read_points_document(GROUND_TRUTH, role="ground_truth")
    analysis = write_report(
        PointSet.empty(),
        ground_truth,
        num_images,
        tmp_path / "nothing",
        replicates=20,
        progress=False,
    )
    assert analysis.score.aggregates["mF1"] == 0.0
    document = json.loads((tmp_path / "nothing" / "report.json").read_text())
    assert document["classes"]["BC"]["best"]["threshold"] is None
    assert (tmp_path / "nothing" / "pr_curves.png").stat().st_size > 0
    assert (tmp_path / "none" / "report.html").stat().st_size > 0


@pytest.mark.parametrize(
    "case",
    [
        "missing predictions",
        "bad point",
        "too few images",
        "not an images folder",
        "radius without mpp",
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    predictions = predictions_path()
    arguments = {"--predictions": predictions, "--ground-truth": GROUND_TRUTH}
    if case == "missing predictions":
        arguments["--predictions"] = tmp_path / "absent.json"
        expected = "absent.json"
    elif case == "bad point":
        document = json.loads(predictions.read_text())
        document["points"][4]["point"][0] = 5000
        arguments["--predictions"] = tmp_path / "bad.json"
        arguments["--predictions"].write_text(json.dumps(document))
        expected = "points[4].point[0]"
    elif case == "too few images":
        document = json.loads(GROUND_TRUTH.read_text())
        document["num_images"] = 2
        document["points"] = [p for p in document["points"] if p["name"] != "image_2"]
        arguments["--ground-truth"] = tmp_path / "gt2.json"
        arguments["--ground-truth"].write_text(json.dumps(document))
        arguments["--predictions"] = tmp_path / "pred2.json"
        arguments["--predictions"].write_text(
            json.dumps({**json.loads(predictions.read_text()), "points": []})
        )
        arguments["--metadata"] = tmp_path / "metadata.json"
        arguments["--metadata"].write_text(json.dumps([{"organ": "kidney"}] * 2))
        arguments["--images"] = IMAGES
        expected = "holds 3 image pairs but the ground truth has 2 images"
    elif case == "not an images folder":
        arguments["--images"] = tmp_path
        expected = "not a Grand Challenge input folder"
    else:
        arguments["--radius-um"] = 3
        expected = "--radius-um needs --mpp"
    out = tmp_path / "out"
    status = main(
        [
            "report",
            *[str(item) for pair in arguments.items() for item in pair],
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert status == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and expected in stderr, stderr
    assert not out.exists()
