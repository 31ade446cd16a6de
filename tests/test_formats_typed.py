"""The typed parser (msgspec) accepts and refuses exactly what the full reader
does, with the same values and the same error line: checked on documents written token by token,
the edge cases of JSON numbers, strings, whitespace and keys included."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evaluation import multiple_points as formats
from evaluation.errors import OcelotError
from evaluation.multiple_points import points_document, read_points_document
from evaluation.points import PointSet

WHITESPACE = st.sampled_from(["", " ", "\n", "\t", "\r", "  \n  ", "\x0c", "\u00a0"])
INTEGERS = st.one_of(
    st.integers(-3, 80_000).map(str),
    st.sampled_from(
        [
            "-0",
            "1.0",
            "1e2",
            "01",
            "2E0",
            "1024",
            "16777216",
            "true",
            "null",
            '"5"',
            "9223372036854775808",
            "18446744073709551616",
            "9" * 30,
            "[1]",
        ]
    ),
)
PROBABILITIES = st.one_of(
    st.floats(0, 1).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "0",
            "1",
            "-0",
            "-0.0",
            "5E-1",
            "1e-1",
            "0.5e0",
            "1.0000000000000001",
            "0." + "1" * 400,
            "1e400",
            "-1e-400",
            "NaN",
            "Infinity",
            "true",
            '"0.5"',
            "null",
            "1.5",
            "-0.5",
        ]
    ),
)
NAMES = st.one_of(
    st.from_regex(r'"image_[0-9]{1,3}"', fullmatch=True),
    st.sampled_from(
        [
            '"image_\\u0037"',
            '"image_007"',
            '"image_"',
            '"Image_1"',
            '"image_1 "',
            '"image_\\u0663"',
            '"image_1\\n"',
            "7",
            "null",
            '"image_\x01"',
            '"image_99999999999999999999"',
            '"image_\\ud800"',
        ]
    ),
)
VALUES = st.one_of(  # the values of other top-level keys: anything JSON allows, and a bit more
    st.sampled_from(
        [
            '"Multiple points"',
            '{"major": 1, "minor": 0}',
            "null",
            "[]",
            "{}",
            "9" * 4300,
            "-" + "9" * 4300,
            "9" * 4301,
            "1e400",
            "1.8e308",
            "-1e-400",
            '"\\ud800"',
            '"a\x7fb"',
            '"a\nb"',
            "NaN",
            '[1, {"a": [true, false]}]',
            "[" * 50 + "]" * 50,
            "1E+2",
            "01",
            '"\\x"',
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
)
KEYS = ["name", "point", "probability"]


@st.composite
def entry_text(draw):
    values = {
        "name": draw(NAMES),
        "point": "[{}]".format(
            ",".join(
                draw(WHITESPACE) + draw(INTEGERS)
                for _ in range(draw(st.sampled_from([3, 3, 3, 2, 4])))
            )
        ),
        "probability": draw(PROBABILITIES),
    }
    keys = draw(st.permutations(KEYS))
    if draw(st.integers(0, 9)) == 0:
        keys = keys[:-1]
    if draw(st.integers(0, 9)) == 0:
        keys = [*keys, draw(st.sampled_from([*KEYS, "extra", "n\\u0061me"]))]
    members = []
    for key in keys:
        value = values.get(key.replace("\\u0061", "a"), "1")
        if draw(st.integers(0, 9)) == 0 and key in values:
            value = values[draw(st.sampled_from(KEYS))]  # a value of the wrong field
        members.append(f'"{key}"{draw(WHITESPACE)}:{draw(WHITESPACE)}{value}')
    return "{" + ",".join(members) + "}" if draw(st.integers(0, 29)) else draw(VALUES)


@st.composite
def document_text(draw):
    entries = draw(st.lists(entry_text(), max_size=4))
    members = {"points": "[" + f",{draw(WHITESPACE)}".join(entries) + "]"}
    for key in ("type", "version", "num_images", "extra"):
        if draw(st.booleans()):
            members[key] = draw(st.one_of(VALUES, st.integers(-2, 6).map(str)))
    order = draw(st.permutations(list(members)))
    if draw(st.integers(0, 9)) == 0:
        order = [*order, draw(st.sampled_from(order))]  # a duplicated key: the last one counts
    text = "{" + ",".join(f'"{key}":{draw(WHITESPACE)}{members[key]}' for key in order) + "}"
    return draw(WHITESPACE) + text + draw(st.sampled_from(["", "\n", " x", ","]))


def outcome(path, **options):
    """What the reader makes of a file: its arrays (with dtypes), or its error line.

    Every refusal counts, a bound's (``LimitError``) as much as a format error's."""
    try:
        points, num_images = read_points_document(path, **options)
    except OcelotError as error:
        return "refused", str(error)
    return (
        "accepted",
        num_images,
        *(
            (array.dtype.str, array.tolist())
            for array in (points.image, points.xy, points.label, points.probability)
        ),
    )


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    text=document_text(),
    role=st.sampled_from(["predictions", "ground_truth"]),
    whole_slide=st.booleans(),
    num_images=st.sampled_from([None, 5]),
)
# Draws that once escaped the oracle: num_images over its bound, refused by both readers.
@example(
    text='{"points":[],"type":"Multiple points","num_images":100001}',
    role="ground_truth",
    whole_slide=False,
    num_images=None,
)
@example(
    text='{"points":[],"num_images":' + "9" * 4300 + "}",
    role="ground_truth",
    whole_slide=False,
    num_images=None,
)
def test_typed_and_full_reader_agree(tmp_path, monkeypatch, text, role, whole_slide, num_images):
    path = tmp_path / "document.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    options = {
        "role": role,
        "whole_slide": whole_slide,
        "num_images": num_images if role == "predictions" else None,
    }
    with monkeypatch.context() as patch:
        patch.setattr(formats, "TYPED_PARSER_MIN_BYTES", 0)
        typed = outcome(path, **options)
    with monkeypatch.context() as patch:
        patch.setattr(formats, "TYPED_PARSER_MIN_BYTES", float("inf"))
        full = outcome(path, **options)
    assert typed == full


@pytest.mark.parametrize(
    "dumps",
    [
        lambda document: json.dumps(document),
        lambda document: json.dumps(document, separators=(",", ":")),
        lambda document: json.dumps(document, indent=2),
    ],
)
@pytest.mark.parametrize("role", ["predictions", "ground_truth"])
def test_typed_path_takes_valid_documents_itself(tmp_path, dumps, role):
    """Valid documents as writers lay them out do not fall back to the full parser."""
    rng = np.random.default_rng(0)
    count = 5000
    expected = PointSet.from_arrays(
        rng.integers(0, 7, count),
        rng.integers(0, 1024, (count, 2)),
        rng.integers(1, 3, count),
        rng.random(count) if role == "predictions" else np.ones(count),
    )
    path = tmp_path / "document.json"
    path.write_text(dumps(points_document(expected, 7 if role == "ground_truth" else None)))
    typed = formats._read_points_typed(
        path.read_bytes(), str(path), role, formats.PATCH_COORDINATE_MAX, None
    )
    assert typed is not None
    points, num_images = typed
    assert num_images == (7 if role == "ground_truth" else None)
    for field in ("image", "xy", "label", "probability"):
        assert np.array_equal(getattr(points, field), getattr(expected, field))
        assert getattr(points, field).dtype == getattr(expected, field).dtype
    assert points.xy.flags.c_contiguous


def test_large_documents_use_the_typed_path_by_default(tmp_path, monkeypatch):
    count = 40_000
    points = PointSet.from_arrays(
        np.zeros(count, int), np.full((count, 2), 7), np.ones(count, int), np.full(count, 0.25)
    )
    path = tmp_path / "large.json"
    path.write_text(json.dumps(points_document(points)))
    assert path.stat().st_size >= formats.TYPED_PARSER_MIN_BYTES
    monkeypatch.setattr(formats, "parse_json", None)  # the full parser must not be reached
    read, _ = read_points_document(path)
    assert np.array_equal(read.xy, points.xy)
