"""Load: mixed tenant traffic (reads, writes, sign-ins) on 2 gunicorn workers for a fixed time.

Setup (not timed): ``tenants`` real tenants through ``tenant_provision`` (professional plan, an
owner hashed by the configured first hasher, the Welcome project), each with ``MEMBERS`` more
members whose stored hash is made once by the same hasher (one ``make_password`` for all of
them: a sign-in checks it at full cost, the setup does not pay it 150 times), and
``SEED_PROJECTS`` projects per person (one ``bulk_create`` per tenant). Every member is a
virtual user bound to its tenant; before the clock starts each signs in twice, through the API
(``POST /api/v1/auth/login``: its tokens) and through allauth's form (``/accounts/login/``: its
session cookie for the pages).

Timed: ``concurrency`` client coroutines (one request in flight each) take the virtual users in
turn, so the traffic spreads over every tenant, and send one request of a kind drawn by
``WEIGHTS`` for that user, for ``seconds``: a closed loop with no think time, so the server
(2 sync workers, as deployed) is saturated and requests/s is its capacity for this mix. Each
request is timed from connect to last byte. Any answer other than the one the request expects
(a 429 included) and any connection failure is an error; the verdict wants none. No limit is
relaxed: the sign-in throttle counts failures only (every sign-in here is right), the API meter
allows the professional plan's 100,000 calls a month, and allauth's form limit (30 a minute per
address and tenant) sees 4 sign-ins per tenant.

Baseline, same run, same client and server: ``GET /health`` (no I/O) for a few seconds before
and after the mix. Its rate is the ceiling of this client, gunicorn and Django's outermost
layers on this machine; the mix's rate over it says how much of that ceiling the application's
work (tenant routing, authentication, queries, templates, hashing) leaves.

The client is asyncio streams and a small HTTP/1.1 reader (no dependency). It would keep a
connection open when the server allows it; gunicorn's sync workers close every connection after
its response (``Connection: close``), so each request opens one, as every client of this
deployment does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from bench import Samples, Verdict, fmt_seconds, gunicorn, progress, progress_counter, to_public

WORKERS = 2
MEMBERS = 3  # besides the owner: 4 users per tenant (the professional plan allows 25)
PASSWORD = "bench-Correct-Horse-42"  # noqa: S105 - throwaway bench members
SEED_PROJECTS = 2  # per user, made in setup: deletes have something to delete from the start
OWN_PROJECTS_MAX = 5  # per user: a create beyond it deletes instead, a delete with none creates
BASELINE_SECONDS = 5.0  # each side of the mix
TIMEOUT = 60.0  # seconds a request may take before it counts as an error

#: Share of each kind of request in the mix, in percent.
WEIGHTS: dict[str, int] = {
    "api: list projects": 25,
    "api: get project": 20,
    "api: usage": 5,
    "page: dashboard": 15,
    "api: create project": 8,
    "api: update project": 10,
    "api: delete project": 7,
    "api: sign in": 5,
    "api: refresh token": 3,
    "api: list sessions": 2,
}
KINDS = tuple(WEIGHTS)


# --- setup (in this process, on the current database) ------------------------------------------


@dataclass(eq=False)
class VirtualUser:
    host: str
    email: str
    shared_project: str  # the tenant's Welcome project
    access: str = ""
    refresh: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    own_projects: list[str] = field(default_factory=list)
    made: int = 0


def tenants_prepare(count: int, *, members: int = MEMBERS, label: str = "load") -> list[VirtualUser]:
    """``count`` tenants (professional plan) with an owner and ``members`` members each; one
    virtual user per person. The schemas come from the pool when it has clones, else are cloned
    from the template (``tenant_provision``'s own fallback): never migrated."""
    from django.contrib.auth.hashers import make_password
    from django_tenants.utils import schema_context

    from accounts.services import user_create
    from agents.models import Project
    from tenants.plans import Plan
    from tenants.services import tenant_provision

    to_public()
    encoded = make_password(PASSWORD)  # the configured first hasher, as sign-up would store it
    users: list[VirtualUser] = []
    report = progress_counter(f"{label}: tenants provisioned", count)
    for index in range(count):
        owner = f"owner@{label}{index:03d}.example.com"
        result = tenant_provision(
            organization_name=f"Load Org {index:03d}",
            billing_email=owner,
            admin_email=owner,
            admin_password=PASSWORD,
            plan=Plan.PROFESSIONAL,
        )
        host = str(result.tenant.get_primary_domain().domain)
        emails = [owner]
        with schema_context(result.tenant.schema_name):
            for number in range(1, members + 1):
                email = f"member{number}@{label}{index:03d}.example.com"
                user_create(email=email, password=encoded, password_is_hashed=True)
                emails.append(email)
            welcome = str(Project.objects.values_list("id", flat=True).get())
            tenant_users = [VirtualUser(host, email, welcome) for email in emails]
            seeds = {
                user: [Project(name=f"{user.email.split('@')[0]} seed {n}") for n in range(SEED_PROJECTS)]
                for user in tenant_users
            }
            Project.objects.bulk_create([project for projects in seeds.values() for project in projects])
            for user, projects in seeds.items():
                user.own_projects = [str(project.id) for project in projects]
        users += tenant_users
        report(index + 1)
    to_public()
    return users


# --- a small HTTP/1.1 client on asyncio streams --------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data


class Connection:
    """One client's connection: reused while the server keeps it open, else opened anew."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, *, host: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        reused = self.writer is not None
        try:
            return await self._exchange(method, path, host, headers or {}, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self.close()
            if not reused:
                raise
            # The server closed a kept-alive connection between two requests: one retry.
            return await self._exchange(method, path, host, headers or {}, body)

    async def _exchange(
        self, method: str, path: str, host: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: leanvibe-bench-load"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        reply_headers = []
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                reply_headers.append((name.strip().lower(), value.strip()))
        reply = Reply(status, reply_headers, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            content = b""
        elif "chunked" in reply.header("transfer-encoding").lower():
            content = await self._chunked()
        elif reply.header("content-length"):
            content = await self.reader.readexactly(int(reply.header("content-length")))
        else:
            content = await self.reader.read()  # until the server closes
        if reply.header("connection").lower() == "close" or not reply.header("content-length"):
            await self.close()
        return Reply(status, reply_headers, content)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def _cookies_keep(user: VirtualUser, reply: Reply) -> None:
    for name, value in reply.headers:
        if name == "set-cookie":
            pair = value.split(";", 1)[0]
            key, _, cookie = pair.partition("=")
            if cookie and "max-age=0" not in value.lower():
                user.cookies[key.strip()] = cookie.strip()
            else:
                user.cookies.pop(key.strip(), None)


def _cookie_header(user: VirtualUser) -> dict[str, str]:
    if not user.cookies:
        return {}
    return {"Cookie": "; ".join(f"{key}={value}" for key, value in user.cookies.items())}


# --- the requests of the mix --------------------------------------------------------------------

_CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


class UnexpectedReply(Exception):
    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"{status} {detail}".strip())
        self.status = status


def _expect(reply: Reply, status: int) -> Reply:
    if reply.status != status:
        raise UnexpectedReply(reply.status, reply.body[:200].decode(errors="replace"))
    return reply


def _bearer(user: VirtualUser, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access}", **(extra or {})}


_JSON = {"Content-Type": "application/json"}


async def _api_sign_in(conn: Connection, user: VirtualUser) -> None:
    body = json.dumps({"email": user.email, "password": PASSWORD}).encode()
    reply = _expect(
        await conn.request("POST", "/api/v1/auth/login", host=user.host, headers=_JSON, body=body), 200
    )
    tokens = reply.json()
    user.access, user.refresh = str(tokens["access_token"]), str(tokens["refresh_token"])


async def _web_sign_in(conn: Connection, user: VirtualUser) -> None:
    """allauth's form, as a browser: the page (CSRF cookie and field), then the POST; a session."""
    user.cookies.clear()
    page = _expect(await conn.request("GET", "/accounts/login/", host=user.host), 200)
    _cookies_keep(user, page)
    match = _CSRF_FIELD.search(page.body)
    if match is None:
        raise UnexpectedReply(page.status, "no CSRF field on the sign-in page")
    form = urlencode(
        {"csrfmiddlewaretoken": match.group(1).decode(), "login": user.email, "password": PASSWORD}
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", **_cookie_header(user)}
    reply = await conn.request(
        "POST", "/accounts/login/", host=user.host, headers=headers, body=form.encode()
    )
    _expect(reply, 302)
    _cookies_keep(user, reply)
    if "sessionid" not in user.cookies:
        raise UnexpectedReply(reply.status, "signed in without a session cookie")


async def _send(kind: str, conn: Connection, user: VirtualUser, rng: random.Random) -> str:
    """Send one request of ``kind`` for ``user``; returns the kind actually sent (a create past
    ``OWN_PROJECTS_MAX`` becomes a delete, a delete with nothing to delete a create)."""
    if kind == "api: create project" and len(user.own_projects) >= OWN_PROJECTS_MAX:
        kind = "api: delete project"
    elif kind == "api: delete project" and not user.own_projects:
        kind = "api: create project"
    host = user.host
    if kind == "api: list projects":
        _expect(await conn.request("GET", "/api/v1/projects", host=host, headers=_bearer(user)), 200)
    elif kind == "api: get project":
        project = rng.choice([user.shared_project, *user.own_projects])
        _expect(
            await conn.request("GET", f"/api/v1/projects/{project}", host=host, headers=_bearer(user)), 200
        )
    elif kind == "api: usage":
        _expect(await conn.request("GET", "/api/v1/usage", host=host, headers=_bearer(user)), 200)
    elif kind == "page: dashboard":
        reply = _expect(await conn.request("GET", "/", host=host, headers=_cookie_header(user)), 200)
        _cookies_keep(user, reply)
    elif kind == "api: create project":
        user.made += 1
        name = f"{user.email.split('@')[0]} load {user.made}"
        body = json.dumps({"name": name, "description": "made by the load bench"}).encode()
        headers = _bearer(user, _JSON)
        reply = _expect(
            await conn.request("POST", "/api/v1/projects", host=host, headers=headers, body=body), 201
        )
        user.own_projects.append(str(reply.json()["id"]))
    elif kind == "api: update project":
        project = rng.choice([user.shared_project, *user.own_projects])
        body = json.dumps({"description": f"updated at {time.time():.3f}"}).encode()
        path = f"/api/v1/projects/{project}"
        _expect(await conn.request("PATCH", path, host=host, headers=_bearer(user, _JSON), body=body), 200)
    elif kind == "api: delete project":
        project = user.own_projects.pop(0)
        _expect(
            await conn.request("DELETE", f"/api/v1/projects/{project}", host=host, headers=_bearer(user)), 204
        )
    elif kind == "api: sign in":
        await _api_sign_in(conn, user)
    elif kind == "api: refresh token":
        body = json.dumps({"refresh_token": user.refresh}).encode()
        reply = _expect(
            await conn.request("POST", "/api/v1/auth/refresh", host=host, headers=_JSON, body=body), 200
        )
        tokens = reply.json()
        user.access, user.refresh = str(tokens["access_token"]), str(tokens["refresh_token"])
    elif kind == "health":
        _expect(await conn.request("GET", "/health", host=host), 200)
    elif kind == "api: list sessions":
        _expect(await conn.request("GET", "/api/v1/auth/sessions", host=host, headers=_bearer(user)), 200)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return kind


# --- driving ------------------------------------------------------------------------------------


@dataclass
class Window:
    """What one timed run measured."""

    label: str
    samples: dict[str, Samples] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, error)
    seconds: float = 0.0

    def add(self, kind: str, took: float) -> None:
        self.samples.setdefault(kind, Samples(kind)).add(took)

    @property
    def count(self) -> int:
        return sum(s.n for s in self.samples.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")

    def overall(self) -> Samples:
        every = Samples("all requests")
        for samples in self.samples.values():
            every.values += samples.values
        return every


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, UnexpectedReply):
        return f"HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


async def _closed_loop(
    port: int,
    users: Sequence[VirtualUser],
    *,
    seconds: float,
    concurrency: int,
    label: str,
    choose: Callable[[random.Random], str],
    seed: int,
) -> Window:
    """``concurrency`` clients, each sending one request at a time for a user taken in turn
    (no user has two requests in flight), until ``seconds`` have passed; requests begun before
    then are waited for and count."""
    window = Window(label)
    ready: asyncio.Queue[VirtualUser] = asyncio.Queue()
    for user in users:
        ready.put_nowait(user)
    started = time.perf_counter()
    deadline = started + seconds

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        conn = Connection(port)
        try:
            while time.perf_counter() < deadline:
                user = await ready.get()
                kind = choose(rng)
                begun = time.perf_counter()
                try:
                    kind = await asyncio.wait_for(_send(kind, conn, user, rng), TIMEOUT)
                except Exception as exc:  # every failure is counted, by name
                    window.errors[kind, _error_name(exc)] += 1
                    await conn.close()
                else:
                    window.add(kind, time.perf_counter() - begun)
                finally:
                    ready.put_nowait(user)
        finally:
            await conn.close()

    await asyncio.gather(*(client(number) for number in range(concurrency)))
    window.seconds = time.perf_counter() - started
    return window


async def _sign_everyone_in(port: int, users: Sequence[VirtualUser], concurrency: int) -> None:
    """Untimed: every user's API tokens and web session (and the server's workers warmed)."""
    ready: asyncio.Queue[VirtualUser] = asyncio.Queue()
    for user in users:
        ready.put_nowait(user)
    report = progress_counter("users signed in (API and web form)", len(users))
    done = 0

    async def client() -> None:
        nonlocal done
        conn = Connection(port)
        try:
            while not ready.empty():
                user = ready.get_nowait()
                await asyncio.wait_for(_api_sign_in(conn, user), TIMEOUT)
                await asyncio.wait_for(_web_sign_in(conn, user), TIMEOUT)
                done += 1
                report(done)
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


def _mix_chooser(weights: dict[str, int], seed: int) -> Callable[[random.Random], str]:
    """Kinds dealt from a shuffled deck holding each kind ``weight`` times, shared by every
    client and dealt anew when empty: each full deck is exactly the mix, so even a short run
    sends every kind (a 2 % kind is not left to chance)."""
    deck: list[str] = []
    shuffler = random.Random(seed)

    def choose(rng: random.Random) -> str:
        if not deck:
            deck.extend(kind for kind, weight in weights.items() for _ in range(weight))
            shuffler.shuffle(deck)
        return deck.pop()

    return choose


# --- machine load (Linux /proc) ----------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_by_process(port: int, database: str) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far, by pid: gunicorn's processes (the session of the one whose
    command line binds ``port``), the PostgreSQL backends serving ``database`` (their title
    names it: other databases on the server are not ours), and this process (the client)."""
    found: list[tuple[int, int, str, float]] = []  # pid, session, group, seconds
    web_session = -1
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        session, used = int(fields[3]), (int(fields[11]) + int(fields[12])) / _TICKS
        if f"127.0.0.1:{port}".encode() in cmdline and b"gunicorn" in cmdline:
            web_session = session
        if cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
            found.append((int(entry.name), session, "postgres", used))
        else:
            found.append((int(entry.name), session, "", used))
    usage = {pid: ("gunicorn", used) for pid, session, _, used in found if session == web_session}
    usage |= {pid: (group, used) for pid, _, group, used in found if group == "postgres"}
    usage[os.getpid()] = ("client", time.process_time())
    return usage


def _cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each group used between the two readings (a process that ended in between is
    missed: gunicorn's workers and their database connections live through the run)."""
    totals = {"gunicorn": 0.0, "postgres": 0.0, "client": 0.0}
    for pid, (group, used) in after.items():
        earlier = before.get(pid)
        totals[group] += used - (earlier[1] if earlier and earlier[0] == group else 0.0)
    return totals


