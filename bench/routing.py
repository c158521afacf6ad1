"""Routing benchmark: ``GET /api/v1/projects`` latency with few tenants and with many.

Two databases are prepared the same way (migrated, then the same ``base_tenants`` provisioned
through ``tenant_provision``, so the same hosts exist in both); the large one then gets more real
tenants until ``tenants`` exist. Requests alternate between the two (small, large, large, small,
...), always to the base tenants in turn, so both medians see the same machine at the same
moments and the only difference left is how many tenants exist. The target is
p50(large) / p50(small) <= 1.15. A second run rotates the large side over every one of its
tenants (each warmed once first) to show the cost of many *active* tenants (context only).

Two ways to send the requests, see bench/README.md: over HTTP to one gunicorn per database (one
sync worker, as ``make run`` serves; timed here from connect to last byte), and through
``django.test.Client`` in one process per database (the whole middleware and view stack, no
socket; timed inside that process).
"""

from __future__ import annotations

import http.client
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench import Databases, Samples, Verdict, fmt_seconds, print_table, progress, progress_counter, to_public
from bench import gunicorn as serve

RATIO_TARGET = 1.15
PATH = "/api/v1/projects"
OWNER_PASSWORD = "bench-Correct-Horse-42"  # noqa: S105 - a throwaway bench tenant


@dataclass(frozen=True)
class Target:
    host: str
    token: str


# (status, seconds, whether the body lists the Welcome project)
Reply = tuple[int, float, bool]
Send = Callable[[Target], Reply]


# --- work done in child processes, each connected to one routing database ---------------------


