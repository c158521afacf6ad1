"""The journey steps accounts ticks (levels 2 and 3): each by the real action through the API,
and never by the actions next to it."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.tests.member_helpers import Org
from accounts.tests.mfa_helpers import enrol_totp
from accounts.tests.test_sso_oidc import idp  # noqa: F401 - the fixture
from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.services import journey_unlock_email_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


def done(org) -> set[str]:
    return set(StepDone.objects.filter(tenant_id=org.handle.tenant.pk).values_list("step", flat=True))


def unlocked(org) -> set[int]:
    return set(LevelUnlocked.objects.filter(tenant_id=org.handle.tenant.pk).values_list("number", flat=True))


def test_a_second_member_signing_in_ticks_the_step(org):
    org.add("dev@example.com")
    assert "second_member_signed_in" not in done(org)  # added is not signed in
    org.handle.login(org.api)  # the owner again is not a second member
    bad = org.api.post(
        "/api/v1/auth/login", {"email": "other@example.com", "password": "wrong-password-1"}, host=org.host
    )
    assert bad.status_code == 401
    assert "second_member_signed_in" not in done(org)
    org.login("dev@example.com")
    assert "second_member_signed_in" in done(org)


def test_making_someone_admin_ticks_the_step_and_completes_level_two(org):
    member = org.add("dev@example.com")
    org.call("PATCH", f"/api/v1/users/{member['id']}", {"username": "dev"})
    assert "admin_delegated" not in done(org)
    org.login("dev@example.com")
    assert 2 not in unlocked(org)
    promoted = org.call("PATCH", f"/api/v1/users/{member['id']}", {"role": "admin"})
    assert promoted.status_code == 200, promoted.body
    assert {"second_member_signed_in", "admin_delegated"} <= done(org)
    assert 2 in unlocked(org)


def test_adding_a_member_as_admin_ticks_the_step(org):
    org.add("boss@example.com", role="admin")
    assert "admin_delegated" in done(org)


def test_only_an_owners_second_factor_ticks_the_step(api, org):
    _, member_token = org.add_and_login("dev@example.com")
    enrol_totp(api, org.host, member_token)
    assert "owner_second_factor" not in done(org)
    enrol_totp(api, org.host, org.owner_token)
    assert "owner_second_factor" in done(org)


def test_requiring_two_factor_ticks_the_step_and_unlocks_security_expert_once(api, org):
    off = org.call("PATCH", "/api/v1/auth/security", {"require_mfa": False})
    assert off.status_code == 200
    assert "sign_in_secured" not in done(org)
    enrol_totp(api, org.host, org.owner_token)
    assert 3 not in unlocked(org)
    on = org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True})
    assert on.status_code == 200, on.body
    assert {"owner_second_factor", "sign_in_secured"} <= done(org)
    unlock = LevelUnlocked.objects.get(tenant_id=org.handle.tenant.pk, number=3)
    mail.outbox.clear()
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 1
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 0
    [message] = mail.outbox
    assert message.subject == "Achievement unlocked: 🔐 Security Expert"
    # Turning it off and on again unlocks nothing twice.
    org.call("PATCH", "/api/v1/auth/security", {"require_mfa": False})
    org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True})
    assert LevelUnlocked.objects.filter(tenant_id=org.handle.tenant.pk, number=3).count() == 1


def test_the_journey_check_agrees_after_the_real_actions(api, org):
    from io import StringIO

    from django.core.management import call_command

    member = org.add("dev@example.com")
    org.login("dev@example.com")
    org.call("PATCH", f"/api/v1/users/{member['id']}", {"role": "admin"})
    enrol_totp(api, org.host, org.owner_token)
    org.call("PATCH", "/api/v1/auth/security", {"require_mfa": True})
    out = StringIO()
    try:
        call_command("journey_check", org.handle.tenant.schema_name, stdout=out)
    except SystemExit:
        pytest.fail(out.getvalue())
    text = out.getvalue()
    assert "agrees with the records" in text
    assert "✓ A second member signs in" in text and "✓ Give the owner's account a second factor" in text


def test_a_sign_in_through_the_identity_provider_secures_sign_in_and_a_refused_one_does_not(
    api,
    tenant_a,
    idp,  # noqa: F811 - the fixture
):
    from accounts.tests.test_sso_oidc import add_oidc, api_sign_in

    provider = add_oidc(api, tenant_a, idp, allowed_domains=["acme.test"])
    org_done = set(StepDone.objects.filter(tenant_id=tenant_a.tenant.pk).values_list("step", flat=True))
    assert "sign_in_secured" not in org_done  # an identity provider configured is not a sign-in
    user = idp.user
    idp.user = {"sub": "mallory", "email": "mallory@evil.test", "email_verified": True}
    refused, _ = api_sign_in(api, tenant_a, provider["id"])
    assert refused.status_code == 403
    assert not StepDone.objects.filter(tenant_id=tenant_a.tenant.pk, step="sign_in_secured").exists()
    idp.user = user
    signed_in, _ = api_sign_in(api, tenant_a, provider["id"])
    assert signed_in.status_code == 200, signed_in.body
    assert StepDone.objects.filter(tenant_id=tenant_a.tenant.pk, step="sign_in_secured").exists()
