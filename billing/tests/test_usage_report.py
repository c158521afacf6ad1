"""The usage ledger goes to Stripe as Billing Meter events (the local Stripe, real library):
each row once, named by its idempotency key, so a report that dies between sending and marking
bills nothing twice."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from billing import metering
from billing.catalog import meter_event_name
from billing.models import BillingAccount, UsageRecord
from billing.tests.test_subscriptions import trial  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def _metered_total(customer: str, metric: str) -> int:
    [meter] = [
        m for m in stripe.billing.Meter.list(limit=100).data if m.event_name == meter_event_name(metric)
    ]
    now = int(time.time())
    summaries = stripe.billing.Meter.list_event_summaries(
        meter.id, customer=customer, start_time=now - 3 * 86400, end_time=now + 3600
    )
    return int(sum(s.aggregated_value for s in summaries.data))


def test_each_ledger_row_is_sent_once_by_its_key(trial):  # noqa: F811
    customer = BillingAccount.objects.get(tenant=trial.tenant).stripe_customer_id
    metering.usage_ledger_record(tenant=trial.tenant, metric="api_calls", quantity=7, idempotency_key="k1")
    metering.usage_ledger_record(tenant=trial.tenant, metric="ai_requests", quantity=2, idempotency_key="k2")

    result = metering.usage_report()
    assert (result.reported, result.expired) == (2, 0)
    assert not UsageRecord.objects.filter(reported_at__isnull=True).exists()
    assert _metered_total(customer, "api_calls") == 7
    assert _metered_total(customer, "ai_requests") == 2
    # Nothing left: a second run sends nothing.
    assert metering.usage_report().reported == 0
    assert _metered_total(customer, "api_calls") == 7


def test_a_report_killed_after_sending_bills_nothing_twice(trial):  # noqa: F811
    account = BillingAccount.objects.get(tenant=trial.tenant)
    customer = account.stripe_customer_id
    metering.usage_ledger_record(tenant=trial.tenant, metric="api_calls", quantity=5, idempotency_key="once")
    row = UsageRecord.objects.get()
    # The first report sent the event and died before marking the row.
    metering._meter_event_send(row, account)
    assert _metered_total(customer, "api_calls") == 5
    assert metering.usage_report().reported == 1  # sent again: Stripe knows the identifier
    assert _metered_total(customer, "api_calls") == 5
    assert UsageRecord.objects.get().reported_at is not None


def test_rows_of_tenants_without_a_customer_wait_and_old_rows_expire(trial, make_tenant, settings):  # noqa: F811
    other = make_tenant("No Customer Yet")  # its provisioning task did not run: no customer
    metering.usage_ledger_record(tenant=other.tenant, metric="api_calls", quantity=3)
    metering.usage_ledger_record(tenant=trial.tenant, metric="api_calls", quantity=4)
    UsageRecord.objects.filter(tenant=trial.tenant).update(window_start=timezone.now() - timedelta(days=40))
    result = metering.usage_report()
    assert (result.reported, result.expired) == (0, 1)  # too old for Stripe: marked, not billed
    assert UsageRecord.objects.get(tenant=other.tenant).reported_at is None

    settings.STRIPE_SECRET_KEY = ""  # billing off: nothing is reported
    assert metering.usage_report() == metering.ReportResult(0, 0)
