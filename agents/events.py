"""A development task's events: a ``TaskEvent`` row each (the record, replayed to late
subscribers) and the same entry on the task's Redis Stream (the live feed of the SSE endpoint).

Stream key: ``<CACHE_KEY_PREFIX>:agents:<schema>:task:<task id>:events``, trimmed to about
``AGENTS_STREAM_MAXLEN`` entries; each entry has the fields ``seq``, ``type`` and ``data`` (JSON).
Redis being down loses the live copy only: the row is the truth.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents.models import DevelopmentTask, TaskEvent
from leanvibe import redis as lv_redis

logger = logging.getLogger(__name__)


def task_stream_key(*, schema_name: str, task_id: object) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:agents:{schema_name}:task:{task_id}:events"


def _insert_next(*, task: DevelopmentTask, type: str, data: dict[str, Any]) -> TaskEvent:
    """One statement (one round trip, its own commit outside a transaction): the row with the
    task's next ``seq``. A pipeline step writes a handful of events, each committed at once so
    that it can be read while the task runs: the ``SELECT MAX`` and the ``BEGIN``/``COMMIT`` of
    a separate transaction were three round trips more per event (``bench/agents.py``)."""
    table = connection.ops.quote_name(TaskEvent._meta.db_table)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (task_id, seq, type, data, ts) "  # noqa: S608 - the model's table
            f"SELECT %s, COALESCE(MAX(seq), 0) + 1, %s, %s::jsonb, %s FROM {table} WHERE task_id = %s "
            "RETURNING id, seq",
            [task.id, type, json.dumps(data), now, task.id],
        )
        row = cursor.fetchone()
    if row is None:  # an INSERT ... SELECT of an aggregate always makes one row
        raise RuntimeError(f"no event row was written for task {task.id}")
    return TaskEvent(id=row[0], task=task, seq=row[1], type=type, data=data, ts=now)


def task_event_append(*, task: DevelopmentTask, type: str, data: dict[str, Any] | None = None) -> TaskEvent:
    """Append the next event of ``task`` (in the connection's schema)."""
    payload = data or {}
    for _ in range(5):
        try:
            if connection.in_atomic_block:  # a savepoint keeps the caller's transaction usable
                with transaction.atomic():
                    event = _insert_next(task=task, type=type, data=payload)
            else:
                event = _insert_next(task=task, type=type, data=payload)
            break
        except IntegrityError:  # another process appended the same seq first
            continue
    else:
        raise RuntimeError(f"could not append an event to task {task.id}")
    seq = event.seq
    key = task_stream_key(schema_name=connection.schema_name, task_id=task.id)  # type: ignore[attr-defined]
    fields: dict[Any, Any] = {
        "seq": seq,
        "type": type,
        "data": json.dumps(payload),
    }

    def publish() -> None:
        try:
            lv_redis.client().xadd(key, fields, maxlen=settings.AGENTS_STREAM_MAXLEN, approximate=True)
        except redis.RedisError:
            logger.warning("task event %s of %s not published to Redis", seq, task.id, exc_info=True)

    transaction.on_commit(publish)
    return event


def task_stream_read(*, schema_name: str, task_id: object, after: str = "0-0") -> list[dict[str, Any]]:
    """The stream's entries after the stream id ``after`` (tests; the SSE view reads it too)."""
    key = task_stream_key(schema_name=schema_name, task_id=task_id)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = lv_redis.client().xrange(  # type: ignore[assignment]
        key, min=f"({after}" if after != "0-0" else "-", max="+"
    )
    out = []
    for stream_id, fields in entries:
        out.append(
            {
                "id": stream_id.decode(),
                "seq": int(fields[b"seq"]),
                "type": fields[b"type"].decode(),
                "data": json.loads(fields[b"data"]),
            }
        )
    return out
