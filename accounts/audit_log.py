"""Reads of the audit trail: the filters the API (``GET /api/v1/audit-events``) and the audit
log page share, so both accept and refuse exactly the same input."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

from django.db.models import Q, QuerySet

from accounts.emails import email_canonical
from accounts.models import AuditEvent
from leanvibe.errors import DomainError
from leanvibe.parsing import InvalidValue, bad_parameter, parse_id, parse_int, parse_moment, parse_text

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10**9
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


def _bad(name: str, problem: InvalidValue | str) -> DomainError:
    return bad_parameter(name, problem, code="invalid_filter")


def _parse(name: str, raw: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw)
    except InvalidValue as exc:
        raise _bad(name, exc) from None


def _parse_actor(raw: str) -> str:
    """A user id or an email address (also of an unknown user's failed sign-in)."""
    text = parse_text(raw, max_length=254)
    if parse_id(text) is None and "@" not in text:
        raise InvalidValue("Expected a user id or an email address.")
    return text


def audit_filters_parse(params: Any) -> AuditFilters:
    """Read filters from a QueryDict; 400 ``invalid_filter`` for anything malformed."""

    def get(name: str) -> str:
        value = params.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    type_ = get("type")
    if type_ and type_ not in AuditEvent.Type.values and type_ not in event_categories():
        raise _bad("type", "Unknown event type.")
    actor = _parse("actor", get("actor"), _parse_actor) if get("actor") else ""
    since = _parse("since", get("since"), parse_moment) if get("since") else None
    until = _parse("until", get("until"), partial(parse_moment, end_of_day=True)) if get("until") else None
    if since and until and since > until:
        raise _bad("since", "since must be before until.")
    limit, offset = get("limit"), get("offset")
    return AuditFilters(
        type=type_,
        actor=actor,
        since=since,
        until=until,
        limit=_parse("limit", limit, partial(parse_int, low=1, high=MAX_LIMIT)) if limit else DEFAULT_LIMIT,
        offset=_parse("offset", offset, partial(parse_int, low=0, high=MAX_OFFSET)) if offset else 0,
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
    actor_id = parse_id(filters.actor)
    if actor_id is not None:
        events = events.filter(actor_id=actor_id)
    elif filters.actor:
        email = email_canonical(filters.actor)  # the one form emails are stored in
        events = events.filter(Q(actor_email=email) | Q(actor__email=email))
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


# --- the audit log as CSV (the audit page's download, ``?format=csv``, the data export) -----------
CSV_COLUMNS = ("created_at", "type", "actor_email", "target_email", "ip_address", "user_agent", "data")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such cells
# get a leading apostrophe, which spreadsheets show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def audit_csv_row(event: AuditEvent) -> list[str]:
    actor_email = event.actor.email if event.actor is not None else event.actor_email
    target_email = event.target_user.email if event.target_user is not None else ""
    cells = [
        event.created_at.isoformat(),
        event.type,
        actor_email,
        target_email,
        event.ip_address or "",
        event.user_agent,
        json.dumps(event.data, sort_keys=True, ensure_ascii=False, default=str),
    ]
    return [csv_cell(cell) for cell in cells]


class _Echo:
    """A file-like object whose ``write`` returns the line (``csv.writer`` into a generator)."""

    def write(self, value: str) -> str:
        return value


def audit_csv_lines(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """The header, then one CSV line per event, read from the database in chunks (never the
    whole trail in memory)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=chunk_size):
        yield writer.writerow(audit_csv_row(event))


def audit_csv_filename(subdomain: str, day: date) -> str:
    return f"audit-log-{subdomain}-{day.isoformat()}.csv"
