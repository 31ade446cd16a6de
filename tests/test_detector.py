"""The detector interface: loading ``MODULE:FACTORY``, the points contract, the failure contract.

The detectors here are modules written into a temporary folder on ``sys.path``, as a participant's
package would be installed: nothing of the project is special-cased for them. The points contract
is checked with hypothesis: any valid points are written exactly (coordinates rounded to the
nearest integer), and any invalid point is refused with exit status 2, no output file and one last
line naming the detector, the pair, the point's index, the field and the value.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baseline_algorithm.cli import main
from baseline_algorithm.detector import (
    DetectorError,
    DetectorFailure,
    load_detector,
    validated_points,
)
from evaluation import read_points_document

REPO = Path(__file__).resolve().parents[1]
TEST_INPUT = REPO / "test_data" / "input"
PAIRS = 3  # pairs of test_data/input

#: A participant's detector whose points the test sets per pair name (module global POINTS).
SCRIPTED = """
POINTS = {}
CALLS = []

class Scripted:
    def __call__(self, pair):
        CALLS.append(pair.name)
        return POINTS.get(pair.name, [])

def make():
    return Scripted()
"""


@pytest.fixture(scope="module")
def participant_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("participant")
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture
def write_module(participant_folder):
    """Write a participant module under a fresh name; returns the name."""

    def write(source: str) -> str:
        name = f"participant_{uuid.uuid4().hex[:10]}"
        (participant_folder / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    return write


@pytest.fixture(scope="module")
def scripted(participant_folder):
    (participant_folder / "scripted_detector.py").write_text(SCRIPTED)
    import scripted_detector

    return scripted_detector


def run_predict(capsys, tmp_path, detector: str, *extra: str) -> tuple[int, list[str], Path]:
    if not TEST_INPUT.is_dir():
        pytest.skip(f"{TEST_INPUT} is missing")
    output = tmp_path / "out" / "cell_classification.json"
    status = main(
        [
            "predict",
            "--quiet",
            "--input",
            str(TEST_INPUT),
            "--output",
            str(output),
            "--detector",
            detector,
            "--device",
            "cpu",
            *extra,
        ]
    )
    return status, capsys.readouterr().err.strip().splitlines(), output


# --- the points contract, with hypothesis ---

coordinate = st.floats(min_value=-0.49, max_value=1023.49, allow_nan=False)
whole_coordinate = st.integers(min_value=0, max_value=1023)
cls = st.sampled_from([1, 2, 1.0, 2.0, np.int64(1), np.int32(2)])
probability = st.one_of(
    st.floats(min_value=0.0, max_value=1.0), st.sampled_from([0, 1, np.float32(0.25)])
)
valid_point = st.tuples(
    st.one_of(coordinate, whole_coordinate, st.just(np.float32(12.5))),
    st.one_of(coordinate, whole_coordinate),
    cls,
    probability,
)
pair_points = st.lists(valid_point, max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(points=st.lists(pair_points, min_size=PAIRS, max_size=PAIRS))
def test_valid_points_are_written_exactly(capsys, tmp_path_factory, scripted, points):
    scripted.POINTS.clear()
    scripted.POINTS.update({f"image_{k}": rows for k, rows in enumerate(points)})
    tmp_path = tmp_path_factory.mktemp("valid")
    status, lines, output = run_predict(capsys, tmp_path, "scripted_detector:make")
    assert status == 0, lines
    written = json.loads(output.read_text())["points"]
    expected = [
        {
            "name": f"image_{k}",
            "point": [round(float(x)), round(float(y)), int(c)],
            "probability": float(p),
        }
        for k, rows in enumerate(points)
        for x, y, c, p in rows
    ]
    assert written == expected
    read_points_document(output, role="predictions")  # and the organisers' rule accepts it


invalid_fields = st.sampled_from(
    [
        ("x", 0, 1024),
        ("x", 0, 1023.51),
        ("x", 0, -0.51),
        ("x", 0, math.nan),
        ("x", 0, math.inf),
        ("x", 0, "12"),
        ("x", 0, None),
        ("y", 1, 5000),
        ("y", 1, True),
        ("y", 1, -3),
        ("class", 2, 0),
        ("class", 2, 3),
        ("class", 2, 1.5),
        ("class", 2, "1"),
        ("class", 2, True),
        ("probability", 3, 1.5),
        ("probability", 3, -0.01),
        ("probability", 3, math.nan),
        ("probability", 3, "0.5"),
        ("probability", 3, None),
    ]
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    points=st.lists(pair_points, min_size=PAIRS, max_size=PAIRS),
    broken=invalid_fields,
    where=st.tuples(st.integers(0, PAIRS - 1), st.integers(0, 11)),
)
def test_an_invalid_point_is_refused(capsys, tmp_path_factory, scripted, points, broken, where):
    field, position, value = broken
    pair, index = where
    rows = list(points[pair]) + [(1.0, 1.0, 1, 0.5)] * (index + 1)
    row = list(rows[index])
    row[position] = value
    rows[index] = tuple(row)
    points = list(points)
    points[pair] = rows
    scripted.POINTS.clear()
    scripted.POINTS.update({f"image_{k}": r for k, r in enumerate(points)})
    tmp_path = tmp_path_factory.mktemp("invalid")
    status, lines, output = run_predict(capsys, tmp_path, "scripted_detector:make")
    assert status == 2
    last = lines[-1]
    assert last.startswith("error: detector scripted_detector:make on image_"), last
    # The first invalid point in input order is the one named: earlier pairs are all valid.
    assert f"on image_{pair}: points[{index}]" in last, last
    field_words = {
        "x": ".point[0]: x",
        "y": ".point[1]: y",
        "class": ".point[2]: class",
        "probability": ".probability:",
    }[field]
    assert field_words in last, last
    shown = {
        1023.51: "1024",
        -0.51: "-1",
        math.inf: "Infinity",
        True: "true",
        None: "null",
        "12": '"12"',
        "1": '"1"',
        "0.5": '"0.5"',
    }
    if isinstance(value, float) and math.isnan(value):
        assert last.endswith("NaN"), last
    else:
        assert last.endswith(f"got {shown.get(value, json.dumps(value))}"), last
    assert not output.exists() and not output.parent.exists()


def test_malformed_row_names_the_point():
    with pytest.raises(
        DetectorError,
        match=r"^detector d:f on image_4: points\[1\]: expected "
        r"\(x, y, cls, probability\), got \[1, 2\]$",
    ):
        validated_points("d:f", 4, [(1, 2, 1, 0.5), (1, 2)])


def test_result_that_is_not_iterable():
    with pytest.raises(
        DetectorError, match="^detector d:f on image_0: returned NoneType, not an iterable"
    ):
        validated_points("d:f", 0, None)


def test_numpy_array_of_points_is_accepted():
    rows = np.array([[10.4, 20.6, 2, 0.75], [0, 1023, 1, 1]])
    points = validated_points("d:f", 2, rows)
    assert points.image.tolist() == [2, 2]
    assert points.xy.tolist() == [[10, 21], [0, 1023]]
    assert points.label.tolist() == [2, 1] and points.probability.tolist() == [0.75, 1.0]


# --- loading MODULE:FACTORY ---


def test_factory_receives_device_and_checkpoint_when_it_accepts_them(write_module, tmp_path):
    name = write_module("""
        SEEN = []
        def make(device, checkpoint):
            SEEN.append((device, checkpoint))
            return lambda pair: []
        def make_bare():
            return lambda pair: []
        def make_any(**options):
            SEEN.append(options)
            return lambda pair: []
    """)
    load_detector(f"{name}:make", device="cpu", checkpoint=tmp_path / "w.bin")
    load_detector(f"{name}:make_bare", device="cpu")
    load_detector(f"{name}:make_any", device="cpu")
    module = sys.modules[name]
    assert module.SEEN == [("cpu", tmp_path / "w.bin"), {"device": "cpu"}]


def test_checkpoint_the_factory_cannot_take_is_refused(write_module, tmp_path):
    name = write_module("def make():\n    return lambda pair: []\n")
    with pytest.raises(DetectorError, match=f"detector {name}:make: a checkpoint was given"):
        load_detector(f"{name}:make", checkpoint=tmp_path / "w.bin")


def test_factory_that_needs_a_checkpoint(write_module):
    name = write_module("def make(checkpoint):\n    return lambda pair: []\n")
    with pytest.raises(DetectorError, match=r"cannot call the factory .*give a checkpoint"):
        load_detector(f"{name}:make")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected MODULE:FACTORY"),
        (":make", "expected MODULE:FACTORY"),
        (
            "module_that_does_not_exist_here:make",
            "no module named 'module_that_does_not_exist_here'",
        ),
    ],
)
def test_bad_spec(spec, message):
    with pytest.raises(DetectorError, match=message):
        load_detector(spec)


def test_missing_factory_and_non_callable_results(write_module):
    name = write_module("VALUE = 3\ndef make():\n    return 42\n")
    with pytest.raises(DetectorError, match=f"module {name} has no 'absent'"):
        load_detector(f"{name}:absent")
    with pytest.raises(DetectorError, match="VALUE is int, not a factory"):
        load_detector(f"{name}:VALUE")
    with pytest.raises(DetectorError, match="the factory returned int, not a callable"):
        load_detector(f"{name}:make")


def test_factory_attribute_path(write_module):
    name = write_module("""
        class Model:
            @classmethod
            def create(cls):
                return cls()
            def __call__(self, pair):
                return []
    """)
    assert type(load_detector(f"{name}:Model.create").detect).__name__ == "Model"


def test_exceptions_in_participant_code_keep_their_traceback(write_module):
    name = write_module("""
        import missing_dependency_of_the_participant
    """)
    with pytest.raises(DetectorFailure) as failure:
        load_detector(f"{name}:make")
    assert "ModuleNotFoundError: No module named 'missing_dependency_of_the_participant'" in str(
        failure.value
    )
    assert f"{name}.py" in failure.value.participant_traceback
    name = write_module("""
        def make():
            raise OSError("weights.bin is missing")
    """)
    with pytest.raises(
        DetectorFailure,
        match=f"detector {name}:make failed while being built: OSError: weights.bin is missing",
    ):
        load_detector(f"{name}:make")


def test_ocelot_errors_of_a_detector_stay_one_line(write_module, capsys, tmp_path):
    """A participant's OcelotError reads as the toolkit's own errors do: one line, no traceback."""
    name = write_module("""
        from evaluation.errors import OcelotError

        class WeightsMissing(OcelotError):
            pass

        def make():
            raise WeightsMissing("weights.bin: not found; bake it in with --checkpoint")
    """)
    status, lines, output = run_predict(capsys, tmp_path, f"{name}:make")
    assert status == 2
    assert lines[-1] == "error: weights.bin: not found; bake it in with --checkpoint"
    assert not any("Traceback" in line for line in lines)
    assert not output.exists()


# --- batching ---


def test_batching_is_opt_in(write_module, capsys, tmp_path):
    name = write_module("""
        BATCHES = []
        class Batched:
            batch_size = 2
            def __call__(self, pair):
                raise AssertionError("detect_batch is used when the detector has it")
            def detect_batch(self, pairs):
                BATCHES.append([p.name for p in pairs])
                return [[(1, 2, 1, 0.5)] for _ in pairs]
        class Short(Batched):
            def detect_batch(self, pairs):
                return [[]]
        def make():
            return Batched()
        def make_short():
            return Short()
        def make_plain():
            return lambda pair: []
    """)
    status, lines, output = run_predict(capsys, tmp_path, f"{name}:make")
    assert status == 0, lines
    assert sys.modules[name].BATCHES == [["image_0", "image_1"], ["image_2"]]
    assert len(read_points_document(output)[0]) == 3
    status, lines, _ = run_predict(capsys, tmp_path, f"{name}:make", "--batch-size", "3")
    assert status == 0 and sys.modules[name].BATCHES[-1] == ["image_0", "image_1", "image_2"]
    status, lines, _ = run_predict(capsys, tmp_path, f"{name}:make_short")
    assert (
        status == 2
        and "detect_batch returned 1 results for 2 pairs (image_0, image_1)" in lines[-1]
    )
    status, lines, _ = run_predict(capsys, tmp_path, f"{name}:make_plain", "--batch-size", "2")
    assert status == 2 and "needs a detect_batch(pairs) method" in lines[-1]


# --- the failure contract in a fresh process, as the platform shows it ---


def test_participant_exception_shows_their_traceback_then_one_line(participant_folder, tmp_path):
    """The traceback ends in the participant's own line; the summary is the last line; exit 2."""
    name = f"participant_{uuid.uuid4().hex[:10]}"
    (participant_folder / f"{name}.py").write_text(
        textwrap.dedent("""
        def detect(pair):
            scale = 0
            return [(1, 1, 1, 1 / scale)]

        def make():
            return detect
    """)
    )
    output = tmp_path / "cell_classification.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "baseline_algorithm",
            "predict",
            "--input",
            str(TEST_INPUT),
            "--output",
            str(output),
            "--detector",
            f"{name}:make",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"PYTHONPATH": f"{participant_folder}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert f'{name}.py", line 4, in detect' in result.stderr
    assert "baseline_algorithm/detector.py" not in result.stderr  # only their frames
    assert lines[-1] == (
        f"error: detector {name}:make raised on image_0: ZeroDivisionError: "
        "division by zero (its traceback is above)"
    )
    assert not output.exists()


