"""Domain errors raised by services and turned into JSON by the API's exception handler."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the domain was broken. ``code`` is the machine-readable ``error`` field."""

    def __init__(self, code: str, detail: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


class QuotaExceeded(DomainError):
    def __init__(self, detail: str, *, limit: int) -> None:
        super().__init__("quota_exceeded", detail, status=403, limit=limit)


class UsageLimitReached(DomainError):
    """A metered metric is over the plan's hard limit for the billing period: 429, with
    ``Retry-After`` set to the seconds left in the period (when the count resets)."""

    def __init__(self, *, metric: str, limit: int, retry_after: int) -> None:
        super().__init__(
            "quota_exceeded",
            "Usage limit reached. Upgrade your plan to continue.",
            status=429,
            metric=metric,
            limit=limit,
        )
        self.headers = {"Retry-After": str(retry_after)}