def _worker_init(database_url: str, queue: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from leanvibe.celery import app as celery_app

    celery_app.conf.task_default_queue = queue  # the welcome emails etc. go nowhere


def _migrate() -> None:
    import io

    from django.core.management import call_command

    call_command("platform_migrate", no_pool=True, verbosity=0, stdout=io.StringIO())


def _provision(index: int) -> str:
    """One real tenant through the real service (clone of the template, owner hashed by default)."""

    from tenants.services import tenant_provision

    to_public()
    email = f"owner{index}@route.example.com"
    result = tenant_provision(
        organization_name=f"Route Org {index:04d}",
        billing_email=email,
        admin_email=email,
        admin_password=OWNER_PASSWORD,
    )
    return result.tenant.schema_name


def _refill_pool(tenants_wanted: int, stop_file: str) -> int:
    """Keep the schema pool stocked (tenants.schemas.schema_pool_refill, the Celery task's code)
    while other processes claim its clones by provisioning, until ``tenants_wanted`` exist or
    the parent creates ``stop_file`` (provisioning ended, or failed)."""
    from tenants.models import Tenant
    from tenants.schemas import schema_pool_refill

    made = 0
    while Tenant.objects.count() < tenants_wanted and not os.path.exists(stop_file):
        step = schema_pool_refill(size=4)
        made += step
        if step == 0:
            time.sleep(0.02)
    return made


def _drain_pool() -> int:
    """Drop the clones nobody claimed, so only tenant schemas (and the template) remain."""
    from django.db import transaction

    from tenants.models import PooledSchema
    from tenants.schemas import schema_drop

    to_public()
    dropped = 0
    for entry in PooledSchema.objects.all():
        with transaction.atomic():
            schema_drop(entry.schema_name)
            entry.delete()
        dropped += 1
    return dropped


def _count_and_analyze() -> int:
    """Fresh planner statistics for the tables every request reads (as autovacuum would give)."""
    from django.db import connection

    from tenants.models import Tenant

    to_public()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tenants_tenant, tenants_domain")
    return Tenant.objects.count()


def _mint_tokens(schemas: list[str]) -> list[Target]:
    """Each tenant's host and a fresh access token for its owner (accounts.services.tokens_issue)."""
    from django_tenants.utils import schema_context

    from accounts.models import Role, User
    from accounts.services import tokens_issue
    from tenants.models import Domain

    to_public()
    hosts = dict(
        Domain.objects.filter(tenant__schema_name__in=schemas, is_primary=True).values_list(
            "tenant__schema_name", "domain"
        )
    )
    targets = []
    for schema in schemas:
        with schema_context(schema):
            owner = User.objects.get(role=Role.OWNER)
            targets.append(Target(hosts[schema], tokens_issue(user=owner).access_token))
    to_public()
    return targets


_client: Any = None


def _request_in_process(target: Target) -> Reply:
    from django.test import Client

    global _client
    if _client is None:
        _client = Client()
    start = time.perf_counter()
    response = _client.get(PATH, HTTP_HOST=target.host, HTTP_AUTHORIZATION=f"Bearer {target.token}")
    seconds = time.perf_counter() - start
    return response.status_code, seconds, b'"Welcome"' in response.content


# --- one routing database ---------------------------------------------------------------------


class RoutingDatabase:
    def __init__(self, databases: Databases, name: str, queue: str, workers: int) -> None:
        self.name = name
        self.url = databases.create(name)
        self.queue = queue
        self.workers = workers
        self.schemas: list[str] = []
        self._control: ProcessPoolExecutor | None = None

    @property
    def control(self) -> ProcessPoolExecutor:
        """One long-lived process for this database's small jobs (migrate, count, tokens)."""
        if self._control is None:
            self._control = self._pool(1)
        return self._control

    def close(self) -> None:
        if self._control is not None:
            self._control.shutdown()
            self._control = None

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.url, self.queue),
        )

    def migrate(self) -> None:
        self.control.submit(_migrate).result()

    def provision(self, count: int, label: str) -> None:
        """``count`` tenants through tenant_provision, in ``workers`` processes, while one more
        process refills the schema pool: clones (PostgreSQL's work; django-tenants' clone_schema
        serialises them database-wide anyway) overlap with password hashing (Python's)."""
        first = len(self.schemas) + 1
        report = progress_counter(f"{label}: tenants provisioned", count)
        with tempfile.TemporaryDirectory(prefix="bench-refill-") as tmp:
            stop_file = Path(tmp) / "stop"
            refill = self.control.submit(_refill_pool, first - 1 + count, str(stop_file))
            pool = self._pool(self.workers)
            try:
                for schema in pool.map(_provision, range(first, first + count), chunksize=1):
                    self.schemas.append(schema)
                    report(len(self.schemas) - first + 1)
            finally:
                # On Ctrl-C or a failure, drop the queued provisionings instead of running them.
                pool.shutdown(wait=True, cancel_futures=True)
                stop_file.touch()
        clones = refill.result()
        unclaimed = self.control.submit(_drain_pool).result()
        progress(f"{label}: pool made {clones} clones, {unclaimed} unclaimed (dropped)")
        total = self.control.submit(_count_and_analyze).result()
        if total != len(self.schemas):
            raise RuntimeError(f"{self.name}: expected {len(self.schemas)} tenants, found {total}")

    def targets(self, schemas: list[str]) -> list[Target]:
        return self.control.submit(_mint_tokens, schemas).result()

    @contextmanager
    def in_process(self) -> Iterator[Send]:
        """One long-lived process serving requests through django.test.Client."""
        with self._pool(1) as pool:
            yield _executor_send(pool)

    @contextmanager
    def gunicorn(self) -> Iterator[Send]:
        """gunicorn with one sync worker on a free localhost port."""
        with serve(database_url=self.url, workers=1) as port:
            yield _http_send(port)


def _executor_send(pool: Executor) -> Send:
    def send(target: Target) -> Reply:
        return pool.submit(_request_in_process, target).result()

    return send


def _http_send(port: int) -> Send:
    def send(target: Target) -> Reply:
        headers = {"Host": target.host, "Authorization": f"Bearer {target.token}"}
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", PATH, headers=headers)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        return response.status, time.perf_counter() - start, b'"Welcome"' in body

    return send


# --- measuring --------------------------------------------------------------------------------


def _warm(send: Send, targets: list[Target], count: int) -> None:
    for index in range(max(count, len(targets))):
        status, _, welcome = send(targets[index % len(targets)])
        if status != 200 or not welcome:
            raise RuntimeError(f"warm-up request failed with {status}")


def _interleaved(
    small: tuple[Send, list[Target], Samples],
    large: tuple[Send, list[Target], Samples],
    *,
    warmup: int,
    requests: int,
) -> None:
    """Requests alternate between the databases, in ABBA order so neither always goes first."""
    for send, targets, _ in (small, large):
        _warm(send, targets, warmup)
    for index in range(requests):
        pair = (small, large) if index % 2 == 0 else (large, small)
        for send, targets, samples in pair:
            status, seconds, _ = send(targets[index % len(targets)])
            if status != 200:
                raise RuntimeError(f"request failed with {status}")
            samples.add(seconds)


