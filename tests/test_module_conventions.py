"""One convention in both packages: every module but ``__main__`` declares ``__all__``, a list of
names the module itself defines or imports (checked on the source, so torch need not be
installed), and no module imports relatively (ruff's TID252 enforces that in scripts/test.sh;
here it is checked without ruff)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(
    path
    for package in ("evaluation", "baseline_algorithm")
    for path in (REPO / package).rglob("*.py")
    if path.name != "__main__.py"
)


def top_level_names(tree: ast.Module) -> set[str]:
    """Names bound at the top level of a module: definitions, assignments and imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:  # a name, or a tuple of names (``BC, TC = 1, 2``)
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(element.id for element in elements if isinstance(element, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "__all__":
            return [element.value for element in node.value.elts]
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(REPO)))
def test_module_declares_all_of_its_own_names(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    exported = declared_all(tree)
    assert exported is not None, f"{path.relative_to(REPO)} declares no __all__"
    assert len(exported) == len(set(exported)), f"__all__ repeats a name: {exported}"
    unknown = sorted(set(exported) - top_level_names(tree))
    assert not unknown, f"__all__ names what the module does not define: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(REPO)))
def test_module_imports_absolutely(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    relative = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not relative, f"relative imports at lines {relative}"


def test_the_check_finds_a_missing_or_wrong_all():
    assert declared_all(ast.parse("x = 1\n")) is None
    tree = ast.parse('from a import b\n__all__ = ["b", "c"]\ndef c(): pass\n')
    assert set(declared_all(tree)) <= top_level_names(tree)
    tree = ast.parse('__all__ = ["missing"]\n')
    assert set(declared_all(tree)) - top_level_names(tree) == {"missing"}
