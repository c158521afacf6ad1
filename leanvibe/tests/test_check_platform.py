"""``manage.py check_platform``: each check passes, fails and (where it applies) is skipped
against the real test database, Redis, sandbox, local Stripe and a real Celery worker."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from leanvibe import redis as lv_redis
from leanvibe.platform import checks
from leanvibe.platform.checks import Status
from leanvibe.platform.tasks import platform_heartbeat
from tenants.tests.test_tasks import celery_worker  # noqa: F401 - the fixture


def _run(name: str) -> checks.CheckResult:
    (check,) = [c for c in checks.platform_checks() if c.name == name]
    return checks.platform_check_run(check)


def _command(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_platform", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_every_app_registers_its_checks():
    names = [check.name for check in checks.platform_checks()]
    assert names == [
        "database",
        "redis",
        "migrations",
        "celery workers",
        "celery beat",
        "disk space",
        "backup locks",
        "stripe",
        "agent sandbox",
        "inference backend",
    ]


@pytest.mark.django_db
def test_database_redis_and_migrations_pass_on_a_migrated_database(tenant_a):
    assert _run("database").status == Status.OK
    redis = _run("redis")
    assert redis.status == Status.OK and "PING" in redis.detail
    migrations = _run("migrations")
    assert migrations.status == Status.OK, migrations.detail
    assert "tenant schema(s)" in migrations.detail


@pytest.mark.django_db
def test_a_tenant_schema_missing_a_migration_fails_and_is_named(tenant_a):
    schema = tenant_a.tenant.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE id = '  # noqa: S608 - our schema name
            f'(SELECT max(id) FROM "{schema}".django_migrations WHERE app = %s)',
            ["agents"],
        )
    result = _run("migrations")
    assert result.status == Status.FAILED
    assert schema in result.detail


def test_beat_needs_a_fresh_heartbeat(settings):
    lv_redis.client().delete(checks.heartbeat_key())
    assert _run("celery beat").status == Status.FAILED
    platform_heartbeat.apply()  # what a worker does when beat sends it
    fresh = _run("celery beat")
    assert fresh.status == Status.OK and "s ago" in fresh.detail
    lv_redis.client().set(checks.heartbeat_key(), repr(time.time() - checks.HEARTBEAT_MAX_AGE - 5))
    stale = _run("celery beat")
    assert stale.status == Status.FAILED and "more than" in stale.detail


def test_no_worker_on_a_queue_fails(settings):
    result = _run("celery workers")
    assert result.status == Status.FAILED
    assert "no worker consumes" in result.detail


@pytest.mark.integration
def test_a_worker_on_every_expected_queue_passes(celery_worker):  # noqa: F811
    result = _run("celery workers")
    assert result.status == Status.OK, result.detail
    assert "1 worker(s)" in result.detail


def test_disk_space_below_the_minimum_fails(settings):
    assert _run("disk space").status == Status.OK
    settings.PLATFORM_CHECK_MIN_FREE_BYTES = 2**62
    result = _run("disk space")
    assert result.status == Status.FAILED and "GiB free" in result.detail


@pytest.mark.django_db
def test_stripe_skipped_when_billing_is_off_failed_without_endpoint_ok_with_one(settings, stripe_local):
    from djstripe.models import WebhookEndpoint

    from billing.tests.fixtures import WEBHOOK_SECRET

    settings.STRIPE_SECRET_KEY = ""
    assert _run("stripe").status == Status.SKIPPED
    settings.STRIPE_SECRET_KEY = "sk_test_LeanVibeLocal0123456789abcdef"
    no_endpoint = _run("stripe")
    assert no_endpoint.status == Status.FAILED and "billing_webhook_setup" in no_endpoint.detail
    WebhookEndpoint.objects.create(
        id="we_check",
        livemode=False,
        secret=WEBHOOK_SECRET,
        url="http://localhost/stripe/webhook/",
        enabled_events=["*"],
        status="enabled",
        api_version="2026-08-26.dahlia",
    )
    ok = _run("stripe")
    assert ok.status == Status.OK and "we_check" in ok.detail
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: Stripe unreachable
    assert _run("stripe").status == Status.FAILED


def test_sandbox_check_fails_without_bubblewrap(settings, tmp_path):
    assert _run("agent sandbox").status == Status.OK
    settings.SANDBOX_BWRAP = str(tmp_path / "no-bwrap")
    result = _run("agent sandbox")
    assert result.status == Status.FAILED and "bwrap" in result.detail


def test_inference_backend_loads_the_model_and_answers(settings, tmp_path):
    from agents.inference.tiny_model import tiny_model_build

    settings.AGENTS_BACKEND = "mlx"
    settings.AGENTS_MODEL_PATH = str(tmp_path / "missing")
    missing = _run("inference backend")
    assert missing.status == Status.FAILED and "missing" in missing.detail
    settings.AGENTS_MODEL_PATH = str(tiny_model_build(tmp_path / "tiny"))
    result = _run("inference backend")
    assert result.status == Status.OK, result.detail
    settings.AGENTS_BACKEND = "http"
    settings.AGENTS_INFERENCE_URL = ""
    assert _run("inference backend").status == Status.FAILED


@pytest.mark.django_db
def test_the_command_prints_a_line_per_check_and_exits_non_zero_on_a_failure(settings):
    lv_redis.client().delete(checks.heartbeat_key())
    code, out = _command("--only", "database", "celery beat")
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0].startswith("✓ database") and lines[1].startswith("✗ celery beat")
    assert "1 check(s) failed: celery beat" in lines[-1]

    platform_heartbeat.apply()
    code, out = _command("--only", "database", "celery beat", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["ok"] is True
    assert [(c["name"], c["status"]) for c in body["checks"]] == [("database", "ok"), ("celery beat", "ok")]

    with pytest.raises(CommandError, match="unknown check"):
        call_command("check_platform", "--only", "gremlins", stdout=StringIO())


@pytest.mark.django_db
def test_the_backup_lock_budget_is_read_from_the_server(tenant_a):
    from leanvibe.platform.backups import backup_lock_budget

    budget = backup_lock_budget()
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_locks_per_transaction")
        assert budget.per_process == int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [tenant_a.tenant.schema_name],
        )
        tenant_tables = cursor.fetchone()[0]
    # Every tenant schema's tables are counted (and the public schema's, the template's...).
    assert budget.tables > 2 * tenant_tables > 0
    assert budget.processes > 100
    locks = _run("backup locks")
    assert locks.status == Status.OK and f"{budget.tables:,} tables to lock" in locks.detail


def test_a_dump_that_could_not_take_its_locks_names_the_setting_to_raise():
    from leanvibe.platform.backups import LockBudget

    # About 400 tenant schemas of 25 tables on a server with PostgreSQL's defaults.
    over = LockBudget(tables=10_000, per_process=64, processes=122)
    assert over.capacity == 7_808
    assert over.needed == 256  # 256 x 122 = 31,232: the dump takes under half
    assert "max_locks_per_transaction to 256" in (over.problem or "")
    assert LockBudget(tables=6_000, per_process=64, processes=122).problem is None  # under 80 %
    assert LockBudget(tables=6_500, per_process=64, processes=122).problem  # over 80 %


@pytest.mark.django_db
def test_backup_refuses_up_front_when_pg_dump_could_not_lock_every_table(tmp_path, monkeypatch):
    from leanvibe.platform import backups

    monkeypatch.setattr(
        backups,
        "backup_lock_budget",
        lambda: backups.LockBudget(tables=40_000, per_process=64, processes=122),
    )
    with pytest.raises(CommandError, match="max_locks_per_transaction to 1024"):
        call_command("backup", str(tmp_path), stdout=StringIO())
    assert list(tmp_path.iterdir()) == []