# --- the whole measurement ----------------------------------------------------------------------


@dataclass
class LoadReport:
    tenants: int
    users: int
    concurrency: int
    mix: Window
    baselines: list[Window]
    cpu: dict[str, float]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    setup_seconds: float

    @property
    def baseline_rate(self) -> float:
        count = sum(w.count for w in self.baselines)
        seconds = sum(w.seconds for w in self.baselines)
        return count / seconds if seconds else float("nan")

    @property
    def kinds_made(self) -> set[str]:
        return {kind for kind, samples in self.mix.samples.items() if samples.n}


def load_measure(
    *,
    database_url: str,
    tenants: int,
    seconds: float,
    concurrency: int,
    baseline_seconds: float = BASELINE_SECONDS,
    env: dict[str, str] | None = None,
    app: str = "bench.webhooks_wsgi:application",
    weights: dict[str, int] | None = None,
    seed: int = 1,
) -> LoadReport:
    """Set up ``tenants`` tenants in the current database, serve it with gunicorn (``WORKERS``
    sync workers, ``env`` added to this process's environment) and measure: baseline, mix,
    baseline."""
    from django.conf import settings

    weights = weights or WEIGHTS
    if set(weights) - set(KINDS) or any(weight < 0 for weight in weights.values()):
        raise ValueError(f"weights name kinds of {KINDS} with counts >= 0")
    t0 = time.perf_counter()
    users = tenants_prepare(tenants)
    server_env = {
        # The server checks the hashes this process stored: the same hashers, in the same order.
        "PASSWORD_HASHERS": ",".join(settings.PASSWORD_HASHERS),
        "CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX,
        **(env or {}),
    }
    with gunicorn(database_url=database_url, workers=WORKERS, env=server_env, app=app) as port:
        progress(f"gunicorn with {WORKERS} sync workers on 127.0.0.1:{port}; signing {len(users)} users in")
        asyncio.run(_sign_everyone_in(port, users, concurrency))
        setup_seconds = time.perf_counter() - t0
        public_host = settings.BASE_DOMAIN

        def health(rng: random.Random) -> str:
            return "health"

        async def health_window(label: str) -> Window:
            target = [VirtualUser(public_host, "", "")]
            return await _closed_loop(
                port,
                target * concurrency,
                seconds=baseline_seconds,
                concurrency=concurrency,
                label=label,
                choose=health,
                seed=seed,
            )

        baselines = []
        progress(f"baseline: GET /health for {baseline_seconds:g} s, {concurrency} in flight")
        baselines.append(asyncio.run(health_window("baseline before")))
        progress(f"mix: {seconds:g} s over {tenants} tenants ({len(users)} users), {concurrency} in flight")
        load_before = os.getloadavg()
        database = str(settings.DATABASES["default"]["NAME"])
        cpu_before = _cpu_by_process(port, database)
        mix = asyncio.run(
            _closed_loop(
                port,
                users,
                seconds=seconds,
                concurrency=concurrency,
                label="mix",
                choose=_mix_chooser(weights, seed),
                seed=seed,
            )
        )
        cpu_after = _cpu_by_process(port, database)
        load_after = os.getloadavg()
        progress(f"mix: {mix.count} requests, {mix.error_count} errors; baseline again")
        baselines.append(asyncio.run(health_window("baseline after")))
    cpu = _cpu_delta(cpu_before, cpu_after)
    return LoadReport(
        tenants=tenants,
        users=len(users),
        concurrency=concurrency,
        mix=mix,
        baselines=baselines,
        cpu=cpu,
        load_before=load_before,
        load_after=load_after,
        setup_seconds=setup_seconds,
    )


