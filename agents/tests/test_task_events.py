"""A task's events: JSON pages (``?after=``) and server-sent events with ``Last-Event-ID``.

The first tests run the pipeline in process with recorded model answers in the test's
transaction (the stream replays the rows). The last one serves the site with gunicorn's ASGI
worker on a loopback port against the committed test database, while the real Celery worker
(a thread of this process) runs the task: the stream follows the task live through its Redis
Stream until ``done``, and a reconnection with ``Last-Event-ID`` replays only what came after.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents.api import streams
from agents.models import TaskEvent
from agents.services import agent_create
from agents.tests.test_tasks_api import create, run_queued
from conftest import TenantHandle
from leanvibe.celery import app as celery_app
from leanvibe.serving import server_process
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 - the fixture

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
RECORDED = "agents.tests.recorded_answers.backend_for_agent"
BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


def sse_parse(text: str) -> list[dict[str, Any]]:
    """The messages of an event stream (comments and ``retry`` dropped)."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "id" in fields:
            messages.append(
                {"seq": int(fields["id"]), "type": fields["event"], "data": json.loads(fields["data"])}
            )
    return messages


def sse_text(response: Any) -> str:
    """The body of a streamed response whose content is an async iterator (the test client hands
    it over as is; WSGI servers consume it the same way, through ``async_to_sync``)."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


def sse_get(client: Any, path: str, owner: dict[str, str], last_event_id: str | None = None) -> Any:
    headers = {"HTTP_ACCEPT": "text/event-stream", "HTTP_AUTHORIZATION": f"Bearer {owner['token']}"}
    if last_event_id is not None:
        headers["HTTP_LAST_EVENT_ID"] = last_event_id
    return client.get(path, HTTP_HOST=owner["host"], **headers)


@pytest.fixture
def owner(api: Any, tenant_a: TenantHandle) -> dict[str, str]:
    return {"host": tenant_a.host, "token": tenant_a.login(api)}


@pytest.fixture
def completed(api: Any, owner: dict[str, str], tenant_a: TenantHandle) -> dict[str, Any]:
    """A task run to completion (recorded model answers)."""
    task = create(api, owner).body
    run_queued(tenant_a)
    with tenant_context(tenant_a.tenant):
        rows = list(TaskEvent.objects.filter(task_id=task["id"]).order_by("seq").values_list("seq", "type"))
    return {"task": task, "rows": rows, "path": f"/api/v1/tasks/{task['id']}/events"}


@needs_bwrap
@pytest.mark.django_db
def test_json_pages_follow_after(api, owner, completed, settings):
    rows, path = completed["rows"], completed["path"]
    assert rows[0] == (1, "status") and rows[-1][1] == "done"
    types = {t for _, t in rows}
    assert {"step", "progress", "tokens", "artifact", "done"} <= types
    page = api.get(path, **owner).body
    assert [(e["seq"], e["type"]) for e in page["events"]] == rows
    assert page["next"] == rows[-1][0] and page["done"] is True
    assert set(page["events"][0]) == {"seq", "type", "data", "ts"}
    middle = rows[len(rows) // 2][0]
    after = api.get(f"{path}?after={middle}", **owner).body
    assert [e["seq"] for e in after["events"]] == [s for s, _ in rows if s > middle]
    end = api.get(f"{path}?after={page['next']}", **owner).body
    assert end == {"events": [], "next": page["next"], "done": True}
    # ``after`` wins over Accept: a JSON page.
    paged = api.get(f"{path}?after=0", headers={"Accept": "text/event-stream"}, **owner)
    assert paged.body["next"] == page["next"]


@pytest.mark.django_db
def test_json_page_of_a_task_not_done(api, owner):
    task = create(api, owner).body
    page = api.get(f"/api/v1/tasks/{task['id']}/events", **owner).body
    assert [(e["seq"], e["type"], e["data"]) for e in page["events"]] == [(1, "status", {"status": "queued"})]
    assert page["next"] == 1 and page["done"] is False
    assert api.get(f"/api/v1/tasks/{task['id']}/events?after=1", **owner).body == {
        "events": [],
        "next": 1,
        "done": False,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-1", "x", "²", "1.5", str(2**40), ""])
def test_bad_after_and_last_event_id_are_400(api, owner, value):
    task = create(api, owner).body
    path = f"/api/v1/tasks/{task['id']}/events"
    response = api.get(f"{path}?after={value}", **owner)
    assert response.status_code == 400 and "after" in response.body["fields"]
    if value:
        sse = api.get(path, headers={"Accept": "text/event-stream", "Last-Event-ID": value}, **owner)
        assert sse.status_code == 400 and "Last-Event-ID" in sse.body["fields"]


@needs_bwrap
@pytest.mark.django_db
def test_event_stream_replays_and_honours_last_event_id(client, owner, completed):
    rows, path = completed["rows"], completed["path"]
    response = sse_get(client, path, owner)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    messages = sse_parse(sse_text(response))
    assert [(m["seq"], m["type"]) for m in messages] == rows
    assert messages[-1]["data"]["status"] == "completed"
    middle = rows[len(rows) // 2][0]
    resumed = sse_parse(sse_text(sse_get(client, path, owner, str(middle))))
    assert [(m["seq"], m["type"]) for m in resumed] == [r for r in rows if r[0] > middle]
    last = sse_parse(sse_text(sse_get(client, path, owner, str(rows[-1][0]))))
    assert last == []


# --- the live stream, through gunicorn's ASGI worker ---------------------------------------------


@pytest.fixture
def asgi_server() -> Iterator[int]:
    """gunicorn ``-k asgi`` serving ``leanvibe.asgi:application`` on a loopback port, against the
    test database and this run's cache prefix; stopped by its pid afterwards."""
    assert celery_app.conf.task_default_queue.startswith("lvtest-")
    database_url = (
        urlsplit(django_settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    )
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": django_settings.REDIS_URL,
        "CACHE_KEY_PREFIX": django_settings.CACHE_KEY_PREFIX,
        # The test run hashes passwords with MD5 (conftest): the server must read those hashes.
        "PASSWORD_HASHERS": ",".join(django_settings.PASSWORD_HASHERS),
        # Tasks created through the server go to this run's private queue (conftest), where the
        # test's worker consumes them, never to a real deployment's queue.
        "AGENTS_CELERY_QUEUE": celery_app.conf.task_default_queue,
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "leanvibe.asgi:application", "-k", "asgi"]
    command += ["--bind", "127.0.0.1:{port}", "--workers", "1", "--chdir", str(BASE_DIR)]
    with server_process(command, name="asgi", env=env) as port:
        yield port


