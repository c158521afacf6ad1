"""The members and invitations pages: who sees what, changing roles, deactivating, inviting,
resending and revoking, with the same rules as the API."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, Invitation, Role, User
from accounts.tests.member_helpers import Org, last_accept_link
from leanvibe.tests.html import field_errors, messages, page, texts

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}


class Site:
    """One tenant's site in a browser signed in as ``email``."""

    def __init__(self, org: Org, email: str) -> None:
        self.org = org
        self.client = Client()
        with schema_context(org.handle.tenant.schema_name):
            self.client.force_login(User.objects.get(email=email))

    def get(self, path: str) -> Any:
        return self.client.get(path, HTTP_HOST=self.org.host, **HTML)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> Any:
        return self.client.post(path, data, HTTP_HOST=self.org.host, **HTML, **kw)

    def member_action(self, email: str, action: str, **data: str) -> Any:
        return self.post(f"/members/{self.org.user_id(email)}/", {"action": action, **data}, follow=True)

    def invitation_action(self, email: str, action: str) -> Any:
        with schema_context(self.org.handle.tenant.schema_name):
            invitation = Invitation.objects.get(email=email, revoked_at__isnull=True)
        return self.post(f"/members/invitations/{invitation.id}/", {"action": action}, follow=True)


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


@pytest.fixture
def owner(org):
    return Site(org, org.handle.owner_email)


def _rows(response, xpath='//li[contains(@class, "member")]'):
    return {row.get("data-email"): row for row in page(response).xpath(xpath)}


# --- access ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_require_signing_in(client, org):
    for path in ("/members/", "/members/invitations/"):
        response = client.get(path, HTTP_HOST=org.host, **HTML)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    posted = client.post(f"/members/{org.owner_id}/", {"action": "deactivate"}, HTTP_HOST=org.host, **HTML)
    assert posted.status_code == 302
    assert org.user(org.handle.owner_email).is_active


