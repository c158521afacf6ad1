"""``POST /api/v1/billing/usage`` and ``GET /api/v1/billing/usage/analytics``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import member_add
from billing.metering import pending_windows, usage_windows_persist
from billing.models import UsageRecord
from leanvibe import redis as lv_redis
from tenants.periods import billing_period
from tenants.usage import meter_lease_revoke, metered_count, period_key, period_usage

USAGE = "/api/v1/billing/usage"
ANALYTICS = "/api/v1/billing/usage/analytics"


@pytest.fixture
def owner(api, tenant_a):
    return {"host": tenant_a.host, "token": tenant_a.login(api)}


def set_used(tenant, metric, value):
    lv_redis.client().set(period_key(tenant.id, metric, billing_period(tenant)), value)
    meter_lease_revoke(tenant.id)  # this process asks Redis again on its next call


@pytest.mark.django_db
def test_posted_usage_is_in_the_ledger_and_the_period_count(api, tenant_a, owner):
    response = api.post(
        USAGE, {"metric_name": "ai_requests", "quantity": 7, "metadata": {"model": "x"}}, **owner
    )
    assert response.status_code == 201
    assert response.body == {
        "metric_name": "ai_requests",
        "quantity": 7,
        "period_total": 7,
        "limit": 100,
        "overage": 0,
        "status": "ok",
    }
    row = UsageRecord.objects.get(tenant=tenant_a.tenant)
    assert (row.metric, row.quantity, row.source, row.metadata) == ("ai_requests", 7, "api", {"model": "x"})
    assert row.idempotency_key.startswith(f"{tenant_a.tenant.id}:api:")
    assert row.reported_at is None
    assert period_usage(tenant_a.tenant, "ai_requests") == 7
    again = api.post(USAGE, {"metric_name": "ai_requests", "quantity": 3}, **owner)
    assert again.body["period_total"] == 10
    # Posted usage is in the ledger already: never windowed, so the flush cannot add it twice.
    assert [w.metric for w in pending_windows(tenant_id=tenant_a.tenant.id)] == ["api_calls"]


@pytest.mark.django_db
def test_a_repeated_idempotency_key_returns_the_first_answer_and_counts_once(api, tenant_a, owner):
    payload = {"metric_name": "ai_requests", "quantity": 5, "idempotency_key": "job-42"}
    first = api.post(USAGE, payload, **owner)
    assert first.status_code == 201
    api.post(USAGE, {"metric_name": "ai_requests", "quantity": 1}, **owner)
    replay = api.post(USAGE, payload, **owner)
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.body == first.body
    assert replay.content == first.content  # the same bytes, key order included
    assert period_usage(tenant_a.tenant, "ai_requests") == 6
    assert UsageRecord.objects.filter(tenant=tenant_a.tenant).count() == 2
    key = f"{tenant_a.tenant.id}:api:job-42"
    assert UsageRecord.objects.filter(tenant=tenant_a.tenant, idempotency_key=key).count() == 1


@pytest.mark.django_db
def test_the_same_idempotency_key_in_two_tenants_is_two_records(api, tenant_a, tenant_b, owner):
    payload = {"metric_name": "ai_requests", "quantity": 2, "idempotency_key": "same"}
    assert api.post(USAGE, payload, **owner).status_code == 201
    ctx_b = {"host": tenant_b.host, "token": tenant_b.login(api)}
    assert api.post(USAGE, payload, **ctx_b).status_code == 201
    assert period_usage(tenant_b.tenant, "ai_requests") == 2


@pytest.mark.django_db
def test_status_by_plan(api, make_tenant):
    cases = [
        ("starter", 99, 1, {"period_total": 100, "limit": 100, "overage": 0, "status": "overage"}),
        ("starter", 50, 1, {"period_total": 51, "limit": 100, "overage": 0, "status": "ok"}),
        (
            "professional",
            2_000,
            100,
            {"period_total": 2_100, "limit": 2_000, "overage": 100, "status": "grace"},
        ),
        (
            "enterprise",
            10_000,
            5,
            {"period_total": 10_005, "limit": 10_000, "overage": 5, "status": "overage"},
        ),
    ]
    for n, (plan, used, quantity, expected) in enumerate(cases):
        handle = make_tenant(f"Plan {n}", plan=plan)
        set_used(handle.tenant, "ai_requests", used)
        ctx = {"host": handle.host, "token": handle.login(api)}
        response = api.post(USAGE, {"metric_name": "ai_requests", "quantity": quantity}, **ctx)
        assert response.status_code == 201, (plan, response.body)
        assert {k: response.body[k] for k in expected} == expected, plan


@pytest.mark.django_db
def test_usage_over_a_hard_limit_is_refused_and_not_recorded(api, make_tenant):
    pro = make_tenant("Pro", plan="professional")
    set_used(pro.tenant, "ai_requests", 2_150)
    ctx = {"host": pro.host, "token": pro.login(api)}
    refused = api.post(USAGE, {"metric_name": "ai_requests", "quantity": 51}, **ctx)
    assert refused.status_code == 429
    assert refused.body == {
        "error": "quota_exceeded",
        "detail": "Usage limit reached. Upgrade your plan to continue.",
        "metric": "ai_requests",
        "limit": 2_200,
    }
    assert int(refused["Retry-After"]) > 0
    assert not UsageRecord.objects.filter(tenant=pro.tenant).exists()
    assert period_usage(pro.tenant, "ai_requests") == 2_150
    assert api.post(USAGE, {"metric_name": "ai_requests", "quantity": 50}, **ctx).status_code == 201
    # The endpoint itself stays reachable when API calls are blocked.
    set_used(pro.tenant, "api_calls", 110_000)
    assert api.get("/api/v1/projects", **ctx).status_code == 429
    assert api.get(ANALYTICS, **ctx).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"metric_name": "storage_bytes", "quantity": 1}, "metric_name"),
        ({"metric_name": "seats", "quantity": 1}, "metric_name"),
        ({"metric_name": "storage_gb", "quantity": 1}, "metric_name"),
        ({"metric_name": "nope", "quantity": 1}, "metric_name"),
        ({"metric_name": 1, "quantity": 1}, "metric_name"),
        ({"quantity": 1}, "metric_name"),
        ({"metric_name": "ai_requests", "quantity": 0}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": -3}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": "5"}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": True}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": 1.5}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": 2.0}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": None}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": 2**63}, "quantity"),
        ({"metric_name": "ai_requests"}, "quantity"),
        ({"metric_name": "ai_requests", "quantity": 1, "metadata": [1]}, "metadata"),
        ({"metric_name": "ai_requests", "quantity": 1, "metadata": "x"}, "metadata"),
        ({"metric_name": "ai_requests", "quantity": 1, "metadata": {"a": "nul\u0000"}}, "metadata"),
        ({"metric_name": "ai_requests", "quantity": 1, "metadata": {"\ud800": 1}}, "metadata"),
        ({"metric_name": "ai_requests", "quantity": 1, "metadata": {"a": "x" * 5000}}, "metadata"),
        ({"metric_name": "ai_requests", "quantity": 1, "idempotency_key": "k" * 51}, "idempotency_key"),
        ({"metric_name": "ai_requests", "quantity": 1, "idempotency_key": 7}, "idempotency_key"),
        ({"metric_name": "ai_requests", "quantity": 1, "idempotency_key": "a\nb"}, "idempotency_key"),
        ({"metric_name": "ai_requests", "quantity": 1, "idempotency_key": ""}, "idempotency_key"),
        ({"metric_name": "ai_requests", "quantity": 1, "tenant": "other"}, "tenant"),
    ],
)
def test_bad_usage_is_400_naming_the_field(api, tenant_a, owner, payload, field):
    response = api.post(USAGE, payload, **owner)
    assert response.status_code == 400, response.body
    assert response.body["error"] == "validation_error"
    assert field in response.body["fields"]
    assert not UsageRecord.objects.filter(tenant=tenant_a.tenant).exists()
    assert period_usage(tenant_a.tenant, "ai_requests") == 0


@pytest.mark.django_db
def test_members_read_usage_and_admins_record_it(api, tenant_a, owner):
    with schema_context(tenant_a.tenant.schema_name):
        member_add(
            tenant=tenant_a.tenant, email="member@example.com", password="member-pass-1234", role="member"
        )
        member_add(
            tenant=tenant_a.tenant, email="admin@example.com", password="admin-pass-1234", role="admin"
        )
    member = {"host": tenant_a.host, "token": tenant_a.login(api, "member@example.com", "member-pass-1234")}
    admin = {"host": tenant_a.host, "token": tenant_a.login(api, "admin@example.com", "admin-pass-1234")}
    payload = {"metric_name": "ai_requests", "quantity": 1}
    refused = api.post(USAGE, payload, **member)
    assert refused.status_code == 403 and refused.body["error"] == "permission_denied"
    assert api.get(ANALYTICS, **member).status_code == 200
    assert api.post(USAGE, payload, **admin).status_code == 201
    assert api.post(USAGE, payload, **owner).status_code == 201
    assert api.post(USAGE, payload, host=tenant_a.host).status_code == 401
    assert api.get(ANALYTICS, host=tenant_a.host).status_code == 401


@pytest.mark.django_db
def test_analytics_from_ledger_and_unflushed_windows_with_every_day(api, tenant_a, owner):
    tenant = tenant_a.tenant
    api.post(USAGE, {"metric_name": "ai_requests", "quantity": 4}, **owner)
    now = timezone.now()
    two_days_ago = now - timedelta(days=2)
    for _ in range(3):
        metered_count(tenant=tenant, metric="ai_requests", now=two_days_ago)
    metered_count(tenant=tenant, metric="api_calls", quantity=5, now=two_days_ago - timedelta(hours=1))
    # A window already in the ledger but not yet released (a killed flush) is counted once.
    closed = pending_windows(tenant_id=tenant.id, closed_before=now - timedelta(days=1))
    persisted = [w for w in closed if w.metric == "api_calls"]
    assert [w.quantity for w in persisted] == [5]
    usage_windows_persist(windows=persisted)

    body = api.get(ANALYTICS, **owner).body
    today = now.date()
    assert body["start_date"] == (today - timedelta(days=29)).isoformat()
    assert body["end_date"] == today.isoformat()
    ai = body["metrics"]["ai_requests"]
    assert len(ai["daily"]) == 30 and ai["daily"][-1] == {"date": today.isoformat(), "quantity": 4}
    assert ai["total_usage"] == 7 and ai["records"] == 2
    assert ai["average_per_day"] == round(7 / 30, 2)
    by_day = {d["date"]: d["quantity"] for d in ai["daily"]}
    assert by_day[two_days_ago.date().isoformat()] == 3
    assert sum(by_day.values()) == 7
    calls = body["metrics"]["api_calls"]
    # 5 counted two days ago, plus this tenant's own authenticated API calls (POST, this GET).
    assert calls["total_usage"] == 5 + 2
    assert {d["date"]: d["quantity"] for d in calls["daily"]}[
        (two_days_ago - timedelta(hours=1)).date().isoformat()
    ] == 5

    window = api.get(f"{ANALYTICS}?start_date={today.isoformat()}&end_date={today.isoformat()}", **owner).body
    assert window["metrics"]["ai_requests"]["daily"] == [{"date": today.isoformat(), "quantity": 4}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start_date=2026-02-30", "start_date"),
        ("start_date=yesterday", "start_date"),
        ("end_date=2026-13-01", "end_date"),
        ("end_date=%C2%B2", "end_date"),
        ("start_date=2026-05-02&end_date=2026-05-01", "start_date"),
        ("start_date=2025-01-01&end_date=2026-01-02", "start_date"),
        ("start_date=9999-12-31", "start_date"),
    ],
)
def test_bad_analytics_dates_are_400(api, tenant_a, owner, query, field):
    response = api.get(f"{ANALYTICS}?{query}", **owner)
    assert response.status_code == 400, response.body
    assert field in response.body["fields"]


@pytest.mark.django_db
def test_analytics_accepts_a_366_day_range(api, tenant_a, owner):
    body = api.get(f"{ANALYTICS}?start_date=2024-01-01&end_date=2024-12-31", **owner).body
    assert len(body["metrics"]["api_calls"]["daily"]) == 366
