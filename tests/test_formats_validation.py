"""Reading "Multiple points" documents: each validity rule and JSON failure gives one clear line."""

import json
import os

import numpy as np
import pytest

from evaluation import (
    InputError,
    PointSet,
    points_document,
    points_from_document,
    read_points_document,
    write_json_atomic,
)

# Every case with each parser the reader may use (msgspec, the standard library).
pytestmark = pytest.mark.usefixtures("json_parser")


def entry(name="image_0", point=(10, 20, 1), probability=0.5):
    return {"name": name, "point": list(point), "probability": probability}


def document(*entries, **extra):
    return {
        "type": "Multiple points",
        "points": list(entries),
        "version": {"major": 1, "minor": 0},
        **extra,
    }


def write(tmp_path, content, name="predictions.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def error_of(content, tmp_path, **kwargs):
    path = write(tmp_path, content)
    with pytest.raises(InputError) as raised:
        read_points_document(path, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message[len(str(path)) :]


def test_reads_points_in_file_order(tmp_path):
    path = write(
        tmp_path,
        document(
            entry("image_2", (0, 1023, 2), 1.0),
            entry("image_0", (5, 6, 1), 0.0),
            entry("image_007", (7, 8, 1), 0.25),
        ),
    )
    points, num_images = read_points_document(path)
    assert num_images is None
    np.testing.assert_array_equal(points.image, [2, 0, 7])
    np.testing.assert_array_equal(points.xy, [[0, 1023], [5, 6], [7, 8]])
    np.testing.assert_array_equal(points.label, [2, 1, 1])
    np.testing.assert_array_equal(points.probability, [1.0, 0.0, 0.25])
    assert points.image.dtype == points.xy.dtype == points.label.dtype == np.int64
    assert points.probability.dtype == np.float64


def test_ground_truth_returns_num_images_and_allows_empty_points(tmp_path):
    points, num_images = read_points_document(
        write(tmp_path, document(num_images=3)), role="ground_truth"
    )
    assert len(points) == 0 and num_images == 3
    assert points.xy.shape == (0, 2)


@pytest.mark.parametrize(
    "bad_entry, expected",
    [
        (
            [1, 2, 3],
            ": points[1]: must be an object with keys name, point, probability, got [1, 2, 3]",
        ),
        ({"name": "image_0", "point": [1, 2, 1]}, ': points[1]: missing key "probability"'),
        ({**entry(), "score": 1}, ': points[1]: unexpected key "score"'),
        (entry(name="img_0"), ': points[1].name: must match image_[0-9]+, got "img_0"'),
        (entry(name="image_"), ': points[1].name: must match image_[0-9]+, got "image_"'),
        (entry(name="image_-1"), ': points[1].name: must match image_[0-9]+, got "image_-1"'),
        (entry(name=0), ": points[1].name: must match image_[0-9]+, got 0"),
        (
            {**entry(), "point": [1, 2]},
            ": points[1].point: must be a list [x, y, class] of 3 integers, got [1, 2]",
        ),
        (
            {**entry(), "point": {"x": 1}},
            ': points[1].point: must be a list [x, y, class] of 3 integers, got {"x": 1}',
        ),
        (
            entry(point=(1024, 0, 1)),
            ": points[1].point[0]: x must be an integer in 0..1023, got 1024",
        ),
        (entry(point=(-1, 0, 1)), ": points[1].point[0]: x must be an integer in 0..1023, got -1"),
        (
            entry(point=(1.0, 0, 1)),
            ": points[1].point[0]: x must be an integer in 0..1023, got 1.0",
        ),
        (
            entry(point=(True, 0, 1)),
            ": points[1].point[0]: x must be an integer in 0..1023, got true",
        ),
        (
            entry(point=(0, 1024, 1)),
            ": points[1].point[1]: y must be an integer in 0..1023, got 1024",
        ),
        (
            entry(point=(0, "3", 1)),
            ': points[1].point[1]: y must be an integer in 0..1023, got "3"',
        ),
        (entry(point=(0, 0, 3)), ": points[1].point[2]: class must be 1 (BC) or 2 (TC), got 3"),
        (
            entry(point=(0, 0, True)),
            ": points[1].point[2]: class must be 1 (BC) or 2 (TC), got true",
        ),
        (entry(point=(0, 0, 1.0)), ": points[1].point[2]: class must be 1 (BC) or 2 (TC), got 1.0"),
        (
            entry(probability=1),
            ": points[1].probability: must be a float in [0, 1] written with a decimal point, "
            "got 1",
        ),
        (entry(probability=1.5), ": points[1].probability: must be a float in [0, 1], got 1.5"),
        (entry(probability=-0.1), ": points[1].probability: must be a float in [0, 1], got -0.1"),
        (entry(probability=None), ": points[1].probability: must be a float in [0, 1], got null"),
        (entry(probability=False), ": points[1].probability: must be a float in [0, 1], got false"),
    ],
)
def test_each_validity_rule_names_entry_field_and_value(tmp_path, bad_entry, expected):
    message = error_of(document(entry(), bad_entry), tmp_path)
    assert message.startswith(expected)


def test_long_values_are_cut_short(tmp_path):
    message = error_of(document(entry(name="x" * 500)), tmp_path)
    assert message.endswith('..."') or message.endswith("...")
    assert len(message) < 200


def test_whole_slide_lifts_only_the_coordinate_bound(tmp_path):
    path = write(tmp_path, document(entry(point=(77_000, 1024, 2))))
    points, _ = read_points_document(path, whole_slide=True)
    np.testing.assert_array_equal(points.xy, [[77_000, 1024]])
    assert error_of(document(entry(point=(2**24, 0, 1))), tmp_path, whole_slide=True).startswith(
        ": points[0].point[0]: x must be an integer in 0..16777215 (whole-slide mode), got 16777216"
    )
    assert "class must be" in error_of(
        document(entry(point=(5000, 0, 3))), tmp_path, whole_slide=True
    )
    assert "x must be" in error_of(document(entry(point=(-1, 0, 1))), tmp_path, whole_slide=True)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", ": file is empty"),
        (b"  \n", ": file is empty"),
        (b'{"points": [}', ": not valid JSON: Expecting value at line 1 column 13"),
        (
            b'{"points": [{"name": "image_0", "point": [1, 2, 1], "probability": NaN}]}',
            ": points[0].probability: NaN is not allowed",
        ),
        (b'{"points": [], "x": Infinity}', ": x: Infinity is not allowed"),
        (b'{"points": [], "x": -Infinity}', ": x: -Infinity is not allowed"),
        (b'{"points": [], "x": "\xff"}', ": not UTF-8 text: byte 0xff at offset 21"),
        (b"[" * 100_000 + b"]" * 100_000, ": not valid JSON: nesting too deep to parse"),
        # A non-finite number, and then more wrong with the document after it.
        (b'{"points": [], "x": NaN} x', ": not valid JSON: Extra data at line 1 column 26"),
        (
            b'{"x": NaN, "y": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            ": not valid JSON: nesting too deep to parse",
        ),
        (b'{"points": [], "x": NaN, "x": 1}', ": x: NaN is not allowed"),
        (b"[]", ': top level must be a JSON object with a "points" list, got a list'),
        (b'"points"', ': top level must be a JSON object with a "points" list, got a string'),
        (b'{"type": "Multiple points"}', ': missing key "points"'),
        (b'{"points": {"name": "image_0"}}', ': "points" must be a list, got an object'),
        (b'{"points": null}', ': "points" must be a list, got null'),
    ],
)
def test_broken_json_gives_one_line(tmp_path, content, expected):
    assert error_of(content, tmp_path).startswith(expected)


