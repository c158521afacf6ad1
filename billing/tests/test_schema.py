"""dj-stripe and billing live in the public schema only: the template every tenant is cloned
from, and so every tenant, has none of their tables."""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def _tables(schema: str, prefix: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s",
            [schema, f"{prefix}%"],
        )
        return {row[0] for row in cursor.fetchall()}


def test_djstripe_and_billing_tables_are_in_public_only(tenant_a):
    assert {"djstripe_customer", "djstripe_subscription", "djstripe_webhookeventtrigger"} <= _tables(
        "public", "djstripe_"
    )
    assert "billing_billingaccount" in _tables("public", "billing_")
    for schema in (settings.TENANT_TEMPLATE_SCHEMA, tenant_a.tenant.schema_name):
        assert _tables(schema, "djstripe_") == set()
        assert _tables(schema, "billing_") == set()
    # The tenant schema is a real one (its own tables are there).
    assert "agents_project" in _tables(tenant_a.tenant.schema_name, "agents_")
