"""The Stripe catalogue made from ``tenants.plans``: one Product per plan, a Price per plan and
interval found by ``lookup_key``, a Billing Meter per metered metric and a metered overage
Price for the metrics a ``charge`` plan bills. Idempotent: what exists and matches is kept; a
changed amount makes a new Price that takes the lookup key over (``transfer_lookup_key``) and
the old one is archived. The result is mirrored in dj-stripe's tables."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import stripe
from djstripe.models import Price as DjstripePrice
from djstripe.models import Product as DjstripeProduct

from billing.stripe_objects import as_dict
from tenants.plans import METERED, SPECS, Interval, OveragePolicy, Resource, metered_price_lookup_key

OVERAGE_PRODUCT_ID = "leanvibe_overage"
Report = Callable[[str], None]


def metered_lookup_key(metric: str, interval: str) -> str:
    """Stripe wants every price of a subscription on one interval: a yearly plan bills its
    overage on a yearly metered price (``..._year``), a monthly one on the catalogue's key."""
    key = metered_price_lookup_key(metric)
    return key if interval == Interval.MONTH else f"{key}_{interval}"


def meter_event_name(metric: str) -> str:
    return f"leanvibe_{metric}"


def product_id(plan: str) -> str:
    return f"leanvibe_{plan}"


def _product_ensure(pid: str, name: str, metadata: dict[str, str], report: Report) -> stripe.Product:
    try:
        product = stripe.Product.retrieve(pid)
    except stripe.InvalidRequestError:
        report(f"product {pid}: created")
        return stripe.Product.create(id=pid, name=name, metadata=metadata)
    if product.name != name or not product.active:
        report(f"product {pid}: updated")
        return stripe.Product.modify(pid, name=name, active=True, metadata=metadata)
    report(f"product {pid}: unchanged")
    return product


def _tiers_of(price: dict[str, Any]) -> list[tuple[int | None, Decimal]]:
    return [
        (
            None if tier.get("up_to") in (None, "inf") else int(tier["up_to"]),
            Decimal(str(tier.get("unit_amount_decimal") or tier.get("unit_amount") or 0)),
        )
        for tier in price.get("tiers") or []
    ]


def _amount_matches(price: dict[str, Any], wanted: dict[str, Any]) -> bool:
    if (price.get("billing_scheme") or "per_unit") != wanted.get("billing_scheme", "per_unit"):
        return False
    if wanted.get("billing_scheme") == "tiered":
        return price.get("tiers_mode") == wanted["tiers_mode"] and _tiers_of(price) == _tiers_of(wanted)
    amount = price.get("unit_amount_decimal") or price.get("unit_amount")
    return amount is not None and Decimal(str(amount)) == Decimal(str(wanted["unit_amount_decimal"]))


def _price_matches(price: dict[str, Any], wanted: dict[str, Any]) -> bool:
    recurring = price.get("recurring") or {}
    return (
        price.get("product") == wanted["product"]
        and price.get("currency") == wanted["currency"]
        and _amount_matches(price, wanted)
        and recurring.get("interval") == wanted["recurring"]["interval"]
        and recurring.get("usage_type", "licensed") == wanted["recurring"].get("usage_type", "licensed")
        and (recurring.get("meter") or None) == wanted["recurring"].get("meter")
    )


def _price_ensure(lookup_key: str, wanted: dict[str, Any], report: Report) -> stripe.Price:
    found = stripe.Price.list(lookup_keys=[lookup_key], active=True, limit=1, expand=["data.tiers"]).data
    current = found[0] if found else None
    if current is not None and _price_matches(as_dict(current), wanted):
        report(f"price {lookup_key}: unchanged ({current.id})")
        return current
    price = stripe.Price.create(lookup_key=lookup_key, transfer_lookup_key=True, **wanted)
    if current is not None:
        stripe.Price.modify(current.id, active=False)
        report(f"price {lookup_key}: {current.id} replaced by {price.id} (lookup key moved)")
    else:
        report(f"price {lookup_key}: created ({price.id})")
    return price


