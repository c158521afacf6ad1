"""The journey steps accounts does (``tenants.journey``): registered by ``AccountsConfig.ready``,
ticked where they happen — the API's token authentication, and the audit trail, which every
sign-in, role change, second factor and sign-in rule already goes through (``audit_record``
calls ``journey_audit_react``). What the steps compute for the backfill reads the same audit
events, so a tick and the records agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import connection
from django.db.models import Max, Min, Q
from django_tenants.utils import get_public_schema_name

from accounts.models import AuditEvent, AuthToken, Role, User
from accounts.services.tokens import token_activities
from tenants.journey.registry import JourneyStep, journey_step_register
from tenants.journey.services import journey_step_known_done, journey_step_report
from tenants.models import Tenant
from tenants.tenant_settings import TenantSettings

API_TOKEN_USED = "api_token_used"  # noqa: S105 - a step id, not a secret
SECOND_MEMBER_SIGNED_IN = "second_member_signed_in"
ADMIN_DELEGATED = "admin_delegated"
OWNER_SECOND_FACTOR = "owner_second_factor"
SIGN_IN_SECURED = "sign_in_secured"
SIGN_IN_ENFORCED = "sign_in_enforced"
AUDIT_LOG_EXPORTED = "audit_log_exported"
DATA_EXPORT_DOWNLOADED = "data_export_downloaded"
ENFORCED_MIN_MEMBERS = 3

SSO_METHODS = ("sso", "sso_link")


def _current_tenant() -> Tenant | None:
    """The tenant whose schema is current; None on the public site (platform staff). Code run
    under ``schema_context`` (settings changes, commands) has a stand-in there, not the row."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    schema = connection.schema_name  # type: ignore[attr-defined]
    if not schema or schema == get_public_schema_name():
        return None
    return Tenant.objects.filter(schema_name=schema).first()


