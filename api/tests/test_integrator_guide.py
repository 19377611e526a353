"""The README's integrator guide runs as written: its commands are docs/integrator_guide.sh, which the README shows
verbatim, and the script runs against a live server with curl and ends without one error answer."""

import io
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from openpyxl import load_workbook

from books.models import Code, CouponBook
from redemptions.models import Redemption
from tenants.services import api_client_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(django_settings.BASE_DIR)
GUIDE = ROOT / "docs" / "integrator_guide.sh"


def readme_guide_block() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- docs/integrator_guide\.sh -->\n```sh\n(.*?)```\n", readme, re.DOTALL)
    assert found, "README.md must show docs/integrator_guide.sh in a ```sh block after <!-- docs/integrator_guide.sh -->"
    return found.group(1)


def test_the_readme_shows_the_guide_script_verbatim():
    assert readme_guide_block() == GUIDE.read_text()


def test_the_guide_script_runs_against_a_live_server(live_server, tenant, settings, tmp_path, eager_celery):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    issued = api_client_create(tenant=tenant, name="Web shop checkout")
    env = {
        **os.environ,
        "API": f"{live_server.url}/api/v1",
        "CLIENT_ID": issued.client.client_id,
        "CLIENT_SECRET": issued.secret,
    }
    ran = subprocess.run(["bash", str(GUIDE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "guide complete" in ran.stdout

    book = CouponBook.objects.get(tenant=tenant, name="Spring sale")
    assert Code.objects.filter(book=book).count() == 5004
    assert Code.objects.filter(book=book, user_id="customer-42").count() == 2
    redemption = Redemption.objects.get(book=book)
    assert redemption.order_ref == "order-1001" and redemption.is_reversed
    workbook = load_workbook(io.BytesIO((tmp_path / "redemptions.xlsx").read_bytes()), read_only=True)
    assert "order-1001" in {value for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for value in row}
