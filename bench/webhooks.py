"""Stripe webhooks end to end: signed events POSTed to ``/stripe/webhook/`` and processed to
completion, with exact duplicates and out-of-order events mixed in.

Setup (not timed): a local Stripe (``billing.stripe_local``, in this process, on 127.0.0.1) with
the catalogue; tenants made by ``tenant_provision``, each with its customer and trial
(``services.customer_and_trial_create``, what the provisioning task runs); then each
subscription lives at that Stripe: paid (``trial_end=now``), a plan change charged to a card
that fails (``invoice.payment_failed``, ``past_due``), the failed invoice paid with a good card,
then plan changes charged at once, round robin over the tenants, until there are enough events.
The events delivered are Stripe's own (``customer.subscription.created/updated``,
``invoice.paid``, ``invoice.payment_failed``): they name objects that exist, which processing
re-reads. Our endpoint is registered with ``billing_webhook_setup`` (the local Stripe's own
delivery is switched off: the bench delivers). The tenants' accounts are left as the trial
made them, so only processing can bring them up to date.

Timed: the events in creation order, some moved up to a few places later (out of order),
plus exact duplicates (same body; signed again at sending, as Stripe signs each attempt),
each inserted after its original, some soon after (in flight together) and some long after.
``CLIENTS`` threads POST them, one connection each, to gunicorn (``WEB_WORKERS`` sync workers,
as ``make run`` serves) on the public host; the view stores and verifies the trigger and
queues ``billing.tasks.webhook_trigger_process`` after commit; a real Celery worker subprocess
(prefork, ``CELERY_CONCURRENCY``, as ``make run`` starts it) consumes the bench's private queue
and runs dj-stripe's processing and our handlers, which re-read objects from the local Stripe.
The clock stops when the database says every accepted trigger is processed.

Baseline, same run, same server, clients and deliveries: every POST signed with a wrong secret.
The view does all its work up to and including the signature check (trigger stored, checked,
saved ``valid=False``) and answers 400; nothing is queued. That rate is the endpoint's ingress
ceiling on this machine: end to end can only approach it, and the ratio says how much of the
ingress rate survives processing.

Checks at the end: every accepted trigger processed, none failed; one dj-stripe ``Event`` per
unique event id (created, with the handlers, in one transaction: a duplicate finds it and does
nothing), and every duplicate's trigger points at it; every tenant's account equal to what
Stripe says now (status, plan, interval, period end, card, no dunning once active) and its
tenant's plan and Redis access flag following it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue as queue_module
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BASE_DIR, Samples, Verdict, gunicorn, print_table, progress, to_public

RATE_TARGET = 100.0  # events (deliveries, duplicates included) per second, end to end
CLIENTS = 4  # concurrent deliveries, as Stripe sends in parallel
WEB_WORKERS = 2  # gunicorn sync workers (make run)
CELERY_CONCURRENCY = 2  # prefork processes (make run)
API_KEY = "sk_test_LeanVibeBench0123456789abcdef"
WRONG_SECRET = "whsec_bench_not_the_endpoints_secret"  # noqa: S105 - the baseline's forged signature
EVENT_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "invoice.paid",
    "invoice.payment_failed",
)
SEED = 20261130


@dataclass(frozen=True)
class Delivery:
    event_id: str
    body: str
    duplicate: bool


# --- setup: tenants and their Stripe lives -----------------------------------------------------
def _price(plan: str) -> str:
    from billing import services
    from tenants.plans import Interval, spec_for

    return str(services.price_for(spec_for(plan).price_lookup_key(Interval.MONTH))["id"])


def _licensed_item(subscription_id: str) -> str:
    import stripe

    from billing.stripe_objects import as_dict, licensed_items

    sub = as_dict(stripe.Subscription.retrieve(subscription_id, expand=["items.data.price"]))
    return str(licensed_items(sub)[0]["id"])


def _relevant(server: Any) -> list[dict[str, Any]]:
    return [e for e in server.events() if e["type"] in EVENT_TYPES]


def _tenants_with_histories(server: Any, tenants: int, events: int) -> list[dict[str, str]]:
    """``tenants`` tenants with trials, then enough life at Stripe for ``events`` events."""
    import stripe

    from billing import services
    from billing.models import BillingAccount
    from tenants.services import tenant_provision

    to_public()
    made = []
    started = time.perf_counter()
    for index in range(tenants):
        result = tenant_provision(
            organization_name=f"Bench Webhooks {index:03d}",
            billing_email=f"billing{index}@webhooks.example.com",
            admin_email=f"owner{index}@webhooks.example.com",
            plan="professional",
        )
        services.customer_and_trial_create(tenant_id=result.tenant.id)
        account = BillingAccount.objects.get(tenant=result.tenant)
        if index == 0 or (index + 1) % 10 == 0:
            progress(f"tenant {index + 1}/{tenants} ({time.perf_counter() - started:.1f} s)")
        made.append(
            {
                "tenant_id": str(result.tenant.id),
                "customer": account.stripe_customer_id,
                "subscription": account.stripe_subscription_id,
            }
        )
    progress(f"{tenants} tenants provisioned, each with its customer and trial")
    prices = {plan: _price(plan) for plan in ("professional", "enterprise")}
    for tenant in made:
        customer, sub_id = tenant["customer"], tenant["subscription"]
        visa = stripe.PaymentMethod.attach("pm_card_visa", customer=customer).id
        stripe.Subscription.modify(
            sub_id, trial_end="now", default_payment_method=visa, payment_behavior="error_if_incomplete"
        )
        bad = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer).id
        stripe.Subscription.modify(
            sub_id,
            items=[{"id": _licensed_item(sub_id), "price": prices["enterprise"]}],
            default_payment_method=bad,
            proration_behavior="always_invoice",
        )
        failed = [
            e
            for e in server.events("invoice.payment_failed")
            if e["data"]["object"].get("customer") == customer
        ]
        if not failed:
            raise RuntimeError(f"the local Stripe made no failed payment for {customer}")
        stripe.Invoice.pay(failed[-1]["data"]["object"]["id"], payment_method=visa)
        stripe.Subscription.modify(sub_id, default_payment_method=visa)
        tenant["plan"] = "enterprise"
    rounds = 0
    while len(_relevant(server)) < events:
        for tenant in made:
            plan = "professional" if tenant["plan"] == "enterprise" else "enterprise"
            stripe.Subscription.modify(
                tenant["subscription"],
                items=[{"id": _licensed_item(tenant["subscription"]), "price": prices[plan]}],
                proration_behavior="always_invoice",
            )
            tenant["plan"] = plan
            if len(_relevant(server)) >= events:
                break
        rounds += 1
    progress(
        f"their lives at Stripe: paid, a failed payment, recovered, then {rounds} round(s) of plan "
        f"changes; {len(_relevant(server))} events of the four types"
    )
    return made


def _deliveries(events: list[dict[str, Any]], duplicate_share: float) -> tuple[list[Delivery], int]:
    """Creation order with some events moved a few places later, and exact duplicates inserted
    after their originals; returns the deliveries and how many arrive before an older event of
    their own customer (out of order)."""
    rng = random.Random(SEED)
    bodies = [(str(e["id"]), json.dumps(e)) for e in events]
    order = list(range(len(bodies)))
    for position in range(len(order) - 1):
        if rng.random() < 0.15:  # moved up to 5 places later
            target = min(len(order) - 1, position + rng.randint(1, 5))
            order[position], order[target] = order[target], order[position]
    keyed: list[tuple[float, Delivery]] = [
        (float(slot), Delivery(*bodies[index], duplicate=False)) for slot, index in enumerate(order)
    ]
    copies = round(len(bodies) * duplicate_share / (1 - duplicate_share))
    for slot in rng.sample(range(len(order)), min(copies, len(order))):
        # Half soon after the original (processed concurrently), half anywhere later.
        later = rng.randint(1, 8) if rng.random() < 0.5 else rng.randint(1, max(1, len(order)))
        keyed.append((slot + later + rng.random(), Delivery(*bodies[order[slot]], duplicate=True)))
    keyed.sort(key=lambda pair: pair[0])
    deliveries = [delivery for _, delivery in keyed]
    created = {str(e["id"]): (int(e["created"]), index) for index, e in enumerate(events)}
    customer = {str(e["id"]): str(e["data"]["object"].get("customer")) for e in events}
    newest: dict[str, tuple[int, int]] = {}
    out_of_order = 0
    for delivery in deliveries:
        if delivery.duplicate:
            continue
        key, seen = customer[delivery.event_id], created[delivery.event_id]
        if key in newest and newest[key] > seen:
            out_of_order += 1
        newest[key] = max(newest.get(key, seen), seen)
    return deliveries, out_of_order


# --- the processes: gunicorn (bench.__init__) and a Celery worker ------------------------------
@contextmanager
def _celery_worker(env: dict[str, str], queue: str) -> Iterator[int]:
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-celery-", suffix=".log", delete=False)  # noqa: SIM115
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "leanvibe",
        "worker",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@%h",
        "--concurrency",
        str(CELERY_CONCURRENCY),
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    process = subprocess.Popen(command, env=env, cwd=BASE_DIR, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "ready." not in Path(log.name).read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {process.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker was not ready within 90 s; see {log.name}")
            time.sleep(0.1)
        yield process.pid  # also its session id (start_new_session)
    finally:
        process.terminate()  # warm shutdown: the tasks in hand finish
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        failed = process.returncode not in (0, -15)
        log.close()
        if failed:
            print(f"  !! the Celery worker ended with {process.returncode}; its log: {log.name}")
        else:
            os.unlink(log.name)


def _clean_queue(queue: str) -> None:
    """The private queue's list, its binding, and the worker's remote-control queue."""
    from leanvibe import redis as lv_redis

    client = lv_redis.client()
    keys = list(client.scan_iter(f"*{queue}*", count=1000))
    if keys:
        client.delete(*keys)
    for binding in client.scan_iter("_kombu.binding.*", count=1000):
        for member in client.smembers(binding):
            text = member.decode(errors="replace") if isinstance(member, bytes) else str(member)
            if queue in text:
                client.srem(binding, member)


# --- CPU accounting (Linux /proc) ---------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _procs() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, fields after it) of every process readable in /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        yield int(entry.name), name, stat[stat.rindex(")") + 2 :].split()


def _session_of(needle: str) -> int:
    """Session id of the process whose command line contains ``needle`` (gunicorn's master)."""
    for pid, _, fields in _procs():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            return int(fields[3])  # session id
    return -1


def _cpu_now(web_session: int, worker_session: int) -> dict[str, float]:
    """CPU seconds used so far by gunicorn's processes, the worker's, this process (its client
    threads and the local Stripe) and PostgreSQL's backends."""
    totals = {"web": 0.0, "worker": 0.0, "postgres": 0.0}
    for _, name, fields in _procs():
        used = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
        session = int(fields[3])
        if session == web_session:
            totals["web"] += used
        elif session == worker_session:
            totals["worker"] += used
        elif name == "postgres" or name.startswith("postgres:"):
            totals["postgres"] += used
    totals["bench"] = time.process_time()
    return totals


# --- delivering ----------------------------------------------------------------------------------
def _post(port: int, host: str, body: str, secret: str) -> tuple[int, bytes, float]:
    from billing.tests.stripe_fixtures import signature

    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            "/stripe/webhook/",
            body=body.encode(),
            headers={
                "Host": host,
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": signature(body, secret),
            },
        )
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    return response.status, content, time.perf_counter() - start


