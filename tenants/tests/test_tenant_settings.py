"""Typed tenant settings: one schema with defaults and validation, one service that writes them,
audits each change in the tenant's own log and emails owners about sign-in rules, and the admin
console saving through it (no raw JSON)."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connections
from django_tenants.utils import schema_context

from accounts.models import AuditEvent
from leanvibe.errors import DomainError
from tenants.models import Domain, Tenant
from tenants.registry import ChangeActor
from tenants.services import domain_remove, domain_save, tenant_settings_update
from tenants.tenant_settings import TenantSettings, settings_validate
from tenants.tests.test_admin import CHANGELIST, staff, staff_client  # noqa: F401  (fixtures)

ACTOR = ChangeActor(email="ops@leanvibe.test", via="command")


def _fresh(tenant: Tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


def _events(tenant: Tenant) -> list[tuple[str, str, dict]]:
    with schema_context(tenant.schema_name):
        return list(AuditEvent.objects.order_by("created_at").values_list("type", "actor_email", "data"))


def test_reading_is_forgiving_and_defaults_fill_what_an_old_row_lacks():
    assert TenantSettings.from_stored(None) == TenantSettings()
    assert TenantSettings.from_stored({"require_mfa": True}).require_mfa is True
    # A hand-edited or legacy row: wrong types read as the default, unknown keys are ignored.
    odd = TenantSettings.from_stored({"sso_only": "yes", "timezone": "Mars/Olympus", "legacy": 1})
    assert odd == TenantSettings()
    assert TenantSettings().to_stored() == {
        "require_mfa": False,
        "sso_only": False,
        "trust_idp_mfa": False,
        "timezone": "UTC",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"require_mfa": "true"}, "require_mfa"),
        ({"require_mfa": 1}, "require_mfa"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": 3}, "timezone"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_writing_is_strict(changes, field):
    with pytest.raises(ValidationError) as caught:
        settings_validate(changes)
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_new_tenants_start_with_every_setting_at_its_default(tenant_a):
    assert _fresh(tenant_a.tenant).settings == TenantSettings().to_stored()


@pytest.mark.django_db
def test_the_service_writes_audits_and_emails_owners_once(tenant_a, django_capture_on_commit_callbacks):
    tenant = tenant_a.tenant
    with django_capture_on_commit_callbacks(execute=True):
        changed = tenant_settings_update(
            tenant=tenant, changes={"require_mfa": True, "timezone": "UTC"}, actor=ACTOR
        )
    assert changed == {"require_mfa": True}  # the time zone was already UTC
    assert _fresh(tenant).typed_settings.require_mfa is True
    assert tenant.typed_settings.require_mfa is True  # the caller's object follows
    assert _events(tenant) == [
        (AuditEvent.Type.SECURITY_SETTINGS_CHANGED, "ops@leanvibe.test", {"changes": {"require_mfa": True}})
    ]
    [message] = mail.outbox
    assert message.to == [tenant_a.owner_email]
    assert "second factor" in message.body and "ops@leanvibe.test" in message.body

    # Not a sign-in rule: audited as a settings change, nobody emailed. The same value again: nothing.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tenant_settings_update(tenant=tenant, changes={"timezone": "Europe/Paris"}, actor=ACTOR)
        assert tenant_settings_update(tenant=tenant, changes={"timezone": "Europe/Paris"}, actor=ACTOR) == {}
    assert mail.outbox == []
    assert _events(tenant)[-1] == (
        AuditEvent.Type.SETTINGS_CHANGED,
        "ops@leanvibe.test",
        {"changes": {"timezone": "Europe/Paris"}},
    )
    assert len(_events(tenant)) == 2


@pytest.mark.django_db
def test_a_refused_or_invalid_change_writes_and_records_nothing(tenant_a):
    tenant = tenant_a.tenant
    before = _fresh(tenant).settings
    with pytest.raises(DomainError) as refused:  # SSO-only needs an identity provider (accounts' guard)
        tenant_settings_update(
            tenant=tenant, changes={"timezone": "Asia/Tokyo", "sso_only": True}, actor=ACTOR
        )
    assert (refused.value.code, refused.value.status) == ("sso_provider_required", 409)
    with pytest.raises(ValidationError):
        tenant_settings_update(
            tenant=tenant, changes={"timezone": "Asia/Tokyo", "require_mfa": "on"}, actor=ACTOR
        )
    assert _fresh(tenant).settings == before
    assert _events(tenant) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_of_different_settings_are_both_kept(tenant_a):
    """Each writer locks the row and merges into what is stored, not into its stale copy."""
    tenant = tenant_a.tenant
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def change(changes: dict) -> None:
        try:
            stale = Tenant.objects.get(pk=tenant.pk)
            barrier.wait(timeout=10)
            tenant_settings_update(tenant=stale, changes=changes, actor=ACTOR)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=change, args=({"require_mfa": True},)),
        threading.Thread(target=change, args=({"timezone": "America/New_York"},)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    stored = _fresh(tenant).typed_settings
    assert (stored.require_mfa, stored.timezone) == (True, "America/New_York")


# --- the admin console ------------------------------------------------------------------------


def _change_form(tenant_a, **overrides) -> dict:
    domain = tenant_a.tenant.domains.get()
    form = {
        "organization_name": "Acme Corporation",
        "plan": "starter",
        "billing_email": "billing@acme.test",
        "timezone": "UTC",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(domain.pk),
        "domains-0-tenant": tenant_a.id,
        "domains-0-domain": domain.domain,
        "domains-0-is_primary": "on",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


@pytest.mark.django_db
def test_console_edits_typed_fields_through_the_service(
    staff_client,  # noqa: F811
    tenant_a,
    django_capture_on_commit_callbacks,
):
    url = f"{CHANGELIST}{tenant_a.id}/change/"
    page = staff_client.get(url).content.decode()
    assert 'name="settings"' not in page  # no raw JSON any more
    assert 'name="require_mfa"' in page and 'name="timezone"' in page

    with django_capture_on_commit_callbacks(execute=True):
        saved = staff_client.post(url, _change_form(tenant_a, require_mfa="on", timezone="Europe/Berlin"))
    assert saved.status_code == 302
    assert _fresh(tenant_a.tenant).typed_settings == TenantSettings(
        require_mfa=True, timezone="Europe/Berlin"
    )
    # Audited in the tenant's own log as a console change by the staff member, owners told.
    [(_, actor, data)] = [
        e for e in _events(tenant_a.tenant) if e[0] == AuditEvent.Type.SECURITY_SETTINGS_CHANGED
    ]
    assert actor == "staff@leanvibe.test"
    assert data == {"changes": {"require_mfa": True, "timezone": "Europe/Berlin"}, "via": "console"}
    assert [m.to for m in mail.outbox] == [[tenant_a.owner_email]]


@pytest.mark.django_db
def test_console_shows_a_guards_refusal_inline_and_changes_nothing(staff_client, tenant_a):  # noqa: F811
    url = f"{CHANGELIST}{tenant_a.id}/change/"
    refused = staff_client.post(url, _change_form(tenant_a, sso_only="on", plan="enterprise"))
    assert refused.status_code == 200  # the form again, with the error
    assert "Add an identity provider" in refused.content.decode()
    tenant = _fresh(tenant_a.tenant)
    assert (tenant.typed_settings.sso_only, tenant.plan) == (False, "starter")

    bad_zone = staff_client.post(url, _change_form(tenant_a, timezone="Nowhere/Town"))
    assert bad_zone.status_code == 200 and "timezone" in bad_zone.context["adminform"].form.errors


@pytest.mark.django_db
def test_console_keeps_exactly_one_primary_domain(staff_client, tenant_a):  # noqa: F811
    url = f"{CHANGELIST}{tenant_a.id}/change/"
    no_primary = staff_client.post(url, _change_form(tenant_a, **{"domains-0-is_primary": None}))
    assert no_primary.status_code == 200
    assert "exactly one domain as primary" in no_primary.content.decode()

    added = staff_client.post(
        url,
        _change_form(
            tenant_a,
            **{
                "domains-TOTAL_FORMS": "2",
                "domains-1-tenant": tenant_a.id,
                "domains-1-domain": "App.Acme.TEST",
                "domains-1-is_primary": "on",
                "domains-0-is_primary": None,
            },
        ),
    )
    assert added.status_code == 302
    assert dict(tenant_a.tenant.domains.values_list("domain", "is_primary")) == {
        "acme-corporation.localhost": False,
        "app.acme.test": True,
    }


@pytest.mark.django_db
def test_domain_services_keep_one_primary(tenant_a, tenant_b):
    tenant = tenant_a.tenant
    first = tenant.domains.get()
    second = domain_save(tenant=tenant, domain="acme.example.com", is_primary=True)
    assert list(tenant.domains.filter(is_primary=True)) == [second]
    with pytest.raises(ValidationError):
        domain_remove(domain=second)
    with pytest.raises(ValidationError):  # the only primary cannot be demoted
        domain_save(tenant=tenant, domain=second.domain, is_primary=False, instance=second)
    with pytest.raises(ValidationError):  # another tenant's row
        domain_save(tenant=tenant_b.tenant, domain="x.example.com", is_primary=True, instance=first)
    with pytest.raises(ValidationError):  # already someone's host
        domain_save(tenant=tenant_b.tenant, domain="acme.example.com", is_primary=False)
    domain_remove(domain=first)
    assert list(Domain.objects.filter(tenant=tenant).values_list("domain", flat=True)) == ["acme.example.com"]
