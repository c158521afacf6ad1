"""Reads of the audit trail: the filters the API (``GET /api/v1/audit-events``) and the audit
log page share, so both accept and refuse exactly the same input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.models import AuditEvent
from leanvibe.errors import DomainError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
FILTER_NAMES = ("type", "actor", "since", "until")


def event_categories() -> list[str]:
    """``login``, ``mfa``, ``session``…: a filter on one matches every type of that group."""
    return sorted({value.split(".")[0] for value in AuditEvent.Type.values if "." in value})


@dataclass(frozen=True)
class AuditFilters:
    type: str = ""
    actor: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    since_text: str = ""  # as given, for links to other pages
    until_text: str = ""

    def as_params(self, **override: Any) -> dict[str, str]:
        """The query string of these filters (for links to other pages)."""
        values = {
            "type": self.type,
            "actor": self.actor,
            "since": self.since_text,
            "until": self.until_text,
            "limit": str(self.limit) if self.limit != DEFAULT_LIMIT else "",
            "offset": str(self.offset) if self.offset else "",
        }
        values.update({k: str(v) for k, v in override.items()})
        return {k: v for k, v in values.items() if v and v != "0"}


def _bad(name: str, detail: str) -> DomainError:
    return DomainError("invalid_filter", f"{name}: {detail}", status=400, fields={name: [detail]})


def _parse_moment(name: str, raw: str, *, end_of_day: bool) -> datetime:
    """An ISO date (``2025-01-31``) or date-time; a bare date ``until`` includes that whole day."""
    value: datetime | None = None
    try:
        # A bare date first: parse_datetime would read it as that day's midnight.
        day: date | None = parse_date(raw) if len(raw) == 10 else None
        if day is not None:
            value = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
        else:
            value = parse_datetime(raw)
    except ValueError:  # well-formed but impossible (2025-02-30)
        value = None
    if value is None:
        raise _bad(name, "Expected an ISO 8601 date or date-time, e.g. 2025-01-31 or 2025-01-31T09:00:00Z.")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value


def _parse_int(name: str, raw: str, *, default: int, low: int, high: int) -> int:
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad(name, f"Expected a whole number from {low} to {high}.")
    return int(raw)


def audit_filters_parse(params: Any) -> AuditFilters:
    """Read filters from a QueryDict; 400 ``invalid_filter`` for anything malformed."""

    def get(name: str) -> str:
        value = params.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    type_ = get("type")
    if type_ and type_ not in AuditEvent.Type.values and type_ not in event_categories():
        raise _bad("type", "Unknown event type.")
    actor = get("actor")
    if actor and not (actor.isdigit() and 0 < int(actor) < 2**63) and ("@" not in actor or len(actor) > 254):
        raise _bad("actor", "Expected a user id or an email address.")
    since = _parse_moment("since", get("since"), end_of_day=False) if get("since") else None
    until = _parse_moment("until", get("until"), end_of_day=True) if get("until") else None
    if since and until and since > until:
        raise _bad("since", "since must be before until.")
    return AuditFilters(
        type=type_,
        actor=actor,
        since=since,
        until=until,
        limit=_parse_int("limit", get("limit"), default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        offset=_parse_int("offset", get("offset"), default=0, low=0, high=10**9),
        since_text=get("since"),
        until_text=get("until"),
    )


def audit_event_list(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Events of the current schema matching ``filters``, newest first (not yet paginated)."""
    events = AuditEvent.objects.select_related("actor", "target_user").order_by("-created_at", "-id")
    if filters.type in AuditEvent.Type.values:
        events = events.filter(type=filters.type)
    elif filters.type:
        events = events.filter(type__startswith=f"{filters.type}.")
    if filters.actor.isdigit():
        events = events.filter(actor_id=int(filters.actor))
    elif filters.actor:
        events = events.filter(Q(actor_email__iexact=filters.actor) | Q(actor__email__iexact=filters.actor))
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        # A bare date was turned into the next midnight: strictly before it.
        events = events.filter(created_at__lt=filters.until)
    return events


def audit_page(filters: AuditFilters) -> tuple[list[AuditEvent], int]:
    """One page of events and the total count."""
    events = audit_event_list(filters)
    return list(events[filters.offset : filters.offset + filters.limit]), events.count()
