"""State saved to a JSON file survives a restart; the module runs standalone."""

# mypy: disable-error-code="union-attr, arg-type, index"

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import stripe

from billing.stripe_local import StripeLocal


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "stripe_local.json"
    saved = (stripe.api_key, stripe.api_base)
    try:
        with StripeLocal(state_path=state) as first:
            first.configure_stripe()
            customer = stripe.Customer.create(email="ada@acme.test")
            pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
            stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
            product = stripe.Product.create(name="Pro")
            price = stripe.Price.create(
                product=product.id, unit_amount=2000, currency="eur", recurring={"interval": "month"}
            )
            sub = stripe.Subscription.create(customer=customer.id, items=[{"price": price.id}])
            endpoint = stripe.WebhookEndpoint.create(url="http://127.0.0.1:9/x", enabled_events=["*"])
        assert json.loads(state.read_text())["objects"][customer.id]["email"] == "ada@acme.test"
        assert not list(tmp_path.glob("*.tmp"))
        with StripeLocal(state_path=state) as second:
            second.configure_stripe()
            again = stripe.Subscription.retrieve(sub.id, expand=["customer", "latest_invoice"])
            assert again.status == "active" and again.customer.email == "ada@acme.test"
            assert again.latest_invoice.status == "paid"
            assert stripe.Customer.list().data[0].id == customer.id
            assert stripe.WebhookEndpoint.retrieve(endpoint.id).url == "http://127.0.0.1:9/x"
            more = stripe.Customer.create()
            assert stripe.Customer.list().data[0].id == more.id
            invoice = stripe.Invoice.retrieve(again.latest_invoice.id)
            assert invoice.hosted_invoice_url.startswith(second.url + "/invoice/")
    finally:
        stripe.api_key, stripe.api_base = saved


def test_runs_standalone(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "billing.stripe_local", "--port", "0", "--state", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(url + "/v1/customers", headers={"Authorization": "Bearer sk_test_x"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            assert json.loads(response.read())["object"] == "list"
    finally:
        process.terminate()
        process.wait(timeout=5)
