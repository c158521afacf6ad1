"""The journey steps billing does (``tenants.journey``, level 4 "Revenue Engineer"): registered by
``BillingConfig.ready``, reported where billing learns them from Stripe.

- ``subscription_active``: the tenant's subscription is ``active`` (not trialing, not paused).
  Ticked by ``account_apply_subscription``, which every sync of a subscription goes through (the
  owner's actions, webhooks, test clocks); computed from dj-stripe's mirrored subscriptions.
  Those hold each subscription's status *now*: one active then cancelled no longer shows it, so
  the step has no history (``journey_check`` does not count a ticked step they do not show).
- ``first_invoice_paid``: an invoice with money on it (``amount_paid > 0``; not the trial's $0
  one) is paid. Ticked by ``invoice_paid`` (the ``invoice.paid`` webhook) and by a subscription
  paid with a card at once (``subscribe``: the new subscription's ``latest_invoice``);
  computed from dj-stripe's mirrored invoices, which keep a paid invoice paid (history). The
  subscribe path mirrors the invoice that ticks the step itself, so the records show it before
  its webhook arrives.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from django.db.models import QuerySet
from djstripe.models import Invoice as DjstripeInvoice
from djstripe.models import Subscription as DjstripeSubscription

from billing.models import BillingAccount, InvoiceMirror
from billing.stripe_objects import as_dict, ts
from tenants.journey.registry import JourneyStep, journey_step_register
from tenants.journey.services import journey_step_known_done, journey_step_report
from tenants.models import Tenant

logger = logging.getLogger(__name__)

SUBSCRIPTION_ACTIVE = "subscription_active"
FIRST_INVOICE_PAID = "first_invoice_paid"


def _known_done(tenant_id: Any, step: str) -> bool:
    # The check reads the tenant's id only: no query for its row on the webhooks' path.
    return journey_step_known_done(tenant=Tenant(pk=tenant_id), step=step)


def _customer_ids(tenant: Tenant) -> QuerySet[BillingAccount, str]:
    """The tenant's Stripe customer (used as a subquery)."""
    return (
        BillingAccount.objects.filter(tenant_id=tenant.pk)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
    )


# --- a paid subscription is active -------------------------------------------------------------
def active_since(sub: dict[str, Any]) -> datetime | None:
    """When an active subscription started to be paid: at its trial's end if it had one, else
    when it started."""
    return ts(sub.get("trial_end")) or ts(sub.get("start_date")) or ts(sub.get("created"))


def subscription_active_at(tenant: Tenant) -> datetime | None:
    subs = DjstripeSubscription.objects.filter(
        customer_id__in=_customer_ids(tenant), stripe_data__status="active"
    ).values_list("stripe_data", flat=True)
    times = [at for at in (active_since(dict(sub)) for sub in subs) if at is not None]
    return min(times, default=None)


def subscription_active_report(*, tenant: Tenant, sub: dict[str, Any]) -> None:
    """``sub`` (as Stripe says now) was applied to the tenant, in the caller's transaction. A
    step already done costs nothing."""
    if sub.get("status") != "active":
        return
    journey_step_report(tenant=tenant, step=SUBSCRIPTION_ACTIVE, at=active_since(sub))


# --- its first invoice is paid -------------------------------------------------------------------
def invoice_paid_at(invoice: dict[str, Any]) -> datetime | None:
    """When ``invoice`` was paid, if it is paid with money (the trial's $0 invoice is "paid"
    too, and is not a payment)."""
    if invoice.get("status") != "paid" or int(invoice.get("amount_paid") or 0) <= 0:
        return None
    return ts((invoice.get("status_transitions") or {}).get("paid_at")) or ts(invoice.get("created"))


def first_invoice_paid_at(tenant: Tenant) -> datetime | None:
    invoices = DjstripeInvoice.objects.filter(
        customer_id__in=_customer_ids(tenant), stripe_data__status="paid", stripe_data__amount_paid__gt=0
    ).values_list("stripe_data", flat=True)
    times = [at for at in (invoice_paid_at(dict(invoice)) for invoice in invoices) if at is not None]
    return min(times, default=None)


def first_invoice_paid_report(*, tenant_id: Any, invoice: dict[str, Any]) -> None:
    """Stripe says ``invoice`` (of the tenant's customer) is paid: the first one with money on
    it ticks the step. Afterwards nothing, for each renewal."""
    at = invoice_paid_at(invoice)
    if at is None or _known_done(tenant_id, FIRST_INVOICE_PAID):
        return
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        journey_step_report(tenant=tenant, step=FIRST_INVOICE_PAID, at=at)


def subscription_invoice_paid_report(*, tenant: Tenant, sub: stripe.Subscription) -> None:
    """A subscription just made or changed with a card (``subscribe``), its ``latest_invoice``
    expanded: if that invoice is paid with money and the step is not done, it is mirrored in
    dj-stripe's table (what its ``invoice.paid`` webhook will do, for the records the step is
    computed from) and ticks the step, in one transaction."""
    invoice = getattr(sub, "latest_invoice", None)
    if not isinstance(invoice, stripe.Invoice):
        return
    at = invoice_paid_at(as_dict(invoice))
    if at is None or journey_step_known_done(tenant=tenant, step=FIRST_INVOICE_PAID):
        return
    with transaction.atomic():
        try:
            with transaction.atomic():
                InvoiceMirror.sync_from_stripe_data(invoice)
        except stripe.StripeError:
            # The payment stands; its webhook mirrors the invoice when it is processed.
            logger.warning("invoice %s not mirrored now; its webhook will", invoice.id, exc_info=True)
        journey_step_report(tenant=tenant, step=FIRST_INVOICE_PAID, at=at)


def register() -> None:
    for step in (
        JourneyStep(
            id=SUBSCRIPTION_ACTIVE,
            level=4,
            title="A paid subscription is active",
            help_url="/billing/",
            done_at=subscription_active_at,
            order=10,
            history=False,
        ),
        JourneyStep(
            id=FIRST_INVOICE_PAID,
            level=4,
            title="Its first invoice is paid",
            help_url="/billing/",
            done_at=first_invoice_paid_at,
            order=20,
        ),
    ):
        journey_step_register(step)
