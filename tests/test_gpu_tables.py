"""scripts/gpu_tables.sh end to end on the CPU at toy size (TOY=1), and the scripts it drives:
the convergence figure (scripts/plot_convergence.py) and the markdown of docs/model.md
(scripts/render_tables.py). Only the CUDA calls are left for a GPU machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_tables.sh"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "out"
    completed = subprocess.run(
        [str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TOY": "1", "PYTHON": sys.executable},
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_gpu_script_writes_the_table_curves_and_benchmark(toy_run):
    document = json.loads((toy_run / "table5" / "table.json").read_text())
    assert [row["variant"] for row in document["rows"]] == ["cell-only", "pred-to-inter-2"]
    assert document["options"]["lr_schedule"] == "cosine"
    assert document["options"]["patience"] == 6
    for row in document["rows"]:
        # One epoch: the best epoch is the last, so no run has converged, and the table says so.
        assert (row["best_epoch"], row["last_epoch"], row["converged"]) == ([1], [1], [False])
    for run in document["runs"].values():
        assert run["stopped"] == "epochs" and run["cpu_seconds"] > 0
    assert document["cpu_seconds"]["training"] == pytest.approx(
        sum(run["cpu_seconds"] for run in document["runs"].values())
    )
    table_md = (toy_run / "table5" / "table.md").read_text()
    assert table_md.count("(**not converged**: 1 of 1 seeds)") == 2
    assert (toy_run / "table5_convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((toy_run / "benchmark_gpu.json").read_text())["machine"]["device"] == "cpu"


@pytest.mark.slow
def test_render_tables_fills_the_marked_block_with_the_table(toy_run, tmp_path):
    render = load_script("render_tables")
    page = tmp_path / "model.md"
    page.write_text("before\n<!-- table5 -->\nold\n<!-- /table5 -->\nafter\n")
    render.main([str(toy_run / "table5" / "table.json"), "--into", str(page), "--marker", "table5"])
    text = page.read_text()
    table_md = (toy_run / "table5" / "table.md").read_text()
    assert text.startswith("before\n<!-- table5 -->\n| Variant |") and text.endswith(
        "<!-- /table5 -->\nafter\n"
    )
    assert "old" not in text and table_md.split("\n\nCommand")[0] in text
    assert "Not converged (a seed's best epoch is its last): cell-only, pred-to-inter-2" in text
    with pytest.raises(SystemExit):
        render.main(
            [str(toy_run / "table5" / "table.json"), "--into", str(page), "--marker", "table7"]
        )


def test_the_gpu_script_refuses_to_start_without_the_wheels_it_needs(tmp_path):
    # A Python on which segmentation-models-pytorch cannot be imported, as on a stock image.
    python = tmp_path / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = -c ] && [ "$2" = "import segmentation_models_pytorch" ]; then exit 1; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    completed = subprocess.run(
        [str(SCRIPT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "TOY": "1", "PYTHON": str(python)},
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "gpu_tables: missing segmentation-models-pytorch and no WHEELS_DIR given"
    )
    assert not (tmp_path / "out" / "data").exists()
