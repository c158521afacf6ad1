"""The journey on the dashboard: the current level's steps with their links, a ring per level,
the badges earned; and a project made on the page ticks its step like the API does."""

from __future__ import annotations

import pytest

from agents.tests.test_pages import Site, sign_in
from leanvibe.tests.html import page, texts
from tenants.journey.models import StepDone

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_a(client, tenant_a):
    sign_in(client, tenant_a)
    return Site(client, tenant_a)


def test_the_dashboard_shows_level_one_with_what_is_left_to_do(site_a):
    html = page(site_a.get())
    panel = html.xpath('//details[@id="journey"]')
    assert panel and panel[0].get("open") is not None
    assert texts(html, '//ol[@class="journey-levels"]/li/span[@class="journey-level-name"]') == [
        "1. SaaS Builder",
        "2. Tenant Architect",
        "3. Security Expert",
        "4. Revenue Engineer",
        "5. AI Developer",
        "6. Enterprise Master",
    ]
    current = html.xpath('//div[@id="journey-current"]')[0]
    assert current.get("data-level") == "1"
    done = current.xpath('.//li[contains(@class, "is-done")]/@data-step')
    todo = {
        li.get("data-step"): li.xpath(".//a/@href")[0]
        for li in current.xpath('.//li[not(contains(@class, "is-done"))]')
    }
    assert done == ["organisation_created"]
    assert todo["project_created"].endswith("/projects/") and todo["api_token_used"].endswith(
        "/account/sessions/"
    )
    # One step of three: the first ring is a third full; no badge yet.
    ring = html.xpath('//li[@data-level="1"]//circle[@class="journey-ring-fill"]')[0]
    assert ring.get("stroke-dasharray") == "33 100"
    assert not html.xpath('//li[@data-level="2"]//circle[@class="journey-ring-fill"]')  # 0 %: no dot
    assert not html.xpath('//*[@id="journey-badges"]')


def test_a_project_made_on_the_page_ticks_its_step(site_a):
    response = site_a.create("Rocket")
    assert response.status_code in (200, 302)
    assert StepDone.objects.filter(tenant_id=site_a.handle.tenant.pk, step="project_created").exists()
    html = page(site_a.get())
    assert "project_created" in html.xpath(
        '//div[@id="journey-current"]//li[contains(@class, "is-done")]/@data-step'
    )


def test_an_unlocked_level_shows_its_badge_and_the_next_level(site_a, api):
    token = site_a.handle.login(api)
    api.get("/api/v1/projects", host=site_a.handle.host, token=token)
    site_a.create("Rocket")
    html = page(site_a.get())
    assert html.xpath('//*[@id="journey-badges"]/span[@data-level="1"]/text()') == ["🏗️"]
    assert html.xpath('//div[@id="journey-current"]/@data-level') == ["2"]
    assert html.xpath('//li[@data-level="1"]/@class')[0].split() == ["journey-level", "is-unlocked"]
