"""Test clocks: trials ending, renewals with metered usage, failed payments and retries."""

# The library types expandable fields as unions; the tests read what the server answers.
# mypy: disable-error-code="union-attr, arg-type, operator, index"

from __future__ import annotations

import time

import pytest
import stripe

from billing.stripe_local import StripeLocal

DAY = 86400
START = 1_780_000_000  # 2026-05-28 20:26 UTC


def _clock_customer(
    card: str | None = "pm_card_visa",
) -> tuple[stripe.test_helpers.TestClock, stripe.Customer]:
    clock = stripe.test_helpers.TestClock.create(frozen_time=START, name="trial")
    customer = stripe.Customer.create(email="ada@acme.test", test_clock=clock.id)
    assert customer.created == START
    if card:
        pm = stripe.PaymentMethod.attach(card, customer=customer.id)
        customer = stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return clock, customer


def _price(amount: int = 2000) -> stripe.Price:
    product = stripe.Product.create(name="Pro")
    return stripe.Price.create(
        product=product.id, unit_amount=amount, currency="eur", recurring={"interval": "month"}
    )


def _advance(clock: stripe.test_helpers.TestClock, to: int) -> stripe.test_helpers.TestClock:
    advancing = stripe.test_helpers.TestClock.advance(clock.id, frozen_time=to)
    assert advancing.status == "advancing"
    ready = stripe.test_helpers.TestClock.retrieve(clock.id)
    assert ready.status == "ready" and ready.frozen_time == to
    return ready


def test_trial_without_payment_method_pauses(local: StripeLocal) -> None:
    clock, customer = _clock_customer(card=None)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": _price().id}],
        trial_period_days=14,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
    )
    assert sub.status == "trialing" and sub.trial_start == START and sub.test_clock == clock.id
    _advance(clock, START + 12 * DAY)
    assert [e["created"] for e in local.events("customer.subscription.trial_will_end")] == [START + 11 * DAY]
    assert stripe.Subscription.retrieve(sub.id).status == "trialing"
    _advance(clock, START + 15 * DAY)
    assert stripe.Subscription.retrieve(sub.id).status == "paused"
    assert len(local.events("customer.subscription.paused")) == 1
    assert (
        local.events("test_helpers.test_clock.ready")[-1]["data"]["object"]["frozen_time"] == START + 15 * DAY
    )
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    resumed = stripe.Subscription.resume(sub.id, billing_cycle_anchor="now")
    assert resumed.status == "active"
    assert resumed["items"].data[0].current_period_start == START + 15 * DAY
    assert len(local.events("customer.subscription.resumed")) == 1


def test_trial_end_cancel_behaviour(local: StripeLocal) -> None:
    clock, customer = _clock_customer(card=None)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": _price().id}],
        trial_end=START + 7 * DAY,
        trial_settings={"end_behavior": {"missing_payment_method": "cancel"}},
    )
    _advance(clock, START + 8 * DAY)
    assert stripe.Subscription.retrieve(sub.id).status == "canceled"


