"""Usage metering: the hot path's throughput, and what counting adds to an API request.

(a) Counted events per second: ``tenants.usage.api_call_meter`` (what every authenticated API
request calls) called in a loop by 2 processes, one call per event, against the configured
Redis, for a fixed window. As deployed, with leases (``API_USAGE_METER_BATCH``, 256): a process
far from the tenant's limit counts up to 256 calls in memory per Redis round trip (period and
window counters, dirty-window set, gates), flushed within 0.1 s. The baseline in the same run:
leases off (``API_USAGE_METER_BATCH=0``), every call one round trip; and Redis PING in the same
loop, the ceiling of any one-round-trip design. An enterprise tenant, so nothing is refused; the
period counter is checked to hold every event at the end.

(b) The same authenticated request (``GET /api/v1/projects`` through ``django.test.Client``, in
process: tenant by host, token, the view's query) with ``API_USAGE_METERING`` on and off,
interleaved request by request in the same run; the difference of the medians is what counting
costs (the median of the on/off pairs' differences is printed beside it).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import uuid
from typing import Any

from bench import Samples, Verdict, fmt_seconds, print_table, progress, to_public

PROCESSES = 2
RATE_TARGET = 20_000  # counted events per second
OVERHEAD_TARGET = 0.0003  # seconds added to the p50 of an API request
PATH = "/api/v1/projects"


def _count_loop(tenant_id: str, seconds: float, start: Any, results: Any, ping: bool, batch: int) -> None:
    # A forked child: its own Redis connection (and script registration), not the parent's.
    from django.conf import settings

    from leanvibe import redis as lv_redis
    from tenants import usage
    from tenants.models import Tenant

    settings.API_USAGE_METER_BATCH = batch
    lv_redis.client.cache_clear()
    usage._meter_script.cache_clear()
    tenant = Tenant(id=uuid.UUID(tenant_id), plan="enterprise")
    usage.api_call_meter(tenant=tenant, path=PATH)  # connect and load the script: not timed
    client = lv_redis.client()
    start.wait()
    done = 0
    deadline = time.perf_counter() + seconds
    if ping:  # the floor of any design that costs one round trip: Redis PING, same loop
        while time.perf_counter() < deadline:
            client.ping()
            done += 1
    else:
        while time.perf_counter() < deadline:
            usage.api_call_meter(tenant=tenant, path=PATH)
            done += 1
    usage.meter_local_flush()  # the calls still on a lease (a child skips atexit)
    results.put(done)


def _throughput(seconds: float, *, ping: bool = False, batch: int = 256) -> tuple[float, int, int]:
    from leanvibe import redis as lv_redis
    from tenants.models import Tenant
    from tenants.periods import billing_period
    from tenants.usage import period_key

    tenant_id = str(uuid.uuid4())
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_count_loop, args=(tenant_id, seconds, start, results, ping, batch))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # every child connected
    began = time.perf_counter()
    start.set()
    counts = [results.get(timeout=seconds + 60) for _ in workers]
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    tenant = Tenant(id=uuid.UUID(tenant_id), plan="enterprise")
    stored = int(lv_redis.client().get(period_key(tenant_id, "api_calls", billing_period(tenant))) or 0)
    total = sum(counts)
    return (
        total / elapsed,
        total,
        stored - PROCESSES - (total if not ping else 0),
    )  # minus each child's untimed first call


def _overhead(requests: int) -> tuple[Samples, Samples, str]:
    from django.conf import settings
    from django.test import Client
    from django_tenants.utils import schema_context

    from accounts.models import Role, User
    from accounts.services import tokens_issue
    from tenants.models import Tenant
    from tenants.services import tenant_provision

    to_public()
    result = tenant_provision(
        organization_name="Bench Metering",
        billing_email="owner@metering.example.com",
        admin_email="owner@metering.example.com",
        plan="enterprise",
    )
    schema = result.tenant.schema_name
    with schema_context(schema):
        token = tokens_issue(user=User.objects.get(role=Role.OWNER)).access_token
    to_public()
    host = str(result.tenant.get_primary_domain().domain)
    on = Samples("counting on: GET /api/v1/projects, authenticated")
    off = Samples("counting off (API_USAGE_METERING=False), same request")
    client = Client()

    def one(samples: Samples | None) -> None:
        start = time.perf_counter()
        response = client.get(PATH, HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {token}")
        seconds = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"{PATH} answered {response.status_code}")
        if samples is not None:
            samples.add(seconds)

    try:
        for flag in (True, False) * 10:  # warm-up, both ways
            settings.API_USAGE_METERING = flag
            one(None)
        # Interleaved in pairs (on/off, then off/on): both settings see the same machine, which
        # other jobs load unevenly; the median of the pairs' differences is printed too.
        for index in range(requests):
            order = [(True, on), (False, off)] if index % 2 == 0 else [(False, off), (True, on)]
            for flag, samples in order:
                settings.API_USAGE_METERING = flag
                one(samples)
    finally:
        settings.API_USAGE_METERING = True
        to_public()
        Tenant.objects.get(schema_name=schema).delete(force_drop=True)
    return on, off, host


def run(*, seconds: float = 5.0, requests: int = 600) -> list[Verdict]:
    print(
        f"\n== metering: the counting hot path ({PROCESSES} processes, {seconds:g} s) and what it "
        f"adds to an API request ({requests} requests each way) ==",
        flush=True,
    )
    started = time.perf_counter()
    from django.conf import settings

    batch = settings.API_USAGE_METER_BATCH or 256
    progress(f"{PROCESSES} processes calling tenants.usage.api_call_meter in a loop, leases of {batch}")
    rate, total, missing = _throughput(seconds, batch=batch)
    if missing:
        raise RuntimeError(f"the period counter is {missing} off the {total} events counted")
    progress(f"{total} events in {seconds:g} s: {rate:,.0f}/s; the period counter holds all of them")
    progress("the same without leases (API_USAGE_METER_BATCH=0): a round trip per call")
    exact_rate, exact_total, missing = _throughput(seconds, batch=0)
    if missing:
        raise RuntimeError(f"the period counter is {missing} off the {exact_total} events counted")
    ping_rate, _, _ = _throughput(seconds, ping=True)
    progress(f"Redis PING in the same loop (the one-round-trip ceiling): {ping_rate:,.0f}/s")
    progress(f"{requests} requests with counting on and {requests} off, interleaved")
    on, off, _ = _overhead(requests)
    print_table(f"metering ({time.perf_counter() - started:.0f} s)", [on, off])
    added = on.p50 - off.p50
    ratio = on.p50 / off.p50
    paired = statistics.median(a - b for a, b in zip(on.values, off.values, strict=True))
    print()
    print(f"  counted events per second, {PROCESSES} processes, leases of {batch}: {rate:,.0f}/s")
    print(
        f"  baseline, a Redis round trip per call (leases off): {exact_rate:,.0f}/s; "
        f"ratio {rate / exact_rate:.1f}x"
    )
    print(f"  Redis PING per second, same processes and loop: {ping_rate:,.0f}/s (one-round-trip ceiling)")
    print(
        f"  API request p50: on {fmt_seconds(on.p50)}, off {fmt_seconds(off.p50)}: "
        f"+{added * 1000:.3f} ms, ratio {ratio:.3f}; median of the pairs' differences "
        f"{paired * 1000:+.3f} ms"
    )
    return [
        Verdict(
            f"metering: hot path >= {RATE_TARGET:,} counted events/s on {PROCESSES} processes",
            rate >= RATE_TARGET,
            f"{rate:,.0f}/s ({total} events; {rate / exact_rate:.1f}x a round trip per call, "
            f"{exact_rate:,.0f}/s; Redis PING {ping_rate:,.0f}/s)",
        ),
        Verdict(
            f"metering: counting adds <= {OVERHEAD_TARGET * 1000:g} ms to an API request's p50",
            added <= OVERHEAD_TARGET,
            f"+{added * 1000:.3f} ms (p50 {fmt_seconds(on.p50)} vs {fmt_seconds(off.p50)}, "
            f"ratio {ratio:.3f})",
        ),
    ]
