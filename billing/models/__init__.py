"""Billing data; every table lives in the public schema (billing is a shared app only)."""

from billing.models.revenue import RevenueSnapshot
from billing.models.subscriptions import Access, BillingAccount
from billing.models.usage import UsageRecord
from billing.models.webhooks import BatchEvent, InvoiceMirror, batch_owner

__all__ = [
    "Access",
    "BatchEvent",
    "BillingAccount",
    "InvoiceMirror",
    "RevenueSnapshot",
    "UsageRecord",
    "batch_owner",
]
