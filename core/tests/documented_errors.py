"""The error codes as the README documents them for integrators ("Error codes" table): the contract the code is
checked against, read from the document rather than from core.exceptions (which it is meant to check)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \|", re.MULTILINE)


def documented_error_statuses() -> dict[str, int]:
    text = README.read_text()
    section = text[text.index("\n## Error codes") :]
    section = section[: section.index("\n## ", 1)]
    table = {code: int(status) for code, status in ROW.findall(section)}
    assert len(table) > 40, "the README's error table was not found"
    return table
