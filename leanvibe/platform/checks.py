"""The platform's self-check (``manage.py check_platform``): a line per check, each passed,
failed or skipped with a sentence saying why.

The kernel's checks are here (database, Redis, migrations in every schema, Celery workers per
queue, beat, disk space); apps add theirs through the registry (billing: Stripe and its webhook
endpoint; agents: the sandbox and the inference backend), the same plug-in pattern as quotas and
provisioning steps, so this module imports no app.
"""

from __future__ import annotations

import enum
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from leanvibe import redis as lv_redis
from leanvibe.health import pending_migrations

#: Redis key beat's heartbeat task writes (``leanvibe.platform.tasks.platform_heartbeat``).
HEARTBEAT_KEY_SUFFIX = "platform:beat-heartbeat"
#: A heartbeat older than this says beat (or every worker of the default queue) is down.
HEARTBEAT_MAX_AGE = 180.0
#: Seconds ``celery inspect`` waits for workers to answer.
INSPECT_TIMEOUT = 2.0


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckSkipped(Exception):
    """Raised by a check that does not apply here (billing off, no inference server...)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    seconds: float


@dataclass(frozen=True)
class PlatformCheck:
    name: str
    #: Returns a one-line detail when it passes; raises (anything) when it fails, CheckSkipped to skip.
    run: Callable[[], str]
    order: int = 100


_registry: dict[str, PlatformCheck] = {}


def platform_check_register(check: PlatformCheck) -> None:
    _registry[check.name] = check


def platform_checks() -> list[PlatformCheck]:
    return sorted(_registry.values(), key=lambda check: (check.order, check.name))


def platform_check_run(check: PlatformCheck) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check.run()
        status = Status.OK
    except CheckSkipped as exc:
        detail, status = str(exc), Status.SKIPPED
    except Exception as exc:  # a check that raises has failed, whatever it raised
        first_line = (str(exc).strip().splitlines() or [""])[0]
        detail, status = f"{type(exc).__name__}: {first_line}".strip()[:500], Status.FAILED
    return CheckResult(check.name, status, detail, time.perf_counter() - started)


def heartbeat_key() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:{HEARTBEAT_KEY_SUFFIX}"


# --- the kernel's checks -------------------------------------------------------------------------
def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), pg_database_size(current_database())")
        version, size = cursor.fetchone()
    return f"PostgreSQL {version}, {size / 2**20:,.0f} MiB"


def check_redis() -> str:
    client = lv_redis.client()
    started = time.perf_counter()
    client.ping()
    latency = (time.perf_counter() - started) * 1000
    info = client.info("persistence")
    aof = "AOF on" if info.get("aof_enabled") else "AOF off (usage counts between flushes can be lost)"
    return f"PING {latency:.1f} ms, {aof}"


def check_migrations() -> str:
    pending = pending_migrations()
    if pending:
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        raise RuntimeError(f"unapplied migrations in {', '.join(pending[:10])}{more}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenants_tenant")
        (tenants,) = cursor.fetchone()
    return f"current in public, the template and {tenants} tenant schema(s)"


def expected_queues() -> list[str]:
    from leanvibe.celery import app

    queues = {app.conf.task_default_queue}
    for route in (app.conf.task_routes or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            queues.add(route["queue"])
    return sorted(queues)


def check_workers() -> str:
    from leanvibe.celery import app

    answers = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    consumers: dict[str, list[str]] = {}
    for worker, queues in answers.items():
        for queue in queues or []:
            consumers.setdefault(str(queue.get("name")), []).append(worker)
    missing = [queue for queue in expected_queues() if not consumers.get(queue)]
    if missing:
        raise RuntimeError(f"no worker consumes {', '.join(missing)} ({len(answers)} worker(s) answered)")
    return ", ".join(f"{queue}: {len(consumers[queue])} worker(s)" for queue in expected_queues())


def check_beat() -> str:
    raw = lv_redis.client().get(heartbeat_key())
    if raw is None:
        raise RuntimeError("no heartbeat from beat yet (beat or the default queue's workers are down)")
    age = time.time() - float(raw)
    if age > HEARTBEAT_MAX_AGE:
        raise RuntimeError(f"last heartbeat {age:.0f} s ago (more than {HEARTBEAT_MAX_AGE:.0f} s)")
    return f"last heartbeat {age:.0f} s ago"


def _data_dirs() -> list[Path]:
    paths = {Path(settings.BASE_DIR)}
    for name in ("LEANVIBE_DATA_DIR", "AGENTS_WORKSPACE_ROOT", "AGENTS_MODELS_DIR"):
        value = getattr(settings, name, None)
        if value:
            paths.add(Path(value))
    existing = set()
    for path in paths:
        while not path.exists() and path != path.parent:
            path = path.parent
        existing.add(path)
    return sorted(existing)


def check_disk() -> str:
    minimum = settings.PLATFORM_CHECK_MIN_FREE_BYTES
    lines, low = [], []
    seen_devices: set[int] = set()
    for path in _data_dirs():
        device = path.stat().st_dev
        if device in seen_devices:
            continue
        seen_devices.add(device)
        usage = shutil.disk_usage(path)
        lines.append(f"{path}: {usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.0f}")
        if usage.free < minimum:
            low.append(str(path))
    if low:
        raise RuntimeError(f"less than {minimum / 2**30:.1f} GiB free: {'; '.join(lines)}")
    return "; ".join(lines)


def check_backup_locks() -> str:
    """A whole-database ``pg_dump`` (``manage.py backup``, the nightly CronJob) can take its locks:
    the tables against the server's lock table (fails past 80 %, naming the setting to raise)."""
    from leanvibe.platform.backups import backup_lock_budget

    budget = backup_lock_budget()
    if budget.problem:
        raise RuntimeError(budget.problem)
    return (
        f"{budget.tables:,} tables to lock, lock table ~{budget.capacity:,} "
        f"({100 * budget.tables / budget.capacity:.0f} %)"
    )


def register_kernel_checks() -> None:
    for order, (name, run) in enumerate(
        [
            ("database", check_database),
            ("redis", check_redis),
            ("migrations", check_migrations),
            ("celery workers", check_workers),
            ("celery beat", check_beat),
            ("disk space", check_disk),
            ("backup locks", check_backup_locks),
        ]
    ):
        platform_check_register(PlatformCheck(name=name, run=run, order=order * 10))