def _deliver(
    port: int, host: str, deliveries: list[Delivery], secret: str, expect: int, samples: Samples
) -> tuple[float, list[int]]:
    """POST every delivery (``CLIENTS`` at a time, in order); returns the seconds it took and
    the accepted triggers' ids. Any other status than ``expect`` stops the run."""
    work: queue_module.Queue[Delivery | None] = queue_module.Queue()
    for delivery in deliveries:
        work.put(delivery)
    for _ in range(CLIENTS):
        work.put(None)
    ids: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        while (delivery := work.get()) is not None:
            try:
                status, content, seconds = _post(port, host, delivery.body, secret)
            except OSError as exc:
                status, content, seconds = 0, str(exc).encode(), 0.0
            with lock:
                if status != expect:
                    errors.append(f"{delivery.event_id}: {status} {content[:200]!r}")
                    continue
                samples.add(seconds)
                if status == 200:
                    ids.append(int(content))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} deliveries answered otherwise than {expect}: {errors[:3]}")
    return elapsed, ids


def _wait_processed(trigger_ids: list[int], started: float, timeout: float) -> float:
    """Seconds from ``started`` until every trigger is processed (polled every 10 ms)."""
    from django.db import connection
    from djstripe.models import WebhookEventTrigger

    low, wanted = min(trigger_ids), len(trigger_ids)
    deadline = time.perf_counter() + timeout
    report = time.perf_counter() + 10
    while True:
        done = WebhookEventTrigger.objects.filter(pk__gte=low, valid=True, processed=True).count()
        if done >= wanted:
            return time.perf_counter() - started
        if time.perf_counter() > report:
            elapsed = time.perf_counter() - started
            progress(f"processed {done}/{wanted} ({elapsed:.0f} s, {done / elapsed:.1f}/s)")
            report += 10
        if time.perf_counter() > deadline:
            failed = list(
                WebhookEventTrigger.objects.filter(pk__gte=low, valid=True, processed=False)
                .exclude(exception="")
                .values_list("pk", "traceback")[:3]
            )
            failed = [(pk, traceback[-700:]) for pk, traceback in failed]
            raise RuntimeError(
                f"{wanted - done} of {wanted} triggers not processed after {timeout:.0f} s; "
                f"failures: {failed}"
            )
        connection.close_if_unusable_or_obsolete()
        time.sleep(0.01)