def validation_outcome(raw) -> tuple:
    """("points", the arrays) or ("refused", the line) of :func:`validated_points`."""
    try:
        points = validated_points("d:f", 3, raw)
    except DetectorError as error:
        return ("refused", str(error))
    return (
        "points",
        points.image.tolist(),
        points.xy.tolist(),
        points.label.tolist(),
        points.probability.tolist(),
    )


coordinate = st.one_of(
    st.floats(-2, 1026, allow_nan=False),
    st.sampled_from([-0.5, 0.5, 1022.5, 1023.5, 1023.49]),
    st.just(math.nan),
    st.just(math.inf),
)
row = st.tuples(
    coordinate,
    coordinate,
    st.sampled_from([0, 1, 2, 3, 1.0, 2.0, 1.5, -1, math.nan]),
    st.one_of(st.floats(-0.25, 1.25, allow_nan=False), st.just(math.nan), st.just(-0.0)),
)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(rows=st.lists(row, max_size=6), as_integers=st.booleans())
def test_an_array_and_its_tuples_get_the_same_verdict(rows, as_integers):
    """The (N, 4) array path accepts exactly the points the rule accepts entry by entry, and
    refuses the others with the rule's own line (naming the first bad point)."""
    array = np.array(rows, dtype=np.float64).reshape(-1, 4)
    if as_integers:
        finite = np.isfinite(array).all(axis=1)
        array = np.rint(array[finite]).astype(np.int64)
    tuples = [tuple(values) for values in array.tolist()]
    assert validation_outcome(array) == validation_outcome(tuples)


def test_an_array_of_the_wrong_shape_is_one_line():
    with pytest.raises(
        DetectorError,
        match=r"returned an array of shape \(2, 3\), expected "
        r"\(N, 4\)",
    ):
        validated_points("d:f", 0, np.zeros((2, 3)))
    with pytest.raises(DetectorError, match=r"points\[0\]\.point\[0\]"):
        validated_points("d:f", 0, np.array([[True, True, True, True]]))
    assert len(validated_points("d:f", 0, np.zeros((0, 4)))) == 0
