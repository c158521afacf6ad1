"""The plan catalogue: the one place in code that says what each plan costs and allows.

Quotas (``tenants.usage``), the pricing pages, the billing API and the Stripe catalogue sync
(``billing``) all read it; nothing else states a price or a limit.

Limits are per billing period for metered metrics (``api_calls``, ``ai_requests``) and absolute
for the others. ``None`` means unlimited. For a plan whose overage policy is ``charge`` the
limit of a metered metric is the amount *included* in the price; use beyond it is billed at
the metric's unit price and never blocked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import models


class Plan(models.TextChoices):
    STARTER = "starter", "Starter"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"


class Resource(models.TextChoices):
    PROJECTS = "projects", "Projects"
    USERS = "users", "Users"
    API_CALLS = "api_calls", "API calls this month"
    AI_REQUESTS = "ai_requests", "AI requests this month"
    STORAGE = "storage_bytes", "Storage"


#: Metrics counted per billing period and reported to Stripe as Billing Meter events.
METERED: tuple[str, ...] = (Resource.API_CALLS, Resource.AI_REQUESTS)

GB = 1024**3


class Interval(enum.StrEnum):
    MONTH = "month"
    YEAR = "year"


class OveragePolicy(enum.StrEnum):
    BLOCK = "block"  # refused at the limit
    GRACE = "grace"  # refused at limit * (1 + grace_percent / 100)
    CHARGE = "charge"  # never refused; use over the included amount is invoiced


@dataclass(frozen=True)
class PlanLimits:
    """Limits of one plan; ``None`` means unlimited."""

    projects: int | None
    users: int | None
    api_calls: int | None
    ai_requests: int | None
    storage_bytes: int | None
    #: Development tasks of the coding agents running at once (more wait, queued, in order).
    agent_tasks_concurrent: int = 1

    def limit_for(self, resource: Resource | str) -> int | None:
        value: int | None = getattr(self, str(resource), None)  # unknown to the catalogue: no limit
        return value


@dataclass(frozen=True)
class Overage:
    policy: OveragePolicy
    grace_percent: int = 0
    #: Price of one unit over the included amount, in cents (may be a fraction of a cent), per
    #: metered metric. Only meaningful with ``CHARGE``.
    unit_prices: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanSpec:
    plan: Plan
    tagline: str
    #: Price in cents per interval (USD).
    prices: dict[Interval, int]
    limits: PlanLimits
    overage: Overage
    features: tuple[str, ...]
    currency: str = "usd"

    @property
    def name(self) -> str:
        return str(self.plan.label)

    def price_lookup_key(self, interval: Interval | str) -> str:
        """Stripe Price ``lookup_key`` of this plan's price for ``interval``."""
        return f"leanvibe_{self.plan.value}_{Interval(interval).value}"

    def hard_limit(self, resource: Resource | str) -> int | None:
        """The amount at which creating more (or calling more) is refused, or None (never)."""
        limit = self.limits.limit_for(resource)
        if limit is None or (self.overage.policy == OveragePolicy.CHARGE and str(resource) in METERED):
            return None
        if self.overage.policy == OveragePolicy.GRACE and str(resource) in METERED:
            return limit + limit * self.overage.grace_percent // 100
        return limit


def metered_price_lookup_key(metric: str) -> str:
    """Stripe Price ``lookup_key`` of the metered overage price of ``metric``."""
    return f"leanvibe_overage_{metric}"


SPECS: dict[str, PlanSpec] = {
    Plan.STARTER: PlanSpec(
        plan=Plan.STARTER,
        tagline="For a small team getting started with agents.",
        prices={Interval.MONTH: 2_900, Interval.YEAR: 29_000},
        limits=PlanLimits(
            projects=5,
            users=3,
            api_calls=10_000,
            ai_requests=100,
            storage_bytes=1 * GB,
            agent_tasks_concurrent=1,
        ),
        overage=Overage(policy=OveragePolicy.BLOCK),
        features=("AI coding agents", "Two-factor sign-in", "Email support"),
    ),
    Plan.PROFESSIONAL: PlanSpec(
        plan=Plan.PROFESSIONAL,
        tagline="For teams that ship with agents every day.",
        prices={Interval.MONTH: 9_900, Interval.YEAR: 99_000},
        limits=PlanLimits(
            projects=50,
            users=25,
            api_calls=100_000,
            ai_requests=2_000,
            storage_bytes=10 * GB,
            agent_tasks_concurrent=3,
        ),
        overage=Overage(policy=OveragePolicy.GRACE, grace_percent=10),
        features=("Everything in Starter", "Single sign-on (OIDC, SAML)", "10 % grace over limits"),
    ),
    Plan.ENTERPRISE: PlanSpec(
        plan=Plan.ENTERPRISE,
        tagline="For organisations without limits.",
        prices={Interval.MONTH: 49_900, Interval.YEAR: 499_000},
        limits=PlanLimits(
            projects=None,
            users=None,
            api_calls=1_000_000,
            ai_requests=10_000,
            storage_bytes=None,
            agent_tasks_concurrent=10,
        ),
        overage=Overage(
            policy=OveragePolicy.CHARGE,
            unit_prices={Resource.API_CALLS: Decimal("0.01"), Resource.AI_REQUESTS: Decimal("2")},
        ),
        features=(
            "Everything in Professional",
            "Never blocked: usage over the plan is invoiced",
            "SSO-only sign-in",
        ),
    ),
}

#: Limits by plan (kept for the quota code and its tests).
CATALOGUE: dict[str, PlanLimits] = {key: spec.limits for key, spec in SPECS.items()}


def spec_for(plan: str) -> PlanSpec:
    return SPECS[plan]


def limits_for(plan: str) -> PlanLimits:
    return CATALOGUE[plan]
