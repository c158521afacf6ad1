"""Management commands: provision_tenant, tenants_list, tenant_suspend / tenant_resume, platform_migrate."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role, User
from accounts.services import user_create
from leanvibe.health import pending_migrations
from tenants.models import Tenant


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def _printed(label: str, output: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(\S+)$", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match.group(1)


def test_provision_tenant_prints_credentials_that_work(api, db):
    output = run(
        "provision_tenant", "Initech Labs", "--admin-email", "Owner@Initech.test", "--plan", "professional"
    )

    subdomain, owner, password = (_printed(label, output) for label in ("subdomain", "owner", "password"))
    assert (subdomain, owner) == ("initech-labs", "owner@initech.test")
    assert "http://initech-labs.localhost:8000/accounts/login/" in output

    tenant = Tenant.objects.get(schema_name="initech-labs")
    assert (tenant.organization_name, tenant.plan, tenant.billing_email) == (
        "Initech Labs",
        "professional",
        "Owner@Initech.test",
    )
    assert tenant.primary_domain == "initech-labs.localhost"
    assert schema_exists("initech-labs")
    with schema_context("initech-labs"):
        assert User.objects.get().role == Role.OWNER

    login = api.post("/api/v1/auth/login", {"email": owner, "password": password}, host=tenant.primary_domain)
    assert login.status_code == 200, login.body
    assert login.body["token_type"] == "bearer"


def test_provision_tenant_with_a_given_password_does_not_print_it(api, db):
    output = run(
        "provision_tenant",
        "Hooli",
        "--admin-email",
        "gavin@hooli.test",
        "--billing-email",
        "ap@hooli.test",
        "--admin-password",
        "a-sturdy-pass-phrase",
    )
    assert "password:" not in output and "a-sturdy-pass-phrase" not in output
    assert Tenant.objects.get(schema_name="hooli").billing_email == "ap@hooli.test"
    login = api.post(
        "/api/v1/auth/login",
        {"email": "gavin@hooli.test", "password": "a-sturdy-pass-phrase"},
        host="hooli.localhost",
    )
    assert login.status_code == 200


def test_provision_tenant_rejects_bad_input_and_creates_nothing(db):
    with pytest.raises(CommandError):
        run("provision_tenant", "Bad Email Inc", "--admin-email", "not-an-email")
    with pytest.raises(CommandError):
        run("provision_tenant", "Weak Inc", "--admin-email", "a@weak.test", "--admin-password", "123")
    assert not Tenant.objects.exists()
    assert not schema_exists("bad-email-inc") and not schema_exists("weak-inc")


def test_tenants_list_shows_every_tenant_with_its_user_count(tenant_a, tenant_b):
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email="dev@acme.test", password=None, role=Role.MEMBER)
    tenant_b.tenant.status = Tenant.Status.SUSPENDED
    tenant_b.tenant.save()

    output = run("tenants_list")

    lines = output.splitlines()
    assert lines[0].split() == ["ID", "SUBDOMAIN", "PLAN", "STATUS", "USERS", "NAME"]
    acme = next(line for line in lines if tenant_a.id in line).split()
    globex = next(line for line in lines if tenant_b.id in line).split()
    assert acme[1:5] == ["acme-corporation", "starter", "active", "2"]
    assert " ".join(acme[5:]) == "Acme Corporation"
    assert globex[1:5] == ["globex-industries", "starter", "suspended", "1"]
    assert lines[-1] == "2 organisation(s)"

    only_suspended = run("tenants_list", "--status", "suspended")
    assert tenant_b.id in only_suspended and tenant_a.id not in only_suspended


@pytest.mark.parametrize("reference", ["id", "subdomain", "upper-case subdomain"])
def test_suspend_and_resume_by_id_or_subdomain(api, tenant_a, tenant_b, reference):
    ref = {
        "id": tenant_a.id,
        "subdomain": tenant_a.tenant.schema_name,
        "upper-case subdomain": tenant_a.tenant.schema_name.upper(),
    }[reference]

    output = run("tenant_suspend", ref)
    assert "Acme Corporation (acme-corporation) is now suspended" in output
    assert Tenant.objects.get(pk=tenant_a.tenant.pk).status == "suspended"
    assert Tenant.objects.get(pk=tenant_b.tenant.pk).status == "active"
    refused = api.post("/api/v1/auth/login", {"email": "x@y.test", "password": "x"}, host=tenant_a.host)
    assert (refused.status_code, refused.body["error"]) == (403, "tenant_suspended")

    output = run("tenant_resume", ref)
    assert "is now active" in output
    assert Tenant.objects.get(pk=tenant_a.tenant.pk).status == "active"
    tenant_a.login(api)


@pytest.mark.parametrize("command", ["tenant_suspend", "tenant_resume"])
@pytest.mark.parametrize("reference", ["no-such-org", "00000000-0000-0000-0000-000000000000", "public"])
def test_suspend_and_resume_refuse_an_unknown_tenant(tenant_a, command, reference):
    with pytest.raises(CommandError, match="No organisation"):
        run(command, reference)
    assert Tenant.objects.get(pk=tenant_a.tenant.pk).status == "active"


def test_platform_migrate_reports_progress_and_leaves_nothing_pending(tenant_a, tenant_b):
    output = run("platform_migrate", "--verbosity", "1")

    lines = output.splitlines()
    assert lines[0] == "[1/4] public schema"
    assert "[2/4] tenant template schema" in lines
    # Both current (cloned from the migrated template): found in one query, not migrated again.
    assert "[3/4] 2 tenant schema(s): 2 current, 0 to migrate" in lines
    assert not any("acme-corporation" in line for line in lines)
    assert "[4/4] schema pool: 0 new clone(s)" in lines  # TENANT_POOL_SIZE is 0 in tests
    assert lines[-1] == "All schemas are migrated."
    assert pending_migrations() == []


def test_platform_migrate_repairs_a_schema_with_a_missing_migration(tenant_a):
    """A tenant schema that lost a migration is migrated again by the deploy command."""
    from django.db import connection

    schema = tenant_a.tenant.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s',  # noqa: S608
            ["usersessions", "0001_initial"],
        )
        cursor.execute(f'DROP TABLE "{schema}".usersessions_usersession')
    assert pending_migrations() == [schema]

    output = run("platform_migrate", "--no-pool")

    assert "[3/4] 1 tenant schema(s): 0 current, 1 to migrate" in output
    assert re.search(rf"\[#+\] 1/1 {schema} ok \(", output), output
    assert "1 migrated, 0 failed" in output
    assert pending_migrations() == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f'"{schema}".usersessions_usersession'])
        assert cursor.fetchone()[0] is not None


def _lose_migration(schema: str, *, drop_table: bool) -> None:
    """Forget ``usersessions.0001_initial`` in ``schema``; with its table dropped it can be
    applied again, with the table kept applying it fails (the table exists)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s',  # noqa: S608
            ["usersessions", "0001_initial"],
        )
        if drop_table:
            cursor.execute(f'DROP TABLE "{schema}".usersessions_usersession')


