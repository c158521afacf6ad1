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
from django.db.models import Max

from agents.models import DevelopmentTask, TaskEvent
from leanvibe import redis as lv_redis

logger = logging.getLogger(__name__)


def task_stream_key(*, schema_name: str, task_id: object) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:agents:{schema_name}:task:{task_id}:events"


def task_event_append(*, task: DevelopmentTask, type: str, data: dict[str, Any] | None = None) -> TaskEvent:
    """Append the next event of ``task`` (in the connection's schema)."""
    payload = data or {}
    for _ in range(5):
        seq = (TaskEvent.objects.filter(task=task).aggregate(m=Max("seq"))["m"] or 0) + 1
        try:
            with transaction.atomic():
                event = TaskEvent.objects.create(task=task, seq=seq, type=type, data=payload)
            break
        except IntegrityError:  # another process appended the same seq first
            continue
    else:
        raise RuntimeError(f"could not append an event to task {task.id}")
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
