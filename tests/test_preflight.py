"""``preflight`` on deliberately broken images, and the pieces it is made of.

The broken images are built here from a tiny Dockerfile on the Python base image (no project code,
no torch), one build argument choosing how the entry misbehaves, so each builds in seconds. Each
must fail with exit status 1 and a last line naming what to fix; a well-behaved one must pass,
so that the checks are seen to tell the two apart. preflight on the real images (the baseline and
the classical example) is in tests/test_algorithm_container.py.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from baseline_algorithm.cli import main
from baseline_algorithm.platform import (
    RunLimits,
    docker_run_arguments,
    docker_sdk_arguments,
    memory_bytes,
)
from baseline_algorithm.preflight import (
    Check,
    ContainerRun,
    ImageFacts,
    checklist,
    exit_reason,
    verdict,
)

REPO = Path(__file__).resolve().parents[1]
TEST_INPUT = REPO / "test_data" / "input"

#: The entry of the broken images; MODE says how it misbehaves.
ENTRY = textwrap.dedent("""
    import json, os, socket, sys, time
    mode = os.environ["MODE"]
    pairs = len(json.load(open("/input/metadata.json")))
    points = [{"name": f"image_{k % pairs}", "point": [10 + k, 20 + k, 1 + k % 2],
               "probability": 0.5} for k in range(20)]
    print(f"entry: pair 1/{pairs} (image_0), 0.0 s since the first", file=sys.stderr, flush=True)
    if mode == "invalid":
        points[12]["point"][0] = 1024
    elif mode == "missing":
        sys.exit(0)
    elif mode == "crash":
        raise RuntimeError("the model file is corrupt")
    elif mode == "memory":
        hog = bytearray(512 * 1024 * 1024)
    elif mode == "slow":
        time.sleep(120)
    elif mode == "network":
        socket.create_connection(("203.0.113.1", 443), timeout=5)
    elif mode == "names":
        points[3]["name"] = f"image_{pairs}"
    elif mode == "write-elsewhere":
        open("/home/results.json", "w").write("{}")
    document = {"type": "Multiple points", "points": points, "version": {"major": 1, "minor": 0}}
    json.dump(document, open("/output/cell_classification.json", "w"))
""")
DOCKERFILE = textwrap.dedent("""
    ARG BASE_IMAGE
    FROM ${BASE_IMAGE}
    COPY entry.py /entry.py
    ARG MODE
    ENV MODE=${MODE}
    ARG RUN_AS=nobody
    USER ${RUN_AS}
    ENTRYPOINT ["python3", "/entry.py"]