@pytest.mark.parametrize(
    "num_images, expected",
    [
        (None, ': missing key "num_images"'),
        ("3", ': num_images must be a non-negative integer, got "3"'),
        (-1, ": num_images must be a non-negative integer, got -1"),
        (True, ": num_images must be a non-negative integer, got true"),
        (2.0, ": num_images must be a non-negative integer, got 2.0"),
    ],
)
def test_ground_truth_needs_valid_num_images(tmp_path, num_images, expected):
    extra = {} if num_images is None else {"num_images": num_images}
    assert error_of(document(**extra), tmp_path, role="ground_truth").startswith(expected)


def test_ground_truth_image_outside_num_images(tmp_path):
    message = error_of(
        document(entry("image_1"), entry("image_2"), num_images=2), tmp_path, role="ground_truth"
    )
    assert message == (
        ": points[1].name: image_2 is outside the ground truth's 2 images (image_0..image_1)"
    )


def test_predictions_image_outside_given_num_images(tmp_path):
    message = error_of(document(entry("image_0"), entry("image_5")), tmp_path, num_images=1)
    assert (
        message
        == ": points[1].name: image_5 is outside the ground truth's 1 images (image_0..image_0)"
    )


def test_huge_image_index_is_rejected_not_overflowed(tmp_path):
    assert "image index too large" in error_of(document(entry("image_" + "9" * 30)), tmp_path)


