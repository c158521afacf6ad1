"""Fixtures shared by every app's tests.

Tenants are made with the real provisioning service: their schema is a clone of the migrated
template, created inside the test's transaction and so gone when the test ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

# The headless-Chromium fixtures (site_url, dropped_afterwards), for every app's browser tests;
# the local Stripe (stripe_local, catalog, endpoint), for every test that needs billing on.
pytest_plugins = ["leanvibe.tests.browser", "billing.tests.fixtures"]

# Each test database gets its own cache prefix and Celery queue, so two test runs sharing one
# Redis (two checkouts, or TEST_DATABASE_NAME set per run) never see each other's keys or tasks.
TEST_CACHE_PREFIX = f"lvtest-{settings.DATABASES['default']['TEST']['NAME']}"


def pytest_configure(config: pytest.Config) -> None:
    from leanvibe.celery import app as celery_app

    celery_app.conf.task_default_queue = TEST_CACHE_PREFIX
    # Routes (the agents' own queue) would leave the private queue: every task stays on it.
    celery_app.conf.task_routes = {}
    # Hashing at full strength costs ~0.3 s per password; tests only need a real hash.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CACHE_KEY_PREFIX = TEST_CACHE_PREFIX
    settings.CACHES["default"]["KEY_PREFIX"] = TEST_CACHE_PREFIX
    settings.TENANT_POOL_SIZE = 0


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    from tenants.schemas import template_migrate

    with django_db_blocker.unblock():
        template_migrate(verbosity=0)


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Rate-limit counters and API call counts of one test must not leak into the next."""
    from leanvibe import redis as lv_redis
    from tenants.usage import meter_local_reset

    meter_local_reset()  # calls counted in memory belong to the last test's Redis state
    client = lv_redis.client()
    # This run's keys only: the prefix not followed by more of a name ("lvtest-test_main" must
    # not take "lvtest-test_main2"'s keys, another test run on the same Redis).
    own = re.compile(re.escape(TEST_CACHE_PREFIX).encode() + rb"(?![\w-])")
    keys = [key for key in client.scan_iter(f"*{TEST_CACHE_PREFIX}*", count=1000) if own.search(key)]
    if keys:
        client.delete(*keys)
    yield


class ApiClient:
    """JSON calls through Django's test client, with a host, a tenant header or a token.

    Every response is checked to be JSON and never a 500.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        host: str | None = None,
        tenant_header: str | None = None,
        token: str | None = None,
        raw: bytes | str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        remote_addr: str | None = None,
    ) -> Any:
        extra: dict[str, str] = {}
        if remote_addr:
            extra["REMOTE_ADDR"] = remote_addr
        if host:
            extra["HTTP_HOST"] = host
        if tenant_header is not None:
            extra["HTTP_X_TENANT_ID"] = tenant_header
        if token:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        body: bytes | str = (
            b"" if data is None and raw is None else (raw if raw is not None else json.dumps(data))
        )
        meta: dict[str, Any] = extra
        response: Any = self.client.generic(method, path, body, content_type=content_type, **meta)
        assert response.status_code < 500, response.content
        if response.status_code != 204:
            assert response["Content-Type"].startswith("application/json"), response.content[:300]
            response.body = response.json()
        else:
            response.body = None
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, data, **kw)

    def patch(self, path: str, data: Any = None, **kw: Any) -> Any:
        return self.call("PATCH", path, data, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api(client: Client) -> ApiClient:
    return ApiClient(client)


class TenantHandle:
    """A provisioned tenant with its owner's credentials and a helper to log in."""

    def __init__(self, provisioned: Any, password: str) -> None:
        self.tenant = provisioned.tenant
        self.owner_email = provisioned.owner_email
        self.password = password
        self.host = self.tenant.primary_domain

    @property
    def id(self) -> str:
        return str(self.tenant.id)

    def login(self, api: ApiClient, email: str | None = None, password: str | None = None) -> str:
        response = api.post(
            "/api/v1/auth/login",
            {"email": email or self.owner_email, "password": password or self.password},
            host=self.host,
        )
        assert response.status_code == 200, response.body
        return str(response.body["access_token"])


@pytest.fixture
def make_tenant(db: None) -> Callable[..., TenantHandle]:
    from tenants.services import tenant_provision

    counter = iter(range(1, 10_000))

    def make(name: str | None = None, *, plan: str = "starter", email: str | None = None) -> TenantHandle:
        n = next(counter)
        name = name or f"Org {n}"
        password = "correct-horse-battery-staple"
        email = email or f"owner{n}@example.com"
        provisioned = tenant_provision(
            organization_name=name, billing_email=email, admin_email=email, plan=plan, admin_password=password
        )
        return TenantHandle(provisioned, password)

    return make


@pytest.fixture
def tenant_a(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant("Acme Corporation")


@pytest.fixture
def tenant_b(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant("Globex Industries")