# --- checks ------------------------------------------------------------------------------------
def _check(deliveries: list[Delivery], trigger_ids: list[int], tenants: list[dict[str, str]]) -> list[str]:
    import stripe
    from djstripe.models import Event, WebhookEventTrigger

    from billing import access_flags
    from billing.models import BillingAccount
    from billing.services import plan_of_subscription
    from billing.stripe_objects import as_dict, current_period

    problems = []
    triggers = list(
        WebhookEventTrigger.objects.filter(pk__in=trigger_ids).values_list(
            "pk", "processed", "exception", "event_id"
        )
    )
    if len(triggers) != len(deliveries):
        problems.append(f"{len(triggers)} triggers stored for {len(deliveries)} deliveries")
    unprocessed = [pk for pk, processed, exception, _ in triggers if not processed or exception]
    if unprocessed:
        problems.append(f"{len(unprocessed)} triggers not processed or failed")
    expected = Counter(d.event_id for d in deliveries)
    recorded = Counter(event_id for *_, event_id in triggers)
    if recorded != expected:
        problems.append("the triggers do not point at their events once per delivery")
    events = Counter(Event.objects.filter(id__in=list(expected)).values_list("id", flat=True))
    if set(events) != set(expected) or any(count != 1 for count in events.values()):
        problems.append(f"{len(events)} Event rows for {len(expected)} unique events")
    for tenant in tenants:
        account = BillingAccount.objects.select_related("tenant").get(tenant_id=tenant["tenant_id"])
        sub = as_dict(
            stripe.Subscription.retrieve(
                tenant["subscription"], expand=["default_payment_method", "items.data.price"]
            )
        )
        plan, interval = plan_of_subscription(sub)
        card = (sub.get("default_payment_method") or {}).get("card") or {}
        wanted = (sub["status"], plan, interval, current_period(sub)[1], card.get("last4", ""))
        have = (
            account.status,
            account.plan,
            account.interval,
            account.current_period_end,
            account.payment_method_last4,
        )
        if wanted != have:
            problems.append(f"tenant {tenant['tenant_id']}: account {have}, Stripe {wanted}")
        elif account.tenant.plan != account.plan or account.access != "ok":
            problems.append(f"tenant {tenant['tenant_id']}: tenant plan or access not following")
        elif sub["status"] == "active" and account.payment_failed_at is not None:
            problems.append(f"tenant {tenant['tenant_id']}: still in dunning though active")
        elif access_flags.access_of(tenant["tenant_id"]) != "ok":
            problems.append(f"tenant {tenant['tenant_id']}: Redis access flag not ok")
    return problems


