"""``/health`` (liveness) and ``/health/ready`` (PostgreSQL, Redis, migrations of every schema).

Each failure is real: a closed Redis port, a PostgreSQL URL nobody listens on, a migration row
removed from a tenant's schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_tenants.routers import TenantSyncRouter
from django_tenants.utils import schema_context

from leanvibe import health
from tenants.schemas import schema_clone_template

BASE_DIR = Path(__file__).resolve().parents[2]


def test_liveness_is_healthy_without_touching_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_liveness_answers_on_any_host(client, db, tenant_a):
    for host in (tenant_a.host, "unknown-org.localhost"):
        response = client.get("/health", HTTP_HOST=host)
        assert (response.status_code, response.json()) == (200, {"status": "healthy"})


def test_ready_when_database_redis_and_migrations_are_ok(client, tenant_a):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }
    assert health.pending_migrations() == []


def test_unavailable_when_redis_is_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("error: ConnectionError")
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "ok"


def test_unavailable_when_postgresql_is_down():
    """A separate process, configured with a PostgreSQL URL that nothing answers."""
    script = (
        "import json, django; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/health/ready');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leanvibe.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/none",
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    body = outcome["body"]
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"].startswith("error: OperationalError")
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["migrations"].startswith("skipped")


def test_unavailable_when_a_tenant_schema_misses_a_migration(client, tenant_a, tenant_b):
    schema = tenant_a.tenant.schema_name
    table = f"{connection.ops.quote_name(schema)}.django_migrations"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table} WHERE app = 'agents')"  # noqa: S608
        )
        assert cursor.rowcount == 1

    assert health.pending_migrations() == [schema]
    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["migrations"]
    assert schema in body["checks"]["migrations"]
    assert tenant_b.tenant.schema_name not in body["checks"]["migrations"]
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"


def test_unavailable_when_the_template_misses_a_migration(client, db):
    template = settings.TENANT_TEMPLATE_SCHEMA
    table = f"{connection.ops.quote_name(template)}.django_migrations"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE app = 'accounts'")  # noqa: S608

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert template in response.json()["checks"]["migrations"]


def test_a_clone_of_the_template_carries_every_migration(db):
    schema_clone_template("clone_check")
    template = connection.ops.quote_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:
        # The clone has a migration history of its own, equal to the template's.
        cursor.execute("SELECT to_regclass('clone_check.django_migrations')")
        assert cursor.fetchone()[0] is not None
        cursor.execute("SELECT app, name FROM clone_check.django_migrations ORDER BY app, name")
        cloned = cursor.fetchall()
        cursor.execute(f"SELECT app, name FROM {template}.django_migrations ORDER BY app, name")  # noqa: S608
        assert cloned == cursor.fetchall()

    # Without public on the search path, Django reads the clone's history and nothing else.
    with schema_context("clone_check", include_public=False):
        executor = MigrationExecutor(connection)
        leaves = executor.loader.graph.leaf_nodes()
        applied = set(executor.loader.applied_migrations)
        plan = executor.migration_plan(leaves)

    router = TenantSyncRouter()
    tenant_leaves = {(app, name) for app, name in leaves if router.app_in_list(app, settings.TENANT_APPS)}
    assert "agents" in {app for app, _ in tenant_leaves}  # a tenant app's latest migration
    assert tenant_leaves <= applied
    assert plan == []


# --- what anonymous callers learn, and the cached migrations check -----------------------------
ANONYMOUS = "203.0.113.5"  # not this machine: no operator details without METRICS_TOKEN


@pytest.fixture(autouse=True)
def _fresh_migrations_check():
    health.pending_migrations_cache_clear()
    yield
    health.pending_migrations_cache_clear()


def test_anonymous_callers_get_only_the_status(client, tenant_a):
    response = client.get("/health/ready", REMOTE_ADDR=ANONYMOUS)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_anonymous_callers_get_the_failing_check_names_only(client, tenant_a, settings):
    schema = tenant_a.tenant.schema_name
    table = f"{connection.ops.quote_name(schema)}.django_migrations"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE app = 'agents'")  # noqa: S608
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/health/ready", REMOTE_ADDR=ANONYMOUS)

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["redis", "migrations"]}
    text = response.content.decode()
    assert schema not in text and "Error" not in text and "127.0.0.1" not in text


def test_a_proxy_on_this_machine_does_not_make_its_clients_operators(client, db, settings):
    settings.NUM_PROXIES = 1
    response = client.get("/health/ready", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=ANONYMOUS)
    assert response.json() == {"status": "ready"}


def test_with_a_metrics_token_only_its_bearer_gets_the_details(client, db, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/health/ready").json() == {"status": "ready"}  # localhost no longer suffices
    detailed = client.get("/health/ready", REMOTE_ADDR=ANONYMOUS, HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert detailed.json()["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}


def test_the_migrations_check_is_reused_for_a_few_seconds(
    client, tenant_a, settings, django_assert_num_queries
):
    settings.HEALTH_MIGRATIONS_CACHE_SECONDS = 1
    # SELECT 1; the tenants' schemas, those present, every schema's migrations.
    with django_assert_num_queries(4):
        assert client.get("/health/ready", REMOTE_ADDR=ANONYMOUS).status_code == 200
    schema = tenant_a.tenant.schema_name
    table = f"{connection.ops.quote_name(schema)}.django_migrations"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE app = 'agents'")  # noqa: S608
    with django_assert_num_queries(1):  # SELECT 1 only: the last answer still holds
        assert client.get("/health/ready", REMOTE_ADDR=ANONYMOUS).status_code == 200
    time.sleep(1.1)
    with django_assert_num_queries(4):
        assert client.get("/health/ready", REMOTE_ADDR=ANONYMOUS).status_code == 503
