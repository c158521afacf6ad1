"""Stripe's own example objects (``fixtures3.json`` of stripe/openapi, shipped with
``billing.stripe_local``) shaped into the events and subscriptions a test needs, and webhook signing as Stripe
signs (``t=<unix>,v1=<HMAC-SHA256 of "t.payload">``)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "stripe_local" / "fixtures3.json"


@cache
def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def stripe_object(name: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(_resources()[name])
    data.update(changes)
    return data


def event(event_type: str, obj: dict[str, Any], *, event_id: str = "evt_test_1") -> dict[str, Any]:
    return stripe_object(
        "event",
        id=event_id,
        type=event_type,
        data={"object": obj},
        api_version="2026-08-26.dahlia",
        created=int(time.time()),
    )


def signature(payload: str, secret: str, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def subscription(
    *,
    sub_id: str = "sub_test_1",
    customer: str = "cus_test_1",
    status: str = "trialing",
    plan: str = "professional",
    interval: str = "month",
    period_days: int = 30,
    tenant_id: str = "",
) -> dict[str, Any]:
    """A subscription as Stripe returns it (expanded items and price), on ``plan``."""
    now = int(time.time())
    sub = stripe_object(
        "subscription",
        id=sub_id,
        customer=customer,
        status=status,
        cancel_at_period_end=False,
        trial_end=now + 14 * 86400 if status == "trialing" else None,
        metadata={"tenant_id": tenant_id} if tenant_id else {},
        default_payment_method=None,
    )
    item = sub["items"]["data"][0]
    item.update(subscription=sub_id, current_period_start=now, current_period_end=now + period_days * 86400)
    item["price"].update(lookup_key=f"leanvibe_{plan}_{interval}")
    item["price"]["recurring"].update(interval=interval, usage_type="licensed")
    sub["items"]["data"] = [item]
    return sub
