from billing.models.revenue import RevenueSnapshot as RevenueSnapshot
from billing.models.subscriptions import Access, BillingAccount

__all__ = ["Access", "BillingAccount"]
