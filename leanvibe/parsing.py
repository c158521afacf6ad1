"""Strict parsing of the values a client puts in a URL: query parameters and path ids.

Python's own parsers are lenient in ways that reach a 500 or worse. ``str.isdigit()`` accepts
``"²"``, which ``int()`` then refuses; ``int()`` itself accepts ``"٣"``, ``" 3"``, ``"+3"`` and
``"3_000"``, and refuses a string of more than 4,300 digits with a ``ValueError``;
``date.fromisoformat`` accepts week dates; the last day of the calendar overflows when a day is
added to it; an offset can push a date-time past year 9999, which PostgreSQL then refuses; a NUL
character cannot be sent to PostgreSQL at all. Every value read from a URL goes through one of
the functions below: ASCII digits only, bounded ranges, ISO dates and date-times between
``EARLIEST`` and ``LATEST``, always timezone-aware.

The ``parse_*`` functions raise :class:`InvalidValue` whose message is a sentence for the client;
:func:`bad_parameter` turns it into the API's 400. Path ids use :func:`parse_id` and
:func:`parse_uuid`, which answer ``None`` for a value that cannot be an id (the caller's 404).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from leanvibe.errors import DomainError

BIGINT_MAX = 2**63 - 1
# Dates clients may ask about: far enough from both ends of Python's and PostgreSQL's calendars
# that adding a day or a time-zone offset can never overflow.
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)

_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.ASCII,
)
_UUID = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}", re.ASCII)


class InvalidValue(ValueError):
    """A value that does not parse; ``str(exc)`` says what was expected."""


def parse_int(raw: str, *, low: int, high: int) -> int:
    """A whole number written in ASCII digits (a leading ``-`` only if ``low`` is negative),
    from ``low`` to ``high``."""
    expected = InvalidValue(f"Expected a whole number from {low} to {high}.")
    if not isinstance(raw, str) or not _INTEGER.fullmatch(raw) or (raw.startswith("-") and low >= 0):
        raise expected
    value = int(raw)
    if not low <= value <= high:
        raise expected
    return value


def _within_calendar(day: date) -> None:
    if not EARLIEST <= day <= LATEST:
        raise InvalidValue(f"Expected a date from {EARLIEST.isoformat()} to {LATEST.isoformat()}.")


def parse_date(raw: str) -> date:
    """An ISO 8601 calendar date, ``YYYY-MM-DD``."""
    expected = InvalidValue("Expected an ISO 8601 date, e.g. 2025-01-31.")
    if not isinstance(raw, str) or not _DATE.fullmatch(raw):
        raise expected
    try:
        day = date.fromisoformat(raw)
    except ValueError:  # well-formed but impossible: 2025-02-30
        raise expected from None
    _within_calendar(day)
    return day


def parse_datetime(raw: str) -> datetime:
    """An ISO 8601 date-time (``2025-01-31T09:00``, seconds, fraction and offset or ``Z``
    optional), timezone-aware: without an offset it is read in the current time zone."""
    expected = InvalidValue("Expected an ISO 8601 date-time, e.g. 2025-01-31T09:00:00Z.")
    if not isinstance(raw, str) or not _DATETIME.fullmatch(raw):
        raise expected
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:  # impossible day or hour, offset of 24 hours or more
        raise expected from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    _within_calendar(value.date())
    _within_calendar(value.astimezone(UTC).date())
    return value


def parse_moment(raw: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time, timezone-aware. A bare date is its midnight in the current time
    zone, or with ``end_of_day`` the next midnight (so that ``< result`` includes the whole day)."""
    if isinstance(raw, str) and _DATE.fullmatch(raw):
        day = parse_date(raw)
        start = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
        return timezone.make_aware(start, timezone.get_current_timezone())
    try:
        return parse_datetime(raw)
    except InvalidValue as exc:
        if isinstance(raw, str) and _DATETIME.fullmatch(raw):
            raise  # the shape was right: say which part was not
        raise InvalidValue(
            "Expected an ISO 8601 date or date-time, e.g. 2025-01-31 or 2025-01-31T09:00:00Z."
        ) from exc


def parse_choice(raw: str, choices: Iterable[str]) -> str:
    """One of ``choices``, exactly."""
    allowed = list(choices)
    if raw not in allowed:
        raise InvalidValue(f"Expected one of: {', '.join(allowed)}.")
    return raw


def parse_text(raw: str, *, max_length: int) -> str:
    """Free text of at most ``max_length`` characters without control characters (NUL cannot
    even be sent to PostgreSQL)."""
    if not isinstance(raw, str) or len(raw) > max_length:
        raise InvalidValue(f"Expected at most {max_length} characters.")
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise InvalidValue("Control characters are not allowed.")
    return raw


def parse_id(raw: object) -> int | None:
    """A database id from a URL (a positive BIGINT in ASCII digits), or ``None`` for a value
    that cannot be one."""
    try:
        return parse_int(raw, low=1, high=BIGINT_MAX) if isinstance(raw, str) else None
    except InvalidValue:
        return None


def parse_uuid(raw: object) -> uuid.UUID | None:
    """A uuid from a URL (32 hex digits, hyphens optional), or ``None``."""
    if isinstance(raw, uuid.UUID):
        return raw
    if not isinstance(raw, str) or not _UUID.fullmatch(raw):
        return None
    return uuid.UUID(raw)


def bad_parameter(name: str, problem: InvalidValue | str, *, code: str = "validation_error") -> DomainError:
    """The API's 400 for a query parameter: ``{"error": code, "detail": "name: ...",
    "fields": {name: [...]}}``."""
    message = str(problem)
    return DomainError(code, f"{name}: {message}", status=400, fields={name: [message]})
