"""Helpers for other apps' tests: point the global ``stripe`` module at a local server and put
it back afterwards (the module is process-wide state).

    with StripeLocal(retry_delays=(0.1, 0.2)) as server, pointed_at(server):
        stripe.Customer.create(...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from .server import StripeLocal

_SETTINGS = ("api_key", "api_base", "meter_events_api_base", "upload_api_base", "connect_api_base")


@contextmanager
def pointed_at(server: StripeLocal, *, api_key: str = "sk_test_local") -> Iterator[StripeLocal]:
    """Within the block, ``stripe.*`` calls go to ``server``; no network retries (a failing
    call fails at once)."""
    saved = {name: getattr(stripe, name) for name in (*_SETTINGS, "max_network_retries")}
    try:
        server.configure_stripe(api_key)
        stripe.max_network_retries = 0
        yield server
    finally:
        for name, value in saved.items():
            setattr(stripe, name, value)