@pytest.mark.django_db
def test_members_see_a_read_only_list_and_cannot_manage(org):
    org.add("colleague@example.com")
    org.add("dev@example.com")
    member = Site(org, "dev@example.com")

    listed = member.get("/members/")

    assert listed.status_code == 200
    rows = _rows(listed)
    assert set(rows) == {org.handle.owner_email, "colleague@example.com", "dev@example.com"}
    assert page(listed).xpath('//form[contains(@action, "/members/")]') == []
    assert member.get("/members/invitations/").status_code == 403
    refused = [
        member.post(f"/members/{org.user_id('colleague@example.com')}/", {"action": "deactivate"}),
        member.post(f"/members/{org.user_id('dev@example.com')}/", {"action": "role", "role": "owner"}),
        member.post("/members/invitations/", {"email": "x@example.com", "role": "member"}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert org.user("colleague@example.com").is_active
    assert org.user("dev@example.com").role == Role.MEMBER
    with schema_context(org.handle.tenant.schema_name):
        assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_admins_see_role_status_and_last_login(org, owner):
    org.add("dev@example.com", "admin")
    with schema_context(org.handle.tenant.schema_name):
        User.objects.filter(email="dev@example.com").update(last_login=timezone.now())

    rows = _rows(owner.get("/members/"))

    dev = rows["dev@example.com"]
    assert dev.get("data-role") == "admin" and dev.get("data-active") == "true"
    assert texts(dev, './/*[contains(@class, "member-role")]') == ["Admin"]
    assert texts(dev, './/*[contains(@class, "member-last-login")]')[0].startswith("Last signed in")
    assert dev.xpath('.//form[.//input[@value="deactivate"]]')
    # No one is offered to deactivate themselves.
    assert not rows[org.handle.owner_email].xpath('.//form[.//input[@value="deactivate"]]')


# --- managing members -----------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_changes_a_role_deactivates_and_reactivates(org):
    org.add("admin@example.com", "admin")
    org.add("dev@example.com")
    admin = Site(org, "admin@example.com")

    promoted = admin.member_action("dev@example.com", "role", role="admin")
    assert messages(page(promoted)) == ["dev@example.com is now admin."]
    assert org.user("dev@example.com").role == Role.ADMIN

    deactivated = admin.member_action("dev@example.com", "deactivate")
    assert messages(page(deactivated)) == ["dev@example.com is deactivated and signed out everywhere."]
    assert _rows(deactivated)["dev@example.com"].get("data-active") == "false"

    reactivated = admin.member_action("dev@example.com", "reactivate")
    assert messages(page(reactivated)) == ["dev@example.com is active again."]
    assert org.user("dev@example.com").is_active
    types = [e.type for e in org.audit(AuditEvent.Type.MEMBER_ROLE_CHANGED)]
    types += [e.type for e in org.audit(AuditEvent.Type.MEMBER_DEACTIVATED)]
    types += [e.type for e in org.audit(AuditEvent.Type.MEMBER_REACTIVATED)]
    assert sorted(types) == ["member.deactivated", "member.reactivated", "member.role_changed"]


@pytest.mark.django_db
def test_a_deactivated_members_web_session_ends_at_once(org, owner):
    org.add("dev@example.com")
    dev = Site(org, "dev@example.com")
    assert dev.get("/").status_code == 200

    owner.member_action("dev@example.com", "deactivate")

    response = dev.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_an_admin_cannot_touch_the_owner_or_make_owners_through_the_page(org):
    org.add("admin@example.com", "admin")
    org.add("dev@example.com")
    admin = Site(org, "admin@example.com")

    listed = _rows(admin.get("/members/"))
    assert not listed[org.handle.owner_email].xpath(".//form")  # no controls offered
    assert "owner" not in listed["dev@example.com"].xpath(".//select/option/@value")

    demote = admin.member_action(org.handle.owner_email, "role", role="member")
    deactivate = admin.member_action(org.handle.owner_email, "deactivate")
    escalate = admin.member_action("dev@example.com", "role", role="owner")
    self_escalate = admin.member_action("admin@example.com", "role", role="owner")

    assert messages(page(demote)) == ["Only an owner can change or deactivate an owner."]
    assert messages(page(deactivate)) == ["Only an owner can change or deactivate an owner."]
    assert messages(page(escalate)) == ["Only an owner can make someone an owner."]
    assert messages(page(self_escalate)) == ["Only an owner can make someone an owner."]
    assert org.user(org.handle.owner_email).role == Role.OWNER and org.user(org.handle.owner_email).is_active
    assert org.user("dev@example.com").role == Role.MEMBER
    assert org.user("admin@example.com").role == Role.ADMIN


@pytest.mark.django_db
def test_the_last_owner_cannot_step_down_through_the_page(org, owner):
    response = owner.member_action(org.handle.owner_email, "role", role="admin")

    assert messages(page(response)) == [
        "The organisation must keep at least one active owner: make someone else an owner first."
    ]
    assert org.user(org.handle.owner_email).role == Role.OWNER


@pytest.mark.django_db
def test_another_tenants_member_is_404_on_this_site(api, org, tenant_b):
    org.add("dev@example.com")
    b = Org(api, tenant_b)
    b_owner = Site(b, tenant_b.owner_email)

    response = b_owner.post(f"/members/{org.user_id('dev@example.com')}/", {"action": "deactivate"})

    assert response.status_code == 404
    assert org.user("dev@example.com").is_active


# --- invitations ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_invitations_page_has_an_empty_state(owner):
    response = owner.get("/members/invitations/")

    assert response.status_code == 200
    assert page(response).xpath('//*[@id="invitations-empty"]')


@pytest.mark.django_db
def test_invite_form_shows_inline_errors(org, owner):
    org.add("dev@example.com")

    bad = owner.post("/members/invitations/", {"email": "not an email", "role": "member"})
    taken = owner.post("/members/invitations/", {"email": "DEV@example.com", "role": "member"})

    assert bad.status_code == 400 and field_errors(page(bad), "email") == ["Enter a valid email address."]
    assert taken.status_code == 400
    assert field_errors(page(taken), "email") == [
        "This email already belongs to a member of your organisation."
    ]
    assert mail.outbox == []


@pytest.mark.django_db
def test_invite_resend_and_revoke_through_the_page(client, org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invited = owner.post(
            "/members/invitations/", {"email": "new@example.com", "role": "admin"}, follow=True
        )
    assert messages(page(invited)) == ["Invitation sent to new@example.com."]
    row = _rows(invited, '//li[contains(@class, "invitation")]')["new@example.com"]
    assert row.get("data-status") == "pending"
    _, first_secret = last_accept_link()

    with django_capture_on_commit_callbacks(execute=True):
        resent = owner.invitation_action("new@example.com", "resend")
    assert messages(page(resent)) == ["A new invitation link was sent to new@example.com."]
    _, second_secret = last_accept_link()
    assert second_secret != first_secret
    assert client.get(f"/invitations/accept/{first_secret}/", HTTP_HOST=org.host, **HTML).status_code == 404

    revoked = owner.invitation_action("new@example.com", "revoke")
    assert messages(page(revoked)) == ["The invitation of new@example.com is revoked."]
    assert (
        _rows(revoked, '//li[contains(@class, "invitation")]')["new@example.com"].get("data-status")
        == "revoked"
    )
    assert client.get(f"/invitations/accept/{second_secret}/", HTTP_HOST=org.host, **HTML).status_code == 410


@pytest.mark.django_db
def test_an_admin_is_not_offered_the_owner_role_and_a_forged_one_is_refused(org):
    org.add("admin@example.com", "admin")
    admin = Site(org, "admin@example.com")

    form = page(admin.get("/members/invitations/"))
    forged = admin.post("/members/invitations/", {"email": "x@example.com", "role": "owner"})

    assert form.xpath('//select[@name="role"]/option/@value') == ["admin", "member"]
    assert forged.status_code == 400
    assert field_errors(page(forged), "role")
    with schema_context(org.handle.tenant.schema_name):
        assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_another_tenants_invitation_is_404_on_this_site(api, org, owner, tenant_b):
    owner.post("/members/invitations/", {"email": "new@example.com", "role": "member"})
    b_owner = Site(Org(api, tenant_b), tenant_b.owner_email)
    with schema_context(org.handle.tenant.schema_name):
        invitation = Invitation.objects.get()

    response = b_owner.post(f"/members/invitations/{invitation.id}/", {"action": "revoke"})

    assert response.status_code == 404
    with schema_context(org.handle.tenant.schema_name):
        assert Invitation.objects.get().status == "pending"


@pytest.mark.django_db
def test_the_nav_links_to_members(owner):
    doc = page(owner.get("/"))

    assert doc.xpath('//nav//a[@href="/members/"]')
