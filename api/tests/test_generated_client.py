"""The client an integrator generates from the live schema works: openapi-python-client generates it without a
single warning, mypy --strict accepts typed code that uses it (clients/example_campaign.py), and that code runs a
whole campaign through it against the live server, both Excel downloads included."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from openpyxl import load_workbook

from redemptions.models import Redemption
from tenants.services import api_client_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = Path(django_settings.BASE_DIR) / "clients"
VENV_BIN = Path(sys.executable).parent


def run(command: list[str], *, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # The virtualenv's bin first: the generator's post-hooks format the client with its ruff.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(extra_env or {})}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def generate_client(schema_url: str, into: Path) -> None:
    generated = run(
        [
            str(VENV_BIN / "openapi-python-client"),
            "generate",
            "--url",
            schema_url,
            "--config",
            str(CLIENTS / "openapi-python-client.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(into / "coupons_client"),
            "--fail-on-warning",
        ],
        cwd=into,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    # Any warning means part of the API is missing from (or untyped in) the client.
    assert "warning" not in output.lower() and "not in path" not in output.lower(), output
    assert (into / "coupons_client" / "api" / "checkout" / "code_redeem.py").exists()


@pytest.fixture
def campaign_settings(settings, tmp_path, eager_celery):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Small thresholds, so generation and the second export run as jobs (202, polled) in this short campaign.
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 50}
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 1}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {scope: "100000/min" for scope in ("auth", "read", "write", "lookup_failed")},
    }
    return settings


def test_the_generated_client_is_typed_and_runs_a_whole_campaign(live_server, tenant, campaign_settings, tmp_path):
    generate_client(f"{live_server.url}/api/schema/", tmp_path)

    typed = run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(CLIENTS / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "mypy"),
            "example_campaign.py",
        ],
        cwd=CLIENTS,
        extra_env={"MYPYPATH": str(tmp_path)},
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr

    issued = api_client_create(tenant=tenant, name="Generated client")
    out = tmp_path / "out"
    out.mkdir()
    ran = run(
        [sys.executable, str(CLIENTS / "example_campaign.py"), live_server.url, issued.client.client_id, issued.secret, str(out)],
        cwd=tmp_path,
        extra_env={"PYTHONPATH": str(tmp_path)},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    assert summary["uploaded"] == 4 and summary["generated"] == 60 and summary["export_rows"] == 2

    # What the client reported is what the service recorded.
    log = Redemption.objects.filter(book_id=summary["book"]).order_by("pk")
    assert [r.pk for r in log] == summary["redemptions"]
    assert [r.is_reversed for r in log] == [True, False]
    # Both workbooks open: the reversed redemption alone (answered at once), and the whole log (through a job).
    assert cells(out / "redemptions.xlsx") >= {"order-1001"} and "order-1002" not in cells(out / "redemptions.xlsx")
    assert cells(out / "export-job.xlsx") >= {"order-1001", "order-1002"}


def cells(path: Path) -> set:
    book = load_workbook(io.BytesIO(path.read_bytes()), read_only=True)
    return {value for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for value in row}