def _stale(tenants: list[dict[str, str]]) -> int:
    import stripe

    from billing.models import BillingAccount

    stale = 0
    for tenant in tenants:
        account = BillingAccount.objects.get(tenant_id=tenant["tenant_id"])
        if account.status != stripe.Subscription.retrieve(tenant["subscription"]).status:
            stale += 1
    return stale


# --- the run ---------------------------------------------------------------------------------------
def run(*, queue: str, events: int = 200, tenants: int = 10, duplicate_share: float = 0.25) -> list[Verdict]:
    from django.conf import settings
    from django.db import connections

    from billing import stripe_api
    from billing.stripe_local import StripeLocal

    print(
        f"\n== webhooks: {events} Stripe events + ~{duplicate_share:.0%} duplicates, "
        f"end to end ({CLIENTS} clients, gunicorn x{WEB_WORKERS}, Celery x{CELERY_CONCURRENCY}) ==",
        flush=True,
    )
    started = time.perf_counter()
    private_queue = f"{queue}-webhooks"
    saved = {
        name: getattr(settings, name)
        for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_METER_EVENTS_API_BASE")
    }
    try:
        with StripeLocal(api_key=API_KEY, retry_delays=(0.1,)) as server:
            server.delivery.manual = True  # the bench delivers; the local Stripe sends nothing
            settings.STRIPE_SECRET_KEY = API_KEY
            settings.STRIPE_API_BASE = server.url
            settings.STRIPE_METER_EVENTS_API_BASE = server.url
            stripe_api.configure()
            return _run(server, private_queue, events, tenants, duplicate_share, started)
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        stripe_api.configure()
        connections.close_all()
        _clean_queue(private_queue)


