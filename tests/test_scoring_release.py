"""Ground truth from an OCELOT release folder, organs from release or Grand Challenge metadata."""

import json

import numpy as np
import pytest

from evaluation import DataError
from evaluation.metadata import read_organs
from evaluation.release import read_cell_csv, read_ground_truth, read_release_ground_truth


def make_release(root, split="val", cells=None, pairs=None):
    """A minimal release folder: annotations/<split>/cell/<stem>.csv and metadata.json."""
    cells = cells if cells is not None else {"010": "5,6,2\n", "001": "1,2,1\n3,4,2\n", "003": ""}
    folder = root / "annotations" / split / "cell"
    folder.mkdir(parents=True)
    for stem, text in cells.items():
        (folder / f"{stem}.csv").write_text(text)
    if pairs is None:
        pairs = {stem: {"organ": f"organ{stem}", "subset": split} for stem in cells}
        pairs["002"] = {"organ": "other", "subset": "train"}
    (root / "metadata.json").write_text(json.dumps({"sample_pairs": pairs}))
    return root


def test_images_are_numbered_in_sorted_csv_order(tmp_path):
    make_release(tmp_path)
    truth = read_release_ground_truth(tmp_path, "val")
    points, num_images, stems = truth.points, truth.num_images, truth.stems
    assert num_images == 3 and stems == ["001", "003", "010"] and truth.organs is None
    np.testing.assert_array_equal(points.image, [0, 0, 2])
    np.testing.assert_array_equal(points.xy, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(points.label, [1, 2, 2])
    np.testing.assert_array_equal(points.probability, [1.0, 1.0, 1.0])


def test_order_is_string_order_and_hidden_files_are_skipped(tmp_path):
    make_release(tmp_path, cells={"9": "1,1,1\n", "10": "2,2,1\n", ".hidden": "3,3,1\n"})
    truth = read_release_ground_truth(tmp_path, "val")
    points, num_images, stems = truth.points, truth.num_images, truth.stems
    assert stems == ["10", "9"] and num_images == 2
    np.testing.assert_array_equal(points.xy, [[2, 2], [1, 1]])


def test_read_ground_truth_accepts_folder_or_document(tmp_path):
    make_release(tmp_path / "release")
    truth = read_ground_truth(tmp_path / "release", split="val")
    assert truth.num_images == 3 and truth.stems == ["001", "003", "010"]
    assert truth.source == f"{tmp_path / 'release'} (split val)"
    with pytest.raises(DataError, match="needs a split"):
        read_ground_truth(tmp_path / "release")
    (tmp_path / "gt.json").write_text(json.dumps({"points": [], "num_images": 2}))
    truth = read_ground_truth(tmp_path / "gt.json")
    assert (truth.num_images, truth.stems, truth.source) == (2, None, str(tmp_path / "gt.json"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1,2\n", 'line 1: expected three integers x,y,label, got "1,2"'),
        ("1,2,1\n\n", 'line 2: expected three integers x,y,label, got ""'),
        ("1,2,1\n1.5,2,1\n", 'line 2: expected three integers x,y,label, got "1.5,2,1"'),
        ("1024,2,1\n", "line 1: x must be an integer in 0..1023, got 1024"),
        ("1,-2,1\n", "line 1: y must be an integer in 0..1023, got -2"),
        ("1,2,3\n", "line 1: label must be 1 (BC) or 2 (TC), got 3"),
    ],
)
def test_bad_csv_lines_name_file_and_line(tmp_path, text, expected):
    path = tmp_path / "001.csv"
    path.write_text(text)
    with pytest.raises(DataError) as raised:
        read_cell_csv(path)
    assert str(raised.value) == f"{path}: {expected}"


def test_csv_fields_are_read_with_int_like_the_organisers(tmp_path):
    path = tmp_path / "001.csv"
    path.write_text(" 7, 8 ,1\r\n2000,3,2")
    np.testing.assert_array_equal(read_cell_csv(path, whole_slide=True), [[7, 8, 1], [2000, 3, 2]])
    path.write_bytes(b"1,2,\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_cell_csv(path)


def test_missing_split_folder(tmp_path):
    make_release(tmp_path)
    with pytest.raises(DataError, match="not an OCELOT release folder for split 'test'"):
        read_release_ground_truth(tmp_path, "test")
    with pytest.raises(DataError, match="split must be one of"):
        read_release_ground_truth(tmp_path, "validation")


def test_organs_from_release_metadata_with_stems_or_split(tmp_path):
    make_release(tmp_path)
    metadata = tmp_path / "metadata.json"
    expected = ["organ001", "organ003", "organ010"]
    assert read_organs(metadata, num_images=3, split="val", stems=["001", "003", "010"]) == expected
    assert read_organs(metadata, num_images=3, split="val") == expected
    with pytest.raises(DataError, match="needs a split"):
        read_organs(metadata, num_images=3)
    with pytest.raises(DataError, match="describes 3 images but the ground truth has 4"):
        read_organs(metadata, num_images=4, split="val")


def test_release_metadata_must_agree_with_the_annotations(tmp_path):
    make_release(tmp_path, pairs={"001": {"organ": "kidney", "subset": "train"}})
    metadata = tmp_path / "metadata.json"
    with pytest.raises(
        DataError, match=r'sample_pairs\["001"\]\.subset: expected "val", got "train"'
    ):
        read_organs(metadata, num_images=1, split="val", stems=["001"])
    with pytest.raises(
        DataError, match=r'sample_pairs\["003"\]: missing, but annotations have 003.csv'
    ):
        read_organs(metadata, num_images=1, split="train", stems=["003"])


def test_organs_from_grand_challenge_metadata_list(tmp_path):
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps([{"organ": "kidney"}, {"organ": "bladder"}]))
    assert read_organs(metadata, num_images=2) == ["kidney", "bladder"]
    metadata.write_text(json.dumps([{"organ": "kidney"}, {"slide_name": "x"}]))
    with pytest.raises(DataError, match=r"\[1\]\.organ: must be a string, got null"):
        read_organs(metadata, num_images=2)
    metadata.write_text(json.dumps({"pairs": []}))
    with pytest.raises(DataError, match="expected a Grand Challenge metadata list"):
        read_organs(metadata, num_images=0)
