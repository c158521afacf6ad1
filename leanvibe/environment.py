"""Which environment a process runs in, what starts the embedded servers, what production refuses.

``LEANVIBE_ENV`` is ``development`` (the default) or ``production``.

- Importing the settings starts nothing. In development the entry points that run the platform
  or its tests call :func:`start_embedded_services` first: ``manage.py`` (so ``make run``,
  ``make migrate`` and every command), the pytest plugin ``leanvibe.pytest_plugin`` (``make
  test``) and ``python -m bench`` (``make bench``). It starts an embedded PostgreSQL and Redis
  for whichever of ``DATABASE_URL`` / ``REDIS_URL`` is unset and exports the variable, so child
  processes (gunicorn, Celery, test subprocesses) join the same servers.
- In production nothing embedded is ever started, and the settings call
  :func:`refuse_unsafe_production`: a missing ``DATABASE_URL`` or ``REDIS_URL``, the development
  (or a short, or a placeholder) ``SECRET_KEY``, ``DEBUG`` on, or no ``ALLOWED_HOSTS`` stop the
  process with one line per problem naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

from leanvibe import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
DEVELOPMENT = "development"
PRODUCTION = "production"
# Django's signing key when none is set, in development only.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-change-me-in-production-0123456789"  # noqa: S105
SECRET_KEY_MIN_LENGTH = 50  # what `manage.py check --deploy` asks for
SECRET_KEY_MIN_UNIQUE = 5
PLACEHOLDER = "REPLACE-ME"  # the placeholders of .env.example and k8s/base/secret.yaml


def read_dotenv() -> None:
    """Read ``.env`` into the environment; a variable already set wins."""
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def current() -> str:
    """``LEANVIBE_ENV``; any other value than the two stops the process."""
    value = os.environ.get("LEANVIBE_ENV", "") or DEVELOPMENT
    if value not in (DEVELOPMENT, PRODUCTION):
        raise SystemExit(f"LEANVIBE_ENV must be {DEVELOPMENT} or {PRODUCTION}, not {value!r}.")
    return value


def start_embedded_services() -> None:
    """In development, start (or join) an embedded PostgreSQL and Redis for ``DATABASE_URL`` /
    ``REDIS_URL`` when unset, and export them. In production, nothing."""
    read_dotenv()
    if current() == DEVELOPMENT:
        embedded.ensure_environment()


def production_problems(
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    debug: bool,
    allowed_hosts: list[str],
    base_domain: str,
) -> list[str]:
    """What makes these settings unsafe to serve from, one sentence each, naming the variable."""
    problems: list[str] = []
    if not database_url:
        problems.append("DATABASE_URL is not set: production never starts an embedded PostgreSQL.")
    if not redis_url:
        problems.append("REDIS_URL is not set: production never starts an embedded Redis.")
    generate = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    random_key = f"{SECRET_KEY_MIN_LENGTH}+ random characters ({generate})"
    if not secret_key:
        problems.append(f"SECRET_KEY is not set: use {random_key}.")
    elif secret_key == DEVELOPMENT_SECRET_KEY or secret_key.startswith("django-insecure"):
        problems.append(f"SECRET_KEY is the development key: set your own ({generate}).")
    elif PLACEHOLDER in secret_key:
        problems.append(f"SECRET_KEY is still the {PLACEHOLDER} placeholder: set your own ({generate}).")
    elif len(secret_key) < SECRET_KEY_MIN_LENGTH or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE:
        problems.append(f"SECRET_KEY is too short or too plain: use {random_key}.")
    if debug:
        problems.append("DEBUG is on: production never shows Django's debug pages; set DEBUG=false.")
    if not allowed_hosts:
        problems.append(
            "ALLOWED_HOSTS is empty: set BASE_DOMAIN (the public site; tenants are its subdomains) "
            "and ALLOWED_HOSTS for any other host."
        )
    elif "*" in allowed_hosts:
        problems.append("ALLOWED_HOSTS contains '*': name the hosts (BASE_DOMAIN covers its subdomains).")
    elif not base_domain:
        problems.append("BASE_DOMAIN is not set: tenants are served on its subdomains.")
    return problems


def refuse_unsafe_production(
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    debug: bool,
    allowed_hosts: list[str],
    base_domain: str,
) -> None:
    """Stop the process (``SystemExit``: exit code 1, the reasons on stderr) if production
    settings are unsafe."""
    problems = production_problems(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=allowed_hosts,
        base_domain=base_domain,
    )
    if problems:
        raise SystemExit("\n".join(f"LEANVIBE_ENV=production refuses to start: {p}" for p in problems))
