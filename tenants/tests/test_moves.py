"""``manage.py tenant_export`` / ``tenant_import`` with the real pg_dump, pg_restore and psql: a
tenant with members, projects, agent tasks, audit events and public rows (billing account, usage
ledger, dj-stripe customer link) is exported, dropped and imported, and every row of its schema
and every public row of it comes back byte for byte; a copy beside it with ``--rename``; into
another database, which then serves it; refusals leave everything as it was."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections
from django_tenants.utils import schema_context, schema_exists
from djstripe.models import Customer as DjstripeCustomer

from accounts.models import AuditEvent, User
from agents.models import Agent, DevelopmentTask, Project, TaskEvent, TaskStep
from billing.models import BillingAccount, UsageRecord
from leanvibe.db import connection
from leanvibe.platform.backups import backup_create, backup_restore, connection_args, pg_program
from leanvibe.serving import server_process
from leanvibe.tests.test_backups import _rows, _server, _url
from leanvibe.tests.test_backups_s3 import BUCKET, s3, s3_server  # noqa: F401
from tenants.models import Domain, Tenant
from tenants.moves import MANIFEST, PUBLIC_ROWS, SCHEMA_DUMP

KEY = Fernet.generate_key().decode()

PUBLIC_TABLES = {
    "tenants_tenant": "id",
    "tenants_domain": "tenant_id",
    "billing_billingaccount": "tenant_id",
    "billing_usagerecord": "tenant_id",
    "djstripe_customer": "subscriber_id",
}


def _public_rows(database: dict[str, Any], tenant_id: Any) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(**{**_server(database), "dbname": database["NAME"]}) as conn:
        return {
            table: sorted(
                conn.execute(f"SELECT * FROM public.{table} WHERE {column} = %s", [tenant_id]).fetchall(),  # noqa: S608
                key=repr,
            )
            for table, column in PUBLIC_TABLES.items()
        }


def _schemas(database: dict[str, Any]) -> set[str]:
    with psycopg.connect(**{**_server(database), "dbname": database["NAME"]}) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}


def _populate(tenant: Tenant, other: Tenant) -> None:
    """Members, projects, tasks with steps and events, audit events; public rows of billing."""
    now = datetime.now(UTC)
    with schema_context(tenant.schema_name):
        member = User.objects.create_user(email="dev@example.com", password="another-horse-battery")
        agent = Agent.objects.create(name="move-coder", model="tiny")
        project = Project.objects.create(name="Ünïcode ✓ 'quoted'", description="tab\there\nnewline")
        task = DevelopmentTask.objects.create(
            project=project,
            title="Add a health check",
            description="...",
            requirements=["returns 200"],
            created_by=member,
            agent=agent,
            quality={"tests_passed": 3, "coverage": 0.875},
        )
        TaskStep.objects.create(task=task, name="plan", prompt="p", output="o", tokens_in=12)
        TaskEvent.objects.create(task=task, seq=1, type="status", data={"status": "queued"})
        AuditEvent.objects.create(type=AuditEvent.Type.PASSWORD_RESET, actor=member, actor_email=member.email)
    BillingAccount.objects.create(
        tenant=tenant, stripe_customer_id="cus_move_1", stripe_subscription_id="sub_move_1", status="active"
    )
    for minute in range(3):
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=minute)
        UsageRecord.objects.create(
            tenant=tenant,
            metric="api_calls",
            quantity=10 + minute,
            window_start=start,
            window_end=start + timedelta(minutes=1),
            source="counter",
            idempotency_key=f"{tenant.id}:api_calls:{start:%Y%m%d%H%M}",
        )
    DjstripeCustomer.objects.create(id="cus_move_1", subscriber=tenant, livemode=False)
    # The other tenant's rows, which must stay out of the archive.
    BillingAccount.objects.create(tenant=other, stripe_customer_id="cus_other")
    DjstripeCustomer.objects.create(id="cus_other", subscriber=other, livemode=False)


@pytest.fixture
def moving(transactional_db: None, make_tenant: Any, api: Any) -> Iterator[tuple[Any, Any]]:
    """Two committed tenants, the first with data everywhere; everything dropped afterwards."""
    handle, other = make_tenant("Moving Company"), make_tenant("Staying Put")
    _populate(handle.tenant, other.tenant)
    yield handle, other
    connections.close_all()
    connection.set_schema_to_public()
    DjstripeCustomer.objects.filter(id__in=["cus_move_1", "cus_other"]).delete()
    for tenant in Tenant.objects.all():
        tenant.delete(force_drop=True)


def _snapshot(handle: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    database = settings.DATABASES["default"]
    return _rows(database, [handle.tenant.schema_name]), _public_rows(database, handle.tenant.id)


def _export(handle: Any, folder: Path, *extra: str) -> Path:
    out = io.StringIO()
    call_command("tenant_export", handle.tenant.schema_name, str(folder), *extra, stdout=out)
    [archive] = [path for path in folder.iterdir() if path.name.startswith("tenant-")]
    assert str(archive) in out.getvalue()
    return archive


def _login_status(api: Any, host: str, email: str, password: str) -> int:
    response = api.post("/api/v1/auth/login", {"email": email, "password": password}, host=host)
    return int(response.status_code)


def test_export_drop_import_brings_back_every_row(moving, tmp_path, api):
    handle, other = moving
    before_schema, before_public = _snapshot(handle)
    assert len(before_public["billing_usagerecord"]) == 3 and len(before_public["djstripe_customer"]) == 1
    assert {"agents_project", "agents_developmenttask", "agents_taskstep", "accounts_auditevent"} <= {
        table.split(".", 1)[1] for table, rows in before_schema.items() if rows
    }
    archive = _export(handle, tmp_path)

    # Nothing of the other tenant: the dump holds one schema, the JSON none of its ids or names.
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted([MANIFEST, PUBLIC_ROWS, SCHEMA_DUMP])
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        public = tar.extractfile(PUBLIC_ROWS).read().decode()  # type: ignore[union-attr]
        tar.extract(SCHEMA_DUMP, tmp_path / "x", filter="data")
    assert (manifest["schema"], manifest["tenant_id"], manifest["format"]) == (
        handle.tenant.schema_name,
        handle.id,
        1,
    )
    assert manifest["counts"]["public"]["billing.usagerecord"] == 3
    assert manifest["counts"]["schema"]["agents_developmenttask"] == 1
    assert "agents" in manifest["migrations"] and "billing" in manifest["migrations"]
    assert other.id not in public and other.tenant.schema_name not in public and "cus_other" not in public
    _args, env = connection_args()
    listing = subprocess.run(
        [pg_program("pg_restore"), "--list", str(tmp_path / "x" / SCHEMA_DUMP)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    entries = [line.split() for line in listing.splitlines() if line and not line.startswith(";")]
    # "<id>; <oids> <TYPE words> <namespace> <name...> <owner>": every entry is of the one schema.
    schema = handle.tenant.schema_name
    assert entries and all(schema in parts for parts in entries)
    assert not any(
        {"public", other.tenant.schema_name, settings.TENANT_TEMPLATE_SCHEMA} & set(p) for p in entries
    )
    assert [parts[3:6] for parts in entries if parts[3] == "SCHEMA"] == [["SCHEMA", "-", schema]]
    assert sum(parts[3:5] == ["TABLE", "DATA"] for parts in entries) == len(before_schema)

    # Dropped as a delete drops it (schema, cascaded rows; the Stripe mirror row stays, unlinked).
    Tenant.objects.get(id=handle.id).delete(force_drop=True)
    assert not schema_exists(handle.tenant.schema_name)
    assert DjstripeCustomer.objects.get(id="cus_move_1").subscriber_id is None

    out = io.StringIO()
    call_command("tenant_import", str(archive), stdout=out)
    assert "djstripe.customer: 1 linked" in out.getvalue()
    after_schema, after_public = _snapshot(handle)
    assert after_schema.keys() == before_schema.keys()
    for table in before_schema:
        assert after_schema[table] == before_schema[table], table
    assert after_public == before_public
    assert _login_status(api, handle.host, "dev@example.com", "another-horse-battery") == 200
    # Sequences moved past the restored ids: a new domain row gets a fresh id.
    Domain.objects.create(domain=f"extra.{handle.tenant.schema_name}.example", tenant_id=handle.id)


def test_an_existing_tenant_is_refused_unless_renamed(moving, tmp_path, api):
    handle, other = moving
    archive = _export(handle, tmp_path)
    schemas, tenants = _schemas(settings.DATABASES["default"]), Tenant.objects.count()
    with pytest.raises(
        CommandError, match=r"already in this database: tenant id .*subdomain .*schema .*--rename"
    ):
        call_command("tenant_import", str(archive), stdout=io.StringIO())
    with pytest.raises(CommandError, match="subdomain 'staying-put'"):
        call_command(
            "tenant_import", str(archive), "--rename", other.tenant.schema_name, stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="not a valid subdomain"):
        call_command("tenant_import", str(archive), "--rename", "Not Valid!", stdout=io.StringIO())
    assert (_schemas(settings.DATABASES["default"]), Tenant.objects.count()) == (schemas, tenants)

    original_rows, _ = _snapshot(handle)
    call_command("tenant_import", str(archive), "--rename", "moved-copy", stdout=io.StringIO())
    copy = Tenant.objects.get(schema_name="moved-copy")
    assert copy.id != handle.tenant.id and copy.organization_name == handle.tenant.organization_name
    assert list(copy.domains.values_list("domain", flat=True)) == [f"moved-copy.{settings.BASE_DOMAIN}"]
    copy_rows = _rows(settings.DATABASES["default"], ["moved-copy"])
    assert {t.split(".", 1)[1]: r for t, r in copy_rows.items()} == {
        t.split(".", 1)[1]: r for t, r in original_rows.items()
    }
    # The original, parked under another name while the copy was restored, is as it was.
    assert _rows(settings.DATABASES["default"], [handle.tenant.schema_name]) == original_rows
    account = BillingAccount.objects.get(tenant=copy)
    assert (account.stripe_customer_id, account.stripe_subscription_id, account.status) == ("", "", "active")
    keys = list(UsageRecord.objects.filter(tenant=copy).values_list("idempotency_key", flat=True))
    assert len(keys) == 3 and all(key.startswith(f"{copy.id}:") for key in keys)
    assert DjstripeCustomer.objects.get(id="cus_move_1").subscriber_id == handle.tenant.id
    # Both work, each in its own schema.
    assert _login_status(api, handle.host, "dev@example.com", "another-horse-battery") == 200
    assert (
        _login_status(api, f"moved-copy.{settings.BASE_DOMAIN}", "dev@example.com", "another-horse-battery")
        == 200
    )
    with schema_context("moved-copy"):
        Project.objects.create(name="only in the copy")
        # The copy's id sequences are its own and continue past the restored ids.
        newcomer = User.objects.create_user(email="new@example.com", password="yet-another-horse-battery")
        assert newcomer.id > User.objects.exclude(id=newcomer.id).order_by("-id")[0].id
    with schema_context(handle.tenant.schema_name):
        assert not Project.objects.filter(name="only in the copy").exists()


def test_an_encrypted_archive_needs_its_key_and_refuses_tampering(moving, tmp_path, settings):
    handle, _ = moving
    settings.BACKUP_ENCRYPTION_KEY = KEY
    archive = _export(handle, tmp_path, "--encrypt")
    assert archive.name.endswith(".tar.enc") and not tarfile.is_tarfile(archive)
    Tenant.objects.get(id=handle.id).delete(force_drop=True)
    schemas = _schemas(settings.DATABASES["default"])

    settings.BACKUP_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(CommandError, match=r"cannot be decrypted: .*wrong key"):
        call_command("tenant_import", str(archive), stdout=io.StringIO())
    settings.BACKUP_ENCRYPTION_KEY = KEY
    tampered = tmp_path / "tampered.tar.enc"
    blob = bytearray(archive.read_bytes())
    blob[len(blob) // 2] ^= 1
    tampered.write_bytes(bytes(blob))
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("tenant_import", str(tampered), stdout=io.StringIO())
    assert (
        _schemas(settings.DATABASES["default"]) == schemas
        and not Tenant.objects.filter(id=handle.id).exists()
    )

    call_command("tenant_import", str(archive), stdout=io.StringIO())
    assert Tenant.objects.filter(id=handle.id).exists() and schema_exists(handle.tenant.schema_name)


def _rewritten(archive: Path, folder: Path, change: Any) -> Path:
    """A copy of a plain archive with one member changed by ``change(name, data) -> data``."""
    out = folder / "changed.tar"
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            data = change(member.name, source.extractfile(member).read())  # type: ignore[union-attr]
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out


def test_a_failure_midway_leaves_no_half_tenant(moving, tmp_path):
    handle, other = moving
    archive = _export(handle, tmp_path)
    Tenant.objects.get(id=handle.id).delete(force_drop=True)
    schemas = _schemas(settings.DATABASES["default"])

    def zero_usage(name: str, data: bytes) -> bytes:
        if name != PUBLIC_ROWS:
            return data
        rows = json.loads(data)
        rows["billing.usagerecord"][-1]["fields"]["quantity"] = 0  # breaks a check constraint
        return json.dumps(rows).encode()

    broken = _rewritten(archive, tmp_path, zero_usage)
    with pytest.raises(CommandError, match=r"nothing was imported: .*usage_record_quantity_positive"):
        call_command("tenant_import", str(broken), stdout=io.StringIO())
    # The schema had been restored and the tenant and domain rows inserted: all gone again.
    assert _schemas(settings.DATABASES["default"]) == schemas
    assert not Tenant.objects.filter(id=handle.id).exists() and not Domain.objects.filter(tenant_id=handle.id)
    assert not UsageRecord.objects.filter(tenant_id=handle.id).exists()

    def other_release(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["migrations"]["agents"] = ["9999_from_the_future"]
        return json.dumps(manifest).encode()

    with pytest.raises(CommandError, match=r"another migration state .*agents.*9999_from_the_future"):
        call_command("tenant_import", str(_rewritten(archive, tmp_path, other_release)), stdout=io.StringIO())
    not_an_archive = tmp_path / "nothing.tar"
    not_an_archive.write_bytes(b"PGDMP not a tar")
    with pytest.raises(CommandError, match="not a tenant archive"):
        call_command("tenant_import", str(not_an_archive), stdout=io.StringIO())
    with pytest.raises(CommandError, match="no file at"):
        call_command("tenant_import", str(tmp_path / "missing.tar"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="no folder"):
        call_command("tenant_export", other.id, str(tmp_path / "a" / "b.tar"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="No organisation 'nobody'"):
        call_command("tenant_export", "nobody", str(tmp_path), stdout=io.StringIO())
    assert _schemas(settings.DATABASES["default"]) == schemas


@pytest.fixture
def target_database(transactional_db: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``test_export_target``: a copy of the test database as it is before any tenant (public
    and the migrated template), made with a whole backup; dropped afterwards."""
    database = dict(settings.DATABASES["default"])
    name = f"{database['NAME']}_target"
    assert name.startswith("test_")
    with psycopg.connect(**_server(database), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    target = {**database, "NAME": name}
    try:
        backup_restore(backup_create(tmp_path / "base.dump"), database=target)
        yield target
    finally:
        with psycopg.connect(**_server(database), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_tenant_moves_to_another_database_through_a_bucket_and_is_served_there(
    target_database,
    moving,
    s3,  # noqa: F811
    settings,
):
    handle, other = moving
    settings.BACKUP_ENCRYPTION_KEY = KEY
    out = io.StringIO()
    call_command("tenant_export", handle.id, f"s3://{BUCKET}/tenants/", "--encrypt", stdout=out)
    [item] = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert item["Key"].startswith(f"tenants/tenant-{handle.tenant.schema_name}-")

    out = io.StringIO()
    call_command(
        "tenant_import", f"s3://{BUCKET}/{item['Key']}", "--database-url", _url(target_database), stdout=out
    )
    assert "imported Moving Company" in out.getvalue()

    source = settings.DATABASES["default"]
    schema = handle.tenant.schema_name
    assert _rows(target_database, [schema]) == _rows(source, [schema])
    assert _public_rows(target_database, handle.tenant.id) == _public_rows(source, handle.tenant.id)
    assert other.tenant.schema_name not in _schemas(target_database)
    assert _public_rows(target_database, other.tenant.id) == {table: [] for table in PUBLIC_TABLES}
    # The id sequences there moved past the ids brought along: new rows get fresh ones.
    with psycopg.connect(**{**_server(target_database), "dbname": target_database["NAME"]}) as conn:
        conn.execute(
            "INSERT INTO public.tenants_domain (domain, tenant_id, is_primary) "
            "VALUES ('extra.example', %s, false)",
            [handle.id],
        )
        conn.execute(
            "INSERT INTO public.billing_usagerecord (tenant_id, metric, quantity, window_start, window_end, "
            "source, metadata, idempotency_key, created_at) "
            "VALUES (%s, 'api_calls', 1, now(), now(), 'api', '{}', 'fresh', now())",
            [handle.id],
        )

    # gunicorn on the other database signs a member of the moved tenant in.
    # The test run's password hasher (conftest), so the member's stored hash verifies there.
    env = {"DATABASE_URL": _url(target_database), "PASSWORD_HASHERS": ",".join(settings.PASSWORD_HASHERS)}
    command = [str(Path(sys.executable).parent / "gunicorn"), "leanvibe.wsgi:application"]
    command += ["--bind", "127.0.0.1:{port}", "--workers", "1"]
    with server_process(command, name="moved", env=env, timeout=90) as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            data=json.dumps({"email": "dev@example.com", "password": "another-horse-battery"}).encode(),
            headers={"Host": handle.host, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            assert response.status == 200 and json.loads(response.read())["access_token"]


def test_the_other_database_refuses_what_it_has_already(target_database, moving, tmp_path):
    handle, _ = moving
    archive = _export(handle, tmp_path)
    call_command("tenant_import", str(archive), "--database-url", _url(target_database), stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"failed: .*already in this database: tenant id"):
        call_command(
            "tenant_import", str(archive), "--database-url", _url(target_database), stdout=io.StringIO()
        )
    assert Tenant.objects.filter(id=handle.id).exists()  # the source still has it
    # A database whose public schema is behind the code is refused, even for a copy.
    with psycopg.connect(**{**_server(target_database), "dbname": target_database["NAME"]}) as conn:
        conn.execute(
            "DELETE FROM public.django_migrations WHERE id = "
            "(SELECT max(id) FROM public.django_migrations WHERE app = 'billing')"
        )
    with pytest.raises(CommandError, match="lacks migrations of the code: run manage"):
        call_command(
            "tenant_import",
            str(archive),
            "--rename",
            "another-copy",
            "--database-url",
            _url(target_database),
            stdout=io.StringIO(),
        )
