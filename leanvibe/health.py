"""``/health`` (liveness, no I/O) and ``/health/ready`` (database, Redis, migrations).

Answered before tenant resolution so probes work on any host and never touch a tenant.
Anonymous callers (the kubelet, anyone) learn only ``status`` and the names of failing checks;
operators (``leanvibe.http.is_operator``: the ``METRICS_TOKEN`` bearer token, or the machine
itself when none is set) also get each check's result, exception text and schema names
included. Failures are logged. The migrations check, which reads every schema, is computed at
most once per ``HEALTH_MIGRATIONS_CACHE_SECONDS`` per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_tenants.routers import TenantSyncRouter
from django_tenants.utils import get_public_schema_name, get_tenant_model

from leanvibe.http import is_operator

logger = logging.getLogger(__name__)


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


@lru_cache(maxsize=1)
def _expected_leaves() -> tuple[tuple[str, str], ...]:
    """The last migration of every app, as the code on disk has them."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return tuple(sorted(loader.graph.leaf_nodes()))


def pending_migrations() -> list[str]:
    """Schemas (public, the template, every tenant) missing the latest migration of an app
    they hold. One query, whatever the number of tenants."""
    router = TenantSyncRouter()
    leaves = _expected_leaves()
    public_leaves = [(a, n) for a, n in leaves if router.app_in_list(a, settings.SHARED_APPS)]
    tenant_leaves = [(a, n) for a, n in leaves if router.app_in_list(a, settings.TENANT_APPS)]
    schemas = [(get_public_schema_name(), public_leaves), (settings.TENANT_TEMPLATE_SCHEMA, tenant_leaves)]
    tenants = get_tenant_model().objects.values_list("schema_name", flat=True)
    schemas += [(name, tenant_leaves) for name in tenants]

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_namespace n WHERE n.nspname = ANY(%s) "
            "AND to_regclass(quote_ident(n.nspname) || '.django_migrations') IS NOT NULL",
            [[schema for schema, _ in schemas]],
        )
        present = {row[0] for row in cursor.fetchall()}
        missing = [schema for schema, _ in schemas if schema not in present]
        # The expected migrations are given once per kind of schema (two VALUES lists), and each
        # schema's branch counts those it lacks: with 1,000 schemas, repeating the 70-pair list in
        # every branch made PostgreSQL spend 10-15 s planning the query (bench/README.md,
        # *Migrations*); this way planning stays around a second.
        kinds = {"public_expected": public_leaves, "tenant_expected": tenant_leaves}
        ctes = [
            f"{cte}(app, name) AS (VALUES {', '.join(['(%s, %s)'] * len(pairs))})"
            for cte, pairs in kinds.items()
            if pairs
        ]
        params: list[str] = [item for pairs in kinds.values() if pairs for pair in pairs for item in pair]
        parts: list[str] = []
        for schema, expected in schemas:
            if schema not in present or not expected:
                continue
            table = f"{connection.ops.quote_name(schema)}.django_migrations"
            cte = "public_expected" if expected is public_leaves else "tenant_expected"
            parts.append(
                f"SELECT %s, (SELECT count(*) FROM {cte} e WHERE NOT EXISTS "  # noqa: S608 - quoted name
                f"(SELECT 1 FROM {table} m WHERE m.app = e.app AND m.name = e.name))"
            )
            params.append(schema)
        if parts:
            cursor.execute(f"WITH {', '.join(ctes)} " + " UNION ALL ".join(parts), params)
            missing += [row[0] for row in cursor.fetchall() if row[1] > 0]
    return sorted(missing)


_pending_cache: tuple[float, list[str]] | None = None  # (valid until, on time.monotonic(); result)


def pending_migrations_cached() -> list[str]:
    """:func:`pending_migrations`, reused for ``HEALTH_MIGRATIONS_CACHE_SECONDS`` (probes come
    every few seconds from every kubelet; migrations change once per deploy)."""
    global _pending_cache
    now = time.monotonic()
    if _pending_cache is not None and now < _pending_cache[0]:
        return list(_pending_cache[1])
    pending = pending_migrations()
    _pending_cache = (now + settings.HEALTH_MIGRATIONS_CACHE_SECONDS, pending)
    return list(pending)


def pending_migrations_cache_clear() -> None:
    global _pending_cache
    _pending_cache = None


def check_migrations() -> str:
    pending = pending_migrations_cached()
    if pending:
        raise RuntimeError(f"unapplied migrations in schema(s): {', '.join(pending[:10])}")
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "redis": check_redis,
    "migrations": check_migrations,
}


def readiness() -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    healthy = True
    for name, check in CHECKS.items():
        if name == "migrations" and results.get("database") != "ok":
            results[name] = "skipped: database unavailable"
            continue
        try:
            results[name] = check()
        except Exception as exc:  # any failure makes the check fail
            healthy = False
            results[name] = f"error: {type(exc).__name__}: {str(exc)[:200]}".strip()
            logger.warning("readiness check %s failed: %s", name, results[name])
    return healthy, results


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path.rstrip("/")
        if path == "/health":
            return JsonResponse({"status": "healthy"})
        if path == "/health/ready":
            ok, checks = readiness()
            failing = [
                name for name, result in checks.items() if result != "ok" and not result.startswith("skipped")
            ]
            body: dict[str, object] = {"status": "ready" if ok else "unavailable"}
            if is_operator(request):
                body["checks"] = checks
            if failing:
                body["failing"] = failing
            return JsonResponse(body, status=200 if ok else 503)
        return self.get_response(request)
