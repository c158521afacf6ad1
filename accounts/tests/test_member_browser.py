"""In headless Chromium: an owner invites a colleague from the members pages, the colleague
accepts from the emailed link, lands on the dashboard, and later signs in with the new password."""

from __future__ import annotations

from django.core import mail

from accounts.tests.member_helpers import ACCEPT_LINK
from leanvibe.tests.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    PHONE,
    chromium,
    expect,
    new_page,
    provision,
    sign_in,
    sign_out,
    tenant_origin,
)

pytestmark = BROWSER_MARKS
OWNER_PASSWORD = "orbital-mechanics-42"
MEMBER_PASSWORD = "a-long-enough-passphrase-42"


def test_invite_a_member_who_accepts_and_signs_in(site_url: str) -> None:
    from django_tenants.utils import schema_context

    from accounts.models import Role, User

    tenant = provision("Initech", "peter@initech.example", OWNER_PASSWORD)
    origin = tenant_origin(site_url, tenant)
    failed: list[str] = []

    with chromium() as browser:
        owner, page = new_page(browser, failed, request_failures=False)
        sign_in(page, origin, "peter@initech.example", OWNER_PASSWORD)
        expect(page).to_have_url(f"{origin}/")

        page.get_by_role("link", name="Members").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Members")
        page.get_by_role("link", name="Invite members").click()
        expect(page.locator("#invitations-empty")).to_be_visible()
        page.get_by_label("Email").fill("milton@initech.example")
        page.get_by_label("Role").select_option("admin")
        page.get_by_role("button", name="Send invitation").click()
        expect(page.locator(".messages")).to_contain_text("Invitation sent to milton@initech.example.")
        expect(page.locator("#pending-invitations .invitation-status")).to_have_text(["Pending"])
        page.screenshot(path=str(ARTIFACTS / "invitations.png"), full_page=True)
        owner.close()

        found = ACCEPT_LINK.search(str(mail.outbox[-1].body))
        assert found and found.group(1) == origin
        invitee, page = new_page(browser, failed, viewport=PHONE, request_failures=False)
        page.goto(found.group(0))
        expect(page.get_by_role("heading", level=1)).to_have_text("Join Initech")
        expect(page.locator("#invited-email")).to_have_text("milton@initech.example")
        page.get_by_label("Your name").fill("Milton")
        page.get_by_label("Password", exact=True).fill("12345678")
        page.get_by_label("Password again").fill("12345678")
        page.get_by_role("button", name="Join Initech").click()
        expect(page.locator(".has-error .field-error").first).to_contain_text("too common")
        page.screenshot(path=str(ARTIFACTS / "invitation-accept-errors.png"), full_page=True)
        page.get_by_label("Password", exact=True).fill(MEMBER_PASSWORD)
        page.get_by_label("Password again").fill(MEMBER_PASSWORD)
        page.get_by_role("button", name="Join Initech").click()
        expect(page).to_have_url(f"{origin}/")
        expect(page.locator(".messages")).to_contain_text("Welcome to Initech!")

        # The link worked once.
        page.goto(found.group(0))
        expect(page.locator("#invitation-problem")).to_have_text("This invitation has already been used.")

        # Sign out and back in with the chosen password.
        page.goto(f"{origin}/")
        sign_out(page)
        expect(page).to_have_url(f"{origin}/accounts/login/")
        sign_in(page, origin, "milton@initech.example", MEMBER_PASSWORD)
        expect(page).to_have_url(f"{origin}/")
        page.goto(f"{origin}/members/")
        expect(page.locator("#member-list .member-email")).to_have_text(
            ["milton@initech.example", "peter@initech.example"]
        )
        page.screenshot(path=str(ARTIFACTS / "members-phone.png"), full_page=True)
        invitee.close()

    assert failed == []
    with schema_context(tenant.schema_name):
        milton = User.objects.get(email="milton@initech.example")
        assert (milton.role, milton.username, milton.is_active) == (Role.ADMIN, "Milton", True)