def run(
    *,
    databases: Databases,
    queue: str,
    base_tenants: int,
    tenants: int,
    requests: int,
    warmup: int,
    server: str,
) -> list[Verdict]:
    modes = ["http", "inprocess"] if server == "both" else [server]
    workers = max(1, min(3, (os.cpu_count() or 2) - 1))  # plus one process refilling the pool
    print(
        f"\n== routing: GET {PATH} with {base_tenants} tenants vs {tenants} "
        f"({requests} timed requests each, {' and '.join(modes)}) ==",
        flush=True,
    )
    started = time.perf_counter()
    small = RoutingDatabase(databases, f"{databases.prefix}_{base_tenants}", queue, workers)
    large = RoutingDatabase(databases, f"{databases.prefix}_{tenants}", queue, workers)
    try:
        return _run(
            small,
            large,
            base_tenants=base_tenants,
            tenants=tenants,
            requests=requests,
            warmup=warmup,
            modes=modes,
            workers=workers,
            started=started,
        )
    finally:
        small.close()
        large.close()


def _run(
    small: RoutingDatabase,
    large: RoutingDatabase,
    *,
    base_tenants: int,
    tenants: int,
    requests: int,
    warmup: int,
    modes: list[str],
    workers: int,
    started: float,
) -> list[Verdict]:
    for db in (small, large):
        progress(f"{db.name}: migrating")
        db.migrate()
        db.provision(base_tenants, db.name)
    progress(
        f"{large.name}: {tenants - base_tenants} more tenants ({workers} provisioning process(es) "
        "and one refilling the schema pool; real clones, this takes minutes)"
    )
    t0 = time.perf_counter()
    large.provision(tenants - base_tenants, large.name)
    progress(f"{large.name}: {tenants} tenants exist ({time.perf_counter() - t0:.0f} s)")
    progress("minting an access token per tenant")
    small_targets = small.targets(small.schemas)
    large_targets = large.targets(large.schemas)
    large_base = large_targets[:base_tenants]
    if [t.host for t in small_targets] != [t.host for t in large_base]:
        raise RuntimeError("the base tenants of the two databases differ")

    rows: list[Samples] = []
    verdicts: list[Verdict] = []
    ratios: list[str] = []
    for mode in modes:
        progress(f"timing {mode}: {base_tenants} base tenants in turn, alternating databases")
        a = Samples(f"{mode:<9} {base_tenants:>4} tenants exist, {base_tenants} in turn")
        b = Samples(f"{mode:<9} {tenants:>4} tenants exist, {base_tenants} in turn")
        a2 = Samples(f"{mode:<9} {base_tenants:>4} tenants exist, {base_tenants} in turn (run 2)")
        c = Samples(f"{mode:<9} {tenants:>4} tenants exist, all {tenants} in turn")
        c.note = "context: every tenant warmed once first; shows the cost of many active tenants"
        with ExitStack() as stack:
            opener = (lambda db: db.gunicorn()) if mode == "http" else (lambda db: db.in_process())
            send_small = stack.enter_context(opener(small))
            send_large = stack.enter_context(opener(large))
            _interleaved(
                (send_small, small_targets, a), (send_large, large_base, b), warmup=warmup, requests=requests
            )
            progress(f"timing {mode}: all {tenants} tenants in turn on the large side")
            _interleaved(
                (send_small, small_targets, a2),
                (send_large, large_targets, c),
                warmup=warmup,
                requests=requests,
            )
        rows += [a, b, a2, c]
        ratio = b.p50 / a.p50
        ratios.append(
            f"    {mode:<9} same {base_tenants} tenants: {ratio:.3f}    all {tenants} in turn: "
            f"{c.p50 / a2.p50:.3f} (context)"
        )
        verdicts.append(
            Verdict(
                f"routing ({mode}): p50({tenants} tenants) / p50({base_tenants}) <= {RATIO_TARGET}",
                ratio <= RATIO_TARGET,
                f"{ratio:.3f} ({fmt_seconds(b.p50)} / {fmt_seconds(a.p50)})",
            )
        )

    print_table(f"routing ({time.perf_counter() - started:.0f} s)", rows)
    print()
    print(f"  ratios p50({tenants}) / p50({base_tenants}), requests interleaved in this run:")
    for line in ratios:
        print(line)
    return verdicts
