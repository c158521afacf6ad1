"""``LEANVIBE_ENV``: production cannot start unsafe, and importing the settings starts nothing.

Each check runs the real entry point (``manage.py``, ``python -c "import django; ..."``, pytest)
in a process of its own, with an environment built from scratch.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from leanvibe import embedded, environment

ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_KEY = environment.DEVELOPMENT_SECRET_KEY
EXAMPLE_LINE = re.compile(r"^#> ([A-Z][A-Z0-9_]*)=(.*)$")


def example_values() -> dict[str, str]:
    """The production example at the end of .env.example (lines ``#> NAME=value``)."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = EXAMPLE_LINE.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def production_values() -> dict[str, str]:
    """The example with its SECRET_KEY placeholder replaced, as an operator would."""
    return {**example_values(), "SECRET_KEY": secrets.token_urlsafe(50)}


def run(values: dict[str, str], *command: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        "DJANGO_SETTINGS_MODULE": "leanvibe.settings",
        **values,
    }
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_example_is_complete():
    values = example_values()
    assert values["LEANVIBE_ENV"] == "production"
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BASE_DOMAIN", "DEBUG"} <= set(values)
    assert values["SITE_SCHEME"] == "https"


def test_check_deploy_is_clean_with_the_production_example():
    result = run(production_values(), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def _without(values: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if k not in names}


UNSAFE = {
    "no DATABASE_URL": ("DATABASE_URL", lambda v: _without(v, "DATABASE_URL")),
    "empty DATABASE_URL": ("DATABASE_URL", lambda v: {**v, "DATABASE_URL": ""}),
    "no REDIS_URL": ("REDIS_URL", lambda v: _without(v, "REDIS_URL")),
    "no SECRET_KEY": ("SECRET_KEY", lambda v: _without(v, "SECRET_KEY")),
    "development SECRET_KEY": ("SECRET_KEY", lambda v: {**v, "SECRET_KEY": DEVELOPMENT_KEY}),
    "short SECRET_KEY": ("SECRET_KEY", lambda v: {**v, "SECRET_KEY": secrets.token_urlsafe(20)}),
    "plain SECRET_KEY": ("SECRET_KEY", lambda v: {**v, "SECRET_KEY": "ab" * 40}),
    "placeholder SECRET_KEY": ("SECRET_KEY", lambda v: {**v, "SECRET_KEY": example_values()["SECRET_KEY"]}),
    "DEBUG on": ("DEBUG", lambda v: {**v, "DEBUG": "True"}),
    "no ALLOWED_HOSTS": ("ALLOWED_HOSTS", lambda v: _without(v, "BASE_DOMAIN", "ALLOWED_HOSTS")),
    "ALLOWED_HOSTS *": ("ALLOWED_HOSTS", lambda v: {**v, "ALLOWED_HOSTS": "*"}),
    "no BASE_DOMAIN": ("BASE_DOMAIN", lambda v: {**_without(v, "BASE_DOMAIN"), "ALLOWED_HOSTS": "a.example"}),
    "unknown LEANVIBE_ENV": ("LEANVIBE_ENV", lambda v: {**v, "LEANVIBE_ENV": "prod"}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNSAFE))
def test_production_refuses_each_unsafe_setting_with_one_line_naming_it(case, tmp_path):
    variable, change = UNSAFE[case]
    values = {**change(production_values()), "LEANVIBE_DATA_DIR": str(tmp_path)}
    result = run(values, "manage.py", "check")
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    # Nothing embedded was started for a missing variable.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "code",
    [
        "import django; django.setup()",
        "import leanvibe.wsgi",  # what gunicorn loads
        "from leanvibe.celery import app; app.loader.import_default_modules()",  # a Celery worker
    ],
)
def test_every_process_refuses_not_only_manage_py(code):
    result = run({**production_values(), "DEBUG": "true"}, "-c", code)
    assert result.returncode != 0
    assert (
        result.stderr.strip().splitlines()[-1].startswith("LEANVIBE_ENV=production refuses to start: DEBUG")
    )


def test_production_starts_with_the_example():
    code = "import django; django.setup(); from django.conf import settings; print(settings.ALLOWED_HOSTS)"
    result = run(production_values(), "-c", code)
    assert result.returncode == 0, result.stderr
    # The development hosts are not allowed in production.
    assert result.stdout.strip() == "['leanvibe.example.com', '.leanvibe.example.com']"


def test_production_settings_are_hardened_behind_the_ingress():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER,"
        " s.NUM_PROXIES]))"
    )
    result = run(production_values(), "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '[true, 3600, true, true, true, true, ["HTTP_X_FORWARDED_PROTO", "https"], 1]'
    )


# --- development: who starts the embedded servers ----------------------------------------------


def _stop_embedded(data_dir: Path) -> None:
    """Stop whatever a subprocess left running in ``data_dir`` (only ours: this tmp folder)."""
    for pidfile in (data_dir / "redis.pid", data_dir / "pg" / "postmaster.pid"):
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


def _development(data_dir: Path) -> dict[str, str]:
    return {"LEANVIBE_DATA_DIR": str(data_dir), "TEST_DATABASE_NAME": "test_embedded_entry_points"}


def test_importing_the_settings_starts_nothing(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.DATABASES['default']['HOST']); print(settings.REDIS_URL)"
    )
    result = run(_development(tmp_path), "-c", code)
    try:
        assert result.returncode == 0, result.stderr
        assert list(tmp_path.iterdir()) == []
        host, redis_url = result.stdout.split()
        assert host.endswith("leanvibe-embedded-postgres-not-started")
        assert redis_url == embedded.NOT_STARTED_REDIS_URL
    finally:
        _stop_embedded(tmp_path)


def test_manage_py_and_pytest_start_the_embedded_servers_in_development(tmp_path):
    try:
        # pytest: the plugin starts them before pytest-django reads the settings.
        tests = run(
            _development(tmp_path),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "leanvibe/tests/test_http.py",
        )
        assert tests.returncode == 0, tests.stdout[-2000:] + tests.stderr[-2000:]
        assert (tmp_path / "pg" / "PG_VERSION").exists()
        assert (tmp_path / "redis.sock").exists()
        # manage.py: a command that needs the database finds it.
        shown = run(_development(tmp_path), "manage.py", "shell", "-c", "from django.db import connection; "
                    "connection.ensure_connection(); print(connection.settings_dict['HOST'])")  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip().splitlines()[-1] == str(tmp_path / "pg")
    finally:
        _stop_embedded(tmp_path)
