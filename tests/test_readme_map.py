"""The README's "Where things live" map names real homes, and its "Layout" table names real paths: every file and
every function, class or constant a row names exists where the row says."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TICKED = re.compile(r"`([^`]+)`")
NAME = re.compile(r"@?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def _rows(title: str) -> list[tuple[str, str]]:
    rows = []
    for line in _section(title).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2 and not set(cells[0]) <= {"-", " "}:
            rows.append((cells[0], cells[1]))
    return rows[1:]  # the header row


def _defined(path: Path) -> dict[str, set[str]]:
    """Top-level names of a module, each with the names defined in its body (a class's methods and attributes)."""
    found: dict[str, set[str]] = {}
    for node in ast.parse(path.read_text()).body:
        targets: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        members = set()
        for child in getattr(node, "body", []) if isinstance(node, ast.ClassDef) else []:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                members.add(child.name)
            elif isinstance(child, ast.Assign):
                members.update(t.id for t in child.targets if isinstance(t, ast.Name))
        for target in targets:
            found[target] = members
    return found


def _homes(cell: str) -> list[tuple[str, str | None]]:
    """(file, name) pairs of a "Home" cell: each `path` is followed by the `names` that live in it (None: the
    file alone). A ticked value that is neither a path nor a plain name (a call, a comment) is prose."""
    pairs: list[tuple[str, str | None]] = []
    current = None
    for value in TICKED.findall(cell):
        if "/" in value or value.endswith(".py"):
            current = value
            pairs.append((current, None))
        elif current is not None and NAME.fullmatch(value):
            pairs.append((current, value.lstrip("@")))
    return pairs


WHERE = [(family, file, name) for family, home in _rows("Where things live") for file, name in _homes(home)]


def test_the_map_has_rows():
    assert len(WHERE) > 60


@pytest.mark.parametrize(("family", "file", "name"), WHERE, ids=[f"{f}:{n}" for _, f, n in WHERE])
def test_each_home_the_map_names_exists(family, file, name):
    path = ROOT / file
    assert path.exists(), f"{family}: {file} does not exist"
    if name is None or path.is_dir():
        return
    defined = _defined(path)
    owner, _, member = name.partition(".")
    assert owner in defined, f"{family}: {file} defines no {owner}"
    if member:
        assert member in defined[owner], f"{family}: {owner} in {file} has no {member}"


LAYOUT = [path for paths, _ in _rows("Layout") for path in TICKED.findall(paths)]


@pytest.mark.parametrize("path", LAYOUT)
def test_each_path_of_the_layout_exists(path):
    assert (ROOT / path).exists(), path


def test_the_layout_names_every_top_level_package():
    named = {path.rstrip("/") for path in LAYOUT}
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - named == set()