# --- level 1: the API used with a token -----------------------------------------------------------
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
    """A tenant API call was authenticated by ``token``: the tenant's first one ticks the step.
    Requests always carry the tenant's row (the resolution middleware sets it); code run under
    ``schema_context`` (tests, commands) is not an API call and ticks nothing here."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        journey_step_report(tenant=tenant, step=API_TOKEN_USED)  # once done: nothing, not even a query


# --- what the audit trail says ----------------------------------------------------------------
def second_member_signed_in_at(tenant: Tenant) -> datetime | None:
    """The first sign-in of the second member to sign in at all."""
    firsts = (
        AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_SUCCEEDED, actor__isnull=False)
        .values("actor")
        .annotate(first=Min("created_at"))
        .order_by("first")
        .values_list("first", flat=True)
    )
    two = list(firsts[:2])
    return two[1] if len(two) == 2 else None


def admin_delegated_at(tenant: Tenant) -> datetime | None:
    """A member was made admin: added with the role, or given it later."""
    became_admin = Q(type=AuditEvent.Type.MEMBER_ADDED, data__role=Role.ADMIN) | Q(
        type=AuditEvent.Type.MEMBER_ROLE_CHANGED, data__new_role=Role.ADMIN
    )
    first: datetime | None = AuditEvent.objects.filter(became_admin).aggregate(first=Min("created_at"))[
        "first"
    ]
    return first


def owner_second_factor_at(tenant: Tenant) -> datetime | None:
    """An owner enrolled a second factor (owners as they are now)."""
    owners = User.objects.filter(role=Role.OWNER)
    first: datetime | None = AuditEvent.objects.filter(
        type=AuditEvent.Type.MFA_ENROLLED, actor__in=owners
    ).aggregate(first=Min("created_at"))["first"]
    return first


def sign_in_secured_at(tenant: Tenant) -> datetime | None:
    """Two-factor required by the organisation, or a member signed in through its identity
    provider, whichever came first."""
    secured = Q(type=AuditEvent.Type.SECURITY_SETTINGS_CHANGED, data__changes__require_mfa=True) | Q(
        type=AuditEvent.Type.LOGIN_SUCCEEDED, data__method__in=SSO_METHODS
    )
    first: datetime | None = AuditEvent.objects.filter(secured).aggregate(first=Min("created_at"))["first"]
    return first


# --- level 6 -----------------------------------------------------------------------------------
def sign_in_enforced_at(tenant: Tenant) -> datetime | None:
    """SSO-only or required two-factor in force, with at least three active members. The
    records say only whether this holds *now* (settings and members change; the audit trail
    does not replay them): when it does, the time is the latest of the rule's last switch-on
    and the joining of the third member still active (the tenant's creation if the trail does
    not show the switch). ``history=False``: a tick whose state no longer holds is no
    disagreement for ``journey_check``."""
    stored = Tenant.objects.filter(pk=tenant.pk).values_list("settings", flat=True).first()
    rules = TenantSettings.from_stored(stored)  # the row as saved, not a request's stale copy
    if not (rules.sso_only or rules.require_mfa):
        return None
    joined = list(
        User.objects.filter(is_active=True).order_by("date_joined").values_list("date_joined", flat=True)
    )
    if len(joined) < ENFORCED_MIN_MEMBERS:
        return None
    switched_on = Q(data__changes__require_mfa=True) | Q(data__changes__sso_only=True)
    rule_since: datetime | None = AuditEvent.objects.filter(
        switched_on, type=AuditEvent.Type.SECURITY_SETTINGS_CHANGED
    ).aggregate(last=Max("created_at"))["last"]
    return max(rule_since or tenant.created_at, joined[ENFORCED_MIN_MEMBERS - 1])


def _first_event_at(type_: str) -> datetime | None:
    first: datetime | None = AuditEvent.objects.filter(type=type_).aggregate(first=Min("created_at"))["first"]
    return first


def audit_log_exported_at(tenant: Tenant) -> datetime | None:
    """The audit log downloaded as CSV (the page's link or ``?format=csv``)."""
    return _first_event_at(AuditEvent.Type.AUDIT_EXPORTED)


def data_export_downloaded_at(tenant: Tenant) -> datetime | None:
    """A ready data export downloaded through its signed link."""
    return _first_event_at(AuditEvent.Type.EXPORT_DOWNLOADED)


# Which audit events can tick which steps: the step's own computation then decides, from the
# records (the event just written included), so the tick and the backfill agree.
_REACTIONS: dict[str, list[tuple[str, Callable[[Tenant], datetime | None]]]] = {
    AuditEvent.Type.LOGIN_SUCCEEDED: [
        (SECOND_MEMBER_SIGNED_IN, second_member_signed_in_at),
        (SIGN_IN_SECURED, sign_in_secured_at),
    ],
    AuditEvent.Type.MEMBER_ADDED: [
        (ADMIN_DELEGATED, admin_delegated_at),
        (SIGN_IN_ENFORCED, sign_in_enforced_at),
    ],
    AuditEvent.Type.MEMBER_ROLE_CHANGED: [(ADMIN_DELEGATED, admin_delegated_at)],
    AuditEvent.Type.MEMBER_REACTIVATED: [(SIGN_IN_ENFORCED, sign_in_enforced_at)],
    AuditEvent.Type.INVITATION_ACCEPTED: [(SIGN_IN_ENFORCED, sign_in_enforced_at)],
    AuditEvent.Type.MFA_ENROLLED: [(OWNER_SECOND_FACTOR, owner_second_factor_at)],
    AuditEvent.Type.SECURITY_SETTINGS_CHANGED: [
        (SIGN_IN_SECURED, sign_in_secured_at),
        (SIGN_IN_ENFORCED, sign_in_enforced_at),
    ],
    AuditEvent.Type.AUDIT_EXPORTED: [(AUDIT_LOG_EXPORTED, audit_log_exported_at)],
    AuditEvent.Type.EXPORT_DOWNLOADED: [(DATA_EXPORT_DOWNLOADED, data_export_downloaded_at)],
}


def journey_audit_react(event: AuditEvent) -> None:
    """Called by ``audit_record`` after each event, in its transaction. A step already known
    this process has seen done costs nothing; otherwise its computation runs (one query)."""
    reactions = _REACTIONS.get(event.type)
    if not reactions:
        return
    tenant = _current_tenant()
    if tenant is None:
        return
    for step, done_at in reactions:
        if journey_step_known_done(tenant=tenant, step=step):
            continue
        at = done_at(tenant)
        if at is not None:
            journey_step_report(tenant=tenant, step=step, at=at)


def register() -> None:
    for step in (
        JourneyStep(
            id=API_TOKEN_USED,
            level=1,
            title="Call the API with a token",
            help_url="/account/sessions/",
            done_at=api_token_used_at,
            order=30,
            history=False,
        ),
        JourneyStep(
            id=SECOND_MEMBER_SIGNED_IN,
            level=2,
            title="A second member signs in",
            help_url="/members/",
            done_at=second_member_signed_in_at,
            order=10,
        ),
        JourneyStep(
            id=ADMIN_DELEGATED,
            level=2,
            title="Make someone besides the owner an admin",
            help_url="/members/",
            done_at=admin_delegated_at,
            order=20,
        ),
        JourneyStep(
            id=OWNER_SECOND_FACTOR,
            level=3,
            title="Give the owner's account a second factor",
            help_url="/accounts/2fa/",
            done_at=owner_second_factor_at,
            order=10,
        ),
        JourneyStep(
            id=SIGN_IN_SECURED,
            level=3,
            title="Require two-factor, or sign in through your identity provider",
            help_url="/settings/sso/",
            done_at=sign_in_secured_at,
            order=20,
        ),
        JourneyStep(
            id=SIGN_IN_ENFORCED,
            level=6,
            title="SSO-only or required two-factor in force, with at least three members",
            help_url="/settings/sso/",
            done_at=sign_in_enforced_at,
            order=10,
            history=False,
        ),
        JourneyStep(
            id=AUDIT_LOG_EXPORTED,
            level=6,
            title="Export the audit log",
            help_url="/audit/",
            done_at=audit_log_exported_at,
            order=20,
        ),
        JourneyStep(
            id=DATA_EXPORT_DOWNLOADED,
            level=6,
            title="Download a data export",
            help_url="/settings/export/",
            done_at=data_export_downloaded_at,
            order=30,
        ),
    ):
        journey_step_register(step)
