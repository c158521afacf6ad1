"""In headless Chromium: a new organisation walks through level 1 of the journey — signs up,
creates a project of its own, calls the API with a token — and sees the badge; the panel
collapses and stays collapsed."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from leanvibe.tests.browser import ARTIFACTS, BROWSER_MARKS, chromium, expect, new_page

PASSWORD = "orbital-mechanics-42"

pytestmark = BROWSER_MARKS


def _api(port: str, host: str, path: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
    """What a user's script does with the API: plain HTTP to the tenant's host."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Host": host,
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the live server
        return json.loads(response.read())


def test_a_new_organisation_walks_through_level_one_and_sees_its_badge(site_url: str) -> None:
    port = site_url.rsplit(":", 1)[1]
    host = f"initech.localhost:{port}"
    failed: list[str] = []
    with chromium() as browser:
        context, page = new_page(browser, failed)
        page.goto(f"{site_url}/signup/")
        page.get_by_label("Organisation name").fill("Initech")
        page.get_by_label("Your work email").fill("peter@initech.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create organisation").click()
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"http://{host}/")

        # Level 1 is the current one; the organisation exists, two steps are left, no badge yet.
        journey = page.locator("#journey")
        expect(journey.locator("#journey-current h3")).to_contain_text("Level 1: SaaS Builder")
        expect(journey.locator(".journey-step.is-done")).to_have_count(1)
        expect(journey.locator("#journey-badges")).to_have_count(0)
        expect(journey.get_by_role("link", name="Create a project of your own")).to_be_visible()

        # A project of its own, on the dashboard.
        page.get_by_label("Project name").fill("Apollo")
        page.get_by_role("button", name="Create project").click()
        expect(page.locator(".messages")).to_contain_text("Project “Apollo” created.")
        expect(journey.locator('.journey-step[data-step="project_created"]')).to_have_class(
            "journey-step is-done"
        )

        # The API with a token, as the owner's script would call it.
        tokens = _api(
            port, host, "/api/v1/auth/login", {"email": "peter@initech.example", "password": PASSWORD}
        )
        projects = _api(port, host, "/api/v1/projects", token=tokens["access_token"])
        assert {p["name"] for p in projects["results"]} == {"Apollo", "Welcome"}

        # Back on the dashboard: the badge, and level 2 is next.
        page.reload()
        expect(journey.locator('#journey-badges [data-level="1"]')).to_have_text("🏗️")
        expect(journey.locator("#journey-current h3")).to_contain_text("Level 2: Tenant Architect")
        expect(page.locator('.journey-level[data-level="1"]')).to_have_class("journey-level is-unlocked")
        page.screenshot(path=str(ARTIFACTS / "journey-level-1.png"), full_page=True)

        # Collapsed, it stays collapsed on the next visit: the journey never nags.
        journey.locator("summary").click()
        expect(journey).not_to_have_attribute("open", "")
        page.reload()
        expect(page.locator("#journey")).not_to_have_attribute("open", "")
        expect(page.locator("#journey-badges")).to_be_visible()
        context.close()
    assert not failed, failed
