"""Settings read the environment through django-environ and have no side effect: importing them creates no folder,
and the filesystem broker's folders appear only when the Celery app reads its configuration. Each case runs a real
process, since settings are read once per process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PREFIXES = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_", "API_", "JWT_", "COUPONS_", "DB_", "AXES_")

pytestmark = pytest.mark.slow


def run_python(code: str, **values: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(PROJECT_PREFIXES)}
    env.update(DJANGO_SETTINGS_MODULE="coupons_site.settings", **values)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_importing_the_settings_creates_no_folder_and_the_celery_app_makes_the_broker_folders(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    answer = run_python(
        "import os, sys, django\n"
        "import coupons_site.settings\n"
        "print(sorted(os.listdir(sys.argv[1])))\n"
        "django.setup()\n"
        "print(sorted(os.listdir(sys.argv[1])))\n"
        "from coupons_site.celery import app\n"
        "print(app.conf.broker_url)\n"
        "print(sorted(os.listdir(os.path.join(sys.argv[1], 'broker'))))\n".replace("sys.argv[1]", repr(str(var))),
        DJANGO_DEBUG="1",
        COUPONS_VAR_DIR=str(var),
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines() == ["[]", "[]", "filesystem://", "['control', 'processed', 'queue']"]


def test_environment_values_are_parsed_as_before(tmp_path):
    names = "ALLOWED_HOSTS CSRF_TRUSTED_ORIGINS SECURE_PROXY_SSL_HEADER SECRET_KEY SECURE_HSTS_SECONDS DEBUG".split()
    answer = run_python(
        "import json, django\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}))\n"
        "print(json.dumps(settings.COUPONS))\n",
        DJANGO_DEBUG=" Yes ",
        DJANGO_ALLOWED_HOSTS="coupons.example.com, api.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://coupons.example.com",
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DJANGO_SECRET_KEY="$starts-with-a-dollar-" + "x" * 40,
        DJANGO_SECURE_HSTS_SECONDS="3600",
        COUPONS_JOB_LEASE_SECONDS="20",
        COUPONS_EXPORT_SYNC_ROWS="7",
        COUPONS_VAR_DIR=str(tmp_path),
    )
    assert answer.returncode == 0, answer.stderr
    django_settings, coupons = (json.loads(line) for line in answer.stdout.splitlines())
    assert django_settings == {
        "ALLOWED_HOSTS": ["coupons.example.com", "api.example.com"],
        "CSRF_TRUSTED_ORIGINS": ["https://coupons.example.com"],
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECRET_KEY": "$starts-with-a-dollar-" + "x" * 40,
        "SECURE_HSTS_SECONDS": 3600,
        "DEBUG": True,
    }
    assert coupons["JOB_LEASE_SECONDS"] == 20
    assert coupons["JOB_HEARTBEAT_SECONDS"] == 5
    assert coupons["EXPORT_SYNC_ROWS"] == 7
    assert coupons["SYNC_CODES_LIMIT"] == 10000
