"""The hosted Checkout and portal pages, driven by plain HTTP like a browser form."""

# mypy: disable-error-code="union-attr, arg-type, operator, index, typeddict-item"

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import stripe

from billing.stripe_local import StripeLocal


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _request(url: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with _opener.open(url, data=data, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def _prices() -> tuple[stripe.Price, stripe.Price]:
    basic = stripe.Product.create(name="Basic")
    pro = stripe.Product.create(name="Pro")
    return (
        stripe.Price.create(
            product=basic.id, unit_amount=1000, currency="eur", recurring={"interval": "month"}
        ),
        stripe.Price.create(
            product=pro.id, unit_amount=3000, currency="eur", recurring={"interval": "month"}
        ),
    )


def _session(price: stripe.Price, **extra: Any) -> stripe.checkout.Session:
    return stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": price.id, "quantity": 1}],
        success_url="http://127.0.0.1:8000/billing/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:8000/billing/cancel",
        client_reference_id="tenant-acme",
        metadata={"tenant": "acme"},
        **extra,
    )


def test_checkout_success_creates_customer_and_subscription(local: StripeLocal) -> None:
    basic, _ = _prices()
    session = _session(basic, subscription_data={"trial_period_days": 14}, customer_email="ada@acme.test")
    assert session.url.startswith(local.url) and session.status == "open"
    status, _, page = _request(session.url)
    assert status == 200 and "card_number" in page and "14-day free trial" in page
    status, headers, _ = _request(
        session.url, {"card_number": "4242 4242 4242 4242", "email": "ada@acme.test"}
    )
    assert status == 303
    assert headers["Location"] == f"http://127.0.0.1:8000/billing/success?session_id={session.id}"
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription", "customer"])
    assert done.status == "complete" and done.client_reference_id == "tenant-acme"
    assert done.subscription.status == "trialing" and done.customer.email == "ada@acme.test"
    assert done.customer.invoice_settings.default_payment_method == done.subscription.default_payment_method
    completed = local.events("checkout.session.completed")
    assert completed[0]["data"]["object"]["subscription"] == done.subscription.id
    assert completed[0]["data"]["object"]["metadata"] == {"tenant": "acme"}
    status, _, _ = _request(session.url, {"card_number": "4242424242424242"})
    assert status == 410


def test_checkout_declined_card_shows_error_inline(local: StripeLocal) -> None:
    basic, _ = _prices()
    customer = stripe.Customer.create(email="bob@acme.test")
    session = _session(basic, customer=customer.id)
    status, _, page = _request(session.url, {"card_number": "4000000000000002"})
    assert status == 402 and "Your card was declined." in page
    status, _, page = _request(session.url, {"card_number": "4000000000000341"})
    assert status == 402 and "declined" in page
    assert stripe.checkout.Session.retrieve(session.id).status == "open"
    status, _, _ = _request(session.url, {"card_number": "4242424242424242"})
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription"])
    assert done.customer == customer.id and done.subscription.status == "active"
    assert done.payment_status == "paid"
    items = stripe.checkout.Session.list_line_items(session.id)
    assert items.data[0].price.id == basic.id and items.data[0].amount_total == 1000


def test_checkout_card_that_fails_later_is_accepted_with_a_trial(local: StripeLocal) -> None:
    basic, _ = _prices()
    session = _session(basic, subscription_data={"trial_period_days": 7})
    status, _, _ = _request(session.url, {"card_number": "4000000000000341", "email": "eve@acme.test"})
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription.default_payment_method"])
    assert done.subscription.default_payment_method.card.last4 == "0341"


def test_portal_switch_cancel_resume_and_card(local: StripeLocal) -> None:
    basic, pro = _prices()
    customer = stripe.Customer.create(email="ada@acme.test")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    portal = stripe.billing_portal.Session.create(
        customer=customer.id, return_url="http://127.0.0.1:8000/billing"
    )
    assert portal.url.startswith(local.url)
    status, _, page = _request(portal.url)
    assert status == 200 and "Switch to Pro" in page and "http://127.0.0.1:8000/billing" in page
    assert "<h2>Invoices</h2>" in page and "/invoice/in_" in page
    form = {"action": "switch", "subscription": sub.id, "price": pro.id}
    status, headers, _ = _request(portal.url, form)
    assert status == 303 and headers["Location"].endswith(portal.id)
    assert stripe.Subscription.retrieve(sub.id)["items"].data[0].price.id == pro.id
    _request(portal.url, {"action": "cancel", "subscription": sub.id})
    assert stripe.Subscription.retrieve(sub.id).cancel_at_period_end is True
    _, _, page = _request(portal.url)
    assert "Resume subscription" in page
    _request(portal.url, {"action": "resume", "subscription": sub.id})
    assert stripe.Subscription.retrieve(sub.id).cancel_at_period_end is False
    status, _, page = _request(portal.url, {"action": "card", "card_number": "4000000000000002"})
    assert status == 402 and "declined" in page
    _request(portal.url, {"action": "card", "card_number": "5555555555554444"})
    default = stripe.Customer.retrieve(customer.id, expand=["invoice_settings.default_payment_method"])
    assert default.invoice_settings.default_payment_method.card.brand == "mastercard"
    assert len(local.events("billing_portal.session.created")) == 1


def test_invoice_pages(local: StripeLocal) -> None:
    basic, _ = _prices()
    customer = stripe.Customer.create(email="ada@acme.test")
    stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": basic.id}],
        default_payment_method=stripe.PaymentMethod.list(customer=customer.id).data[0].id,
        expand=["latest_invoice"],
    )
    invoice = sub.latest_invoice
    status, _, page = _request(invoice.hosted_invoice_url)
    assert status == 200 and "paid" in page
    status, headers, body = _request(invoice.invoice_pdf)
    assert status == 200 and headers["Content-Type"] == "application/pdf" and body.startswith("%PDF")