def _call(port: int, method: str, path: str, host: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps(body) if body is not None else None
    conn.request(
        method, path, body=payload, headers={"Host": host, "Content-Type": "application/json", **headers}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def _stream(
    port: int, path: str, host: str, token: str, last_event_id: str | None = None
) -> tuple[str, float]:
    """The whole event stream (it ends after ``done``), and when its first message came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": host, "Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    chunks, first = [], 0.0
    while chunk := response.read1(65536):
        first = first or time.monotonic()
        chunks.append(chunk)
    conn.close()
    return b"".join(chunks).decode(), first


@needs_bwrap
@pytest.mark.integration
def test_the_asgi_server_streams_a_running_task_live(celery_worker, settings, asgi_server):  # noqa: F811
    """Recorded model answers, streamed over about three seconds by the real worker."""
    settings.AGENTS_BACKEND_FACTORY = RECORDED
    tenant = tenant_provision(
        organization_name="Streams Inc",
        billing_email="owner@streams.test",
        admin_email="owner@streams.test",
        admin_password="correct-horse-battery",
    ).tenant
    with tenant_context(tenant):
        agent_create(name="Coder", model="recorded")
    host = tenant.primary_domain
    status, login = _call(
        asgi_server,
        "POST",
        "/api/v1/auth/login",
        host,
        {"email": "owner@streams.test", "password": "correct-horse-battery"},
    )
    assert status == 200, login
    token = login["access_token"]
    status, task = _call(
        asgi_server,
        "POST",
        "/api/v1/tasks",
        host,
        {"title": "Add", "description": "Write add(a, b)."},
        Authorization=f"Bearer {token}",
    )
    assert status == 201, task
    path = f"/api/v1/tasks/{task['id']}/events"
    text, first = _stream(asgi_server, path, host, token)
    streamed_for = time.monotonic() - first
    messages = sse_parse(text)
    with tenant_context(tenant):
        rows = list(TaskEvent.objects.filter(task_id=task["id"]).order_by("seq").values_list("seq", "type"))
    # Every event once, in order, ending with done: replayed, then followed live.
    assert [(m["seq"], m["type"]) for m in messages] == rows
    assert messages[-1]["type"] == "done" and messages[-1]["data"]["status"] == "completed"
    assert any(m["type"] == "tokens" for m in messages)
    # They arrived live, over the seconds the recorded model took, not in one replay.
    assert streamed_for > 1.0

    middle = rows[len(rows) // 2][0]
    resumed, _ = _stream(asgi_server, path, host, token, last_event_id=str(middle))
    assert [(m["seq"], m["type"]) for m in sse_parse(resumed)] == [r for r in rows if r[0] > middle]

    status, _ = _call(
        asgi_server, "GET", path, host, Authorization="Bearer nonsense", Accept="text/event-stream"
    )
    assert status == 401


@pytest.mark.django_db
def test_a_quiet_stream_sends_keep_alives_and_ends_at_its_time_limit(api, owner, tenant_a, monkeypatch):
    """No event for a while: comments keep the connection open; the stream ends after
    ``STREAM_MAX_SECONDS`` and the client would resume with ``Last-Event-ID``."""
    monkeypatch.setattr(streams, "STREAM_MAX_SECONDS", 1.0)
    task = create(api, owner).body

    async def collect() -> str:
        parts = []
        iterator = streams.event_stream(
            schema_name=tenant_a.tenant.schema_name, task_id=uuid.UUID(task["id"]), keepalive=0.2
        )
        async for part in iterator:
            parts.append(part)
        return "".join(parts)

    text = async_to_sync(collect)()
    assert [(m["seq"], m["type"]) for m in sse_parse(text)] == [(1, "status")]
    assert text.startswith("retry: 2000\n")
    assert text.count(": keep-alive\n\n") >= 2
