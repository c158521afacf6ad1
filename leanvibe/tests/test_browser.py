"""End to end in headless Chromium: sign up, sign in on the new subdomain, create a project, and
check that a second organisation's dashboard does not show it.

Runs against pytest-django's live server (a real HTTP server in a thread, static files served),
so the database is transactional here: every schema the test creates is dropped afterwards.
"""

from __future__ import annotations

import re
from typing import Any

from leanvibe.tests.browser import ARTIFACTS, BROWSER_MARKS, chromium, expect, new_page

PASSWORD = "orbital-mechanics-42"

pytestmark = BROWSER_MARKS


def _sign_up(page: Any, site_url: str, organisation: str, email: str) -> None:
    page.goto(f"{site_url}/signup/")
    page.get_by_label("Organisation name").fill(organisation)
    page.get_by_label("Your work email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create organisation").click()


def _sign_in(page: Any) -> None:
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _project_names(page: Any) -> list[str]:
    names: list[str] = page.locator("#active-projects .project-name").all_inner_texts()
    return [n.strip() for n in names]


def test_sign_up_sign_in_create_project_and_stay_isolated(site_url: str) -> None:
    port = site_url.rsplit(":", 1)[1]
    failed_requests: list[str] = []

    with chromium() as browser:
        context, page = new_page(browser, failed_requests)

        # The landing page, styled by our own stylesheet.
        page.goto(f"{site_url}/")
        expect(page.get_by_role("heading", level=1)).to_contain_text("AI coding agents")
        expect(page.locator("article.plan")).to_have_count(3)
        brand_colour = page.locator(".brand-mark").evaluate("el => getComputedStyle(el).color")
        assert brand_colour == "rgb(255, 255, 255)", "leanvibe.css was not applied"
        page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)

        # Sign up "Initech" and land on its own sign-in page, email filled in.
        page.locator(".hero").get_by_role("link", name="Create your organisation").click()
        expect(page).to_have_url(f"{site_url}/signup/")
        # An empty form comes back with each problem under its field.
        page.get_by_role("button", name="Create organisation").click()
        expect(page.locator(".has-error .field-error")).to_have_count(3)
        page.screenshot(path=str(ARTIFACTS / "signup-errors.png"), full_page=True)
        _sign_up(page, site_url, "Initech", "peter@initech.example")
        expect(page).to_have_url(
            f"http://initech.localhost:{port}/accounts/login/?email=peter%40initech.example"
        )
        expect(page.get_by_label("Email")).to_have_value("peter@initech.example")
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Initech")
        page.screenshot(path=str(ARTIFACTS / "sign-in.png"), full_page=True)

        _sign_in(page)
        expect(page).to_have_url(f"http://initech.localhost:{port}/")
        expect(page.locator("#active-projects .project-name")).to_have_text(["Welcome"])

        # Create "Apollo"; it is listed first, the usage bar counts it.
        page.get_by_label("Project name").fill("Apollo")
        page.get_by_label("Description").fill("Put a dashboard on the moon.")
        page.get_by_role("button", name="Create project").click()
        expect(page.locator(".messages")).to_contain_text("Project “Apollo” created.")
        expect(page.locator("#active-projects .project-name")).to_have_text(["Apollo", "Welcome"])
        expect(page.locator('[data-resource="projects"] .meter-value')).to_contain_text("2")

        # A duplicate is refused next to the name field.
        page.get_by_label("Project name").fill("apollo")
        page.get_by_role("button", name="Create project").click()
        expect(page.locator(".field-error")).to_have_text(
            "Project 'apollo' already exists in your organization"
        )

        # Rename through the row's popover.
        welcome = page.locator("#active-projects .project").filter(has_text="Welcome")
        welcome.locator("summary", has_text="Rename").click()
        welcome.get_by_label("New name").fill("Onboarding")
        page.screenshot(path=str(ARTIFACTS / "dashboard-rename.png"))
        welcome.get_by_role("button", name="Save name").click()
        expect(page.locator("#active-projects .project-name")).to_have_text(["Apollo", "Onboarding"])

        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        context.close()

        # A second organisation, in a browser of its own, does not see Apollo.
        other, page = new_page(browser)
        _sign_up(page, site_url, "Hooli", "gavin@hooli.example")
        expect(page).to_have_url(re.compile(rf"^http://hooli\.localhost:{port}/accounts/login/"))
        _sign_in(page)
        expect(page).to_have_url(f"http://hooli.localhost:{port}/")
        expect(page.locator("#active-projects .project-name")).to_have_text(["Welcome"])
        expect(page.locator("main")).not_to_contain_text("Apollo")
        page.screenshot(path=str(ARTIFACTS / "dashboard-second-org.png"), full_page=True)

        # Nor can it walk into Initech's dashboard: its session does not exist there.
        page.goto(f"http://initech.localhost:{port}/")
        expect(page).to_have_url(re.compile(rf"^http://initech\.localhost:{port}/accounts/login/"))
        expect(page.locator("main")).not_to_contain_text("Apollo")
        other.close()

    assert failed_requests == []
    # What the browser saw is what the database holds.
    from django_tenants.utils import schema_context

    from agents.models import Project
    from tenants.models import Tenant

    assert set(Tenant.objects.values_list("schema_name", flat=True)) == {"initech", "hooli"}
    with schema_context("initech"):
        assert sorted(Project.objects.values_list("name", flat=True)) == ["Apollo", "Onboarding"]
    with schema_context("hooli"):
        assert list(Project.objects.values_list("name", flat=True)) == ["Welcome"]
