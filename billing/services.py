"""Writes of billing: the Stripe customer and trial of a new tenant, the subscription's state
re-read from Stripe and applied to the tenant, and the owners' subscription actions.

Every Stripe object is re-read by id before it changes anything here: webhook payloads only say
*which* object changed (events arrive late, twice or out of order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer as DjstripeCustomer
from djstripe.models import Subscription as DjstripeSubscription

from billing import access_flags
from billing.catalog import metered_lookup_key
from billing.entitlement import Entitlement, entitlement
from billing.journey import (
    first_invoice_paid_report,
    subscription_active_report,
    subscription_invoice_paid_report,
)
from billing.models import Access, BillingAccount
from billing.stripe_api import billing_enabled, clocks_on
from billing.stripe_objects import (
    as_dict,
    current_period,
    invoice_subscription_id,
    licensed_items,
    object_id,
    subscription_items,
    ts,
)
from leanvibe.errors import DomainError
from tenants.models import Tenant
from tenants.plans import METERED, SPECS, Interval, OveragePolicy, spec_for

logger = logging.getLogger(__name__)

#: Subscriptions a tenant still has (a new one replaces, never duplicates, these).
LIVE_STATUSES = {"trialing", "active", "past_due", "incomplete", "paused", "unpaid"}
_PLAN_BY_LOOKUP_KEY = {
    spec.price_lookup_key(interval): (plan, interval)
    for plan, spec in SPECS.items()
    for interval in spec.prices
}


class BillingError(DomainError):
    pass


class BillingOff(BillingError):
    def __init__(self) -> None:
        super().__init__("billing_disabled", "Billing is not configured on this platform.", status=503)


def _require_billing() -> None:
    if not billing_enabled():
        raise BillingOff()


def _stripe_failure(exc: stripe.StripeError) -> BillingError:
    if isinstance(exc, stripe.CardError):
        return BillingError("card_declined", exc.user_message or "The card was declined.", status=402)
    if isinstance(exc, stripe.InvalidRequestError):
        return BillingError("invalid_request", exc.user_message or "Stripe refused the request.", status=400)
    return BillingError(
        "stripe_unavailable", "Billing is unavailable right now; try again shortly.", status=503
    )


# --- the catalogue's prices --------------------------------------------------------------------
def price_for(lookup_key: str) -> dict[str, Any]:
    prices = stripe.Price.list(lookup_keys=[lookup_key], active=True, limit=1)
    if not prices.data:
        raise BillingError(
            "catalog_missing",
            f"No Stripe price has lookup key {lookup_key}: run billing_sync_catalog.",
            status=503,
        )
    return as_dict(prices.data[0])


def plan_items(plan: str, interval: str) -> list[Any]:
    """Subscription items of the metered overage prices a plan bills (``charge`` plans)."""
    spec = spec_for(plan)
    if spec.overage.policy != OveragePolicy.CHARGE:
        return []
    return [
        {"price": price_for(metered_lookup_key(m, interval))["id"]}
        for m in METERED
        if m in spec.overage.unit_prices
    ]


def plan_of_subscription(sub: dict[str, Any]) -> tuple[str | None, str]:
    for item in licensed_items(sub):
        price = item.get("price") or {}
        found = _PLAN_BY_LOOKUP_KEY.get(price.get("lookup_key") or "")
        if found:
            return str(found[0]), str(found[1])
        interval = (price.get("recurring") or {}).get("interval") or ""
        plan = (price.get("metadata") or {}).get("plan") or (sub.get("metadata") or {}).get("plan")
        if plan in SPECS:
            return str(plan), str(interval)
    return None, ""


# --- the account and its state -----------------------------------------------------------------
def account_get_or_create(*, tenant: Tenant) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(tenant=tenant, defaults={"plan": tenant.plan})
    return account


def _publish_after_commit(account: BillingAccount) -> None:
    tenant_id, access, dunning = account.tenant_id, account.access, account.in_dunning
    transaction.on_commit(
        lambda: access_flags.access_publish(tenant_id=tenant_id, access=access, dunning=dunning)
    )


def _decide(account: BillingAccount, now: Any) -> None:
    decided = entitlement(
        status=account.status,
        plan=account.plan,
        current_period_end=account.current_period_end,
        payment_failed_at=account.payment_failed_at,
        grace=timedelta(days=settings.BILLING_GRACE_DAYS),
        now=now,
        previous=Entitlement(account.tenant.plan, account.access),
    )
    if decided.access == Access.SUSPENDED and account.suspended_at is None:
        account.suspended_at = now
    if decided.access != Access.SUSPENDED:
        account.suspended_at = None
    account.access = decided.access
    if account.tenant.plan != decided.plan:
        Tenant.objects.filter(id=account.tenant_id).update(plan=decided.plan, updated_at=now)
        account.tenant.plan = decided.plan


def _anchor_follow(account: BillingAccount, sub: dict[str, Any]) -> None:
    """Usage limits reset when the subscription's period starts: the tenant's periods follow
    Stripe's ``billing_cycle_anchor`` while the subscription is live (a new anchor starts a new
    count, ``tenants.periods``). An ended one leaves the last anchor in place."""
    anchor = ts(sub.get("billing_cycle_anchor"))
    if anchor is None or account.status not in ("trialing", "active", "past_due"):
        return
    if account.tenant.billing_cycle_anchor != anchor:
        Tenant.objects.filter(id=account.tenant_id).update(billing_cycle_anchor=anchor)
        account.tenant.billing_cycle_anchor = anchor


@transaction.atomic
def account_apply_subscription(*, tenant_id: Any, sub: dict[str, Any]) -> BillingAccount:
    """Store what Stripe says of ``sub`` (freshly retrieved) and decide the tenant's access."""
    account = BillingAccount.objects.select_for_update().select_related("tenant").get(tenant_id=tenant_id)
    now = timezone.now()
    decided_at = account.billing_now(now)
    plan, interval = plan_of_subscription(sub)
    account.stripe_subscription_id = str(sub["id"])
    account.stripe_customer_id = object_id(sub.get("customer")) or account.stripe_customer_id
    account.status = str(sub.get("status") or "")
    if plan:
        account.plan, account.interval = plan, interval
    account.trial_end = ts(sub.get("trial_end"))
    account.current_period_start, account.current_period_end = current_period(sub)
    account.cancel_at_period_end = bool(sub.get("cancel_at_period_end"))
    card = (
        (sub.get("default_payment_method") or {})
        if isinstance(sub.get("default_payment_method"), dict)
        else {}
    )
    if card.get("card"):
        account.payment_method_brand = str(card["card"].get("brand") or "")
        account.payment_method_last4 = str(card["card"].get("last4") or "")
    if account.status in ("trialing", "active"):
        # Paid (or not yet due): any dunning is over.
        account.payment_failed_at = None
        account.dunning_email_day = None
    account.synced_at = now
    _anchor_follow(account, sub)
    _decide(account, decided_at)
    account.save()
    _publish_after_commit(account)
    subscription_active_report(tenant=account.tenant, sub=sub)
    return account