def _meter_ensure(metric: str, report: Report) -> dict[str, Any]:
    event_name = meter_event_name(metric)
    for meter in stripe.billing.Meter.list(limit=100).auto_paging_iter():
        if meter.event_name == event_name and meter.status == "active":
            report(f"meter {event_name}: unchanged ({meter.id})")
            return as_dict(meter)
    meter = stripe.billing.Meter.create(
        display_name=str(Resource(metric).label),
        event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"type": "by_id", "event_payload_key": "stripe_customer_id"},
        value_settings={"event_payload_key": "value"},
    )
    report(f"meter {event_name}: created ({meter.id})")
    return as_dict(meter)


def _overage_terms(metric: str) -> tuple[int, Decimal] | None:
    """(amount included a month, unit price in cents) of the plan that charges ``metric``."""
    terms = {
        (spec.limits.limit_for(metric) or 0, spec.overage.unit_prices[metric])
        for spec in SPECS.values()
        if spec.overage.policy == OveragePolicy.CHARGE and metric in spec.overage.unit_prices
    }
    if len(terms) > 1:
        raise ValueError(
            f"plans charge {metric} on different terms (included amount, unit price): "
            "one lookup key cannot hold both"
        )
    return terms.pop() if terms else None


def _overage_price(included: int, unit_price: Decimal) -> dict[str, Any]:
    """Every unit is reported to the meter; graduated tiers bill only those past the amount the
    plan includes (a yearly price includes twelve months' worth)."""
    if not included:
        return {"unit_amount_decimal": str(unit_price)}
    return {
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": included, "unit_amount_decimal": "0"},
            {"up_to": "inf", "unit_amount_decimal": str(unit_price)},
        ],
    }


def catalog_sync(*, report: Report = lambda line: None) -> dict[str, stripe.Price]:
    """Make Stripe's catalogue match ``tenants.plans``; returns the prices by lookup key."""
    prices: dict[str, stripe.Price] = {}
    products: list[stripe.Product] = []
    for plan, spec in SPECS.items():
        product = _product_ensure(product_id(plan), f"LeanVibe {spec.name}", {"plan": str(plan)}, report)
        products.append(product)
        for interval, amount in spec.prices.items():
            key = spec.price_lookup_key(interval)
            prices[key] = _price_ensure(
                key,
                {
                    "product": product.id,
                    "currency": spec.currency,
                    "unit_amount_decimal": str(amount),
                    "recurring": {"interval": str(interval)},
                    "metadata": {"plan": str(plan), "interval": str(interval)},
                },
                report,
            )
    overage_product: stripe.Product | None = None
    for metric in METERED:
        meter = _meter_ensure(metric, report)
        terms = _overage_terms(metric)
        if terms is None:
            continue
        monthly_included, unit_price = terms
        if overage_product is None:
            overage_product = _product_ensure(OVERAGE_PRODUCT_ID, "LeanVibe usage over the plan", {}, report)
            products.append(overage_product)
        for interval in (Interval.MONTH, Interval.YEAR):
            key = metered_lookup_key(metric, interval)
            prices[key] = _price_ensure(
                key,
                {
                    "product": overage_product.id,
                    "currency": "usd",
                    **_overage_price(monthly_included * (12 if interval == Interval.YEAR else 1), unit_price),
                    "recurring": {"interval": str(interval), "usage_type": "metered", "meter": meter["id"]},
                    "metadata": {"metric": str(metric)},
                },
                report,
            )
    for product in products:
        DjstripeProduct.sync_from_stripe_data(product)
    for price in prices.values():
        DjstripePrice.sync_from_stripe_data(price)
    report(f"mirrored {len(products)} products and {len(prices)} prices in dj-stripe")
    return prices
