"""On CI a skipped test is a failure, unless it is on the allow-list `.ci/allowed_skips.txt`.

CI has every service (PostgreSQL, Redis, chromium), so nothing should skip there; a skip would silently narrow the
run. The rule is on when the environment variable CI is true (CI sets CI=true) or COUPONS_FAIL_ON_SKIP=1. The
allow-list holds one test node id (or a prefix ending in `*`) a line, each with a `# reason`; it is printed in the
log whenever the rule is on (COUPONS_ALLOWED_SKIPS names another file). Loaded from the root conftest.py (`pytest_plugins`).
"""

import os
from pathlib import Path

import pytest

ALLOW_LIST = Path(os.environ.get("COUPONS_ALLOWED_SKIPS", Path(__file__).resolve().parent / ".ci" / "allowed_skips.txt"))


def enforced() -> bool:
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return ci or os.environ.get("COUPONS_FAIL_ON_SKIP") == "1"


def allowed_skips(path: Path = ALLOW_LIST) -> dict[str, str]:
    """node id (or prefix*) -> reason."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for line in path.read_text().splitlines():
        entry, _, reason = line.partition("#")
        if entry.strip():
            allowed[entry.strip()] = reason.strip()
    return allowed


def is_allowed(nodeid: str, allowed: dict[str, str]) -> bool:
    return any(nodeid == entry or (entry.endswith("*") and nodeid.startswith(entry[:-1])) for entry in allowed)


class SkipPolicy:
    def __init__(self) -> None:
        self.allowed = allowed_skips()
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason))

    def offenders(self) -> list[tuple[str, str]]:
        return [(nodeid, reason) for nodeid, reason in self.skipped if not is_allowed(nodeid, self.allowed)]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if self.offenders() and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        write = terminalreporter.write_line
        terminalreporter.section("skip policy (CI: a skip is a failure unless allowed)")
        write(f"allow-list {ALLOW_LIST.name}: " + (", ".join(f"{k} ({v})" for k, v in self.allowed.items()) or "empty"))
        offenders = self.offenders()
        for nodeid, reason in offenders:
            write(f"NOT ALLOWED: {nodeid} skipped: {reason}", red=True)
        write(f"{len(self.skipped)} skipped, {len(offenders)} not on the allow-list")


def pytest_configure(config) -> None:
    if enforced():
        config.pluginmanager.register(SkipPolicy(), "coupons-skip-policy")
