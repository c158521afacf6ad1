"""Level 6, Enterprise Master: sign-in enforced with three members, the audit log exported, a
data export downloaded. Each ticked by the real action through the API or a page, and never
by the actions next to it."""

from __future__ import annotations

from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.tasks import data_export_build
from accounts.tests.member_helpers import Org
from accounts.tests.mfa_helpers import enrol_totp
from accounts.tests.test_sso_oidc import idp  # noqa: F401 - the fixture
from tenants.journey.models import LevelUnlocked, StepDone

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _roots(settings, tmp_path):
    settings.EXPORTS_ROOT = tmp_path / "exports"
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "agents"


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


def done(org) -> set[str]:
    return set(StepDone.objects.filter(tenant_id=org.handle.tenant.pk).values_list("step", flat=True))


def _csv(org, **params):
    response = org.api.client.get(
        "/api/v1/audit-events",
        {"format": "csv", **params},
        HTTP_HOST=org.host,
        HTTP_AUTHORIZATION=f"Bearer {org.owner_token}",
    )
    assert response.status_code == 200
    response.getvalue()
    return response


def _ready_export(org) -> dict:
    started = org.call("POST", "/api/v1/exports")
    assert started.status_code == 202, started.body
    data_export_build.apply(args=[org.handle.id, started.body["id"]])
    ready = org.call("GET", f"/api/v1/exports/{started.body['id']}")
    assert ready.body["status"] == "ready", ready.body
    return dict(ready.body)


# --- sign_in_enforced -----------------------------------------------------------------------
def test_required_two_factor_ticks_the_step_once_a_third_member_joins(api, org):
    enrol_totp(api, org.host, org.owner_token)
    assert org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True}).status_code == 200
    assert "sign_in_enforced" not in done(org)  # one member
    org.add("dev1@example.com")
    assert "sign_in_enforced" not in done(org)  # two
    org.add("dev2@example.com")
    assert "sign_in_enforced" in done(org)


def test_three_members_without_the_rule_or_two_active_with_it_tick_nothing(api, org):
    org.add("dev1@example.com")
    second = org.add("dev2@example.com")
    assert org.call("PATCH", "/api/v1/auth/security", {"require_mfa": False}).status_code == 200
    assert "sign_in_enforced" not in done(org)  # three members, no rule
    deactivated = org.call("PATCH", f"/api/v1/users/{second['id']}", {"is_active": False})
    assert deactivated.status_code == 200, deactivated.body
    enrol_totp(api, org.host, org.owner_token)
    assert org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True}).status_code == 200
    assert "sign_in_enforced" not in done(org)  # the rule, two active members
    # Bringing the third member back completes it.
    reactivated = org.call("PATCH", f"/api/v1/users/{second['id']}", {"is_active": True})
    assert reactivated.status_code == 200, reactivated.body
    assert "sign_in_enforced" in done(org)


# --- audit_log_exported ---------------------------------------------------------------------
def test_downloading_the_audit_csv_ticks_the_step_and_reading_it_does_not(org):
    assert org.call("GET", "/api/v1/audit-events").status_code == 200
    assert org.call("GET", "/api/v1/audit-events?format=json&type=login").status_code == 200
    browser = Client(HTTP_HOST=org.host)
    browser.post("/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password})
    assert browser.get("/audit/").status_code == 200
    assert org.call("GET", "/api/v1/audit-events?format=csv&since=never").status_code == 400
    assert "audit_log_exported" not in done(org)
    _csv(org, type="login")
    assert "audit_log_exported" in done(org)


def test_the_audit_pages_csv_link_ticks_the_step(org):
    browser = Client(HTTP_HOST=org.host)
    browser.post("/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password})
    response = browser.get("/audit/csv/")
    assert response.status_code == 200
    response.getvalue()
    assert "audit_log_exported" in done(org)


# --- data_export_downloaded -----------------------------------------------------------------
def test_downloading_a_ready_export_ticks_the_step_and_asking_for_one_does_not(org):
    body = _ready_export(org)
    org.call("GET", "/api/v1/exports")
    browser = Client(HTTP_HOST=org.host)
    browser.post("/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password})
    assert browser.get("/settings/export/").status_code == 200
    path = urlsplit(body["download_url"]).path
    assert Client().get(path, {"signature": "forged"}, HTTP_HOST=org.host).status_code == 404
    assert "data_export_downloaded" not in done(org)
    link = urlsplit(body["download_url"])
    response = Client().get(f"{link.path}?{link.query}", HTTP_HOST=org.host)
    assert response.status_code == 200
    response.getvalue()
    assert "data_export_downloaded" in done(org)
    assert "audit_log_exported" not in done(org)  # the archive's audit log is not the CSV download


def test_level_six_unlocks_and_the_journey_check_agrees(api, org):
    enrol_totp(api, org.host, org.owner_token)
    org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True})
    org.add("dev1@example.com")
    org.add("dev2@example.com")
    _csv(org)
    assert 6 not in set(
        LevelUnlocked.objects.filter(tenant_id=org.handle.tenant.pk).values_list("number", flat=True)
    )
    link = urlsplit(_ready_export(org)["download_url"])
    Client().get(f"{link.path}?{link.query}", HTTP_HOST=org.host).getvalue()
    assert {"sign_in_enforced", "audit_log_exported", "data_export_downloaded"} <= done(org)
    assert LevelUnlocked.objects.filter(tenant_id=org.handle.tenant.pk, number=6).exists()
    out = StringIO()
    try:
        call_command("journey_check", org.handle.tenant.schema_name, stdout=out)
    except SystemExit:
        pytest.fail(out.getvalue())
    text = out.getvalue()
    assert "✓ Export the audit log" in text and "✓ Download a data export" in text
    assert "✓ SSO-only or required two-factor in force, with at least three members" in text


def test_sso_only_with_three_members_ticks_the_step(api, tenant_a, org, idp):  # noqa: F811
    from accounts.tests.test_sso_oidc import add_oidc

    add_oidc(api, tenant_a, idp, allowed_domains=["acme.test"])
    org.add("dev1@example.com")
    org.add("dev2@example.com")
    assert "sign_in_enforced" not in done(org)  # three members, nothing enforced yet
    only = org.call("PATCH", "/api/v1/auth/sso/settings", {"sso_only": True})
    assert only.status_code == 200, only.body
    assert "sign_in_enforced" in done(org)
