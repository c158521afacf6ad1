"""The API through the real ``stripe`` library: customers, cards, catalogue, subscriptions,
invoices, meters, errors, idempotency and pagination."""

# The library's types make every expandable field a union (id | object | None); the tests read
# the shapes the server answers, so those checks are off here.
# mypy: disable-error-code="union-attr, arg-type, operator, index"

from __future__ import annotations

import time
import uuid

import pytest
import stripe

from billing.stripe_local import StripeLocal


def _plan(*, amount: int = 2000, interval: str = "month", lookup_key: str | None = None) -> stripe.Price:
    product = stripe.Product.create(name=f"Plan {amount}")
    params: dict[str, object] = {}
    if lookup_key:
        params["lookup_key"] = lookup_key
    return stripe.Price.create(
        product=product.id, unit_amount=amount, currency="eur", recurring={"interval": interval}, **params
    )


def _customer_with_card(card: str = "pm_card_visa") -> tuple[stripe.Customer, stripe.PaymentMethod]:
    customer = stripe.Customer.create(email="ada@acme.test", name="Ada", metadata={"tenant": "acme"})
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    customer = stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return customer, pm


def test_customer_and_card(local: StripeLocal) -> None:
    customer, pm = _customer_with_card()
    assert pm.id.startswith("pm_") and pm.id != "pm_card_visa"
    assert (pm.card.brand, pm.card.last4, pm.customer) == ("visa", "4242", customer.id)
    assert customer.invoice_settings.default_payment_method == pm.id
    assert customer.metadata["tenant"] == "acme"
    listed = stripe.PaymentMethod.list(customer=customer.id, type="card")
    assert [p.id for p in listed.data] == [pm.id]
    expanded = stripe.Customer.retrieve(customer.id, expand=["invoice_settings.default_payment_method"])
    assert expanded.invoice_settings.default_payment_method.card.last4 == "4242"
    mastercard = stripe.PaymentMethod.attach("pm_card_mastercard", customer=customer.id)
    assert mastercard.card.brand == "mastercard"
    stripe.PaymentMethod.detach(pm.id)
    assert stripe.Customer.retrieve(customer.id).invoice_settings.default_payment_method is None
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    assert failing.card.last4 == "0341"
    updated = stripe.Customer.modify(customer.id, metadata={"tenant": ""}, email="new@acme.test")
    assert updated.metadata.to_dict() == {} and updated.email == "new@acme.test"
    deleted = stripe.Customer.delete(customer.id)
    assert deleted.deleted is True
    assert stripe.Customer.retrieve(customer.id).deleted is True


def test_errors_raise_the_library_exceptions(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    with pytest.raises(stripe.CardError) as declined:
        stripe.PaymentMethod.attach("pm_card_chargeDeclined", customer=customer.id)
    assert declined.value.code == "card_declined"
    assert declined.value.http_status == 402
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.Subscription.retrieve("sub_missing")
    assert missing.value.code == "resource_missing" and missing.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as bad:
        stripe.Price.create(product="prod_nope", unit_amount=1, currency="eur")
    assert bad.value.param == "product"
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="rk_live_nope")
    card = stripe.PaymentMethod.create(type="card", card={"token": "tok_visa"})
    assert card.card.last4 == "4242" and card.customer is None


def test_only_the_configured_key_when_given() -> None:
    with StripeLocal(api_key="sk_test_only") as server:
        client = stripe.StripeClient("sk_test_other", base_addresses={"api": server.url})
        with pytest.raises(stripe.AuthenticationError):
            client.v1.customers.list()
        ok = stripe.StripeClient("sk_test_only", base_addresses={"api": server.url})
        assert ok.v1.customers.list().data == []


def test_price_lookup_keys_and_transfer(local: StripeLocal) -> None:
    first = _plan(lookup_key="pro_monthly")
    found = stripe.Price.list(lookup_keys=["pro_monthly"], expand=["data.product"])
    assert [p.id for p in found.data] == [first.id]
    assert found.data[0].product.name == "Plan 2000"
    with pytest.raises(stripe.InvalidRequestError):
        _plan(amount=2500, lookup_key="pro_monthly")
    product = stripe.Product.create(name="Pro v2")
    second = stripe.Price.create(
        product=product.id,
        unit_amount_decimal="2500",
        currency="eur",
        recurring={"interval": "month"},
        lookup_key="pro_monthly",
        transfer_lookup_key=True,
    )
    assert stripe.Price.retrieve(first.id).lookup_key is None
    assert [p.id for p in stripe.Price.list(lookup_keys=["pro_monthly"]).data] == [second.id]
    assert second.unit_amount == 2500 and str(second.unit_amount_decimal) == "2500"
    stripe.Product.modify(product.id, default_price=second.id)
    products = stripe.Product.list(expand=["data.default_price"])
    assert products.data[0].default_price.id == second.id


