"""Dunning: reminders on days 0, 3 and 7 after a failed payment, each sent once; suspension
for non-payment after the grace period; the dry run lists without doing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from billing import access_flags, dunning
from billing.models import BillingAccount
from billing.tests.test_guard import set_state


@pytest.fixture
def failing(tenant_a, django_capture_on_commit_callbacks):
    failed_at = timezone.now()
    set_state(tenant_a, "past_due", failed_at=failed_at, capture=django_capture_on_commit_callbacks)
    return failed_at


def _sweep(at, capture):
    with capture(execute=True):
        return [a.action for a in dunning.dunning_sweep(dry_run=False, at=at)]


def test_reminders_on_days_0_3_7_each_once_then_suspension(
    tenant_a, failing, django_capture_on_commit_callbacks
):
    def sweep(days: float) -> list[str]:
        return _sweep(failing + timedelta(days=days), django_capture_on_commit_callbacks)

    assert sweep(0) == ["email day 0"]
    assert sweep(0.5) == []
    assert sweep(3) == ["email day 3"]
    assert sweep(3.1) == []
    assert sweep(7) == ["email day 7"]
    assert sweep(10) == []
    assert len(mail.outbox) == 3
    assert {tuple(m.to) for m in mail.outbox} == {(tenant_a.tenant.billing_email,)}
    assert "/billing/" in mail.outbox[0].body
    assert access_flags.access_of(tenant_a.tenant.id) == "dunning"

    assert sweep(14) == ["suspend"]
    account = BillingAccount.objects.get(tenant=tenant_a.tenant)
    assert account.access == "suspended" and account.suspended_at is not None
    assert access_flags.access_of(tenant_a.tenant.id) == "suspended"
    assert sweep(15) == []
    assert len(mail.outbox) == 3


def test_the_email_claim_lets_one_sweep_send(tenant_a, failing):
    account = BillingAccount.objects.get(tenant=tenant_a.tenant)
    assert dunning._email_claim(account, 3) is True
    assert dunning._email_claim(account, 3) is False  # a second sweep at the same time
    assert dunning._email_claim(account, 0) is False  # an earlier day never after a later one


def test_a_late_first_sweep_sends_only_the_latest_reminder(
    tenant_a, failing, django_capture_on_commit_callbacks
):
    assert _sweep(failing + timedelta(days=8), django_capture_on_commit_callbacks) == ["email day 7"]
    assert len(mail.outbox) == 1


def test_dry_run_lists_and_does_nothing(tenant_a, failing):
    out = StringIO()
    BillingAccount.objects.filter(tenant=tenant_a.tenant).update(
        payment_failed_at=failing - timedelta(days=15)
    )
    call_command("billing_dunning", "--dry-run", stdout=out)
    text = out.getvalue()
    assert f"{tenant_a.tenant.schema_name} ({tenant_a.id}): email day 7" in text
    assert f"{tenant_a.tenant.schema_name} ({tenant_a.id}): suspend" in text
    assert not mail.outbox
    account = BillingAccount.objects.get(tenant=tenant_a.tenant)
    assert account.access == "ok" and account.dunning_email_day is None


def test_the_sweep_republishes_lost_flags(tenant_a, failing, django_capture_on_commit_callbacks):
    BillingAccount.objects.filter(tenant=tenant_a.tenant).update(access="suspended")
    access_flags.access_publish(tenant_id=tenant_a.tenant.id, access="ok")  # as if Redis lost it
    _sweep(failing, django_capture_on_commit_callbacks)
    assert access_flags.access_of(tenant_a.tenant.id) == "suspended"
