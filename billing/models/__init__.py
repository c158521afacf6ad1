"""Billing data; every table lives in the public schema (billing is a shared app only)."""

from billing.models.revenue import RevenueSnapshot
from billing.models.subscriptions import Access, BillingAccount
from billing.models.usage import UsageRecord

__all__ = ["Access", "BillingAccount", "RevenueSnapshot", "UsageRecord"]