@transaction.atomic
def account_recompute(*, account_id: int, now: Any = None) -> BillingAccount:
    """Decide again from the stored state (the grace period may have run out)."""
    account = BillingAccount.objects.select_for_update().select_related("tenant").get(id=account_id)
    _decide(account, now or account.billing_now())
    account.save()
    _publish_after_commit(account)
    return account


def _tenant_id_of_subscription(sub: dict[str, Any]) -> Any:
    tenant_id = (sub.get("metadata") or {}).get("tenant_id")
    if tenant_id and BillingAccount.objects.filter(tenant_id=tenant_id).exists():
        return tenant_id
    customer_id = object_id(sub.get("customer"))
    return (
        BillingAccount.objects.filter(stripe_customer_id=customer_id)
        .values_list("tenant_id", flat=True)
        .first()
        if customer_id
        else None
    )


#: What a re-read of a subscription expands. ``discounts`` whole (not ids): a coupon is then in
#: the stored subscription (dj-stripe's ``stripe_data``) at once; as ids it could only be
#: resolved through dj-stripe's Discount rows, which only an invoice's sync makes.
SUBSCRIPTION_EXPAND = ["default_payment_method", "items.data.price", "discounts"]


def _retrieve_subscription(subscription_id: str) -> stripe.Subscription:
    return stripe.Subscription.retrieve(subscription_id, expand=SUBSCRIPTION_EXPAND)


