"""Sign-in throughput: ``POST /api/v1/auth/login`` per second on two gunicorn sync workers.

Two servers run side by side on the benchmark database, the same code with one setting apart:
``PASSWORD_HASHERS`` as it was (PBKDF2 first: the baseline) and as it is now (Argon2id first,
``accounts.hashers``). Each signs in a member whose password is stored by its own first hasher,
so no sign-in rehashes. Clients keep both workers busy (more requests in flight than workers)
for fixed windows (opened after a lead-in under load), alternating between the servers in ABBA
order so both see the same machine; the rate is the sign-ins answered 200 inside the windows
over their total length. Every sign-in is the whole request: tenant resolution, password
check, audit event, two tokens written.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from contextlib import ExitStack

from django.contrib.auth.hashers import BasePasswordHasher, PBKDF2PasswordHasher, make_password
from django_tenants.utils import schema_context

from accounts.hashers import Argon2idPasswordHasher
from accounts.models import User
from accounts.services import user_create
from bench import Samples, Verdict, fmt_seconds, gunicorn, print_table, progress, to_public
from tenants.models import Tenant
from tenants.services import tenant_provision

PATH = "/api/v1/auth/login"
PASSWORD = "bench-Correct-Horse-42"  # noqa: S105 - a throwaway bench member
WORKERS = 2
CLIENTS = 4  # requests in flight: twice the workers, so neither ever waits for the next one
SPEEDUP_TARGET = 5.0
LEAD_IN = 1.0  # seconds of load before each window opens
PBKDF2_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
ARGON2ID_HASHERS = ["accounts.hashers.Argon2idPasswordHasher", *PBKDF2_HASHERS]


class Side:
    """One server: its hashers, its member, and what was measured against it."""

    def __init__(self, name: str, hashers: list[str], hasher: BasePasswordHasher, email: str) -> None:
        self.name = name
        self.hashers = hashers
        self.hasher = hasher
        self.email = email
        self.port = 0
        self.encoded = ""
        self.latency = Samples(f"{name}: one sign-in, {CLIENTS} in flight on {WORKERS} workers")
        self.signins = 0
        self.seconds = 0.0

    @property
    def rate(self) -> float:
        return self.signins / self.seconds if self.seconds else float("nan")


def _sign_in(port: int, host: str, email: str) -> tuple[int, float]:
    body = json.dumps({"email": email, "password": PASSWORD})
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", PATH, body=body, headers={"Host": host, "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status, time.perf_counter() - start


def _window(side: Side, host: str, seconds: float) -> None:
    """``CLIENTS`` threads sign in without pause; the sign-ins that end inside a window of
    ``seconds`` count. The window opens after a lead-in, so the workers are already busy and
    the window's edges fall anywhere in a sign-in (no bias from starting all clients at once)."""
    lock = threading.Lock()
    failures: list[int] = []
    opens = time.perf_counter() + LEAD_IN
    closes = opens + seconds

    def client() -> None:
        while time.perf_counter() < closes:
            status, took = _sign_in(side.port, host, side.email)
            if status != 200:
                with lock:
                    failures.append(status)
                return
            if opens <= time.perf_counter() <= closes:
                with lock:
                    side.signins += 1
                    side.latency.add(took)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    side.seconds += seconds
    if failures:
        raise RuntimeError(f"{side.name}: sign-in answered {failures[0]}")


def _prepare(sides: list[Side]) -> tuple[str, str]:
    """A tenant with one member per side, each password stored by that side's first hasher."""
    to_public()
    result = tenant_provision(
        organization_name="Bench Sign-ins",
        billing_email="owner@signins.example.com",
        admin_email="owner@signins.example.com",
        admin_password=PASSWORD,
    )
    schema = result.tenant.schema_name
    with schema_context(schema):
        for side in sides:
            side.encoded = make_password(PASSWORD, hasher=side.hasher)
            user_create(email=side.email, password=side.encoded, password_is_hashed=True)
    to_public()
    host = str(result.tenant.get_primary_domain().domain)
    return schema, host


def run(*, windows: int, seconds: float) -> list[Verdict]:
    print(
        f"\n== sign-ins: POST {PATH} per second on {WORKERS} gunicorn workers, PBKDF2 vs Argon2id "
        f"({windows} windows of {seconds:g} s each, ABBA) ==",
        flush=True,
    )
    started = time.perf_counter()
    baseline = Side("PBKDF2 (before)", PBKDF2_HASHERS, PBKDF2PasswordHasher(), "pbkdf2@signins.example.com")
    argon2id = Side(
        "Argon2id (now)", ARGON2ID_HASHERS, Argon2idPasswordHasher(), "argon2id@signins.example.com"
    )
    sides = [baseline, argon2id]
    progress("a tenant with one member per hasher")
    schema, host = _prepare(sides)
    try:
        with ExitStack() as stack:
            for side in sides:
                side.port = stack.enter_context(
                    gunicorn(
                        database_url=os.environ["DATABASE_URL"],
                        workers=WORKERS,
                        env={"PASSWORD_HASHERS": ",".join(side.hashers)},
                    )
                )
            progress(f"warming up both servers ({WORKERS} sync workers each)")
            for side in sides:
                for _ in range(2 * CLIENTS):
                    status, _ = _sign_in(side.port, host, side.email)
                    if status != 200:
                        raise RuntimeError(f"{side.name}: warm-up sign-in answered {status}")
            for index in range(windows):
                order = sides if index % 4 in (0, 3) else sides[::-1]
                for side in order:
                    _window(side, host, seconds)
                progress(
                    f"window {index + 1}/{windows}: "
                    + ", ".join(f"{side.name} {side.rate:.1f}/s" for side in sides)
                )
        with schema_context(schema):
            rehashed = [side.name for side in sides if _stored_hash(side.email) != side.encoded]
        if rehashed:
            raise RuntimeError(f"a sign-in rehashed a bench member's password: {rehashed}")
    finally:
        to_public()
        Tenant.objects.get(schema_name=schema).delete(force_drop=True)

    print_table(f"sign-ins ({time.perf_counter() - started:.0f} s)", [baseline.latency, argon2id.latency])
    ratio = argon2id.rate / baseline.rate
    print()
    print(f"  sign-ins per second on {WORKERS} workers, measured in this run (same windows, ABBA):")
    for side in sides:
        print(f"    {side.name:<18} {side.rate:8.1f}/s  ({side.signins} in {side.seconds:.0f} s)")
    print(f"    ratio Argon2id / PBKDF2 {ratio:8.1f}x")
    return [
        Verdict(
            f"sign-ins: Argon2id >= {SPEEDUP_TARGET:g}x PBKDF2 per second on {WORKERS} workers",
            ratio >= SPEEDUP_TARGET,
            f"{ratio:.1f}x ({argon2id.rate:.1f}/s vs {baseline.rate:.1f}/s; p50 "
            f"{fmt_seconds(argon2id.latency.p50)} vs {fmt_seconds(baseline.latency.p50)})",
        )
    ]


def _stored_hash(email: str) -> str:
    return str(User.objects.get(email=email).password)