def test_subscription_lifecycle_with_proration(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": basic.id}], expand=["latest_invoice", "default_payment_method"]
    )
    assert sub.status == "active"
    assert sub.latest_invoice.status == "paid" and sub.latest_invoice.amount_paid == 1000
    assert sub.latest_invoice.parent.subscription_details.subscription == sub.id
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    assert item.price.id == basic.id
    updated = stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": pro.id}], proration_behavior="create_prorations"
    )
    assert updated["items"].data[0].price.id == pro.id
    pending = stripe.InvoiceItem.list(customer=customer.id, pending=True)
    amounts = sorted(i.amount for i in pending.data)
    assert len(amounts) == 2 and amounts[0] < 0 < amounts[1]
    assert all(i.proration for i in pending.data)
    canceling = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert canceling.cancel_at_period_end is True
    assert canceling.cancel_at == canceling["items"].data[0].current_period_end
    resumed = stripe.Subscription.modify(sub.id, cancel_at_period_end=False)
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None
    canceled = stripe.Subscription.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at
    assert stripe.Subscription.list(customer=customer.id).data == []
    assert [s.id for s in stripe.Subscription.list(customer=customer.id, status="all").data] == [sub.id]
    types = [e["type"] for e in local.events()]
    for expected in (
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoiceitem.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ):
        assert expected in types
    update = next(
        e for e in local.events("customer.subscription.updated") if "cancel_at_period_end" in str(e)
    )
    assert "previous_attributes" in update["data"]


def test_always_invoice_and_trial(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    item = sub["items"].data[0]
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": pro.id}], proration_behavior="always_invoice"
    )
    latest = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert latest.billing_reason == "subscription_update" and latest.status == "paid"
    assert stripe.InvoiceItem.list(customer=customer.id, pending=True).data == []
    trial = stripe.Subscription.create(
        customer=customer.id, items=[{"price": basic.id}], trial_period_days=14
    )
    assert trial.status == "trialing" and trial.trial_end - trial.trial_start == 14 * 86400
    assert trial["items"].data[0].current_period_end == trial.trial_end


def test_first_payment_failure_leaves_subscription_incomplete(local: StripeLocal) -> None:
    customer, _ = _customer_with_card("pm_card_chargeCustomerFail")
    price = _plan()
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], expand=["latest_invoice"]
    )
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    with pytest.raises(stripe.CardError):
        stripe.Subscription.create(
            customer=customer.id, items=[{"price": price.id}], payment_behavior="error_if_incomplete"
        )
    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    paid = stripe.Invoice.pay(sub.latest_invoice.id, payment_method=good.id)
    assert paid.status == "paid"
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def _meter(event_name: str = "ai_requests") -> stripe.billing.Meter:
    return stripe.billing.Meter.create(
        display_name="AI requests",
        event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
        value_settings={"event_payload_key": "value"},
    )


def test_metered_usage_in_preview_and_summaries(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    meter = _meter()
    product = stripe.Product.create(name="AI overage")
    metered = stripe.Price.create(
        product=product.id,
        currency="eur",
        unit_amount_decimal="2.5",
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    base = _plan(amount=1000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": base.id}, {"price": metered.id}])
    now = int(time.time())
    for n in range(3):
        stripe.billing.MeterEvent.create(
            event_name="ai_requests",
            payload={"stripe_customer_id": customer.id, "value": "40"},
            identifier=f"evt-{n}",
            timestamp=now,
        )
    stripe.InvoiceItem.create(customer=customer.id, amount=500, currency="eur", description="Setup")
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    by_price = {
        line.pricing.price_details.price: line.amount
        for line in preview.lines.data
        if line.pricing.price_details
    }
    assert by_price[base.id] == 1000
    assert by_price[metered.id] == 300  # 120 requests at 2.5 cents
    assert preview.amount_due == 1000 + 300 + 500
    summaries = stripe.billing.Meter.list_event_summaries(
        meter.id, customer=customer.id, start_time=now - 60, end_time=now + 60
    )
    assert summaries.data[0].aggregated_value == 120
    deactivated = stripe.billing.Meter.deactivate(meter.id)
    assert deactivated.status == "inactive"
    assert [m.id for m in stripe.billing.Meter.list(status="inactive").data] == [meter.id]


def test_meter_event_identifier_and_timestamp_rules(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    _meter()
    payload = {"stripe_customer_id": customer.id, "value": "1"}
    identifier = str(uuid.uuid4())
    event = stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, identifier=identifier)
    assert event.identifier == identifier and event.payload["value"] == "1"
    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, identifier=identifier)
    assert "already exists" in duplicate.value.user_message
    now = int(time.time())
    with pytest.raises(stripe.InvalidRequestError) as old:
        stripe.billing.MeterEvent.create(
            event_name="ai_requests", payload=payload, timestamp=now - 36 * 86400
        )
    assert old.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now + 600)
    stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now - 34 * 86400)
    stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now + 240)


