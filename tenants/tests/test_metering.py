"""The API's usage meter: one Redis round trip per authenticated request, a 429 over the plan's
hard limit (starter: the limit; professional: 10 % over; enterprise: never), exempt paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from leanvibe import redis as lv_redis
from leanvibe.errors import UsageLimitReached
from tenants.models import Tenant
from tenants.periods import billing_period
from tenants.usage import (
    dirty_windows_key,
    meter_lease_revoke,
    metered_count,
    period_key,
    period_usage,
    usage_record,
    window_key,
)

BLOCKED = {
    "error": "quota_exceeded",
    "detail": "Usage limit reached. Upgrade your plan to continue.",
    "metric": "api_calls",
}


def set_used(tenant: Tenant, metric: str, value: int) -> None:
    lv_redis.client().set(period_key(tenant.id, metric, billing_period(tenant)), value)
    meter_lease_revoke(tenant.id)  # this process asks Redis again on its next call


@pytest.fixture
def starter(api, tenant_a):
    return {"handle": tenant_a, "ctx": {"host": tenant_a.host, "token": tenant_a.login(api)}}


@pytest.mark.django_db
def test_starter_is_refused_with_429_over_its_limit_and_retry_after_the_period_end(api, starter):
    tenant, ctx = starter["handle"].tenant, starter["ctx"]
    set_used(tenant, "api_calls", 9_999)
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # the 10,000th call
    refused = api.get("/api/v1/projects", **ctx)
    assert refused.status_code == 429
    assert refused.body == {**BLOCKED, "limit": 10_000}
    expected = (billing_period(tenant).end - timezone.now()).total_seconds()
    assert abs(int(refused["Retry-After"]) - expected) <= 5
    # Nothing refused is counted: the total stays at the limit, writes are refused too.
    assert api.post("/api/v1/projects", {"name": "No"}, **ctx).status_code == 429
    assert period_usage(tenant, "api_calls") == 10_000


@pytest.mark.django_db
def test_a_blocked_tenant_can_still_sign_in_see_its_usage_and_reach_billing(api, starter):
    handle, ctx = starter["handle"], starter["ctx"]
    set_used(handle.tenant, "api_calls", 10_000)
    assert api.get("/api/v1/projects", **ctx).status_code == 429
    usage = api.get("/api/v1/usage", **ctx)
    assert usage.status_code == 200
    assert usage.body["resources"]["api_calls"]["used"] == 10_000  # exempt calls are not counted
    assert api.get("/api/v1/billing/usage/analytics", **ctx).status_code == 200
    assert handle.login(api)  # /api/v1/auth/login
    assert api.get("/api/v1/auth/sessions", **ctx).status_code == 200
    assert period_usage(handle.tenant, "api_calls") == 10_000


@pytest.mark.django_db
def test_changing_the_plan_lifts_the_block_at_once(api, starter):
    tenant, ctx = starter["handle"].tenant, starter["ctx"]
    set_used(tenant, "api_calls", 10_000)
    assert api.get("/api/v1/projects", **ctx).status_code == 429
    Tenant.objects.filter(pk=tenant.pk).update(plan="professional")
    assert api.get("/api/v1/projects", **ctx).status_code == 200
    assert period_usage(tenant, "api_calls") == 10_001


@pytest.mark.django_db
def test_professional_has_ten_percent_grace_then_is_refused(api, make_tenant):
    pro = make_tenant("Pro Co", plan="professional")
    ctx = {"host": pro.host, "token": pro.login(api)}
    set_used(pro.tenant, "api_calls", 100_500)  # over the limit, within the grace
    assert api.get("/api/v1/projects", **ctx).status_code == 200
    set_used(pro.tenant, "api_calls", 109_999)
    assert api.get("/api/v1/projects", **ctx).status_code == 200
    refused = api.get("/api/v1/projects", **ctx)
    assert refused.status_code == 429
    assert refused.body == {**BLOCKED, "limit": 110_000}


@pytest.mark.django_db
def test_enterprise_is_never_refused(api, make_tenant):
    big = make_tenant("Big Co", plan="enterprise")
    ctx = {"host": big.host, "token": big.login(api)}
    set_used(big.tenant, "api_calls", 5_000_000)
    assert api.get("/api/v1/projects", **ctx).status_code == 200
    assert period_usage(big.tenant, "api_calls") == 5_000_001


@pytest.mark.django_db
def test_an_api_call_is_one_redis_round_trip_counting_the_period_and_the_window(api, starter, monkeypatch):
    tenant, ctx = starter["handle"].tenant, starter["ctx"]
    client = lv_redis.client()
    sent: list[Any] = []
    original = type(client).execute_command

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is client:
            sent.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "execute_command", recording)
    assert api.get("/api/v1/projects", **ctx).status_code == 200
    monkeypatch.undo()
    assert sent in (["EVALSHA"], ["EVALSHA", "EVAL"])  # EVAL only the first time (NOSCRIPT)
    assert period_usage(tenant, "api_calls") == 1
    members = [m.decode() if isinstance(m, bytes) else m for m in client.smembers(dirty_windows_key())]
    mine = [m for m in members if m.startswith(f"{tenant.id}:api_calls:")]
    assert len(mine) == 1
    assert client.get(window_key(mine[0])) == b"1"


@pytest.mark.django_db
def test_metering_off_counts_nothing(api, starter, settings):
    settings.API_USAGE_METERING = False
    set_used(starter["handle"].tenant, "api_calls", 10_000)
    assert api.get("/api/v1/projects", **starter["ctx"]).status_code == 200
    assert period_usage(starter["handle"].tenant, "api_calls") == 10_000


@pytest.mark.django_db
def test_usage_record_counts_ai_requests_and_refuses_over_the_hard_limit(tenant_a):
    tenant = tenant_a.tenant
    result = usage_record(tenant=tenant, metric="ai_requests", quantity=99)
    assert (result.total, result.counted, result.hard_limit) == (99, True, 100)
    assert usage_record(tenant=tenant, metric="ai_requests").total == 100
    with pytest.raises(UsageLimitReached) as refused:
        usage_record(tenant=tenant, metric="ai_requests")
    assert refused.value.status == 429
    assert refused.value.extra == {"metric": "ai_requests", "limit": 100}
    assert int(refused.value.headers["Retry-After"]) > 0
    assert period_usage(tenant, "ai_requests") == 100
    # api_calls are a separate counter.
    assert period_usage(tenant, "api_calls") == 0


@pytest.mark.django_db
def test_usage_record_refuses_what_is_not_a_metered_count(tenant_a):
    for metric, quantity in (("storage_bytes", 1), ("seats", 1), ("ai_requests", 0), ("ai_requests", True)):
        with pytest.raises(Exception) as refused:
            usage_record(tenant=tenant_a.tenant, metric=metric, quantity=quantity)
        assert getattr(refused.value, "status", None) == 400


@pytest.mark.django_db
def test_the_period_counter_follows_the_tenants_billing_cycle(tenant_a):
    tenant = tenant_a.tenant
    now = timezone.now()
    assert metered_count(tenant=tenant, metric="ai_requests", now=now).total == 1
    assert metered_count(tenant=tenant, metric="ai_requests", now=now).total == 2
    tenant.billing_cycle_anchor = now  # a subscription starting now: a new period, a new count
    counted = metered_count(tenant=tenant, metric="ai_requests", now=now)
    assert counted.total == 1
    assert counted.period.start == now