def test_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="missing.json: cannot read file: No such file"):
        read_points_document(tmp_path / "missing.json")
    with pytest.raises(InputError, match="not a regular file"):
        read_points_document(tmp_path)
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        read_points_document("/dev/zero")


def test_points_from_document_names_the_given_source():
    with pytest.raises(InputError, match=r"^job 7 output: points\[0\]\.point\[2\]"):
        points_from_document(document(entry(point=(1, 1, 0))), source="job 7 output")
    with pytest.raises(ValueError, match="role"):
        points_from_document(document(), source="x", role="truth")


def test_points_document_round_trips(tmp_path):
    points = PointSet.from_arrays(
        [0, 3, 3], [[1, 2], [3, 4], [1023, 0]], [1, 2, 1], [0.5, 1.0, 0.0]
    )
    written = points_document(points, num_images=4)
    assert written["type"] == "Multiple points" and written["num_images"] == 4
    assert written["points"][1] == {"name": "image_3", "point": [3, 4, 2], "probability": 1.0}
    assert all(type(value) is int for value in written["points"][2]["point"])
    write_json_atomic(tmp_path / "gt.json", written)
    again, num_images = read_points_document(tmp_path / "gt.json", role="ground_truth")
    assert num_images == 4
    for field in ("image", "xy", "label", "probability"):
        np.testing.assert_array_equal(getattr(again, field), getattr(points, field))
    assert "num_images" not in points_document(points)


def test_write_json_atomic_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_write_json_atomic_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(ValueError):
        write_json_atomic(target, {"a": float("nan")})
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_write_json_atomic_failure_names_the_target_not_the_temporary(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(OSError) as raised:
        write_json_atomic(not_a_folder / "metrics.json", {})
    assert raised.value.filename == str(not_a_folder / "metrics.json")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_point_set_checks_its_arrays():
    assert len(PointSet.empty()) == 0
    with pytest.raises(ValueError, match="shapes"):
        PointSet.from_arrays([0], [[1, 2, 3]], [1], [0.5])
    with pytest.raises(ValueError, match="labels"):
        PointSet.from_arrays([0], [[1, 2]], [3], [0.5])
    with pytest.raises(ValueError, match="probabilities"):
        PointSet.from_arrays([0], [[1, 2]], [1], [1.5])
    with pytest.raises(ValueError, match="coordinates"):
        PointSet.from_arrays([0], [[-1, 2]], [1], [0.5])
    with pytest.raises(ValueError, match="image"):
        PointSet.from_arrays([-1], [[1, 2]], [1], [0.5])
    with pytest.raises(ValueError, match="integers"):
        PointSet.from_arrays([0], [[1.5, 2]], [1], [0.5])
    taken = PointSet.from_arrays([0, 1], [[1, 2], [3, 4]], [1, 2], [0.5, 0.6]).take([1])
    np.testing.assert_array_equal(taken.xy, [[3, 4]])
