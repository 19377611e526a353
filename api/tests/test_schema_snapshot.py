"""The API schema does not change by accident: /api/schema/ is compared with the snapshot committed in
api/tests/schema_snapshot.json. A change made on purpose refreshes the snapshot with `make schema-snapshot`
(manage.py spectacular renders the same document the endpoint serves) and commits it with the change."""

import difflib
import json
from pathlib import Path

import pytest
from django.test import Client

SNAPSHOT = Path(__file__).with_name("schema_snapshot.json")


def rendered(schema: dict) -> list[str]:
    """One stable text form of a schema (sorted keys), so the diff shows only what changed."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def test_the_served_schema_matches_the_committed_snapshot():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    served = rendered(response.json())
    committed = rendered(json.loads(SNAPSHOT.read_text(encoding="utf-8")))
    diff = "\n".join(
        difflib.unified_diff(committed, served, "schema_snapshot.json (committed)", "/api/schema/ (served)", lineterm="")
    )
    if diff:
        pytest.fail(
            "The API schema differs from api/tests/schema_snapshot.json. If the change is intended, run "
            "`make schema-snapshot` and commit the snapshot with it.\n" + diff,
            pytrace=False,
        )
