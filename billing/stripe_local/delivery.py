"""Webhook delivery: signed POSTs from a background thread, retried with backoff.

Each event goes to every enabled endpoint whose ``enabled_events`` match, signed as Stripe
signs: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed by the
endpoint secret>``, so ``stripe.Webhook.construct_event`` accepts it. A non-2xx answer or a
connection error is retried after ``retry_delays`` (short in tests, Stripe's are hours).

Knobs for tests of an idempotent, order-tolerant receiver:

* ``duplicate_next(n)``: the next ``n`` deliveries are each sent twice.
* ``hold()`` then ``release(order="reverse" | "fifo" | "shuffle")``: collect deliveries, then
  send them as one batch in that order.
* ``timestamp_offset``: seconds added to the signature's timestamp (negative: a stale one).
* ``manual = True`` then ``flush()``: deliver in the calling thread (a test inside a database
  transaction); ``transport = fn(url, headers, body) -> status`` replaces the HTTP POST.
* ``wait_idle(timeout)``: block until nothing is queued, retrying or in flight.
* ``records``: every attempt (event, endpoint, attempt number, HTTP status or error).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for this payload, exactly as Stripe builds it."""
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class DeliveryRecord:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Job:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempt: int = 1
    duplicate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Delivery:
    def __init__(self, *, retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0), timeout: float = 5.0) -> None:
        self.retry_delays = retry_delays
        self.timeout = timeout
        # Seconds added to the signing timestamp: e.g. -600 sends signatures a receiver with a
        # 300 s tolerance must reject as too old.
        self.timestamp_offset = 0
        # ``manual``: nothing is sent until ``flush()`` (in the caller's thread, e.g. a test
        # holding a database transaction). ``transport(url, headers, body) -> status`` replaces
        # the HTTP POST, e.g. with Django's test client.
        self._manual = False
        self.transport: Callable[[str, dict[str, str], bytes], int] | None = None
        self.records: list[DeliveryRecord] = []
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Job]] = []
        self._held: list[_Job] | None = None
        self._duplicate = 0
        self._in_flight = 0
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="stripe-local-webhooks", daemon=True)
        self._thread.start()

    # --- test knobs ---------------------------------------------------------------------
    @property
    def manual(self) -> bool:
        return self._manual

    @manual.setter
    def manual(self, value: bool) -> None:
        """Switching manual mode off wakes the delivery thread for what was queued meanwhile."""
        with self._cond:
            self._manual = value
            self._cond.notify_all()

    def duplicate_next(self, n: int = 1) -> None:
        with self._cond:
            self._duplicate += n

    def hold(self) -> None:
        with self._cond:
            if self._held is None:
                self._held = []

    def release(self, *, order: str = "fifo", seed: int | None = None) -> None:
        with self._cond:
            jobs, self._held = self._held or [], None
            if order == "reverse":
                jobs.reverse()
            elif order == "shuffle":
                random.Random(seed).shuffle(jobs)  # noqa: S311 - test ordering, not security
            now = time.monotonic()
            for job in jobs:
                heapq.heappush(self._heap, (now, next(self._seq), job))
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._heap and not self._manual) or self._in_flight:  # manual: flush() sends
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2)

    # --- queueing -----------------------------------------------------------------------
    def enqueue(self, event: Obj, endpoints: list[Obj]) -> None:
        payload = json.dumps(event, indent=2)
        with self._cond:
            for endpoint in endpoints:
                copies = 1
                if self._duplicate > 0:
                    self._duplicate -= 1
                    copies = 2
                for n in range(copies):
                    job = _Job(
                        event_id=event["id"],
                        event_type=event["type"],
                        endpoint_id=endpoint["id"],
                        url=endpoint["url"],
                        secret=endpoint["secret"],
                        payload=payload,
                        duplicate=n > 0,
                    )
                    if self._held is not None:
                        self._held.append(job)
                    else:
                        heapq.heappush(self._heap, (time.monotonic(), next(self._seq), job))
            self._cond.notify_all()

    def flush(self, *, max_rounds: int = 10) -> list[DeliveryRecord]:
        """Manual mode: deliver everything queued now, in the calling thread, retrying failures
        at once (up to ``retry_delays`` attempts). Returns the attempts made."""
        made: list[DeliveryRecord] = []
        for _ in range(max_rounds):
            with self._cond:
                jobs = [job for _, _, job in sorted(self._heap)]
                self._heap.clear()
            if not jobs:
                break
            for job in jobs:
                made.append(self._attempt(job, delay_retries=False))
        return made

    def _attempt(self, job: _Job, *, delay_retries: bool = True) -> DeliveryRecord:
        try:
            status, error = self._post(job)
        except Exception as exc:  # a failing custom transport is a failed attempt
            status, error = None, repr(exc)
        record = DeliveryRecord(
            event_id=job.event_id,
            event_type=job.event_type,
            endpoint_id=job.endpoint_id,
            url=job.url,
            attempt=job.attempt,
            status=status,
            error=error,
            at=time.time(),
            duplicate=job.duplicate,
        )
        with self._cond:
            self.records.append(record)
            if not record.ok and job.attempt <= len(self.retry_delays):
                delay = self.retry_delays[job.attempt - 1] if delay_retries else 0
                job.attempt += 1
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify_all()
        return record

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    self.manual or not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    wait = self._heap[0][0] - time.monotonic() if self._heap and not self.manual else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                self._attempt(job)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _post(self, job: _Job) -> tuple[int | None, str | None]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(job.payload, job.secret, int(time.time()) + self.timestamp_offset),
        }
        if self.transport is not None:
            return self.transport(job.url, headers, job.payload.encode()), None
        if not job.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            return None, "the local Stripe only delivers to loopback addresses"
        body = job.payload.encode()
        request = urllib.request.Request(  # noqa: S310 - loopback http only, checked above
            job.url,
            data=body,
            method="POST",
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), None
        except urllib.error.HTTPError as exc:
            return int(exc.code), None
        except Exception as exc:  # any failure to deliver is a failed attempt, retried
            return None, str(exc)
