"""Organisation names reach email subjects: CR, LF and other control characters are refused
wherever a name is set (400 ``validation_error`` on the API, an inline error on the pages), and a
name stored before the rule does not stop the tenant's emails."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from leanvibe.validators import strip_control_characters, validate_no_control_characters
from tenants import emails
from tenants.models import Tenant
from tenants.services import tenant_provision
from tenants.tests.test_admin import CHANGELIST, staff, staff_client  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

HOSTILE_NAMES = [
    "Acme\r\nBcc: everyone@evil.test",
    "Acme\nCorp",
    "Acme\rCorp",
    "Acme\tCorp",
    "Acme\x00Corp",
    "Acme\x85Corp",  # NEL
    "Acme\u2028Corp",  # line separator
    "Acme\x1bCorp",
]
FINE_NAMES = ["Acme Corp", "Société Générale", "株式会社アクメ", "Ací — “Quoted” & Co.", "Family 👨‍👩‍👧"]


@pytest.mark.parametrize("name", FINE_NAMES)
def test_the_validator_accepts_real_names(name):
    validate_no_control_characters(name)
    assert strip_control_characters(name) == name


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_validator_refuses_control_characters(name):
    with pytest.raises(ValidationError) as caught:
        validate_no_control_characters(name)
    assert caught.value.code == "control_characters"
    assert strip_control_characters(name).startswith("Acme ")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_api_sign_up_refuses_the_name(api, name):
    response = api.post(
        "/api/v1/tenants",
        {
            "organization_name": name,
            "billing_email": "b@acme.test",
            "admin_email": "o@acme.test",
            "admin_password": "correct-horse-battery-staple",
        },
    )
    assert response.status_code == 400, response.body
    assert response.body["error"] == "validation_error"
    assert "organization_name" in response.body["fields"]
    assert not Tenant.objects.exists()


def test_the_sign_up_page_shows_an_inline_error(client: Client):
    response = client.post(
        "/signup/",
        {
            "organization_name": "Acme\r\nBcc: everyone@evil.test",
            "admin_email": "o@acme.test",
            "admin_password": "correct-horse-battery-staple",
            "plan": "starter",
        },
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 400
    assert "control characters" in str(response.context["form"].errors["organization_name"])
    assert not Tenant.objects.exists()


def test_the_service_refuses_the_name():
    with pytest.raises(ValidationError) as caught:
        tenant_provision(
            organization_name="Acme\nCorp", billing_email="b@acme.test", admin_email="o@acme.test"
        )
    assert "organization_name" in caught.value.message_dict
    assert not Tenant.objects.exists()


def test_the_admin_console_add_and_change_forms_refuse_the_name(staff_client, tenant_a):  # noqa: F811
    added = staff_client.post(
        f"{CHANGELIST}add/",
        {
            "organization_name": "Initech\r\nX-Evil: 1",
            "billing_email": "billing@initech.test",
            "plan": "starter",
            "admin_email": "owner@initech.test",
            "admin_password": "",
        },
    )
    assert added.status_code == 200
    assert "organization_name" in added.context["adminform"].form.errors
    assert not Tenant.objects.filter(organization_name__startswith="Initech").exists()

    changed = staff_client.post(
        f"{CHANGELIST}{tenant_a.id}/change/",
        {
            "organization_name": "Acme\nRenamed",
            "plan": "starter",
            "billing_email": "billing@acme.test",
            "timezone": "UTC",
            "domains-TOTAL_FORMS": "0",
            "domains-INITIAL_FORMS": "0",
            "domains-MIN_NUM_FORMS": "0",
            "domains-MAX_NUM_FORMS": "1000",
        },
    )
    assert changed.status_code == 200
    assert "organization_name" in changed.context["adminform"].form.errors
    assert Tenant.objects.get(pk=tenant_a.tenant.pk).organization_name == "Acme Corporation"


def test_a_name_stored_before_the_rule_does_not_stop_the_emails(tenant_a: Any):
    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(organization_name="Acme\r\nBcc: everyone@evil.test")
    tenant = Tenant.objects.get(pk=tenant_a.tenant.pk)
    mail.outbox.clear()
    assert emails.send_welcome_email(tenant) == 1
    assert emails.send_followup_email(tenant) == 1
    assert [m.subject for m in mail.outbox] == [
        "Welcome to LeanVibe, Acme Bcc: everyone@evil.test",
        "How is Acme Bcc: everyone@evil.test getting on with LeanVibe?",
    ]
    assert all(m.bcc == [] for m in mail.outbox)