def test_platform_migrate_reports_a_failing_schema_migrates_the_others_and_exits_1(tenant_a, tenant_b):
    broken, repairable = tenant_a.tenant.schema_name, tenant_b.tenant.schema_name
    _lose_migration(broken, drop_table=False)
    _lose_migration(repairable, drop_table=True)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("platform_migrate", "--no-pool", stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert f"{broken} FAILED" in out.getvalue() and f"{repairable} ok" in out.getvalue()
    assert "1 migrated, 1 failed" in out.getvalue()
    assert f"1 tenant schema(s) failed: {broken}" in err.getvalue()
    assert "already exists" in err.getvalue()
    assert pending_migrations() == [broken]


@pytest.fixture
def committed_tenants(transactional_db, make_tenant):
    """Tenants whose rows and schemas are committed (worker processes see them); dropped after."""
    handles = [make_tenant(f"Parallel {n}") for n in range(3)]
    yield handles
    for tenant in Tenant.objects.all():
        tenant.delete(force_drop=True)


def test_platform_migrate_migrates_pending_schemas_in_parallel_processes(committed_tenants):
    current, *lost = (handle.tenant.schema_name for handle in committed_tenants)
    for schema in lost:
        _lose_migration(schema, drop_table=True)
    assert pending_migrations() == sorted(lost)

    output = run("platform_migrate", "--no-pool", "--jobs", "2")

    assert "[3/4] 3 tenant schema(s): 1 current, 2 to migrate (2 processes)" in output
    assert all(f"{schema} ok" in output for schema in lost) and current not in output
    assert "2 migrated, 0 failed" in output
    assert pending_migrations() == []
