"""The console: the activation funnel (chart and table for a chosen period) and the tenant's
journey on its page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leanvibe.tests.html import page, texts
from tenants.journey.models import LevelUnlocked
from tenants.models import Tenant
from tenants.tests.test_admin import staff, staff_client  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
FUNNEL = "/admin/journey/activationfunnel/"


def _built_up(make_tenant):
    """Three tenants created on 10, 11 and 12 March 2026: all reached level 1 (after 2 h, 4 h,
    6 h: median 4 h), one reached level 2 (after 1 day)."""
    handles = [make_tenant() for _ in range(3)]
    created = [datetime(2026, 3, day, 9, tzinfo=UTC) for day in (10, 11, 12)]
    for handle, at in zip(handles, created, strict=True):
        Tenant.objects.filter(pk=handle.tenant.pk).update(created_at=at)
    LevelUnlocked.objects.all().delete()
    for handle, at, hours in zip(handles, created, (2, 4, 6), strict=True):
        LevelUnlocked.objects.create(
            tenant_id=handle.tenant.pk, number=1, unlocked_at=at + timedelta(hours=hours), emailed_at=at
        )
    LevelUnlocked.objects.create(
        tenant_id=handles[0].tenant.pk,
        number=2,
        unlocked_at=created[0] + timedelta(days=1),
        emailed_at=created[0],
    )
    return handles


def test_the_funnel_shows_the_periods_shares_and_median_times(staff_client, make_tenant):  # noqa: F811
    _built_up(make_tenant)
    response = staff_client.get(FUNNEL, {"start": "2026-03-01", "end": "2026-03-31"})
    assert response.status_code == 200
    html = page(response)
    assert texts(html, '//tr[@data-level="1"]/td') == ["3", "100 %", "4 h"]
    assert texts(html, '//tr[@data-level="2"]/td') == ["1", "33 %", "1 day"] or texts(
        html, '//tr[@data-level="2"]/td'
    ) == ["1", "33 %", "24 h"]
    assert texts(html, '//tr[@data-level="3"]/td') == ["0", "0 %", "—"]
    bars = {
        bar.get("data-key"): bar.get("data-value")
        for bar in html.xpath('//*[@id="funnel-chart"]//*[@data-key]')
    }
    assert bars["1"] == "100" and bars["2"] == "33" and bars["6"] == "0"
    # A period without those tenants: the empty state, no chart.
    empty = page(staff_client.get(FUNNEL, {"start": "2025-01-01", "end": "2025-01-31"}))
    assert empty.xpath('//*[@id="funnel-empty"]') and not empty.xpath('//*[@id="funnel-chart"]')


def test_a_period_that_ends_before_it_starts_is_shown_as_an_error(staff_client):  # noqa: F811
    html = page(staff_client.get(FUNNEL, {"start": "2026-03-31", "end": "2026-03-01"}))
    assert "The end comes before the start." in texts(html, '//*[@id="end-errors"]')[0]


def test_the_funnel_is_for_staff_only(client, make_tenant):
    response = client.get(FUNNEL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_tenants_page_shows_its_journey(staff_client, tenant_a):  # noqa: F811
    from django.test import Client

    from conftest import ApiClient

    api = ApiClient(Client())  # the tenant's own traffic, apart from the console's session
    token = tenant_a.login(api)
    api.post("/api/v1/projects", {"name": "Rocket"}, host=tenant_a.host, token=token)
    response = staff_client.get(f"/admin/tenants/tenant/{tenant_a.tenant.pk}/change/")
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    html = page(response)
    levels = html.xpath('//ol[@id="tenant-journey"]/li')
    assert len(levels) == 6
    assert levels[0].get("data-unlocked") == "yes" and "3 of 3 steps, unlocked" in levels[0].text_content()
    assert levels[1].get("data-unlocked") == "no" and "0 of 2 steps" in levels[1].text_content()
