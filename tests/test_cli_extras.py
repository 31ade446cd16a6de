"""A command run without its extra: its usage, or one line naming the extra, never a traceback.

The base install (``pip install .``) is simulated in a fresh interpreter in which every package of
an extra fails to import, as it does where it is not installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from baseline_algorithm.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
#: Import names of every package the extras bring (pyproject.toml's optional dependencies).
EXTRA_PACKAGES = (
    "PIL",
    "tifffile",
    "imagecodecs",
    "SimpleITK",
    "tqdm",
    "matplotlib",
    "torch",
    "torchvision",
    "segmentation_models_pytorch",
    "skimage",
    "docker",
    "zarr",
    "openslide",
    "dask",
    "distributed",
    "shapely",
)


def run_on_base_install(*argv: str) -> subprocess.CompletedProcess:
    blocker = (
        "import sys\n"
        f"for name in {EXTRA_PACKAGES!r}:\n"
        "    sys.modules[name] = None  # what import finds when the package is not installed\n"
        "from baseline_algorithm.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_on_the_base_install_is_usage_or_the_extra_line(name):
    result = run_on_base_install(name, "--help")
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 0:
        assert result.stdout.startswith(f"usage: ocelot {name}")
        return
    extra = COMMANDS[name].extra
    assert extra is not None, f"{name} needs no extra but failed: {result.stderr}"
    assert result.returncode == 2
    assert re.fullmatch(
        rf"error: ocelot {name} needs the '{extra}' extra \(.+\): "
        rf"pip install 'ocelot-toolkit\[{extra}\]'",
        result.stderr.strip().splitlines()[-1],
    ), result.stderr


def test_predict_without_torch_names_the_algorithm_extra():
    result = run_on_base_install("predict", "--input", str(REPO / "test_data" / "input"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: ocelot predict needs the 'algorithm' extra (")
    )


def test_report_without_matplotlib_names_the_report_extra(tmp_path):
    truth = REPO / "test_data" / "ground_truth" / "cell_gt.json"
    result = run_on_base_install(
        "report",
        "--predictions",
        str(truth),
        "--ground-truth",
        str(truth),
        "--out",
        str(tmp_path / "report"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "report extra" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "report").exists()


def test_score_needs_no_extra(tmp_path):
    truth = REPO / "test_data" / "ground_truth" / "cell_gt.json"
    result = run_on_base_install("score", "--predictions", str(truth), "--ground-truth", str(truth))
    assert result.returncode == 0, result.stderr
    assert "mF1" in result.stdout
