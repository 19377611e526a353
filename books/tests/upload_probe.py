"""Run by the upload tests in a fresh process: one upload request through the API or the admin import, then the
process's peak memory (VmHWM) before and after it. A fresh process, so no earlier test's peak hides this one's.

Usage: python -m books.tests.upload_probe api|admin FILE BOOK_ID CREDENTIAL  (token, or session cookie value)
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
# A request may grow the process's peak by this much at most (the bombs inflate past 150 MB).
PEAK_GROWTH_LIMIT_KIB = 60 * 1024


def probe(kind: str, data: bytes, book_id: int, credential: str, tmp_path) -> dict:
    path = tmp_path / "upload.xlsx"
    path.write_bytes(data)
    from django.db import connection

    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        # A Unix socket directory as host (the embedded PostgreSQL) is percent-encoded, as dj-database-url reads it.
        "DATABASE_URL": f"postgres://{settings_dict['USER']}@{quote(settings_dict['HOST'] or '127.0.0.1', safe='')}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}",
    }
    answer = subprocess.run(
        [sys.executable, "-m", "books.tests.upload_probe", kind, str(path), str(book_id), credential],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    return json.loads(answer.stdout.strip().splitlines()[-1])


def peak_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(kind: str, path: str, book_id: str, credential: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")
    import django

    django.setup()
    import openpyxl  # noqa: F401 - imported before the baseline, as a warm web process has it
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    client = Client()
    if kind == "admin":
        client.cookies["sessionid"] = credential
        client.get(reverse("admin:books_code_import"))  # warm up: templates, the admin, the session
    else:
        client.get("/api/v1/books/", HTTP_AUTHORIZATION=f"Bearer {credential}")
    with open(path, "rb") as handle:
        data = handle.read()
    upload = SimpleUploadedFile("codes.xlsx", data, content_type="application/octet-stream")
    before = peak_kib()
    if kind == "admin":
        answer = client.post(
            reverse("admin:books_code_import"), {"book": book_id, "import_file": upload, "format": "1", "resource": "0"}
        )
        body = answer.content.decode(errors="replace")
    else:
        answer = client.post(
            f"/api/v1/books/{book_id}/codes/upload/", {"file": upload}, HTTP_AUTHORIZATION=f"Bearer {credential}"
        )
        body = answer.content.decode(errors="replace")
    after = peak_kib()
    print(
        json.dumps(
            {
                "status": answer.status_code,
                "content_type": answer.get("Content-Type", ""),
                "body": body[-20000:],
                "peak_before_kib": before,
                "peak_after_kib": after,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
