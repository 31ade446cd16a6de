"""Release-layout reader and writer, and their error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from baseline_algorithm.cli import main
from baseline_algorithm.data import synthesize_dataset
from evaluation.errors import DataError, OcelotError
from evaluation.pairs import cell_box_in_tissue, cell_points_in_tissue, tissue_label_at_cells
from evaluation.release import ReleaseDataset


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return synthesize_dataset(
        tmp_path_factory.mktemp("release") / "set", (3, 1, 2), size=64, seed=3, progress=False
    )


def _copy(release: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(release, tmp_path / "copy"))


def test_release_layout_reads_back(release):
    dataset = ReleaseDataset(release, "train")
    assert len(dataset) == 3 and dataset.names == ["001", "002", "003"]
    metadata = json.loads((release / "metadata.json").read_text())["sample_pairs"]
    pairs = list(dataset)  # iteration through __getitem__ stops at IndexError
    assert len(pairs) == 3
    for k, pair in enumerate(pairs):
        assert pair.name == dataset.names[k]
        assert pair.cell_image.shape == pair.tissue_image.shape == (64, 64, 3)
        assert pair.cell_image.dtype == np.uint8
        assert pair.tissue_mask.shape == (64, 64) and set(np.unique(pair.tissue_mask)) <= {
            1,
            2,
            255,
        }
        assert pair.cell_points.dtype == np.int64 and pair.cell_points.shape[1] == 3
        assert pair.meta == metadata[pair.name]
        assert pair.cell_box == cell_box_in_tissue(pair.meta, 64, 64)
    assert len(ReleaseDataset(release, "val")) == 1 and len(ReleaseDataset(release, "test")) == 2
    assert ReleaseDataset(release, "test").names == ["005", "006"]


def test_negative_index_and_out_of_range(release):
    dataset = ReleaseDataset(release, "train")
    assert dataset[-1].name == "003"
    with pytest.raises(IndexError):
        dataset[3]


def test_split_without_annotations_has_no_labels(release, tmp_path):
    root = _copy(release, tmp_path)
    import shutil

    shutil.rmtree(root / "annotations" / "val")
    pair = ReleaseDataset(root, "val")[0]
    assert pair.cell_points.shape == (0, 3) and pair.tissue_mask is None


def test_cell_box_from_offsets():
    assert cell_box_in_tissue({"patch_x_offset": 0.625, "patch_y_offset": 0.125}, 1024, 1024) == (
        512.0,
        0.0,
        768.0,
        256.0,
    )
    with pytest.raises(DataError, match="patch_x_offset"):
        cell_box_in_tissue({"patch_y_offset": 0.5}, 1024, 1024)


def test_cell_points_map_into_the_box():
    box = (100.0, 200.0, 356.0, 456.0)  # a 1024 px cell patch in a 1024 px tissue patch
    xy = np.array([[0, 0], [1023, 1023], [512, 4]])
    mapped = cell_points_in_tissue(xy, box, (1024, 1024))
    np.testing.assert_allclose(mapped, [[100.125, 200.125], [355.875, 455.875], [228.125, 201.125]])
    mask = np.ones((1024, 1024), np.uint8)
    mask[201, 228] = 2
    np.testing.assert_array_equal(tissue_label_at_cells(mask, xy, box, (1024, 1024)), [1, 1, 2])
    # A box partly outside the tissue patch: points mapped outside count as unknown.
    assert tissue_label_at_cells(mask, xy[:1], (-300.0, 0.0, -44.0, 256.0), (1024, 1024))[0] == 255


def _break(root: Path, what: str) -> None:
    if what == "missing tissue image":
        (root / "images/train/tissue/002.jpg").unlink()
    elif what == "missing cell image":
        (root / "images/train/cell/002.jpg").unlink()
    elif what == "metadata entry":
        meta = json.loads((root / "metadata.json").read_text())
        del meta["sample_pairs"]["002"]
        (root / "metadata.json").write_text(json.dumps(meta))
    elif what == "metadata json":
        (root / "metadata.json").write_text("[1, 2")
    elif what == "csv label":
        (root / "annotations/train/cell/001.csv").write_text("1,2,1\n3,4,7\n")
    elif what == "csv text":
        (root / "annotations/train/cell/001.csv").write_text("1,2,1\n3,x,2\n")
    elif what == "csv outside":
        (root / "annotations/train/cell/001.csv").write_text("1,2,1\n64,4,2\n")
    elif what == "missing csv":
        (root / "annotations/train/cell/001.csv").unlink()
    elif what == "mask value":
        from PIL import Image

        Image.fromarray(np.full((64, 64), 3, np.uint8)).save(
            root / "annotations/train/tissue/001.png"
        )
    elif what == "mask shape":
        from PIL import Image

        Image.fromarray(np.ones((32, 64), np.uint8)).save(root / "annotations/train/tissue/001.png")
    elif what == "corrupt image":
        (root / "images/train/cell/001.jpg").write_bytes(b"\xff\xd8 not a jpeg")


BROKEN = {
    "missing tissue image": ("images/train/tissue", "002.jpg"),
    "missing cell image": ("images/train/cell", "002.jpg"),
    "metadata entry": ("metadata.json", '"002"'),
    "metadata json": ("metadata.json", "not valid JSON"),
    "csv label": ("001.csv", "line 2", "label must be 1 (BC) or 2 (TC), got 7"),
    "csv text": ("001.csv", "x"),
    "csv outside": ("001.csv", "line 2", "x must be an integer in 0..63, got 64"),
    "missing csv": ("001.csv", "file not found"),
    "mask value": ("001.png", "value 3"),
    "mask shape": ("001.png", "(32, 64)"),
    "corrupt image": ("001.jpg", "cannot read"),
}


@pytest.mark.parametrize("what", BROKEN)
def test_broken_release_raises_one_line(release, tmp_path, what):
    root = _copy(release, tmp_path)
    _break(root, what)
    with pytest.raises(OcelotError) as error:
        dataset = ReleaseDataset(root, "train")
        for k in range(len(dataset)):
            dataset[k]
    message = str(error.value)
    assert "\n" not in message
    for fragment in BROKEN[what]:
        assert fragment in message, message


def test_stats_command_prints_the_table(release, capsys):
    assert main(["stats", str(release), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("train: 3 pairs")
    assert "inside CA" in out and "TC inside CA" in out and "BC outside CA" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("TC ", "BC "))]
    lines = {row[0]: row[1:] for row in rows if all(token.isdigit() for token in row[1:])}
    total = sum(len(ReleaseDataset(release, "train").cell_points(k)) for k in range(3))
    assert int(lines["TC"][-1]) + int(lines["BC"][-1]) == total


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]