#: Inside ``subscription_syncs_coalesced``: the subscriptions to sync when it ends (id -> mirror).
_syncs_pending: ContextVar[dict[str, bool] | None] = ContextVar("billing_syncs_pending", default=None)


@contextmanager
def subscription_syncs_coalesced() -> Iterator[None]:
    """Every ``subscription_sync`` asked for inside runs once, when the block ends without an
    error: a burst of events of one subscription (webhook processing, ``billing.webhook_processing``)
    re-reads and applies it once instead of once per event. A sync re-reads Stripe's current
    object, so one sync at the end stores what each of the syncs would have stored last."""
    if _syncs_pending.get() is not None:
        yield  # nested: the outer block syncs
        return
    pending: dict[str, bool] = {}
    token = _syncs_pending.set(pending)
    try:
        yield
    finally:
        _syncs_pending.reset(token)
    for subscription_id, mirror in pending.items():
        subscription_sync(subscription_id=subscription_id, mirror=mirror)


def subscription_sync(*, subscription_id: str, mirror: bool = True) -> BillingAccount | None:
    """Re-read a subscription from Stripe, mirror it in dj-stripe's tables and apply it to its
    tenant. A subscription that is not the tenant's current one (replaced) only updates the
    account if it is newer and live. ``mirror=False`` skips dj-stripe's tables, for callers
    whose dj-stripe handler has just re-read and mirrored this subscription itself. Inside
    ``subscription_syncs_coalesced`` it is only noted (and returns None)."""
    pending = _syncs_pending.get()
    if pending is not None:
        # A subscription mirrored by dj-stripe's handler in this block (``mirror=False`` asked)
        # needs no second mirror for an invoice event of the same burst.
        pending[subscription_id] = pending.get(subscription_id, mirror) and mirror
        return None
    raw = _retrieve_subscription(subscription_id)
    if mirror:
        # dj-stripe gets Stripe's object itself (its Decimal fields serialise only from there).
        DjstripeSubscription.sync_from_stripe_data(raw)
    sub = as_dict(raw)
    tenant_id = _tenant_id_of_subscription(sub)
    if tenant_id is None:
        logger.warning("subscription %s belongs to no tenant", subscription_id)
        return None
    current = BillingAccount.objects.filter(tenant_id=tenant_id).values_list(
        "stripe_subscription_id", flat=True
    )
    current_id = current.first() or ""
    if current_id and current_id != subscription_id and not _replaces(sub, current_id):
        return None  # an old, replaced subscription: it changes nothing
    return account_apply_subscription(tenant_id=tenant_id, sub=sub)


def _replaces(sub: dict[str, Any], current_id: str) -> bool:
    """Whether ``sub``, not the tenant's current subscription, becomes it: when it is live (not
    paused) and the current one is not, or is older (``_age_key``). Events come in any order: a Checkout
    subscription's own event may come before the session's (it is adopted then), and a late
    event of the trial it replaced must not take the tenant back."""
    live = LIVE_STATUSES - {"paused"}
    if sub.get("status") not in live:
        return False
    try:
        current = as_dict(stripe.Subscription.retrieve(current_id))
    except stripe.InvalidRequestError:
        return True  # the current one is gone at Stripe
    return current.get("status") not in live or _age_key(current) < _age_key(sub)


