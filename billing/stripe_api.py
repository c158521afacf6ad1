"""The one place that configures the ``stripe`` library (key, API base, meter events base,
version). dj-stripe calls ``stripe`` with module-level settings, so they are set on the module.

Billing is *on* when ``STRIPE_SECRET_KEY`` is set; otherwise nothing calls Stripe.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_SETTINGS = {
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_METER_EVENTS_API_BASE",
    "STRIPE_API_VERSION",
}


def billing_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def clocks_on() -> bool:
    """``BILLING_TEST_CLOCKS`` holds only in test mode: never with a live key."""
    key = settings.STRIPE_SECRET_KEY or ""
    live = settings.STRIPE_LIVE_MODE or key.startswith(("sk_live_", "rk_live_"))
    return bool(settings.BILLING_TEST_CLOCKS and key and not live)


def configure() -> None:
    stripe.api_key = settings.STRIPE_SECRET_KEY or None
    stripe.api_base = settings.STRIPE_API_BASE.rstrip("/")
    stripe.meter_events_api_base = (settings.STRIPE_METER_EVENTS_API_BASE or settings.STRIPE_API_BASE).rstrip(
        "/"
    )
    stripe.api_version = settings.STRIPE_API_VERSION
    stripe.enable_telemetry = False
    # Celery retries (with backoff) when Stripe is down; the client itself retries once.
    stripe.max_network_retries = 1


@receiver(setting_changed)
def _reconfigure(*, setting: str, **_: Any) -> None:
    if setting in _SETTINGS:
        configure()
