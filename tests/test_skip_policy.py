"""The CI skip rule (pytest_skip_policy.py): run pytest on a small throw-away test file, as CI would."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("no service here")
"""


def run_pytest(tmp_path: Path, *, ci: bool, allowed: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "allowed.txt").write_text(allowed)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "COUPONS_FAIL_ON_SKIP", "PYTEST_ADDOPTS")}
    # No third-party plugins: only the policy is under test (and the run stays fast).
    env.update(PYTHONPATH=str(ROOT), COUPONS_ALLOWED_SKIPS=str(tmp_path / "allowed.txt"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if ci:
        env["CI"] = "true"
    command = [sys.executable, "-m", "pytest", "-p", "pytest_skip_policy", "-p", "no:cacheprovider"]
    command += ["-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_on_ci_a_skip_fails_the_run_and_is_named(tmp_path):
    result = run_pytest(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout
    assert "NOT ALLOWED: test_sample.py::test_skips skipped" in result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_on_ci_an_allow_listed_skip_passes_and_the_list_is_printed(tmp_path):
    result = run_pytest(tmp_path, ci=True, allowed="test_sample.py::test_skips  # needs a service CI lacks\n")
    assert result.returncode == 0, result.stdout
    assert "test_sample.py::test_skips (needs a service CI lacks)" in result.stdout
    assert "1 skipped, 0 not on the allow-list" in result.stdout


def test_outside_ci_a_skip_is_only_reported(tmp_path):
    result = run_pytest(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout
    assert "skip policy" not in result.stdout
