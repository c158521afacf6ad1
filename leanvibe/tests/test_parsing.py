"""The strict parser every query parameter and path id goes through."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from leanvibe import parsing
from leanvibe.parsing import InvalidValue

# Superscript, Arabic-Indic, full-width digits, a Roman numeral: Unicode digits, not ASCII ones.
NOT_ASCII_DIGITS = ["²", "٣", "\uff13", "¹⁰", "Ⅻ"]
NOT_INTEGERS = ["", " 1", "1 ", "+1", "1_000", "1.0", "1e3", "0x10", "\x00", "1\x00", "1" * 5000]


@pytest.mark.parametrize("raw", NOT_ASCII_DIGITS + NOT_INTEGERS)
def test_int_takes_ascii_digits_only(raw):
    with pytest.raises(InvalidValue, match="whole number from 0 to 10"):
        parsing.parse_int(raw, low=0, high=10)


def test_int_bounds_and_sign():
    assert parsing.parse_int("0", low=0, high=10) == 0
    assert parsing.parse_int("10", low=0, high=10) == 10
    assert parsing.parse_int("-5", low=-10, high=10) == -5
    for raw in ("11", "-1", "99999999999999999999"):
        with pytest.raises(InvalidValue):
            parsing.parse_int(raw, low=0, high=10)


@pytest.mark.parametrize("raw", [*NOT_ASCII_DIGITS, *NOT_INTEGERS, "0", "-1", str(2**63), str(10**30)])
def test_an_id_that_cannot_exist_is_none(raw):
    assert parsing.parse_id(raw) is None


def test_ids():
    assert parsing.parse_id("1") == 1
    assert parsing.parse_id(str(2**63 - 1)) == 2**63 - 1
    assert parsing.parse_id(None) is None
    assert parsing.parse_id(7) is None  # only text from a URL


def test_uuids():
    value = uuid.uuid4()
    assert parsing.parse_uuid(str(value)) == value
    assert parsing.parse_uuid(value.hex) == value
    assert parsing.parse_uuid(value) == value
    for raw in ("", "²", "{" + str(value) + "}", f"urn:uuid:{value}", str(value) + "\x00", "x" * 5000, "1"):
        assert parsing.parse_uuid(raw) is None


@pytest.mark.parametrize(
    "raw",
    ["9999-12-31", "0001-01-01", "1899-12-31", "3000-01-01", "2025-02-30", "2025-1-5",
     "\uff12\uff10\uff12\uff15-01-01", "2025-W01-1", "20250131", "2025-01-31\x00", "yesterday", ""],
)  # fmt: skip
def test_dates_outside_the_calendar_or_not_iso_are_refused(raw):
    with pytest.raises(InvalidValue):
        parsing.parse_date(raw)


def test_dates():
    assert parsing.parse_date("2025-01-31") == date(2025, 1, 31)
    assert parsing.parse_date("1900-01-01") == parsing.EARLIEST
    assert parsing.parse_date("2999-12-31") == parsing.LATEST


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC: PostgreSQL refused it
        "0001-01-01T00:00:00+23:59",
        "2999-12-31T23:00:00-02:00",  # 3000-01-01 in UTC
        "2025-01-31T24:00:00",
        "2025-01-31T09:00:00+24:00",
        "2025-01-31T09:00:00.1234567",
        "2025-01-31T09",
        "2025-01-31T09:00:00Z\x00",
        "2025-01-31T\uff109:00:00",
    ],
)
def test_date_times_outside_the_calendar_or_not_iso_are_refused(raw):
    with pytest.raises(InvalidValue):
        parsing.parse_datetime(raw)


def test_date_times_are_timezone_aware():
    assert parsing.parse_datetime("2025-01-31T09:00:00Z") == datetime(2025, 1, 31, 9, tzinfo=UTC)
    moment = parsing.parse_datetime("2025-01-31T09:00+01:00")
    assert moment == datetime(2025, 1, 31, 8, tzinfo=UTC)
    naive = parsing.parse_datetime("2025-01-31 09:00:00.5")
    assert naive.tzinfo is not None and naive == datetime(2025, 1, 31, 9, 0, 0, 500_000, tzinfo=UTC)


def test_moment_takes_dates_and_date_times():
    assert parsing.parse_moment("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parsing.parse_moment("2025-01-31", end_of_day=True) == datetime(2025, 2, 1, tzinfo=UTC)
    # The last allowed day still has a next midnight.
    assert parsing.parse_moment("2999-12-31", end_of_day=True) - datetime(2999, 12, 31, tzinfo=UTC) == (
        timedelta(days=1)
    )
    assert parsing.parse_moment("2025-01-31T10:00Z") == datetime(2025, 1, 31, 10, tzinfo=UTC)
    for raw in ("9999-12-31", "9999-12-31T23:59:59-23:59", "yesterday", "²"):
        with pytest.raises(InvalidValue):
            parsing.parse_moment(raw, end_of_day=True)


def test_text_and_choices():
    assert parsing.parse_text("a@example.com", max_length=20) == "a@example.com"
    for raw in ("a\x00b", "line\nbreak", "x" * 21):
        with pytest.raises(InvalidValue):
            parsing.parse_text(raw, max_length=20)
    assert parsing.parse_choice("active", ["active", "archived"]) == "active"
    with pytest.raises(InvalidValue, match="active, archived"):
        parsing.parse_choice("\x00", ["active", "archived"])


def test_bad_parameter_is_the_api_400():
    error = parsing.bad_parameter("limit", InvalidValue("Expected a whole number from 1 to 200."))
    assert (error.code, error.status) == ("validation_error", 400)
    assert error.detail == "limit: Expected a whole number from 1 to 200."
    assert error.extra == {"fields": {"limit": ["Expected a whole number from 1 to 200."]}}
