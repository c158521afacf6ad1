"""Sign-ups and usage move their counters when they really happen (the real sign-up page, the
real meter); tenants by status and plan are in beat's snapshot (leanvibe/tests/test_metrics.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from leanvibe.errors import UsageLimitReached
from leanvibe.tests.metrics_helpers import value
from tenants.tests.test_pages import HTML, signup_data
from tenants.usage import meter_local_flush, usage_record

SIGNUPS = "leanvibe_signups_total"
USAGE = "leanvibe_usage_total"


@pytest.mark.django_db
def test_a_sign_up_counts_once_committed(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    before = value(SIGNUPS)
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post("/signup/", signup_data(admin_email="not-an-email"), **HTML)
    assert refused.status_code == 400  # the form again, with its error
    assert value(SIGNUPS) == before

    with django_capture_on_commit_callbacks(execute=False) as pending:
        assert client.post("/signup/", signup_data(), **HTML).status_code == 302
    assert value(SIGNUPS) == before  # not before the commit
    for callback in pending:
        callback()
    assert value(SIGNUPS) == before + 1


def test_recorded_usage_counts_by_metric_and_a_refusal_does_not(tenant_a: Any) -> None:
    before = value(USAGE, metric="ai_requests")
    usage_record(tenant=tenant_a.tenant, metric="ai_requests", quantity=7)
    assert value(USAGE, metric="ai_requests") == before + 7
    with pytest.raises(UsageLimitReached):
        usage_record(tenant=tenant_a.tenant, metric="ai_requests", quantity=10**6)
    assert value(USAGE, metric="ai_requests") == before + 7


def test_every_metered_api_call_counts_once_on_a_lease_or_not(api: Any, tenant_a: Any, settings: Any) -> None:
    settings.API_USAGE_METERING = True
    token = tenant_a.login(api)
    before = value(USAGE, metric="api_calls")
    for _ in range(12):  # the first takes a lease, the next are served on it
        assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 200
    meter_local_flush()
    assert value(USAGE, metric="api_calls") == before + 12
