"""Owners who sign up with their own password confirm their address from the welcome email."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django_tenants.utils import schema_context

from tenants import emails

pytestmark = pytest.mark.django_db


def _address(handle) -> EmailAddress:
    with schema_context(handle.tenant.schema_name):
        return EmailAddress.objects.get(email=handle.owner_email)


def _confirm_link(handle) -> str:
    mail.outbox.clear()
    assert emails.send_welcome_email(handle.tenant) == 1  # the body of the on-commit task
    body = str(mail.outbox[0].body)
    match = re.search(r"(http://[^\s]+/accounts/confirm-email/[^\s]+/)", body)
    assert match, body
    return match.group(1)


def test_a_self_signed_up_owner_confirms_the_address_on_the_tenant_site(client, tenant_a):
    assert _address(tenant_a).verified is False
    link = _confirm_link(tenant_a)
    assert link.startswith(f"http://{tenant_a.tenant.primary_domain}")
    path = link.split(tenant_a.tenant.primary_domain, 1)[1].split("/", 1)[1]
    path = "/" + path
    page = client.get(path, HTTP_HOST=tenant_a.host)
    html = page.content.decode()
    assert page.status_code == 200 and "leanvibe.css" in html and tenant_a.owner_email in html
    assert _address(tenant_a).verified is False  # a GET (mail scanners) confirms nothing
    done = client.post(path, HTTP_HOST=tenant_a.host)
    assert done.status_code == 302
    assert _address(tenant_a).verified is True
    # Sign-in never waited for it.
    signed = client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": tenant_a.password},
        HTTP_HOST=tenant_a.host,
    )
    assert signed.status_code == 302 and signed["Location"] == "/"


def test_a_bad_key_shows_a_clear_error_page(client, tenant_a):
    page = client.get("/accounts/confirm-email/not-a-real-key/", HTTP_HOST=tenant_a.host)
    html = page.content.decode()
    assert page.status_code == 200 and "leanvibe.css" in html
    assert "expired or is invalid" in html
    assert client.post("/accounts/confirm-email/not-a-real-key/", HTTP_HOST=tenant_a.host).status_code != 302
    assert _address(tenant_a).verified is False


def test_a_link_of_one_tenant_confirms_nothing_in_another(client, tenant_a, tenant_b):
    """Ids repeat across schemas: tenant A's link must not confirm B's owner."""
    link = _confirm_link(tenant_a)
    path = "/" + link.split(tenant_a.tenant.primary_domain, 1)[1].split("/", 1)[1]
    client.post(path, HTTP_HOST=tenant_b.host)
    assert _address(tenant_b).verified is False
    assert _address(tenant_a).verified is False


def test_owners_created_with_a_generated_password_stay_verified_without_a_link(db):
    from tenants.services import tenant_provision

    provisioned = tenant_provision(
        organization_name="Console Org", billing_email="b@c.test", admin_email="o@c.test"
    )
    with schema_context(provisioned.tenant.schema_name):
        assert EmailAddress.objects.get(email="o@c.test").verified is True
    mail.outbox.clear()
    emails.send_welcome_email(provisioned.tenant)
    assert "confirm-email" not in mail.outbox[0].body
