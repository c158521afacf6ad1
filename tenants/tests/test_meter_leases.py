"""Leases of the API call meter (``tenants.usage._LocalMeter``): far from its limit a tenant's
calls are counted in memory and reach Redis within ``LEASE_SECONDS``; near the limit every call
is a round trip again; a gate closed in this process is seen at once, in another within a lease."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from billing.access_flags import access_key, access_publish
from leanvibe import redis as lv_redis
from tenants import usage
from tenants.periods import billing_period
from tenants.usage import FLUSH_SECONDS, LEASE_SECONDS, meter_lease_revoke, meter_local_flush, period_key

pytestmark = pytest.mark.django_db


def _commands(monkeypatch: Any) -> list[str]:
    """Redis commands sent by this thread (the requests'), not by the flusher thread."""
    client = lv_redis.client()
    sent: list[str] = []
    original = type(client).execute_command
    requests_thread = threading.current_thread()

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is client and threading.current_thread() is requests_thread:
            sent.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "execute_command", recording)
    return sent


def _stored(tenant: Any) -> int:
    value = lv_redis.client().get(period_key(tenant.id, "api_calls", billing_period(tenant)))
    return int(value or 0)


def test_calls_on_a_lease_skip_redis_and_all_arrive(api, tenant_a, monkeypatch):
    # A long lease, so that a slow machine serves all twenty on it.
    monkeypatch.setattr(usage, "LEASE_SECONDS", 60.0)
    ctx = {"host": tenant_a.host, "token": tenant_a.login(api)}
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # the round trip that grants a lease
    base = _stored(tenant_a.tenant)
    sent = _commands(monkeypatch)
    for _ in range(20):
        assert api.get("/api/v1/projects", **ctx).status_code == 200
    monkeypatch.undo()
    assert sent == []
    meter_local_flush()  # what the flusher thread has not sent yet
    assert _stored(tenant_a.tenant) == base + 20


def test_the_flusher_thread_sends_served_calls_within_a_lease(api, tenant_a):
    ctx = {"host": tenant_a.host, "token": tenant_a.login(api)}
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # the round trip that grants a lease
    base = _stored(tenant_a.tenant)
    for _ in range(10):
        assert api.get("/api/v1/projects", **ctx).status_code == 200
    deadline = time.monotonic() + 50 * FLUSH_SECONDS
    while _stored(tenant_a.tenant) < base + 10 and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 4)
    assert _stored(tenant_a.tenant) == base + 10  # without an explicit flush


def test_near_the_limit_every_call_is_a_round_trip(api, tenant_a, monkeypatch):
    ctx = {"host": tenant_a.host, "token": tenant_a.login(api)}
    lv_redis.client().set(period_key(tenant_a.id, "api_calls", billing_period(tenant_a.tenant)), 9_990)
    meter_lease_revoke(tenant_a.id)
    sent = _commands(monkeypatch)
    statuses = [api.get("/api/v1/projects", **ctx).status_code for _ in range(12)]
    monkeypatch.undo()
    # (10,000 - 9,990) // 16 = 0: no lease, so the starter limit is exact.
    assert statuses == [200] * 10 + [429] * 2
    assert sent.count("EVALSHA") == 12
    assert _stored(tenant_a.tenant) == 10_000


def test_a_gate_closed_here_is_seen_at_once_elsewhere_within_a_lease(api, tenant_a):
    ctx = {"host": tenant_a.host, "token": tenant_a.login(api)}
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # lease held
    access_publish(tenant_id=tenant_a.id, access="suspended")  # this process: lease revoked
    refused = api.get("/api/v1/projects", **ctx)
    assert (refused.status_code, refused.body["error"]) == (402, "payment_required")

    access_publish(tenant_id=tenant_a.id, access="ok")
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # a new lease
    # Another process closes the gate (its flag written straight to Redis): this process may
    # serve calls on its lease for at most LEASE_SECONDS, then reads the flag again.
    lv_redis.client().set(access_key(tenant_a.id), "suspended")
    time.sleep(LEASE_SECONDS * 1.5)
    refused = api.get("/api/v1/projects", **ctx)
    assert (refused.status_code, refused.body["error"]) == (402, "payment_required")