def test_trial_with_payment_method_becomes_active_and_renews(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    meter = stripe.billing.Meter.create(
        display_name="AI requests",
        event_name="ai_requests",
        default_aggregation={"formula": "sum"},
    )
    product = stripe.Product.create(name="AI overage")
    metered = stripe.Price.create(
        product=product.id,
        currency="eur",
        unit_amount=5,
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": _price().id}, {"price": metered.id}], trial_period_days=14
    )
    trial_invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert trial_invoice.amount_due == 0 and trial_invoice.status == "paid"
    _advance(clock, START + 15 * DAY)
    active = stripe.Subscription.retrieve(sub.id)
    assert active.status == "active"
    trial_end = START + 14 * DAY
    assert active["items"].data[0].current_period_start == trial_end
    first = stripe.Invoice.retrieve(active.latest_invoice)
    assert (first.status, first.amount_paid, first.billing_reason) == ("paid", 2000, "subscription_cycle")
    assert first.parent.subscription_details.subscription == sub.id
    for n, value in enumerate(("30", "70")):
        stripe.billing.MeterEvent.create(
            event_name="ai_requests",
            payload={"stripe_customer_id": customer.id, "value": value},
            identifier=f"usage-{n}",
            timestamp=START + 15 * DAY - n * 3600,
        )
    period_end = active["items"].data[0].current_period_end
    _advance(clock, period_end + DAY)
    renewed = stripe.Subscription.retrieve(sub.id)
    assert renewed["items"].data[0].current_period_start == period_end
    invoice = stripe.Invoice.retrieve(renewed.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 2000 + 100 * 5
    usage = [line for line in invoice.lines.data if line.pricing.price_details.price == metered.id]
    assert usage[0].amount == 500 and usage[0].period.end == period_end
    types = [e["type"] for e in local.events()]
    assert types.count("invoice.payment_succeeded") >= 2


def test_failed_renewals_retry_then_cancel(local: StripeLocal) -> None:
    clock, customer = _clock_customer(card="pm_card_chargeCustomerFail")
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": _price().id}], trial_period_days=7
    )
    trial_end = START + 7 * DAY
    _advance(clock, trial_end + 60)
    assert stripe.Subscription.retrieve(sub.id).status == "past_due"
    invoice = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert invoice.next_payment_attempt == trial_end + 3 * DAY
    _advance(clock, trial_end + 6 * DAY)
    invoice = stripe.Invoice.retrieve(invoice.id)
    assert invoice.attempt_count == 3 and invoice.next_payment_attempt == trial_end + 7 * DAY
    assert stripe.Subscription.retrieve(sub.id).status == "past_due"
    _advance(clock, trial_end + 8 * DAY)
    final = stripe.Subscription.retrieve(sub.id)
    assert final.status == "canceled"
    assert stripe.Invoice.retrieve(invoice.id).attempt_count == 4
    assert len(local.events("invoice.payment_failed")) == 4
    assert len(local.events("customer.subscription.deleted")) == 1


def test_failed_renewals_can_end_unpaid_and_recover() -> None:
    saved = (stripe.api_key, stripe.api_base)
    with StripeLocal(after_final_payment_failure="unpaid", payment_retry_days=(1,)) as local:
        local.configure_stripe()
        try:
            clock, customer = _clock_customer(card="pm_card_chargeCustomerFail")
            sub = stripe.Subscription.create(
                customer=customer.id, items=[{"price": _price().id}], trial_period_days=3
            )
            _advance(clock, START + 5 * DAY)
            assert stripe.Subscription.retrieve(sub.id).status == "unpaid"
            good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
            invoice = stripe.Subscription.retrieve(sub.id).latest_invoice
            stripe.Invoice.pay(invoice, payment_method=good.id)
            assert stripe.Subscription.retrieve(sub.id).status == "active"
        finally:
            stripe.api_key, stripe.api_base = saved


def test_cancel_at_period_end_takes_effect_at_renewal(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": _price().id}])
    assert sub.status == "active"
    stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    end = sub["items"].data[0].current_period_end
    _advance(clock, end + DAY)
    canceled = stripe.Subscription.retrieve(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at == end
    with_clock = stripe.test_helpers.TestClock.list()
    assert [c.id for c in with_clock.data] == [clock.id]
    assert stripe.test_helpers.TestClock.delete(clock.id).deleted is True


def test_invoice_upcoming_before_renewal_and_incomplete_expiry(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": _price().id}])
    end = sub["items"].data[0].current_period_end
    _advance(clock, end - 2 * DAY)
    upcoming = local.events("invoice.upcoming")
    assert len(upcoming) == 1 and upcoming[0]["created"] == end - 3 * DAY
    invoice = upcoming[0]["data"]["object"]
    assert invoice["id"] is None and invoice["amount_due"] == 2000
    assert invoice["parent"]["subscription_details"]["subscription"] == sub.id
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    incomplete = stripe.Subscription.create(
        customer=customer.id, items=[{"price": _price().id}], default_payment_method=failing.id
    )
    assert incomplete.status == "incomplete"
    _advance(clock, end - 2 * DAY + DAY)
    assert stripe.Subscription.retrieve(incomplete.id).status == "incomplete_expired"
    assert stripe.Invoice.retrieve(incomplete.latest_invoice).status == "void"


def test_real_time_work_runs_on_run_due(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": _price().id}], trial_end=int(time.time()) + 1
    )
    assert sub.status == "trialing"
    time.sleep(1.2)
    assert local.run_due() >= 1
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_send_invoice_collection(local: StripeLocal) -> None:
    clock, customer = _clock_customer(card=None)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": _price().id}],
        collection_method="send_invoice",
        days_until_due=7,
    )
    assert sub.status == "active"
    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert invoice.status == "open" and invoice.due_date == START + 7 * DAY
    assert len(local.events("invoice.sent")) == 1
    _advance(clock, START + 8 * DAY)
    assert len(local.events("invoice.overdue")) == 1
    assert stripe.Subscription.retrieve(sub.id).status == "past_due"
    stripe.Invoice.pay(invoice.id, paid_out_of_band=True)
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_failed_first_invoice_is_not_retried(local: StripeLocal) -> None:
    clock, customer = _clock_customer(card="pm_card_chargeCustomerFail")
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": _price().id}])
    assert sub.status == "incomplete"
    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(sub.latest_invoice)
    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert invoice.next_payment_attempt is None and invoice.attempt_count == 2
    _advance(clock, START + 2 * DAY)
    assert stripe.Subscription.retrieve(sub.id).status == "incomplete_expired"


def test_downgrade_credit_goes_to_the_customer_balance(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    expensive, cheap = _price(5000), _price(1000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": expensive.id}])
    _advance(clock, START + 15 * DAY)
    item = sub["items"].data[0]
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": cheap.id}], proration_behavior="always_invoice"
    )
    downgrade = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert downgrade.total < 0 and downgrade.amount_due == 0
    credit = stripe.Customer.retrieve(customer.id).balance
    assert credit == downgrade.total and credit < -1000
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    assert preview.total == 1000 and preview.amount_due == max(1000 + credit, 0)
    _advance(clock, item.current_period_end + 60)
    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert renewal.starting_balance == credit and renewal.amount_due == max(1000 + credit, 0)
    assert stripe.Customer.retrieve(customer.id).balance == min(1000 + credit, 0)


def test_billing_cycle_anchor_now(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    basic, pro = _price(1000), _price(3000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    _advance(clock, START + 10 * DAY)
    item = sub["items"].data[0]
    reset = stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": pro.id}], billing_cycle_anchor="now"
    )
    assert reset.billing_cycle_anchor == START + 10 * DAY
    assert reset["items"].data[0].current_period_start == START + 10 * DAY
    invoice = stripe.Invoice.retrieve(reset.latest_invoice)
    credit = next(line.amount for line in invoice.lines.data if line.amount < 0)
    assert -1000 < credit < -600  # about two thirds of the month unused
    assert invoice.total == 3000 + credit and invoice.status == "paid"


def test_billing_cycle_anchor_now_with_a_removed_item(local: StripeLocal) -> None:
    clock, customer = _clock_customer()
    base, addon = _price(1000), _price(600)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": base.id}, {"price": addon.id}])
    _advance(clock, START + 10 * DAY)
    addon_item = next(i for i in sub["items"].data if i.price.id == addon.id)
    reset = stripe.Subscription.modify(
        sub.id, items=[{"id": addon_item.id, "deleted": True}], billing_cycle_anchor="now"
    )
    invoice = stripe.Invoice.retrieve(reset.latest_invoice)
    credits = sorted(line.amount for line in invoice.lines.data if line.amount < 0)
    assert len(credits) == 2  # both the kept and the removed item's unused time
    assert invoice.total == 1000 + sum(credits)
