from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role, User
from agents.models import Project
from leanvibe.db import connection
from tenants.models import Domain, PooledSchema, Tenant
from tenants.schemas import schema_fingerprint, schema_pool_refill
from tenants.services import tenant_provision


def _provision(name="Acme Corporation", **kw):
    args = {
        "organization_name": name,
        "billing_email": "billing@acme.test",
        "admin_email": "Owner@Acme.test",
        "admin_password": "correct-horse-battery-staple",
    }
    args.update(kw)
    return tenant_provision(**args)


@pytest.mark.django_db
def test_provision_creates_schema_owner_domain_and_welcome_project(settings):
    result = _provision(plan="professional")
    tenant = result.tenant
    assert tenant.schema_name == "acme-corporation"
    assert tenant.plan == "professional"
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.settings == {
        "require_mfa": False,
        "sso_only": False,
        "trust_idp_mfa": False,
        "timezone": "UTC",
    }
    assert (
        Domain.objects.get(tenant=tenant, is_primary=True).domain
        == f"acme-corporation.{settings.BASE_DOMAIN}"
    )
    assert schema_exists("acme-corporation")
    # The clone carries the template's full migration history.
    assert schema_fingerprint("acme-corporation") == schema_fingerprint(settings.TENANT_TEMPLATE_SCHEMA)
    with schema_context("acme-corporation"):
        owner = User.objects.get()
        assert owner.email == "owner@acme.test"
        assert owner.role == Role.OWNER
        assert check_password("correct-horse-battery-staple", owner.password)
        assert owner.password != "correct-horse-battery-staple"
        assert list(Project.objects.values_list("name", flat=True)) == ["Welcome"]
    # The owner does not exist on the public schema nor in another tenant.
    assert connection.schema_name == "public"
    assert not User.objects.filter(email="owner@acme.test").exists()


@pytest.mark.django_db
def test_taken_names_get_numbered_subdomains():
    first = _provision("Acme Corporation").tenant
    second = _provision("ACME corporation!", admin_email="b@acme.test").tenant
    third = _provision("acme---corporation", admin_email="c@acme.test").tenant
    assert [first.schema_name, second.schema_name, third.schema_name] == [
        "acme-corporation",
        "acme-corporation-1",
        "acme-corporation-2",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "subdomain"),
    [
        ("Admin", "admin-1"),
        ("WWW", "www-1"),
        ("public", "public-1"),
        ("API", "api-1"),
        ("Mail", "mail-1"),
        ("Static", "static-1"),
        ("pg_catalog", "pg-catalog"),
    ],
)
def test_reserved_names_are_never_used(name, subdomain):
    assert _provision(name).tenant.schema_name == subdomain


@pytest.mark.django_db
def test_generated_password_when_none_given():
    result = _provision(admin_password=None)
    assert result.generated_password and len(result.generated_password) >= 12
    with schema_context(result.tenant.schema_name):
        assert User.objects.get().check_password(result.generated_password)


@pytest.mark.django_db
def test_weak_password_refused_before_anything_is_made():
    with pytest.raises(ValidationError):
        _provision(admin_password="123")
    assert not Tenant.objects.exists()
    assert not schema_exists("acme-corporation")


@pytest.mark.django_db
def test_failure_midway_leaves_no_half_made_tenant():
    """The owner step fails after the tenant row, domain and schema exist: all of it goes."""
    with pytest.raises(ValidationError):
        # Passes the early email check, then fails the model's own validation (too long).
        _provision(admin_email=("x" * 250) + "@a.io")
    assert not Tenant.objects.exists()
    assert not Domain.objects.exists()
    assert not schema_exists("acme-corporation")


@pytest.mark.django_db
def test_provision_uses_a_pooled_schema_when_one_is_ready(settings):
    assert schema_pool_refill(size=1) == 1
    pooled = PooledSchema.objects.get().schema_name
    result = _provision()
    assert result.schema_source == "pool"
    assert not schema_exists(pooled)
    assert not PooledSchema.objects.exists()
    with schema_context(result.tenant.schema_name):
        assert User.objects.get().email == "owner@acme.test"
    # Empty pool: falls back to cloning.
    assert _provision("Other Org", admin_email="o@other.test").schema_source == "clone"


@pytest.mark.django_db
def test_failed_provisioning_puts_the_pooled_schema_back():
    schema_pool_refill(size=1)
    pooled = PooledSchema.objects.get().schema_name
    with pytest.raises(ValidationError):
        _provision(admin_email=("x" * 250) + "@a.io")
    assert PooledSchema.objects.get().schema_name == pooled
    assert schema_exists(pooled)
