"""Billing fixtures (a pytest plugin, listed in the root conftest.py so that every app's tests
may use them). Tests that need Stripe opt in with the ``stripe_local`` fixture: the project's own
Stripe-compatible server (``billing.stripe_local``) on 127.0.0.1, with ``STRIPE_SECRET_KEY`` and
``STRIPE_API_BASE`` pointing at it (``billing.stripe_api`` reconfigures the ``stripe`` module on
the settings change, and again when the test ends). Other tests run with billing off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from djstripe.models import WebhookEndpoint

from billing.catalog import catalog_sync
from billing.stripe_local import StripeLocal

API_KEY = "sk_test_LeanVibeLocal0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def stripe_local(settings: Any) -> Iterator[StripeLocal]:
    with StripeLocal(retry_delays=(0.1, 0.2)) as server:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_METER_EVENTS_API_BASE = server.url
        yield server


@pytest.fixture
def catalog(stripe_local: StripeLocal, db: None) -> dict[str, Any]:
    return catalog_sync()


@pytest.fixture
def endpoint(db: None) -> WebhookEndpoint:
    """Our side of a webhook endpoint (as ``billing_webhook_setup`` stores it)."""
    return WebhookEndpoint.objects.create(
        id="we_test_endpoint",
        livemode=False,
        secret=WEBHOOK_SECRET,
        url="http://localhost/stripe/webhook/",
        enabled_events=["*"],
        status="enabled",
        api_version="2026-08-26.dahlia",
    )