def _run(
    server: Any, private_queue: str, events: int, tenants: int, duplicate_share: float, started: float
) -> list[Verdict]:
    from django.conf import settings
    from django.core.management import call_command
    from djstripe.models import Event, WebhookEventTrigger

    from billing.catalog import catalog_sync
    from billing.webhooks import webhook_endpoint_current

    t0 = time.perf_counter()
    to_public()
    # dj-stripe asks for each new product's features, which the local Stripe does not serve; it
    # logs a traceback per product and carries on. Quiet here (setup only, not the timed part).
    djstripe_logger = logging.getLogger("djstripe")
    level, djstripe_logger.level = djstripe_logger.level, logging.CRITICAL
    try:
        catalog_sync()
    finally:
        djstripe_logger.setLevel(level)
    made = _tenants_with_histories(server, tenants, events)
    history = _relevant(server)[:events]
    deliveries, out_of_order = _deliveries(history, duplicate_share)
    duplicates = sum(d.duplicate for d in deliveries)
    kinds = Counter(e["type"] for e in history)
    progress(
        f"{len(deliveries)} deliveries: {len(history)} unique events "
        f"({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))}), {duplicates} exact "
        f"duplicates ({duplicates / len(deliveries):.0%}), {out_of_order} arriving after a newer event "
        f"of their customer; {_stale(made)} of {len(made)} accounts stale before delivery "
        f"(setup {time.perf_counter() - t0:.0f} s)"
    )
    env = {
        **os.environ,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "STRIPE_METER_EVENTS_API_BASE": server.url,
        "BENCH_CELERY_QUEUE": private_queue,
    }
    host = settings.BASE_DOMAIN or "localhost"
    with (
        gunicorn(
            database_url=os.environ["DATABASE_URL"],
            workers=WEB_WORKERS,
            env=env,
            app="bench.webhooks_wsgi:application",
        ) as port,
        _celery_worker(env, private_queue) as worker_session,
    ):
        call_command("billing_webhook_setup", url=f"http://127.0.0.1:{port}/stripe/webhook/", verbosity=0)
        endpoint = webhook_endpoint_current()
        assert endpoint is not None and endpoint.secret
        progress(f"gunicorn on 127.0.0.1:{port}, Celery worker on {private_queue}, endpoint {endpoint.id}")

        warm = Samples("warm-up")
        _deliver(port, host, deliveries[: CLIENTS * 4], WRONG_SECRET, 400, warm)

        rejected = Samples("baseline: POST signed with a wrong secret (400)")
        progress(f"baseline: {len(deliveries)} POSTs signed with a wrong secret")
        rejected_seconds, _ = _deliver(port, host, deliveries, WRONG_SECRET, 400, rejected)
        rejected_rate = len(deliveries) / rejected_seconds

        posted = Samples("POST answered 200 (stored, verified, queued)")
        progress(f"{len(deliveries)} signed deliveries, processed by the worker as they arrive")
        web_session = _session_of(f"127.0.0.1:{port}")
        cpu_before = _cpu_now(web_session, worker_session)
        began = time.perf_counter()
        ingress_seconds, trigger_ids = _deliver(port, host, deliveries, str(endpoint.secret), 200, posted)
        elapsed = _wait_processed(trigger_ids, began, timeout=120 + len(deliveries) / 5)
        cpu = {k: v - cpu_before[k] for k, v in _cpu_now(web_session, worker_session).items()}
    rate = len(deliveries) / elapsed
    unique_rate = len(history) / elapsed

    latency = Samples("accepted -> processed (trigger created -> updated)")
    batches: Counter[Any] = Counter()
    for created, updated in WebhookEventTrigger.objects.filter(pk__in=trigger_ids).values_list(
        "created", "updated"
    ):
        latency.add((updated - created).total_seconds())
        batches[updated] += 1  # a batch's triggers are saved together, with one time
    problems = _check(deliveries, trigger_ids, made)
    print_table(f"webhooks ({time.perf_counter() - started:.0f} s)", [rejected, posted, latency])
    ratio = rate / rejected_rate
    print()
    print(
        f"  baseline, rejected POSTs: {rejected_rate:,.1f}/s ({len(deliveries)} in {rejected_seconds:.2f} s)"
    )
    print(
        f"  end to end: {len(deliveries)} deliveries in {elapsed:.2f} s = {rate:,.1f} events/s "
        f"({unique_rate:,.1f} unique events/s); all POSTs answered after {ingress_seconds:.2f} s "
        f"({len(deliveries) / ingress_seconds:,.1f}/s)"
    )
    print(f"  ratio end to end / baseline: {ratio:.2f} ({ratio:.0%} of the rejected-POST rate)")
    per = {name: seconds * 1000 / len(deliveries) for name, seconds in cpu.items()}
    print(
        f"  CPU per delivery: {sum(per.values()):.1f} ms = web {per['web']:.1f} + worker {per['worker']:.1f} "
        f"+ bench process (clients, local Stripe) {per['bench']:.1f} + PostgreSQL {per['postgres']:.1f} "
        f"(every backend on the server, other clients' too); 100/s on {os.cpu_count()} cores "
        f"leaves {1000 * (os.cpu_count() or 1) / RATE_TARGET:.0f} ms"
    )
    sizes = sorted(batches.values())
    print(
        f"  processed in {len(sizes)} batches (a customer's waiting triggers together): "
        f"mean {len(trigger_ids) / max(1, len(sizes)):.1f} triggers, median {sizes[len(sizes) // 2]}, "
        f"largest {sizes[-1]}"
    )
    print(
        f"  {Event.objects.filter(id__in=[e['id'] for e in history]).count()} Event rows for "
        f"{len(history)} unique events; checks: {'all passed' if not problems else problems[:5]}"
    )
    return [
        Verdict(
            f"webhooks: >= {RATE_TARGET:g} events/s end to end with duplicates mixed in",
            rate >= RATE_TARGET and not problems,
            f"{rate:,.1f}/s ({len(deliveries)} deliveries, {duplicates} duplicates; "
            f"{unique_rate:,.1f} unique/s; baseline {rejected_rate:,.1f} rejected POSTs/s, "
            f"ratio {ratio:.2f})",
        ),
        Verdict(
            "webhooks: each unique event processed once, every tenant converged on Stripe",
            not problems,
            "all checks passed" if not problems else "; ".join(problems[:5]),
        ),
    ]