def _age_key(sub: dict[str, Any]) -> tuple[int, int]:
    """Newer first by Stripe's ``created`` (whole seconds); in the same second, a paying one
    before a trial."""
    return int(sub.get("created") or 0), 0 if sub.get("status") == "trialing" else 1


def _invoice_read(invoice_id: str, fresh: dict[str, Any] | None) -> dict[str, Any]:
    return fresh if fresh is not None else as_dict(stripe.Invoice.retrieve(invoice_id))


def invoice_payment_failed(
    *, invoice_id: str, failed_at: Any = None, fresh: dict[str, Any] | None = None
) -> BillingAccount | None:
    """Start dunning unless Stripe says the invoice has been paid since (events out of order).
    The grace period runs from ``failed_at``, when Stripe says the payment failed (its event's
    time: a webhook delivered late does not lengthen it; on a test clock, the clock's time).
    ``fresh``: the invoice as just retrieved from Stripe by the caller (else it is re-read)."""
    invoice = _invoice_read(invoice_id, fresh)
    subscription_id = invoice_subscription_id(invoice)
    if invoice.get("status") in ("paid", "void") or not subscription_id:
        return subscription_sync(subscription_id=subscription_id) if subscription_id else None
    tenant_id = _tenant_id_of_subscription({"id": subscription_id, "customer": invoice.get("customer")})
    if tenant_id is None:
        return None
    with transaction.atomic():
        BillingAccount.objects.filter(tenant_id=tenant_id, payment_failed_at__isnull=True).update(
            payment_failed_at=failed_at or timezone.now(), dunning_email_day=None
        )
        return subscription_sync(subscription_id=subscription_id)


def invoice_paid(*, invoice_id: str, fresh: dict[str, Any] | None = None) -> BillingAccount | None:
    invoice = _invoice_read(invoice_id, fresh)
    subscription_id = invoice_subscription_id(invoice)
    if invoice.get("status") != "paid" or not subscription_id:
        return None
    tenant_id = _tenant_id_of_subscription({"id": subscription_id, "customer": invoice.get("customer")})
    if tenant_id is None:
        return None
    with transaction.atomic():
        BillingAccount.objects.filter(tenant_id=tenant_id).update(
            payment_failed_at=None, dunning_email_day=None, suspended_at=None
        )
        # After the update has locked the account's row: the order of locks (the account's, then
        # the journey's) is the one account_apply_subscription takes them in.
        first_invoice_paid_report(tenant_id=tenant_id, invoice=invoice)
        return subscription_sync(subscription_id=subscription_id)


def checkout_completed(*, session_id: str) -> BillingAccount | None:
    """A Checkout subscription replaces the tenant's trial (or paused) subscription."""
    session = as_dict(stripe.checkout.Session.retrieve(session_id))
    subscription_id = object_id(session.get("subscription"))
    tenant_id = session.get("client_reference_id")
    if session.get("status") != "complete" or not subscription_id or not tenant_id:
        return None
    account = BillingAccount.objects.filter(tenant_id=tenant_id).first()
    if account is None:
        return None
    old_id = account.stripe_subscription_id
    if old_id and old_id != subscription_id:
        _cancel_replaced(old_id)
    # Events come in any order: the new subscription's own event may have been applied first
    # (the account then names it already), so the replaced one is found at Stripe, by customer.
    customer_id = object_id(session.get("customer")) or account.stripe_customer_id
    _cancel_others(customer_id=customer_id, keep=subscription_id)
    BillingAccount.objects.filter(id=account.id).update(stripe_subscription_id=subscription_id)
    return subscription_sync(subscription_id=subscription_id)


