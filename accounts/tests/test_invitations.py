"""Invitations: the API (create, list, resend, revoke) and the public accept page, with expiry,
single use, resend killing the old link, the user limit, and tenants kept apart."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, Invitation, Role
from accounts.services import user_create
from accounts.tests.member_helpers import PASSWORD, Org, last_accept_link
from leanvibe.tests.html import field_errors, form_errors, page, text_of

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


@pytest.fixture
def invite(org, django_capture_on_commit_callbacks):
    """Invite through the API, run the after-commit email, return (body, secret)."""

    def do(email="new@example.com", role="member", *, token=None):
        with django_capture_on_commit_callbacks(execute=True):
            response = org.call("POST", "/api/v1/invitations", {"email": email, "role": role}, token=token)
        assert response.status_code == 201, response.body
        return response.body, last_accept_link()[1]

    return do


def _invitation(org, email="new@example.com"):
    with schema_context(org.handle.tenant.schema_name):
        return Invitation.objects.get(email=email)


def _set_expires_at(org, when, email="new@example.com"):
    with schema_context(org.handle.tenant.schema_name):
        Invitation.objects.filter(email=email).update(expires_at=when)


def _accept_page(client: Client, host: str, secret: str, data=None):
    path = f"/invitations/accept/{secret}/"
    if data is None:
        return client.get(path, HTTP_HOST=host, **HTML)
    return client.post(path, data, HTTP_HOST=host, **HTML)


def _accept(client: Client, host: str, secret: str, password: str = PASSWORD, username: str = "New One"):
    return _accept_page(
        client, host, secret, {"username": username, "password1": password, "password2": password}
    )


def _problem(response) -> str:
    return text_of(page(response).xpath('//*[@id="invitation-problem"]')[0])


# --- creating -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invitation_is_emailed_with_a_link_whose_secret_is_stored_hashed(
    org, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = org.call(
            "POST",
            "/api/v1/invitations",
            {"email": "New@Example.com", "role": "admin"},
            remote_addr="203.0.113.5",
        )

    assert response.status_code == 201
    body = response.body
    assert (body["email"], body["role"], body["status"], body["invited_by"]) == (
        "new@example.com",
        "admin",
        "pending",
        org.handle.owner_email,
    )
    [message] = mail.outbox
    assert message.to == ["new@example.com"]
    assert org.handle.tenant.organization_name in message.subject
    origin, secret = last_accept_link()
    assert origin == f"http://{org.host}:{settings.SITE_PORT}"
    invitation = _invitation(org)
    assert invitation.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(body)
    expires_in = invitation.expires_at - timezone.now()
    assert timedelta(days=6, hours=23) < expires_in <= timedelta(days=7)
    [event] = org.audit(AuditEvent.Type.INVITATION_SENT)
    assert (event.actor.email, event.ip_address, event.data["email"]) == (
        org.handle.owner_email,
        "203.0.113.5",
        "new@example.com",
    )


@pytest.mark.django_db
def test_no_email_is_sent_for_an_invitation_that_was_refused(org, django_capture_on_commit_callbacks):
    org.add("member@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = org.call("POST", "/api/v1/invitations", {"email": "MEMBER@example.com"})

    assert response.status_code == 400
    assert response.body["error"] == "email_taken"
    assert mail.outbox == []
    with schema_context(org.handle.tenant.schema_name):
        assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_a_pending_invitation_is_resent_not_duplicated(org, invite):
    invite()

    response = org.call("POST", "/api/v1/invitations", {"email": "new@example.com"})

    assert response.status_code == 400
    assert response.body["error"] == "invitation_pending"


@pytest.mark.django_db
def test_an_expired_invitation_makes_way_for_a_new_one(org, invite):
    invite()
    _set_expires_at(org, timezone.now() - timedelta(seconds=1))

    body, _ = invite()

    statuses = sorted(i["status"] for i in org.call("GET", "/api/v1/invitations").body["results"])
    assert statuses == ["pending", "revoked"]
    assert body["status"] == "pending"


@pytest.mark.django_db
def test_role_escalation_through_invitations_is_refused(api, make_tenant, django_capture_on_commit_callbacks):
    org = Org(api, make_tenant(plan="professional"))

    def invite(email, role, token=None):
        with django_capture_on_commit_callbacks(execute=True):
            response = org.call("POST", "/api/v1/invitations", {"email": email, "role": role}, token=token)
        assert response.status_code == 201, response.body

    _, member_token = org.add_and_login("member@example.com")
    org.add("admin@example.com", "admin")
    admin_token = org.login("admin@example.com")

    by_member = org.call("POST", "/api/v1/invitations", {"email": "x@example.com"}, token=member_token)
    owner_by_admin = org.call(
        "POST", "/api/v1/invitations", {"email": "x@example.com", "role": "owner"}, token=admin_token
    )

    assert by_member.status_code == 403
    assert owner_by_admin.status_code == 403
    assert owner_by_admin.body["detail"] == "Only an owner can make someone an owner."
    # The owner may invite an owner; the admin an admin.
    invite("x@example.com", "owner")
    invite("y@example.com", "admin", token=admin_token)


@pytest.mark.django_db
def test_invitation_list_filters_by_status(org, invite):
    invite("a@example.com")
    invite("b@example.com")
    revoked = org.call("GET", "/api/v1/invitations").body["results"][0]
    assert org.call("DELETE", f"/api/v1/invitations/{revoked['id']}").status_code == 204

    pending = org.call("GET", "/api/v1/invitations?status=pending").body["results"]
    bad = org.call("GET", "/api/v1/invitations?status=nope")

    assert [i["email"] for i in pending] == ["a@example.com"]
    assert bad.status_code == 400 and bad.body["error"] == "invalid_filter"


# --- accepting ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_accept_page_shows_the_organisation_and_email_and_creates_the_member(client, org, invite):
    invite("new@example.com", "admin")
    _, secret = last_accept_link()

    shown = _accept_page(client, org.host, secret)
    assert shown.status_code == 200
    doc = page(shown)
    assert org.handle.tenant.organization_name in text_of(doc.xpath("//h1")[0])
    assert text_of(doc.xpath('//*[@id="invited-email"]')[0]) == "new@example.com"

    accepted = _accept(client, org.host, secret)

    assert accepted.status_code == 302 and accepted["Location"] == "/"
    assert client.get("/", HTTP_HOST=org.host, **HTML).status_code == 200  # signed in
    user = org.user("new@example.com")
    assert (user.role, user.username, user.is_active) == (Role.ADMIN, "New One", True)
    assert user.check_password(PASSWORD)
    with schema_context(org.handle.tenant.schema_name):
        from allauth.account.models import EmailAddress

        assert EmailAddress.objects.get(user=user).verified
    assert _invitation(org).status == "accepted"
    [event] = org.audit(AuditEvent.Type.INVITATION_ACCEPTED)
    assert event.actor.email == "new@example.com"
    assert org.login("new@example.com")


@pytest.mark.django_db
def test_weak_or_mismatched_passwords_show_inline_errors_and_create_nothing(client, org, invite):
    _, secret = invite()

    weak = _accept(client, org.host, secret, password="12345678")
    differ = _accept_page(client, org.host, secret, {"password1": PASSWORD, "password2": PASSWORD + "x"})

    assert weak.status_code == 400
    assert any("numeric" in e for e in field_errors(page(weak), "password1"))
    assert differ.status_code == 400
    assert field_errors(page(differ), "password2") == ["The two passwords differ."]
    assert org.users_count() == 1
    assert _invitation(org).status == "pending"


@pytest.mark.django_db
def test_a_link_works_once(client, org, invite):
    _, secret = invite()
    assert _accept(client, org.host, secret).status_code == 302

    again = _accept(Client(), org.host, secret, password=PASSWORD + "-other")
    shown = _accept_page(Client(), org.host, secret)

    assert again.status_code == 410
    assert _problem(again) == "This invitation has already been used."
    assert shown.status_code == 410
    assert org.user("new@example.com").check_password(PASSWORD)
    assert org.users_count() == 2


@pytest.mark.django_db
def test_an_expired_link_is_refused_and_creates_nothing(client, org, invite):
    _, secret = invite()
    _set_expires_at(org, timezone.now() - timedelta(minutes=1))

    shown = _accept_page(client, org.host, secret)
    posted = _accept(client, org.host, secret)

    assert shown.status_code == 410 and posted.status_code == 410
    assert "expired" in _problem(posted)
    assert org.users_count() == 1
    listed = org.call("GET", "/api/v1/invitations").body["results"]
    assert [i["status"] for i in listed] == ["expired"]


@pytest.mark.django_db
def test_resend_gives_a_new_link_and_kills_the_old_one(
    client, org, invite, django_capture_on_commit_callbacks
):
    body, old_secret = invite()
    _set_expires_at(org, timezone.now() - timedelta(minutes=1))  # resend also revives an expired one

    with django_capture_on_commit_callbacks(execute=True):
        resent = org.call("POST", f"/api/v1/invitations/{body['id']}/resend")

    assert resent.status_code == 200 and resent.body["status"] == "pending"
    _, new_secret = last_accept_link()
    assert new_secret != old_secret and len(mail.outbox) == 2
    old = _accept(client, org.host, old_secret)
    assert old.status_code == 404
    assert org.users_count() == 1
    assert _accept(client, org.host, new_secret).status_code == 302
    assert org.user("new@example.com").role == Role.MEMBER


@pytest.mark.django_db
def test_a_revoked_link_is_refused(client, org, invite):
    body, secret = invite()

    revoked = org.call("DELETE", f"/api/v1/invitations/{body['id']}", remote_addr="198.51.100.3")
    again = org.call("DELETE", f"/api/v1/invitations/{body['id']}")
    resend = org.call("POST", f"/api/v1/invitations/{body['id']}/resend")
    accepted = _accept(client, org.host, secret)

    assert revoked.status_code == 204
    assert again.status_code == 409 and again.body["error"] == "invitation_closed"
    assert resend.status_code == 409
    assert accepted.status_code == 410 and _problem(accepted) == "This invitation was revoked."
    assert org.users_count() == 1
    [event] = org.audit(AuditEvent.Type.INVITATION_REVOKED)
    assert event.ip_address == "198.51.100.3"


@pytest.mark.django_db
def test_a_garbage_link_is_refused(client, org):
    for secret in ("nope", "x" * 300):
        response = _accept_page(client, org.host, secret)
        assert response.status_code == 404
        assert _problem(response) == "This invitation link is not valid for this organisation."


@pytest.mark.django_db
def test_the_user_limit_applies_when_the_invitation_is_accepted(client, org, invite):
    _, secret = invite()
    org.add("one@example.com")  # starter plan, 3 seats: the owner, one, and the invitation's
    assert (
        org.call(  # the held seat is not given to anyone else
            "POST", "/api/v1/users", {"email": "two@example.com", "password": PASSWORD}
        ).body["error"]
        == "quota_exceeded"
    )
    # Members beyond the limit can still exist (a plan with fewer seats later): made here below
    # the quota check, the organisation is full before the invitation is accepted.
    with schema_context(org.handle.tenant.schema_name):
        user_create(email="two@example.com", password=None)

    response = _accept(client, org.host, secret)

    assert response.status_code == 400
    assert form_errors(page(response)) == ["User limit reached (3). Upgrade to create more users."]
    assert org.users_count() == 3
    assert _invitation(org).status == "pending"


@pytest.mark.django_db
def test_inviting_when_the_organisation_is_full_is_refused(org):
    org.add("one@example.com")
    org.add("two@example.com")

    response = org.call("POST", "/api/v1/invitations", {"email": "x@example.com"})

    assert response.status_code == 403 and response.body["error"] == "quota_exceeded"


# --- isolation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_link_of_another_tenant_is_refused_and_creates_nothing(client, api, org, invite, tenant_b):
    _, secret = invite()
    b = Org(api, tenant_b)

    shown = _accept_page(client, b.host, secret)
    posted = _accept(client, b.host, secret)

    assert shown.status_code == 404 and posted.status_code == 404
    assert b.users_count() == 1 and org.users_count() == 1
    assert _invitation(org).status == "pending"


@pytest.mark.django_db
def test_another_tenants_admin_cannot_see_or_touch_invitations(api, org, invite, tenant_b):
    body, secret = invite()
    b = Org(api, tenant_b)

    assert b.call("GET", "/api/v1/invitations").body["results"] == []
    for ctx in ({"host": b.host}, {"tenant_header": b.handle.id}):
        path = f"/api/v1/invitations/{body['id']}"
        assert (
            api.call(
                "GET", path, host=ctx.get("host"), tenant_header=ctx.get("tenant_header"), token=b.owner_token
            ).status_code
            == 404
        )
        assert api.call("DELETE", path, token=b.owner_token, **ctx).status_code == 404
        assert api.call("POST", f"{path}/resend", token=b.owner_token, **ctx).status_code == 404
    assert api.call("GET", "/api/v1/invitations", host=org.host, token=b.owner_token).status_code == 401
    assert (
        api.call(
            "DELETE", f"/api/v1/invitations/{body['id']}", host=org.host, token=b.owner_token
        ).status_code
        == 401
    )
    assert _invitation(org).status == "pending"
    assert _still_acceptable(org, secret)


def _still_acceptable(org, secret):
    with schema_context(org.handle.tenant.schema_name):
        from accounts.selectors import invitation_by_secret

        found = invitation_by_secret(secret)
        return found is not None and found.status == "pending"
