"""What the headless-Chromium tests share: the browser, its pages, the live-server fixtures and a
few steps every flow takes (sign in, sign out).

Registered for every app by the root conftest (``pytest_plugins``), so a test module only asks for
``site_url`` and opens ``with chromium() as browser:``.

The tests run against pytest-django's live server (a real HTTP server in a thread, static files
served), so the database is transactional there: every schema a test creates is dropped afterwards
(``dropped_afterwards``).

Playwright's sync API runs an event loop in the test's thread while the browser is open, and
Django refuses database calls then; check the database before ``with chromium()`` or after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Assertions wait as long as actions do: a loaded 2-core CI machine is slower than 5 s.
TIMEOUT_MS = 20_000

# A browser test module sets ``pytestmark = BROWSER_MARKS``.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
    ),
]


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def dropped_afterwards(transactional_db: None) -> Iterator[None]:
    """Tenant schemas made through the live server are committed; drop them when the test ends so
    that later tests start from the same database as ever (pytest-django then flushes the rows)."""
    from tenants.models import Tenant
    from tenants.schemas import schema_drop

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    schemas_before = _schemas()
    tenants_before = set(Tenant.objects.values_list("id", flat=True))
    yield
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    for tenant in Tenant.objects.exclude(id__in=tenants_before):
        tenant.delete(force_drop=True)
    for leftover in _schemas() - schemas_before:
        schema_drop(leftover)


@pytest.fixture
def site_url(live_server: Any, settings: Any, dropped_afterwards: None) -> str:
    """The public site on the live server; links to tenants point at the same port."""
    port = int(live_server.url.rsplit(":", 1)[1])
    settings.SITE_PORT = port
    settings.SITE_SCHEME = "http"
    return f"http://localhost:{port}"


def tenant_origin(site_url: str, tenant: Any) -> str:
    """The tenant's own site on the live server's port."""
    port = site_url.rsplit(":", 1)[1]
    return f"http://{tenant.primary_domain}:{port}"


def provision(organisation: str, owner_email: str, password: str) -> Any:
    """A tenant made by the real provisioning service (before the browser opens)."""
    from tenants.services import tenant_provision

    return tenant_provision(
        organization_name=organisation,
        billing_email=owner_email,
        admin_email=owner_email,
        plan="starter",
        admin_password=password,
    ).tenant


def _sync_api() -> Any:
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def expect(actual: Any) -> Any:
    """Playwright's ``expect``; inside ``chromium()`` its assertions wait ``TIMEOUT_MS``."""
    return _sync_api().expect(actual)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (a playwright ``Browser``), closed on leaving. Skips the test when
    playwright is not installed; makes the ARTIFACTS folder for screenshots."""
    sync_api = _sync_api()
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch_failures(page: Any, failed: list[str], *, request_failures: bool = True) -> None:
    """Append each 5xx response (and, unless told not to, each request that failed outright) the
    page sees to ``failed``, and every Content-Security-Policy violation the browser reports."""
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.on(
        "console",
        lambda m: failed.append(f"CSP: {m.text}") if "Content Security Policy" in m.text else None,
    )
    if request_failures:
        page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))


def new_page(
    browser: Any,
    failed: list[str] | None = None,
    *,
    viewport: dict[str, int] = DESKTOP,
    request_failures: bool = True,
) -> tuple[Any, Any]:
    """A fresh context (its own cookies) and a page in it, actions waiting ``TIMEOUT_MS``; with
    ``failed``, the page's failed requests are collected there (see ``watch_failures``)."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    if failed is not None:
        watch_failures(page, failed, request_failures=request_failures)
    return context, page


def sign_in(page: Any, origin: str, email: str, password: str) -> None:
    """Submit the organisation's sign-in form (the caller checks where it leads)."""
    page.goto(f"{origin}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Any) -> None:
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
