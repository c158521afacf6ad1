"""A local, stateful, Stripe-compatible HTTP server for tests and ``make run`` (no internet).

Plain Python (no Django): see README.md in this folder.
"""

from .delivery import DeliveryRecord, sign
from .server import StripeLocal

__all__ = ["DeliveryRecord", "StripeLocal", "sign"]
