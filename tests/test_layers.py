"""No import runs upward: core is the bottom layer, and backoffice (the admin toolkit) imports no feature app."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEATURE_APPS = {"tenants", "books", "redemptions", "api", "dashboard", "webhooks"}
# Above each package: what it must never import (its tests and test helpers excepted).
FORBIDDEN = {
    "core": FEATURE_APPS | {"backoffice"},
    "backoffice": FEATURE_APPS - {"tenants"},
}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_upward(package):
    upward = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/tests/" in relative or "/migrations/" in relative:
            continue
        wrong = _imported_packages(path) & FORBIDDEN[package]
        if wrong:
            upward[relative] = sorted(wrong)
    assert upward == {}
