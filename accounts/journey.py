"""The journey steps accounts does (``tenants.journey``): registered by ``AccountsConfig.ready``,
reported where they happen."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from accounts.models import AuthToken
from accounts.services.tokens import token_activities
from tenants.journey.registry import JourneyStep, journey_step_register
from tenants.journey.services import journey_step_known_done, journey_step_report
from tenants.models import Tenant

API_TOKEN_USED = "api_token_used"  # noqa: S105 - a step id, not a secret


def api_token_used_at(tenant: Tenant) -> datetime | None:
    """When an access token was last seen calling the API: token activity lives in the cache
    (``token_activity_touch``, no write per request) for the refresh lifetime, so the records
    show a tenant's API use for that long only; the tick itself is the lasting record."""
    families = list(
        AuthToken.objects.filter(kind=AuthToken.Kind.ACCESS).values_list("family", flat=True).distinct()
    )
    seen = token_activities(families).values()
    return min(seen, default=None)


def api_token_used_report(token: AuthToken) -> None:
    """A tenant API call was authenticated by ``token``: the tenant's first one ticks the step
    (afterwards one cache read)."""
    tenant = getattr(connection, "tenant", None)
    if not isinstance(tenant, Tenant):
        return  # the public site (platform staff): no journey
    if not journey_step_known_done(tenant=tenant, step=API_TOKEN_USED):
        journey_step_report(tenant=tenant, step=API_TOKEN_USED)


def register() -> None:
    journey_step_register(
        JourneyStep(
            id=API_TOKEN_USED,
            level=1,
            title="Call the API with a token",
            help_url="/account/sessions/",
            done_at=api_token_used_at,
            order=30,
            history=False,
        )
    )
