from billing.models.subscriptions import Access, BillingAccount

__all__ = ["Access", "BillingAccount"]
