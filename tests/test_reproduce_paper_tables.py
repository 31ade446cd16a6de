"""scripts/reproduce_paper_tables.sh at toy size: runs spread over two streams, the tables
assembled by a last call that only scores, Table 7 reusing Table 5's runs, and the refusal of an
OUT inside the work tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "reproduce_paper_tables.sh"
TOY = {
    "ROWS": "cell-only pred-to-inter-2",
    "SEEDS": "0",
    "MORE_SEEDS": "0 1",
    "MORE_ROWS": "cell-only",
    "PAIRS": "8 1 2",
    "SIZE": "64",
    "EPOCHS": "1",
    "STREAMS": "2",
    "PYTHON": sys.executable,
}


def run_script(out: Path, tables: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **TOY, "TABLES_DIR": str(tables), **env},
        timeout=900,
    )


@pytest.mark.slow
def test_streams_train_every_run_once_and_the_tables_list_them_all(tmp_path):
    out, tables = tmp_path / "runs", tmp_path / "tables"
    completed = run_script(out, tables)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table5 = json.loads((tables / "table5.json").read_text())
    assert table5 == json.loads((out / "table5" / "table.json").read_text())
    assert [(row["variant"], row["seeds"]) for row in table5["rows"]] == [
        ("cell-only", [0, 1]),
        ("pred-to-inter-2", [0]),
    ]
    assert table5["options"]["lr_schedule"] == "cosine" and table5["options"]["patience"] == 4
    table7 = json.loads((tables / "table7.json").read_text())
    assert [(row["ablation"], row["seeds"]) for row in table7["rows"]] == [
        ("both", [0, 1]),
        ("both", [0]),
        ("tissue-label-only", [0]),
        ("large-fov-only", [0]),
    ]
    # Table 7's Cell-only and Pred-to-inter-2 are Table 5's runs, not retrained.
    assert (out / "table7" / "cell-only").resolve() == (out / "table5" / "cell-only")
    for name in ("table5_convergence.png", "table7_convergence.png"):
        assert (tables / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Each run trained in exactly one stream, once: its log says so, and the assembling calls
    # found every run finished.
    logs = sorted(path.name for path in (out / "logs").iterdir())
    assert logs == [
        "cell-only+both-seed-0.log",
        "cell-only+both-seed-1.log",
        "pred-to-inter-2+both-seed-0.log",
        "pred-to-inter-2+large-fov-only-seed-0.log",
        "pred-to-inter-2+tissue-label-only-seed-0.log",
    ]
    for log in (out / "logs").iterdir():
        assert ": training in " in log.read_text()
    assert ": training in " not in completed.stdout
    assert completed.stdout.count("finished run found") == 3 + 5

    # A second call, Table 5 only, retrains nothing and rewrites only Table 5's logs.
    again = run_script(out, tables, TABLES="5")
    assert again.returncode == 0, again.stderr[-3000:]
    for log in (out / "logs").iterdir():
        table5_run = "+both-" in log.name
        assert ("not retrained" in log.read_text()) == table5_run, log.name


def test_runs_inside_the_work_tree_are_refused(tmp_path):
    completed = run_script(REPO / "runs-here", tmp_path / "tables")
    assert completed.returncode == 2
    assert completed.stderr.strip().endswith("keep runs outside it")
    assert not (REPO / "runs-here").exists()
