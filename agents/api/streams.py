"""Server-sent events of a development task, as an async iterator for ``StreamingHttpResponse``.

Replay first: the ``TaskEvent`` rows after the client's ``Last-Event-ID`` (the rows are the
truth). Then follow the task's Redis Stream with a blocking ``XREAD`` (``redis.asyncio``: no
thread waits), skipping entries already sent; an entry further ahead than the next seq (the
stream is trimmed, or Redis missed a publish) sends the rows in between first. Every
``KEEPALIVE_SECONDS`` without news a comment line keeps proxies from closing the connection, and
the rows are read again (Redis may be down: the stream then degrades to polling). The stream ends
after the ``done`` event, or after ``STREAM_MAX_SECONDS``.

Each message: ``id: <seq>``, ``event: <type>``, ``data: <json of the event's data>``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django_tenants.utils import schema_context

from agents.events import task_stream_key
from agents.models import TaskEvent

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
#: A stream ends after this long even without ``done`` (a task deleted meanwhile, a stuck run):
#: the client reconnects with ``Last-Event-ID`` and loses nothing.
STREAM_MAX_SECONDS = 3600.0
REPLAY_BATCH = 500


def sse_message(*, seq: int, type: str, data: Any) -> str:
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {seq}\nevent: {type}\ndata: {body}\n\n"


def _rows_after(schema_name: str, task_id: uuid.UUID, after: int) -> tuple[list[tuple[int, str, Any]], bool]:
    """The next rows after ``after``, and whether ``done`` is at or before ``after`` (a client
    resuming after the end)."""
    with schema_context(schema_name):
        events = TaskEvent.objects.filter(task_id=task_id)
        rows = list(
            events.filter(seq__gt=after).order_by("seq").values_list("seq", "type", "data")[:REPLAY_BATCH]
        )
        ended = not rows and events.filter(type="done", seq__lte=after).exists()
        return rows, ended


rows_after = sync_to_async(_rows_after, thread_sensitive=True)


class _Follower:
    def __init__(self, schema_name: str, task_id: uuid.UUID, after: int) -> None:
        self.schema_name = schema_name
        self.task_id = task_id
        self.last = after
        self.done = False

    def emit(self, seq: int, type: str, data: Any) -> str | None:
        if seq <= self.last or self.done:
            return None
        self.last = seq
        if type == "done":
            self.done = True
        return sse_message(seq=seq, type=type, data=data)

    async def replay(self) -> AsyncIterator[str]:
        """Rows after ``last`` until none are left (or the task is done)."""
        while not self.done:
            rows, ended = await rows_after(self.schema_name, self.task_id, self.last)
            if ended:
                self.done = True
                return
            for seq, type, data in rows:
                message = self.emit(seq, type, data)
                if message:
                    yield message
            if len(rows) < REPLAY_BATCH:
                return


async def event_stream(
    *, schema_name: str, task_id: uuid.UUID, after: int = 0, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[str]:
    follower = _Follower(schema_name, task_id, after)
    yield f"retry: 2000\n: task {task_id}\n\n"
    async for message in follower.replay():
        yield message
    if follower.done:
        return
    key = task_stream_key(schema_name=schema_name, task_id=task_id)
    client = aioredis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=keepalive + 10
    )
    stream_id = "0-0"
    deadline = time.monotonic() + STREAM_MAX_SECONDS
    try:
        while not follower.done and time.monotonic() < deadline:
            try:
                answer: list[Any] = await client.xread(  # type: ignore[assignment]
                    {key: stream_id}, count=REPLAY_BATCH, block=int(keepalive * 1000)
                )
            except redis.RedisError:
                logger.warning("task stream %s unreadable; polling the rows", key, exc_info=True)
                answer = []
                await asyncio.sleep(keepalive)
            if not answer:
                yield ": keep-alive\n\n"
                async for message in follower.replay():
                    yield message
                continue
            for entry_id, fields in answer[0][1]:
                stream_id = entry_id.decode()
                seq = int(fields[b"seq"])
                if seq > follower.last + 1:  # entries the stream no longer holds: from the rows
                    async for message in follower.replay():
                        yield message
                live = follower.emit(seq, fields[b"type"].decode(), json.loads(fields[b"data"]))
                if live:
                    yield live
                if follower.done:
                    break
    finally:
        await client.aclose()
