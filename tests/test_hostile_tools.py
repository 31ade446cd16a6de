"""Hostile and careless inputs to the tools beyond the scorer: the leaderboard, the report, the
release readers and the layout writer keep the scorer's contract (one clean line, exit status 2,
nothing half-written or replaced, bounded memory).

The evaluation entry's cases (NUL bytes, over-long image names) are in ``test_gc_entry.py``.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evaluation.bootstrap import bootstrap_f1, image_draw_blocks
from evaluation.cli import main
from evaluation.errors import DataError
from evaluation.files import write_output_set
from evaluation.gc_layout import GrandChallengeWriter, write_evaluation_input
from evaluation.leaderboard import find_submissions, rank_stability
from evaluation.leaderboard.page import blob_plot_png, significance_map_png
from tests.leaderboard_data import ground_truth, submission, write_points
from tests.test_hostile_inputs import last_error_line

REPO = Path(__file__).resolve().parents[1]
NUM_IMAGES = 4


@pytest.fixture
def contest(tmp_path):
    """A ground truth of 4 images and a folder of three valid submissions."""
    truth = ground_truth(NUM_IMAGES, 10, seed=1)
    gt = write_points(tmp_path / "gt.json", truth, NUM_IMAGES)
    folder = tmp_path / "submissions"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        write_points(
            folder / f"team_{k}.json",
            submission(truth, rng.random(len(truth)) < 0.4 + 0.2 * k, seed=k),
        )
    return gt, folder


def leaderboard(folder: Path, gt: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "leaderboard",
            "--submissions-dir",
            str(folder),
            "--ground-truth",
            str(gt),
            "--out",
            str(out),
            "--replicates",
            "50",
            "--workers",
            "1",
            *extra,
        ]
    )


def entries(out: Path) -> dict[str, dict]:
    document = json.loads((out / "leaderboard.json").read_text())
    return {entry["name"]: entry for entry in document["entries"]}


def one_point(name: str = "image_0") -> str:
    return json.dumps({"points": [{"name": name, "point": [32, 32, 1], "probability": 0.5}]})


# ---------------------------------------------------------------------------------------------
# 1. The ground truth is never ranked


@pytest.mark.parametrize("how", ["symlink", "inside"])
def test_the_ground_truth_is_refused_as_a_submission(contest, tmp_path, how):
    gt, folder = contest
    if how == "symlink":
        (folder / "gt.json").symlink_to(gt)
    else:
        gt = gt.rename(folder / "gt.json")
    assert leaderboard(folder, gt, tmp_path / "out") == 0
    board = entries(tmp_path / "out")
    assert board["gt"]["status"] == "failed"
    assert ("symbolic link" if how == "symlink" else "is the ground truth") in board["gt"]["error"]
    assert {name for name, entry in board.items() if entry["status"] == "scored"} == {
        "team_0",
        "team_1",
        "team_2",
    }


# ---------------------------------------------------------------------------------------------
# 2. An over-long image name


def test_an_over_long_image_name_is_one_line_and_one_failed_submission(contest, tmp_path, capsys):
    gt, folder = contest
    long = folder / "long.json"
    long.write_text(one_point("image_" + "1" * 4301))
    assert main(["score", "--predictions", str(long), "--ground-truth", str(gt)]) == 2
    assert "points[0].name: image index too large" in last_error_line(capsys)
    assert leaderboard(folder, gt, tmp_path / "out") == 0
    board = entries(tmp_path / "out")
    assert board["long"]["status"] == "failed" and "too large" in board["long"]["error"]
    assert board["team_2"]["status"] == "scored"


def test_leading_zeros_of_any_length_still_name_their_image(contest, capsys):
    gt, folder = contest
    zeros = folder / "zeros.json"
    zeros.write_text(one_point("image_" + "0" * 5000 + "3"))
    assert main(["score", "--predictions", str(zeros), "--ground-truth", str(gt)]) == 0


# ---------------------------------------------------------------------------------------------
# 4. Names and organs are never mathtext


def test_a_mathtext_name_and_organ_are_drawn_literally(contest, tmp_path, capsys):
    gt, folder = contest
    (folder / "$\\undefinedcommand$.json").write_bytes((folder / "team_1.json").read_bytes())
    assert leaderboard(folder, gt, tmp_path / "out") == 0
    assert entries(tmp_path / "out")["$\\undefinedcommand$"]["status"] == "scored"
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps([{"organ": "$\\foo$"}] * NUM_IMAGES))
    assert (
        main(
            [
                "report",
                "--predictions",
                str(folder / "team_1.json"),
                "--ground-truth",
                str(gt),
                "--metadata",
                str(metadata),
                "--out",
                str(tmp_path / "report"),
                "--replicates",
                "20",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "report" / "per_organ.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# 5. A bound on submissions; figures that do not grow with their square


def test_the_number_of_submissions_is_bounded(contest, tmp_path, capsys, monkeypatch):
    gt, folder = contest
    monkeypatch.setenv("OCELOT_MAX_SUBMISSIONS", "2")
    assert leaderboard(folder, gt, tmp_path / "out") == 2
    line = last_error_line(capsys)
    assert "3 submissions" in line and "OCELOT_MAX_SUBMISSIONS" in line
    assert not (tmp_path / "out").exists()


def png_size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


def test_figures_of_many_submissions_stay_bounded_in_pixels():
    counts = np.random.default_rng(0).integers(0, 20, size=(600, 3, 2, 3))
    stability = rank_stability(counts, replicates=20)
    names = [f"submission_{k}" for k in range(600)]
    for draw in (blob_plot_png, significance_map_png):
        width, height = png_size(draw(names, stability))
        assert width * height < 4000 * 4000, (draw.__name__, width, height)


# ---------------------------------------------------------------------------------------------
# 6. The bootstrap draws its replicates in blocks, with the same result


def test_draw_blocks_are_one_stream_whatever_their_size():
    whole = np.concatenate(list(image_draw_blocks(7, 23, seed=3, rows_per_block=23)))
    for rows in (1, 5, None):
        blocks = list(image_draw_blocks(7, 23, seed=3, rows_per_block=rows))
        assert np.array_equal(np.concatenate(blocks), whole)
    assert whole.shape == (23, 7) and (whole.sum(axis=1) == 7).all()


def test_bootstrap_memory_does_not_grow_with_replicates_times_images(record_draw_blocks):
    counts = {
        f"{kind}/{name}": np.arange(50) % 4 for kind in ("TP", "FP", "FN") for name in ("BC", "TC")
    }
    expected = bootstrap_f1(counts, replicates=40, seed=1)
    sizes = record_draw_blocks()
    assert bootstrap_f1(counts, replicates=40, seed=1) == expected
    assert sizes == [10, 10, 10, 10]


# ---------------------------------------------------------------------------------------------
# 7. No output replaces an input


def test_the_leaderboard_never_writes_over_its_submissions(contest, capsys):
    gt, folder = contest
    (folder / "leaderboard.json").write_bytes((folder / "team_0.json").read_bytes())
    before = (folder / "leaderboard.json").read_bytes()
    assert leaderboard(folder, gt, folder) == 2
    assert "is the submissions folder" in last_error_line(capsys)
    assert (folder / "leaderboard.json").read_bytes() == before


def test_the_report_never_writes_over_its_predictions(contest, tmp_path, capsys):
    gt, folder = contest
    out = tmp_path / "r"
    out.mkdir()
    predictions = out / "report.json"
    predictions.write_bytes((folder / "team_0.json").read_bytes())
    assert (
        main(
            [
                "report",
                "--predictions",
                str(predictions),
                "--ground-truth",
                str(gt),
                "--out",
                str(out),
                "--replicates",
                "20",
                "--quiet",
            ]
        )
        == 2
    )
    assert "is also an input" in last_error_line(capsys)
    assert predictions.read_bytes() == (folder / "team_0.json").read_bytes()
    assert sorted(path.name for path in out.iterdir()) == ["report.json"]


def release(root: Path, lines: list[str]) -> Path:
    cells = root / "annotations" / "test" / "cell"
    cells.mkdir(parents=True)
    for index, line in enumerate(lines):
        (cells / f"{index:03d}.csv").write_text(line)
    return cells


def test_convert_gt_never_writes_over_a_csv(tmp_path, capsys):
    cells = release(tmp_path / "rel", ["1,2,1\n", "3,4,2\n"])
    assert (
        main(
            [
                "convert-gt",
                str(tmp_path / "rel"),
                "--split",
                "test",
                "--output",
                str(cells / "001.csv"),
            ]
        )
        == 2
    )
    assert "is also an input" in last_error_line(capsys)
    assert (cells / "001.csv").read_text() == "3,4,2\n"


# ---------------------------------------------------------------------------------------------
# 8. The layout writer removes nothing outside its output


def test_the_layout_never_removes_through_a_linked_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "input").mkdir(parents=True)
    (elsewhere / "input" / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "evaluation").symlink_to(elsewhere)
    with pytest.raises(DataError, match="is a symbolic link"):
        GrandChallengeWriter(out, 1, 16)
    with pytest.raises(DataError, match="is a symbolic link"):
        write_evaluation_input(out / "evaluation" / "input", "pk", {"points": []}, root=out)
    assert (elsewhere / "input" / "keep.txt").read_text() == "keep"


# ---------------------------------------------------------------------------------------------
# 9. Release CSVs are regular files inside the release, and count as images


def convert(root: Path) -> subprocess.CompletedProcess:
    # A subprocess with a timeout: a FIFO read would otherwise hang the test run.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "convert-gt",
            str(root),
            "--split",
            "test",
            "--output",
            str(root.parent / "gt.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "passwd"])
def test_a_release_csv_that_is_no_regular_file_of_the_release_is_refused(tmp_path, kind):
    cells = release(tmp_path / "rel", ["1,2,1\n"])
    target = cells / "001.csv"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero" if kind == "dev_zero" else "/etc/passwd")
    result = convert(tmp_path / "rel")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "001.csv" in line
    assert ("not a regular file" in line) if kind == "fifo" else ("leads outside" in line)
    assert "root:" not in result.stderr
    assert not (tmp_path / "gt.json").exists()


def test_release_csvs_count_against_the_bound_on_images(tmp_path, capsys, monkeypatch):
    release(tmp_path / "rel", ["1,2,1\n"] * 3)
    monkeypatch.setenv("OCELOT_MAX_IMAGES", "2")
    assert (
        main(
            [
                "convert-gt",
                str(tmp_path / "rel"),
                "--split",
                "test",
                "--output",
                str(tmp_path / "gt.json"),
            ]
        )
        == 2
    )
    assert "3 images exceed the limit of 2" in last_error_line(capsys)


# ---------------------------------------------------------------------------------------------
# 10. Output sets are written as one unit


def test_a_linked_page_is_refused_before_any_file_is_written(contest, tmp_path, capsys):
    gt, folder = contest
    out = tmp_path / "out"
    out.mkdir()
    (out / "leaderboard.json").write_text("old")
    (out / "leaderboard.html").symlink_to(tmp_path / "page.html")
    assert leaderboard(folder, gt, out) == 2
    assert "leaderboard.html: exists and is a symbolic link" in last_error_line(capsys)
    assert (out / "leaderboard.json").read_text() == "old"
    assert not (out / "leaderboard.csv").exists()


def test_a_linked_report_page_is_refused_before_any_file_is_written(contest, tmp_path, capsys):
    gt, folder = contest
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("old")
    (out / "report.html").symlink_to(tmp_path / "page.html")
    assert (
        main(
            [
                "report",
                "--predictions",
                str(folder / "team_0.json"),
                "--ground-truth",
                str(gt),
                "--out",
                str(out),
                "--replicates",
                "20",
                "--quiet",
            ]
        )
        == 2
    )
    assert "report.html: exists and is a symbolic link" in last_error_line(capsys)
    assert (out / "report.json").read_text() == "old"
    assert not (out / "pr_curves.png").exists()


def test_an_output_set_waits_for_another_run_on_the_folder(tmp_path):
    descriptor = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # another run, renaming its set in
    writer = threading.Thread(
        target=write_output_set, args=(tmp_path, {"a.json": b"1", "b.html": b"2"})
    )
    writer.start()
    time.sleep(0.5)
    assert not (tmp_path / "a.json").exists()
    os.close(descriptor)
    writer.join(10)
    assert (tmp_path / "a.json").read_bytes() == b"1" and (tmp_path / "b.html").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.json", "b.html"]


# ---------------------------------------------------------------------------------------------
# 11. One submission never stops the leaderboard


def test_a_bound_hit_while_scoring_fails_that_submission_alone(contest, tmp_path, monkeypatch):
    gt, folder = contest
    cell = json.loads(gt.read_text())["points"][0]  # 200 predictions on one cell: 200 pairs
    dense = {"points": [{**cell, "probability": 0.5}] * 200}
    (folder / "dense.json").write_text(json.dumps(dense))
    monkeypatch.setenv("OCELOT_MAX_CANDIDATE_PAIRS", "50")
    assert leaderboard(folder, gt, tmp_path / "out") == 0
    board = entries(tmp_path / "out")
    assert board["dense"]["status"] == "failed"
    assert board["dense"]["error"].startswith(f"{folder / 'dense.json'}: ")
    assert "candidate pairs" in board["dense"]["error"]
    assert board["team_0"]["status"] == "scored"


# ---------------------------------------------------------------------------------------------
# 12. Names reach other programs neutralised


def test_names_are_neutralised_for_spreadsheets_and_terminals(contest, tmp_path, capsys):
    gt, folder = contest
    valid = (folder / "team_0.json").read_bytes()
    (folder / "=HYPERLINK(1).json").write_bytes(valid)
    (folder / "+1.json").write_bytes(valid)
    (folder / "bad\nerror: all fine.json").write_text("{")
    (folder / "\x1b[31mred.json").write_bytes(valid)
    assert leaderboard(folder, gt, tmp_path / "out") == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err
    assert "\\x1b[31mred" in captured.out
    assert not any(line.startswith("error:") for line in captured.err.splitlines())
    assert "failed  bad\\nerror: all fine:" in captured.err
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as stream:
        cells = [row["name"] for row in csv.DictReader(stream)]
    assert "'=HYPERLINK(1)" in cells and "'+1" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


# ---------------------------------------------------------------------------------------------
# 13. Distinct names, a bounded seed, workers that end with their parent


def test_distinct_files_get_distinct_names(tmp_path):
    for name in (".json", ".json.json", "a.json", "a.json.json"):
        (tmp_path / name).write_text(one_point())
    from evaluation.leaderboard.scoring import submission_name

    names = [submission_name(path) for path in find_submissions(tmp_path)]
    assert names == ["a", "a.json"]


def test_a_negative_report_seed_is_a_usage_error(contest, tmp_path, capsys):
    gt, folder = contest
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "report",
                "--predictions",
                str(folder / "team_0.json"),
                "--ground-truth",
                str(gt),
                "--out",
                str(tmp_path / "r"),
                "--seed",
                "-1",
            ]
        )
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "--seed" in stderr and "Traceback" not in stderr


def test_workers_end_when_the_leaderboard_is_killed(contest, tmp_path):
    gt, folder = contest
    script = textwrap.dedent(f"""
        import time
        import evaluation.leaderboard.scoring as scoring
        from evaluation import read_points_document

        def slow(*args, **kwargs):
            time.sleep(300)

        scoring.score = slow  # workers fork with it: they would score for five minutes
        truth, n = read_points_document({str(gt)!r}, role="ground_truth")
        scoring.score_submissions(scoring.find_submissions({str(folder)!r}), truth, n, workers=2)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    workers: list[int] = []
    for _ in range(100):
        time.sleep(0.2)
        workers = [int(pid) for pid in children.read_text().split()]
        if len(workers) >= 2:
            break
    assert len(workers) >= 2, "the workers did not start"
    parent.send_signal(signal.SIGKILL)  # not reaped yet: a zombie, as under a careless caller
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers
    ):
        time.sleep(0.2)
    assert not [
        pid for pid in workers if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)
    ]
    parent.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


# ---------------------------------------------------------------------------------------------
# The folder: a linked GT, a mathtext name, an over-long image name, 2,000 one-point files


def test_the_hostile_folder_is_refused_in_one_line_under_4_gb(contest, tmp_path):
    gt, folder = contest
    (folder / "gt.json").symlink_to(gt)
    (folder / "$\\undefinedcommand$.json").write_bytes((folder / "team_1.json").read_bytes())
    (folder / "long.json").write_text(one_point("image_" + "1" * 4301))
    for k in range(2000):
        (folder / f"p{k:04d}.json").write_text(one_point())
    script = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
        from evaluation.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "leaderboard",
            "--submissions-dir",
            str(folder),
            "--ground-truth",
            str(gt),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "2,006 submissions" in line and "OCELOT_MAX_SUBMISSIONS" in line
    assert not (tmp_path / "out").exists()
