"""In headless Chromium: an owner invites a colleague from the members pages, the colleague
accepts from the emailed link, lands on the dashboard, and later signs in with the new password."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from accounts.tests.member_helpers import ACCEPT_LINK
from leanvibe.tests.test_browser import (  # noqa: F401 - fixtures
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    dropped_afterwards,
    site_url,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]
OWNER_PASSWORD = "orbital-mechanics-42"
MEMBER_PASSWORD = "a-long-enough-passphrase-42"


def test_invite_a_member_who_accepts_and_signs_in(site_url: str) -> None:  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    expect = sync_api.expect
    # Assertions wait as long as actions do: a loaded 2-core CI machine is slower than 5 s.
    expect.set_options(timeout=20_000)
    from django_tenants.utils import schema_context

    from accounts.models import Role, User
    from tenants.services import tenant_provision

    tenant = tenant_provision(
        organization_name="Initech",
        billing_email="peter@initech.example",
        admin_email="peter@initech.example",
        plan="starter",
        admin_password=OWNER_PASSWORD,
    ).tenant
    port = site_url.rsplit(":", 1)[1]
    origin = f"http://{tenant.primary_domain}:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    failed: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            owner = browser.new_context(viewport={"width": 1280, "height": 900})
            owner.set_default_timeout(20_000)
            page: Any = owner.new_page()
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 500 else None)
            page.goto(f"{origin}/accounts/login/")
            page.get_by_label("Email").fill("peter@initech.example")
            page.get_by_label("Password").fill(OWNER_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
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
            invitee = browser.new_context(viewport={"width": 390, "height": 844})
            invitee.set_default_timeout(20_000)
            page = invitee.new_page()
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 500 else None)
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
            page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(f"{origin}/accounts/login/")
            page.get_by_label("Email").fill("milton@initech.example")
            page.get_by_label("Password").fill(MEMBER_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(f"{origin}/")
            page.goto(f"{origin}/members/")
            expect(page.locator("#member-list .member-email")).to_have_text(
                ["milton@initech.example", "peter@initech.example"]
            )
            page.screenshot(path=str(ARTIFACTS / "members-phone.png"), full_page=True)
            invitee.close()
        finally:
            browser.close()

    assert failed == []
    with schema_context(tenant.schema_name):
        milton = User.objects.get(email="milton@initech.example")
        assert (milton.role, milton.username, milton.is_active) == (Role.ADMIN, "Milton", True)