""")


@pytest.fixture(scope="module")
def broken_image(docker_client, base_image, tmp_path_factory):
    """Build (once per mode and user) the tiny image that misbehaves as ``mode`` says."""
    context = tmp_path_factory.mktemp("broken-image")
    (context / "entry.py").write_text(ENTRY)
    (context / "Dockerfile").write_text(DOCKERFILE)
    built = {}

    def build(mode: str, run_as: str = "nobody") -> str:
        tag = f"ocelot-preflight-test:{mode}-{run_as}"
        if tag not in built:
            docker_client.images.build(
                path=str(context),
                tag=tag,
                rm=True,
                buildargs={"BASE_IMAGE": base_image, "MODE": mode, "RUN_AS": run_as},
            )
            built[tag] = True
        return tag

    yield build
    for tag in built:
        docker_client.images.remove(tag, force=True)


def preflight(capsys, image: str, *options: str) -> tuple[int, list[str]]:
    if not TEST_INPUT.is_dir():
        pytest.skip(f"{TEST_INPUT} is missing")
    status = main(["preflight", image, "--input", str(TEST_INPUT), *options])
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip().splitlines()


@pytest.mark.docker
def test_well_behaved_image_passes(capsys, broken_image):
    status, lines = preflight(capsys, broken_image("none"))
    assert status == 0, "\n".join(lines)
    assert lines[-1].startswith("preflight: passed all"), lines[-1]
    assert any("user nobody" in line for line in lines)
    assert any("20 points, valid" in line for line in lines)
    assert any("first pair after" in line for line in lines)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("mode", "options", "expected"),
    [
        ("invalid", (), "points[12].point[0]: x must be an integer in 0..1023, got 1024"),
        ("missing", (), "wrote no /output/cell_classification.json"),
        ("crash", (), "exited with status 1: RuntimeError: the model file is corrupt"),
        ("memory", ("--memory", "128m"), "killed: out of memory at 128 MB"),
        (
            "slow",
            ("--time-limit", "3"),
            "too slow: stopped at the time limit of 3 s while on pair 1",
        ),
        ("network", (), "tried to reach the network"),
        ("names", (), "points[3].name: image_3 is outside the input's 3 pairs"),
        ("write-elsewhere", (), "wrote outside /output"),
    ],
)
def test_broken_image_fails_with_one_clear_line(capsys, broken_image, mode, options, expected):
    status, lines = preflight(capsys, broken_image(mode), *options)
    assert status == 1
    assert lines[-1].startswith("preflight: FAILED"), lines[-1]
    assert expected in lines[-1], lines[-1]


@pytest.mark.docker
def test_image_running_as_root_fails(capsys, broken_image):
    status, lines = preflight(capsys, broken_image("none", run_as="root"))
    assert status == 1
    assert "FAILED (image): runs as root" in lines[-1], lines[-1]


@pytest.mark.docker
def test_ground_truth_adds_the_scores(capsys, broken_image):
    status, lines = preflight(
        capsys,
        broken_image("none"),
        "--ground-truth",
        str(REPO / "test_data" / "ground_truth" / "cell_gt.json"),
    )
    assert status == 0, "\n".join(lines)
    assert any(line.strip().startswith("ok    scores: mF1 ") for line in lines), lines


@pytest.mark.docker
def test_missing_image_is_a_usage_error(capsys, docker_client):
    status, lines = preflight(capsys, "ocelot-preflight-test:no-such-image")
    assert status == 2
    assert lines[-1].startswith("error: image 'ocelot-preflight-test:no-such-image' not found")


# --- without Docker: the flags and the wording of the verdicts ---


def test_flags_are_the_organisers(tmp_path):
    arguments = " ".join(docker_run_arguments(tmp_path / "in", tmp_path / "out"))
    for flag in (
        "--network none",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--memory 4g",
        "--memory-swap 4g",
        "--shm-size 128m",
        "--pids-limit 256",
        "--read-only",
        f"{tmp_path / 'in'}:/input:ro",
        f"{tmp_path / 'out'}:/output:rw",
    ):
        assert flag in arguments
    sdk = docker_sdk_arguments()
    assert sdk["network_mode"] == "none" and sdk["mem_limit"] == sdk["memswap_limit"] == "4g"
    assert sdk["pids_limit"] == 256 and sdk["read_only"] is True
    assert "--gpus all" in " ".join(docker_run_arguments(tmp_path, tmp_path, RunLimits(gpus=True)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4g", 4 * 1024**3), ("512m", 512 * 1024**2), ("1024", 1024), ("1.5g", int(1.5 * 1024**3))],
)
def test_memory_notation(text, expected):
    assert memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "4x", "g", "four"])
def test_bad_memory_notation(text):
    with pytest.raises(ValueError, match="memory limit"):
        memory_bytes(text)


def _run(tmp_path, **changes) -> ContainerRun:
    fields = dict(
        exit_code=0,
        oom_killed=False,
        timed_out=False,
        wall_s=10.0,
        peak_memory_bytes=10**9,
        log=[(0.5, "predict: pair 1/2 (image_0)")],
        output=tmp_path,
    )
    fields.update(changes)
    return ContainerRun(**fields)


def _write_output(tmp_path, points) -> None:
    (tmp_path / "cell_classification.json").write_text(
        json.dumps(
            {"type": "Multiple points", "points": points, "version": {"major": 1, "minor": 0}}
        )
    )


def test_verdict_names_the_first_failure(tmp_path):
    run = _run(tmp_path, exit_code=137, oom_killed=True)
    checks = checklist(
        ImageFacts(10**9, "algorithm"), "image", run, pairs=2, limits=RunLimits(), time_limit_s=60
    )
    assert [check.passed for check in checks] == [True, False, True, False, False, None]
    assert verdict(checks) == (
        "preflight: FAILED (exit status): killed: out of memory at 4 GB; "
        "hold fewer pairs (or a smaller batch) in memory at once"
    )


def test_checks_pass_on_a_good_run(tmp_path):
    _write_output(tmp_path, [{"name": "image_1", "point": [5, 6, 2], "probability": 0.25}])
    checks = checklist(
        ImageFacts(10**9, "1000:1000"),
        "image",
        _run(tmp_path),
        pairs=2,
        limits=RunLimits(),
        time_limit_s=60,
    )
    assert all(check.passed for check in checks), [c.line() for c in checks]
    assert "first pair after 0.5 s, then 4.75 s per pair" in checks[2].figure
    assert verdict(checks) == "preflight: passed all 6 checks"


def test_exit_reason_quotes_the_last_line(tmp_path):
    run = _run(
        tmp_path, exit_code=2, log=[(0.1, "loading"), (0.2, "error: weights.pt: no such file")]
    )
    assert (
        exit_reason(run, RunLimits(), 60) == "exited with status 2: error: weights.pt: no such file"
    )


def test_skipped_check_line():
    assert Check("scores", None, "no output").line() == "  skip  scores: no output"
