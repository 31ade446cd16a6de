"""The dependency runs one way: ``baseline_algorithm`` may import ``evaluation``, never back.

Checked twice: statically, on every import statement under ``evaluation/`` (also the lazy ones
inside functions), and at run time, by importing every module of ``evaluation`` in a fresh
interpreter and looking for torch and the baseline among the loaded modules.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("baseline_algorithm", "torch", "torchvision", "segmentation_models_pytorch")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def test_no_module_of_evaluation_imports_the_baseline_or_torch():
    offenders = {}
    for path in sorted((REPO / "evaluation").rglob("*.py")):
        bad = sorted(name for name in imported_modules(path) if name.split(".")[0] in FORBIDDEN)
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}


def test_the_static_check_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from baseline_algorithm.cli import main\n    import torch\n")
    assert {"baseline_algorithm.cli", "torch"} <= imported_modules(module)


def test_importing_every_evaluation_module_loads_neither_torch_nor_the_baseline():
    code = (
        "import importlib, pkgutil, sys, evaluation\n"
        "for info in pkgutil.walk_packages(evaluation.__path__, 'evaluation.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"


def test_report_with_images_runs_where_torch_cannot_be_imported(tmp_path):
    """``report --images`` needs the images and report extras only, never torch."""
    test_data = REPO / "test_data"
    (predictions,) = (test_data / "evaluation" / "input").glob("*/output/cell_classification.json")
    code = (
        "import sys\n"
        "for name in " + repr(FORBIDDEN) + ":\n"
        "    sys.modules[name] = None  # any import of it raises ImportError\n"
        "from evaluation.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "report",
            "--quiet",
            "--replicates",
            "50",
            "--predictions",
            str(predictions),
            "--ground-truth",
            str(test_data / "ground_truth" / "cell_gt.json"),
            "--images",
            str(test_data / "input"),
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/jpeg") == 3  # one overlay per pair of test_data
