"""Reading Stripe objects (as plain dicts) the way API 2026-08-26.dahlia shapes them: the
billing period is on each subscription item (dj-stripe #2196), an invoice's subscription is
under ``parent.subscription_details``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe


def as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True)
    return dict(obj or {})


def ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def object_id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def subscription_items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = sub.get("items") or {}
    return list(items.get("data") or []) if isinstance(items, dict) else []


def licensed_items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's items (a fixed price per period), not the metered overage items."""
    return [
        item
        for item in subscription_items(sub)
        if ((item.get("price") or {}).get("recurring") or {}).get("usage_type", "licensed") == "licensed"
    ]


def current_period(sub: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The period the items share (the earliest end if they differ)."""
    items = subscription_items(sub)
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    return ts(min(starts) if starts else None), ts(min(ends) if ends else None)


def invoice_subscription_id(invoice: dict[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return object_id(details.get("subscription"))