def test_checkout_without_card_when_not_required(local: StripeLocal) -> None:
    basic, _ = _prices()
    session = _session(
        basic,
        payment_method_collection="if_required",
        subscription_data={
            "trial_period_days": 30,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        },
    )
    status, _, _ = _request(session.url, {"card_number": "", "email": "free@acme.test"})
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription"])
    assert done.subscription.status == "trialing" and done.subscription.default_payment_method is None
    assert done.subscription.trial_settings.end_behavior.missing_payment_method == "pause"
    other = _session(basic)
    status, _, page = _request(other.url, {"card_number": ""})
    assert status == 400 and "incomplete" in page


def test_portal_configuration_limits_the_portal(local: StripeLocal) -> None:
    basic, pro = _prices()
    other = stripe.Price.create(
        product=pro.product, unit_amount=5000, currency="eur", recurring={"interval": "month"}
    )
    config = stripe.billing_portal.Configuration.create(
        business_profile={"headline": "LeanVibe billing"},
        default_return_url="http://127.0.0.1:8000/settings/billing",
        features={
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price"],
                "proration_behavior": "always_invoice",
                "products": [{"product": pro.product, "prices": [pro.id]}],
            },
            "subscription_cancel": {"enabled": True, "mode": "immediately"},
            "payment_method_update": {"enabled": False},
        },
    )
    assert config.is_default and config.features.subscription_update.proration_behavior == "always_invoice"
    customer = stripe.Customer.create(email="ada@acme.test")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    portal = stripe.billing_portal.Session.create(customer=customer.id)
    assert portal.configuration == config.id
    assert portal.return_url == "http://127.0.0.1:8000/settings/billing"
    _, _, page = _request(portal.url)
    assert "Switch to Pro (EUR 30.00)" in page and "EUR 50.00" not in page
    assert "Update card" not in page and "Cancel now" in page
    status, _, _ = _request(portal.url, {"action": "switch", "subscription": sub.id, "price": other.id})
    assert status == 400
    _request(portal.url, {"action": "switch", "subscription": sub.id, "price": pro.id})
    switched = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])
    assert switched.latest_invoice.billing_reason == "subscription_update"
    _request(portal.url, {"action": "cancel", "subscription": sub.id})
    assert stripe.Subscription.retrieve(sub.id).status == "canceled"
    updated = stripe.billing_portal.Configuration.modify(
        config.id, features={"payment_method_update": {"enabled": True}}
    )
    assert updated.features.payment_method_update.enabled is True
    assert [c.id for c in stripe.billing_portal.Configuration.list().data] == [config.id]


def test_checkout_with_a_promotion_code(local: StripeLocal) -> None:
    basic, _ = _prices()
    coupon = stripe.Coupon.create(percent_off=20, duration="forever")
    stripe.PromotionCode.create(promotion={"type": "coupon", "coupon": coupon.id}, code="FRIENDS")
    session = _session(basic, allow_promotion_codes=True)
    _, _, page = _request(session.url)
    assert "promotion_code" in page
    status, _, page = _request(session.url, {"card_number": "4242424242424242", "promotion_code": "NOPE"})
    assert status == 400 and "invalid" in page
    status, _, _ = _request(session.url, {"card_number": "4242424242424242", "promotion_code": "friends"})
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription.latest_invoice"])
    assert done.subscription.latest_invoice.amount_paid == 800
