"""The state of the local Stripe: objects by id, events, meter events, idempotent answers.

Every object is a deep copy of Stripe's own example (``fixtures3.json``) with its fields set,
so it has the exact shape of the real API. Keys starting with ``_`` are private bookkeeping
(order of creation, a test card's behaviour, retry schedule) and never leave the server.
The state is one JSON-able dict so it can be saved to a file and loaded at the next start.
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import json
import os
import secrets
import string
import tempfile
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

_FIXTURES_PATH = Path(__file__).with_name("fixtures3.json")
_FIXTURES: dict[str, Obj] = json.loads(_FIXTURES_PATH.read_text())["resources"]
_ALPHABET = string.ascii_letters + string.digits

API_VERSION = "2026-08-26.dahlia"


def example(kind: str) -> Obj:
    """A fresh deep copy of Stripe's example object of this kind."""
    return copy.deepcopy(_FIXTURES[kind])


def fixture_kinds() -> list[str]:
    return list(_FIXTURES)


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public(value: Any) -> Any:
    """A deep copy without the private ``_`` keys."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def add_interval(ts: int, interval: str, count: int = 1, *, anchor_day: int | None = None) -> int:
    """``ts`` moved by ``count`` intervals, keeping the anchor's day of month as Stripe does."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    if interval == "day":
        return ts + 86400 * count
    if interval == "week":
        return ts + 7 * 86400 * count
    months = count if interval == "month" else 12 * count
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(anchor_day or moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def empty_state() -> Obj:
    return {"objects": {}, "seq": 0, "idempotency": {}, "meter_events": []}


def load_state(path: Path | None) -> Obj:
    if path is None or not path.exists():
        return empty_state()
    data = json.loads(path.read_text())
    state = empty_state()
    state.update(data)
    return state


def save_state(path: Path, state: Obj) -> None:
    """Write to a temporary file then replace, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