def test_idempotency_key_replays_the_answer(local: StripeLocal) -> None:
    key = str(uuid.uuid4())
    first = stripe.Customer.create(email="one@acme.test", idempotency_key=key)
    again = stripe.Customer.create(email="one@acme.test", idempotency_key=key)
    assert first.id == again.id
    assert len(stripe.Customer.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        stripe.Customer.create(email="two@acme.test", idempotency_key=key)


def test_list_pagination(local: StripeLocal) -> None:
    ids = [stripe.Customer.create(email=f"c{n}@acme.test").id for n in range(7)]
    page = stripe.Customer.list(limit=3)
    assert [c.id for c in page.data] == ids[::-1][:3] and page.has_more
    nxt = stripe.Customer.list(limit=3, starting_after=page.data[-1].id)
    assert [c.id for c in nxt.data] == ids[::-1][3:6]
    back = stripe.Customer.list(limit=2, ending_before=nxt.data[0].id)
    assert [c.id for c in back.data] == ids[::-1][1:3]
    assert [c.id for c in stripe.Customer.list(limit=3).auto_paging_iter()] == ids[::-1]
    events = stripe.Event.list(type="customer.created", limit=100)
    assert len(events.data) == 7
    assert stripe.Event.retrieve(events.data[0].id).type == "customer.created"
    assert stripe.Account.retrieve().id.startswith("acct_")


def test_v2_meter_events_and_stream(local: StripeLocal) -> None:
    client = stripe.StripeClient("sk_test_v2", base_addresses={"api": local.url, "meter_events": local.url})
    customer = client.v1.customers.create()
    meter = client.v1.billing.meters.create(
        {"display_name": "AI", "event_name": "ai_requests", "default_aggregation": {"formula": "sum"}}
    )
    event = client.v2.billing.meter_events.create(
        {"event_name": "ai_requests", "payload": {"stripe_customer_id": customer.id, "value": "5"}}
    )
    assert event.identifier
    session = client.v2.billing.meter_event_session.create()
    stream = stripe.StripeClient(
        session.authentication_token, base_addresses={"api": local.url, "meter_events": local.url}
    )
    stream.v2.billing.meter_event_stream.create(
        {
            "events": [
                {
                    "event_name": "ai_requests",
                    "payload": {"stripe_customer_id": customer.id, "value": "7"},
                    "identifier": "stream-1",
                }
            ]
        }
    )
    now = int(time.time())
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert summaries.data[0].aggregated_value == 12
    client.v1.billing.meter_event_adjustments.create(
        {"event_name": "ai_requests", "type": "cancel", "cancel": {"identifier": "stream-1"}}
    )
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert summaries.data[0].aggregated_value == 5


def test_search_and_includable_expansions(local: StripeLocal) -> None:
    acme = stripe.Customer.create(email="ada@acme.test", metadata={"tenant": "acme"})
    stripe.Customer.create(email="bob@other.test", metadata={"tenant": "other"})
    found = stripe.Customer.search(query="metadata['tenant']:'acme'")
    assert [c.id for c in found.data] == [acme.id]
    assert [c.id for c in stripe.Customer.search(query="email~'other'").data] != [acme.id]
    price = _plan()
    stripe.PaymentMethod.attach("pm_card_visa", customer=acme.id)
    sub = stripe.Subscription.create(
        customer=acme.id,
        items=[{"price": price.id}],
        default_payment_method=stripe.PaymentMethod.list(customer=acme.id).data[0].id,
    )
    expanded = stripe.Customer.retrieve(acme.id, expand=["subscriptions", "sources", "tax_ids"])
    assert [s.id for s in expanded.subscriptions.data] == [sub.id]
    assert expanded.sources.data == []
    assert [s.id for s in stripe.Subscription.search(query="status:'active'").data] == [sub.id]
    session = stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": price.id, "quantity": 2}],
        success_url="http://127.0.0.1/ok",
        expand=["line_items", "total_details.breakdown"],
    )
    assert session.line_items.data[0].quantity == 2
    assert session.total_details.breakdown.discounts == []


def test_preview_of_a_plan_change_and_of_a_new_subscription(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    new = stripe.Invoice.create_preview(
        customer=customer.id, subscription_details={"items": [{"price": pro.id}]}
    )
    assert new.amount_due == 3000 and new.status == "draft"
    assert stripe.Subscription.list(customer=customer.id).data == []
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    item = sub["items"].data[0]
    events_before = len(local.events())
    preview = stripe.Invoice.create_preview(
        customer=customer.id,
        subscription=sub.id,
        subscription_details={
            "items": [{"id": item.id, "price": pro.id}],
            "proration_behavior": "always_invoice",
        },
    )
    assert 1990 <= preview.amount_due <= 2000  # 3000 - 1000 for (almost) the whole period
    assert any(line.parent.invoice_item_details.proration for line in preview.lines.data)
    assert len(local.events()) == events_before
    assert stripe.Subscription.retrieve(sub.id)["items"].data[0].price.id == basic.id
    assert stripe.InvoiceItem.list(customer=customer.id).data == []
    nxt = stripe.Invoice.create_preview(
        customer=customer.id,
        subscription=sub.id,
        subscription_details={"items": [{"id": item.id, "price": pro.id}]},
    )
    assert nxt.amount_due == 3000 + preview.amount_due
