"""``billing_sync_catalog`` against the local Stripe: idempotent, lookup keys move on a change."""

from __future__ import annotations

import logging
from decimal import Decimal
from io import StringIO

import stripe
from django.core.management import call_command
from djstripe.models import Price as DjstripePrice
from djstripe.models import Product as DjstripeProduct

from billing.catalog import catalog_sync, metered_lookup_key, product_id
from tenants import plans
from tenants.plans import SPECS, metered_price_lookup_key


def _all(resource):
    return list(resource.list(limit=100).auto_paging_iter())


def test_sync_twice_makes_everything_once(stripe_local, db):
    out = StringIO()
    call_command("billing_sync_catalog", stdout=out)
    assert "catalogue in sync" in out.getvalue()
    first = (len(_all(stripe.Product)), len(_all(stripe.Price)), len(_all(stripe.billing.Meter)))
    assert first == (4, 10, 2)  # 3 plans + overage; 6 plan prices + 2 metrics x 2 intervals; 2 meters

    again = StringIO()
    call_command("billing_sync_catalog", stdout=again)
    assert (len(_all(stripe.Product)), len(_all(stripe.Price)), len(_all(stripe.billing.Meter))) == first
    assert "created" not in again.getvalue()
    assert DjstripeProduct.objects.count() == 4
    assert DjstripePrice.objects.count() == 10

    pro = stripe.Price.list(lookup_keys=["leanvibe_professional_year"]).data[0]
    assert pro.recurring is not None
    assert (pro.unit_amount, pro.currency, pro.recurring.interval) == (99_000, "usd", "year")
    overage = stripe.Price.list(lookup_keys=[metered_price_lookup_key("ai_requests")]).data[0]
    assert overage.recurring is not None
    assert overage.recurring.usage_type == "metered"
    assert overage.recurring.meter
    meters = {m.event_name for m in _all(stripe.billing.Meter)}
    assert meters == {"leanvibe_api_calls", "leanvibe_ai_requests"}


def test_a_changed_amount_moves_the_lookup_key_to_a_new_price(stripe_local, db, monkeypatch):
    before = catalog_sync()["leanvibe_starter_month"]
    spec = SPECS["starter"]
    changed = type(spec)(**{**spec.__dict__, "prices": {**spec.prices, plans.Interval.MONTH: 3_900}})
    monkeypatch.setitem(SPECS, "starter", changed)  # the catalogue edited, as a deploy would ship it
    lines: list[str] = []
    after = catalog_sync(report=lines.append)["leanvibe_starter_month"]
    assert after["id"] != before["id"] and after["unit_amount"] == 3_900
    assert any("lookup key moved" in line for line in lines)
    found = stripe.Price.list(lookup_keys=["leanvibe_starter_month"]).data
    assert [p.id for p in found] == [after["id"]]
    assert stripe.Price.retrieve(before["id"]).active is False


def test_overage_prices_bill_only_what_is_past_the_included_amount(stripe_local, db):
    catalog_sync()
    catalog_sync()  # tiers compare equal: nothing replaced on a second run
    terms = {}
    for interval in ("month", "year"):
        key = metered_lookup_key("ai_requests", interval)
        found = stripe.Price.list(lookup_keys=[key], expand=["data.tiers"]).data
        assert len(found) == 1, key
        price = found[0]
        assert (price.billing_scheme, price.tiers_mode) == ("tiered", "graduated")
        terms[interval] = [(tier.up_to, Decimal(str(tier.unit_amount_decimal))) for tier in price.tiers or []]
    enterprise = SPECS["enterprise"]
    included = enterprise.limits.ai_requests
    assert included
    unit = enterprise.overage.unit_prices["ai_requests"]
    assert terms == {"month": [(included, 0), (None, unit)], "year": [(12 * included, 0), (None, unit)]}


def test_products_mirror_their_features_without_errors(stripe_local, db, caplog):
    """dj-stripe lists a product's features on every product sync (``/v1/products/{id}/features``):
    answered by the local Stripe, so the catalogue sync logs nothing and features are mirrored."""
    caplog.set_level(logging.WARNING, logger="djstripe")
    catalog_sync()
    assert not [r for r in caplog.records if "product features" in r.getMessage()]
    product = DjstripeProduct.objects.get(id=product_id("professional"))
    assert not product.features.exists()

    feature = stripe.entitlements.Feature.create(name="AI assistant", lookup_key="ai-assistant")
    attached = stripe.Product.create_feature(product.id, entitlement_feature=feature.id)
    DjstripeProduct.sync_from_stripe_data(stripe.Product.retrieve(product.id))
    mirrored = product.features.get()
    assert (mirrored.id, mirrored.entitlement_feature.lookup_key) == (attached.id, "ai-assistant")

    stripe.Product.delete_feature(product.id, attached.id)
    DjstripeProduct.sync_from_stripe_data(stripe.Product.retrieve(product.id))
    assert not product.features.exists()
    assert not [r for r in caplog.records if "product features" in r.getMessage()]
