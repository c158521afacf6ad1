"""The billing page's usage: a bar per limited resource against the plan's limit, and a daily
chart (server-rendered SVG) of the last 30 days, from usage recorded through the real metering
path (``tenants.usage``) and moved to the ledger by the real flush (``billing.metering``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.services import user_create
from billing.metering import usage_flush
from billing.models import UsageRecord
from billing.views import USAGE_CHART_DAYS
from leanvibe.tests.html import page, text_of, texts
from tenants.models import Tenant
from tenants.usage import metered_count, usage_record


def _signed_in(handle, email=None) -> Client:
    browser = Client(HTTP_HOST=handle.host)
    with schema_context(handle.tenant.schema_name):
        user = User.objects.get(email=email or handle.owner_email)
        browser.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return browser


def _meter(doc, resource):
    found = doc.xpath(f'//section[@id="usage"]//div[@data-resource="{resource}"]')
    assert len(found) == 1, resource
    return found[0]


def _meter_view(doc, resource):
    meter = _meter(doc, resource)
    classes = meter.get("class").split()
    value = text_of(meter.xpath('.//*[@class="meter-value"]')[0])
    width = meter.xpath('.//rect[@class="meter-fill"]')[0].get("width")
    return value, width, classes


def _billing(browser):
    response = browser.get("/billing/")
    assert response.status_code == 200
    return page(response)


def _bars(doc, metric):
    figure = doc.xpath(f'//figure[@data-metric="{metric}"]')
    assert len(figure) == 1, metric
    return [
        (rect.get("data-key"), int(rect.get("data-value")), float(rect.get("height")))
        for rect in figure[0].xpath('.//*[local-name()="rect"][@class="usage-chart-bar"]')
    ]


@pytest.mark.django_db
def test_bars_show_the_period_usage_against_the_starter_limits(make_tenant):
    handle = make_tenant("Usage Starter", plan="starter")
    usage_record(tenant=handle.tenant, metric="api_calls", quantity=1_234)
    usage_record(tenant=handle.tenant, metric="ai_requests", quantity=80)
    usage_flush(now=timezone.now() + timedelta(minutes=5))  # to the ledger: the bars stay the same
    assert UsageRecord.objects.filter(tenant=handle.tenant).count() == 2

    doc = _billing(_signed_in(handle))
    assert [m.get("data-resource") for m in doc.xpath('//section[@id="usage"]//div[@data-resource]')] == [
        "api_calls",
        "ai_requests",
        "storage_bytes",
        "users",
        "projects",
    ]
    value, width, classes = _meter_view(doc, "api_calls")
    assert value == "1,234 of 10,000 12%" and width == "12.34%"
    assert "meter-warn" not in classes and "meter-over" not in classes
    # 80 of 100 AI requests: the warning colour from 80 %.
    value, width, classes = _meter_view(doc, "ai_requests")
    assert value == "80 of 100 80%" and width == "80%" and "meter-warn" in classes
    assert "Close to the plan's limit." in text_of(_meter(doc, "ai_requests"))
    # The owner and the welcome project, as provisioning made them.
    assert _meter_view(doc, "users")[:2] == ("1 of 3 33%", "33.33%")
    assert _meter_view(doc, "projects")[:2] == ("1 of 5 20%", "20%")
    storage_value, storage_width, _ = _meter_view(doc, "storage_bytes")
    assert " of 1 GB " in storage_value
    assert float(storage_width.rstrip("%")) > 0
    bar = _meter(doc, "api_calls").xpath('.//*[@role="progressbar"]')[0]
    assert (bar.get("aria-valuenow"), bar.get("aria-label")) == ("12", "API calls")


@pytest.mark.django_db
def test_past_the_limit_is_over_and_no_limit_is_unlimited(make_tenant):
    # Professional allows 10 % over its metered limits: 2,100 of 2,000 AI requests is counted.
    handle = make_tenant("Usage Pro", plan="professional")
    usage_record(tenant=handle.tenant, metric="ai_requests", quantity=2_100)
    usage_record(tenant=handle.tenant, metric="api_calls", quantity=85_000)
    owner = _signed_in(handle)
    doc = _billing(owner)
    value, width, classes = _meter_view(doc, "ai_requests")
    assert value == "2,100 of 2,000 105%" and width == "100%"
    assert "meter-over" in classes and "meter-warn" not in classes
    assert _meter(doc, "ai_requests").get("data-state") == "over"
    assert "Over the plan's limit." in text_of(_meter(doc, "ai_requests"))
    assert _meter(doc, "ai_requests").xpath('.//*[@role="progressbar"]')[0].get("aria-valuenow") == "100"
    value, width, classes = _meter_view(doc, "api_calls")
    assert value == "85,000 of 100,000 85%" and width == "85%" and "meter-warn" in classes

    # Enterprise: no limit on seats, projects and storage.
    Tenant.objects.filter(pk=handle.tenant.pk).update(plan="enterprise")
    doc = _billing(owner)
    for resource in ("users", "projects", "storage_bytes"):
        value, _, classes = _meter_view(doc, resource)
        assert value.endswith("· Unlimited") and "meter-unlimited" in classes, resource
    assert _meter_view(doc, "ai_requests")[0] == "2,100 of 10,000 21%"


@pytest.mark.django_db
def test_daily_chart_has_a_bar_per_day_sized_by_the_ledger_and_the_unflushed_windows(make_tenant):
    handle = make_tenant("Usage Daily")
    now = timezone.now()
    # Through the metering path on three days; the flush moves the closed windows to the ledger,
    # today's window is still in Redis (the chart adds it, as the analytics API does).
    for days_ago, quantity in ((2, 30), (1, 10), (0, 20)):
        for _ in range(quantity // 10):
            result = metered_count(
                tenant=handle.tenant, metric="api_calls", quantity=10, now=now - timedelta(days=days_ago)
            )
            assert result.counted
    assert usage_flush(now=now).rows_created == 2
    assert UsageRecord.objects.filter(tenant=handle.tenant, metric="api_calls").count() == 2

    doc = _billing(_signed_in(handle))
    bars = _bars(doc, "api_calls")
    today = now.date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(USAGE_CHART_DAYS - 1, -1, -1)]
    assert [key for key, _, _ in bars] == days
    values = {key: value for key, value, _ in bars}
    assert [values[d] for d in days[-3:]] == [30, 10, 20] and sum(values.values()) == 60
    heights = {key: height for key, _, height in bars}
    assert heights[days[-3]] > heights[days[-1]] > heights[days[-2]] > 0
    assert all(heights[d] == 0 for d in days[:-3])
    # Tallest bar against the axis top (50): 30/50 of the plot.
    assert heights[days[-3]] == pytest.approx(188 * 30 / 50, abs=0.1)

    svg = doc.xpath('//figure[@data-metric="api_calls"]//*[local-name()="svg"]')[0]
    assert svg.get("role") == "img" and svg.get("aria-label").startswith("API calls per day")
    titles = svg.xpath('.//*[local-name()="rect"]/*[local-name()="title"]/text()')
    assert f"{days[-3]}: 30 API calls" in titles
    # The same numbers as text: a summary and a table.
    summary = texts(doc, '//figure[@data-metric="api_calls"]//p[contains(@class, "usage-summary")]')
    assert summary == [f"60 in 30 days · 2 a day on average · most on {days[-3]} (30)"]
    rows = doc.xpath('//figure[@data-metric="api_calls"]//table//tbody/tr')
    assert len(rows) == USAGE_CHART_DAYS
    assert [text_of(cell) for cell in rows[-3]] == [days[-3], "30"]
    # No AI requests: no chart for them.
    assert not doc.xpath('//figure[@data-metric="ai_requests"]')

    usage_record(tenant=handle.tenant, metric="ai_requests", quantity=4)
    doc = _billing(_signed_in(handle))
    assert [(key, value) for key, value, _ in _bars(doc, "ai_requests") if value] == [(days[-1], 4)]


@pytest.mark.django_db
def test_without_usage_the_chart_is_an_empty_state(make_tenant):
    handle = make_tenant("Usage None")
    doc = _billing(_signed_in(handle))
    figure = doc.xpath('//figure[@data-metric="api_calls"]')[0]
    assert not figure.xpath('.//*[local-name()="svg"]')
    assert texts(figure, './/*[contains(@class, "usage-empty")]') == ["No API calls in the last 30 days."]
    assert not doc.xpath('//figure[@data-metric="ai_requests"]')
    assert _meter_view(doc, "api_calls")[:2] == ("0 of 10,000 0%", "0%")


@pytest.mark.django_db
def test_members_see_the_usage_too(make_tenant):
    handle = make_tenant("Usage Members")
    usage_record(tenant=handle.tenant, metric="api_calls", quantity=42)
    with schema_context(handle.tenant.schema_name):
        user_create(email="member@example.com", password=handle.password, role=Role.MEMBER)
    doc = _billing(_signed_in(handle, "member@example.com"))
    assert _meter_view(doc, "api_calls")[0] == "42 of 10,000 0%"
    assert [key for key, value, _ in _bars(doc, "api_calls") if value] == [timezone.now().date().isoformat()]
    assert not doc.xpath('//section[@id="subscribe"]')