def _cancel_replaced(subscription_id: str) -> None:
    old = as_dict(stripe.Subscription.retrieve(subscription_id))
    if old.get("status") in LIVE_STATUSES:
        stripe.Subscription.cancel(subscription_id, prorate=False)


def _cancel_others(*, customer_id: str, keep: str) -> None:
    """Cancel the customer's live subscriptions other than ``keep`` (a tenant has one)."""
    if not customer_id:
        return
    for sub in stripe.Subscription.list(customer=customer_id, status="all", limit=100).data:
        if sub.id != keep and sub.status in LIVE_STATUSES:
            stripe.Subscription.cancel(sub.id, prorate=False)


# --- a new tenant: customer and trial ----------------------------------------------------------
def customer_ensure(*, tenant: Tenant) -> BillingAccount:
    """The tenant's Stripe customer (made once: the idempotency key is the tenant's id)."""
    _require_billing()
    account = account_get_or_create(tenant=tenant)
    if account.stripe_customer_id:
        return account
    clock = _test_clock_create(tenant) if clocks_on() else None
    params: dict[str, Any] = {"test_clock": clock.id} if clock else {}
    customer = stripe.Customer.create(
        email=tenant.billing_email,
        name=tenant.organization_name,
        metadata={"tenant_id": str(tenant.id), "djstripe_subscriber": str(tenant.id)},
        idempotency_key=f"leanvibe-customer-{tenant.id}",
        **params,
    )
    DjstripeCustomer.sync_from_stripe_data(customer)
    DjstripeCustomer.objects.filter(id=customer.id).update(subscriber=tenant)
    account.stripe_customer_id = customer.id
    if clock is not None:
        account.stripe_test_clock_id, account.test_clock_time = clock.id, ts(clock.frozen_time)
    BillingAccount.objects.filter(id=account.id).update(
        stripe_customer_id=customer.id,
        stripe_test_clock_id=account.stripe_test_clock_id,
        test_clock_time=account.test_clock_time,
    )
    return account


# --- test clocks (test mode, BILLING_TEST_CLOCKS) ----------------------------------------------
def _test_clock_create(tenant: Tenant) -> stripe.test_helpers.TestClock:
    """One clock per customer, starting now (Stripe allows three customers per clock)."""
    return stripe.test_helpers.TestClock.create(
        frozen_time=int(timezone.now().timestamp()),
        name=f"LeanVibe {tenant.schema_name}"[:300],
        idempotency_key=f"leanvibe-clock-{tenant.id}",
    )


def clock_ready_apply(*, clock_id: str) -> list[BillingAccount]:
    """A test clock finished advancing: its tenants' billing time moves to the clock's (re-read
    from Stripe, so a late or repeated event never moves it back) and their access is decided
    again at that time; the dunning sweep runs after commit."""
    clock = as_dict(stripe.test_helpers.TestClock.retrieve(clock_id))
    frozen = ts(clock.get("frozen_time"))
    if frozen is None or clock.get("status") != "ready":
        return []
    accounts = []
    with transaction.atomic():
        for account_id in BillingAccount.objects.filter(stripe_test_clock_id=clock_id).values_list(
            "id", flat=True
        ):
            BillingAccount.objects.filter(id=account_id).update(test_clock_time=frozen)
            accounts.append(account_recompute(account_id=account_id))
        if accounts:
            from billing import tasks  # the tasks module imports this one

            transaction.on_commit(tasks.dunning_sweep.delay)
    return accounts


