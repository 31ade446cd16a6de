"""The report as a user sees it: opened in headless Chromium, screenshot taken, figures decoded.

Needs Debian's ``chromium`` package (``.ci/run`` installs it): see the ``chromium`` fixture in
``conftest.py``.
"""

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation import read_points_document
from evaluation.metadata import read_organs
from evaluation.report import write_report
from evaluation.report.figures import CLASS_COLOURS

REPOSITORY = Path(__file__).resolve().parents[1]
TEST_DATA = REPOSITORY / "test_data"
WINDOW = (1280, 2000)


def run_chromium(chromium, profile, *arguments):
    """Chromium with no network, no first-run work and a throw-away profile."""
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *map(str, arguments),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    predictions_files = sorted(TEST_DATA.glob("evaluation/input/*/output/cell_classification.json"))
    if not predictions_files:
        pytest.skip(f"test_data is incomplete under {TEST_DATA}")
    predictions, _ = read_points_document(predictions_files[0], role="predictions")
    ground_truth, num_images = read_points_document(
        TEST_DATA / "ground_truth" / "cell_gt.json", role="ground_truth"
    )
    organs = read_organs(TEST_DATA / "input" / "metadata.json", num_images=num_images)
    out = tmp_path_factory.mktemp("report")
    write_report(
        predictions,
        ground_truth,
        num_images,
        out,
        organs=organs,
        images=TEST_DATA / "input",
        replicates=200,
        progress=False,
    )
    return out / "report.html"


class ImageTags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.tags.append(dict(attrs))


def rendered_images(chromium, profile, page):
    """The img tags of the page's DOM after Chromium loaded it (the page marks data-rendered)."""
    completed = run_chromium(chromium, profile, "--dump-dom", page.as_uri())
    assert completed.returncode == 0, completed.stderr[-2000:]
    parser = ImageTags()
    parser.feed(completed.stdout)
    return parser.tags


def test_every_figure_decodes_in_chromium(chromium, report_page, tmp_path):
    tags = rendered_images(chromium, tmp_path / "profile", report_page)
    assert len(tags) == 3 + 3  # PR curves, F1 vs threshold, per organ; one overlay per image
    assert [tag.get("data-rendered") for tag in tags] == ["yes"] * len(tags)


def test_a_corrupt_figure_is_caught(chromium, report_page, tmp_path):
    # The check above must be able to fail: break one embedded PNG and look again.
    html = report_page.read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(html[:start] + "AAAA" + html[start + 4 :])
    tags = rendered_images(chromium, tmp_path / "profile", broken)
    assert [tag.get("data-rendered") for tag in tags].count("no") == 1


def colour_pixels(screenshot: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(screenshot.astype(int) - target).max(axis=-1) <= tolerance))


def test_screenshot_shows_the_charts(chromium, report_page, tmp_path):
    screenshot_path = tmp_path / "report.png"
    completed = run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot_path}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        report_page.as_uri(),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    screenshot = np.asarray(Image.open(screenshot_path).convert("RGB"))
    assert screenshot.shape == (WINDOW[1], WINDOW[0], 3)
    assert screenshot.std() > 20  # not a blank page
    # The class colours appear only in the charts: the PR curves and F1 curves were painted.
    for name in ("BC", "TC"):
        assert colour_pixels(screenshot, CLASS_COLOURS[name]) > 500, name
