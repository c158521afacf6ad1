"""What a tenant may do, decided by us from its subscription (never dj-stripe's ``is_valid``,
``active_subscriptions`` or ``is_subscribed_to``: since Stripe moved the billing period onto the
subscription items, dj-stripe #2196, those read fields that no longer exist).

Pure functions of Stripe's subscription status, the items' ``current_period_end``, the dunning
start and the clock; ``billing.services`` stores the result on ``BillingAccount``.

==================  ======================  ==========================================
Stripe status       plan (limits)           access
==================  ======================  ==========================================
trialing, active    the subscription's      ok (while the period has not run out)
past_due            the subscription's      ok until the grace period ends, then suspended
paused              the subscription's      payment_required (trial ended without a card)
incomplete          unchanged               unchanged (the first payment is under way)
unpaid, canceled,   starter                 suspended if a payment failed and the grace
incomplete_expired                          period is over, else ok (starter limits)
==================  ======================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.models import Access
from tenants.plans import Plan

# A period that ended this long ago without a renewal seen is treated as lapsed (a missed
# webhook and a failed re-read both fall back on this).
PERIOD_LEEWAY = timedelta(days=3)

ENTITLED = {"trialing", "active"}
ENDED = {"unpaid", "canceled", "incomplete_expired"}


@dataclass(frozen=True)
class Entitlement:
    plan: str
    access: str


def entitlement(
    *,
    status: str,
    plan: str,
    current_period_end: datetime | None,
    payment_failed_at: datetime | None,
    grace: timedelta,
    now: datetime,
    previous: Entitlement,
) -> Entitlement:
    grace_over = payment_failed_at is not None and now >= payment_failed_at + grace
    if status in ENTITLED:
        lapsed = current_period_end is not None and now > current_period_end + PERIOD_LEEWAY
        if lapsed:
            return Entitlement(plan, Access.SUSPENDED if grace_over else Access.PAYMENT_REQUIRED)
        return Entitlement(plan, Access.OK)
    if status == "past_due":
        return Entitlement(plan, Access.SUSPENDED if grace_over else Access.OK)
    if status == "paused":
        return Entitlement(plan, Access.PAYMENT_REQUIRED)
    if status in ENDED:
        return Entitlement(Plan.STARTER, Access.SUSPENDED if grace_over else Access.OK)
    # incomplete, or no subscription yet: nothing changes.
    return previous
