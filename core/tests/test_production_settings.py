"""Production settings are safe by default (SPEC "Reliability contract"): each case starts a real process with the
environment a deployment would have, since settings are read once per process."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PREFIXES = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_", "API_", "JWT_", "COUPONS_", "DB_", "AXES_")

pytestmark = pytest.mark.slow


def clean_env(**values: str) -> dict[str, str]:
    """The machine's environment without any of the project's variables, plus `values`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(PROJECT_PREFIXES)}
    env["COUPONS_VAR_DIR"] = os.environ.get("COUPONS_VAR_DIR", str(ROOT / "var"))
    return {**env, **values}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coupons_site.settings'); django.setup(); {code}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def readme_production_environment() -> dict[str, str]:
    """The variables of README "Security" > "Production environment", line by line."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Production environment.**") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    values = dict(line.split("=", 1) for line in block.strip().splitlines())
    assert values["DJANGO_SECRET_KEY"].startswith("<")  # a placeholder, filled in here as an operator would
    values["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return values


def test_debug_off_without_a_secret_key_refuses_to_start():
    answer = run_python("print('started')", clean_env(DJANGO_DEBUG="0"))
    assert answer.returncode != 0 and "started" not in answer.stdout
    assert "DJANGO_SECRET_KEY is not set" in answer.stderr


def test_the_published_development_key_is_refused_without_debug():
    from django.conf import settings

    answer = run_python("print('started')", clean_env(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=settings.DEVELOPMENT_SECRET_KEY))
    assert answer.returncode != 0 and "refusing to start" in answer.stderr


def test_debug_is_off_unless_asked_for():
    """A process started without DJANGO_DEBUG (gunicorn, celery, manage.py on a server) is not in debug mode."""
    answer = run_python(
        "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT)",
        clean_env(DJANGO_SECRET_KEY=secrets.token_urlsafe(50)),
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["False", "True", "True"]


def test_debug_on_runs_with_the_development_key():
    answer = run_python("from django.conf import settings; print(settings.DEBUG)", clean_env(DJANGO_DEBUG="1"))
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "True"


def test_the_secure_settings_come_from_the_environment():
    env = clean_env(**readme_production_environment())
    answer = run_python(
        "from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, "
        "s.REST_FRAMEWORK['NUM_PROXIES'], s.CSRF_COOKIE_SECURE)",
        env,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "31536000 ('HTTP_X_FORWARDED_PROTO', 'https') 1 True"


def test_check_deploy_is_clean_with_the_readme_production_environment():
    answer = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(**readme_production_environment()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "System check identified no issues" in answer.stdout
