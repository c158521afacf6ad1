"""Every object the server answers has every field of Stripe's example, with the same JSON type.

The raw JSON is read over HTTP (not through the library's objects) and compared with
``fixtures3.json`` two levels deep. Where the example has a value but the real API documents
the field as nullable and our object has none yet (no discount, not canceled, no trial...),
``null`` is allowed: those fields are listed in ``NULLABLE``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import stripe

from billing.stripe_local import StripeLocal
from billing.stripe_local.store import example

from .conftest import API_KEY

NULLABLE: dict[str, set[str]] = {
    "account": {"requirements.disabled_reason"},
    "customer": {"discount", "shipping", "currency"},
    "payment_method": {
        "card.generated_from",
        "card.wallet",
        "billing_details.email",
        "billing_details.phone",
        *(f"billing_details.address.{k}" for k in ("city", "country", "line1", "postal_code", "state")),
    },
    "product": {"package_dimensions", "default_price", "description"},
    "price": {"custom_unit_amount", "transform_quantity", "recurring"},
    "plan": {"transform_usage"},
    "subscription": {
        "billing_cycle_anchor_config",
        "cancel_at",
        "canceled_at",
        "ended_at",
        "next_pending_invoice_item_invoice",
        "pause_collection",
        "pending_invoice_item_interval",
        "pending_update",
        "transfer_data",
        "trial_end",
        "trial_start",
        "billing_thresholds",
        "managed_payments",
        "automatic_tax.liability",
        "billing_mode.flexible",
        "items.data.billing_thresholds",
    },
    "subscription_item": {
        "billing_thresholds",
        "quantity",
        "plan.transform_usage",
        "price.custom_unit_amount",
        "price.transform_quantity",
    },
    "invoice": {
        "due_date",
        "effective_at",
        "from_invoice",
        "last_finalization_error",
        "next_payment_attempt",
        "shipping_cost",
        "shipping_details",
        "webhooks_delivered_at",
        "customer_shipping",
        "parent.quote_details",
        "automatic_tax.liability",
    },
    "line_item": {
        "parent.invoice_item_details",
        "parent.subscription_item_details",
        "parent.subscription_item_details.proration_details.credited_items",
        "parent.invoice_item_details.proration_details.credited_items",
    },
    "invoiceitem": {"parent.subscription_details.subscription"},
    "checkout.session": {
        "cancel_url",
        "after_expiration",
        "consent",
        "consent_collection",
        "custom_text.after_submit",
        "custom_text.shipping_address",
        "custom_text.submit",
        "custom_text.terms_of_service_acceptance",
        "customer_details",
        "customer_details.address",
        "invoice_creation",
        "payment_intent",
        "payment_method_configuration_details",
        "shipping_address_collection",
        "shipping_cost",
        "url",
        "adaptive_pricing",
        "collected_information",
        "currency_conversion",
        "managed_payments",
        "total_details.amount_shipping",
    },
    "billing_portal.session": {"flow"},
    "billing_portal.configuration": {
        "business_profile.privacy_policy_url",
        "business_profile.terms_of_service_url",
    },
    "item": {"adjustable_quantity", "price.custom_unit_amount", "price.transform_quantity"},
    "billing.meter": {"event_time_window"},
    "coupon": {"amount_off", "redeem_by", "max_redemptions", "currency", "name"},
    "promotion_code": {"expires_at", "max_redemptions", "customer"},
    "discount": {"end", "promotion_code"},
    "event": {"data.previous_attributes"},
    "webhook_endpoint": {"api_version", "description"},
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _compare(kind: str, ours: Any, theirs: Any, path: str, depth: int, problems: list[str]) -> None:
    if not isinstance(theirs, dict) or not isinstance(ours, dict):
        return
    for key, expected in theirs.items():
        where = f"{path}.{key}" if path else key
        if key == "metadata":  # the user's own keys
            expected = {}
        if key not in ours:
            problems.append(f"{kind}: missing {where}")
            continue
        value = ours[key]
        if expected is None:
            continue
        if value is None:
            if where not in NULLABLE.get(kind, set()):
                problems.append(f"{kind}: {where} is null, example has {_json_type(expected)}")
            continue
        if _json_type(value) != _json_type(expected):
            problems.append(f"{kind}: {where} is {_json_type(value)}, example has {_json_type(expected)}")
            continue
        if depth < 2:
            if isinstance(expected, dict):
                _compare(kind, value, expected, where, depth + 1, problems)
            elif isinstance(expected, list) and expected and value and isinstance(expected[0], dict):
                _compare(kind, value[0], expected[0], where, depth + 1, problems)


def check(kind: str, obj: dict[str, Any], problems: list[str]) -> None:
    assert obj.get("object", kind) == kind.removeprefix("deleted_"), (kind, obj.get("object"))
    expected = example(kind)
    if kind == "event":  # data.object is checked as its own kind, not as the example's plan
        expected["data"]["object"] = {}
        inner = obj["data"]["object"]
        if obj["type"] == "invoice.upcoming":  # its invoice has no id yet, as on Stripe
            inner = inner | {"id": "upcoming"}
        check(inner["object"], inner, problems)
    _compare(kind, obj, expected, "", 0, problems)


def _get(local: StripeLocal, path: str) -> dict[str, Any]:
    request = urllib.request.Request(local.url + path, headers={"Authorization": f"Bearer {API_KEY}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        data: dict[str, Any] = json.loads(response.read())
        return data


def test_objects_have_the_fixture_shape(local: StripeLocal) -> None:
    problems: list[str] = []
    stripe.WebhookEndpoint.create(url="http://127.0.0.1:9/x", enabled_events=["*"])
    clock = stripe.test_helpers.TestClock.create(frozen_time=int(time.time()))
    customer = stripe.Customer.create(email="ada@acme.test", test_clock=clock.id)
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    meter = stripe.billing.Meter.create(
        display_name="AI", event_name="ai", default_aggregation={"formula": "sum"}
    )
    product = stripe.Product.create(name="Pro")
    price = stripe.Price.create(
        product=product.id, unit_amount=2000, currency="eur", recurring={"interval": "month"}
    )
    metered = stripe.Price.create(
        product=product.id,
        unit_amount=1,
        currency="eur",
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": price.id}, {"price": metered.id}])
    cheaper = stripe.Price.create(
        product=product.id, unit_amount=1000, currency="eur", recurring={"interval": "month"}
    )
    stripe.Subscription.modify(sub.id, items=[{"id": sub["items"].data[0].id, "price": cheaper.id}])
    stripe.billing.MeterEvent.create(
        event_name="ai", payload={"stripe_customer_id": customer.id, "value": "3"}
    )
    session = stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": price.id, "quantity": 1}],
        success_url="http://127.0.0.1/ok",
        customer=customer.id,
    )
    portal = stripe.billing_portal.Session.create(customer=customer.id, return_url="http://127.0.0.1/")
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=int(time.time()) + 40 * 86400)

    check("customer", _get(local, f"/v1/customers/{customer.id}"), problems)
    check("payment_method", _get(local, f"/v1/payment_methods/{pm.id}"), problems)
    check("product", _get(local, f"/v1/products/{product.id}"), problems)
    check("price", _get(local, f"/v1/prices/{price.id}"), problems)
    check("price", _get(local, f"/v1/prices/{metered.id}"), problems)
    subscription = _get(local, f"/v1/subscriptions/{sub.id}")
    check("subscription", subscription, problems)
    for item in subscription["items"]["data"]:
        check("subscription_item", item, problems)
        check("plan", item["plan"], problems)
    check("subscription_item", _get(local, f"/v1/subscription_items/{sub['items'].data[0].id}"), problems)
    invoices = _get(local, f"/v1/invoices?customer={customer.id}&limit=100")["data"]
    assert len(invoices) >= 2
    for invoice in invoices:
        check("invoice", invoice, problems)
        for line in invoice["lines"]["data"]:
            check("line_item", line, problems)
    preview = json.loads(str(stripe.Invoice.create_preview(customer=customer.id)))
    check("invoice", preview, problems)
    for item in _get(local, f"/v1/invoiceitems?customer={customer.id}")["data"]:
        check("invoiceitem", item, problems)
    check("checkout.session", _get(local, f"/v1/checkout/sessions/{session.id}"), problems)
    check("billing_portal.session", json.loads(str(portal)), problems)
    check("billing.meter", _get(local, f"/v1/billing/meters/{meter.id}"), problems)
    now = int(time.time()) + 40 * 86400
    summaries = _get(
        local,
        f"/v1/billing/meters/{meter.id}/event_summaries?customer={customer.id}&start_time={now - 86400 * 60}"
        f"&end_time={now}",
    )
    check("billing.meter_event_summary", summaries["data"][0], problems)
    event = stripe.billing.MeterEvent.create(
        event_name="ai", payload={"stripe_customer_id": customer.id, "value": "1"}, timestamp=now
    )
    check("billing.meter_event", json.loads(str(event)), problems)
    events = _get(local, "/v1/events?limit=100")["data"]
    assert len(events) > 20
    for evt in events:
        check("event", evt, problems)
    check("webhook_endpoint", _get(local, "/v1/webhook_endpoints")["data"][0], problems)
    check("test_helpers.test_clock", _get(local, f"/v1/test_helpers/test_clocks/{clock.id}"), problems)
    check("account", _get(local, "/v1/account"), problems)
    other = stripe.Customer.create()
    check("deleted_customer", json.loads(str(stripe.Customer.delete(other.id))), problems)
    config = stripe.billing_portal.Configuration.create(
        features={"subscription_update": {"enabled": True, "default_allowed_updates": ["price"]}}
    )
    check(
        "billing_portal.configuration",
        _get(local, f"/v1/billing_portal/configurations/{config.id}"),
        problems,
    )
    paid = next(i for i in invoices if i["status"] == "paid" and i["amount_due"])
    payments = _get(local, f"/v1/invoices/{paid['id']}?expand[]=payments")["payments"]["data"]
    check("invoice_payment", payments[0], problems)
    line_items = _get(local, f"/v1/checkout/sessions/{session.id}/line_items")["data"]
    check("item", line_items[0], problems)
    adjustment = stripe.billing.MeterEventAdjustment.create(
        event_name="ai", type="cancel", cancel={"identifier": event.identifier}
    )
    check("billing.meter_event_adjustment", json.loads(str(adjustment)), problems)
    spare = stripe.Product.create(name="Spare")
    check("deleted_product", json.loads(str(stripe.Product.delete(spare.id))), problems)
    endpoint = stripe.WebhookEndpoint.list().data[0]
    check("deleted_webhook_endpoint", json.loads(str(stripe.WebhookEndpoint.delete(endpoint.id))), problems)
    item_id = sub["items"].data[-1].id
    deleted_item = stripe.SubscriptionItem.delete(item_id, proration_behavior="none")
    check("deleted_subscription_item", json.loads(str(deleted_item)), problems)
    pending = stripe.InvoiceItem.create(customer=customer.id, amount=100, currency="eur")
    check("deleted_invoiceitem", json.loads(str(stripe.InvoiceItem.delete(pending.id))), problems)
    coupon = stripe.Coupon.create(percent_off=10, duration="repeating", duration_in_months=2)
    check("coupon", _get(local, f"/v1/coupons/{coupon.id}"), problems)
    promo = stripe.PromotionCode.create(promotion={"type": "coupon", "coupon": coupon.id}, code="SHAPE")
    check("promotion_code", _get(local, f"/v1/promotion_codes/{promo.id}"), problems)
    with_discount = stripe.Subscription.modify(sub.id, discounts=[{"promotion_code": promo.id}])
    discount_id = with_discount.discounts[0]
    discounts = _get(local, f"/v1/subscriptions/{sub.id}?expand[]=discounts")["discounts"]
    assert discounts[0]["id"] == discount_id
    check("discount", discounts[0], problems)
    check("deleted_coupon", json.loads(str(stripe.Coupon.delete(coupon.id))), problems)
    check(
        "deleted_test_helpers.test_clock",
        json.loads(str(stripe.test_helpers.TestClock.delete(clock.id))),
        problems,
    )
    assert not problems, "\n".join(sorted(set(problems)))