def clock_advance(*, tenant: Tenant, to: Any, timeout: float = 120) -> BillingAccount:
    """Advance the tenant's test clock to ``to`` and wait until Stripe has done everything due
    on the way (renewals, payment retries), then apply the clock's time and the subscription's
    state here too (the webhooks will say the same; applying twice changes nothing)."""
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is None or not account.stripe_test_clock_id:
        raise BillingError("no_test_clock", "This organisation's Stripe customer is not on a test clock.")
    clock_id = account.stripe_test_clock_id
    try:
        stripe.test_helpers.TestClock.advance(clock_id, frozen_time=int(to.timestamp()))
        deadline = time.monotonic() + timeout
        while stripe.test_helpers.TestClock.retrieve(clock_id).status != "ready":
            if time.monotonic() > deadline:
                raise BillingError(
                    "stripe_unavailable",
                    f"Test clock {clock_id} still advancing after {timeout:.0f} s.",
                    status=503,
                )
            time.sleep(0.5)
    except stripe.StripeError as exc:
        raise _stripe_failure(exc) from exc
    clock_ready_apply(clock_id=clock_id)
    if account.stripe_subscription_id:
        # What the advance did to the subscription, without waiting for its webhooks.
        subscription_sync(subscription_id=account.stripe_subscription_id)
    return BillingAccount.objects.get(id=account.id)


def customer_and_trial_create(*, tenant_id: Any) -> BillingAccount | None:
    """Provisioning (in Celery): the customer, then a trial of the tenant's plan without a card
    that pauses at its end if no card was added. Safe to run again."""
    tenant = Tenant.objects.filter(id=tenant_id).first()
    if tenant is None or not billing_enabled():
        return None
    account = customer_ensure(tenant=tenant)
    if account.stripe_subscription_id:
        return account
    spec = spec_for(tenant.plan)
    sub = stripe.Subscription.create(
        customer=account.stripe_customer_id,
        items=[
            {"price": price_for(spec.price_lookup_key(Interval.MONTH))["id"]},
            *plan_items(tenant.plan, Interval.MONTH),
        ],
        trial_period_days=settings.BILLING_TRIAL_DAYS,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
        payment_settings={"save_default_payment_method": "on_subscription"},
        metadata={"tenant_id": str(tenant.id), "plan": tenant.plan},
        idempotency_key=f"leanvibe-trial-{tenant.id}",
    )
    return subscription_sync(subscription_id=str(sub["id"]))


# --- the owners' actions -----------------------------------------------------------------------
def _account_for_change(tenant: Tenant) -> BillingAccount:
    _require_billing()
    return customer_ensure(tenant=tenant)


def _plan_items_change(sub: dict[str, Any], plan: str, interval: str) -> list[Any]:
    """Items that turn ``sub`` into ``plan``/``interval``: the licensed item changes price,
    metered items come or go with the plan's overage policy."""
    price = price_for(spec_for(plan).price_lookup_key(interval))["id"]
    licensed = licensed_items(sub)
    items: list[dict[str, Any]] = (
        [{"id": licensed[0]["id"], "price": price}] if licensed else [{"price": price}]
    )
    metered = [i for i in subscription_items(sub) if i not in licensed]
    # Metered items are replaced (their interval follows the plan's) or dropped.
    items.extend({"id": i["id"], "deleted": True} for i in metered)
    items.extend(plan_items(plan, interval))
    return items