# --- printing -------------------------------------------------------------------------------------


def _table(title: str, headers: list[str], body: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print()
    print(f"== {title} ==")
    print(line(headers))
    print("+".join("-" * (w + 2) for w in widths))
    for row in body:
        print(line(row))


def _row(samples: Samples, window: Window, errors: int) -> list[str]:
    share = samples.n / window.count * 100 if window.count else 0.0
    return [
        samples.label,
        str(samples.n),
        f"{share:.1f} %",
        f"{samples.n / window.seconds:.1f}" if window.seconds else "-",
        fmt_seconds(samples.p50),
        fmt_seconds(samples.quantile(0.95)),
        fmt_seconds(samples.quantile(0.99)),
        fmt_seconds(samples.maximum),
        str(errors),
    ]


def report_print(report: LoadReport, title: str) -> None:
    mix = report.mix
    errors_by_kind: Counter[str] = Counter()
    for (kind, _), count in mix.errors.items():
        errors_by_kind[kind] += count
    rows = [_row(mix.samples.get(kind, Samples(kind)), mix, errors_by_kind[kind]) for kind in KINDS]
    rows.append(_row(mix.overall(), mix, mix.error_count))
    headers = ["request", "n", "share", "req/s", "p50", "p95", "p99", "max", "errors"]
    _table(title, headers, rows)
    print()
    print(
        f"  {report.tenants} tenants, {report.users} users, {report.concurrency} requests in flight on "
        f"{WORKERS} gunicorn sync workers, {mix.seconds:.1f} s: {mix.rate:.1f} requests/s, "
        f"{mix.error_count} errors"
    )
    if mix.errors:
        print("  errors:")
        for (kind, error), count in mix.errors.most_common():
            print(f"    {count:6d}  {kind}: {error}")
    for window in report.baselines:
        print(
            f"  {window.label}: GET /health {window.rate:.1f}/s (p50 {fmt_seconds(window.overall().p50)}, "
            f"{window.error_count} errors)"
        )
    ratio = mix.rate / report.baseline_rate
    print(
        f"  mix / baseline: {ratio:.3f} (the share of the bare server's request rate left by the "
        "application's work in this mix)"
    )
    per_request = {key: value / mix.count * 1000 for key, value in report.cpu.items()} if mix.count else {}
    print(
        "  CPU per request during the mix: "
        + ", ".join(f"{key} {value:.1f} ms" for key, value in per_request.items())
        + f"; together {sum(report.cpu.values()) / mix.seconds:.2f} of the {os.cpu_count()} cores"
    )
    before, after = (" ".join(f"{v:.2f}" for v in load) for load in (report.load_before, report.load_after))
    print(f"  load average (1, 5, 15 min) before / after the mix: {before} / {after}")


def run(*, queue: str, tenants: int, seconds: float, concurrency: int) -> list[Verdict]:
    print(
        f"\n== load: mixed traffic over {tenants} tenants on {WORKERS} gunicorn workers for {seconds:g} s "
        f"({concurrency} requests in flight) ==",
        flush=True,
    )
    started = time.perf_counter()
    report = load_measure(
        database_url=os.environ["DATABASE_URL"],
        tenants=tenants,
        seconds=seconds,
        concurrency=concurrency,
        env={"BENCH_CELERY_QUEUE": queue},
    )
    report_print(report, f"load ({time.perf_counter() - started:.0f} s, setup {report.setup_seconds:.0f} s)")
    missing = [kind for kind in KINDS if kind not in report.kinds_made]
    full = report.mix.seconds >= seconds
    passed = report.mix.error_count == 0 and not missing and full
    detail = (
        f"{report.mix.error_count} errors in {report.mix.count} requests over {report.mix.seconds:.1f} s "
        f"({report.mix.rate:.1f}/s, p99 {fmt_seconds(report.mix.overall().quantile(0.99))})"
    )
    if missing:
        detail += f"; never sent: {', '.join(missing)}"
    return [
        Verdict(
            f"load: 0 errors for {seconds:g} s over {tenants} tenants on {WORKERS} workers", passed, detail
        )
    ]
