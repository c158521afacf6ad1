"""Invitation flooding: invitations and resends are rate limited per inviter and per tenant
(429 ``rate_limited`` with ``Retry-After``, audited once per window, an inline error on the
page), and pending invitations hold seats of the plan's user limit — also under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from accounts.models import AuditEvent, Invitation, Role, User
from accounts.services.invitations import invitation_create
from accounts.tests.member_helpers import PASSWORD, Org, last_accept_link
from leanvibe.errors import DomainError, QuotaExceeded
from leanvibe.tests.html import form_errors, page

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


@pytest.fixture
def big_org(api, make_tenant):
    """An enterprise tenant (no user limit), so only the rate limits apply."""
    return Org(api, make_tenant("Big Corp", plan="enterprise"))


def _invite(org: Org, email: str, token: str | None = None) -> Any:
    return org.call("POST", "/api/v1/invitations", {"email": email}, token=token)


@pytest.mark.django_db
def test_invitations_per_inviter_are_rate_limited(big_org, settings):
    settings.INVITATION_RATE, settings.INVITATION_TENANT_RATE = "3/hour", "100/hour"
    for n in range(3):
        assert _invite(big_org, f"p{n}@example.com").status_code == 201
    refused = _invite(big_org, "p3@example.com")
    assert refused.status_code == 429 and refused.body["error"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Try again in" in refused.body["detail"]
    assert _invite(big_org, "p4@example.com").status_code == 429
    with schema_context(big_org.handle.tenant.schema_name):
        assert Invitation.objects.count() == 3
    [event] = big_org.audit(AuditEvent.Type.INVITATION_RATE_LIMITED)  # once per window
    assert (event.actor.email, event.data["scope"]) == (big_org.handle.owner_email, "inviter")
    # Another admin has a budget of their own.
    _, admin_token = big_org.add_and_login("admin@example.com", Role.ADMIN)
    assert _invite(big_org, "p5@example.com", token=admin_token).status_code == 201


@pytest.mark.django_db
def test_invitations_per_tenant_are_rate_limited(big_org, make_tenant, api, settings):
    settings.INVITATION_RATE, settings.INVITATION_TENANT_RATE = "100/hour", "4/hour"
    _, admin_token = big_org.add_and_login("admin@example.com", Role.ADMIN)
    for n in range(4):
        token = admin_token if n % 2 else None
        assert _invite(big_org, f"p{n}@example.com", token=token).status_code == 201
    refused = _invite(big_org, "p4@example.com", token=admin_token)
    assert refused.status_code == 429 and refused.body["error"] == "rate_limited"
    assert refused.has_header("Retry-After")
    [event] = big_org.audit(AuditEvent.Type.INVITATION_RATE_LIMITED)
    assert event.data["scope"] == "tenant"
    # Another tenant's budget is its own (the cache keys carry the schema).
    other = Org(api, make_tenant("Other Corp", plan="enterprise"))
    assert _invite(other, "p0@example.com").status_code == 201


@pytest.mark.django_db
def test_resends_count_against_the_limit(big_org, settings, django_capture_on_commit_callbacks):
    settings.INVITATION_RATE, settings.INVITATION_TENANT_RATE = "3/hour", "100/hour"
    created = _invite(big_org, "p0@example.com")
    path = f"/api/v1/invitations/{created.body['id']}/resend"
    assert big_org.call("POST", path).status_code == 200
    assert big_org.call("POST", path).status_code == 200
    refused = big_org.call("POST", path)
    assert refused.status_code == 429 and refused.body["error"] == "rate_limited"


@pytest.mark.django_db
def test_the_invitations_page_shows_the_limit_inline(big_org, settings):
    settings.INVITATION_RATE = "1/hour"
    client = Client(HTTP_HOST=big_org.host)
    client.post(
        "/accounts/login/", {"login": big_org.handle.owner_email, "password": big_org.handle.password}
    )
    assert (
        client.post("/members/invitations/", {"email": "p0@example.com", "role": "member"}).status_code == 302
    )
    refused = client.post("/members/invitations/", {"email": "p1@example.com", "role": "member"}, **HTML)
    assert refused.status_code == 429 and refused.has_header("Retry-After")
    assert any("Too many invitations" in error for error in form_errors(page(refused)))


# --- seats -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_held_seat_is_not_taken_by_a_direct_add_and_passes_to_the_invitee(
    org, django_capture_on_commit_callbacks
):
    """Starter plan, 3 seats: the owner, one member and one pending invitation. Adding someone
    directly (POST /users) is refused (the invitation holds the last seat); accepting the
    invitation takes that very seat."""
    org.add("member@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert _invite(org, "invitee@example.com").status_code == 201
    direct = org.call(
        "POST", "/api/v1/users", {"email": "direct@example.com", "password": PASSWORD, "role": "member"}
    )
    assert direct.status_code == 403 and direct.body["error"] == "quota_exceeded"
    _, secret = last_accept_link()
    accepted = Client().post(
        f"/invitations/accept/{secret}/",
        {"username": "Invitee", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_HOST=org.host,
    )
    assert accepted.status_code == 302, accepted.content[:500]
    assert org.users_count() == 3


@pytest.mark.django_db
def test_pending_invitations_hold_seats(org):
    """Starter plan, 3 seats: the owner and two pending invitations fill it."""
    assert _invite(org, "one@example.com").status_code == 201
    assert _invite(org, "two@example.com").status_code == 201
    refused = _invite(org, "three@example.com")
    assert refused.status_code == 403 and refused.body["error"] == "quota_exceeded"
    assert refused.body["limit"] == 3
    # A revoked or expired invitation frees its seat.
    with schema_context(org.handle.tenant.schema_name):
        Invitation.objects.filter(email="one@example.com").update(revoked_at=timezone.now())
    assert _invite(org, "three@example.com").status_code == 201
    with schema_context(org.handle.tenant.schema_name):
        Invitation.objects.filter(email="two@example.com").update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    assert _invite(org, "four@example.com").status_code == 201
    # Resending the expired one would make it pending again: no seat left.
    with schema_context(org.handle.tenant.schema_name):
        expired = Invitation.objects.get(email="two@example.com")
    resend = org.call("POST", f"/api/v1/invitations/{expired.id}/resend")
    assert resend.status_code == 403 and resend.body["error"] == "quota_exceeded"


@pytest.mark.django_db
def test_the_page_shows_the_seat_limit(org):
    client = Client(HTTP_HOST=org.host)
    org.add("one@example.com")
    org.add("two@example.com")
    client.post("/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password})
    refused = client.post("/members/invitations/", {"email": "x@example.com", "role": "member"}, **HTML)
    assert refused.status_code == 400
    assert form_errors(page(refused)) == ["User limit reached (3). Upgrade to create more users."]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_invitations_cannot_both_take_the_last_seat(dropped_afterwards):
    """While one invitation holds the tenant's lock (its transaction still open), a second one
    waits, then counts the first and is refused."""
    from tenants.services import tenant_provision

    tenant = tenant_provision(
        organization_name="Race Corp", billing_email="o@race.test", admin_email="o@race.test"
    ).tenant
    with tenant_context(tenant):
        owner = User.objects.get()
        invitation_create(tenant=tenant, actor=owner, email="one@race.test")  # 2 of 3 seats
    outcome: dict[str, Any] = {}
    started = threading.Event()

    def second() -> None:
        try:
            with tenant_context(tenant):
                started.set()
                invitation_create(tenant=tenant, actor=owner, email="three@race.test")
            outcome["result"] = "created"
        except (QuotaExceeded, DomainError) as exc:
            outcome["result"] = exc.code
        finally:
            connection.close()

    with tenant_context(tenant), transaction.atomic():
        invitation_create(tenant=tenant, actor=owner, email="two@race.test")  # the last seat
        thread = threading.Thread(target=second)
        thread.start()
        started.wait(5)
        thread.join(1.0)
        assert thread.is_alive(), "the second invitation did not wait for the first one's lock"
    thread.join(10)
    assert outcome == {"result": "quota_exceeded"}
    with tenant_context(tenant):
        assert sorted(Invitation.objects.values_list("email", flat=True)) == [
            "one@race.test",
            "two@race.test",
        ]