def subscribe(
    *,
    tenant: Tenant,
    plan: str,
    interval: str,
    payment_method_id: str | None,
    success_url: str,
    cancel_url: str,
) -> dict[str, Any]:
    """With a payment method: start paying now (``{"account": ...}``). Without: a Checkout
    session (``{"checkout_url": ...}``) that replaces the trial once completed (webhook)."""
    account = _account_for_change(tenant)
    lookup_key = spec_for(plan).price_lookup_key(interval)
    try:
        if not payment_method_id:
            session = stripe.checkout.Session.create(
                mode="subscription",
                customer=account.stripe_customer_id,
                client_reference_id=str(tenant.id),
                line_items=[{"price": price_for(lookup_key)["id"], "quantity": 1}],
                subscription_data={"metadata": {"tenant_id": str(tenant.id), "plan": plan}},
                success_url=success_url,
                cancel_url=cancel_url,
            )
            return {"checkout_url": session.url}
        # Attaching a test card (pm_card_visa) makes a new payment method: use the id returned.
        payment_method_id = stripe.PaymentMethod.attach(
            payment_method_id, customer=account.stripe_customer_id
        ).id
        stripe.Customer.modify(
            account.stripe_customer_id, invoice_settings={"default_payment_method": payment_method_id}
        )
        current = (
            as_dict(_retrieve_subscription(account.stripe_subscription_id))
            if account.stripe_subscription_id
            else {}
        )
        if current.get("status") == "active":
            # Already paying: a change of plan, paid now.
            sub = stripe.Subscription.modify(
                current["id"],
                items=_plan_items_change(current, plan, interval),
                default_payment_method=payment_method_id,
                payment_behavior="error_if_incomplete",
                proration_behavior="always_invoice",
                metadata={"tenant_id": str(tenant.id), "plan": plan},
                expand=["latest_invoice"],
            )
        else:
            # A new paid subscription, charged now (declined: CardError, nothing changes); the
            # trial (or paused, or past-due) subscription it replaces is cancelled after.
            sub = stripe.Subscription.create(
                customer=account.stripe_customer_id,
                items=[{"price": price_for(lookup_key)["id"]}, *plan_items(plan, interval)],
                default_payment_method=payment_method_id,
                payment_behavior="error_if_incomplete",
                metadata={"tenant_id": str(tenant.id), "plan": plan},
                expand=["latest_invoice"],  # paid now: the journey's first paid invoice
            )
            BillingAccount.objects.filter(id=account.id).update(stripe_subscription_id=sub.id)
            if current:
                _cancel_replaced(current["id"])
    except stripe.StripeError as exc:
        raise _stripe_failure(exc) from exc
    synced = subscription_sync(subscription_id=str(sub["id"]))
    subscription_invoice_paid_report(tenant=tenant, sub=sub)
    return {"account": synced}


def _current_subscription(account: BillingAccount) -> dict[str, Any]:
    if not account.stripe_subscription_id:
        raise BillingError("no_subscription", "This organisation has no subscription yet.", status=409)
    return as_dict(_retrieve_subscription(account.stripe_subscription_id))


def subscription_change(*, tenant: Tenant, plan: str, interval: str) -> BillingAccount | None:
    """Prorated change; the new limits apply once Stripe has it (an unpaid upgrade stays
    pending in Stripe and the tenant keeps its plan)."""
    account = _account_for_change(tenant)
    try:
        current = _current_subscription(account)
        if current.get("status") not in ("trialing", "active", "past_due"):
            raise BillingError(
                "payment_required", "Subscribe with a payment method to choose a plan again.", status=402
            )
        stripe.Subscription.modify(
            current["id"],
            items=_plan_items_change(current, plan, interval),
            proration_behavior="create_prorations",
            metadata={"tenant_id": str(tenant.id), "plan": plan},
        )
    except stripe.StripeError as exc:
        raise _stripe_failure(exc) from exc
    return subscription_sync(subscription_id=current["id"])


def subscription_cancel(*, tenant: Tenant, cancel: bool = True) -> BillingAccount | None:
    """Cancel at the period's end (``cancel=False``: take the cancellation back)."""
    account = _account_for_change(tenant)
    try:
        current = _current_subscription(account)
        if current.get("status") not in LIVE_STATUSES:
            raise BillingError("no_subscription", "This subscription has already ended.", status=409)
        stripe.Subscription.modify(current["id"], cancel_at_period_end=cancel)
    except stripe.StripeError as exc:
        raise _stripe_failure(exc) from exc
    return subscription_sync(subscription_id=current["id"])


def portal_session_create(*, tenant: Tenant, return_url: str) -> str:
    account = _account_for_change(tenant)
    try:
        session = stripe.billing_portal.Session.create(
            customer=account.stripe_customer_id, return_url=return_url
        )
    except stripe.StripeError as exc:
        raise _stripe_failure(exc) from exc
    return str(session.url)
