"""leaderboard.html as an organiser sees it: opened in headless Chromium, screenshot taken.

Needs Debian's ``chromium`` package: see the ``chromium`` fixture in ``conftest.py``.
"""

from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from evaluation.ground_truth import GroundTruth
from evaluation.leaderboard import build_leaderboard, find_submissions, write_leaderboard
from evaluation.leaderboard.page import SIGNIFICANCE_COLOURS
from tests.leaderboard_data import ground_truth, submission, write_points
from tests.test_report_screenshot import colour_pixels, run_chromium

NUM_IMAGES = 20
WINDOW = (1280, 2400)


@pytest.fixture(scope="module")
def leaderboard_page(tmp_path_factory):
    """Ten submissions from weak to strong, one of them failed; organs known."""
    folder = tmp_path_factory.mktemp("leaderboard_page")
    truth = ground_truth(NUM_IMAGES, 40, seed=3)
    rng = np.random.default_rng(4)
    submissions = folder / "submissions"
    submissions.mkdir()
    for k in range(9):
        found = rng.random(len(truth)) < 0.45 + 0.05 * k
        write_points(
            submissions / f"team_{chr(ord('a') + k)}.json",
            submission(truth, found, wrong_class=rng.random(len(truth)) < 0.1, spurious=40, seed=k),
        )
    (submissions / "<broken>.json").write_text('{"points": 1}')
    organs = ["kidney", "bladder"] * (NUM_IMAGES // 2)
    leaderboard = build_leaderboard(
        find_submissions(submissions),
        GroundTruth(truth, NUM_IMAGES, "generated", organs=organs),
        replicates=300,
    )
    write_leaderboard(leaderboard, folder / "out")
    return folder / "out" / "leaderboard.html"


class PageParts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def rendered(chromium, profile, page):
    completed = run_chromium(chromium, profile, "--dump-dom", page.as_uri())
    assert completed.returncode == 0, completed.stderr[-2000:]
    parts = PageParts()
    parts.feed(completed.stdout)
    return parts


def test_every_figure_decodes_and_names_are_escaped(chromium, leaderboard_page, tmp_path):
    parts = rendered(chromium, tmp_path / "profile", leaderboard_page)
    assert [image.get("alt") for image in parts.images] == [
        "blob plot of bootstrap ranks",
        "significance map",
        "per-image mF1",
    ]
    assert [image.get("data-rendered") for image in parts.images] == ["yes"] * 3
    text = "".join(parts.text)
    assert "<broken>" in text and 'points" must be a list' in text  # shown as text, not markup
    assert "Ranking per organ" in text


def test_a_corrupt_figure_is_caught(chromium, leaderboard_page, tmp_path):
    html = leaderboard_page.read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(html[:start] + "AAAA" + html[start + 4 :])
    parts = rendered(chromium, tmp_path / "profile", broken)
    assert [image.get("data-rendered") for image in parts.images].count("no") == 1


def test_screenshot_shows_the_table_and_the_figures(chromium, leaderboard_page, tmp_path):
    screenshot_path = tmp_path / "leaderboard.png"
    completed = run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot_path}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        leaderboard_page.as_uri(),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    screenshot = np.asarray(Image.open(screenshot_path).convert("RGB"))
    assert screenshot.shape == (WINDOW[1], WINDOW[0], 3)
    assert screenshot.std() > 20  # not a blank page
    # Both colours of the significance map were painted: some pairs differ, some do not.
    for colour in (SIGNIFICANCE_COLOURS["better"], SIGNIFICANCE_COLOURS["not"]):
        assert colour_pixels(screenshot, colour, tolerance=8) > 2000, colour
